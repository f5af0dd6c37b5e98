/* SPDX-License-Identifier: MIT */
/*
 * The scripted records of the example payload (VMM_MODE_SCRIPTED): what the guest sends and
 * what the host must get, byte for byte. The payload encodes event i as the record with
 * sequence number i + 1; tests/kvm decodes what libivmon delivers and compares every field with
 * the same event. Freestanding (no libc): the payload is built with -ffreestanding -nostdlib.
 *
 * The events cover every operation and flag, comm names of 0 to 16 bytes, paths of 1 to 4096
 * bytes (bytes that are not UTF-8 too), renames with two 4096-byte names (records of 8 KiB, 150
 * fragments), an exe of 4096 bytes, a heartbeat and a source-overflow loss report in the middle,
 * and a last heartbeat.
 */
#ifndef IVMON_EXAMPLE_SCRIPT_H
#define IVMON_EXAMPLE_SCRIPT_H

#include <stdint.h>

#include "ivmon/proto.h"

#define SCRIPT_EVENTS    48u
#define SCRIPT_HOSTNAME  "kvm-vmm-guest"
#define SCRIPT_AGENT     "ivmon-kvm-payload 0.1.0 bare-metal"
#define SCRIPT_CAPS      (IVMON_CAP_RENAME_PAIR | IVMON_CAP_EXEC)
#define SCRIPT_AGENT_PID 1u

struct script_event {
    uint32_t type; /* IVMON_REC_*: hello, file, lost (source overflow) or heartbeat */
    uint32_t op, flags, pid, tid, ppid, uid, gid;
    const char *comm, *exe, *path, *new_path;
    uint32_t comm_len, exe_len, path_len, new_path_len;
};

static inline uint32_t script_strlen(const char *s)
{
    uint32_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* Appends the decimal digits of v at dst; returns their number. */
static inline uint32_t script_putu(char *dst, uint32_t v)
{
    char tmp[10];
    uint32_t n = 0, k = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        dst[k++] = tmp[--n];
    return k;
}

static inline uint32_t script_put(char *dst, const char *s)
{
    uint32_t n = script_strlen(s);
    for (uint32_t i = 0; i < n; i++)
        dst[i] = s[i];
    return n;
}

/* A path of exactly len bytes for event i: a readable prefix, then directory names of the event
 * number, cut to fit, ending in a file name byte. */
static inline uint32_t script_long_path(char *dst, uint32_t len, uint32_t i, const char *prefix)
{
    uint32_t n = script_put(dst, prefix);
    while (n < len) {
        char part[16];
        uint32_t k = 0;
        part[k++] = 'd';
        k += script_putu(part + k, i);
        part[k++] = '/';
        for (uint32_t j = 0; j < k && n < len; j++)
            dst[n++] = part[j];
    }
    dst[len - 1] = 'z';
    return len;
}

/* Event i (0..SCRIPT_EVENTS-1). The long paths are written to a and b (IVMON_PATH_MAX bytes
 * each), which must outlive the use of *e. */
static inline void script_event(uint32_t i, struct script_event *e, char *a, char *b)
{
    static const char *const comms[] = {"bash", "python3", "sixteen-chars-16", "cc1",
                                        "",     "x",       "systemd-journal"};
    *e = (struct script_event){0};
    if (i == 0) {
        e->type = IVMON_REC_HELLO;
        return;
    }
    if (i == SCRIPT_EVENTS - 1 || i == SCRIPT_EVENTS / 3) {
        e->type = IVMON_REC_HEARTBEAT;
        return;
    }
    if (i == SCRIPT_EVENTS / 2) {
        e->type = IVMON_REC_LOST;
        return;
    }
    e->type = IVMON_REC_FILE;
    e->op = 1 + i % IVMON_OP_MAX;
    e->pid = 1000 + i;
    e->tid = e->pid + i % 3;
    e->ppid = 1;
    e->uid = 1000 + i % 2;
    e->gid = 100;
    e->comm = comms[i % 7];
    e->comm_len = script_strlen(e->comm);
    if (!e->comm_len) { /* the process was gone: nothing but its pid */
        e->flags |= IVMON_FILE_NO_PROC;
        e->ppid = 0;
        e->uid = e->gid = 0xffffffffu;
        e->exe = "";
    } else if (i % 11 == 5) {
        e->exe_len = script_long_path(b, IVMON_PATH_MAX, i, "/opt/very/deep/tool/");
        e->exe = b;
    } else {
        e->exe = i % 2 ? "/usr/bin/env" : "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";
    }
    if (!e->exe_len)
        e->exe_len = script_strlen(e->exe);

    uint32_t n = 0;
    switch (i % 6) {
    case 0: /* short */
        n = script_put(a, "/srv/data/file-");
        n += script_putu(a + n, i);
        n += script_put(a + n, ".txt");
        break;
    case 1: /* the longest there is */
        n = script_long_path(a, IVMON_PATH_MAX, i, "/long/");
        e->flags |= IVMON_FILE_TRUNCATED;
        break;
    case 2: /* spaces and UTF-8 */
        n = script_put(a, "/home/user/My Documents/r\xc3\xa9sum\xc3\xa9 ");
        n += script_putu(a + n, i);
        n += script_put(a + n, ".odt");
        break;
    case 3: /* bytes that are not UTF-8 */
        n = script_put(a, "/tmp/\xff\xfe raw \x01\x7f-");
        n += script_putu(a + n, i);
        break;
    case 4: /* one byte short of the longest */
        n = script_long_path(a, IVMON_PATH_MAX - 1, i, "/var/cache/");
        break;
    default: /* a typical 80 bytes */
        n = script_long_path(a, 80, i, "/usr/lib/x86_64-linux-gnu/");
    }
    e->path = a;
    e->path_len = n;
    if (e->op == IVMON_OP_CREATE && i % 16 == 3)
        e->flags |= IVMON_FILE_DIR;
    if (e->op == IVMON_OP_RENAME) {
        if (e->exe_len == IVMON_PATH_MAX || i % 16 != 13) {
            e->new_path = "/srv/data/renamed";
            e->new_path_len = script_strlen(e->new_path);
        } else { /* two names of 4096 bytes: one record of 8 KiB */
            e->path_len = script_long_path(a, IVMON_PATH_MAX, i, "/from/");
            e->new_path_len = script_long_path(b, IVMON_PATH_MAX, i, "/to/");
            e->new_path = b;
        }
    }
}

#endif /* IVMON_EXAMPLE_SCRIPT_H */
