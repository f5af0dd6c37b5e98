/* SPDX-License-Identifier: MIT */
/*
 * ivmon-vchan-produce: the conventional alternative in the Xen bench (bench/xen/run.sh). The same
 * records as ivmon-produce (guest/tools/synth_record.h) written into a libxenvchan stream, one
 * libxenvchan_write per record (more only while the ring is full; vchan_io.h), as a program that
 * hands its records to an existing Xen channel would; the dom0 reader (bench/xen/reader.c)
 * decodes and checks them.
 *
 *   ivmon-vchan-produce [--count N] [--size BYTES] [--ring BYTES] XS_PATH
 *
 * Runs in the guest as the vchan server (gntalloc + evtchn, the rendezvous under XS_PATH in
 * XenStore) for dom0, waits for the reader to connect, sends a HELLO (seq 1), N FILE records
 * (seq 2..N+1) and a HEARTBEAT (seq N+2, produced N+2), waits for the reader's one-byte answer
 * that it checked the heartbeat, and prints one JSON line, as ivmon-produce does:
 *   {"produced":N+2,"dropped":0,"file_records":N,"elapsed_ns":T,"cpu_ns":C}
 * elapsed_ns runs from the first FILE record to the reader's answer; cpu_ns is this
 * process's user + system time over the same span. Linked statically with libxen-dev's
 * libxenvchan.a, as the labs' vchan_test was. Exit status: 0; 1 a vchan error; 2 usage.
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
#include "uri.h"
#include "vchan_io.h"

#define PROGRAM         "ivmon-vchan-produce"
#define CONNECT_TIMEOUT 120 /* seconds to wait for the reader */

/* Sends one record (seq set here) in full. Returns 0 or -1. */
static int send_record(struct libxenvchan *c, union ivmon_enc_buf *rec, uint64_t seq)
{
    rec->hdr.seq = seq;
    return vchan_write_all(c, rec, rec->hdr.len);
}

int main(int argc, char **argv)
{
    static union ivmon_enc_buf rec;
    static struct synth_record synth;
    uint64_t count = 1000, size = 128, ring = 256 << 10;
    static const struct option lo[] = {
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"ring", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    int c, r = 0;
    while (r == 0 && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        uint64_t *opt = c == 'n' ? &count : c == 's' ? &size : c == 'r' ? &ring : NULL;
        r = opt ? ivmon_guest_parse_bytes(optarg, opt) : -EINVAL;
    }
    if (r < 0 || optind != argc - 1 || size > SYNTH_SIZE_MAX || ring < 4096 || ring > (1u << 20) ||
        (ring & (ring - 1))) {
        fprintf(stderr,
                "usage: " PROGRAM " [--count N] [--size BYTES (<= %zu)] [--ring BYTES (a power "
                "of two, 4K..1M)] XS_PATH\n(numbers may end in K, M or G: 1024-based)\n",
                (size_t)SYNTH_SIZE_MAX);
        return 2;
    }
    const char *path = argv[optind];

    /* The reader's direction is our write ring; the other one carries its answer. */
    struct libxenvchan *v = libxenvchan_server_init(NULL, 0, path, 0, (size_t)ring);
    if (!v) {
        fprintf(stderr, PROGRAM ": libxenvchan_server_init(%s): %s\n", path, strerror(errno));
        return 1;
    }
    v->blocking = 0; /* vchan_io.h waits, a bounded time at once */
    for (int i = 0; libxenvchan_is_open(v) == 2; i++) {
        if (i > CONNECT_TIMEOUT * 10) {
            fprintf(stderr, PROGRAM ": no reader connected to %s\n", path);
            libxenvchan_close(v);
            return 1;
        }
        usleep(100000);
    }

    if (ivmon_guest_hello_encode(&rec, sizeof rec, 0, PROGRAM) < 0 || send_record(v, &rec, 1) < 0)
        goto broken;
    synth_record_init(&synth, size);
    uint64_t start = ivmon_guest_monotonic_ns(), cpu0 = ivmon_guest_cpu_ns();
    for (uint64_t i = 1; i <= count; i++) {
        if (synth_record_encode(&synth, i, &rec) < 0 || send_record(v, &rec, i + 1) < 0)
            goto broken;
    }
    if (ivmon_enc_heartbeat(&rec, sizeof rec, ivmon_guest_realtime_ns(), count + 2, 0) < 0 ||
        send_record(v, &rec, count + 2) < 0)
        goto broken;
    char ack;
    if (vchan_read_all(v, &ack, 1, NULL, NULL) < 0)
        goto broken;
    uint64_t elapsed = ivmon_guest_monotonic_ns() - start, cpu = ivmon_guest_cpu_ns() - cpu0;
    uint64_t produced = count + 2;
    printf("{\"produced\":%llu,\"dropped\":0,\"file_records\":%llu,\"elapsed_ns\":%llu,"
           "\"cpu_ns\":%llu}\n",
           (unsigned long long)produced, (unsigned long long)count, (unsigned long long)elapsed,
           (unsigned long long)cpu);
    fflush(stdout);
    libxenvchan_close(v);
    return 0;

broken:
    fprintf(stderr, PROGRAM ": the vchan broke (reader gone?): %s\n", strerror(errno));
    libxenvchan_close(v);
    return 1;
}
