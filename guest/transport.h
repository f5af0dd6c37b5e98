/* SPDX-License-Identifier: MIT */
/*
 * The guest's producer transport: a shared-memory ring (src/ring.c) plus a way to wake the
 * consumer, a register transport that hands each record to the host as it is emitted (kvm+hcall:
 * fragments through traps), or a byte stream (stream_producer.h: virtio-serial). One handle per
 * producer; not thread-safe (there is a single producer anyway).
 *
 * The generic half (transport.c) owns the producer: sequence numbers, loss accounting, the
 * lossless wait, heartbeats and flush. A backend (transport_backend.h) only maps the region and
 * rings the doorbell, only sends one record, or only opens the stream's descriptor, so backends
 * slot in beside transport_shm.c without touching this API. The same producer (ivmon-agent,
 * ivmon-produce) drives every transport and gets the same accounting. With a register transport
 * nothing is ever full: emit never returns -ENOBUFS or -ETIMEDOUT, batches publish nothing (each
 * record is out when emit returns), and tick never asks for a timer. Over a stream, drop mode
 * drops and reports what the port refuses while its queue is full, and lossless mode waits for
 * the port as a blocking write() would.
 *
 * Nothing here logs: errors come back as negative errno values plus, for open, a message.
 */
#ifndef IVMON_GUEST_TRANSPORT_H
#define IVMON_GUEST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ivmon/proto.h"

struct ivmon_guest_transport;

/* ivmon_guest_transport_open flags */
#define IVMON_GUEST_OPEN_LOSSLESS 0x1u /* lossless even if the URI does not say so */

/* How long flush waits for room by default: long enough for a consumer that is alive, short
 * enough that a clean exit with no consumer does not hang. */
#define IVMON_GUEST_FLUSH_TIMEOUT_MS 5000

struct ivmon_guest_transport_stats {
    uint64_t produced;        /* highest sequence number taken (every record takes one) */
    uint64_t dropped;         /* records dropped because the ring was full (drop mode) */
    uint64_t doorbells;       /* doorbells delivered to a consumer */
    uint64_t doorbell_misses; /* doorbells wanted that found no consumer to deliver to */
    uint64_t doorbell_errors; /* doorbell attempts that failed (retried; nothing is dropped) */
    int last_doorbell_error;  /* the negative errno of the last failed attempt, or 0 */
    uint64_t full_waits;      /* lossless mode: emits that had to wait for room */
    uint64_t ring_size;       /* ring data bytes; a stream: bytes it queues while the port is full;
                               * 0 for a register transport */
    int lossless;             /* 1 in lossless mode (a register transport never drops) */
    uint64_t traps;           /* register transports: traps taken, one per fragment */
    uint64_t send_errors;     /* register transports: records the backend could not send */
    uint64_t writes; /* a stream: write() calls that took bytes (each one notifies the host) */
    int stream;      /* 1 for a stream transport (no ring, no doorbell) */
};

/* Opens the transport named by uri (see uri.h) as its producer. flags: IVMON_GUEST_OPEN_*.
 * On failure returns a negative errno and writes a one-line reason (no newline) to err:
 * -EINVAL/-EPROTONOSUPPORT bad URI; -EBUSY another producer is attached; -EPROTO the region
 * holds an invalid ring; other errno values from the system calls. *ret is set on success
 * only; the caller owns the handle until ivmon_guest_transport_close. */
int ivmon_guest_transport_open(struct ivmon_guest_transport **ret, const char *uri, unsigned flags,
                               char *err, size_t errlen);

/* Emits one complete record (header + body, rec->len bytes, type and time_ns set); the transport
 * sets rec->seq. The first record of a producer must be a IVMON_REC_HELLO (-EINVAL otherwise),
 * so the consumer can tell that the sequence restarted.
 * Returns 0 written (the doorbell is handled here); -ENOBUFS drop mode and the ring (a stream:
 * its queue) is full: the record took a sequence number and was counted, a LOST record will
 * report it; -ETIMEDOUT lossless mode and no room within timeout_ms (< 0: wait forever): nothing
 * was taken, the caller may retry; -EINVAL malformed record; a stream only: another negative
 * errno when its device failed a write (the record was taken or dropped all the same). */
int ivmon_guest_transport_emit(struct ivmon_guest_transport *t, struct ivmon_rec_hdr *rec,
                               int timeout_ms);

/* Between batch_begin and batch_end, emitted records become visible to the consumer together
 * (or every IVMON_PRODUCER_BATCH bytes), as a producer with several records at hand wants: one
 * index store, fence and doorbell per batch. batch_end publishes and rings if needed. */
void ivmon_guest_transport_batch_begin(struct ivmon_guest_transport *t);
void ivmon_guest_transport_batch_end(struct ivmon_guest_transport *t);

/* Emits a HEARTBEAT whose `produced` is exactly the sequence number the heartbeat itself takes
 * and `dropped` the drop count at that moment. Same returns as emit. */
int ivmon_guest_transport_heartbeat(struct ivmon_guest_transport *t, int timeout_ms);

/* For a clean exit: emits a final HEARTBEAT in lossless mode (even in a drop-mode ring), waiting
 * up to timeout_ms for room, so a pending loss report is written before it; a stream also waits
 * until its queue is written. Returns 0, or -ETIMEDOUT if the consumer did not make room in time
 * (the pending loss report, if any, is then not in the ring, and a stream's queued records are
 * lost unreported when the process exits). */
int ivmon_guest_transport_flush(struct ivmon_guest_transport *t, int timeout_ms);

/* Retries a doorbell that could not be delivered yet (consumer connecting), or a stream's writes
 * that its port refused. Call it from the event loop when the returned timeout expires. Returns
 * the poll timeout in milliseconds the transport wants, or -1 if it needs no timer. */
int ivmon_guest_transport_tick(struct ivmon_guest_transport *t);

void ivmon_guest_transport_get_stats(const struct ivmon_guest_transport *t,
                                     struct ivmon_guest_transport_stats *ret);

/* Releases the transport; accepts NULL. Records already in the ring stay there for the consumer;
 * a producer that opens the same region later continues after them. */
void ivmon_guest_transport_close(struct ivmon_guest_transport *t);

#endif /* IVMON_GUEST_TRANSPORT_H */
