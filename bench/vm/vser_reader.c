/* SPDX-License-Identifier: MIT */
/* The host end of a virtio-serial stream; see vser_reader.h. */
#include "vser_reader.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_RETRY_NS 20000000u

int vser_reader_init(struct vser_reader *r, const char *uri)
{
    r->fd = -1;
    r->have = r->rec_len = r->off = r->len = 0;
    r->peer = 0;
    r->m = calloc(1, sizeof *r->m);
    if (!r->m)
        return -ENOMEM;
    r->m->uri_string = strdup(uri);
    if (!r->m->uri_string)
        return -ENOMEM;
    r->m->budget = IVMON_BUDGET_DEFAULT;
    r->m->event.source = r->m->uri_string;
    return 0;
}

int vser_reader_connect(struct vser_reader *r, const char *path, int timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return ivmon__error(r->m, -ENAMETOOLONG, "%s: socket path too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (int waited = 0;; waited += CONNECT_RETRY_NS / 1000000u) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return ivmon__error(r->m, -errno, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            struct ucred cred;
            socklen_t len = sizeof cred;
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                r->peer = cred.pid;
            r->fd = fd;
            return 0;
        }
        int e = errno;
        close(fd);
        if ((e != ENOENT && e != ECONNREFUSED) || waited >= timeout_ms)
            return ivmon__error(r->m, -e, "connect %s: %s", path, strerror(e));
        struct timespec ts = {0, CONNECT_RETRY_NS};
        nanosleep(&ts, NULL);
    }
}

/* Frames chunk[off, len) into records and ingests them. */
static int frame(struct vser_reader *r)
{
    const size_t hdr = sizeof(struct ivmon_rec_hdr);
    ivmon *m = r->m;
    int n = 0;

    while (r->off < r->len) {
        size_t take = (r->have < hdr ? hdr : r->rec_len) - r->have;
        if (take > r->len - r->off)
            take = r->len - r->off;
        memcpy(m->recbuf + r->have, r->chunk + r->off, take);
        r->have += take;
        r->off += take;
        if (r->have == hdr && !r->rec_len) {
            struct ivmon_rec_hdr h;
            memcpy(&h, m->recbuf, sizeof h);
            /* The only length the stream has: out of bounds, nothing after it can be framed. */
            if (h.len < hdr || h.len > IVMON_REC_MAX)
                return ivmon__fail(m, -EPROTO,
                                   "the producer broke the stream: record length %u out of "
                                   "bounds after %llu records",
                                   h.len, (unsigned long long)m->stats[IVMON_STAT_RECORDS]);
            r->rec_len = h.len;
        }
        if (r->have < hdr || r->have < r->rec_len)
            continue;
        size_t len = r->rec_len;
        r->have = r->rec_len = 0;
        n++;
        int d = ivmon__ingest(m, m->recbuf, len);
        if (d < 0)
            return d;
    }
    return n;
}

int vser_reader_process(struct vser_reader *r)
{
    if (r->m->broken)
        return r->m->broken;
    if (r->off == r->len) {
        /* MSG_DONTWAIT: a read must never hold up the caller's loop. */
        ssize_t got = recv(r->fd, r->chunk, sizeof r->chunk, MSG_DONTWAIT);
        if (got < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
        if (got == 0)
            return -EPIPE;
        r->off = 0;
        r->len = (size_t)got;
    }
    return frame(r);
}

void vser_reader_close(struct vser_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->m)
        free(r->m->uri_string);
    free(r->m);
    r->m = NULL;
}

int vser_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}
