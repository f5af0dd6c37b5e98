/* SPDX-License-Identifier: MIT */
#include "shm_doorbell.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int ivmon_shm_send_doorbell(int sock, uint64_t generation, int fd)
{
    struct iovec iov = {.iov_base = &generation, .iov_len = sizeof generation};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    memset(control.buf, 0, sizeof control.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    /* MSG_NOSIGNAL: a producer that connected and vanished must not kill the monitor. */
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return -errno;
    return n == sizeof generation ? 0 : -EIO;
}
