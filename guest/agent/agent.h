/* SPDX-License-Identifier: MIT */
/* ivmon-agent: configuration and the event sink shared by its parts. */
#ifndef IVMON_AGENT_H
#define IVMON_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "record_encode.h"

#define AGENT_OP_BIT(op) (1u << (op))
#define AGENT_OPS_ALL                                                                              \
    (AGENT_OP_BIT(IVMON_OP_OPEN) | AGENT_OP_BIT(IVMON_OP_MODIFY) |                                 \
     AGENT_OP_BIT(IVMON_OP_CLOSE_WRITE) | AGENT_OP_BIT(IVMON_OP_CREATE) |                          \
     AGENT_OP_BIT(IVMON_OP_DELETE) | AGENT_OP_BIT(IVMON_OP_RENAME) |                               \
     AGENT_OP_BIT(IVMON_OP_ATTRIB) | AGENT_OP_BIT(IVMON_OP_EXEC))

struct agent_config {
    const char *uri;
    char **watch; /* --watch, canonical absolute paths: report only events under them */
    size_t nwatch;
    char **filesystem; /* --filesystem, canonical: report everything on their filesystems */
    size_t nfilesystem;
    char **exclude; /* --exclude globs, fnmatch(3) without flags: '*' also matches '/' */
    size_t nexclude;
    uint32_t ops; /* AGENT_OP_BIT set */
    unsigned heartbeat_s;
    const char *ready_file;
    int verbose;
};

/* Where the event source delivers what it saw. Called synchronously from
 * fan_source_process; the event and its strings are valid during the call only. */
struct agent_sink {
    void (*file)(void *arg, const struct ivmon_enc_file *ev);
    void (*overflow)(void *arg); /* the kernel's queue overflowed or dropped an event */
    void *arg;
};

#endif /* IVMON_AGENT_H */
