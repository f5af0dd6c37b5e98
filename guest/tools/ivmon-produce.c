/* SPDX-License-Identifier: MIT */
/*
 * ivmon-produce: a synthetic producer for tests and benchmarks.
 *
 *   ivmon-produce [--count N] [--size BYTES] [--rate PER_SEC] [--lossless]
 *                 [--pause-every N --pause-ms MS] URI
 *
 * Emits a HELLO, then N FILE records (synth_record.h: op modify, this pid, comm
 * "ivmon-produce", path "/ivmon-produce/<i>" padded with 'x' so the record is --size bytes), as
 * fast as possible or at --rate, then flushes (a final HEARTBEAT) and prints one JSON line:
 *   {"produced":LAST_SEQ,"dropped":D,"file_records":N,"elapsed_ns":T,"cpu_ns":C}
 * produced is the last sequence number taken; every record takes one (hello, lost reports, file
 * records, heartbeat), so a consumer can check delivered + lost == produced. elapsed_ns runs from
 * the first FILE record to the end of the flush; cpu_ns is this process's user + system time
 * over the same span, for the benchmarks' CPU per record.
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
    uint64_t count, size, rate, pause_every, pause_ms;
    int lossless;
    const char *uri;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROGRAM " [--count N] [--size BYTES] [--rate PER_SEC] [--lossless]\n"
               "       [--pause-every N --pause-ms MS] URI\n");
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
    enum { OPT_COUNT = 256, OPT_SIZE, OPT_RATE, OPT_LOSSLESS, OPT_PEVERY, OPT_PMS, OPT_HELP };
    static const struct option lo[] = {
        {"count", required_argument, NULL, OPT_COUNT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"lossless", no_argument, NULL, OPT_LOSSLESS},
        {"pause-every", required_argument, NULL, OPT_PEVERY},
        {"pause-ms", required_argument, NULL, OPT_PMS},
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
        case OPT_LOSSLESS:
            o->lossless = 1;
            break;
        case OPT_PEVERY:
            r = parse_u64("--pause-every", optarg, &o->pause_every);
            break;
        case OPT_PMS:
            r = parse_u64("--pause-ms", optarg, &o->pause_ms);
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
    if (optind != argc - 1) {
        usage(stderr);
        return -EINVAL;
    }
    o->uri = argv[optind];
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

int main(int argc, char **argv)
{
    static union ivmon_enc_buf rec;   /* static: 16 KiB */
    static struct synth_record synth; /* holds a path buffer */
    struct opts o = {0};
    struct ivmon_guest_transport *t;
    char err[512];

    if (parse_args(argc, argv, &o) < 0)
        return 2;
    int r = ivmon_guest_transport_open(&t, o.uri, o.lossless ? IVMON_GUEST_OPEN_LOSSLESS : 0, err,
                                       sizeof err);
    if (r < 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        return 1;
    }
    r = ivmon_guest_hello_encode(&rec, sizeof rec, 0, PROGRAM);
    if (r > 0)
        r = ivmon_guest_transport_emit(t, &rec.hdr, -1);
    if (r < 0 && r != -ENOBUFS) {
        fprintf(stderr, PROGRAM ": HELLO: %s\n", strerror(-r));
        ivmon_guest_transport_close(t);
        return 1;
    }

    synth_record_init(&synth, o.size);
    uint64_t start = ivmon_guest_monotonic_ns(), cpu0 = ivmon_guest_cpu_ns();
    for (uint64_t i = 1; i <= o.count; i++) {
        if (synth_record_encode(&synth, i, &rec) < 0) {
            fprintf(stderr, PROGRAM ": cannot encode record %llu\n", (unsigned long long)i);
            ivmon_guest_transport_close(t);
            return 1;
        }
        /* -ENOBUFS (drop mode, full) is the point of some tests: the transport counts it. */
        r = ivmon_guest_transport_emit(t, &rec.hdr, -1);
        if (r < 0 && r != -ENOBUFS) {
            fprintf(stderr, PROGRAM ": emit: %s\n", strerror(-r));
            ivmon_guest_transport_close(t);
            return 1;
        }
        if (o.pause_every && o.pause_ms && i % o.pause_every == 0)
            sleep_ns(o.pause_ms * 1000000u);
        if (o.rate) {
            /* Absolute schedule: record i is due at start + i / rate, so oversleeping once does
             * not lower the average rate. */
            uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)o.rate);
            if (ivmon_guest_monotonic_ns() < due)
                sleep_until(due);
        }
    }

    int status = 0;
    if (ivmon_guest_transport_flush(t, IVMON_GUEST_FLUSH_TIMEOUT_MS) < 0) {
        fprintf(stderr, PROGRAM ": flush timed out: the final heartbeat is not in the ring\n");
        status = 3;
    }
    uint64_t elapsed = ivmon_guest_monotonic_ns() - start, cpu = ivmon_guest_cpu_ns() - cpu0;
    struct ivmon_guest_transport_stats st;
    ivmon_guest_transport_get_stats(t, &st);
    printf("{\"produced\":%llu,\"dropped\":%llu,\"file_records\":%llu,\"elapsed_ns\":%llu,"
           "\"cpu_ns\":%llu}\n",
           (unsigned long long)st.produced, (unsigned long long)st.dropped,
           (unsigned long long)o.count, (unsigned long long)elapsed, (unsigned long long)cpu);
    if (fflush(stdout) != 0)
        status = 1;
    ivmon_guest_transport_close(t);
    return status;
}
