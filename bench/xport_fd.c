/* SPDX-License-Identifier: MIT */
/*
 * The two kernel baselines: a pipe and a UNIX SOCK_SEQPACKET socketpair, one system call per
 * record on each side, blocking. They are what an agent would use without libivmon, so they get
 * no batching either: one event, one write, as the ring's producer does one emit per event.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd_setup_pipe(struct bench_chan *c, const struct bench_cfg *cfg, char *err)
{
    if (pipe2(c->fd, O_CLOEXEC) < 0)
        return bench_fail(err, "pipe2: %s", strerror(errno));
    /* Give the pipe as much buffer as the ring has, so neither side is starved of room by
     * configuration. The kernel rounds up to pages and caps at fs.pipe-max-size. */
    int r = fcntl(c->fd[1], F_SETPIPE_SZ, (int)cfg->buf_bytes);
    int got = fcntl(c->fd[1], F_GETPIPE_SZ);
    snprintf(c->note, sizeof c->note, "pipe buffer %d B%s", got, r < 0 ? " (resize refused)" : "");
    return 0;
}

static int fd_setup_seqpacket(struct bench_chan *c, const struct bench_cfg *cfg, char *err)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c->fd) < 0)
        return bench_fail(err, "socketpair: %s", strerror(errno));
    /* Same idea as the pipe: ask for the ring's size. A UNIX socket charges each queued packet
     * its whole skb (several hundred bytes of overhead), so this holds fewer records than the
     * ring; the kernel doubles the value to allow for that, which is its own notion of fair. */
    int v = (int)cfg->buf_bytes, r = setsockopt(c->fd[1], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    socklen_t l = sizeof v;
    getsockopt(c->fd[1], SOL_SOCKET, SO_SNDBUF, &v, &l);
    snprintf(c->note, sizeof c->note, "SO_SNDBUF %d B%s", v, r < 0 ? " (resize refused)" : "");
    return 0;
}

static int fd_producer_open(struct bench_chan *c, char *err)
{
    /* Close the other end so that a dead consumer shows up as EPIPE, not a hang. */
    close(c->fd[0]);
    c->fd[0] = -1;
    return 0;
}

static int fd_consumer_open(struct bench_chan *c, char *err)
{
    /* Likewise: a dead producer shows up as end of file. */
    close(c->fd[1]);
    c->fd[1] = -1;
    return 0;
}

static int fd_produce(struct bench_chan *c, const struct bench_cfg *cfg,
                      struct bench_prod_stats *st, char *err, int is_socket)
{
    union bench_rec rec;
    for (uint64_t seq = 1; seq <= cfg->count; seq++) {
        bench_build(&rec, cfg->rec_len, seq);
        ssize_t n;
        do
            n = is_socket ? send(c->fd[1], rec.b, cfg->rec_len, MSG_NOSIGNAL)
                          : write(c->fd[1], rec.b, cfg->rec_len);
        while (n < 0 && errno == EINTR);
        /* Both transports are record-atomic at this size; a short write would be a kernel bug,
         * but it would also silently break the comparison, so it is fatal. */
        if (n != (ssize_t)cfg->rec_len)
            return bench_fail(err, "%s of seq %llu: %s", is_socket ? "send" : "write",
                              (unsigned long long)seq, n < 0 ? strerror(errno) : "short write");
    }
    return 0;
}

static int pipe_produce(struct bench_chan *c, const struct bench_cfg *cfg,
                        struct bench_prod_stats *st, char *err)
{
    return fd_produce(c, cfg, st, err, 0);
}

static int seqpacket_produce(struct bench_chan *c, const struct bench_cfg *cfg,
                             struct bench_prod_stats *st, char *err)
{
    return fd_produce(c, cfg, st, err, 1);
}

static int pipe_consume(struct bench_chan *c, const struct bench_cfg *cfg,
                        struct bench_cons_stats *st, char *err)
{
    union bench_rec rec;
    uint64_t expect = 1;
    while (expect <= cfg->count) {
        /* read() of exactly one record. Writes are PIPE_BUF-atomic and all the same size, so a
         * read normally returns a whole record; the loop is for correctness, not speed. */
        size_t have = 0;
        while (have < cfg->rec_len) {
            ssize_t n = read(c->fd[0], rec.b + have, cfg->rec_len - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return bench_fail(err, "pipe read after seq %llu: %s",
                                  (unsigned long long)(expect - 1),
                                  n < 0 ? strerror(errno) : "end of file (producer died?)");
            have += (size_t)n;
        }
        if (bench_check(&rec, (long)have, cfg->rec_len, &expect, err) < 0)
            return -1;
    }
    return 0;
}

static int seqpacket_consume(struct bench_chan *c, const struct bench_cfg *cfg,
                             struct bench_cons_stats *st, char *err)
{
    union bench_rec rec;
    uint64_t expect = 1;
    while (expect <= cfg->count) {
        /* The buffer is larger than any record, so a packet of the wrong size is seen as such
         * (bench_check compares lengths) instead of being truncated silently. */
        ssize_t n = recv(c->fd[0], rec.b, sizeof rec.b, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return bench_fail(err, "recv after seq %llu: %s", (unsigned long long)(expect - 1),
                              n < 0 ? strerror(errno) : "end of stream (producer died?)");
        if (bench_check(&rec, (long)n, cfg->rec_len, &expect, err) < 0)
            return -1;
    }
    return 0;
}

static void fd_close(struct bench_chan *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = -1;
    }
}

const struct bench_xport bench_xport_pipe = {
    .name = "pipe",
    .label = "pipe",
    .setup = fd_setup_pipe,
    .producer_open = fd_producer_open,
    .produce = pipe_produce,
    .consumer_open = fd_consumer_open,
    .consume = pipe_consume,
    .close = fd_close,
};

const struct bench_xport bench_xport_seqpacket = {
    .name = "seqpacket",
    .label = "UNIX SOCK_SEQPACKET",
    .setup = fd_setup_seqpacket,
    .producer_open = fd_producer_open,
    .produce = seqpacket_produce,
    .consumer_open = fd_consumer_open,
    .consume = seqpacket_consume,
    .close = fd_close,
};
