/* SPDX-License-Identifier: MIT */
/* Process attribution for an event: ids, comm and executable, read from /proc. */
#ifndef IVMON_AGENT_PROCINFO_H
#define IVMON_AGENT_PROCINFO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ivmon/proto.h"

/* Room for an exe path longer than the wire allows, so the encoder can see it was cut. */
#define PROCINFO_EXE_BUF (IVMON_PATH_MAX + 64)

struct procinfo {
    uint32_t pid, tid, ppid, uid, gid;
    uint32_t flags; /* IVMON_FILE_NO_PROC if the process was gone */
    char comm[IVMON_COMM_MAX + 1];
    size_t comm_len;
    char exe[PROCINFO_EXE_BUF];
    size_t exe_len; /* may exceed IVMON_PATH_MAX: the encoder cuts and flags it */
};

/* A few recent lookups, valid for one round of events read together: a process that opens,
 * writes and closes a file produces several events, and /proc costs three system calls. The
 * caller resets it before each round so a reused pid is not attributed to an old process. */
struct procinfo_cache;

struct procinfo_cache *procinfo_cache_new(void);
void procinfo_cache_free(struct procinfo_cache *c);
void procinfo_cache_reset(struct procinfo_cache *c);

/* Looks up the process behind a fanotify event pid. id_is_tid: the group has FAN_REPORT_TID,
 * so id is a thread id and the thread group id comes from /proc. Never fails: a process that is
 * gone gets IVMON_FILE_NO_PROC, pid = tid = id, ppid = 0 and uid = gid = UINT32_MAX (not 0,
 * which would read as root); comm and exe are kept if they were read before it went. The
 * result lives until the cache is reset. */
const struct procinfo *procinfo_lookup(struct procinfo_cache *c, pid_t id, int id_is_tid);

#endif /* IVMON_AGENT_PROCINFO_H */
