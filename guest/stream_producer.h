/* SPDX-License-Identifier: MIT */
/*
 * The producer of a stream transport (virtio-serial): records written back to back into a file
 * descriptor with write(2). It is the stream's counterpart of ivmon_producer (src/ring.h): the
 * same sequence numbers, the same loss reports, the same choice between dropping and waiting,
 * and a batch mode that makes one write() per batch instead of one per record.
 *
 * Framing: the stream is whole records, each exactly hdr.len bytes, no padding (a ring pads to
 * IVMON_REC_ALIGN; a stream needs no alignment). The consumer reads a header, checks len, then
 * reads the rest (docs/PROTOCOL.md, "Streams").
 *
 * Loss. The descriptor is non-blocking. Bytes it does not take wait in a queue of
 * IVMON_STREAM_QUEUE bytes here, and go out before anything else. A record that does not fit
 * the queue is, in drop mode, dropped and counted, and a LOST record names it when room returns,
 * exactly as with a full ring. In lossless mode it is refused (-EAGAIN, nothing taken) and the
 * caller waits with ivmon_stream_wait(): a blocking write() with a timeout, which loses nothing.
 * Unlike a ring, the queue is the producer's own memory: what it holds when the process dies
 * never reaches the consumer, which counts those sequence numbers as missed. Writes carry whole
 * records only, at most IVMON_STREAM_WRITE_MAX bytes, so a port that takes each write() whole
 * (virtio-serial does) is never left with half a record.
 */
#ifndef IVMON_GUEST_STREAM_PRODUCER_H
#define IVMON_GUEST_STREAM_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "ivmon/proto.h"

/* Bytes held while the descriptor takes nothing: four of the largest records. */
#define IVMON_STREAM_QUEUE (4u * IVMON_REC_MAX)
/* Largest write(): Linux's virtio_console makes one buffer of at most 32 KiB per write() and
 * takes it whole or not at all. */
#define IVMON_STREAM_WRITE_MAX (32u << 10)
/* A batch is written once this many bytes are queued (the ring publishes at the same size). */
#define IVMON_STREAM_BATCH 4096u

struct ivmon_stream_producer {
    int fd;       /* non-blocking; owned by the backend */
    int lossless; /* 1: a full queue refuses with -EAGAIN instead of dropping */
    uint64_t next_seq;
    uint64_t lost_first; /* pending loss range, valid while lost_count > 0 */
    uint64_t lost_count;
    uint64_t dropped_total;
    uint64_t writes; /* write() calls that took bytes */
    size_t head;     /* queue[head, tail) is not written yet */
    size_t tail;
    size_t
        boundary; /* the first record boundary at or after head (head, unless a write was short) */
    uint8_t queue[IVMON_STREAM_QUEUE];
};

/* Starts a producer on fd with sequence number 1. */
void ivmon_stream_init(struct ivmon_stream_producer *s, int fd, int lossless);

/* Emits one record (rec->len bytes, type and time_ns set; the producer sets seq) and writes what
 * the descriptor takes at once. A pending loss is reported first by a LOST record. Returns:
 *   0        taken: written, or queued until the descriptor takes it;
 *   -ENOBUFS drop mode, the queue is full: dropped and counted, a LOST record will follow;
 *   -EAGAIN  lossless mode, the queue is full: nothing taken, wait and try again;
 *   -EINVAL  the record is malformed (bad length);
 *   another negative errno: the descriptor failed (the record was taken or dropped as above;
 *            the error is the device's, e.g. -EIO). */
int ivmon_stream_emit(struct ivmon_stream_producer *s, struct ivmon_rec_hdr *rec);

/* Like ivmon_stream_emit for a producer with more records at hand: the record is queued and
 * written only once IVMON_STREAM_BATCH bytes are queued or at ivmon_stream_publish(), so a batch
 * costs one write() (and, on virtio-serial, one notification of the host) instead of one per
 * record. */
int ivmon_stream_emit_more(struct ivmon_stream_producer *s, struct ivmon_rec_hdr *rec);

/* Writes what the descriptor takes of the queue, without waiting. Returns 0 or the negative
 * errno of a failed write (not -EAGAIN: a full descriptor is no error). */
int ivmon_stream_publish(struct ivmon_stream_producer *s);

/* Waits up to timeout_ms (< 0: without limit) until the descriptor takes bytes, then writes
 * what it takes of the queue. Returns 0 when it made room or the queue is empty; -ETIMEDOUT; or
 * a negative errno. A port without its host end (poll says POLLHUP) is looked at every 10 ms. */
int ivmon_stream_wait(struct ivmon_stream_producer *s, int timeout_ms);

/* Bytes queued and not written yet. */
size_t ivmon_stream_queued(const struct ivmon_stream_producer *s);

#endif /* IVMON_GUEST_STREAM_PRODUCER_H */
