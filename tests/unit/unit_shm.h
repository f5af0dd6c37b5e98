/* SPDX-License-Identifier: MIT */
/* The test plays the guest: it maps a ring file that an ivmon session created, produces into it
 * with the ring code, and (optionally) fetches the doorbell from RING.sock as a real producer
 * would. Only public headers and ring.h, so it works against libivmon.so too. */
#ifndef IVMON_UNIT_SHM_H
#define IVMON_UNIT_SHM_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ring.h"

struct test_producer {
    int fd;
    uint8_t *map;
    size_t size;
    struct ivmon_ring_hdr *hdr;
    struct ivmon_producer p;
    int sock, efd;
    uint64_t generation;
    char path[96]; /* short enough for PATH.sock in a sockaddr_un */
};

/* "/dev/shm/ivmon-unit-<what>-<pid>" and its URI "shm:ivmon-unit-<what>-<pid>". */
static inline void unit_ring_name(char *path, size_t path_size, char *uri, size_t uri_size,
                                  const char *what)
{
    snprintf(path, path_size, "/dev/shm/ivmon-unit-%s-%d", what, (int)getpid());
    snprintf(uri, uri_size, "shm:ivmon-unit-%s-%d", what, (int)getpid());
}

/* Removes a ring file and its doorbell socket, whether or not they exist. */
static inline void unit_ring_remove(const char *path)
{
    char sock[300];
    snprintf(sock, sizeof sock, "%s.sock", path);
    unlink(path);
    unlink(sock);
}

static inline void tp_reset(struct test_producer *tp)
{
    memset(tp, 0, sizeof *tp);
    tp->fd = tp->sock = tp->efd = -1;
}

/* Maps and attaches to the ring at path. Returns 0, or a negative errno / ring error. */
static inline int tp_attach(struct test_producer *tp, const char *path, int lossless)
{
    struct stat st;
    struct ivmon_ring r;
    const char *why = NULL;

    tp_reset(tp);
    snprintf(tp->path, sizeof tp->path, "%.95s", path);
    tp->fd = open(path, O_RDWR | O_CLOEXEC);
    if (tp->fd < 0 || fstat(tp->fd, &st) < 0)
        return -errno;
    tp->size = (size_t)st.st_size;
    void *map = mmap(NULL, tp->size, PROT_READ | PROT_WRITE, MAP_SHARED, tp->fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    tp->map = map;
    tp->hdr = map;
    int ret = ivmon_ring_attach(&r, map, tp->size, &why);
    if (ret < 0)
        return ret;
    ivmon_producer_init(&tp->p, &r, lossless);
    return 0;
}

/* Connects to the consumer's doorbell socket. The consumer accepts in its next ivmon_process(),
 * after which tp_receive_doorbell() gets the generation and the eventfd. */
static inline int tp_connect(struct test_producer *tp)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s.sock", tp->path);
    tp->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (tp->sock < 0)
        return -errno;
    if (connect(tp->sock, (struct sockaddr *)&a, sizeof a) < 0)
        return -errno;
    return 0;
}

/* Receives the 8-byte generation with the eventfd attached (SCM_RIGHTS). */
static inline int tp_receive_doorbell(struct test_producer *tp)
{
    uint64_t gen = 0;
    struct iovec iov = {.iov_base = &gen, .iov_len = sizeof gen};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(tp->sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    if (n != sizeof gen)
        return -EPROTO;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(sizeof(int)))
        return -EPROTO;
    memcpy(&tp->efd, CMSG_DATA(c), sizeof tp->efd);
    tp->generation = gen;
    return 0;
}

/* Emits and rings the doorbell when the ring asks for it. Returns what the ring returned. */
static inline int tp_emit(struct test_producer *tp, struct ivmon_rec_hdr *rec)
{
    int r = ivmon_producer_emit(&tp->p, rec);
    if (r == 1 && tp->efd >= 0) {
        uint64_t one = 1;
        if (write(tp->efd, &one, sizeof one) != sizeof one)
            return -errno;
    }
    return r;
}

/* Rings the doorbell unconditionally (a producer announcing what it did to the ring). */
static inline void tp_ring(struct test_producer *tp)
{
    uint64_t one = 1;
    if (tp->efd >= 0 && write(tp->efd, &one, sizeof one) != sizeof one)
        perror("doorbell");
}

static inline void tp_close(struct test_producer *tp)
{
    if (tp->efd >= 0)
        close(tp->efd);
    if (tp->sock >= 0)
        close(tp->sock);
    if (tp->map)
        munmap(tp->map, tp->size);
    if (tp->fd >= 0)
        close(tp->fd);
    tp_reset(tp);
}

#endif /* IVMON_UNIT_SHM_H */
