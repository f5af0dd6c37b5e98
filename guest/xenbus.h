/* SPDX-License-Identifier: MIT */
/*
 * A minimal XenStore client for the guest agent, speaking the XenStore wire protocol (a 16-byte
 * header {type, req_id, tx_id, len} and NUL-separated strings, xen/include/public/io/xs_wire.h)
 * over the guest kernel's /dev/xen/xenbus. Only what the agent needs: transactions, write, rm.
 *
 * Why not libxenstore: the agent is one static binary copied into guest images, and this is
 * a few hundred lines against a stable kernel and wire interface, where linking Xen's static
 * libraries would make every agent build depend on libxen-dev (and static glibc with their
 * threads). Paths without a leading '/' are relative to the guest's home, /local/domain/<id>.
 */
#ifndef IVMON_GUEST_XENBUS_H
#define IVMON_GUEST_XENBUS_H

#include <stdint.h>

struct ivmon_xenbus {
    int fd;
    uint32_t req_id;
    uint32_t tx; /* current transaction, 0 outside one */
};

/* Opens /dev/xen/xenbus. Returns 0 or a negative errno (-ENOENT: not a Xen guest, or the
 * xenfs/xenbus device is missing). */
int ivmon_xenbus_open(struct ivmon_xenbus *xb);
void ivmon_xenbus_close(struct ivmon_xenbus *xb);

/* Starts a transaction; write and rm then belong to it until end. */
int ivmon_xenbus_begin(struct ivmon_xenbus *xb);
/* Commits (commit 1) or aborts it. Returns 0, -EAGAIN (a concurrent change: start again), or
 * another negative errno. */
int ivmon_xenbus_end(struct ivmon_xenbus *xb, int commit);

int ivmon_xenbus_write(struct ivmon_xenbus *xb, const char *path, const char *value);
/* Removes path and everything below it; a missing path is not an error. */
int ivmon_xenbus_rm(struct ivmon_xenbus *xb, const char *path);
/* Reads path into buf (cap bytes, NUL-terminated). Returns the length or a negative errno. */
int ivmon_xenbus_read(struct ivmon_xenbus *xb, const char *path, char *buf, uint32_t cap);

#endif /* IVMON_GUEST_XENBUS_H */
