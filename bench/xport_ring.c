/* SPDX-License-Identifier: MIT */
/*
 * The libivmon ring, used the way the agent and the monitor use it: a memfd both processes map
 * with MAP_SHARED, a lossless producer, and a consumer that sleeps on an eventfd doorbell the
 * producer rings only when the consumer asked for it (notification suppression, DESIGN.md
 * invariant 4). That suppression is the one thing the ring gets that the baselines do not, and it
 * is the point of the design.
 */
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

/* The consumer publishes its index every this many records, as the core's drain does once per
 * budget (IVMON_BUDGET_DEFAULT in src/internal.h), and whenever the ring runs dry. A lossless
 * producer needs the space back before the ring fills, and publishing per record would only add
 * cache-line traffic. */
#define RING_COMMIT_EVERY 256u
/* On a full ring the producer retries with a pause instruction this many times (the consumer is
 * running and about to free space), then falls back to sched_yield() so that on a busy or
 * single-CPU machine the consumer gets the CPU. */
#define RING_SPINS 128u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int ring_setup(struct bench_chan *c, const struct bench_cfg *cfg, char *err)
{
    c->region_len = IVMON_RING_HDR_SIZE + cfg->buf_bytes;
    c->memfd = memfd_create("ivmon-bench-ring", MFD_CLOEXEC);
    if (c->memfd < 0)
        return bench_fail(err, "memfd_create: %s", strerror(errno));
    if (ftruncate(c->memfd, (off_t)c->region_len) < 0)
        return bench_fail(err, "ftruncate: %s", strerror(errno));
    /* The host side formats; each process then maps and attaches on its own, as two programs
     * that share nothing but the fd would. */
    void *m = mmap(NULL, c->region_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
    if (m == MAP_FAILED)
        return bench_fail(err, "mmap: %s", strerror(errno));
    int r = ivmon_ring_format(m, c->region_len, IVMON_RING_LOSSLESS);
    munmap(m, c->region_len);
    if (r < 0)
        return bench_fail(err, "ivmon_ring_format: %s", strerror(-r));
    c->efd = eventfd(0, EFD_CLOEXEC);
    if (c->efd < 0)
        return bench_fail(err, "eventfd: %s", strerror(errno));
    snprintf(c->note, sizeof c->note, "ring data %zu B", cfg->buf_bytes);
    return 0;
}

static int ring_map_attach(struct bench_chan *c, char *err)
{
    c->map = mmap(NULL, c->region_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        return bench_fail(err, "mmap: %s", strerror(errno));
    }
    const char *why = "";
    int r = ivmon_ring_attach(&c->ring, c->map, c->region_len, &why);
    if (r < 0)
        return bench_fail(err, "ivmon_ring_attach: %s (%s)", strerror(-r), why);
    return 0;
}

static int ring_producer_open(struct bench_chan *c, char *err)
{
    if (ring_map_attach(c, err) < 0)
        return -1;
    ivmon_producer_init(&c->prod, &c->ring, 1);
    return 0;
}

static int ring_consumer_open(struct bench_chan *c, char *err)
{
    return ring_map_attach(c, err);
}

static int ring_doorbell(struct bench_chan *c, struct bench_prod_stats *st, char *err)
{
    const uint64_t one = 1;
    if (write(c->efd, &one, sizeof one) != sizeof one)
        return bench_fail(err, "eventfd write: %s", strerror(errno));
    st->doorbells++;
    return 0;
}

/* batched: ivmon_producer_emit_more, publishing once per IVMON_PRODUCER_BATCH bytes, as a
 * producer does that has several records at hand (the agent, per fanotify read); otherwise
 * ivmon_producer_emit, publishing every record. */
static int ring_produce_mode(struct bench_chan *c, const struct bench_cfg *cfg,
                             struct bench_prod_stats *st, char *err, int batched)
{
    union bench_rec rec;
    for (uint64_t seq = 1; seq <= cfg->count; seq++) {
        bench_build(&rec, cfg->rec_len, seq);
        int r;
        for (unsigned tries = 0;; tries++) {
            r = batched ? ivmon_producer_emit_more(&c->prod, &rec.hdr)
                        : ivmon_producer_emit(&c->prod, &rec.hdr);
            if (r != -EAGAIN)
                break;
            /* Full: the emit published what was written; a doorbell it wanted is owed. */
            if (ivmon_producer_publish(&c->prod) && ring_doorbell(c, st, err) < 0)
                return -1;
            if (tries == 0)
                st->full_waits++;
            if (tries < RING_SPINS) {
                cpu_relax();
            } else {
                sched_yield();
                st->yields++;
            }
        }
        if (r == 1) {
            /* The consumer is asleep (or about to be): wake it. */
            if (ring_doorbell(c, st, err) < 0)
                return -1;
        } else if (r != 0) {
            /* -ENOBUFS cannot happen on a lossless ring; if it does, records are being lost. */
            return bench_fail(err, "ivmon_producer_emit of seq %llu: %s", (unsigned long long)seq,
                              strerror(-r));
        }
    }
    /* The end of the batch: make the rest visible. */
    if (ivmon_producer_publish(&c->prod) && ring_doorbell(c, st, err) < 0)
        return -1;
    return 0;
}

static int ring_produce(struct bench_chan *c, const struct bench_cfg *cfg,
                        struct bench_prod_stats *st, char *err)
{
    return ring_produce_mode(c, cfg, st, err, 0);
}

static int ring_produce_batched(struct bench_chan *c, const struct bench_cfg *cfg,
                                struct bench_prod_stats *st, char *err)
{
    return ring_produce_mode(c, cfg, st, err, 1);
}

static int ring_consume(struct bench_chan *c, const struct bench_cfg *cfg,
                        struct bench_cons_stats *st, char *err)
{
    union bench_rec rec;
    uint64_t expect = 1;
    unsigned since_commit = 0;
    while (expect <= cfg->count) {
        const char *why = "";
        /* Looked at before the ring: the producer publishes its last record before it exits,
         * so if it was gone already, an empty ring now means records are missing. */
        int gone = bench_producer_gone;
        int n = ivmon_ring_read(&c->ring, rec.b, sizeof rec.b, &why);
        if (n > 0) {
            if (bench_check(&rec, n, cfg->rec_len, &expect, err) < 0)
                return -1;
            if (++since_commit == RING_COMMIT_EVERY) {
                ivmon_ring_consumer_commit(&c->ring);
                since_commit = 0;
            }
            continue;
        }
        if (n < 0)
            return bench_fail(err, "ivmon_ring_read after seq %llu: %s",
                              (unsigned long long)(expect - 1), why);
        /* Empty. prepare_sleep publishes our index and raises cons_waiting; if a record slipped
         * in meanwhile it withdraws the request and says so, and we go on reading. No spinning
         * here: a monitor sleeps in its poll loop, so the bench consumer does too. */
        since_commit = 0;
        if (gone)
            return bench_fail(err, "the producer exited after seq %llu of %llu was read",
                              (unsigned long long)(expect - 1), (unsigned long long)cfg->count);
        if (getenv("LINGER") &&
            ivmon_ring_consumer_linger(&c->ring, (unsigned)atoi(getenv("LINGER"))))
            continue;
        if (ivmon_ring_consumer_prepare_sleep(&c->ring)) {
            uint64_t v;
            ssize_t r = read(c->efd, &v, sizeof v);
            /* EINTR: most likely SIGCHLD; the check above decides on the next pass. */
            if (r < 0 && errno != EINTR)
                return bench_fail(err, "eventfd read: %s", strerror(errno));
            if (r >= 0 && r != sizeof v)
                return bench_fail(err, "eventfd read: short");
            st->wakeups++;
            /* Usually the producer cleared the flag when it rang; but the eventfd may have held
             * a stale doorbell from an earlier race, and then the flag is still up. */
            ivmon_ring_consumer_awake(&c->ring);
        }
    }
    ivmon_ring_consumer_commit(&c->ring);
    return 0;
}

static void ring_close(struct bench_chan *c)
{
    if (c->map)
        munmap(c->map, c->region_len);
    c->map = NULL;
    if (c->memfd >= 0)
        close(c->memfd);
    if (c->efd >= 0)
        close(c->efd);
    c->memfd = c->efd = -1;
}

const struct bench_xport bench_xport_ring_batch = {
    .name = "ring-batch",
    .label = "libivmon ring, batched publish",
    .setup = ring_setup,
    .producer_open = ring_producer_open,
    .produce = ring_produce_batched,
    .consumer_open = ring_consumer_open,
    .consume = ring_consume,
    .close = ring_close,
};

const struct bench_xport bench_xport_ring = {
    .name = "ring",
    .label = "libivmon ring",
    .setup = ring_setup,
    .producer_open = ring_producer_open,
    .produce = ring_produce,
    .consumer_open = ring_consumer_open,
    .consume = ring_consume,
    .close = ring_close,
};
