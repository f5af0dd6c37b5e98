/* SPDX-License-Identifier: MIT */
/*
 * fanotify event source. Two groups:
 *  - a notification group in fd mode, marked per filesystem, for OPEN, OPEN_EXEC, MODIFY and
 *    CLOSE_WRITE: each event carries an open fd whose /proc/self/fd link is the path;
 *  - a FID group (FAN_REPORT_DFID_NAME, plus FAN_REPORT_TARGET_FID for the object), marked per
 *    filesystem, for CREATE, DELETE, ATTRIB and RENAME (both names): events carry a directory
 *    file handle and a name, resolved with open_by_handle_at.
 * Both use FAN_REPORT_TID when the kernel has it, so the thread is known, not just the process.
 */
#ifndef IVMON_AGENT_FANOTIFY_SOURCE_H
#define IVMON_AGENT_FANOTIFY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

struct fan_source;

struct fan_source_stats {
    uint64_t events;       /* fanotify events read (not counting overflows) */
    uint64_t records;      /* file records handed to the sink */
    uint64_t skipped_self; /* events caused by the agent itself */
    uint64_t filtered;     /* events outside --watch or matching --exclude */
    uint64_t unresolved;   /* events whose path could not be found (object already gone) */
    uint64_t unnamed;      /* link-count ATTRIBs on files: no name to report, skipped */
    uint64_t malformed;    /* events with info records that did not parse */
    uint64_t overflows;    /* queue overflows and events the kernel failed to hand over */
};

struct fan_source_info {
    int notif_tid, fid_tid; /* the group reports thread ids (FAN_REPORT_TID) */
    int fid_child;          /* FAN_REPORT_TARGET_FID: handles of the objects themselves */
    int rename_pairs;       /* FAN_RENAME: both names in one event */
    int mount_marks;        /* the fd-mode group fell back to FAN_MARK_MOUNT */
    size_t nfs;             /* filesystems marked */
};

/* Creates the groups and marks every --watch and --filesystem path. The marks are in place when
 * it returns. Returns 0 or a negative errno with a one-line reason in err. */
int fan_source_open(struct fan_source **ret, const struct agent_config *cfg,
                    const struct agent_sink *sink, char *err, size_t errlen);

/* The group fds to poll for POLLIN; -1 if a group is not needed for the chosen --ops. */
int fan_source_notif_fd(const struct fan_source *s);
int fan_source_fid_fd(const struct fan_source *s);

/* Starts a poll round: forgets the process lookups of the previous round. Events read in one
 * round share lookups across both groups, so the fd-group events of a thread that exits right
 * after its CREATE still find it; a pid is not reused within one round in practice. */
void fan_source_new_round(struct fan_source *s);

/* Reads and dispatches the events waiting on fd (one of the two above), a bounded number of
 * reads per call so a busy group cannot starve the loop. Returns 0 or -EPROTO if the kernel
 * speaks an unknown fanotify metadata version. */
int fan_source_process(struct fan_source *s, int fd);

/* IVMON_CAP_* the event stream provides. */
uint32_t fan_source_caps(const struct fan_source *s);

void fan_source_get_info(const struct fan_source *s, struct fan_source_info *ret);
void fan_source_get_stats(const struct fan_source *s, struct fan_source_stats *ret);

/* Closes the groups and frees s; accepts NULL. */
void fan_source_close(struct fan_source *s);

#endif /* IVMON_AGENT_FANOTIFY_SOURCE_H */
