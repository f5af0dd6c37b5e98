/* SPDX-License-Identifier: MIT */
/* Path helpers; see pathutil.h. */
#include "pathutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

ssize_t path_readlink(const char *link, char *buf, size_t cap)
{
    static const char deleted[] = " (deleted)";
    const size_t dlen = sizeof deleted - 1;

    if (cap < 2)
        return -EINVAL;
    ssize_t n = readlink(link, buf, cap - 1);
    if (n < 0)
        return -errno;
    /* The suffix cannot be told apart from a file really named "x (deleted)"; the kernel gives
     * no other sign, and an unlinked file is by far the likelier reading. */
    if ((size_t)n > dlen && (size_t)n < cap - 1 && memcmp(buf + n - dlen, deleted, dlen) == 0)
        n -= (ssize_t)dlen;
    buf[n] = '\0';
    return n;
}

ssize_t path_of_fd(int fd, char *buf, size_t cap)
{
    char link[40];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    return path_readlink(link, buf, cap);
}

int path_is_under(const char *path, size_t len, const char *dir, size_t dir_len)
{
    if (dir_len == 1 && dir[0] == '/')
        return len > 0 && path[0] == '/';
    if (len < dir_len || memcmp(path, dir, dir_len) != 0)
        return 0;
    return len == dir_len || path[dir_len] == '/';
}
