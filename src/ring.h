/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory ring: one single-producer/single-consumer ring of variable-length records,
 * used by every shared-memory transport. This code is compiled into both the host library and
 * the guest agent; it depends on libc's memcpy/memset and C11 atomics only.
 *
 * Trust: each side keeps private copies of everything it needs (data size, its own index) and
 * reads the peer's index once per batch, bounded against the private size. The consumer copies
 * a record out of shared memory before looking at it (Xen io/ring.h discipline).
 */
#ifndef IVMON_RING_H
#define IVMON_RING_H

#include <stddef.h>
#include <stdint.h>

#include "ivmon/proto.h"

struct ivmon_ring {
    struct ivmon_ring_hdr *hdr; /* shared */
    uint8_t *data;              /* shared, size bytes */
    uint64_t size;              /* private copy, power of two */
    uint64_t mask;
    uint64_t cons;      /* consumer: private index, published by ivmon_ring_consumer_commit */
    uint64_t prod_seen; /* consumer: the producer index read at the start of the batch */
    uint64_t prod;      /* producer: private index */
    uint32_t flags;     /* private copy of hdr->flags */
};

/* Largest data area that fits a region of region_size bytes, or 0 if none does. */
uint64_t ivmon_ring_data_size_for(size_t region_size);

/* Writes a fresh header at base (region_size bytes) and publishes the magic last, so a peer
 * that sees the magic sees a complete header. Returns 0 or -EINVAL if the region is too small. */
int ivmon_ring_format(void *base, size_t region_size, uint32_t flags);

/* Validates the header of a region of region_size bytes mapped at base and fills r with private
 * copies. Returns 0; -EAGAIN if the region is not formatted yet (magic zero); -EPROTO with
 * *ret_why set if the header is invalid (bad magic, version, size or indices). */
int ivmon_ring_attach(struct ivmon_ring *r, void *base, size_t region_size, const char **ret_why);

/* ---- consumer ---- */

/* Copies the next record into buf (at least IVMON_REC_MAX bytes) and advances the private
 * consumer index. Returns the record length (> 0), 0 if the ring is empty, -EINVAL if cap is
 * below IVMON_REC_MAX, or -EPROTO with *ret_why set if the producer broke the ring (index
 * overflow, bad framing). */
int ivmon_ring_read(struct ivmon_ring *r, void *buf, size_t cap, const char **ret_why);

/* Publishes the private consumer index so the producer sees the space. */
void ivmon_ring_consumer_commit(struct ivmon_ring *r);

/* The consumer is awake: ask the producer not to ring. */
void ivmon_ring_consumer_awake(struct ivmon_ring *r);

/* Before sleeping, watches the producer index for up to spins pause instructions. Returns 1 as
 * soon as records arrive, 0 if none did. A consumer that keeps up with a busy producer would
 * otherwise sleep after nearly every record, and each sleep costs both sides a system call (the
 * doorbell); lingering a few microseconds lets records accumulate into batches. */
int ivmon_ring_consumer_linger(struct ivmon_ring *r, unsigned spins);

/* The linger the host library uses: a few microseconds of pause instructions. */
#define IVMON_RING_LINGER_SPINS 256u

/* The consumer is about to sleep. Returns 1 if it may (the ring is empty and the producer will
 * ring the doorbell for the next record), 0 if records arrived meanwhile. */
int ivmon_ring_consumer_prepare_sleep(struct ivmon_ring *r);

/* ---- producer ---- */

/* Producer state on top of the ring: sequence numbers and loss accounting. */
struct ivmon_producer {
    struct ivmon_ring ring;
    uint64_t next_seq;   /* sequence number the next record takes; starts at 1 */
    uint64_t lost_first; /* pending loss range, valid while lost_count > 0 */
    uint64_t lost_count;
    uint64_t dropped_total; /* records dropped over this instance's life */
    uint64_t cons_cache;    /* last consumer index read; never ahead of the real one */
    uint64_t published;     /* the producer index the consumer can see */
    int doorbell_owed;      /* a publish inside a failed emit wanted the doorbell */
    int lossless;           /* 1: a full ring returns -EAGAIN instead of dropping */
};

/* Attaches the producer to an attached ring; continues from the ring's published index. */
void ivmon_producer_init(struct ivmon_producer *p, const struct ivmon_ring *r, int lossless);

/* Bytes ivmon_producer_emit_more may hold back before it publishes on its own. */
#define IVMON_PRODUCER_BATCH 4096u

/* Emits one record: rec points to a full record (header + body) of rec->len bytes, with type,
 * flags and time_ns filled in; the producer sets seq. A pending loss is reported first by a
 * IVMON_REC_LOST record. Returns:
 *   1        written, and the consumer asked to be woken: ring the doorbell;
 *   0        written, no doorbell needed;
 *   -ENOBUFS dropped and counted (a lost record will follow when space returns);
 *   -EAGAIN  lossless mode and no room: nothing taken, try again later;
 *   -EINVAL  the record is malformed (bad length).
 * After a negative return, call ivmon_producer_publish() before sleeping: it returns a doorbell
 * the failed call could not report. */
int ivmon_producer_emit(struct ivmon_producer *p, struct ivmon_rec_hdr *rec);

/* Like ivmon_producer_emit, for a producer that has more records at hand (Linux's xmit_more):
 * the record is written but made visible only once IVMON_PRODUCER_BATCH bytes are waiting
 * (returning what publish returns) or when the caller calls ivmon_producer_publish(). Publishing
 * once per batch costs one release store, one fence and one look at cons_waiting per batch
 * instead of per record, and lets the consumer's cache line for the index settle. The caller
 * must call ivmon_producer_publish() when the batch ends and after any negative return. */
int ivmon_producer_emit_more(struct ivmon_producer *p, struct ivmon_rec_hdr *rec);

/* Makes every record written so far visible. Returns 1 if the consumer asked to be woken (ring
 * the doorbell), else 0. */
int ivmon_producer_publish(struct ivmon_producer *p);

#endif /* IVMON_RING_H */
