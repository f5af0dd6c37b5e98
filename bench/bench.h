/* SPDX-License-Identifier: MIT */
/*
 * ivmon-bench-ring: shared definitions.
 *
 * The benchmark moves the same file-event records from a producer process to a consumer process
 * over three transports. Fairness lives in this header: every transport builds its records with
 * bench_build() and checks them with bench_check(), both inline here, so the per-record work
 * outside the transport itself is the same machine code everywhere.
 */
#ifndef IVMON_BENCH_H
#define IVMON_BENCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ivmon/proto.h"
#include "ring.h"

/* Smallest record the bench builds: a header and a file body, no variable bytes. */
#define BENCH_REC_MIN ((uint32_t)(sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_file)))
/* Largest: one pipe write of at most PIPE_BUF bytes is atomic, so a pipe record never splits. */
#define BENCH_REC_LIMIT 4096u
#define BENCH_ERR_MAX   256u

struct bench_cfg {
    uint64_t count;     /* records per run */
    uint32_t rec_len;   /* bytes per record, header included */
    size_t buf_bytes;   /* ring data area; pipe and socket buffers are asked for as much */
    unsigned timeout_s; /* a run that takes longer is a hang and fails */
};

/* What the producer process measured; it lives in a MAP_SHARED page so the parent can read it
 * after waitpid(). */
struct bench_prod_stats {
    uint64_t t0_ns;      /* CLOCK_MONOTONIC just before the first record */
    uint64_t doorbells;  /* ring: eventfd writes (emit returned 1) */
    uint64_t full_waits; /* ring: records that met a full ring at least once (-EAGAIN) */
    uint64_t yields;     /* ring: sched_yield() calls while the ring was full */
    uint64_t cpu_ns;     /* user + system CPU of the producer during the run */
    uint64_t nvcsw;      /* voluntary context switches (it blocked) */
    uint64_t nivcsw;     /* involuntary context switches (it was preempted) */
    int ok;
    char err[BENCH_ERR_MAX];
};

struct bench_cons_stats {
    uint64_t t1_ns;   /* CLOCK_MONOTONIC after the last record was checked */
    uint64_t wakeups; /* ring: blocking reads of the eventfd */
    uint64_t cpu_ns;
    uint64_t nvcsw;
    uint64_t nivcsw;
};

/* One transport instance. Fields a transport does not use stay -1 / NULL. */
struct bench_chan {
    int fd[2]; /* pipe or socketpair: [0] the consumer's end, [1] the producer's end */
    int memfd; /* ring: the shared region */
    int efd;   /* ring: the doorbell */
    size_t region_len;
    void *map; /* ring: this process's own mapping of memfd */
    struct ivmon_ring ring;
    struct ivmon_producer prod;
    char note[128]; /* buffer sizes the kernel actually granted, for the report */
};

/* A transport. setup runs in the parent before fork; *_open run in the child (producer) or the
 * parent (consumer) after fork and before the clock starts; produce/consume are the timed part;
 * close runs in both processes and copes with a half-set-up channel. All return 0 or -1 with a
 * message in err (BENCH_ERR_MAX bytes). */
struct bench_xport {
    const char *name;
    const char *label; /* for the report */
    int (*setup)(struct bench_chan *c, const struct bench_cfg *cfg, char *err);
    int (*producer_open)(struct bench_chan *c, char *err);
    int (*produce)(struct bench_chan *c, const struct bench_cfg *cfg, struct bench_prod_stats *st,
                   char *err);
    int (*consumer_open)(struct bench_chan *c, char *err);
    int (*consume)(struct bench_chan *c, const struct bench_cfg *cfg, struct bench_cons_stats *st,
                   char *err);
    void (*close)(struct bench_chan *c);
};

/* Set by the SIGCHLD handler in the consumer (parent) process once the producer has exited. */
extern volatile sig_atomic_t bench_producer_gone;

extern const struct bench_xport bench_xport_ring;
extern const struct bench_xport bench_xport_ring_batch;
extern const struct bench_xport bench_xport_pipe;
extern const struct bench_xport bench_xport_seqpacket;

/* A record buffer. The union gives the header the alignment the ring code expects and lets
 * ivmon_producer_emit() take it as a struct ivmon_rec_hdr without breaking aliasing rules. */
union bench_rec {
    struct ivmon_rec_hdr hdr;
    unsigned char b[IVMON_REC_MAX];
};

/* Path bytes copied into every record (bench_path_init fills them once). */
extern char bench_path[BENCH_REC_LIMIT];
void bench_path_init(void);

/* Formats err (BENCH_ERR_MAX bytes) and returns -1, so failures read `return bench_fail(...)`. */
int bench_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline uint64_t bench_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Builds record number seq as an agent would: header with a real timestamp, file body,
 * path bytes. The ring's producer overwrites seq itself; the other transports keep this one. */
static inline void bench_build(union bench_rec *rec, uint32_t len, uint64_t seq)
{
    struct ivmon_rec_hdr h = {
        .type = IVMON_REC_FILE,
        .flags = 0,
        .len = len,
        .seq = seq,
        .time_ns = bench_now_ns(CLOCK_REALTIME),
    };
    /* With len == 64 there is no room for a path; proto.h wants path_len != 0, so such a record
     * would fail the core's body validation. The bench checks headers only; see results.md. */
    struct ivmon_rec_file f = {
        .op = IVMON_OP_OPEN,
        .pid = 4242,
        .tid = 4242 + (uint32_t)(seq & 0xff),
        .ppid = 1,
        .uid = 1000,
        .gid = 1000,
        .path_len = (uint16_t)(len - BENCH_REC_MIN),
    };
    memcpy(rec->b, &h, sizeof h);
    memcpy(rec->b + sizeof h, &f, sizeof f);
    memcpy(rec->b + BENCH_REC_MIN, bench_path, len - BENCH_REC_MIN);
}

/* Checks a record the consumer has copied out: the length the transport delivered, the header,
 * and that its sequence number is the next one. Returns 0 or -1 with err set. */
static inline int bench_check(const union bench_rec *rec, long got, uint32_t len, uint64_t *expect,
                              char *err)
{
    struct ivmon_rec_hdr h;
    memcpy(&h, rec->b, sizeof h);
    if (got != (long)len || h.len != len || h.type != IVMON_REC_FILE || h.flags != 0)
        return bench_fail(err, "bad record after seq %llu: got %ld bytes, len %u type %u flags %u",
                          (unsigned long long)(*expect - 1), got, h.len, h.type, h.flags);
    if (h.seq != *expect)
        return bench_fail(err,
                          "sequence gap: expected seq %llu, got %llu (records lost or reordered)",
                          (unsigned long long)*expect, (unsigned long long)h.seq);
    (*expect)++;
    return 0;
}

#endif /* IVMON_BENCH_H */
