/* SPDX-License-Identifier: MIT */
/*
 * The Xen bench's libxenvchan I/O, shared by its dom0 reader (reader.c) and its guest producer
 * (vchan_produce.c): whole buffers over a non-blocking vchan, waiting on the vchan's event
 * channel at most VCHAN_WAIT_MS at a time. Under QEMU's TCG a run once hung with both ends
 * asleep in libxenvchan's blocking mode (a notification lost, or a peer gone unseen); looking at
 * the ring again after a short wait turns the first into a delay, and `alive` lets the caller
 * give up on the second. When no notification is lost, this is what blocking mode does.
 */
#ifndef IVMON_BENCH_VCHAN_IO_H
#define IVMON_BENCH_VCHAN_IO_H

#include <poll.h>
#include <stddef.h>

#include <libxenvchan.h>

#define VCHAN_WAIT_MS 10

/* Waits for the peer's next notification, VCHAN_WAIT_MS at most. Returns 0, or -1 if the vchan
 * is broken, or closed with nothing left to read: a peer may write its last bytes and close at
 * once (the reader's final acknowledgement does), and those bytes are still there to read. */
static inline int vchan_wait(struct libxenvchan *v)
{
    struct pollfd p = {.fd = libxenvchan_fd_for_select(v), .events = POLLIN};
    if (poll(&p, 1, VCHAN_WAIT_MS) > 0 && libxenvchan_wait(v) < 0)
        return -1;
    return libxenvchan_is_open(v) || libxenvchan_data_ready(v) > 0 ? 0 : -1;
}

/* Writes all len bytes of buf. Returns 0 or -1. */
static inline int vchan_write_all(struct libxenvchan *v, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        int n = libxenvchan_write(v, (const char *)buf + done, len - done);
        if (n < 0)
            return -1;
        done += (size_t)n;
        if (done < len && vchan_wait(v) < 0)
            return -1;
    }
    return 0;
}

/* Reads exactly len bytes into buf; alive (may be NULL) is asked between waits whether the peer
 * is still worth waiting for. Returns 0 or -1. */
static inline int vchan_read_all(struct libxenvchan *v, void *buf, size_t len, int (*alive)(void *),
                                 void *arg)
{
    size_t done = 0;
    while (done < len) {
        int n = libxenvchan_read(v, (char *)buf + done, len - done);
        if (n < 0)
            return -1;
        done += (size_t)n;
        if (done < len && (vchan_wait(v) < 0 || (alive && !alive(arg))))
            return -1;
    }
    return 0;
}

#endif /* IVMON_BENCH_VCHAN_IO_H */
