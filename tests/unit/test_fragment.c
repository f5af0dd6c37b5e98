/* SPDX-License-Identifier: MIT */
/* Register fragments: the freestanding encoder (include/ivmon/fragment.h) against values worked
 * out independently (a Python encoder written from docs/PROTOCOL.md), and the reassembler
 * (src/fragment.c) against every kind of damage a guest or a transport can do, with the exact
 * counters each must leave. After every scenario the two counting identities of fragment.h
 * hold. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fragment.h"
#include "unit_records.h"

/* Fragments of one record, as the guest would send them. */
struct cut {
    unsigned n, words;
    uint64_t hdr[IVMON_FRAG_COUNT_MAX];
    uint64_t w[IVMON_FRAG_COUNT_MAX][IVMON_FRAG_WORDS_MAX];
};

static struct rec_buf rb, rb2;
static struct cut A, B;

static void cut_record(struct cut *c, const void *rec, size_t len, unsigned words)
{
    struct ivmon_frag_writer w;
    uint32_t n = ivmon_frag_writer_init(&w, rec, (uint32_t)len, words);
    assert_int_equal(n, ivmon_frag_count((uint32_t)len, words));
    c->n = 0;
    c->words = words;
    while (ivmon_frag_writer_next(&w, &c->hdr[c->n], c->w[c->n]))
        c->n++;
    assert_int_equal(c->n, n);
}

/* A file record of exactly len bytes (>= 76), seq as given; past 24 + 40 + 3 + 8 + 4096 bytes
 * it becomes a rename (valid up to 4096 bytes of new_path). */
static size_t file_of_len(struct rec_buf *b, uint64_t seq, size_t len)
{
    static char path[IVMON_REC_MAX];
    size_t fixed = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_file) + 3 + 8;
    size_t plen = len - fixed, nlen = 0;
    if (plen > IVMON_PATH_MAX) { /* the rest goes to new_path on a rename */
        nlen = plen - IVMON_PATH_MAX;
        plen = IVMON_PATH_MAX;
    }
    for (size_t i = 0; i < sizeof path; i++)
        path[i] = (char)('a' + (i * 7 + seq) % 26);
    path[0] = '/';
    size_t n = rec_file_n(b, seq, nlen ? IVMON_OP_RENAME : IVMON_OP_OPEN, 0, "cat", 3, "/bin/cat",
                          8, path, plen, path, nlen);
    assert_int_equal(n, len);
    return n;
}

/* Cuts two file records of len bytes, seq and seq + 1, into A (from rb) and B (from rb2). */
static void two_records(uint64_t seq, size_t len, unsigned words)
{
    cut_record(&A, &rb, file_of_len(&rb, seq, len), words);
    cut_record(&B, &rb2, file_of_len(&rb2, seq + 1, len), words);
}

static uint64_t C[IVMON_FRAG_C_MAX];

/* The two identities of fragment.h, with `active` records still in progress. */
static void check_identities(struct ivmon_frag *f, unsigned active)
{
    ivmon__frag_counters(f, C);
    assert_int_equal(C[IVMON_FRAG_C_FRAGMENTS],
                     C[IVMON_FRAG_C_BAD_MAGIC] + C[IVMON_FRAG_C_BAD_CHECK] +
                         C[IVMON_FRAG_C_BAD_FIELD] + C[IVMON_FRAG_C_BAD_ACCESS] +
                         C[IVMON_FRAG_C_ORPHAN] + C[IVMON_FRAG_C_STRAY] +
                         C[IVMON_FRAG_C_DUPLICATE] + C[IVMON_FRAG_C_TAKEN]);
    assert_int_equal(C[IVMON_FRAG_C_STARTED],
                     C[IVMON_FRAG_C_COMPLETE] + C[IVMON_FRAG_C_GAP] + C[IVMON_FRAG_C_SUPERSEDED] +
                         C[IVMON_FRAG_C_BAD_RECORD] + C[IVMON_FRAG_C_EXPIRED] + active);
}

/* Expected non-zero detail counters: pairs of (counter, value), ended by -1. FRAGMENTS, TAKEN
 * and STARTED are checked too when given; any counter not named must be zero except those. */
static void expect_counters(struct ivmon_frag *f, unsigned active, ...)
{
    uint64_t want[IVMON_FRAG_C_MAX] = {0};
    int named[IVMON_FRAG_C_MAX] = {0};
    va_list ap;
    va_start(ap, active);
    for (;;) {
        int c = va_arg(ap, int);
        if (c < 0)
            break;
        want[c] = va_arg(ap, uint64_t);
        named[c] = 1;
    }
    va_end(ap);
    check_identities(f, active);
    for (unsigned c = 0; c < IVMON_FRAG_C_MAX; c++) {
        if (!named[c] &&
            (c == IVMON_FRAG_C_FRAGMENTS || c == IVMON_FRAG_C_TAKEN || c == IVMON_FRAG_C_STARTED))
            continue;
        if (C[c] != want[c])
            fail_msg("counter %s is %llu, expected %llu", ivmon__frag_counter_name(c),
                     (unsigned long long)C[c], (unsigned long long)want[c]);
    }
}

#define END  (-1)
#define N(x) ((uint64_t)(x))

/* Session counters: pairs of (IVMON_STAT_*, value), ended by END; only those named. */
static void expect_stats(const uint64_t *st, ...)
{
    va_list ap;
    va_start(ap, st);
    for (int c; (c = va_arg(ap, int)) >= 0;) {
        uint64_t want = va_arg(ap, uint64_t);
        if (st[c] != want)
            fail_msg("stat %s is %llu, expected %llu", ivmon_stat_name((unsigned)c),
                     (unsigned long long)st[c], (unsigned long long)want);
    }
    va_end(ap);
}

static int feed(struct ivmon_frag *f, unsigned vcpu, const struct cut *c, unsigned i, uint64_t now,
                const void **rec, size_t *len)
{
    return ivmon__frag_feed(f, vcpu, c->hdr[i], c->w[i], now, rec, len);
}

/* Feeds fragments [from, to) of c on vcpu; returns the record if the last one completed it. */
static const void *feed_range(struct ivmon_frag *f, unsigned vcpu, const struct cut *c,
                              unsigned from, unsigned to, size_t *ret_len)
{
    const void *rec = NULL;
    size_t len = 0;
    int last = -1;
    for (unsigned i = from; i < to; i++)
        last = feed(f, vcpu, c, i, 1000, &rec, &len);
    if (last != IVMON_FRAG_RECORD)
        return NULL;
    *ret_len = len;
    return rec;
}

static struct ivmon_frag *new_frag(unsigned vcpus, unsigned words, uint32_t stall, uint64_t exp)
{
    struct ivmon_frag *f = NULL;
    struct ivmon_frag_limits l = {.stall_fragments = stall, .expire_ns = exp};
    assert_int_equal(ivmon__frag_new(&f, vcpus, words, &l), 0);
    assert_non_null(f);
    return f;
}

/* ---- the encoder ---------------------------------------------------------------------------- */

static void test_crc32c(void **state)
{
    assert_int_equal(ivmon_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(ivmon_crc32c(0, "", 0), 0);
    /* chained = whole */
    assert_int_equal(ivmon_crc32c(ivmon_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
    uint8_t b[8] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
    assert_int_equal(ivmon_crc32c_u64(7, 0x1122334455667788ull), ivmon_crc32c(7, b, 8));
}

/* A 40-byte heartbeat, seq 1, time 1700000000000000000, produced 1, dropped 0: the worked
 * example of docs/PROTOCOL.md. Values from the independent Python encoder. */
static void test_golden_heartbeat(void **state)
{
    struct {
        struct ivmon_rec_hdr h;
        struct ivmon_rec_heartbeat b;
    } hb = {{IVMON_REC_HEARTBEAT, 0, 40, 1, 1700000000000000000ull}, {1, 0}};
    assert_int_equal(ivmon_crc32c(0, &hb, sizeof hb), 0x082c6470u);

    cut_record(&A, &hb, sizeof hb, 7);
    assert_int_equal(A.n, 1);
    assert_int_equal(A.hdr[0], 0xf1380802800076a4ull);
    static const uint64_t w7[7] = {0x0000002800000004ull, 1, 0x17979cfe362a0000ull, 1, 0,
                                   0x00000000082c6470ull, 0};
    assert_memory_equal(A.w[0], w7, sizeof w7);

    cut_record(&A, &hb, sizeof hb, 2);
    assert_int_equal(A.n, 3);
    assert_int_equal(A.hdr[0], 0xf11008028000b00dull);
    assert_int_equal(A.hdr[1], 0xf1100802800158d7ull);
    assert_int_equal(A.hdr[2], 0xf110080280020f83ull);
    assert_int_equal(A.w[2][1], 0x00000000082c6470ull);

    /* the fields read back */
    uint64_t h = A.hdr[1];
    assert_int_equal(IVMON_FRAG_FIELD(h, MAGIC), IVMON_FRAG_MAGIC);
    assert_int_equal(IVMON_FRAG_FIELD(h, WORDS), 2);
    assert_int_equal(IVMON_FRAG_FIELD(h, TAG), 1);
    assert_int_equal(IVMON_FRAG_FIELD(h, LEN), 40);
    assert_int_equal(IVMON_FRAG_FIELD(h, INDEX), 1);
    assert_int_equal(IVMON_FRAG_FIELD(h, CHECK), 0x58d7);
    assert_int_equal(ivmon_frag_check(h, A.w[1], 2), 0x58d7);
}

static void test_writer_limits(void **state)
{
    struct ivmon_frag_writer w;
    rec_heartbeat(&rb, 1, 1, 0);
    assert_int_equal(ivmon_frag_writer_init(&w, &rb, 40, 0), 0);
    assert_int_equal(ivmon_frag_writer_init(&w, &rb, 40, 16), 0);
    assert_int_equal(ivmon_frag_writer_init(&w, &rb, 23, 7), 0);
    assert_int_equal(ivmon_frag_writer_init(&w, &rb, IVMON_REC_MAX + 1, 7), 0);
    assert_int_equal(ivmon_frag_writer_init(&w, &rb, IVMON_REC_MAX, 1), IVMON_FRAG_COUNT_MAX);
    assert_int_equal(ivmon_frag_count(24, 1), 4);      /* 28 bytes */
    assert_int_equal(ivmon_frag_count(52, 7), 1);      /* 56 bytes: exactly one */
    assert_int_equal(ivmon_frag_count(53, 7), 2);      /* one byte over */
    assert_int_equal(ivmon_frag_count(16384, 7), 293); /* 16388 / 56 */
}

/* ---- the reassembler: good streams ---------------------------------------------------------- */

static void test_new_arguments(void **state)
{
    struct ivmon_frag *f = (struct ivmon_frag *)&rb;
    struct ivmon_frag_limits bad_small = {.max_record = 23}, bad_big = {.max_record = 16385};
    assert_int_equal(ivmon__frag_new(&f, 0, 7, NULL), -EINVAL);
    assert_int_equal(ivmon__frag_new(&f, IVMON_FRAG_VCPUS_MAX + 1, 7, NULL), -EINVAL);
    assert_int_equal(ivmon__frag_new(&f, 1, 0, NULL), -EINVAL);
    assert_int_equal(ivmon__frag_new(&f, 1, 16, NULL), -EINVAL);
    assert_int_equal(ivmon__frag_new(&f, 1, 7, &bad_small), -EINVAL);
    assert_int_equal(ivmon__frag_new(&f, 1, 7, &bad_big), -EINVAL);
    assert_ptr_equal(f, (struct ivmon_frag *)&rb);
    assert_int_equal(ivmon__frag_new(&f, 3, 5, NULL), 0);
    assert_int_equal(ivmon__frag_vcpus(f), 3);
    assert_int_equal(ivmon__frag_words(f), 5);
    ivmon__frag_free(f);
    ivmon__frag_free(NULL);
}

/* Every K, lengths around every fragment boundary and the extremes: each record comes out whole
 * on its last fragment, and only then. */
static void test_round_trips(void **state)
{
    static const size_t lens[] = {24,  40,   52,   53,   65,   100,   111,   112,  113,
                                  200, 1000, 4096, 4200, 8191, 12345, 16383, 16384};
    uint64_t seq = 1;
    for (unsigned k = IVMON_FRAG_WORDS_MIN; k <= IVMON_FRAG_WORDS_MAX; k++) {
        struct ivmon_frag *f = new_frag(2, k, 0, 0);
        uint64_t started = 0, frags = 0;
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t len = lens[i];
            if (len < 80) {
                rec_header(&rb, IVMON_REC_HEARTBEAT, seq, len - sizeof(struct ivmon_rec_hdr));
                memset(rec_body(&rb), 0x5a, len - sizeof(struct ivmon_rec_hdr));
            } else {
                file_of_len(&rb, seq, len);
            }
            cut_record(&A, &rb, len, k);
            for (unsigned vcpu = 0; vcpu < 2; vcpu++) {
                const void *rec = NULL;
                size_t got = 0;
                for (unsigned j = 0; j < A.n; j++) {
                    int r = feed(f, vcpu, &A, j, 5, &rec, &got);
                    assert_int_equal(r, j + 1 < A.n ? IVMON_FRAG_TAKEN : IVMON_FRAG_RECORD);
                }
                assert_int_equal(got, len);
                assert_memory_equal(rec, &rb, len);
                assert_true(((uintptr_t)rec & 7) == 0);
                started++;
                frags += A.n;
            }
            seq++;
        }
        expect_counters(f, 0, IVMON_FRAG_C_FRAGMENTS, N(frags), IVMON_FRAG_C_TAKEN, N(frags),
                        IVMON_FRAG_C_STARTED, N(started), IVMON_FRAG_C_COMPLETE, N(started), END);
        ivmon__frag_free(f);
    }
}

/* Records on different vCPUs interleave fragment by fragment and both complete. */
static void test_vcpus_interleave(void **state)
{
    struct ivmon_frag *f = new_frag(4, 2, 0, 0);
    size_t la = file_of_len(&rb, 10, 300), lb = file_of_len(&rb2, 11, 4500);
    cut_record(&A, &rb, la, 2);
    cut_record(&B, &rb2, lb, 2);
    const void *ra = NULL, *rbk = NULL, *rec;
    size_t len, na = 0, nb = 0;
    for (unsigned i = 0; i < B.n; i++) {
        if (i < A.n && feed(f, 3, &A, i, 1, &rec, &len) == IVMON_FRAG_RECORD) {
            ra = rec;
            na = len;
        }
        if (feed(f, 0, &B, i, 1, &rec, &len) == IVMON_FRAG_RECORD) {
            rbk = rec;
            nb = len;
        }
    }
    assert_int_equal(na, la);
    assert_memory_equal(ra, &rb, la);
    assert_int_equal(nb, lb);
    assert_memory_equal(rbk, &rb2, lb);
    expect_counters(f, 0, IVMON_FRAG_C_STARTED, N(2), IVMON_FRAG_C_COMPLETE, N(2),
                    IVMON_FRAG_C_FRAGMENTS, N(A.n + B.n), IVMON_FRAG_C_TAKEN, N(A.n + B.n), END);
    ivmon__frag_free(f);
}

/* ---- the reassembler: damage ---------------------------------------------------------------- */

/* Fragments refused on their own, each with a valid check where the field is what is wrong, so
 * the field check is what refuses it. None touches the record in progress. */
static void test_refused_fragments(void **state)
{
    struct ivmon_frag *f = new_frag(1, 7, 1000, 0);
    const void *rec = NULL;
    size_t len = 0;
    uint64_t w[IVMON_FRAG_WORDS_MAX] = {1, 2, 3, 4, 5, 6, 7};
    size_t l = file_of_len(&rb, 5, 400);
    cut_record(&A, &rb, l, 7);
    assert_int_equal(feed(f, 0, &A, 0, 1, &rec, &len), IVMON_FRAG_TAKEN);

    /* not fragments at all */
    assert_int_equal(ivmon__frag_feed(f, 0, 0, w, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(ivmon__frag_feed(f, 0, ~0ull, w, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(ivmon__frag_feed(f, 0, A.hdr[1] ^ (1ull << 60), A.w[1], 1, &rec, &len),
                     IVMON_FRAG_DROPPED);
    /* damaged: a payload bit, a header bit (in len), the check itself */
    uint64_t dw[IVMON_FRAG_WORDS_MAX];
    memcpy(dw, A.w[1], sizeof dw);
    dw[6] ^= 1ull << 33;
    assert_int_equal(ivmon__frag_feed(f, 0, A.hdr[1], dw, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(ivmon__frag_feed(f, 0, A.hdr[1] ^ (1ull << 30), A.w[1], 1, &rec, &len),
                     IVMON_FRAG_DROPPED);
    assert_int_equal(ivmon__frag_feed(f, 0, A.hdr[1] ^ 1, A.w[1], 1, &rec, &len),
                     IVMON_FRAG_DROPPED);
    /* well checked, wrong fields: K, lengths out of range, index beyond the record, reserved */
    uint64_t bad[] = {
        ivmon_frag_header(2, 400, 5, 1, w),   /* K = 2 on a K = 7 transport */
        ivmon_frag_header(7, 23, 5, 0, w),    /* shorter than a record header */
        ivmon_frag_header(7, 16385, 5, 0, w), /* longer than IVMON_REC_MAX */
        ivmon_frag_header(7, 32767, 5, 1, w), /* the field's maximum */
        ivmon_frag_header(7, 400, 5, 8, w),   /* 404 bytes are 8 fragments: index 8 is past */
        ivmon_frag_header(7, 400, 5, 4095, w),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ivmon__frag_feed(f, 0, bad[i], w, 1, &rec, &len), IVMON_FRAG_DROPPED);
    uint64_t r = (A.hdr[1] | 1ull << IVMON_FRAG_RESERVED_SHIFT) & ~0xffffull;
    r |= ivmon_frag_check(r, A.w[1], 7);
    assert_int_equal(ivmon__frag_feed(f, 0, r, A.w[1], 1, &rec, &len), IVMON_FRAG_DROPPED);

    /* the record in progress is unharmed and completes */
    const void *done = feed_range(f, 0, &A, 1, A.n, &len);
    assert_non_null(done);
    assert_memory_equal(done, &rb, l);
    expect_counters(f, 0, IVMON_FRAG_C_BAD_MAGIC, N(3), IVMON_FRAG_C_BAD_CHECK, N(3),
                    IVMON_FRAG_C_BAD_FIELD, N(7), IVMON_FRAG_C_STARTED, N(1), IVMON_FRAG_C_COMPLETE,
                    N(1), IVMON_FRAG_C_TAKEN, N(A.n), IVMON_FRAG_C_FRAGMENTS, N(A.n + 13), END);
    ivmon__frag_free(f);
}

/* A record of the largest length whose fragments claim the field's largest length: without the
 * bound on len the reassembler would write past the vCPU's buffer (ASan catches it). */
static void test_length_bound_protects_buffer(void **state)
{
    struct ivmon_frag *f = new_frag(1, 1, 0, 0);
    uint64_t w[1] = {0};
    const void *rec = NULL;
    size_t len = 0;
    unsigned count = ivmon_frag_count(32767, 1);
    for (unsigned i = 0; i < count; i++)
        assert_int_equal(
            ivmon__frag_feed(f, 0, ivmon_frag_header(1, 32767, 0, i, w), w, 1, &rec, &len),
            IVMON_FRAG_DROPPED);
    expect_counters(f, 0, IVMON_FRAG_C_BAD_FIELD, N(count), IVMON_FRAG_C_FRAGMENTS, N(count), END);
    /* and the real maximum goes through with one word a fragment: 2049 of them */
    file_of_len(&rb, 7, IVMON_REC_MAX);
    cut_record(&A, &rb, IVMON_REC_MAX, 1);
    assert_int_equal(A.n, IVMON_FRAG_COUNT_MAX);
    const void *done = feed_range(f, 0, &A, 0, A.n, &len);
    assert_non_null(done);
    assert_int_equal(len, IVMON_REC_MAX);
    assert_memory_equal(done, &rb, IVMON_REC_MAX);
    ivmon__frag_free(f);

    /* a smaller limit given at creation is a limit too */
    struct ivmon_frag *g = NULL;
    struct ivmon_frag_limits lim = {.max_record = 1024};
    assert_int_equal(ivmon__frag_new(&g, 1, 7, &lim), 0);
    file_of_len(&rb, 8, 1025);
    cut_record(&A, &rb, 1025, 7);
    assert_null(feed_range(g, 0, &A, 0, A.n, &len));
    expect_counters(g, 0, IVMON_FRAG_C_BAD_FIELD, N(A.n), IVMON_FRAG_C_FRAGMENTS, N(A.n), END);
    ivmon__frag_free(g);
}

static void test_orphans_strays_duplicates(void **state)
{
    struct ivmon_frag *f = new_frag(2, 2, 1000, 0);
    const void *rec = NULL;
    size_t len = 0, la = 200, lb = 200;
    two_records(20, 200, 2);

    /* continuations with nothing begun: orphans */
    assert_int_equal(feed(f, 0, &A, 1, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(feed(f, 0, &A, A.n - 1, 1, &rec, &len), IVMON_FRAG_DROPPED);
    /* A begins on vCPU 0; B's continuations (same length, other tag) are strays */
    assert_int_equal(feed(f, 0, &A, 0, 1, &rec, &len), IVMON_FRAG_TAKEN);
    assert_int_equal(feed(f, 0, &B, 1, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(feed(f, 0, &B, 2, 1, &rec, &len), IVMON_FRAG_DROPPED);
    /* duplicates: fragment 1 twice, fragment 0 replayed */
    assert_int_equal(feed(f, 0, &A, 1, 1, &rec, &len), IVMON_FRAG_TAKEN);
    assert_int_equal(feed(f, 0, &A, 1, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(feed(f, 0, &A, 0, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_int_equal(feed(f, 0, &A, 1, 1, &rec, &len), IVMON_FRAG_DROPPED);
    /* B on vCPU 1 is not disturbed by any of that */
    const void *done = feed_range(f, 1, &B, 0, B.n, &len);
    assert_non_null(done);
    assert_memory_equal(done, &rb2, lb);
    /* A completes */
    done = feed_range(f, 0, &A, 2, A.n, &len);
    assert_non_null(done);
    assert_memory_equal(done, &rb, la);
    /* the whole of B replayed on vCPU 1 right after: the first fragment is known as a duplicate,
     * the rest are orphans, and nothing is delivered twice */
    assert_null(feed_range(f, 1, &B, 0, B.n, &len));
    expect_counters(f, 0, IVMON_FRAG_C_ORPHAN, N(2 + B.n - 1), IVMON_FRAG_C_STRAY, N(2),
                    IVMON_FRAG_C_DUPLICATE, N(4), IVMON_FRAG_C_STARTED, N(2), IVMON_FRAG_C_COMPLETE,
                    N(2), IVMON_FRAG_C_TAKEN, N(A.n + B.n), END);
    ivmon__frag_free(f);
}

/* A record of a single fragment replayed must not come out twice. */
static void test_single_fragment_replay(void **state)
{
    struct ivmon_frag *f = new_frag(1, 7, 0, 0);
    const void *rec = NULL;
    size_t len = 0;
    rec_heartbeat(&rb, 3, 3, 0);
    cut_record(&A, &rb, 40, 7);
    assert_int_equal(A.n, 1);
    assert_int_equal(feed(f, 0, &A, 0, 1, &rec, &len), IVMON_FRAG_RECORD);
    assert_int_equal(feed(f, 0, &A, 0, 1, &rec, &len), IVMON_FRAG_DROPPED);
    /* the next heartbeat is a new record */
    rec_heartbeat(&rb, 4, 4, 0);
    cut_record(&A, &rb, 40, 7);
    assert_int_equal(feed(f, 0, &A, 0, 1, &rec, &len), IVMON_FRAG_RECORD);
    expect_counters(f, 0, IVMON_FRAG_C_DUPLICATE, N(1), IVMON_FRAG_C_STARTED, N(2),
                    IVMON_FRAG_C_COMPLETE, N(2), IVMON_FRAG_C_FRAGMENTS, N(3), IVMON_FRAG_C_TAKEN,
                    N(2), END);
    ivmon__frag_free(f);
}

/* Records that begin and cannot end: a missing fragment, a new record first, a record that
 * migrated to another vCPU half-way. */
static void test_damaged_records(void **state)
{
    struct ivmon_frag *f = new_frag(2, 3, 1000, 0);
    const void *rec = NULL;
    size_t len = 0, lb = 500;
    two_records(30, 500, 3);
    assert_true(A.n >= 6);

    /* gap: 0, 1, 3: the record is given up at 3, and 3.. are orphans */
    assert_null(feed_range(f, 0, &A, 0, 2, &len));
    assert_int_equal(feed(f, 0, &A, 3, 1, &rec, &len), IVMON_FRAG_DROPPED);
    assert_null(feed_range(f, 0, &A, 4, A.n, &len));
    /* superseded: A begins, B begins before A ends; B completes */
    assert_null(feed_range(f, 0, &A, 0, 3, &len));
    const void *done = feed_range(f, 0, &B, 0, B.n, &len);
    assert_non_null(done);
    assert_memory_equal(done, &rb2, lb);
    /* migrated: A's first half on vCPU 0, second half on vCPU 1 (orphans there); vCPU 0's half
     * record is superseded when the next record begins there */
    assert_null(feed_range(f, 0, &A, 0, 2, &len));
    assert_null(feed_range(f, 1, &A, 2, A.n, &len));
    done = feed_range(f, 0, &B, 0, B.n, &len);
    assert_non_null(done);
    expect_counters(f, 0, IVMON_FRAG_C_GAP, N(1), IVMON_FRAG_C_SUPERSEDED, N(2),
                    IVMON_FRAG_C_ORPHAN, N(1 + (A.n - 4) + (A.n - 2)), IVMON_FRAG_C_STARTED, N(5),
                    IVMON_FRAG_C_COMPLETE, N(2), END);
    ivmon__frag_free(f);
}

/* Fragments that pass every fragment check but make a record that does not: the trailer is not
 * the record's CRC, the padding is not zero, the tag is not the seq's low byte. Built by hand,
 * each fragment with a correct check, as a producer with a broken encoder would send them. */
static void send_stream(struct ivmon_frag *f, const uint8_t *stream, uint32_t reclen, uint32_t tag,
                        unsigned k, int *last)
{
    const void *rec = NULL;
    size_t len = 0;
    unsigned n = ivmon_frag_count(reclen, k);
    for (unsigned i = 0; i < n; i++) {
        uint64_t w[IVMON_FRAG_WORDS_MAX];
        memcpy(w, stream + (size_t)i * k * 8, (size_t)k * 8);
        *last = ivmon__frag_feed(f, 0, ivmon_frag_header(k, reclen, tag, i, w), w, 1, &rec, &len);
    }
}

static void test_bad_records(void **state)
{
    static uint8_t stream[IVMON_REC_MAX + 256];
    struct ivmon_frag *f = new_frag(1, 4, 0, 0);
    int last = 0;
    size_t l = file_of_len(&rb, 0x141, 333);
    unsigned k = 4, n = ivmon_frag_count((uint32_t)l, k);
    uint32_t crc = ivmon_crc32c(0, &rb, (uint32_t)l);

    /* the honest stream, and its trailer wrong */
    memset(stream, 0, sizeof stream);
    memcpy(stream, &rb, l);
    memcpy(stream + l, &crc, 4);
    stream[l + 2] ^= 0x10;
    send_stream(f, stream, (uint32_t)l, 0x41, k, &last);
    assert_int_equal(last, IVMON_FRAG_DROPPED);
    stream[l + 2] ^= 0x10;
    /* a record byte changed after the CRC was made (every fragment check still right) */
    stream[100] ^= 1;
    send_stream(f, stream, (uint32_t)l, 0x41, k, &last);
    assert_int_equal(last, IVMON_FRAG_DROPPED);
    stream[100] ^= 1;
    /* non-zero padding */
    assert_true((size_t)n * k * 8 > l + 4);
    stream[(size_t)n * k * 8 - 1] = 0xee;
    send_stream(f, stream, (uint32_t)l, 0x41, k, &last);
    assert_int_equal(last, IVMON_FRAG_DROPPED);
    stream[(size_t)n * k * 8 - 1] = 0;
    /* tag that is not the seq's low byte */
    send_stream(f, stream, (uint32_t)l, 0x42, k, &last);
    assert_int_equal(last, IVMON_FRAG_DROPPED);
    /* and the honest stream goes through */
    send_stream(f, stream, (uint32_t)l, 0x41, k, &last);
    assert_int_equal(last, IVMON_FRAG_RECORD);
    expect_counters(f, 0, IVMON_FRAG_C_BAD_RECORD, N(4), IVMON_FRAG_C_STARTED, N(5),
                    IVMON_FRAG_C_COMPLETE, N(1), IVMON_FRAG_C_FRAGMENTS, N(5 * n),
                    IVMON_FRAG_C_TAKEN, N(5 * n), END);
    ivmon__frag_free(f);
}

/* A producer that never finishes: endless duplicates are cut off after stall_fragments; silence
 * is cut off by time, on the vCPU's next fragment or by the sweep. */
static void test_expiry(void **state)
{
    struct ivmon_frag *f = new_frag(2, 7, 10, 1000000);
    const void *rec = NULL;
    size_t len = 0, l = file_of_len(&rb, 40, 4000);
    cut_record(&A, &rb, l, 7);

    /* stall: 0, 1 then the same fragment 1 over and over; the 10th is the last straw, the ones
     * after it are orphans (nothing in progress any more) */
    assert_null(feed_range(f, 0, &A, 0, 2, &len));
    for (int i = 0; i < 15; i++)
        assert_int_equal(feed(f, 0, &A, 1, 1000, &rec, &len), IVMON_FRAG_DROPPED);
    expect_counters(f, 0, IVMON_FRAG_C_DUPLICATE, N(10), IVMON_FRAG_C_ORPHAN, N(5),
                    IVMON_FRAG_C_EXPIRED, N(1), IVMON_FRAG_C_STARTED, N(1), END);
    /* refused words count as stalls too */
    uint64_t junk[7] = {0};
    assert_null(feed_range(f, 0, &A, 0, 2, &len));
    for (int i = 0; i < 10; i++)
        ivmon__frag_feed(f, 0, 0x1234, junk, 1000, &rec, &len);
    expect_counters(f, 0, IVMON_FRAG_C_DUPLICATE, N(10), IVMON_FRAG_C_ORPHAN, N(5),
                    IVMON_FRAG_C_BAD_MAGIC, N(10), IVMON_FRAG_C_EXPIRED, N(2), IVMON_FRAG_C_STARTED,
                    N(2), END);

    /* time: fragment 2 comes 1 ms + 1 ns after fragment 1 (fed at time 1000) */
    assert_null(feed_range(f, 0, &A, 0, 2, &len));
    assert_int_equal(feed(f, 0, &A, 2, 1000 + 1000001, &rec, &len), IVMON_FRAG_DROPPED);
    /* exactly 1 ms later is still in time */
    assert_null(feed_range(f, 1, &A, 0, 2, &len));
    assert_int_equal(feed(f, 1, &A, 2, 1000 + 1000000, &rec, &len), IVMON_FRAG_TAKEN);
    /* the sweep gives up vCPU 1's record once it is stale, and only then */
    assert_int_equal(ivmon__frag_expire(f, 1000 + 2000000), 0);
    assert_int_equal(ivmon__frag_expire(f, 1000 + 2000001), 1);
    assert_int_equal(ivmon__frag_expire(f, 1000 + 9000000), 0);
    expect_counters(f, 0, IVMON_FRAG_C_DUPLICATE, N(10), IVMON_FRAG_C_ORPHAN, N(6),
                    IVMON_FRAG_C_BAD_MAGIC, N(10), IVMON_FRAG_C_EXPIRED, N(4), IVMON_FRAG_C_STARTED,
                    N(4), END);
    ivmon__frag_free(f);

    /* expire_ns 0: never by time */
    f = new_frag(1, 7, 0, 0);
    assert_null(feed_range(f, 0, &A, 0, 2, &len));
    assert_int_equal(ivmon__frag_expire(f, UINT64_MAX), 0);
    assert_non_null(feed_range(f, 0, &A, 2, A.n, &len));
    ivmon__frag_free(f);
}

static void test_invalid_traps_and_vcpu_bound(void **state)
{
    struct ivmon_frag *f = new_frag(2, 7, 3, 0);
    const void *rec = (const void *)&rb;
    size_t len = 77;
    rec_heartbeat(&rb2, 9, 9, 0);
    cut_record(&A, &rb2, 40, 7);
    /* a vCPU index out of range is the caller's bug: -EINVAL, nothing counted, nothing written */
    assert_int_equal(feed(f, 2, &A, 0, 1, &rec, &len), -EINVAL);
    assert_int_equal(feed(f, 1u << 31, &A, 0, 1, &rec, &len), -EINVAL);
    assert_int_equal(ivmon__frag_feed_invalid(f, 2, 1), -EINVAL);
    ivmon__frag_note_overrun(f, 2);
    assert_ptr_equal(rec, &rb);
    assert_int_equal(len, 77);
    expect_counters(f, 0, IVMON_FRAG_C_FRAGMENTS, N(0), END);
    /* traps that cannot carry a fragment stall a record in progress like any refused one */
    size_t l = file_of_len(&rb, 50, 300);
    cut_record(&B, &rb, l, 7);
    assert_null(feed_range(f, 1, &B, 0, 1, &len));
    for (int i = 0; i < 3; i++)
        assert_int_equal(ivmon__frag_feed_invalid(f, 1, 1), 0);
    ivmon__frag_note_overrun(f, 1);
    expect_counters(f, 0, IVMON_FRAG_C_BAD_ACCESS, N(3), IVMON_FRAG_C_EXPIRED, N(1),
                    IVMON_FRAG_C_STARTED, N(1), IVMON_FRAG_C_OVERRUN, N(1), END);
    uint64_t stats[IVMON_STAT_MAX + 1] = {0};
    ivmon__frag_fold_stats(f, stats);
    expect_stats(stats, IVMON_STAT_FRAGMENTS, N(4), IVMON_STAT_FRAG_REJECTED, N(3),
                 IVMON_STAT_FRAG_EXPIRED, N(1), IVMON_STAT_OVERRUNS, N(1), IVMON_STAT_FRAG_DAMAGED,
                 N(0), END);
    for (unsigned c = 0; c < IVMON_FRAG_C_MAX; c++)
        assert_non_null(ivmon__frag_counter_name(c));
    assert_null(ivmon__frag_counter_name(IVMON_FRAG_C_MAX));
    ivmon__frag_free(f);
}

/* ---- into a session: the accounting identity ------------------------------------------------ */

static unsigned delivered_files;
static char last_path[IVMON_PATH_MAX + 1];

static int on_file(ivmon *m, const ivmon_event *ev, void *userdata)
{
    delivered_files++;
    snprintf(last_path, sizeof last_path, "%s", ivmon_event_path(ev));
    return 0;
}

static void send_all(ivmon *m, struct ivmon_frag *f, unsigned vcpu, const struct cut *c,
                     unsigned from, unsigned to, int want_last)
{
    int r = 0;
    for (unsigned i = from; i < to; i++)
        r = ivmon__frag_feed_ingest(m, f, vcpu, c->hdr[i], c->w[i], 1);
    assert_int_equal(r, want_last);
}

/* Records destroyed in transit are counted as missed once a later record arrives, malformed
 * records as malformed: delivered + lost + malformed + missed == seq_span, exactly. */
static void test_ingest_accounting(void **state)
{
    ivmon *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->event.source = "unit:";
    m->handlers[IVMON_EVENT_FILE].fn = on_file;
    struct ivmon_frag *f = new_frag(2, 2, 0, 0);

    size_t l = rec_hello(&rb, 1);
    cut_record(&A, &rb, l, 2);
    send_all(m, f, 0, &A, 0, A.n, 1);
    l = file_of_len(&rb, 2, 4200);
    cut_record(&A, &rb, l, 2);
    send_all(m, f, 1, &A, 0, A.n, 1);
    assert_int_equal(delivered_files, 1);
    assert_int_equal(strlen(last_path), 4096);
    /* seq 3 loses a fragment, seq 4 is cut short by seq 5 */
    l = file_of_len(&rb, 3, 300);
    cut_record(&A, &rb, l, 2);
    unsigned n3 = A.n;
    send_all(m, f, 0, &A, 0, 3, 0);
    send_all(m, f, 0, &A, 4, A.n, 0);
    l = file_of_len(&rb, 4, 300);
    cut_record(&A, &rb, l, 2);
    send_all(m, f, 1, &A, 0, 5, 0);
    l = rec_file(&rb, 5, IVMON_OP_CREATE, "/five", NULL);
    cut_record(&A, &rb, l, 2);
    send_all(m, f, 1, &A, 0, A.n, 1);
    assert_string_equal(last_path, "/five");
    /* seq 6 arrives whole but is not a valid record (unknown op): malformed */
    l = rec_file(&rb, 6, 99, "/six", NULL);
    cut_record(&A, &rb, l, 2);
    send_all(m, f, 0, &A, 0, A.n, 0);
    l = rec_heartbeat(&rb, 7, 7, 0);
    cut_record(&A, &rb, l, 2);
    send_all(m, f, 0, &A, 0, A.n, 1);

    uint64_t *st = m->stats;
    ivmon__frag_fold_stats(f, st);
    expect_stats(st, IVMON_STAT_DELIVERED, N(4), IVMON_STAT_MALFORMED, N(1), IVMON_STAT_MISSED,
                 N(2), IVMON_STAT_LOST, N(0), IVMON_STAT_SEQ_SPAN, N(7), END);
    assert_int_equal(st[IVMON_STAT_DELIVERED] + st[IVMON_STAT_LOST] + st[IVMON_STAT_MALFORMED] +
                         st[IVMON_STAT_MISSED],
                     st[IVMON_STAT_SEQ_SPAN]);
    /* unmatched: the fragment after the gap and the rest of seq 3 */
    expect_stats(st, IVMON_STAT_FRAG_DAMAGED, N(2), IVMON_STAT_FRAG_UNMATCHED, N(1 + (n3 - 5)),
                 IVMON_STAT_RECORDS, N(5), END);
    /* a vCPU out of range */
    assert_int_equal(ivmon__frag_feed_ingest(m, f, 2, A.hdr[0], A.w[0], 1), -EINVAL);
    ivmon__frag_free(f);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_golden_heartbeat),
        cmocka_unit_test(test_writer_limits),
        cmocka_unit_test(test_new_arguments),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_vcpus_interleave),
        cmocka_unit_test(test_refused_fragments),
        cmocka_unit_test(test_length_bound_protects_buffer),
        cmocka_unit_test(test_orphans_strays_duplicates),
        cmocka_unit_test(test_single_fragment_replay),
        cmocka_unit_test(test_damaged_records),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_invalid_traps_and_vcpu_bound),
        cmocka_unit_test(test_ingest_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
