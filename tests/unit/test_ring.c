/* SPDX-License-Identifier: MIT */
/* The shared-memory ring (src/ring.c): format and attach validation, round trips with
 * wrap-around, loss accounting in drop mode, lossless mode, notification suppression, and a peer
 * that rewrites the shared indices or writes nonsense. Every ring sits in a mapping with
 * PROT_NONE guard pages on both sides, so a read or write outside it crashes the test. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "ring.h"
#include "unit_records.h"

#define PAGE 4096u
#define SIZE IVMON_RING_MIN_DATA /* most tests use the smallest ring: it wraps the most */

static struct rec_buf rb, out;

/* ---- a guarded region ------------------------------------------------------------------------ */

struct region {
    uint8_t *mapping;
    size_t mapping_size;
    uint8_t *base; /* region_size bytes, read-write, between two PROT_NONE pages */
    size_t size;
};

static void region_map(struct region *g, size_t size)
{
    g->size = size;
    g->mapping_size = PAGE + ((size + PAGE - 1) & ~(size_t)(PAGE - 1)) + PAGE;
    g->mapping = mmap(NULL, g->mapping_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->mapping != MAP_FAILED);
    g->base = g->mapping + PAGE;
    assert_int_equal(mprotect(g->base, g->mapping_size - 2 * PAGE, PROT_READ | PROT_WRITE), 0);
    /* a region smaller than its pages ends (nearly) at the guard: move it up against it,
     * keeping the header 64-byte aligned */
    g->base += ((g->mapping_size - 2 * PAGE) - size) & ~(size_t)63;
}

static void region_unmap(struct region *g)
{
    munmap(g->mapping, g->mapping_size);
}

static struct ivmon_ring_hdr *hdr_of(struct region *g)
{
    return (struct ivmon_ring_hdr *)g->base;
}

/* A formatted ring of data_size bytes with both indices at start, a consumer view and a
 * producer. */
struct ring_fx {
    struct region g;
    struct ivmon_ring_hdr *h;
    struct ivmon_ring c;
    struct ivmon_producer p;
};

static void ring_fx_init(struct ring_fx *fx, uint64_t data_size, uint64_t start, int lossless)
{
    const char *why = NULL;
    memset(fx, 0, sizeof *fx);
    region_map(&fx->g, IVMON_RING_HDR_SIZE + data_size);
    fx->h = hdr_of(&fx->g);
    assert_int_equal(ivmon_ring_format(fx->g.base, fx->g.size, lossless ? IVMON_RING_LOSSLESS : 0),
                     0);
    fx->h->prod = fx->h->cons = start;
    assert_int_equal(ivmon_ring_attach(&fx->c, fx->g.base, fx->g.size, &why), 0);
    struct ivmon_ring pr;
    assert_int_equal(ivmon_ring_attach(&pr, fx->g.base, fx->g.size, &why), 0);
    ivmon_producer_init(&fx->p, &pr, lossless);
}

static void ring_fx_fini(struct ring_fx *fx)
{
    region_unmap(&fx->g);
}

/* ---- records with checkable contents -------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint8_t pattern(uint64_t tag, size_t i)
{
    return (uint8_t)(mix(tag) + i * 7 + (i >> 8));
}

/* Mostly small records, now and then a large one, any length 32..IVMON_REC_MAX. */
static uint32_t len_for(uint64_t tag)
{
    uint64_t h = mix(tag ^ 0x5555);
    if ((h & 15) == 0)
        return (uint32_t)(32 + (h >> 8) % (IVMON_REC_MAX - 32 + 1));
    return (uint32_t)(32 + (h >> 8) % 480);
}

/* A record of len bytes whose body starts with tag and continues with pattern(tag). */
static struct ivmon_rec_hdr *make_rec(uint64_t tag, uint32_t len)
{
    memset(&rb.hdr, 0, sizeof rb.hdr);
    rb.hdr.type = IVMON_REC_FILE;
    rb.hdr.len = len;
    rb.hdr.time_ns = tag;
    uint8_t *body = rec_body(&rb);
    memcpy(body, &tag, sizeof tag);
    for (size_t i = sizeof tag; i < len - sizeof rb.hdr; i++)
        body[i] = pattern(tag, i);
    return &rb.hdr;
}

/* Checks a record made by make_rec, byte for byte. Returns its tag. */
static uint64_t check_rec(const struct rec_buf *b, int len)
{
    uint64_t tag;
    assert_int_equal(b->hdr.type, IVMON_REC_FILE);
    assert_int_equal(b->hdr.len, (uint32_t)len);
    memcpy(&tag, b->bytes + sizeof b->hdr, sizeof tag);
    assert_int_equal(b->hdr.time_ns, tag);
    for (size_t i = sizeof tag; i < (size_t)len - sizeof b->hdr; i++)
        if (b->bytes[sizeof b->hdr + i] != pattern(tag, i))
            fail_msg("record %llu: byte %zu is %#x, expected %#x", (unsigned long long)tag, i,
                     b->bytes[sizeof b->hdr + i], pattern(tag, i));
    return tag;
}

static uint8_t ring_byte(const struct ring_fx *fx, uint64_t idx)
{
    return fx->c.data[idx & (fx->c.size - 1)];
}

/* Reads one record into `out`, checking the padding after it is zero. */
static int read_one(struct ring_fx *fx)
{
    const char *why = NULL;
    uint64_t at = fx->c.cons;
    int len = ivmon_ring_read(&fx->c, out.bytes, IVMON_REC_MAX, &why);
    if (len < 0)
        fail_msg("ring read failed: %s", why ? why : "?");
    if (len > 0) {
        uint64_t span = ((uint64_t)len + 7) & ~(uint64_t)7;
        assert_int_equal(fx->c.cons, at + span);
        for (uint64_t i = (uint64_t)len; i < span; i++)
            assert_int_equal(ring_byte(fx, at + i), 0);
    }
    return len;
}

/* ---- format and attach ----------------------------------------------------------------------- */

static void test_data_size_for(void **state)
{
    const uint64_t H = IVMON_RING_HDR_SIZE, MIN = IVMON_RING_MIN_DATA;
    assert_int_equal(ivmon_ring_data_size_for(0), 0);
    assert_int_equal(ivmon_ring_data_size_for(H + MIN - 1), 0);
    assert_int_equal(ivmon_ring_data_size_for(H + MIN), MIN);
    assert_int_equal(ivmon_ring_data_size_for(H + 2 * MIN - 1), MIN);
    assert_int_equal(ivmon_ring_data_size_for(H + 2 * MIN), 2 * MIN);
    assert_int_equal(ivmon_ring_data_size_for(H + (4u << 20) + 100), 4u << 20);
    assert_int_equal(ivmon_ring_data_size_for(H + IVMON_RING_MAX_DATA), IVMON_RING_MAX_DATA);
    assert_int_equal(ivmon_ring_data_size_for(SIZE_MAX), IVMON_RING_MAX_DATA);
}

static void test_format(void **state)
{
    struct region g;
    region_map(&g, IVMON_RING_HDR_SIZE + 2 * SIZE + 100);
    memset(g.base, 0xaa, g.size);

    /* too small: nothing written */
    assert_int_equal(ivmon_ring_format(g.base, IVMON_RING_HDR_SIZE + SIZE - 1, 0), -EINVAL);
    for (size_t i = 0; i < g.size; i++)
        if (g.base[i] != 0xaa)
            fail_msg("format of a too small region wrote byte %zu", i);

    assert_int_equal(ivmon_ring_format(g.base, g.size, IVMON_RING_LOSSLESS), 0);
    struct ivmon_ring_hdr *h = hdr_of(&g);
    assert_int_equal(h->magic, IVMON_RING_MAGIC);
    assert_memory_equal(&h->magic, "IIVMRNG1", 8);
    assert_int_equal(h->proto_major, IVMON_PROTO_MAJOR);
    assert_int_equal(h->proto_minor, IVMON_PROTO_MINOR);
    assert_int_equal(h->hdr_size, IVMON_RING_HDR_SIZE);
    assert_int_equal(h->data_offset, IVMON_RING_HDR_SIZE);
    assert_int_equal(h->data_size, 2 * SIZE);
    assert_int_equal(h->flags, IVMON_RING_LOSSLESS);
    assert_int_equal(h->prod, 0);
    assert_int_equal(h->cons, 0);
    assert_int_equal(h->prod_dropped, 0);
    assert_int_equal(h->cons_waiting, 0);
    assert_int_equal(h->consumer_gen, 0);
    /* the rest of the header page is zero, the data area untouched */
    for (size_t i = 192; i < IVMON_RING_HDR_SIZE; i++)
        assert_int_equal(g.base[i], 0);
    assert_int_equal(g.base[IVMON_RING_HDR_SIZE], 0xaa);

    struct ivmon_ring r;
    const char *why = NULL;
    assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), 0);
    assert_ptr_equal(r.hdr, h);
    assert_ptr_equal(r.data, g.base + IVMON_RING_HDR_SIZE);
    assert_int_equal(r.size, 2 * SIZE);
    assert_int_equal(r.mask, 2 * SIZE - 1);
    assert_int_equal(r.flags, IVMON_RING_LOSSLESS);
    assert_int_equal(r.cons, 0);
    assert_int_equal(r.prod, 0);
    region_unmap(&g);
}

#define ATTACH_FAILS(g, size, reason)                                                              \
    do {                                                                                           \
        struct ivmon_ring r_;                                                                      \
        const char *why_ = NULL;                                                                   \
        assert_int_equal(ivmon_ring_attach(&r_, (g)->base, (size), &why_), -EPROTO);               \
        assert_non_null(why_);                                                                     \
        if (!strstr(why_, (reason)))                                                               \
            fail_msg("attach failed because \"%s\", expected \"%s\"", why_, (reason));             \
    } while (0)

static void test_attach_validation(void **state)
{
    struct region g;
    struct ivmon_ring r;
    const char *why = NULL;
    region_map(&g, IVMON_RING_HDR_SIZE + 2 * SIZE);
    struct ivmon_ring_hdr *h = hdr_of(&g);

    /* not formatted yet */
    memset(g.base, 0, g.size);
    assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), -EAGAIN);
    h->data_size = 12345; /* garbage behind a zero magic still means "not yet" */
    assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), -EAGAIN);

    assert_int_equal(ivmon_ring_format(g.base, g.size, 0), 0);
    assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), 0);
    ATTACH_FAILS(&g, IVMON_RING_HDR_SIZE + SIZE - 1, "region too small");
    ATTACH_FAILS(&g, 0, "region too small");

    h->magic = IVMON_RING_MAGIC ^ 1;
    ATTACH_FAILS(&g, g.size, "bad ring magic");
    h->magic = 0x4141414141414141ull;
    ATTACH_FAILS(&g, g.size, "bad ring magic");
    h->magic = IVMON_RING_MAGIC;

    static const uint16_t majors[] = {0, IVMON_PROTO_MAJOR + 1, 0xffff};
    for (size_t i = 0; i < sizeof majors / sizeof majors[0]; i++) {
        h->proto_major = majors[i];
        ATTACH_FAILS(&g, g.size, "unsupported ring protocol version");
    }
    h->proto_major = IVMON_PROTO_MAJOR;
    h->proto_minor = 7; /* minor versions are compatible */
    assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), 0);

    static const uint64_t offsets[] = {0, 8, IVMON_RING_HDR_SIZE * 2, UINT64_MAX};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        h->data_offset = offsets[i];
        ATTACH_FAILS(&g, g.size, "bad ring data offset");
    }
    h->data_offset = IVMON_RING_HDR_SIZE;

    static const uint64_t sizes[] = {
        0,         1,        SIZE / 2,     SIZE + 8,
        SIZE * 3,  SIZE - 1, 2 * SIZE - 8, (uint64_t)IVMON_RING_MAX_DATA * 2,
        UINT64_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        h->data_size = sizes[i];
        ATTACH_FAILS(&g, g.size, "bad ring data size");
    }
    /* a valid size larger than the region */
    h->data_size = 4 * SIZE;
    ATTACH_FAILS(&g, g.size, "exceeds the region");
    h->data_size = 2 * SIZE;
    ATTACH_FAILS(&g, g.size - 8, "exceeds the region");
    h->data_size = SIZE; /* a smaller ring in a larger region is fine */
    assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), 0);
    assert_int_equal(r.size, SIZE);
    h->data_size = 2 * SIZE;

    /* indices: prod - cons must be 0..size and both 8-byte aligned */
    struct {
        uint64_t prod, cons;
        int ok;
    } idx[] = {
        {0, 0, 1},
        {2 * SIZE, 0, 1}, /* exactly full */
        {2 * SIZE + 8, 0, 0},
        {0, 8, 0}, /* consumer ahead of producer */
        {8, 16, 0},
        {4, 0, 0}, /* misaligned */
        {12, 4, 0},
        {16, 4, 0}, /* only the consumer's */
        {8, (uint64_t)-4, 0},
        {16, (uint64_t)-16, 1}, /* free-running indices wrap at 2^64 */
        {(uint64_t)-8, (uint64_t)-8 - 2 * SIZE, 1},
        {UINT64_MAX - 7, 0, 0},
    };
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        h->prod = idx[i].prod;
        h->cons = idx[i].cons;
        if (idx[i].ok) {
            assert_int_equal(ivmon_ring_attach(&r, g.base, g.size, &why), 0);
            assert_int_equal(r.prod, idx[i].prod);
            assert_int_equal(r.cons, idx[i].cons);
        } else {
            ATTACH_FAILS(&g, g.size, "ring indices inconsistent");
        }
    }
    region_unmap(&g);
}

/* After attach, both sides run on private copies: a rewritten size or flags changes nothing. */
static void test_private_copies(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 0);
    fx.h->data_size = IVMON_RING_MAX_DATA;
    fx.h->data_offset = 0;
    fx.h->flags = IVMON_RING_LOSSLESS;
    for (uint64_t tag = 1; tag <= 1000; tag++) {
        assert_true(ivmon_producer_emit(&fx.p, make_rec(tag, len_for(tag))) >= 0);
        int len = read_one(&fx);
        assert_int_equal(check_rec(&out, len), tag);
        assert_int_equal(out.hdr.seq, tag);
        ivmon_ring_consumer_commit(&fx.c);
    }
    assert_int_equal(fx.c.size, SIZE);
    assert_int_equal(fx.p.ring.size, SIZE);
    ring_fx_fini(&fx);
}

/* ---- round trips ----------------------------------------------------------------------------- */

/* Lossless producer, consumer draining in random bursts: every record arrives intact, in order,
 * with consecutive sequence numbers, many straddling the end of the data area. */
static void round_trip(uint64_t start, uint64_t seed, unsigned n)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, start, 1);
    uint64_t rnd = seed, next_read = 1, straddles = 0, header_straddles = 0;

    for (uint64_t tag = 1; tag <= n;) {
        uint32_t len = len_for(tag);
        uint64_t off = fx.p.ring.prod & (SIZE - 1);
        int r = ivmon_producer_emit(&fx.p, make_rec(tag, len));
        if (r != -EAGAIN) {
            assert_true(r == 0 || r == 1);
            assert_int_equal(rb.hdr.seq, tag);
            straddles += off + len > SIZE;
            header_straddles += off + sizeof(struct ivmon_rec_hdr) > SIZE;
            tag++;
        }
        /* drain a random number of records, or everything after a refusal */
        unsigned k = r == -EAGAIN ? UINT32_MAX : (unsigned)(unit_rand(&rnd) % 4);
        for (unsigned i = 0; i < k; i++) {
            int got = read_one(&fx);
            if (got == 0)
                break;
            assert_int_equal(check_rec(&out, got), next_read);
            assert_int_equal(out.hdr.seq, next_read);
            next_read++;
        }
        if (unit_rand(&rnd) % 3 == 0 || r == -EAGAIN)
            ivmon_ring_consumer_commit(&fx.c);
    }
    int got;
    while ((got = read_one(&fx)) > 0) {
        assert_int_equal(check_rec(&out, got), next_read);
        assert_int_equal(out.hdr.seq, next_read);
        next_read++;
    }
    assert_int_equal(next_read, n + 1);
    assert_int_equal(fx.h->prod, fx.p.ring.prod);
    assert_int_equal(fx.c.cons, fx.p.ring.prod);
    assert_int_equal(fx.h->prod_dropped, 0);
    assert_true(straddles > 10);
    if (start == SIZE - 8)
        assert_true(header_straddles > 0);
    ring_fx_fini(&fx);
}

static void test_round_trip_from_zero(void **state)
{
    round_trip(0, 1, 20000);
}

/* The very first record header straddles the end of the data area. */
static void test_round_trip_header_straddle(void **state)
{
    round_trip(SIZE - 8, 2, 5000);
}

/* The free-running indices pass 2^64 a few records in. */
static void test_round_trip_index_wrap(void **state)
{
    round_trip((uint64_t)-4096, 3, 5000);
}

/* ---- full ring, drop mode -------------------------------------------------------------------- */

static void expect_lost(struct ring_fx *fx, uint64_t seq, uint64_t first, uint64_t last)
{
    static struct ivmon_event ev;
    const char *why = NULL;
    int len = read_one(fx);
    assert_int_equal(len, sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_lost));
    assert_int_equal(out.hdr.type, IVMON_REC_LOST);
    assert_int_equal(out.hdr.seq, seq);
    /* what the producer writes must pass the host's own validation */
    if (ivmon__decode(out.bytes, (size_t)len, &ev, &why) != 0)
        fail_msg("producer's lost record rejected: %s", why);
    assert_int_equal(ivmon_event_lost_reason(&ev), IVMON_LOST_RING_FULL);
    assert_int_equal(ivmon_event_lost_first(&ev), first);
    assert_int_equal(ivmon_event_lost_last(&ev), last);
    assert_int_equal(ivmon_event_lost_count(&ev), last - first + 1);
}

static void expect_rec(struct ring_fx *fx, uint64_t tag, uint64_t seq)
{
    int len = read_one(fx);
    assert_true(len > 0);
    assert_int_equal(check_rec(&out, len), tag);
    assert_int_equal(out.hdr.seq, seq);
}

static void test_full_ring_drop(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 0);
    const uint32_t L = 1024; /* 64 of them fill the ring exactly */

    for (uint64_t t = 1; t <= 64; t++) {
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(t, L)), 0);
        assert_int_equal(rb.hdr.seq, t);
    }
    assert_int_equal(fx.h->prod, SIZE);
    for (uint64_t t = 65; t <= 67; t++) {
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(t, L)), -ENOBUFS);
        assert_int_equal(fx.h->prod_dropped, t - 64);
    }
    assert_int_equal(fx.h->prod, SIZE); /* nothing written */
    assert_int_equal(fx.p.dropped_total, 3);
    assert_int_equal(fx.p.next_seq, 68);
    /* a small record does not fit either, and joins the same loss range */
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(68, 32)), -ENOBUFS);
    assert_int_equal(fx.p.dropped_total, 4);
    assert_int_equal(fx.h->prod_dropped, 4);

    /* room for the loss report (56 bytes) but not the record: the report goes out, the record
     * starts a new loss range */
    expect_rec(&fx, 1, 1);
    ivmon_ring_consumer_commit(&fx.c);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(69, L)), -ENOBUFS);
    assert_int_equal(fx.h->prod, SIZE + 56);
    assert_int_equal(fx.p.dropped_total, 5);
    assert_int_equal(fx.h->prod_dropped, 5);

    for (uint64_t t = 2; t <= 64; t++)
        expect_rec(&fx, t, t);
    expect_lost(&fx, 69, 65, 68);
    assert_int_equal(read_one(&fx), 0);
    ivmon_ring_consumer_commit(&fx.c);

    /* space again: the pending loss first, then the new record */
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(70, L)), 0);
    assert_int_equal(rb.hdr.seq, 72);
    expect_lost(&fx, 71, 70, 70);
    expect_rec(&fx, 70, 72);
    assert_int_equal(read_one(&fx), 0);
    assert_int_equal(fx.p.lost_count, 0);
    ring_fx_fini(&fx);
}

/* A long run with a consumer that drains irregularly: every sequence number is accounted for, as
 * a record or inside exactly one loss report, and delivered + lost == produced. */
static void test_drop_accounting_randomized(void **state)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct ring_fx fx;
        ring_fx_init(&fx, SIZE, seed == 4 ? (uint64_t)-65536 : 0, 0);
        uint64_t rnd = seed * 0x1234567, produced = 0, delivered = 0, lost = 0, lost_records = 0;
        uint64_t expect_seq = 1, drops = 0, last_tag = 0;

        for (uint64_t tag = 1; tag <= 60000; tag++) {
            int r = ivmon_producer_emit(&fx.p, make_rec(tag, len_for(tag)));
            assert_true(r == 0 || r == 1 || r == -ENOBUFS);
            produced++;
            drops += r == -ENOBUFS;
            /* the consumer: sometimes away for a while, sometimes a burst, commits now and then */
            uint64_t x = unit_rand(&rnd);
            unsigned k = (x & 7) < 5 ? 0 : (unsigned)((x >> 8) % 4);
            for (unsigned i = 0; i < k; i++) {
                int len = read_one(&fx);
                if (len == 0)
                    break;
                if (out.hdr.type == IVMON_REC_LOST) {
                    struct ivmon_rec_lost l;
                    memcpy(&l, out.bytes + sizeof out.hdr, sizeof l);
                    assert_int_equal(l.reason, IVMON_LOST_RING_FULL);
                    assert_int_equal(l.first_seq, expect_seq);
                    assert_int_equal(l.last_seq + 1, out.hdr.seq);
                    assert_int_equal(l.count, l.last_seq - l.first_seq + 1);
                    lost += l.count;
                    lost_records++;
                } else {
                    uint64_t t = check_rec(&out, len);
                    assert_true(t > last_tag);
                    last_tag = t;
                    assert_int_equal(out.hdr.seq, expect_seq);
                    delivered++;
                }
                expect_seq = out.hdr.seq + 1;
            }
            if ((x >> 40) % 4 == 0)
                ivmon_ring_consumer_commit(&fx.c);
        }
        /* drain; then one more record into the empty ring carries out the pending loss */
        for (;;) {
            int len = read_one(&fx);
            if (len == 0)
                break;
            if (out.hdr.type == IVMON_REC_LOST) {
                struct ivmon_rec_lost l;
                memcpy(&l, out.bytes + sizeof out.hdr, sizeof l);
                assert_int_equal(l.first_seq, expect_seq);
                lost += l.count;
                lost_records++;
            } else {
                assert_int_equal(out.hdr.seq, expect_seq);
                check_rec(&out, len);
                delivered++;
            }
            expect_seq = out.hdr.seq + 1;
        }
        ivmon_ring_consumer_commit(&fx.c);
        int pending = fx.p.lost_count > 0;
        uint64_t pending_first = fx.p.lost_first, pending_count = fx.p.lost_count;
        assert_true(ivmon_producer_emit(&fx.p, make_rec(1000000, 64)) >= 0);
        produced++;
        if (pending) {
            int len = read_one(&fx);
            assert_int_equal(out.hdr.type, IVMON_REC_LOST);
            assert_int_equal(len, 56);
            struct ivmon_rec_lost l;
            memcpy(&l, out.bytes + sizeof out.hdr, sizeof l);
            assert_int_equal(l.first_seq, pending_first);
            assert_int_equal(l.count, pending_count);
            assert_int_equal(l.first_seq, expect_seq);
            lost += l.count;
            lost_records++;
            expect_seq = out.hdr.seq + 1;
        }
        expect_rec(&fx, 1000000, expect_seq++);
        delivered++;
        assert_int_equal(read_one(&fx), 0);

        assert_int_equal(delivered + lost, produced);
        assert_int_equal(lost, drops);
        assert_int_equal(lost, fx.p.dropped_total);
        assert_int_equal(lost, fx.h->prod_dropped);
        assert_int_equal(expect_seq, fx.p.next_seq);
        assert_int_equal(produced + lost_records, fx.p.next_seq - 1);
        /* the run must really have lost records, in many separate episodes */
        assert_true(lost > 1000);
        assert_true(lost_records > 50);
        assert_true(delivered > 1000);
        ring_fx_fini(&fx);
    }
}

/* ---- lossless mode --------------------------------------------------------------------------- */

static void test_lossless(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 1);
    for (uint64_t t = 1; t <= 64; t++)
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(t, 1024)), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(65, 32)), -EAGAIN);
        assert_int_equal(fx.p.next_seq, 65); /* nothing taken */
        assert_int_equal(fx.p.lost_count, 0);
        assert_int_equal(fx.p.dropped_total, 0);
        assert_int_equal(fx.h->prod, SIZE);
        assert_int_equal(fx.h->prod_dropped, 0);
    }
    /* a consumed but uncommitted record does not make room */
    expect_rec(&fx, 1, 1);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(65, 32)), -EAGAIN);
    ivmon_ring_consumer_commit(&fx.c);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(65, 32)), 0);
    assert_int_equal(rb.hdr.seq, 65);
    for (uint64_t t = 2; t <= 64; t++)
        expect_rec(&fx, t, t);
    expect_rec(&fx, 65, 65);
    assert_int_equal(read_one(&fx), 0);
    ring_fx_fini(&fx);

    /* and a long irregular run: never a loss report, never a gap */
    ring_fx_init(&fx, SIZE, 0, 1);
    uint64_t rnd = 99, next = 1, eagain = 0;
    for (uint64_t tag = 1; tag <= 30000;) {
        int r = ivmon_producer_emit(&fx.p, make_rec(tag, len_for(tag)));
        if (r == -EAGAIN)
            eagain++;
        else
            assert_int_equal(rb.hdr.seq, tag++);
        unsigned k = (unsigned)(unit_rand(&rnd) % 2);
        for (unsigned i = 0; i < k; i++) {
            int len = read_one(&fx);
            if (!len)
                break;
            assert_int_equal(out.hdr.type, IVMON_REC_FILE);
            assert_int_equal(check_rec(&out, len), next);
            assert_int_equal(out.hdr.seq, next++);
        }
        if (unit_rand(&rnd) % 5 == 0)
            ivmon_ring_consumer_commit(&fx.c);
    }
    int len;
    while ((len = read_one(&fx)) > 0) {
        assert_int_equal(check_rec(&out, len), next);
        assert_int_equal(out.hdr.seq, next++);
    }
    assert_int_equal(next, 30001);
    assert_true(eagain > 100);
    assert_int_equal(fx.h->prod_dropped, 0);
    ring_fx_fini(&fx);
}

static void test_emit_bad_length(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 0);
    struct ivmon_rec_hdr *rec = make_rec(1, 32);
    static const uint32_t bad[] = {0, 1, 23, IVMON_REC_MAX + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec->len = bad[i];
        assert_int_equal(ivmon_producer_emit(&fx.p, rec), -EINVAL);
        assert_int_equal(fx.p.next_seq, 1);
        assert_int_equal(fx.h->prod, 0);
        assert_int_equal(fx.p.dropped_total, 0);
    }
    /* the bounds themselves are fine */
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(1, 24 + 8)), 0);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(2, IVMON_REC_MAX)), 0);
    rec = make_rec(3, 24);
    assert_int_equal(ivmon_producer_emit(&fx.p, rec), 0);
    expect_rec(&fx, 1, 1);
    expect_rec(&fx, 2, 2);
    assert_int_equal(read_one(&fx), 24);
    assert_int_equal(out.hdr.seq, 3);
    ring_fx_fini(&fx);
}

/* ---- notification suppression ---------------------------------------------------------------- */

static void test_notification_suppression(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 0);

    /* the consumer never asked to be woken */
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(1, 64)), 0);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(2, 64)), 0);

    /* prepare_sleep on a non-empty ring: no sleep, and no doorbell wanted */
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 0);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(3, 64)), 0);

    for (uint64_t t = 1; t <= 3; t++)
        expect_rec(&fx, t, t);
    assert_int_equal(fx.h->cons, 0); /* not committed yet */
    /* prepare_sleep on an empty ring: may sleep, publishes the consumer index */
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 1);
    assert_int_equal(fx.h->cons, fx.c.cons);
    assert_int_equal(fx.h->cons_waiting, 1);
    /* the first record rings, the following ones do not: one doorbell per sleep */
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(4, 64)), 1);
    assert_int_equal(fx.h->cons_waiting, 0);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(5, 64)), 0);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(6, 64)), 0);

    /* woken, drains, sleeps again: the next record rings again */
    ivmon_ring_consumer_awake(&fx.c);
    for (uint64_t t = 4; t <= 6; t++)
        expect_rec(&fx, t, t);
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 1);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(7, 64)), 1);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(8, 64)), 0);

    /* a consumer that went to sleep and woke up on its own (timeout) wants no doorbell */
    expect_rec(&fx, 7, 7);
    expect_rec(&fx, 8, 8);
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 1);
    ivmon_ring_consumer_awake(&fx.c);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(9, 64)), 0);
    expect_rec(&fx, 9, 9);

    /* a full ring: the consumer is awake (it has records to read), so neither the records nor
     * the drop ring; once it drained and sleeps, the record that carries the loss report does */
    ivmon_ring_consumer_commit(&fx.c);
    for (uint64_t t = 10; t < 10 + 64; t++)
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(t, 1024)), 0);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(74, 64)), -ENOBUFS);
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 0);
    assert_int_equal(fx.h->cons_waiting, 0);
    for (uint64_t t = 10; t < 10 + 64; t++)
        expect_rec(&fx, t, t);
    assert_int_equal(read_one(&fx), 0);
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 1);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(75, 64)), 1);
    assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(76, 64)), 0);
    expect_lost(&fx, 75, 74, 74);
    expect_rec(&fx, 75, 76);
    expect_rec(&fx, 76, 77);
    assert_int_equal(read_one(&fx), 0);
    ring_fx_fini(&fx);
}

/* Producer and consumer on two threads, the consumer sleeping on an eventfd whenever the ring is
 * empty. A lost doorbell shows up as a consumer that sleeps five seconds and fails. */
struct threaded {
    struct ring_fx fx;
    int efd;
    uint64_t n, produced, doorbells;
    _Atomic int failed;
};

static void *producer_thread(void *arg)
{
    struct threaded *t = arg;
    static struct rec_buf b;
    for (uint64_t tag = 1; tag <= t->n + 1; tag++) {
        uint32_t len = tag == t->n + 1 ? 40 : 32 + (uint32_t)(mix(tag) % 600);
        int r;
        do {
            memset(&b.hdr, 0, sizeof b.hdr);
            b.hdr.type = tag == t->n + 1 ? IVMON_REC_HEARTBEAT : IVMON_REC_FILE;
            b.hdr.len = len;
            memcpy(b.bytes + sizeof b.hdr, &tag, sizeof tag);
            r = ivmon_producer_emit(&t->fx.p, &b.hdr);
            t->produced++;
            if (r == 1) {
                uint64_t one = 1;
                t->doorbells++;
                if (write(t->efd, &one, sizeof one) != sizeof one)
                    t->failed = 1;
            }
            if (r == -ENOBUFS && tag == t->n + 1)
                sched_yield(); /* the end marker must arrive: retry until it fits */
        } while (r == -ENOBUFS && tag == t->n + 1);
        if (tag % 64 == 0)
            sched_yield();
    }
    return NULL;
}

/* emit_more holds records back until publish (or until a batch's worth is waiting), and the
 * doorbell follows the publish, not the write. */
static void test_batched_publish(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 0);

    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 1);
    assert_int_equal(ivmon_producer_emit_more(&fx.p, make_rec(1, 64)), 0);
    assert_int_equal(ivmon_producer_emit_more(&fx.p, make_rec(2, 64)), 0);
    /* written, not visible: the consumer's index and flag are untouched */
    assert_int_equal(fx.h->prod, 0);
    assert_int_equal(read_one(&fx), 0);
    assert_int_equal(fx.h->cons_waiting, 1);
    /* publish makes both visible at once and rings once */
    assert_int_equal(ivmon_producer_publish(&fx.p), 1);
    assert_int_equal(fx.h->prod, 128);
    assert_int_equal(ivmon_producer_publish(&fx.p), 0); /* nothing new: no doorbell */
    ivmon_ring_consumer_awake(&fx.c);
    expect_rec(&fx, 1, 1);
    expect_rec(&fx, 2, 2);

    /* a batch's worth publishes on its own */
    uint64_t n = IVMON_PRODUCER_BATCH / 64, published_at = 0;
    for (uint64_t i = 0; i < n; i++) {
        ivmon_producer_emit_more(&fx.p, make_rec(3 + i, 64));
        if (!published_at && fx.h->prod != 128)
            published_at = i + 1;
    }
    assert_int_equal(published_at, n);
    assert_int_equal(fx.h->prod, 128 + IVMON_PRODUCER_BATCH);
    for (uint64_t i = 0; i < n; i++)
        expect_rec(&fx, 3 + i, 3 + i);
    ring_fx_fini(&fx);
}

/* A full ring during a batch: the emit publishes what it holds so the consumer can make room,
 * and a doorbell that publish wanted is owed to the next publish, not forgotten. */
static void test_batched_publish_full_ring(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 1);
    uint64_t tag = 1;
    assert_int_equal(ivmon_ring_consumer_prepare_sleep(&fx.c), 1);
    /* fill the ring through emit_more; the consumer sleeps and hears nothing yet... */
    int r, rang = 0;
    while ((r = ivmon_producer_emit_more(&fx.p, make_rec(tag, 512))) >= 0) {
        rang |= r;
        tag++;
    }
    assert_int_equal(r, -EAGAIN);
    /* ...the auto-publish rang once; the failed emit published everything it held */
    assert_int_equal(rang, 1);
    assert_int_equal(fx.h->prod, fx.p.ring.prod);
    ring_fx_fini(&fx);

    /* The owed doorbell. An honest consumer cannot sleep on a full ring (it sleeps only when
     * it has read everything published, and emit_more holds back less than a batch), so the
     * flag is raised by hand here: the failing emit's publish takes it, and the doorbell must
     * reach the caller's next publish rather than be forgotten. */
    ring_fx_init(&fx, SIZE, 0, 1);
    tag = 1;
    while (ivmon_producer_emit_more(&fx.p, make_rec(tag, 512)) >= 0)
        tag++;
    assert_true(ivmon_producer_publish(&fx.p) == 0);
    fx.h->cons_waiting = 1;
    assert_int_equal(ivmon_producer_emit_more(&fx.p, make_rec(tag, 512)), -EAGAIN);
    assert_true(ivmon_producer_publish(&fx.p) == 0); /* nothing was held back: nothing owed */
    assert_int_equal(fx.h->cons_waiting, 1);         /* and the flag was not taken */
    /* now with records held back when the ring fills */
    expect_rec(&fx, 1, 1); /* free one 512-byte slot... */
    ivmon_ring_consumer_commit(&fx.c);
    assert_int_equal(ivmon_producer_emit_more(&fx.p, make_rec(tag, 512)), 0); /* ...held back */
    assert_int_equal(ivmon_producer_emit_more(&fx.p, make_rec(tag + 1, 512)), -EAGAIN);
    assert_int_equal(fx.h->prod, fx.p.ring.prod);       /* the failing emit published it */
    assert_int_equal(fx.h->cons_waiting, 0);            /* took the flag... */
    assert_int_equal(ivmon_producer_publish(&fx.p), 1); /* ...and hands the doorbell over */
    assert_int_equal(ivmon_producer_publish(&fx.p), 0);
    ring_fx_fini(&fx);
}

/* linger: returns as soon as the producer publishes, 0 after the spins on a quiet ring. */
static void test_linger(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, 0, 0);
    assert_int_equal(ivmon_ring_consumer_linger(&fx.c, 64), 0);
    ivmon_producer_emit(&fx.p, make_rec(1, 64));
    assert_int_equal(ivmon_ring_consumer_linger(&fx.c, 64), 1);
    assert_int_equal(ivmon_ring_consumer_linger(&fx.c, 0), 0); /* no spins, no look */
    expect_rec(&fx, 1, 1);
    assert_int_equal(ivmon_ring_consumer_linger(&fx.c, 64), 0);
    ring_fx_fini(&fx);
}

static void test_threaded_doorbell(void **state)
{
    static struct threaded t;
    memset(&t, 0, sizeof t);
    ring_fx_init(&t.fx, SIZE, 0, 0);
    t.n = 100000;
    t.efd = eventfd(0, EFD_CLOEXEC);
    assert_true(t.efd >= 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer_thread, &t), 0);

    uint64_t expect = 1, delivered = 0, lost = 0, sleeps = 0;
    const char *why = NULL;
    for (;;) {
        int len = ivmon_ring_read(&t.fx.c, out.bytes, IVMON_REC_MAX, &why);
        if (len < 0)
            fail_msg("ring read failed: %s", why);
        if (len == 0) {
            if (!ivmon_ring_consumer_prepare_sleep(&t.fx.c)) {
                ivmon_ring_consumer_awake(&t.fx.c);
                continue;
            }
            struct pollfd pfd = {.fd = t.efd, .events = POLLIN};
            int r = poll(&pfd, 1, 5000);
            if (r != 1)
                fail_msg("consumer slept 5 s on an empty ring: a doorbell was lost "
                         "(at seq %llu)",
                         (unsigned long long)expect);
            uint64_t v;
            assert_int_equal(read(t.efd, &v, sizeof v), sizeof v);
            sleeps++;
            ivmon_ring_consumer_awake(&t.fx.c);
            continue;
        }
        assert_int_equal(out.hdr.len, (uint32_t)len);
        if (out.hdr.type == IVMON_REC_LOST) {
            struct ivmon_rec_lost l;
            memcpy(&l, out.bytes + sizeof out.hdr, sizeof l);
            assert_int_equal(l.first_seq, expect);
            assert_int_equal(l.last_seq + 1, out.hdr.seq);
            lost += l.count;
        } else {
            assert_int_equal(out.hdr.seq, expect);
            delivered++;
        }
        expect = out.hdr.seq + 1;
        if (delivered % 16 == 0)
            ivmon_ring_consumer_commit(&t.fx.c);
        if (out.hdr.type == IVMON_REC_HEARTBEAT)
            break;
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.failed, 0);
    assert_int_equal(delivered + lost, t.produced);
    assert_int_equal(lost, t.fx.p.dropped_total);
    assert_true(sleeps > 0);
    assert_true(t.doorbells >= sleeps);
    close(t.efd);
    ring_fx_fini(&t.fx);
}

/* ---- a hostile producer, seen by the consumer ------------------------------------------------ */

static void poke_hdr(struct ring_fx *fx, uint64_t idx, uint32_t len)
{
    struct ivmon_rec_hdr h = {.type = IVMON_REC_FILE, .len = len, .seq = 1};
    const uint8_t *p = (const uint8_t *)&h;
    for (size_t i = 0; i < sizeof h; i++)
        fx->c.data[(idx + i) & (fx->c.size - 1)] = p[i];
}

#define READ_FAILS(fx, cap, reason)                                                                \
    do {                                                                                           \
        const char *why_ = NULL;                                                                   \
        uint64_t cons_ = (fx)->c.cons;                                                             \
        assert_int_equal(ivmon_ring_read(&(fx)->c, out.bytes, (cap), &why_), -EPROTO);             \
        assert_non_null(why_);                                                                     \
        if (!strstr(why_, (reason)))                                                               \
            fail_msg("read failed because \"%s\", expected \"%s\"", why_, (reason));               \
        assert_int_equal((fx)->c.cons, cons_);                                                     \
        /* and it stays broken */                                                                  \
        why_ = NULL;                                                                               \
        assert_int_equal(ivmon_ring_read(&(fx)->c, out.bytes, (cap), &why_), -EPROTO);             \
        assert_non_null(why_);                                                                     \
    } while (0)

struct hostile_case {
    int64_t prod_delta; /* hdr->prod = cons + prod_delta */
    uint32_t len;       /* record header written at cons, 0: none */
    size_t cap;
    const char *reason;
};

static void test_hostile_producer_indices(void **state)
{
    static const struct hostile_case cases[] = {
        {SIZE + 8, 64, IVMON_REC_MAX, "producer index out of bounds"},
        {2 * SIZE, 64, IVMON_REC_MAX, "producer index out of bounds"},
        {-8, 64, IVMON_REC_MAX, "producer index out of bounds"},
        {INT64_MIN, 64, IVMON_REC_MAX, "producer index out of bounds"},
        {1, 64, IVMON_REC_MAX, "producer index out of bounds"},
        {28, 24, IVMON_REC_MAX, "producer index out of bounds"},
        {SIZE - 4, 24, IVMON_REC_MAX, "producer index out of bounds"},
        {8, 24, IVMON_REC_MAX, "truncated record header"},
        {16, 24, IVMON_REC_MAX, "truncated record header"},
        {24, 5, IVMON_REC_MAX, "record length out of bounds"},
        {24, 0, IVMON_REC_MAX, "record length out of bounds"},
        {24, 23, IVMON_REC_MAX, "record length out of bounds"},
        {SIZE, IVMON_REC_MAX + 1, IVMON_REC_MAX, "record length out of bounds"},
        {SIZE, UINT32_MAX, IVMON_REC_MAX, "record length out of bounds"},
        {SIZE, UINT32_MAX - 3, IVMON_REC_MAX, "record length out of bounds"},
        {96, 100, IVMON_REC_MAX, "extends past the producer index"},
        {24, 25, IVMON_REC_MAX, "extends past the producer index"},
        {IVMON_REC_MAX - 8, IVMON_REC_MAX, IVMON_REC_MAX, "extends past the producer index"},
    };
    /* start positions: the header at the start, straddling the end, right at the end */
    static const uint64_t starts[] = {0, SIZE - 8, SIZE - 16, SIZE - 24, 4096, (uint64_t)-16};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const struct hostile_case *hc = &cases[i];
            struct ring_fx fx;
            ring_fx_init(&fx, SIZE, starts[s], 0);
            if (hc->len)
                poke_hdr(&fx, fx.c.cons, hc->len);
            fx.h->prod = fx.c.cons + (uint64_t)hc->prod_delta;
            READ_FAILS(&fx, hc->cap, hc->reason);
            ring_fx_fini(&fx);
        }
    }
}

/* A caller buffer smaller than the largest record is the caller's mistake, not the peer's. */
static void test_read_small_buffer(void **state)
{
    struct ring_fx fx;
    const char *why = NULL;
    ring_fx_init(&fx, SIZE, 0, 0);
    assert_int_equal(ivmon_ring_read(&fx.c, out.bytes, IVMON_REC_MAX - 1, &why), -EINVAL);
    assert_null(why);
    ring_fx_fini(&fx);
}

/* A producer index that goes bad between batches is caught when the consumer next reads it;
 * records before it were read intact. */
static void test_hostile_producer_mid_stream(void **state)
{
    struct ring_fx fx;
    ring_fx_init(&fx, SIZE, SIZE - 64, 0);
    for (uint64_t t = 1; t <= 3; t++)
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(t, 100)), 0);
    expect_rec(&fx, 1, 1);
    fx.h->prod += SIZE * 4 + 4; /* not seen until the batch is used up */
    expect_rec(&fx, 2, 2);
    expect_rec(&fx, 3, 3);
    READ_FAILS(&fx, IVMON_REC_MAX, "producer index out of bounds");
    ring_fx_fini(&fx);
}

/* ---- a hostile consumer, seen by the producer ------------------------------------------------ */

/* The producer reads the consumer index when its cached copy says the ring is full; a value it
 * then sees that is ahead of the producer, or claims more than the ring holds, means "no room". */
static void test_hostile_consumer_index(void **state)
{
    static uint8_t snapshot[SIZE];
    for (int lossless = 0; lossless <= 1; lossless++) {
        struct ring_fx fx;
        ring_fx_init(&fx, SIZE, SIZE / 2, lossless);
        for (uint64_t t = 1; t <= 64; t++)
            assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(t, 1024)), 0);
        uint64_t prod = fx.h->prod;
        assert_int_equal(prod, SIZE / 2 + SIZE);
        memcpy(snapshot, fx.c.data, SIZE);

        const uint64_t bad[] = {prod + 8,        prod + SIZE, prod - SIZE - 8,
                                prod - SIZE - 1, prod + 1,    prod + (1ull << 63)};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            fx.h->cons = bad[i];
            assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(65 + i, 32)),
                             lossless ? -EAGAIN : -ENOBUFS);
            assert_int_equal(fx.h->prod, prod);
            assert_memory_equal(fx.c.data, snapshot, SIZE);
        }
        /* the consumer comes back to its senses, having consumed everything: a loss report
         * (drop mode) and the record */
        fx.h->cons = prod;
        fx.c.cons = prod;
        fx.c.prod_seen = prod;
        assert_int_equal(ivmon_producer_emit(&fx.p, make_rec(100, 100)), 0);
        if (lossless) {
            expect_rec(&fx, 100, 65);
        } else {
            expect_lost(&fx, 71, 65, 70);
            expect_rec(&fx, 100, 72);
        }
        assert_int_equal(read_one(&fx), 0);

        /* a misaligned index that claims less than the ring holds: the producer may write, but
         * only inside the data area (the guard pages would catch anything else) */
        fx.h->cons = fx.h->prod - 4;
        for (uint64_t t = 0; t < 2000; t++) {
            int r = ivmon_producer_emit(&fx.p, make_rec(200 + t, len_for(t)));
            assert_true(r == 0 || r == -ENOBUFS || r == -EAGAIN);
        }
        ring_fx_fini(&fx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_size_for),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_attach_validation),
        cmocka_unit_test(test_private_copies),
        cmocka_unit_test(test_round_trip_from_zero),
        cmocka_unit_test(test_round_trip_header_straddle),
        cmocka_unit_test(test_round_trip_index_wrap),
        cmocka_unit_test(test_full_ring_drop),
        cmocka_unit_test(test_drop_accounting_randomized),
        cmocka_unit_test(test_lossless),
        cmocka_unit_test(test_emit_bad_length),
        cmocka_unit_test(test_notification_suppression),
        cmocka_unit_test(test_threaded_doorbell),
        cmocka_unit_test(test_hostile_producer_indices),
        cmocka_unit_test(test_hostile_producer_mid_stream),
        cmocka_unit_test(test_read_small_buffer),
        cmocka_unit_test(test_batched_publish),
        cmocka_unit_test(test_batched_publish_full_ring),
        cmocka_unit_test(test_linger),
        cmocka_unit_test(test_hostile_consumer_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
