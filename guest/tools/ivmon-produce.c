/* SPDX-License-Identifier: MIT */
/*
 * ivmon-produce: a synthetic producer for tests and benchmarks.
 *
 *   ivmon-produce [--count N] [--size BYTES] [--rate PER_SEC] [--batch N] [--lossless]
 *                 [--pause-every N --pause-ms MS] URI
 *   ivmon-produce --encode-only [--count N] [--size BYTES]
 *
 * Emits a HELLO, then N FILE records (synth_record.h: op modify, this pid, comm
 * "ivmon-produce", path "/ivmon-produce/<i>" padded with 'x' so the record is --size bytes, the
 * same bytes the Xen bench's vchan producer sends), as fast as possible or at
 * --rate, each on its own or (--batch N) N at a time between batch_begin and batch_end as the
 * agent sends one fanotify read, then flushes (a final HEARTBEAT) and prints one JSON line:
 *   {"produced":LAST_SEQ,"dropped":D,"file_records":N,"cpu_ns":C,"elapsed_ns":E,
 *    "writes":W,"full_waits":F,"doorbells":B}
 * produced is the last sequence number taken; every record takes one (hello, lost reports, file
 * records, heartbeat), so a consumer can check delivered + lost == produced. cpu_ns is this
 * process's user + system time (CLOCK_PROCESS_CPUTIME_ID) from the HELLO's emit to the end of the
 * flush, elapsed_ns the monotonic time from the first FILE record to the last one's emit; writes,
 * full_waits and doorbells are the transport's counters (transport.h). --encode-only builds and
 * time-stamps the records exactly so but hands them to no transport: the producer's own cost per
 * record, the baseline of the VM bench (produced, dropped and the counters are then 0).
 * Exit status: 0; 1 transport error; 2 usage; 3 the flush timed out (JSON still printed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "identity.h"
#include "record_encode.h"
#include "synth_record.h"
#include "transport.h"
#include "uri.h"

#define PROGRAM "ivmon-produce"

struct opts {
    uint64_t count, size, rate, batch, pause_every, pause_ms;
    int lossless, encode_only;
    const char *uri;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROGRAM " [--count N] [--size BYTES] [--rate PER_SEC] [--batch N]\n"
               "       [--lossless] [--pause-every N --pause-ms MS] URI\n"
               "       " PROGRAM " --encode-only [--count N] [--size BYTES]\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, PROGRAM ": %s: not a number: %s\n", opt, s);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    enum {
        OPT_COUNT = 256,
        OPT_SIZE,
        OPT_RATE,
        OPT_BATCH,
        OPT_LOSSLESS,
        OPT_PEVERY,
        OPT_PMS,
        OPT_ENCODE,
        OPT_HELP
    };
    static const struct option lo[] = {
        {"count", required_argument, NULL, OPT_COUNT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"lossless", no_argument, NULL, OPT_LOSSLESS},
        {"pause-every", required_argument, NULL, OPT_PEVERY},
        {"pause-ms", required_argument, NULL, OPT_PMS},
        {"encode-only", no_argument, NULL, OPT_ENCODE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };

    o->count = 1000;
    o->size = 64;
    for (;;) {
        int c = getopt_long(argc, argv, "", lo, NULL);
        if (c == -1)
            break;
        int r = 0;
        switch (c) {
        case OPT_COUNT:
            r = parse_u64("--count", optarg, &o->count);
            break;
        case OPT_SIZE:
            r = ivmon_guest_parse_bytes(optarg, &o->size);
            if (r < 0)
                fprintf(stderr, PROGRAM ": --size: not a byte count: %s\n", optarg);
            break;
        case OPT_RATE:
            r = parse_u64("--rate", optarg, &o->rate);
            break;
        case OPT_BATCH:
            r = parse_u64("--batch", optarg, &o->batch);
            break;
        case OPT_LOSSLESS:
            o->lossless = 1;
            break;
        case OPT_PEVERY:
            r = parse_u64("--pause-every", optarg, &o->pause_every);
            break;
        case OPT_PMS:
            r = parse_u64("--pause-ms", optarg, &o->pause_ms);
            break;
        case OPT_ENCODE:
            o->encode_only = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
        if (r < 0)
            return r;
    }
    if (optind != argc - !o->encode_only) {
        usage(stderr);
        return -EINVAL;
    }
    o->uri = o->encode_only ? NULL : argv[optind];
    if (o->size > SYNTH_SIZE_MAX) {
        fprintf(stderr, PROGRAM ": --size: at most %zu bytes (a %u-byte path)\n",
                (size_t)SYNTH_SIZE_MAX, IVMON_PATH_MAX);
        return -EINVAL;
    }
    if (o->pause_ms > 3600000u) {
        fprintf(stderr, PROGRAM ": --pause-ms: at most one hour\n");
        return -EINVAL;
    }
    return 0;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Waits until monotonic time target_ns (paced mode). */
static void sleep_until(uint64_t target_ns)
{
    struct timespec ts = {(time_t)(target_ns / 1000000000u), (long)(target_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Builds and emits the FILE records; t NULL (--encode-only): builds them only. Stores the
 * monotonic time the loop took. Returns 0, or 1 after saying what failed. */
static int produce(struct ivmon_guest_transport *t, const struct opts *o, union ivmon_enc_buf *rec,
                   uint64_t *ret_elapsed)
{
    static struct synth_record synth; /* holds a path buffer */
    synth_record_init(&synth, o->size);
    int batch = t && o->batch > 1;
    uint64_t start = ivmon_guest_monotonic_ns();
    for (uint64_t i = 1; i <= o->count; i++) {
        if (batch && i % o->batch == 1)
            ivmon_guest_transport_batch_begin(t);
        if (synth_record_encode(&synth, i, rec) < 0) {
            fprintf(stderr, PROGRAM ": cannot encode record %llu\n", (unsigned long long)i);
            return 1;
        }
        /* -ENOBUFS (drop mode, full) is the point of some tests: the transport counts it. */
        int r = t ? ivmon_guest_transport_emit(t, &rec->hdr, -1) : 0;
        if (r < 0 && r != -ENOBUFS) {
            fprintf(stderr, PROGRAM ": emit: %s\n", strerror(-r));
            return 1;
        }
        if (batch && (i % o->batch == 0 || i == o->count))
            ivmon_guest_transport_batch_end(t);
        if (o->pause_every && o->pause_ms && i % o->pause_every == 0)
            sleep_ns(o->pause_ms * 1000000u);
        if (o->rate) {
            /* Absolute schedule: record i is due at start + i / rate, so oversleeping once does
             * not lower the average rate. */
            uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)o->rate);
            if (ivmon_guest_monotonic_ns() < due)
                sleep_until(due);
        }
    }
    *ret_elapsed = ivmon_guest_monotonic_ns() - start;
    return 0;
}

static int print_summary(const struct ivmon_guest_transport_stats *st, uint64_t file_records,
                         uint64_t cpu, uint64_t elapsed)
{
    printf("{\"produced\":%llu,\"dropped\":%llu,\"file_records\":%llu,\"cpu_ns\":%llu,"
           "\"elapsed_ns\":%llu,\"writes\":%llu,\"full_waits\":%llu,\"doorbells\":%llu}\n",
           (unsigned long long)st->produced, (unsigned long long)st->dropped,
           (unsigned long long)file_records, (unsigned long long)cpu, (unsigned long long)elapsed,
           (unsigned long long)st->writes, (unsigned long long)st->full_waits,
           (unsigned long long)st->doorbells);
    return fflush(stdout) != 0;
}

int main(int argc, char **argv)
{
    static union ivmon_enc_buf rec; /* static: 16 KiB */
    struct opts o = {0};
    struct ivmon_guest_transport *t;
    struct ivmon_guest_transport_stats st = {0};
    uint64_t elapsed = 0;
    char err[512];

    if (parse_args(argc, argv, &o) < 0)
        return 2;
    if (o.encode_only) {
        uint64_t cpu_start = ivmon_guest_cpu_ns();
        if (produce(NULL, &o, &rec, &elapsed))
            return 1;
        return print_summary(&st, o.count, ivmon_guest_cpu_ns() - cpu_start, elapsed);
    }
    int r = ivmon_guest_transport_open(&t, o.uri, o.lossless ? IVMON_GUEST_OPEN_LOSSLESS : 0, err,
                                       sizeof err);
    if (r < 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        return 1;
    }
    r = ivmon_guest_hello_encode(&rec, sizeof rec, 0, PROGRAM);
    /* After the encode: its getrandom() may spin for entropy right after boot, which is not
     * the transport's cost. */
    uint64_t cpu_start = ivmon_guest_cpu_ns();
    if (r > 0)
        r = ivmon_guest_transport_emit(t, &rec.hdr, -1);
    if (r < 0 && r != -ENOBUFS) {
        fprintf(stderr, PROGRAM ": HELLO: %s\n", strerror(-r));
        ivmon_guest_transport_close(t);
        return 1;
    }
    if (produce(t, &o, &rec, &elapsed)) {
        ivmon_guest_transport_close(t);
        return 1;
    }
    int status = 0;
    if (ivmon_guest_transport_flush(t, IVMON_GUEST_FLUSH_TIMEOUT_MS) < 0) {
        fprintf(stderr, PROGRAM ": flush timed out: the final heartbeat did not get out\n");
        status = 3;
    }
    uint64_t cpu = ivmon_guest_cpu_ns() - cpu_start;
    ivmon_guest_transport_get_stats(t, &st);
    if (print_summary(&st, o.count, cpu, elapsed))
        status = 1;
    ivmon_guest_transport_close(t);
    return status;
}
