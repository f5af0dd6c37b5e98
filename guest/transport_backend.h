/* SPDX-License-Identifier: MIT */
/*
 * Internal contract between the generic producer transport (transport.c) and its backends.
 * A backend moves no records itself: it provides the shared region, formatted or attached as a
 * ring, and a doorbell. The table is static const and holds no state; transport.c allocates
 * priv_size zeroed bytes for the backend's state. New slots are appended and `size` tells which
 * a table has (SQLite VFS style).
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

    /* Maps the shared region for u and fills *ret_ring with an attached ring, formatting the
     * region first (with IVMON_RING_LOSSLESS if lossless) when it is new. Returns 0 or a negative
     * errno with a one-line reason in err. close() is called afterwards in either case, so open
     * must leave priv in a state close can release at every point. */
    int (*open)(void *priv, const struct ivmon_guest_uri *u, int lossless,
                struct ivmon_ring *ret_ring, char *err, size_t errlen);

    /* Wakes the consumer. hdr is the shared ring header (for a consumer generation).
     * Returns 0 delivered; -EAGAIN not deliverable yet (connecting, rate limited): the caller
     * keeps it pending and retries; -ENOTCONN no consumer is listening: the caller forgets it,
     * because a consumer that starts later drains the ring before it first sleeps; any other
     * negative errno: the doorbell failed for that reason (a hypercall refused, say), the
     * records it should have announced or carried are still in the ring, and the caller keeps
     * it pending, retries and reports the failure (doorbell_errors, last_doorbell_error). */
    int (*doorbell)(void *priv, const struct ivmon_ring_hdr *hdr);

    /* Releases what open acquired. Must not touch the ring contents. */
    void (*close)(void *priv);
};

extern const struct ivmon_guest_backend ivmon_guest_backend_shm;
extern const struct ivmon_guest_backend ivmon_guest_backend_ivshmem;
extern const struct ivmon_guest_backend ivmon_guest_backend_xen_shm;
extern const struct ivmon_guest_backend ivmon_guest_backend_xen_vcpu;

#endif /* IVMON_GUEST_TRANSPORT_BACKEND_H */
