/* SPDX-License-Identifier: MIT */
/*
 * The clock page of the VM bench: a small ivshmem-plain region that the guest's ivmon-clocksync
 * and the host's ivmon-bench-vm-host use to compare their CLOCK_REALTIME, so that a record's
 * guest time stamp and the host's time at the callback can be subtracted.
 *
 * Why shared memory and not a second virtio-serial port: a round trip through a shared page is a
 * few hundred nanoseconds even under TCG, one through virtio-serial at least twice the one-way
 * latency the bench measures on it (tens of microseconds), and half the round trip is the
 * uncertainty of the comparison. Only the page gives a bound well below the latencies.
 *
 * One session (guest side, host side):
 *   1. guest: session = S (any new value);     host, looking every 2 ms: sees S != ack, sets
 *                                               ack = S, and spins on ping until done == S (or
 *                                               5 s pass; a session lasts at most one);
 *   2. guest, round after round (each with k one more than its last ping): t1 = its clock;
 *      ping = k; spins until pong == k; t4 = its clock; reads host_ns, which the host wrote
 *      (its clock when it saw ping == k) before it stored pong = k;
 *   3. guest: done = S.
 * For each round, causality alone bounds the offset host - guest: host_ns - t4 <= offset <=
 * host_ns - t1. The guest takes the round with the smallest t4 - t1 and reports the middle of
 * that interval with half its width as the uncertainty. Fields are naturally aligned 64-bit
 * values, each on its own cache line where the two sides write.
 */
#ifndef IVMON_BENCH_VM_CLOCK_PAGE_H
#define IVMON_BENCH_VM_CLOCK_PAGE_H

#include <stdint.h>

#define VM_CLOCK_MAGIC 0x314b434c43564949ull /* "IIVCLCK1" little-endian */

struct vm_clock_page {
    uint64_t magic; /* written by the host when it maps the page */
    uint64_t session;
    uint64_t ack;
    uint64_t done;
    uint8_t pad0[32];
    uint64_t ping; /* guest */
    uint8_t pad1[56];
    uint64_t pong; /* host */
    uint64_t host_ns;
    uint8_t pad2[48];
};

_Static_assert(sizeof(struct vm_clock_page) == 192, "clock page layout");

#endif /* IVMON_BENCH_VM_CLOCK_PAGE_H */
