/* SPDX-License-Identifier: MIT */
/*
 * ivmon-agent: reports file access inside a Linux guest to the host through an ivmon transport.
 *
 * One thread, one poll loop: the fanotify groups, a timerfd for heartbeats, a signalfd for
 * SIGINT/SIGTERM. Nothing is printed per event: the console or a log file may sit on a watched
 * filesystem, and every write would come back as another event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent.h"
#include "fanotify_source.h"
#include "identity.h"
#include "record_encode.h"
#include "transport.h"

#define PROGRAM         "ivmon-agent"
#define EMIT_SLICE_MS   200 /* lossless waits are cut in slices to notice SIGINT/SIGTERM */
#define HEARTBEAT_MAX_S 86400u
/* A failing doorbell is reported when it starts, when its cause changes, when it works again,
 * and at most this often while it lasts. */
#define DOORBELL_REPORT_NS (10ull * 1000000000u)

struct agent {
    struct agent_config cfg;
    struct ivmon_guest_transport *t;
    struct fan_source *src;
    int sigfd, timerfd;
    int stop;
    uint64_t encode_errors; /* events the encoder refused (a bug if ever non-zero) */
    uint64_t abandoned;     /* lossless records given up because the agent was stopping */
    /* doorbell failures as last reported (report_doorbell) */
    uint64_t db_errors, db_ok, db_report_ns;
    int db_errno, db_failing;
    union ivmon_enc_buf rec;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROGRAM " --uri URI [--watch PATH]... [--filesystem PATH]... [--ops LIST]\n"
            "       [--exclude GLOB]... [--heartbeat SECONDS] [--ready-file FILE] [--verbose]\n"
            "\n"
            "  --uri URI          transport, e.g. shm:NAME, shm:/path?size=4M&lossless=1,\n"
            "                     ivshmem:, virtio-serial:PORTNAME or kvm+hcall:?port=0x4956\n"
            "  --watch PATH       report events on PATH and below (repeatable)\n"
            "  --filesystem PATH  report every event on the filesystem holding PATH (repeatable)\n"
            "  --ops LIST         comma-separated subset of open,modify,close_write,create,\n"
            "                     delete,rename,attrib,exec (default: all)\n"
            "  --exclude GLOB     drop events whose path matches (fnmatch, '*' matches '/')\n"
            "  --heartbeat SECS   heartbeat period, 0 = off (default 5)\n"
            "  --ready-file FILE  create FILE once the marks are in place\n"
            "  --verbose          startup and exit summary on stderr\n");
}

static int parse_ops(const char *list, uint32_t *ret)
{
    static const struct {
        const char *name;
        uint32_t op;
    } names[] = {{"open", IVMON_OP_OPEN},
                 {"modify", IVMON_OP_MODIFY},
                 {"close_write", IVMON_OP_CLOSE_WRITE},
                 {"create", IVMON_OP_CREATE},
                 {"delete", IVMON_OP_DELETE},
                 {"rename", IVMON_OP_RENAME},
                 {"attrib", IVMON_OP_ATTRIB},
                 {"exec", IVMON_OP_EXEC}};
    uint32_t ops = 0;
    const char *p = list;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && !strncmp(p, names[i].name, n))
                break;
        if (i == sizeof names / sizeof names[0]) {
            fprintf(stderr, PROGRAM ": --ops: unknown operation '%.*s'\n", (int)n, p);
            return -EINVAL;
        }
        ops |= AGENT_OP_BIT(names[i].op);
        if (!comma)
            break;
        p = comma + 1;
    }
    *ret = ops;
    return 0;
}

/* Appends the canonical form of path to a list; the path must exist. */
static int add_path(char ***list, size_t *n, const char *opt, const char *path)
{
    char *real = realpath(path, NULL);
    if (!real) {
        fprintf(stderr, PROGRAM ": %s %s: %s\n", opt, path, strerror(errno));
        return -errno;
    }
    char **l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l) {
        free(real);
        fprintf(stderr, PROGRAM ": out of memory\n");
        return -ENOMEM;
    }
    l[(*n)++] = real;
    *list = l;
    return 0;
}

static int add_glob(struct agent_config *c, const char *glob)
{
    char **l = realloc(c->exclude, (c->nexclude + 1) * sizeof *l);
    if (!l) {
        fprintf(stderr, PROGRAM ": out of memory\n");
        return -ENOMEM;
    }
    l[c->nexclude++] = (char *)glob; /* argv outlives the agent */
    c->exclude = l;
    return 0;
}

/* Returns 0 to run, 1 to exit 0 (--help/--version), 2 for a usage error. */
static int parse_args(int argc, char **argv, struct agent_config *c)
{
    enum {
        OPT_URI = 256,
        OPT_WATCH,
        OPT_FS,
        OPT_OPS,
        OPT_EXCL,
        OPT_HB,
        OPT_READY,
        OPT_VERB,
        OPT_HELP,
        OPT_VER
    };
    static const struct option opts[] = {
        {"uri", required_argument, NULL, OPT_URI},
        {"watch", required_argument, NULL, OPT_WATCH},
        {"filesystem", required_argument, NULL, OPT_FS},
        {"ops", required_argument, NULL, OPT_OPS},
        {"exclude", required_argument, NULL, OPT_EXCL},
        {"heartbeat", required_argument, NULL, OPT_HB},
        {"ready-file", required_argument, NULL, OPT_READY},
        {"verbose", no_argument, NULL, OPT_VERB},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VER},
        {NULL, 0, NULL, 0},
    };

    c->ops = AGENT_OPS_ALL;
    c->heartbeat_s = 5;
    for (;;) {
        int o = getopt_long(argc, argv, "", opts, NULL);
        if (o == -1)
            break;
        char *end;
        unsigned long v;
        switch (o) {
        case OPT_URI:
            c->uri = optarg;
            break;
        case OPT_WATCH:
            if (add_path(&c->watch, &c->nwatch, "--watch", optarg) < 0)
                return 2;
            break;
        case OPT_FS:
            if (add_path(&c->filesystem, &c->nfilesystem, "--filesystem", optarg) < 0)
                return 2;
            break;
        case OPT_OPS:
            if (parse_ops(optarg, &c->ops) < 0)
                return 2;
            break;
        case OPT_EXCL:
            if (add_glob(c, optarg) < 0)
                return 2;
            break;
        case OPT_HB:
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v > HEARTBEAT_MAX_S) {
                fprintf(stderr, PROGRAM ": --heartbeat: seconds 0..%u expected\n", HEARTBEAT_MAX_S);
                return 2;
            }
            c->heartbeat_s = (unsigned)v;
            break;
        case OPT_READY:
            c->ready_file = optarg;
            break;
        case OPT_VERB:
            c->verbose = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return 1;
        case OPT_VER:
            printf(PROGRAM " %s\n", IVMON_GUEST_VERSION);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROGRAM ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!c->uri) {
        fprintf(stderr, PROGRAM ": --uri is required\n");
        return 2;
    }
    if (!c->nwatch && !c->nfilesystem) {
        fprintf(stderr, PROGRAM ": at least one --watch or --filesystem is required\n");
        return 2;
    }
    return 0;
}

/* Drains the signalfd; sets a->stop on SIGINT/SIGTERM. */
static void check_signals(struct agent *a)
{
    struct signalfd_siginfo si;
    while (read(a->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
            a->stop = 1;
}

/* Emits rec (NULL: a heartbeat). In lossless mode waits for room in slices, giving up only
 * when the agent is asked to stop; drop mode never waits. */
static int agent_emit(struct agent *a, struct ivmon_rec_hdr *rec)
{
    for (;;) {
        int slice = a->stop ? 0 : EMIT_SLICE_MS;
        int r = rec ? ivmon_guest_transport_emit(a->t, rec, slice)
                    : ivmon_guest_transport_heartbeat(a->t, slice);
        if (r != -ETIMEDOUT)
            return r;
        check_signals(a);
        if (a->stop) {
            a->abandoned++;
            return -ECANCELED;
        }
    }
}

static void sink_file(void *arg, const struct ivmon_enc_file *ev)
{
    struct agent *a = arg;
    int n = ivmon_enc_file(&a->rec, sizeof a->rec, ivmon_guest_realtime_ns(), ev);
    if (n < 0) {
        a->encode_errors++;
        return;
    }
    agent_emit(a, &a->rec.hdr);
}

static void sink_overflow(void *arg)
{
    struct agent *a = arg;
    /* The kernel's queue lost events that never got sequence numbers: count and range 0. */
    if (ivmon_enc_lost(&a->rec, sizeof a->rec, ivmon_guest_realtime_ns(),
                       IVMON_LOST_SOURCE_OVERFLOW, 0, 0, 0) > 0)
        agent_emit(a, &a->rec.hdr);
}

static int setup_signals(struct agent *a)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* Blocked and read through a signalfd: the loop handles them, and a lossless wait can
     * notice them without async-signal handlers. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN); /* no socket is written, but a closed stderr pipe must not kill */
    return 0;
}

static int setup_timer(struct agent *a)
{
    a->timerfd = -1;
    if (!a->cfg.heartbeat_s)
        return 0;
    a->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (a->timerfd < 0)
        return -errno;
    struct itimerspec its = {.it_interval = {(time_t)a->cfg.heartbeat_s, 0},
                             .it_value = {(time_t)a->cfg.heartbeat_s, 0}};
    if (timerfd_settime(a->timerfd, 0, &its, NULL) < 0)
        return -errno;
    return 0;
}

static int write_ready_file(const char *path)
{
    char text[32];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
    ssize_t w = write(fd, text, (size_t)n);
    int e = errno;
    if (close(fd) < 0 && w >= 0) {
        w = -1;
        e = errno;
    }
    return w == n ? 0 : -(w < 0 ? e : EIO);
}

static void print_summary(const struct agent *a)
{
    struct ivmon_guest_transport_stats ts;
    struct fan_source_stats fs;
    ivmon_guest_transport_get_stats(a->t, &ts);
    fan_source_get_stats(a->src, &fs);
    fprintf(stderr,
            PROGRAM ": events %llu, records %llu, skipped own %llu, filtered %llu, "
                    "unresolved %llu, unnamed %llu, malformed %llu, overflows %llu\n" PROGRAM
                    ": produced %llu, dropped %llu, doorbells %llu (missed %llu, failed %llu), "
                    "full waits %llu, abandoned %llu, encode errors %llu\n",
            (unsigned long long)fs.events, (unsigned long long)fs.records,
            (unsigned long long)fs.skipped_self, (unsigned long long)fs.filtered,
            (unsigned long long)fs.unresolved, (unsigned long long)fs.unnamed,
            (unsigned long long)fs.malformed, (unsigned long long)fs.overflows,
            (unsigned long long)ts.produced, (unsigned long long)ts.dropped,
            (unsigned long long)ts.doorbells, (unsigned long long)ts.doorbell_misses,
            (unsigned long long)ts.doorbell_errors, (unsigned long long)ts.full_waits,
            (unsigned long long)a->abandoned, (unsigned long long)a->encode_errors);
    if (!ts.ring_size)
        fprintf(stderr, PROGRAM ": traps %llu, records not sent %llu\n",
                (unsigned long long)ts.traps, (unsigned long long)ts.send_errors);
}

static void print_startup(const struct agent *a)
{
    struct ivmon_guest_transport_stats ts;
    struct fan_source_info fi;
    ivmon_guest_transport_get_stats(a->t, &ts);
    fan_source_get_info(a->src, &fi);
    char how[64];
    if (ts.ring_size)
        snprintf(how, sizeof how, "%s %llu bytes, %s mode", ts.stream ? "stream, queue" : "ring",
                 (unsigned long long)ts.ring_size, ts.lossless ? "lossless" : "drop");
    else
        snprintf(how, sizeof how, "register fragments, one trap each");
    fprintf(stderr,
            PROGRAM " %s: %s, %s; %zu filesystem(s) marked%s; "
                    "thread ids: fd group %s, fid group %s; renames: %s\n",
            IVMON_GUEST_VERSION, a->cfg.uri, how, fi.nfs,
            fi.mount_marks ? " (fd group on mount marks)" : "", fi.notif_tid ? "yes" : "no",
            fi.fid_tid ? "yes" : "no",
            fi.rename_pairs ? "FAN_RENAME" : "MOVED_FROM/MOVED_TO pairing");
}

/* A doorbell that fails (the transport retries it; the records wait in the ring) would
 * otherwise go unnoticed until the host misses the records: say so on stderr, the console. */
static void report_doorbell(struct agent *a)
{
    struct ivmon_guest_transport_stats ts;
    ivmon_guest_transport_get_stats(a->t, &ts);
    uint64_t now = ivmon_guest_monotonic_ns();
    if (ts.doorbell_errors != a->db_errors) {
        if (!a->db_failing || ts.last_doorbell_error != a->db_errno ||
            now - a->db_report_ns >= DOORBELL_REPORT_NS) {
            fprintf(stderr,
                    PROGRAM ": %s: the doorbell failed: %s (%llu time(s) so far); the records "
                            "wait in the ring, and it is retried\n",
                    a->cfg.uri, strerror(-ts.last_doorbell_error),
                    (unsigned long long)ts.doorbell_errors);
            a->db_report_ns = now;
            a->db_errno = ts.last_doorbell_error;
        }
        a->db_errors = ts.doorbell_errors;
        a->db_ok = ts.doorbells;
        a->db_failing = 1;
    } else if (a->db_failing && ts.doorbells != a->db_ok) {
        fprintf(stderr, PROGRAM ": %s: the doorbell works again\n", a->cfg.uri);
        a->db_failing = 0;
    }
}

/* The poll loop; returns when asked to stop or on a fatal error (negative errno). */
static int run(struct agent *a)
{
    struct pollfd pfd[4];
    int fid_fd = fan_source_fid_fd(a->src), notif_fd = fan_source_notif_fd(a->src);

    /* FID group first: a create is usually older than the open of the same file. */
    pfd[0] = (struct pollfd){.fd = a->sigfd, .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = fid_fd, .events = POLLIN};
    pfd[2] = (struct pollfd){.fd = notif_fd, .events = POLLIN};
    pfd[3] = (struct pollfd){.fd = a->timerfd, .events = POLLIN};
    while (!a->stop) {
        int timeout = ivmon_guest_transport_tick(a->t);
        if (poll(pfd, 4, timeout) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (pfd[0].revents)
            check_signals(a);
        fan_source_new_round(a->src);
        /* One round's events are published together: one index store, one fence and at most
         * one doorbell per round instead of per event. */
        ivmon_guest_transport_batch_begin(a->t);
        for (int i = 1; i <= 2; i++) {
            if (pfd[i].revents & POLLIN) {
                int r = fan_source_process(a->src, pfd[i].fd);
                if (r < 0) {
                    ivmon_guest_transport_batch_end(a->t);
                    return r;
                }
            }
        }
        ivmon_guest_transport_batch_end(a->t);
        if (pfd[3].revents & POLLIN) {
            uint64_t ticks;
            if (read(a->timerfd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks)
                agent_emit(a, NULL); /* one heartbeat even if several periods passed */
        }
        report_doorbell(a);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct agent a; /* static: holds a 16 KiB record buffer */
    char err[512];
    int r;

    a.sigfd = a.timerfd = -1;
    r = parse_args(argc, argv, &a.cfg);
    if (r)
        return r == 1 ? 0 : 2;
    if ((r = setup_signals(&a)) < 0) {
        fprintf(stderr, PROGRAM ": signals: %s\n", strerror(-r));
        return 1;
    }
    r = ivmon_guest_transport_open(&a.t, a.cfg.uri, 0, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        return 1;
    }
    struct agent_sink sink = {.file = sink_file, .overflow = sink_overflow, .arg = &a};
    r = fan_source_open(&a.src, &a.cfg, &sink, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        ivmon_guest_transport_close(a.t);
        return 1;
    }
    /* The marks are in place: events queue from here on and are read after the HELLO. */
    r = ivmon_guest_hello_encode(&a.rec, sizeof a.rec, fan_source_caps(a.src), PROGRAM);
    if (r > 0)
        r = agent_emit(&a, &a.rec.hdr);
    if (r == -ECANCELED) {
        r = 0; /* stopped by SIGINT/SIGTERM while a lossless ring had no room: a clean stop */
        goto out;
    }
    if (r < 0 && r != -ENOBUFS) {
        fprintf(stderr, PROGRAM ": cannot emit HELLO: %s\n", strerror(-r));
        goto out;
    }
    if ((r = setup_timer(&a)) < 0) {
        fprintf(stderr, PROGRAM ": timerfd: %s\n", strerror(-r));
        goto out;
    }
    if (a.cfg.verbose)
        print_startup(&a);
    if (a.cfg.ready_file && (r = write_ready_file(a.cfg.ready_file)) < 0) {
        fprintf(stderr, PROGRAM ": --ready-file %s: %s\n", a.cfg.ready_file, strerror(-r));
        goto out;
    }
    r = run(&a);
    if (r < 0)
        fprintf(stderr, PROGRAM ": %s\n",
                r == -EPROTO ? "unknown fanotify metadata version" : strerror(-r));
out:
    if (ivmon_guest_transport_flush(a.t, IVMON_GUEST_FLUSH_TIMEOUT_MS) == -ETIMEDOUT)
        fprintf(stderr,
                PROGRAM ": the final heartbeat did not get out within %d ms (no consumer made "
                        "room); a pending loss report did not either\n",
                IVMON_GUEST_FLUSH_TIMEOUT_MS);
    if (a.cfg.verbose)
        print_summary(&a);
    fan_source_close(a.src);
    ivmon_guest_transport_close(a.t);
    if (a.timerfd >= 0)
        close(a.timerfd);
    if (a.sigfd >= 0)
        close(a.sigfd);
    return r < 0 ? 1 : 0;
}
