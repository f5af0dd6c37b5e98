/* SPDX-License-Identifier: MIT */
/*
 * ivmon-clocksync: the guest half of the VM bench's clock comparison (clock_page.h).
 *
 *   ivmon-clocksync [--rounds N] [--tries N] [--good-ns NS] PCI_ADDRESS
 *
 * PCI_ADDRESS (e.g. 0000:00:05.0) is the ivshmem-plain device holding the clock page. Runs a
 * session of N round trips (default 5000, at most a second's worth) and keeps the one with the
 * smallest round-trip time;
 * if that is above --good-ns (default 2000: the host's spinner was preempted, as happens on a
 * shared machine, where another busy process leaves the spinner and the vCPU one CPU to share),
 * runs up to --tries sessions (default 20) and keeps the best round of all.
 * Prints one line, "offset_ns=O rtt_ns=R at_ns=T rounds=N sessions=S": the host's
 * CLOCK_REALTIME minus the guest's, in nanoseconds, is O +- R/2 at guest time T (the middle of the
 * best round; the offset drifts). It does not set the guest's clock: the host corrects
 * the time stamps it compares (a stepped clock would hide the drift between two syncs, and the
 * bench measures that drift by syncing before and after each run).
 * Exit status: 0; 1 no device, no host, or no round trip completed; 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock_page.h"

#define PROGRAM        "ivmon-clocksync"
#define HOST_WAIT_NS   10000000000ull /* for the host to map the page and to answer a session */
#define ROUND_WAIT_NS  1000000000ull  /* one round trip */
#define SESSION_MAX_NS 1000000000ull  /* a session ends after this even if rounds are left */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The page is shared with the host: every access is atomic, so the compiler neither caches nor
 * tears it. Acquire/release order the host's host_ns against its pong. */
static uint64_t load(uint64_t *p)
{
    return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire);
}

static void store(uint64_t *p, uint64_t v)
{
    atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_release);
}

static struct vm_clock_page *map_page(const char *pci)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/enable", pci);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "1", 1) < 0) {
            /* enabling an enabled device is harmless, and a failure shows in the mmap below */
        }
        close(fd);
    }
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource2", pci);
    fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, PROGRAM ": open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    void *m = mmap(NULL, sizeof(struct vm_clock_page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        fprintf(stderr, PROGRAM ": mmap %s: %s\n", path, strerror(errno));
        return NULL;
    }
    return m;
}

/* Waits until *p == want, for at most limit_ns. Returns 1 if it came. */
static int spin_until(uint64_t *p, uint64_t want, uint64_t limit_ns)
{
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    while (load(p) != want) {
        if (clock_ns(CLOCK_MONOTONIC) - start > limit_ns)
            return 0;
    }
    return 1;
}

struct best {
    uint64_t rtt;
    int64_t offset;
    uint64_t at; /* guest time of the best round's middle */
    unsigned long rounds;
};

/* One session of rounds round trips; improves *b. Returns 0 or -ETIMEDOUT. */
static int session(struct vm_clock_page *pg, unsigned long rounds, struct best *b)
{
    uint64_t s = load(&pg->session) + 1;
    store(&pg->session, s);
    /* The host looks for a session once a millisecond: wait without burning the vCPU. */
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    while (load(&pg->ack) != s) {
        if (clock_ns(CLOCK_MONOTONIC) - start > HOST_WAIT_NS)
            return -ETIMEDOUT;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    /* From our own last ping, not the host's last pong: a round the host never answered must
     * not be asked again under the same number, which the host would take for an old one. */
    uint64_t k = load(&pg->ping);
    int r = 0;
    start = clock_ns(CLOCK_MONOTONIC);
    for (unsigned long i = 0; i < rounds && clock_ns(CLOCK_MONOTONIC) - start < SESSION_MAX_NS;
         i++) {
        k++;
        uint64_t t1 = clock_ns(CLOCK_REALTIME);
        store(&pg->ping, k);
        if (!spin_until(&pg->pong, k, ROUND_WAIT_NS)) {
            r = -ETIMEDOUT;
            break;
        }
        uint64_t t4 = clock_ns(CLOCK_REALTIME);
        uint64_t host = load(&pg->host_ns);
        b->rounds++;
        if (t4 - t1 < b->rtt) {
            b->rtt = t4 - t1;
            b->at = t1 + (t4 - t1) / 2;
            b->offset = (int64_t)(host - b->at);
        }
    }
    store(&pg->done, s);
    return r;
}

static int parse_ul(const char *opt, const char *s, unsigned long *ret)
{
    char *end;
    errno = 0;
    *ret = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, PROGRAM ": %s: not a number: %s\n", opt, s);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"rounds", required_argument, NULL, 'r'},
        {"tries", required_argument, NULL, 't'},
        {"good-ns", required_argument, NULL, 'g'},
        {NULL, 0, NULL, 0},
    };
    unsigned long rounds = 5000, tries = 20, good = 2000;
    for (;;) {
        int c = getopt_long(argc, argv, "", lo, NULL);
        if (c == -1)
            break;
        int r = -EINVAL;
        if (c == 'r')
            r = parse_ul("--rounds", optarg, &rounds);
        else if (c == 't')
            r = parse_ul("--tries", optarg, &tries);
        else if (c == 'g')
            r = parse_ul("--good-ns", optarg, &good);
        if (r < 0)
            return 2;
    }
    if (optind != argc - 1 || rounds == 0 || tries == 0) {
        fprintf(stderr, "usage: " PROGRAM " [--rounds N] [--tries N] [--good-ns NS] PCI_ADDRESS\n");
        return 2;
    }
    struct vm_clock_page *pg = map_page(argv[optind]);
    if (!pg)
        return 1;
    if (!spin_until(&pg->magic, VM_CLOCK_MAGIC, HOST_WAIT_NS)) {
        fprintf(stderr, PROGRAM ": no host on the clock page (magic never written)\n");
        return 1;
    }
    struct best b = {.rtt = UINT64_MAX};
    unsigned long n = 0;
    while (n < tries && b.rtt > good) {
        n++;
        if (session(pg, rounds, &b) < 0)
            fprintf(stderr, PROGRAM ": session %lu: the host stopped answering\n", n);
    }
    if (b.rounds == 0) {
        fprintf(stderr, PROGRAM ": no round trip completed\n");
        return 1;
    }
    printf("offset_ns=%lld rtt_ns=%llu at_ns=%llu rounds=%lu sessions=%lu\n", (long long)b.offset,
           (unsigned long long)b.rtt, (unsigned long long)b.at, b.rounds, n);
    return 0;
}
