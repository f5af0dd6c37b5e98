/* SPDX-License-Identifier: MIT */
/* Small path helpers shared by the agent's event source and process attribution. */
#ifndef IVMON_AGENT_PATHUTIL_H
#define IVMON_AGENT_PATHUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* readlink() into buf (cap bytes), NUL-terminated, with the kernel's " (deleted)" suffix for
 * unlinked objects removed. Returns the length (cap - 1 means it may have been cut) or a
 * negative errno. */
ssize_t path_readlink(const char *link, char *buf, size_t cap);

/* The path of an open file descriptor, as path_readlink of /proc/self/fd/N. */
ssize_t path_of_fd(int fd, char *buf, size_t cap);

/* 1 if path (len bytes) is dir or lies under it; dir is canonical without a trailing slash,
 * except "/" itself. */
int path_is_under(const char *path, size_t len, const char *dir, size_t dir_len);

#endif /* IVMON_AGENT_PATHUTIL_H */
