/* SPDX-License-Identifier: MIT */
/* /proc readers for process attribution; see procinfo.h. */
#define _GNU_SOURCE
#include "procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pathutil.h"

/* Distinct processes per poll round worth remembering; each slot holds a 4 KiB exe path. */
#define CACHE_SLOTS 64

struct procinfo_cache {
    struct procinfo e[CACHE_SLOTS];
    pid_t key[CACHE_SLOTS];
    size_t n, next;
};

struct procinfo_cache *procinfo_cache_new(void)
{
    return calloc(1, sizeof(struct procinfo_cache));
}

void procinfo_cache_free(struct procinfo_cache *c)
{
    free(c);
}

void procinfo_cache_reset(struct procinfo_cache *c)
{
    c->n = c->next = 0;
}

/* Reads up to cap - 1 bytes of a small /proc file and NUL-terminates. Returns the length or a
 * negative errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return n;
}

/* Value of the first number after "Key:" in a /proc status text. */
static int status_field(const char *text, const char *key, uint32_t *ret)
{
    size_t klen = strlen(key);
    for (const char *line = text; line;) {
        if (strncmp(line, key, klen) == 0) {
            char *end;
            errno = 0;
            unsigned long v = strtoul(line + klen, &end, 10);
            if (end == line + klen || errno || v > UINT32_MAX)
                return -EBADMSG;
            *ret = (uint32_t)v;
            return 0;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -ENOENT;
}

static void read_proc(struct procinfo *pi, pid_t id, int id_is_tid)
{
    char path[64], text[2048];

    memset(pi, 0, offsetof(struct procinfo, exe)); /* exe is filled below; skip zeroing 4 KiB */
    pi->exe[0] = '\0';
    pi->exe_len = 0;
    pi->pid = pi->tid = (uint32_t)id;
    if (id <= 0) {
        pi->flags = IVMON_FILE_NO_PROC;
        pi->uid = pi->gid = UINT32_MAX;
        return;
    }
    /* Read in the order the kernel tears things down, so a process that is exiting right now
     * still gets as much as possible: exe goes when it exits (its mm is released), comm and
     * status when its parent reaps it. /proc/TID/exe is the process's exe for a thread too.
     * Kernel threads and zombies have no exe: it stays empty. */
    snprintf(path, sizeof path, "/proc/%d/exe", (int)id);
    ssize_t e = path_readlink(path, pi->exe, sizeof pi->exe);
    if (e > 0)
        pi->exe_len = (size_t)e;

    /* comm from its own file: status escapes it, comm gives the raw TASK_COMM bytes. */
    char comm[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)id);
    ssize_t n = read_small(path, comm, sizeof comm);
    if (n > 0) {
        if (comm[n - 1] == '\n')
            n--;
        if ((size_t)n > IVMON_COMM_MAX)
            n = IVMON_COMM_MAX;
        memcpy(pi->comm, comm, (size_t)n);
        pi->comm[n] = '\0';
        pi->comm_len = (size_t)n;
    }

    /* The fields we need (Tgid, PPid, Uid, Gid) sit in the first few hundred bytes. */
    snprintf(path, sizeof path, "/proc/%d/status", (int)id);
    if (read_small(path, text, sizeof text) < 0 || status_field(text, "PPid:", &pi->ppid) ||
        status_field(text, "Uid:", &pi->uid) || status_field(text, "Gid:", &pi->gid) ||
        (id_is_tid && status_field(text, "Tgid:", &pi->pid))) {
        /* Reaped meanwhile: keep what was read, but the ids are unknown. */
        pi->flags = IVMON_FILE_NO_PROC;
        pi->pid = (uint32_t)id;
        pi->ppid = 0;
        pi->uid = pi->gid = UINT32_MAX;
    }
}

const struct procinfo *procinfo_lookup(struct procinfo_cache *c, pid_t id, int id_is_tid)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->key[i] == id)
            return &c->e[i];
    size_t slot = c->next;
    c->next = (c->next + 1) % CACHE_SLOTS;
    if (c->n < CACHE_SLOTS)
        c->n++;
    c->key[slot] = id;
    read_proc(&c->e[slot], id, id_is_tid);
    return &c->e[slot];
}
