/* SPDX-License-Identifier: MIT */
/* The guest's XenStore client over /dev/xen/xenbus; see xenbus.h. */
#define _GNU_SOURCE
#include "xenbus.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define XENBUS_DEV           "/dev/xen/xenbus"
#define XS_PAYLOAD_MAX       4096u /* XENSTORE_PAYLOAD_MAX */
#define XS_TRANSACTION_START 6u
#define XS_TRANSACTION_END   7u
#define XS_READ              2u
#define XS_WRITE             11u
#define XS_RM                13u
#define XS_ERROR             16u

struct xs_msg_hdr {
    uint32_t type;
    uint32_t req_id;
    uint32_t tx_id;
    uint32_t len;
};

int ivmon_xenbus_open(struct ivmon_xenbus *xb)
{
    memset(xb, 0, sizeof *xb);
    xb->fd = open(XENBUS_DEV, O_RDWR | O_CLOEXEC);
    return xb->fd < 0 ? -errno : 0;
}

void ivmon_xenbus_close(struct ivmon_xenbus *xb)
{
    if (xb->fd >= 0)
        close(xb->fd);
    xb->fd = -1;
}

/* XenStore reports errors by name ("ENOENT"); the ones a write or rm can meet. */
static int error_from_name(const char *name)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {{"EINVAL", EINVAL}, {"EACCES", EACCES}, {"EEXIST", EEXIST}, {"EISDIR", EISDIR},
                 {"ENOENT", ENOENT}, {"ENOMEM", ENOMEM}, {"ENOSPC", ENOSPC}, {"EIO", EIO},
                 {"EAGAIN", EAGAIN}, {"EBUSY", EBUSY},   {"E2BIG", E2BIG},   {"EPERM", EPERM},
                 {"EROFS", EROFS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i].name, name))
            return -names[i].err;
    return -EIO;
}

static int full_read(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t)n;
    }
    return 0;
}

/* One request (the strings in a and b, each with its NUL unless b_nul is 0) and its reply,
 * whose payload goes to out (cap bytes, NUL-terminated; NULL: discarded). Returns the reply's
 * payload length or a negative errno. We set no watches, so the next message is our reply. */
static int request(struct ivmon_xenbus *xb, uint32_t type, const char *a, const char *b, int b_nul,
                   char *out, uint32_t cap)
{
    uint8_t msg[sizeof(struct xs_msg_hdr) + XS_PAYLOAD_MAX];
    size_t la = strlen(a) + 1, lb = b ? strlen(b) + (b_nul ? 1 : 0) : 0;
    if (la + lb > XS_PAYLOAD_MAX)
        return -E2BIG;
    struct xs_msg_hdr h = {type, ++xb->req_id, xb->tx, (uint32_t)(la + lb)};
    memcpy(msg, &h, sizeof h);
    memcpy(msg + sizeof h, a, la);
    if (lb) /* a write's value goes without its NUL: the length says where it ends */
        memcpy(msg + sizeof h + la, b, lb); // NOLINT(bugprone-not-null-terminated-result)
    /* The device takes one whole message per write. */
    ssize_t w = write(xb->fd, msg, sizeof h + la + lb);
    if (w != (ssize_t)(sizeof h + la + lb))
        return w < 0 ? -errno : -EIO;

    struct xs_msg_hdr rh;
    int r = full_read(xb->fd, &rh, sizeof rh);
    if (r < 0)
        return r;
    if (rh.len > XS_PAYLOAD_MAX || rh.req_id != h.req_id)
        return -EIO;
    char payload[XS_PAYLOAD_MAX + 1];
    r = full_read(xb->fd, payload, rh.len);
    if (r < 0)
        return r;
    payload[rh.len] = '\0';
    if (rh.type == XS_ERROR)
        return error_from_name(payload);
    if (rh.type != type)
        return -EIO;
    if (out) {
        if (rh.len >= cap)
            return -E2BIG;
        memcpy(out, payload, rh.len + 1);
    }
    return (int)rh.len;
}

int ivmon_xenbus_begin(struct ivmon_xenbus *xb)
{
    char id[32] = "";
    xb->tx = 0;
    int r = request(xb, XS_TRANSACTION_START, "", NULL, 0, id, sizeof id);
    if (r < 0)
        return r;
    unsigned long v = 0;
    for (const char *p = id; *p; p++) {
        if (*p < '0' || *p > '9' || v > 0xffffffffu / 10)
            return -EIO;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v == 0)
        return -EIO;
    xb->tx = (uint32_t)v;
    return 0;
}

int ivmon_xenbus_end(struct ivmon_xenbus *xb, int commit)
{
    int r = request(xb, XS_TRANSACTION_END, commit ? "T" : "F", NULL, 0, NULL, 0);
    xb->tx = 0;
    return r < 0 ? r : 0;
}

int ivmon_xenbus_write(struct ivmon_xenbus *xb, const char *path, const char *value)
{
    /* The value follows the path's NUL and has none of its own. */
    int r = request(xb, XS_WRITE, path, value, 0, NULL, 0);
    return r < 0 ? r : 0;
}

int ivmon_xenbus_rm(struct ivmon_xenbus *xb, const char *path)
{
    int r = request(xb, XS_RM, path, NULL, 0, NULL, 0);
    return r < 0 && r != -ENOENT ? r : 0;
}

int ivmon_xenbus_read(struct ivmon_xenbus *xb, const char *path, char *buf, uint32_t cap)
{
    return request(xb, XS_READ, path, NULL, 0, buf, cap);
}
