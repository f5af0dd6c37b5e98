/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the register-fragment reassembler (src/fragment.c) and the record path behind it.
 * The fuzzer plays a guest with several vCPUs and owns every word of every trap. Whatever it
 * sends, the reassembler only hands on records of 24..IVMON_REC_MAX bytes inside its buffers,
 * each fragment gets exactly one fate and each record begun exactly one end (fragment.h's
 * identities), at most one record per vCPU is in progress, and everything completed goes through
 * the session's real ingest (decode, sequence accounting, dispatch).
 *
 * Input: byte 0 picks K (1..15), byte 1 the vCPU count (1..4), byte 2 the mode (bit 0: repair
 * the magic, K and check of raw fragments, so that mutations reach the record logic). Then ops,
 * each an op byte and its operands:
 *   0 raw trap:    vcpu byte, header word (8), K payload words (8 each)
 *   1 a record:    vcpu byte, length (2, LE), drop (1), dup (1), then that many record bytes:
 *                  cut with the guest encoder and fed in order, except fragment `drop` is left
 *                  out and fragment `dup` sent twice (indexes past the end do nothing)
 *   2 time passes: nanoseconds (4, LE)
 *   3 bad trap:    vcpu byte (a trap that cannot carry a fragment)
 *   4 sweep:       ivmon__frag_expire
 * The vcpu byte is taken modulo (vcpus + 1), so out-of-range indexes are tried too.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fragment.h"
#include "fuzz_session.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ivmon *session;

struct input {
    const uint8_t *p;
    size_t left;
};

static int take(struct input *in, void *dst, size_t n)
{
    if (in->left < n)
        return 0;
    memcpy(dst, in->p, n);
    in->p += n;
    in->left -= n;
    return 1;
}

static size_t completed; /* records the reassembler handed on */

/* One trap through the reassembler; a completed record goes to the session. */
static void trap(struct ivmon_frag *f, unsigned vcpu, uint64_t hdr, const uint64_t *w, uint64_t now)
{
    const void *rec = NULL;
    size_t len = 0;
    int r = ivmon__frag_feed(f, vcpu, hdr, w, now, &rec, &len);
    if (vcpu >= ivmon__frag_vcpus(f)) {
        assert(r == -EINVAL);
        return;
    }
    assert(r == IVMON_FRAG_TAKEN || r == IVMON_FRAG_RECORD || r == IVMON_FRAG_DROPPED);
    if (r != IVMON_FRAG_RECORD)
        return;
    assert(len >= IVMON_FRAG_REC_MIN && len <= IVMON_REC_MAX && ((uintptr_t)rec & 7) == 0);
    completed++;
    /* a copy of exactly len bytes: a read past the record is an ASan report */
    uint8_t *copy = malloc(len);
    memcpy(copy, rec, len);
    assert(ivmon__ingest(session, copy, len) >= 0);
    free(copy);
}

static void raw_trap(struct ivmon_frag *f, struct input *in, unsigned vcpus, int repair,
                     uint64_t now)
{
    uint8_t v;
    uint64_t hdr, w[IVMON_FRAG_WORDS_MAX] = {0};
    unsigned k = ivmon__frag_words(f);
    if (!take(in, &v, 1) || !take(in, &hdr, 8) || !take(in, w, (size_t)k * 8))
        return;
    if (repair) {
        hdr &=
            ~((0xffull << IVMON_FRAG_MAGIC_SHIFT) | (0xfull << IVMON_FRAG_WORDS_SHIFT) | 0xffffull);
        hdr |= (uint64_t)IVMON_FRAG_MAGIC << IVMON_FRAG_MAGIC_SHIFT | (uint64_t)k
                                                                          << IVMON_FRAG_WORDS_SHIFT;
        hdr |= ivmon_frag_check(hdr, w, k);
    }
    trap(f, v % (vcpus + 1), hdr, w, now);
}

static void record_traps(struct ivmon_frag *f, struct input *in, unsigned vcpus, uint64_t now)
{
    static uint8_t rec[IVMON_REC_MAX];
    uint8_t v, drop, dup;
    uint16_t len;
    if (!take(in, &v, 1) || !take(in, &len, 2) || !take(in, &drop, 1) || !take(in, &dup, 1))
        return;
    if (len > IVMON_REC_MAX || !take(in, rec, len))
        return;
    struct ivmon_frag_writer w;
    uint64_t hdr, words[IVMON_FRAG_WORDS_MAX];
    if (!ivmon_frag_writer_init(&w, rec, len, ivmon__frag_words(f)))
        return;
    for (unsigned i = 0; ivmon_frag_writer_next(&w, &hdr, words); i++) {
        if (i == drop)
            continue;
        trap(f, v % (vcpus + 1), hdr, words, now);
        if (i == dup)
            trap(f, v % (vcpus + 1), hdr, words, now);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    if (!session) {
        session = calloc(1, sizeof *session);
        session->event.source = "fuzz:";
        session->handlers[IVMON_EVENT_ANY].fn = count;
    }
    /* A fresh session each time: no state carried between inputs. */
    memset(session->stats, 0, sizeof session->stats);
    session->have_seq = 0;
    session->span_closed = 0;
    delivered = completed = 0;

    unsigned k = 1 + data[0] % IVMON_FRAG_WORDS_MAX, vcpus = 1 + data[1] % 4;
    int repair = data[2] & 1;
    struct ivmon_frag *f = NULL;
    struct ivmon_frag_limits lim = {.stall_fragments = 1 + data[2] / 2, .expire_ns = 1000000};
    assert(ivmon__frag_new(&f, vcpus, k, &lim) == 0);

    struct input in = {data + 3, size - 3};
    uint64_t now = 1;
    uint8_t op;
    while (take(&in, &op, 1)) {
        uint8_t v;
        uint32_t dt;
        switch (op % 5) {
        case 0:
            raw_trap(f, &in, vcpus, repair, now);
            break;
        case 1:
            record_traps(f, &in, vcpus, now);
            break;
        case 2:
            if (take(&in, &dt, 4))
                now += dt;
            break;
        case 3:
            if (take(&in, &v, 1))
                assert(ivmon__frag_feed_invalid(f, v % (vcpus + 1), now) ==
                       (v % (vcpus + 1) < vcpus ? 0 : -EINVAL));
            break;
        default:
            assert(ivmon__frag_expire(f, now) <= vcpus);
        }
    }

    uint64_t c[IVMON_FRAG_C_MAX];
    ivmon__frag_counters(f, c);
    assert(c[IVMON_FRAG_C_FRAGMENTS] == c[IVMON_FRAG_C_BAD_MAGIC] + c[IVMON_FRAG_C_BAD_CHECK] +
                                            c[IVMON_FRAG_C_BAD_FIELD] + c[IVMON_FRAG_C_BAD_ACCESS] +
                                            c[IVMON_FRAG_C_ORPHAN] + c[IVMON_FRAG_C_STRAY] +
                                            c[IVMON_FRAG_C_DUPLICATE] + c[IVMON_FRAG_C_TAKEN]);
    uint64_t ended = c[IVMON_FRAG_C_COMPLETE] + c[IVMON_FRAG_C_GAP] + c[IVMON_FRAG_C_SUPERSEDED] +
                     c[IVMON_FRAG_C_BAD_RECORD] + c[IVMON_FRAG_C_EXPIRED];
    assert(c[IVMON_FRAG_C_STARTED] >= ended && c[IVMON_FRAG_C_STARTED] - ended <= vcpus);
    assert(c[IVMON_FRAG_C_COMPLETE] == completed);
    uint64_t *st = session->stats;
    assert(st[IVMON_STAT_RECORDS] == completed);
    assert(st[IVMON_STAT_DELIVERED] == delivered);
    assert(st[IVMON_STAT_DELIVERED] + st[IVMON_STAT_MALFORMED] == st[IVMON_STAT_RECORDS]);
    ivmon__frag_fold_stats(f, st);
    assert(st[IVMON_STAT_FRAGMENTS] == c[IVMON_FRAG_C_FRAGMENTS]);
    ivmon__frag_free(f);
    return 0;
}
