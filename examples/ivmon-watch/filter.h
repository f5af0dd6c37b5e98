/* SPDX-License-Identifier: MIT */
/*
 * Host-side event filters of ivmon-watch: operation, path glob, process name glob.
 *
 * A file event passes when it passes every kind of filter given; within one kind, any match
 * passes (--path a --path b means a or b). A kind with nothing given passes everything. Globs
 * are fnmatch(3) patterns without FNM_PATHNAME, so '*' also matches '/', and they compare bytes
 * (the program stays in the C locale), so non-UTF-8 names match too.
 */
#ifndef IVMON_WATCH_FILTER_H
#define IVMON_WATCH_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivmon/ivmon.h>

struct filter {
    uint32_t ops;       /* bit n: operation n passes; 0: every operation passes */
    const char **paths; /* borrowed pattern strings (argv) */
    size_t n_paths;
    const char **comms;
    size_t n_comms;
};

/* Sets f to "pass everything". */
void filter_init(struct filter *f);

/* Frees the arrays (not the borrowed patterns). */
void filter_free(struct filter *f);

/*
 * Adds the operations named in a comma-separated list ("create,delete"). Returns 0; -EINVAL if
 * a name is empty or unknown to ivmon_op_from_name(), in which case that name (cut to fit, NUL
 * terminated) is copied to ret_bad, which has bad_size bytes; or -ENOMEM.
 */
int filter_add_ops(struct filter *f, const char *list, char *ret_bad, size_t bad_size);

/* Adds a glob for the path (or the new path of a rename), or for the process name. The pattern
 * is borrowed and must outlive f. Returns 0 or -ENOMEM. */
int filter_add_path(struct filter *f, const char *glob);
int filter_add_comm(struct filter *f, const char *glob);

/* Whether a file event passes. Only meaningful for IVMON_EVENT_FILE events: ivmon-watch lets
 * every other type through without asking. */
bool filter_match(const struct filter *f, const ivmon_event *ev);

#endif /* IVMON_WATCH_FILTER_H */
