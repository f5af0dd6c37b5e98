/* SPDX-License-Identifier: MIT */
/*
 * ivmon-watch: print the file accesses of one or more virtual machines as they happen.
 *
 * This is also the reference for using libivmon inside your own event loop with many
 * sessions: one handle per URI, one poll loop over all of them built from ivmon_get_fd(),
 * ivmon_get_events() and ivmon_get_timeout(), ivmon_process() on every session that is ready or
 * due, and a broken session closed on its own while the others keep running. Start at run().
 */
#define _GNU_SOURCE /* ppoll */

#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ivmon/ivmon.h>

#include "filter.h"
#include "output.h"

#define PROG "ivmon-watch"

/* Exit status. */
#define EXIT_BROKEN 1 /* a session broke, or standard output failed */
#define EXIT_USAGE  2 /* bad command line, or a URI could not be opened */

/* --timeout upper bound: large enough for any use, small enough that the nanoseconds fit. */
#define TIMEOUT_MAX_S 1e9

struct app {
    /* options */
    bool json;
    bool stats;
    uint64_t count;     /* --count; 0: no limit */
    int64_t timeout_ns; /* --timeout; -1: none */
    struct filter filter;
    struct output_options out;

    /* state */
    uint64_t printed; /* file events printed, for --count */
    bool done;        /* stop the loop: --count reached or standard output failed */
    int out_errno;    /* why standard output failed, 0 if it did not */
};

struct session {
    ivmon *m; /* NULL once closed */
    const char *uri;
    int64_t due_ns; /* monotonic time by which ivmon_process() must run even if the fd is quiet */
};

static volatile sig_atomic_t got_signal;

/* ---- Command line -------------------------------------------------------------------------- */

/* Prints the names fn gives for 0..max (skipping NULL) as a list indented to the option
 * descriptions and wrapped before column 80. The names come from the library, so a new
 * operation or counter shows up in --help without a change here. */
static void print_names(FILE *f, const char *(*fn)(unsigned), unsigned max)
{
    static const char indent[] = "                        ";
    size_t col = 0;

    for (unsigned i = 0; i <= max; i++) {
        const char *name = fn(i);
        if (!name)
            continue;
        size_t len = strlen(name);
        if (col == 0 || col + 1 + len >= 80) {
            fputs(col ? "\n" : "", f);
            fputs(indent, f);
            col = sizeof(indent) - 1;
        } else {
            fputc(' ', f);
            col++;
        }
        fputs(name, f);
        col += len;
    }
    fputc('\n', f);
}

static void usage(FILE *f)
{
    fputs("Usage: " PROG " [OPTION]... URI...\n"
          "Print the file accesses inside virtual machines as they happen: one session\n"
          "per URI (e.g. shm:demo), all in one event loop, one line per event.\n"
          "\n"
          "Output (events go to standard output, line-buffered):\n"
          "  -j, --json            one JSON object per line instead of text; bytes of\n"
          "                        file names that are not UTF-8 are kept as \\udcXX\n"
          "                        (Python: s.encode('utf-8', 'surrogateescape'))\n"
          "  -v, --verbose         also heartbeats, sequence numbers, tid/ppid/gid and\n"
          "                        the library's informational log messages\n"
          "  -s, --stats           on exit, print to standard error (standard output\n"
          "                        carries events only) one JSON line per session:\n"
          "                        {\"type\":\"stats\",\"source\":URI,COUNTER:N,...,\n"
          "                        \"error\":null or why the session failed}\n"
          "                        with the counters:\n",
          f);
    print_names(f, ivmon_stat_name, IVMON_STAT_MAX);
    fputs("\n"
          "Filters, applied to file events only (lost-record and hello events always\n"
          "pass; a file event must pass every kind given, and any pattern of a kind):\n"
          "  -o, --op LIST         only these operations, comma-separated:\n",
          f);
    print_names(f, ivmon_op_name, 31); /* the filter's mask has 32 bits */
    fputs("  -p, --path GLOB       only paths matching the fnmatch(3) GLOB (either name\n"
          "                        of a rename); '*' matches '/' too; repeatable\n"
          "      --comm GLOB       only processes whose name matches GLOB; repeatable\n"
          "\n"
          "Stopping (also on SIGINT or SIGTERM):\n"
          "  -c, --count N         exit after printing N file events\n"
          "  -t, --timeout SECONDS exit after SECONDS (fractions allowed)\n"
          "\n"
          "  -h, --help            show this help and exit\n"
          "  -V, --version         show the libivmon version and exit\n"
          "\n"
          "Exit status: 0 normally; 1 if a session failed (it is reported and closed,\n"
          "the others keep running) or standard output failed; 2 on a usage error or a\n"
          "URI that could not be opened.\n",
          f);
}

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" PROG " --help' for more information.\n", stderr);
    exit(EXIT_USAGE);
}

static uint64_t parse_count(const char *s)
{
    char *end;
    unsigned long long v;

    /* strtoull would take "-1" as a huge number and skip leading spaces: refuse both. */
    if (s[0] < '0' || s[0] > '9')
        usage_error("--count: '%s' is not a positive integer", s);
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v == 0)
        usage_error("--count: '%s' is not a positive integer", s);
    return v;
}

static int64_t parse_timeout(const char *s)
{
    char *end;
    double v;

    /* The program stays in the C locale, so the decimal point is always '.'. */
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0 || v > TIMEOUT_MAX_S)
        usage_error("--timeout: '%s' is not a number of seconds between 0 and %.0f", s,
                    TIMEOUT_MAX_S);
    return (int64_t)ceil(v * 1e9);
}

/* Parses the options into app and returns the index of the first URI in argv. */
static int parse_options(struct app *app, int argc, char **argv)
{
    enum { OPT_COMM = 256 };
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"stats", no_argument, NULL, 's'},
        {"op", required_argument, NULL, 'o'},
        {"path", required_argument, NULL, 'p'},
        {"comm", required_argument, NULL, OPT_COMM},
        {"count", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "jvso:p:c:t:hV", options, NULL)) != -1) {
        char bad[64];
        int r;

        switch (c) {
        case 'j':
            app->json = true;
            break;
        case 'v':
            app->out.verbose = true;
            break;
        case 's':
            app->stats = true;
            break;
        case 'o':
            r = filter_add_ops(&app->filter, optarg, bad, sizeof(bad));
            if (r == -EINVAL && !bad[0])
                usage_error("--op: empty operation name in '%s'", optarg);
            if (r == -EINVAL)
                usage_error("--op: unknown operation '%s'", bad);
            if (r < 0)
                usage_error("--op: %s", ivmon_strerror(r));
            break;
        case 'p':
            if (filter_add_path(&app->filter, optarg) < 0)
                usage_error("--path: out of memory");
            break;
        case OPT_COMM:
            if (filter_add_comm(&app->filter, optarg) < 0)
                usage_error("--comm: out of memory");
            break;
        case 'c':
            app->count = parse_count(optarg);
            break;
        case 't':
            app->timeout_ns = parse_timeout(optarg);
            break;
        case 'h':
            usage(stdout);
            exit(EXIT_SUCCESS);
        case 'V':
            printf(PROG " (libivmon %s)\n", ivmon_version());
            exit(EXIT_SUCCESS);
        default:
            /* getopt_long has already said what was wrong. */
            fputs("Try '" PROG " --help' for more information.\n", stderr);
            exit(EXIT_USAGE);
        }
    }
    if (optind >= argc)
        usage_error("no URI given");
    return optind;
}

/* Whether the user's locale encodes text as UTF-8, in which case the text output may show
 * printable UTF-8 as is. The program itself then goes back to the C locale: fnmatch(3) must
 * compare bytes, since file names need not be valid in any encoding. */
static bool locale_is_utf8(void)
{
    bool utf8 = false;

    if (setlocale(LC_CTYPE, ""))
        utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    setlocale(LC_CTYPE, "C");
    return utf8;
}

/* ---- Signals ------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    got_signal = sig;
}

/*
 * SIGINT and SIGTERM set a flag that the loop checks after each poll. They stay blocked except
 * inside ppoll(), which unblocks them atomically with going to sleep: a signal that arrives
 * while sessions are being processed waits for the next ppoll(), which then returns at once
 * (no lost wake-up), and a write to standard output is never cut by EINTR, so every line is
 * complete. No SA_RESTART: ppoll() must return on the signal, never resume sleeping.
 * Stores in *ret_wait_mask the mask to sleep with.
 */
static int setup_signals(sigset_t *ret_wait_mask)
{
    struct sigaction sa;
    sigset_t block, old;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -errno;
    /* A reader that goes away (| head) must not kill us before the sessions are closed and
     * the statistics printed: get EPIPE from the write instead. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        return -errno;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &block, &old) < 0)
        return -errno;
    /* Even if our parent left them blocked, they must be deliverable while we sleep. */
    sigdelset(&old, SIGINT);
    sigdelset(&old, SIGTERM);
    *ret_wait_mask = old;
    return 0;
}

/* ---- Event handlers ------------------------------------------------------------------------ */

/* Any negative value stops ivmon_process() at once; which one does not matter, since the loop
 * looks at app->done, not at the code, to tell this stop from a session error. */
#define STOP (-ECANCELED)

static int print_event(struct app *app, const ivmon_event *ev)
{
    errno = 0;
    if (app->json)
        output_json_event(stdout, ev, &app->out);
    else
        output_text_event(stdout, ev, &app->out);
    /* stdout is line-buffered, so the line has been written (or failed) by now. */
    if (ferror(stdout)) {
        app->out_errno = errno ? errno : EIO;
        app->done = true;
        return STOP;
    }
    return 0;
}

static int on_file(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct app *app = userdata;
    int r;

    (void)m;
    if (app->done)
        return STOP;
    if (!filter_match(&app->filter, ev))
        return 0;
    r = print_event(app, ev);
    if (r < 0)
        return r;
    if (app->count && ++app->printed >= app->count) {
        app->done = true;
        return STOP;
    }
    return 0;
}

/* Lost records and hellos are never filtered: they tell whether the file events can be
 * trusted. Heartbeats and types newer than this program only come here with --verbose. */
static int on_other(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct app *app = userdata;

    (void)m;
    if (app->done)
        return STOP;
    return print_event(app, ev);
}

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    const struct app *app = userdata;
    const char *what = level <= IVMON_LOG_ERR       ? "error"
                       : level <= IVMON_LOG_WARNING ? "warning"
                       : level <= IVMON_LOG_INFO    ? "info"
                                                    : "debug";

    if (level > IVMON_LOG_WARNING && !app->out.verbose)
        return;
    /* Messages can quote what the guest sent (a host name, a bad record): escape them. */
    fputs(PROG ": ", stderr);
    output_text_escaped(stderr, ivmon_get_uri(m), false);
    fprintf(stderr, ": %s: ", what);
    output_text_escaped(stderr, msg, false);
    fputc('\n', stderr);
}

/* ---- Sessions ------------------------------------------------------------------------------ */

static int session_open(struct session *s, const char *uri, struct app *app)
{
    ivmon *m;
    int r;

    r = ivmon_open(&m, uri, 0);
    if (r < 0) {
        const char *why = ivmon_open_error();
        fputs(PROG ": ", stderr);
        output_text_escaped(stderr, uri, false);
        fprintf(stderr, ": %s", ivmon_strerror(r));
        if (why[0]) {
            fputs(": ", stderr);
            output_text_escaped(stderr, why, false);
        }
        fputc('\n', stderr);
        return r;
    }

    /* Install the log sink and the handlers before the first ivmon_process(): nothing is
     * dispatched before that. Only the wanted types get a handler, so with neither
     * IVMON_EVENT_HEARTBEAT nor IVMON_EVENT_ANY set, heartbeats are not dispatched at all. */
    ivmon_set_log(m, on_log, app);
    if ((r = ivmon_set_handler(m, IVMON_EVENT_FILE, on_file, app)) < 0 ||
        (r = ivmon_set_handler(m, IVMON_EVENT_LOST, on_other, app)) < 0 ||
        (r = ivmon_set_handler(m, IVMON_EVENT_HELLO, on_other, app)) < 0 ||
        (app->out.verbose &&
         ((r = ivmon_set_handler(m, IVMON_EVENT_HEARTBEAT, on_other, app)) < 0 ||
          (r = ivmon_set_handler(m, IVMON_EVENT_ANY, on_other, app)) < 0))) {
        fprintf(stderr, PROG ": setting a handler: %s\n", ivmon_strerror(r));
        ivmon_close(m);
        return r;
    }

    s->m = m;
    s->uri = uri;
    s->due_ns = 0;
    return 0;
}

/* Prints the session's counters if asked, then closes it. error: why it ended, or NULL. */
static void session_close(struct session *s, const struct app *app, const char *error)
{
    if (!s->m)
        return;
    if (app->stats)
        output_json_stats(stderr, s->m, error);
    ivmon_close(s->m);
    s->m = NULL;
}

/* A session failed: say why on stderr and close it. The others are not affected. */
static void session_fail(struct session *s, const struct app *app, int err)
{
    const char *why = ivmon_get_error(s->m);

    fputs(PROG ": ", stderr);
    output_text_escaped(stderr, s->uri, false);
    fprintf(stderr, ": %s", ivmon_strerror(err));
    if (why[0]) {
        fputs(": ", stderr);
        output_text_escaped(stderr, why, false);
    }
    fputc('\n', stderr);
    session_close(s, app, why[0] ? why : ivmon_strerror(err));
}

/* ---- The event loop ------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC: --timeout and the session timeouts are durations, which a change of
     * the wall clock must not stretch or cut. It cannot fail with a valid clock id. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Runs until every session is closed, --count or --timeout is reached, standard output fails
 * or a signal comes. Returns the exit status.
 */
static int run(struct app *app, struct session *sessions, size_t n, const sigset_t *wait_mask)
{
    struct pollfd *pfds = calloc(n, sizeof(*pfds));
    size_t *which = calloc(n, sizeof(*which)); /* pfds[k] belongs to sessions[which[k]] */
    int64_t deadline = app->timeout_ns >= 0 ? now_ns() + app->timeout_ns : -1;
    int status = EXIT_SUCCESS;

    if (!pfds || !which) {
        fprintf(stderr, PROG ": %s\n", ivmon_strerror(-ENOMEM));
        free(pfds);
        free(which);
        return EXIT_BROKEN;
    }

    while (!got_signal && !app->done) {
        int64_t now = now_ns();
        int64_t wait = INT64_MAX;
        size_t nfds = 0;
        struct timespec ts;

        if (deadline >= 0) {
            if (now >= deadline)
                break;
            wait = deadline - now;
        }

        /* Poll set, rebuilt each time because sessions come and go. Each session also says
         * how long it may be left alone; it must get ivmon_process() by then even if its fd
         * stays quiet (0: it stopped at its budget with work pending). */
        for (size_t i = 0; i < n; i++) {
            struct session *s = &sessions[i];
            int64_t t;

            if (!s->m)
                continue;
            t = (int64_t)ivmon_get_timeout(s->m) * 1000000;
            s->due_ns = now + t;
            if (t < wait)
                wait = t;
            pfds[nfds].fd = ivmon_get_fd(s->m);
            pfds[nfds].events = (short)ivmon_get_events(s->m);
            pfds[nfds].revents = 0;
            which[nfds++] = i;
        }
        if (nfds == 0)
            break; /* every session failed */

        ts.tv_sec = (time_t)(wait / 1000000000);
        ts.tv_nsec = (long)(wait % 1000000000);
        if (ppoll(pfds, nfds, &ts, wait_mask) < 0) {
            if (errno == EINTR)
                continue; /* a signal: the loop condition looks at it */
            fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
            status = EXIT_BROKEN;
            break;
        }
        if (got_signal)
            break;

        now = now_ns();
        for (size_t k = 0; k < nfds && !app->done; k++) {
            struct session *s = &sessions[which[k]];
            int r;

            if (!pfds[k].revents && now < s->due_ns)
                continue;
            if (pfds[k].revents & POLLNVAL) {
                /* The library's fd is not open: nothing ivmon_process() could do would
                 * change that, and polling it again would spin. */
                session_fail(s, app, -EBADF);
                status = EXIT_BROKEN;
                continue;
            }

            /* Each call dispatches at most the session's budget of records, so one flooding
             * guest cannot keep this loop from the others; what it leaves makes its next
             * timeout 0. */
            r = ivmon_process(s->m, 0);
            if (r >= 0 || app->done)
                continue; /* app->done: our handler stopped it, not an error */
            if (r == -EAGAIN || r == -EINTR)
                continue;
            session_fail(s, app, r);
            status = EXIT_BROKEN;
        }
    }

    free(pfds);
    free(which);
    return status;
}

int main(int argc, char **argv)
{
    struct app app;
    struct session *sessions;
    sigset_t wait_mask;
    size_t n;
    int first, status, r;

    memset(&app, 0, sizeof(app));
    app.timeout_ns = -1;
    filter_init(&app.filter);
    first = parse_options(&app, argc, argv);
    n = (size_t)(argc - first);
    app.out.utf8 = !app.json && locale_is_utf8();

    /* A reader on a pipe sees each event when it happens, not when a block fills up. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    r = setup_signals(&wait_mask);
    if (r < 0) {
        fprintf(stderr, PROG ": signals: %s\n", strerror(-r));
        return EXIT_BROKEN;
    }

    sessions = calloc(n, sizeof(*sessions));
    if (!sessions) {
        fprintf(stderr, PROG ": %s\n", ivmon_strerror(-ENOMEM));
        return EXIT_BROKEN;
    }
    for (size_t i = 0; i < n; i++) {
        if (session_open(&sessions[i], argv[first + i], &app) < 0) {
            /* Watching only some of the machines asked for would be a silent gap: stop. */
            for (size_t j = 0; j < i; j++) {
                ivmon_close(sessions[j].m);
                sessions[j].m = NULL;
            }
            free(sessions);
            filter_free(&app.filter);
            return EXIT_USAGE;
        }
    }

    status = run(&app, sessions, n, &wait_mask);

    for (size_t i = 0; i < n; i++)
        session_close(&sessions[i], &app, NULL);
    free(sessions);
    filter_free(&app.filter);

    /* A reader that stopped reading (EPIPE) got what it wanted; any other failure means events
     * were not delivered, and the exit status must say so. */
    if (fflush(stdout) != 0 && !app.out_errno)
        app.out_errno = errno;
    if (app.out_errno && app.out_errno != EPIPE) {
        fprintf(stderr, PROG ": standard output: %s\n", strerror(app.out_errno));
        status = EXIT_BROKEN;
    }
    return status;
}
