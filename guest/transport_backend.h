/* SPDX-License-Identifier: MIT */
/*
 * Internal contract between the generic producer transport (transport.c) and its backends, of
 * three kinds. A ring backend moves no records itself: it provides the shared region, formatted
 * or attached as a ring, and a doorbell (open, doorbell). A record backend has no ring: it hands
 * each record to the host as it is emitted (register fragments through traps), so it can be
 * neither full nor asleep (open_record, send). A stream backend provides a file descriptor that
 * takes the records as a byte stream, which stream_producer.c writes (open_stream: virtio-serial).
 * The table is static const and holds no state; transport.c allocates priv_size zeroed bytes for
 * the backend's state. New slots are appended and `size` tells which a table has (SQLite VFS
 * style): the record slots came second, the stream slot third.
 */
#ifndef IVMON_GUEST_TRANSPORT_BACKEND_H
#define IVMON_GUEST_TRANSPORT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "uri.h"

#define IVMON_GUEST_BACKEND_ABI 1u

struct ivmon_guest_backend {
    uint32_t abi;  /* IVMON_GUEST_BACKEND_ABI */
    uint32_t size; /* sizeof(struct ivmon_guest_backend) as the backend was built */
    const char *name;
    int uri_kind; /* IVMON_GUEST_URI_* this backend serves */
    size_t priv_size;

    /* Ring backends. Maps the shared region for u and fills *ret_ring with an attached ring,
     * formatting the region first (with IVMON_RING_LOSSLESS if lossless) when it is new. Returns 0
     * or a negative errno with a one-line reason in err. close() is called afterwards in either
     * case, so open must leave priv in a state close can release at every point. */
    int (*open)(void *priv, const struct ivmon_guest_uri *u, int lossless,
                struct ivmon_ring *ret_ring, char *err, size_t errlen);

    /* Ring backends. Wakes the consumer. hdr is the shared ring header (a consumer generation).
     * Returns 0 delivered; -EAGAIN not deliverable yet (connecting, rate limited): the caller
     * keeps it pending and retries; -ENOTCONN no consumer is listening: the caller forgets it,
     * because a consumer that starts later drains the ring before it first sleeps; any other
     * negative errno: the doorbell failed for that reason (a hypercall refused, say), the
     * records it should have announced or carried are still in the ring, and the caller keeps
     * it pending, retries and reports the failure (doorbell_errors, last_doorbell_error). */
    int (*doorbell)(void *priv, const struct ivmon_ring_hdr *hdr);

    /* Releases what open, open_record or open_stream acquired. Must not touch the ring
     * contents. */
    void (*close)(void *priv);

    /* Record backends set these two and leave open and doorbell NULL. */

    /* Acquires what sending needs for u. Returns 0 or a negative errno with a one-line reason
     * in err (-EBUSY: another producer is attached). close() is called afterwards in either
     * case. */
    int (*open_record)(void *priv, const struct ivmon_guest_uri *u, char *err, size_t errlen);

    /* Hands one complete record (header with seq set, rec->len bytes) to the host, whole,
     * before returning; never waits for a consumer. Returns the number of traps it took (>= 1),
     * or a negative errno (the record is lost). */
    int (*send)(void *priv, const struct ivmon_rec_hdr *rec);

    /* Stream backends set this one and leave open, doorbell, open_record and send NULL.
     * Opens the channel for u and stores in *ret_fd a non-blocking descriptor, owned by the
     * backend until close. A write() of at most IVMON_STREAM_WRITE_MAX bytes should be all or
     * nothing on it: stream_producer.c finishes a short write, but a producer that dies right
     * after one leaves the consumer a torn record. Returns 0 or a negative errno with a one-line
     * reason in err; close() is called afterwards in either case. */
    int (*open_stream)(void *priv, const struct ivmon_guest_uri *u, int *ret_fd, char *err,
                       size_t errlen);
};

extern const struct ivmon_guest_backend ivmon_guest_backend_shm;
extern const struct ivmon_guest_backend ivmon_guest_backend_ivshmem;
extern const struct ivmon_guest_backend ivmon_guest_backend_virtio_serial;
#ifdef IVMON_GUEST_HAVE_KVM_HCALL
extern const struct ivmon_guest_backend ivmon_guest_backend_kvm_hcall;
#endif
extern const struct ivmon_guest_backend ivmon_guest_backend_xen_shm;
extern const struct ivmon_guest_backend ivmon_guest_backend_xen_vcpu;

#endif /* IVMON_GUEST_TRANSPORT_BACKEND_H */
