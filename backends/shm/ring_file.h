/* SPDX-License-Identifier: MIT */
/*
 * A ring in a file that the producer maps too: the part of every file-backed shared-memory
 * transport that is not about waking anyone. Used by shm: (a file in /dev/shm the producer opens
 * itself), ivshmem: (the file behind QEMU's memory-backend-file that an ivshmem-plain device maps
 * into the guest) and ivshmem+doorbell:.
 *
 * Interface (stable; other backends build on it):
 *
 *   struct ivmon_ring_file f;
 *   ivmon_ring_file_init(&f);                        // before anything else: close is then safe
 *   ivmon_ring_file_path(m, "ivshmem", target, ...)  // "NAME" -> /dev/shm/NAME, "/abs" -> itself
 *   ivmon_ring_file_open(m, &f, path, &params)       // open, lock, size, map, format, attach
 *   ...each batch: ivmon_ring_file_check(m, &f), then drain f.ring with ivmon__ring_drain()
 *   ivmon_ring_file_close(&f)                        // unmap, close; drops the locks
 *
 * Open, in order: open(2) the file (O_CREAT if params.create); take the consumer lock (OFD write
 * lock on byte 2, not waiting: -EBUSY "another consumer is attached"); take the format lock (byte
 * 0, waiting) for the rest of the open; size a file of 0 bytes to params.create_size; check the
 * size (a header plus 64 KiB .. 1 GiB); map it; attach, or format first if the magic is still 0
 * (a new file, or QEMU's fresh backing file), with a data area of params.data_size bytes (0: the
 * largest power of two that fits); bump consumer_gen, so a producer that rendezvouses with the
 * consumer (shm:) knows it has to again. On success f.ring is attached and f.generation is the
 * new consumer_gen. The producer's lock (byte 1) is the producer's business; a guest behind
 * ivshmem cannot take any of these locks: for it, the host is the only formatter.
 *
 * Errors (each with a message recorded on m through ivmon__error, prefixed with params.scheme):
 * -ENODEV the file does not exist (and params.create is 0); -EBUSY another consumer; -EINVAL not a
 * regular file, or params.data_size does not fit the file; -EPROTO the file is not a ring (size,
 * or an invalid header); other negative errno values from the system.
 *
 * Trust: the producer may rewrite anything in the shared mapping at any time; the ring code keeps
 * private copies. A producer that can write the file itself (shm:) can also shrink it, and a read
 * from a page beyond the end raises SIGBUS: ivmon_ring_file_check() catches a shrink before each
 * batch (not during one). A guest behind ivshmem cannot resize the host file.
 */
#ifndef IVMON_RING_FILE_H
#define IVMON_RING_FILE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* OFD lock bytes (docs/PROTOCOL.md, "shm: doorbell rendezvous"). */
#define IVMON_RING_FILE_LOCK_FORMAT   0
#define IVMON_RING_FILE_LOCK_PRODUCER 1
#define IVMON_RING_FILE_LOCK_CONSUMER 2

struct ivmon_ring_file_params {
    const char *scheme;   /* URI scheme, for messages ("shm", "ivshmem") */
    int create;           /* create the file if it does not exist */
    uint64_t create_size; /* bytes to give a file that has none (new, or found empty) */
    uint64_t data_size;   /* data area of a ring we format; 0: the largest that fits */
    uint32_t ring_flags;  /* IVMON_RING_* flags of a ring we format */
};

struct ivmon_ring_file {
    int fd; /* -1 when closed; holds the consumer lock while open */
    void *map;
    size_t map_size;
    struct ivmon_ring ring; /* attached once open succeeded */
    uint64_t generation;    /* consumer_gen after our attach */
    const char *scheme;     /* static string, for messages */
    char path[PATH_MAX];
};

/* Resets f so that ivmon_ring_file_close() is safe on it. */
void ivmon_ring_file_init(struct ivmon_ring_file *f);

/* Resolves a URI target: "NAME" (a plain file name) is /dev/shm/NAME, "/absolute/path" stays.
 * Writes the path into buf (cap bytes). Returns 0, or -EINVAL (with a message on m) for an empty,
 * relative, dotted or too long target. */
int ivmon_ring_file_path(ivmon *m, const char *scheme, const char *target, char *buf, size_t cap);

/* Opens, locks, maps and attaches (formatting if needed) the ring file at path; see above. On
 * failure f may be half-open: call ivmon_ring_file_close() in any case. */
int ivmon_ring_file_open(ivmon *m, struct ivmon_ring_file *f, const char *path,
                         const struct ivmon_ring_file_params *params);

/* Before each batch: fails the session (ivmon__fail, -EPROTO) if the file shrank below the
 * mapping or the ring header's magic was overwritten. Returns 0 or -EPROTO. */
int ivmon_ring_file_check(ivmon *m, struct ivmon_ring_file *f);

/* Unmaps and closes (which drops the locks). Accepts a half-open or closed f. */
void ivmon_ring_file_close(struct ivmon_ring_file *f);

#endif /* IVMON_RING_FILE_H */
