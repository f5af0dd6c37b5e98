/* SPDX-License-Identifier: MIT */
/* What the harnesses that drive a whole session share: a handler that counts the events and
 * reads every string of each, so that a bad offset or a missing NUL shows up under ASan. */
#ifndef IVMON_FUZZ_SESSION_H
#define IVMON_FUZZ_SESSION_H

#include <string.h>

#include "internal.h"

static size_t delivered;

static inline int count(ivmon *m, const ivmon_event *ev, void *userdata)
{
    delivered++;
    size_t n = strlen(ivmon_event_path(ev)) + strlen(ivmon_event_new_path(ev)) +
               strlen(ivmon_event_comm(ev)) + strlen(ivmon_event_exe(ev)) +
               strlen(ivmon_event_hostname(ev)) + strlen(ivmon_event_agent(ev));
    (void)n;
    return 0;
}

#endif /* IVMON_FUZZ_SESSION_H */
