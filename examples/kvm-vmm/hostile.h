/* SPDX-License-Identifier: MIT */
/*
 * The hostile payload (VMM_MODE_HOSTILE): what a broken or malicious guest does to the kvm:
 * transport, step by step, on two vCPUs taking turns, and then what a good guest does. The
 * payload (payload/payload.c) performs the steps; tests/kvm checks that libivmon counted each
 * one exactly and still delivered every good record. Freestanding.
 *
 * Every record below is a file record of payload_abi.h (VMM_FILE_*) with a path of the given
 * length: VMM_FILE_LEN(path) bytes. Steps, by sequence number:
 *   1  HELLO, sent whole
 *   2  fragments out of order: 0, 2, 1, 3, 4, ...        a gap: damaged; the rest unmatched
 *   3  every fragment claims a length of 16385           refused (a field out of range)
 *   4  the record's own header gives a wrong length      arrives whole, malformed
 *   5  a payload bit of fragment 1 flipped               refused (check); then a gap
 *   6  the record CRC wrong, every fragment good         damaged
 *   7  fragment 1 sent 100 more times                    64 duplicates: expired; then unmatched
 *   8  fragments 0-1, a pause over expire_ms, the rest   expired (time); the rest unmatched
 *   9, 10  half of 9 on vCPU 0, half of 10 on vCPU 1, the rest of 9, the rest of 10: delivered
 *   11 fragments 0-2 on vCPU 0, the rest on vCPU 1       unmatched on vCPU 1 ...
 *   12 a new record on vCPU 0                            ... 11 damaged (superseded), 12 delivered
 *   13 half, a fragment of another record (seq 200), the rest: one unmatched, 13 delivered
 *   -  HOSTILE_GARBAGE traps that are not fragments, an `out dx, ax` and an `in al, dx` on the
 *      port, one fragment made for K = 2                 all refused
 *   14 a one-fragment heartbeat, the trap replayed       delivered once, one duplicate
 *   15..15+HOSTILE_GOOD-1  good records, vCPUs alternating   delivered
 *   15+HOSTILE_GOOD        the closing heartbeat         delivered
 */
#ifndef IVMON_EXAMPLE_HOSTILE_H
#define IVMON_EXAMPLE_HOSTILE_H

#include "ivmon/proto.h"
#include "payload_abi.h"

#define HOSTILE_PATH       300u  /* most steps' records: 383 bytes, 7 fragments */
#define HOSTILE_PATH_SHORT 100u  /* step 12: 183 bytes, 4 fragments */
#define HOSTILE_PATH_LONG  4000u /* step 7: 4083 bytes, 73 fragments */
#define HOSTILE_REPEATS    100u  /* step 7 */
#define HOSTILE_SLEEP_MS   250u  /* step 8: pauses of this many ms (VMM_PORT_SLEEP takes a byte) */
#define HOSTILE_SLEEPS     4u    /* ... this many: 1 s, twice the test's expire_ms */
#define HOSTILE_EXPIRE_MS                                                                          \
    500u /* far above any other pause between two fragments, even on a                             \
          * loaded machine, so only step 8 expires by time */
#define HOSTILE_GARBAGE  20u
#define HOSTILE_GOOD     8u
#define HOSTILE_LAST_SEQ (15u + HOSTILE_GOOD)

/* The good records' path lengths (seq 15 + i): typical, long, the longest, tiny, ... */
static inline unsigned hostile_good_path(unsigned i)
{
    static const unsigned lens[HOSTILE_GOOD] = {80, 2000, 4096, 1, 300, 55, 4095, 160};
    return lens[i % HOSTILE_GOOD];
}

#endif /* IVMON_EXAMPLE_HOSTILE_H */
