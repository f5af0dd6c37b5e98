/* SPDX-License-Identifier: MIT */
/*
 * hello: the smallest complete libivmon program. Opens one session, prints each file event, and
 * exits after COUNT file events (default: never) or on an error.
 *
 *   hello URI [COUNT]        e.g. hello shm:demo 10
 */
#include <ivmon/ivmon.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

struct state {
    long seen, wanted;
};

static int on_file(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct state *st = userdata;
    printf("%s %s %s pid=%u comm=%s\n", ivmon_event_source(ev), ivmon_op_name(ivmon_event_op(ev)),
           ivmon_event_path(ev), ivmon_event_pid(ev), ivmon_event_comm(ev));
    st->seen++;
    return 0;
}

int main(int argc, char **argv)
{
    struct state st = {0, argc > 2 ? strtol(argv[2], NULL, 10) : -1};
    ivmon *m;

    if (argc < 2) {
        fprintf(stderr, "usage: %s URI [COUNT]\n", argv[0]);
        return 2;
    }
    int r = ivmon_open(&m, argv[1], 0);
    if (r < 0) {
        fprintf(stderr, "%s: %s: %s\n", argv[1], ivmon_strerror(r), ivmon_open_error());
        return 1;
    }
    ivmon_set_handler(m, IVMON_EVENT_FILE, on_file, &st);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (st.wanted < 0 || st.seen < st.wanted) {
        struct pollfd p = {.fd = ivmon_get_fd(m), .events = (short)ivmon_get_events(m)};
        if (poll(&p, 1, ivmon_get_timeout(m)) < 0)
            break;
        r = ivmon_process(m, 0);
        if (r < 0) {
            fprintf(stderr, "%s: %s: %s\n", argv[1], ivmon_strerror(r), ivmon_get_error(m));
            break;
        }
    }
    ivmon_close(m);
    return r < 0 ? 1 : 0;
}
