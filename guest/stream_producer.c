/* SPDX-License-Identifier: MIT */
/* The stream producer; see stream_producer.h for the contract. */
#define _GNU_SOURCE
#include "stream_producer.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "identity.h"

/* A virtio-serial port whose host end is not connected polls POLLHUP at once, forever: nap
 * instead of spinning on it. */
#define HANGUP_NAP_NS 10000000u

void ivmon_stream_init(struct ivmon_stream_producer *s, int fd, int lossless)
{
    memset(s, 0, sizeof *s - sizeof s->queue);
    s->fd = fd;
    s->lossless = lossless;
    s->next_seq = 1;
}

size_t ivmon_stream_queued(const struct ivmon_stream_producer *s)
{
    return s->tail - s->head;
}

/* The length of the queued record at off (our own record: its header is trusted). */
static size_t rec_len_at(const struct ivmon_stream_producer *s, size_t off)
{
    struct ivmon_rec_hdr h;
    memcpy(&h, s->queue + off, sizeof h);
    return h.len;
}

/* Makes room for need bytes at the tail if the queue has that much free. Returns 1 or 0. */
static int queue_room(struct ivmon_stream_producer *s, size_t need)
{
    size_t used = s->tail - s->head;
    if (sizeof s->queue - used < need)
        return 0;
    if (sizeof s->queue - s->tail < need) {
        memmove(s->queue, s->queue + s->head, used);
        s->boundary -= s->head;
        s->tail = used;
        s->head = 0;
    }
    return 1;
}

/* One write() of the bytes up to the last record boundary that keeps it within
 * IVMON_STREAM_WRITE_MAX. Returns the bytes written (0: the descriptor took nothing), or a
 * negative errno. */
static long write_once(struct ivmon_stream_producer *s, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = write(s->fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    /* virtio_console answers 0, not EAGAIN, when its queue filled between poll and write. */
    if (n > 0)
        s->writes++;
    return (long)n;
}

int ivmon_stream_publish(struct ivmon_stream_producer *s)
{
    while (s->head < s->tail) {
        /* Up to the boundary (the rest of a record a short write left at head, if any), then
         * whole records. */
        size_t end = s->boundary;
        while (end < s->tail && end + rec_len_at(s, end) - s->head <= IVMON_STREAM_WRITE_MAX)
            end += rec_len_at(s, end);
        long n = write_once(s, s->queue + s->head, end - s->head);
        if (n <= 0)
            return (int)n;
        s->head += (size_t)n;
        while (s->boundary < s->head)
            s->boundary += rec_len_at(s, s->boundary);
    }
    s->head = s->tail = s->boundary = 0;
    return 0;
}

static void queue_put(struct ivmon_stream_producer *s, const void *rec, size_t len)
{
    memcpy(s->queue + s->tail, rec, len);
    s->tail += len;
}

/* Whether need bytes fit the queue, writing out what the descriptor takes if they do not yet.
 * A failed write is stored in *err. */
static int room_for(struct ivmon_stream_producer *s, size_t need, int *err)
{
    if (queue_room(s, need))
        return 1;
    int r = ivmon_stream_publish(s);
    if (r < 0)
        *err = r;
    return queue_room(s, need);
}

/* Queues the pending loss report, stamped time_ns (it is made now, on behalf of the record that
 * follows). The caller made room for it. */
static void queue_lost(struct ivmon_stream_producer *s, uint64_t time_ns)
{
    struct {
        struct ivmon_rec_hdr h;
        struct ivmon_rec_lost l;
    } rec = {0};
    rec.h.type = IVMON_REC_LOST;
    rec.h.len = sizeof rec;
    rec.h.seq = s->next_seq++;
    rec.h.time_ns = time_ns;
    rec.l.count = s->lost_count;
    rec.l.first_seq = s->lost_first;
    rec.l.last_seq = s->lost_first + s->lost_count - 1;
    rec.l.reason = IVMON_LOST_RING_FULL;
    queue_put(s, &rec, sizeof rec);
    s->lost_count = 0;
}

/* Takes a sequence number for rec and queues it, or drops and counts it. direct: when nothing is
 * queued, write it straight from rec, sparing the copy. Returns 0, -ENOBUFS, -EAGAIN, -EINVAL,
 * or the negative errno of a failed write (the record is then taken or dropped all the same). */
static int stream_put(struct ivmon_stream_producer *s, struct ivmon_rec_hdr *rec, int direct)
{
    int err = 0;

    if (rec->len < sizeof *rec || rec->len > IVMON_REC_MAX)
        return -EINVAL;
    if (s->lost_count &&
        room_for(s, sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_lost), &err))
        queue_lost(s, rec->time_ns);
    if (!s->lost_count && room_for(s, rec->len, &err)) {
        rec->seq = s->next_seq++;
        size_t done = 0;
        if (direct && s->head == s->tail) {
            long n = write_once(s, rec, rec->len);
            if (n < 0)
                err = (int)n;
            else
                done = (size_t)n;
        }
        if (done < rec->len) {
            queue_put(s, (const uint8_t *)rec + done, rec->len - done);
            /* Only the rest of a record sits at head: the next boundary is its end. */
            if (done)
                s->boundary = s->tail;
        }
        return err;
    }
    if (s->lossless)
        return err ? err : -EAGAIN; /* nothing taken, not even a sequence number */
    rec->seq = s->next_seq++;
    if (!s->lost_count)
        s->lost_first = rec->seq;
    s->lost_count++;
    s->dropped_total++;
    return err ? err : -ENOBUFS;
}

int ivmon_stream_emit(struct ivmon_stream_producer *s, struct ivmon_rec_hdr *rec)
{
    int r = stream_put(s, rec, 1);
    if (r < 0)
        return r;
    return ivmon_stream_publish(s);
}

int ivmon_stream_emit_more(struct ivmon_stream_producer *s, struct ivmon_rec_hdr *rec)
{
    int r = stream_put(s, rec, 0);
    if (r < 0 || ivmon_stream_queued(s) < IVMON_STREAM_BATCH)
        return r;
    return ivmon_stream_publish(s);
}

int ivmon_stream_wait(struct ivmon_stream_producer *s, int timeout_ms)
{
    uint64_t start = ivmon_guest_monotonic_ns();
    size_t queued = ivmon_stream_queued(s);
    for (;;) {
        int r = ivmon_stream_publish(s);
        if (r < 0 || ivmon_stream_queued(s) < queued || !queued)
            return r;
        int left = -1;
        if (timeout_ms >= 0) {
            uint64_t spent_ms = (ivmon_guest_monotonic_ns() - start) / 1000000u;
            if (spent_ms >= (uint64_t)timeout_ms)
                return -ETIMEDOUT;
            left = timeout_ms - (int)spent_ms;
        }
        struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
        int n = poll(&pfd, 1, left);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && (pfd.revents & POLLNVAL))
            return -EBADF;
        if (n > 0 && !(pfd.revents & POLLOUT)) {
            /* POLLHUP or POLLERR without POLLOUT: nobody at the other end yet. */
            struct timespec ts = {0, HANGUP_NAP_NS};
            nanosleep(&ts, NULL);
        }
    }
}
