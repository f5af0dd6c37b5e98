/* SPDX-License-Identifier: MIT */
/*
 * The host end of a virtio-serial stream (guest/stream_producer.h), for the VM bench and its VM
 * test: connects to the UNIX socket behind the port's QEMU chardev (socket,server=on), cuts the
 * byte stream into records and hands each one to the library's core through ivmon__ingest
 * (validation, sequence accounting, dispatch). That is the path a ring's records take once
 * ivmon__ring_drain has copied them out, so both channels pay the same host-side work per record.
 *
 * The library has no backend for this stream, so the session is a bare one: a struct ivmon that
 * the core's ingest path works on, with handlers, statistics, a URI and an error, but no backend
 * (tests/fuzz/fuzz_ring.c makes one the same way). ivmon_set_handler, ivmon_set_log,
 * ivmon_get_stat, ivmon_get_uri and ivmon_get_error work on it; ivmon_close() does not:
 * vser_reader_close() frees it.
 *
 * A stream has no resynchronisation point: a record header whose length is out of bounds breaks
 * the session for good (-EPROTO), as a broken ring does.
 */
#ifndef IVMON_BENCH_VM_VSER_READER_H
#define IVMON_BENCH_VM_VSER_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

#define VSER_READ_CHUNK (64u << 10) /* bytes read per read() */

struct vser_reader {
    ivmon *m;       /* the bare session */
    int fd;         /* the connection to QEMU's chardev, or -1 */
    pid_t peer;     /* the process at the other end of the connection: QEMU */
    size_t have;    /* bytes of the record being assembled in m->recbuf */
    size_t rec_len; /* its length, once its header is complete; else 0 */
    size_t off;     /* chunk[off, len) is read and not framed yet (a handler stopped the loop) */
    size_t len;
    uint8_t chunk[VSER_READ_CHUNK];
};

/* Makes the bare session, named uri (e.g. "virtio-serial:/run/vm1.sock"). Returns 0, -ENOMEM. */
int vser_reader_init(struct vser_reader *r, const char *uri);

/* Connects to the chardev socket at path, trying every 20 ms for up to timeout_ms while QEMU has
 * not created it yet, and notes the peer's pid (SO_PEERCRED). Returns 0 or a negative errno. */
int vser_reader_connect(struct vser_reader *r, const char *path, int timeout_ms);

/* Reads once what the connection holds and ingests every complete record in it. Returns the
 * number of records taken (0 when nothing was there); -EPIPE when QEMU closed the connection
 * (the VM is gone); -EPROTO once the stream broke its framing (ivmon_get_error says how; every
 * later call returns it too); or the negative errno a handler returned. */
int vser_reader_process(struct vser_reader *r);

/* Closes the connection and frees the session. Accepts a reader that init failed on. */
void vser_reader_close(struct vser_reader *r);

/* For the programs' loops: blocks SIGTERM and SIGINT and returns a signalfd that reads them, so a
 * signal ends a loop between two records. Returns the fd, or a negative errno. */
int vser_stop_signals(void);

#endif /* IVMON_BENCH_VM_VSER_READER_H */
