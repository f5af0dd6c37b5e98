/* SPDX-License-Identifier: MIT */
/*
 * ivmon-vser-watch: ivmon-watch's JSON output for a virtio-serial stream, which the library has
 * no backend for (vser_reader.h). The host side of the VM test of the guest's virtio-serial
 * transport (tests/vm/test_vser.py), which drives it like ivmon-watch through tests/vm/vmlib.py.
 *
 *   ivmon-vser-watch [--json] [--stats] [--verbose] virtio-serial:SOCKET
 *
 * Connects to SOCKET, the UNIX socket of QEMU's -chardev socket,server=on behind the port,
 * waiting up to 60 s for QEMU to create it; prints every record as `ivmon-watch --json` does
 * (heartbeats only with --verbose), validated and accounted by the library's core; and on
 * SIGTERM or SIGINT prints the session's counters as `ivmon-watch --stats` does. When QEMU closes
 * the connection it keeps the session and waits for the signal, as ivmon-watch keeps a session
 * whose VM stopped. --json is the only output and may be left out.
 * Exit status: 0; 1 the connection failed or the stream broke the protocol (the stats line says
 * why); 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "output.h"
#include "vser_reader.h"

#define PROG           "ivmon-vser-watch"
#define SCHEME         "virtio-serial:"
#define CONNECT_MS     60000
#define STOPPED_BY_OUT (-EPIPE) /* a handler's return when standard output failed */

struct app {
    struct output_options out;
    bool stats;
};

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    const struct app *app = userdata;
    output_json_event(stdout, ev, &app->out);
    /* One line at a time: the test reads the file while the VM runs. */
    if (fflush(stdout) != 0 || ferror(stdout))
        return STOPPED_BY_OUT;
    return 0;
}

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    const struct app *app = userdata;
    if (level > IVMON_LOG_WARNING && !app->out.verbose)
        return;
    fprintf(stderr, PROG ": %s: ", ivmon_get_uri(m));
    output_text_escaped(stderr, msg, false);
    fputc('\n', stderr);
}

static int parse_args(int argc, char **argv, struct app *app, const char **ret_uri)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'},
        {"stats", no_argument, NULL, 's'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    for (;;) {
        int c = getopt_long(argc, argv, "", lo, NULL);
        if (c == -1)
            break;
        if (c == 's')
            app->stats = true;
        else if (c == 'v')
            app->out.verbose = true;
        else if (c != 'j')
            return -EINVAL;
    }
    if (optind != argc - 1 || strncmp(argv[optind], SCHEME, strlen(SCHEME)) != 0)
        return -EINVAL;
    *ret_uri = argv[optind];
    return 0;
}

/* Reads the stream until a signal; returns 0, or the error that ended the session. */
static int run(struct vser_reader *r, int sigfd)
{
    struct pollfd pfd[2] = {{.fd = sigfd, .events = POLLIN}, {.fd = r->fd, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return -errno;
        if (pfd[0].revents & POLLIN)
            return 0;
        if (!(pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        int n;
        while ((n = vser_reader_process(r)) > 0)
            ;
        if (n == -EPIPE) {
            ivmon__log(r->m, IVMON_LOG_INFO, "QEMU closed the stream");
            pfd[1].fd = -1; /* poll ignores it: wait for the signal */
        } else if (n < 0) {
            return n;
        }
    }
}

int main(int argc, char **argv)
{
    static struct vser_reader r; /* static: holds a 64 KiB chunk */
    struct app app = {0};
    const char *uri = NULL;

    if (parse_args(argc, argv, &app, &uri) < 0) {
        fprintf(stderr, "usage: " PROG " [--json] [--stats] [--verbose] " SCHEME "SOCKET\n");
        return 2;
    }
    int sigfd = vser_stop_signals();
    if (sigfd < 0) {
        fprintf(stderr, PROG ": signals: %s\n", strerror(-sigfd));
        return 1;
    }
    if (vser_reader_init(&r, uri) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    ivmon_set_log(r.m, on_log, &app);
    ivmon_set_handler(r.m, IVMON_EVENT_FILE, on_event, &app);
    ivmon_set_handler(r.m, IVMON_EVENT_LOST, on_event, &app);
    ivmon_set_handler(r.m, IVMON_EVENT_HELLO, on_event, &app);
    if (app.out.verbose) {
        ivmon_set_handler(r.m, IVMON_EVENT_HEARTBEAT, on_event, &app);
        ivmon_set_handler(r.m, IVMON_EVENT_ANY, on_event, &app);
    }
    int err = vser_reader_connect(&r, uri + strlen(SCHEME), CONNECT_MS);
    if (err == 0)
        err = run(&r, sigfd);
    if (err < 0)
        fprintf(stderr, PROG ": %s: %s: %s\n", uri, ivmon_strerror(err), ivmon_get_error(r.m));
    if (app.stats) {
        const char *why = ivmon_get_error(r.m);
        output_json_stats(stderr, r.m, err >= 0 ? NULL : why[0] ? why : ivmon_strerror(err));
    }
    vser_reader_close(&r);
    close(sigfd);
    return err < 0 ? 1 : 0;
}
