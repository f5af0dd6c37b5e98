/* SPDX-License-Identifier: MIT */
/*
 * ivmon-scribble: a hostile guest for the VM tests. It maps the shared region the agent would
 * produce into and overwrites it with garbage, as a compromised guest kernel could.
 *
 *   ivmon-scribble [--seconds S] [--seed N] REGION
 *
 * REGION is a file to map whole, read-write and shared: in a guest, the ivshmem device's BAR2
 * (/sys/bus/pci/devices/DDDD:BB:DD.F/resource2, after writing 1 to its `enable`). It waits up to
 * 60 s for the host to format the ring (a non-zero magic), so that the attack hits a consumer
 * that has attached, then for S seconds (default 3) writes random 64-bit words: every round one
 * into the producer index, one into the record at the consumer index, and 64 at random offsets
 * anywhere in the region, header included. A random producer index is almost never a valid one
 * (it would have to land within one ring size of the consumer), so the consumer must notice.
 *
 * Prints "ivmon-scribble: N words written" on stderr. Exit status: 0; 1 the region could not be
 * used or was never formatted; 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ivmon/proto.h"

#define PROGRAM "ivmon-scribble"

static uint64_t rng_state;

/* xorshift64*: plenty for garbage, and reproducible from --seed. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void put_word(volatile uint8_t *base, size_t size, size_t off, uint64_t v)
{
    off &= ~(size_t)7;
    if (off + 8 <= size)
        *(volatile uint64_t *)(base + off) = v;
}

static int usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " [--seconds S] [--seed N] REGION\n");
    return 2;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    unsigned long long seed = 0x1f2e3d4c5b6a7988ULL;
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        char *end;
        if (!strcmp(argv[i], "--seconds"))
            seconds = strtod(argv[i + 1], &end);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], &end, 0);
        else
            return usage();
        if (*end || end == argv[i + 1])
            return usage();
    }
    if (i + 1 != argc || seconds <= 0)
        return usage();
    rng_state = seed ? seed : 1;

    int fd = open(argv[i], O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)IVMON_RING_HDR_SIZE) {
        fprintf(stderr, PROGRAM ": %s: %s\n", argv[i], fd < 0 ? strerror(errno) : "too small");
        return 1;
    }
    size_t size = (size_t)st.st_size;
    volatile uint8_t *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        fprintf(stderr, PROGRAM ": mmap %s: %s\n", argv[i], strerror(errno));
        return 1;
    }
    volatile struct ivmon_ring_hdr *h = (volatile struct ivmon_ring_hdr *)base;
    double t0 = now_s();
    while (h->magic != IVMON_RING_MAGIC) {
        if (now_s() - t0 > 60) {
            fprintf(stderr, PROGRAM ": the host never formatted the ring\n");
            return 1;
        }
        usleep(10000);
    }

    unsigned long long words = 0;
    t0 = now_s();
    while (now_s() - t0 < seconds) {
        h->prod = rng_next();
        uint64_t data = h->data_size, cons = h->cons;
        if (data && data <= size - IVMON_RING_HDR_SIZE)
            put_word(base, size, IVMON_RING_HDR_SIZE + (cons & (data - 1)), rng_next());
        for (int k = 0; k < 64; k++)
            put_word(base, size, (size_t)(rng_next() % size), rng_next());
        words += 66;
        usleep(1000);
    }
    fprintf(stderr, PROGRAM ": %llu words written\n", words);
    return 0;
}
