/* SPDX-License-Identifier: MIT */
/*
 * Internal contract between the generic producer transport (transport.c) and its backends.
 * A backend moves no records itself. A ring backend provides the shared region, formatted or
 * attached as a ring, and a doorbell; a stream backend (ABI 2: virtio-serial) provides a file
 * descriptor that takes the records as a byte stream (stream_producer.h writes them). The table
 * is static const and holds no state; transport.c allocates priv_size zeroed bytes for the
 * backend's state. New slots are appended, the ABI number says which slots a table has, and
 * `size` confirms it (SQLite VFS style).
 */
#ifndef IVMON_GUEST_TRANSPORT_BACKEND_H
#define IVMON_GUEST_TRANSPORT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "uri.h"

/* 1: open, doorbell, close. 2: open_stream appended. */
#define IVMON_GUEST_BACKEND_ABI 2u

struct ivmon_guest_backend {
    uint32_t abi;  /* IVMON_GUEST_BACKEND_ABI */
    uint32_t size; /* sizeof(struct ivmon_guest_backend) as the backend was built */
    const char *name;
    int uri_kind; /* IVMON_GUEST_URI_* this backend serves */
    size_t priv_size;

    /* Ring backends. Maps the shared region for u and fills *ret_ring with an attached ring,
     * formatting the region first (with IVMON_RING_LOSSLESS if lossless) when it is new. Returns
     * 0 or a negative errno with a one-line reason in err. close() is called afterwards in either
     * case, so open must leave priv in a state close can release at every point. NULL in a
     * stream backend. */
    int (*open)(void *priv, const struct ivmon_guest_uri *u, int lossless,
                struct ivmon_ring *ret_ring, char *err, size_t errlen);

    /* Ring backends. Wakes the consumer. hdr is the shared ring header (for a consumer
     * generation). Returns 0 delivered; -EAGAIN not deliverable yet (connecting, rate limited):
     * the caller keeps it pending and retries; -ENOTCONN no consumer is listening: the caller
     * forgets it, because a consumer that starts later drains the ring before it first sleeps.
     * NULL in a stream backend: every write wakes the consumer by itself. */
    int (*doorbell)(void *priv, const struct ivmon_ring_hdr *hdr);

    /* Releases what open or open_stream acquired. Must not touch the ring contents. */
    void (*close)(void *priv);

    /* ABI 2. Stream backends. Opens the channel for u and stores in *ret_fd a non-blocking
     * descriptor, owned by the backend until close. A write() of at most IVMON_STREAM_WRITE_MAX
     * bytes should be all or nothing on it: stream_producer.c finishes a short write, but a
     * producer that dies right after one leaves the consumer a torn record. Returns 0 or a
     * negative errno with a one-line reason in err; close() is called afterwards in either
     * case. NULL in a ring backend. */
    int (*open_stream)(void *priv, const struct ivmon_guest_uri *u, int *ret_fd, char *err,
                       size_t errlen);
};

extern const struct ivmon_guest_backend ivmon_guest_backend_shm;
extern const struct ivmon_guest_backend ivmon_guest_backend_ivshmem;
extern const struct ivmon_guest_backend ivmon_guest_backend_virtio_serial;

#endif /* IVMON_GUEST_TRANSPORT_BACKEND_H */
