/* SPDX-License-Identifier: MIT */
/*
 * ivmon-bench-xen-read: the dom0 side of the Xen bench (bench/xen/run.sh). Takes one producer's
 * records -- a HELLO, N FILE records, a final HEARTBEAT, as ivmon-produce and ivmon-vchan-produce
 * send them -- checks every one and prints what it measured.
 *
 *   ivmon-bench-xen-read [--timeout SECONDS] [--domid N] URI
 *
 *   URI  an ivmon URI (xen+shm:DOM, xen+vcpu:DOM): a libivmon session through the public API,
 *        as any monitor would read it;
 *        vchan:DOMID:XS_PATH: a libxenvchan client (gntdev + evtchn) reading the byte stream,
 *        each record cut out by its header's length and decoded by libivmon's own decoder
 *        (ivmon__decode), the same validation a session applies.
 * Either way each record must decode, the first must be the HELLO with seq 1 (nothing before the
 * reader was there), then FILE records with every next seq, then the HEARTBEAT whose produced is
 * its own seq. Anything else fails the run (exit 1) with the reason on stderr. On success, one
 * JSON line on stdout:
 *   {"uri":U,"file_records":N,"elapsed_ns":T,"cpu_ns":C,"guest_cpu_ns":G,"wakeups":W,
 *    "fragments":F}
 * elapsed_ns runs from the first FILE record's arrival to the last one's (so records/s is
 * (N - 1) / T); cpu_ns is this process's user + system time from the first FILE record to the
 * final heartbeat; guest_cpu_ns is what Xen counted for domain N's vCPUs over that span (the
 * guest's work and the hypervisor's on its behalf: the traps), or 0 without --domid; wakeups and
 * fragments are the session's counters (0 for vchan).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "ivmon/ivmon.h"
#include "xen/xen_common.h" /* first of the Xen headers: it asks for the tools-only parts */

#include "vchan_io.h"

#define PROGRAM "ivmon-bench-xen-read"

struct run {
    const char *uri;
    xc_interface *xch; /* with --domid: the domain whose vCPU time is sampled */
    uint32_t domid;
    uint64_t guest_first, guest_last;
    uint64_t deadline, alive_ns; /* vchan: give up then; last look at the domain */
    uint64_t next_seq;           /* the seq the next record must carry */
    uint64_t files;
    uint64_t t_first, t_last, cpu_first;
    int done;
    char why[512];
};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* This process's user + system CPU time. */
static uint64_t cpu_ns(void)
{
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

/* Xen's count of the domain's vCPU time in ns (0 without --domid, or if it cannot be read). */
static uint64_t guest_ns(const struct run *r)
{
    xc_dominfo_t info;
    if (!r->xch || ivmon__xen_domain_info(r->xch, r->domid, &info) < 0)
        return 0;
    return info.cpu_time;
}

/* Checks one record against the sequence the producers send. Returns 0, or -1 with run->why. */
static int take(struct run *r, const ivmon_event *ev)
{
    unsigned type = ivmon_event_type(ev);
    uint64_t seq = ivmon_event_seq(ev);
    if (r->done || seq != r->next_seq) {
        snprintf(r->why, sizeof r->why, "record type %u seq %llu, expected seq %llu%s", type,
                 (unsigned long long)seq, (unsigned long long)r->next_seq,
                 r->done ? " (after the final heartbeat)" : "");
        return -1;
    }
    if (seq == 1 && type != IVMON_EVENT_HELLO) {
        snprintf(r->why, sizeof r->why, "the first record is of type %u, not a HELLO", type);
        return -1;
    }
    if (seq > 1 && type == IVMON_EVENT_FILE) {
        uint64_t now = mono_ns();
        if (!r->files++) {
            r->t_first = now;
            r->cpu_first = cpu_ns();
            r->guest_first = guest_ns(r);
        }
        r->t_last = now;
    } else if (seq > 1 && type == IVMON_EVENT_HEARTBEAT && ivmon_event_produced(ev) == seq) {
        r->done = 1;
        r->guest_last = guest_ns(r);
    } else if (seq > 1) {
        snprintf(r->why, sizeof r->why, "record seq %llu is of type %u (a loss report?)",
                 (unsigned long long)seq, type);
        return -1;
    }
    r->next_seq++;
    return 0;
}

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    return take(userdata, ev) < 0 ? -EBADMSG : 0;
}

static int read_session(struct run *r, uint64_t deadline, uint64_t *ret_wakeups,
                        uint64_t *ret_fragments)
{
    ivmon *m = NULL;
    int e = ivmon_open(&m, r->uri, 0);
    if (e < 0) {
        snprintf(r->why, sizeof r->why, "%s", ivmon_open_error());
        return -1;
    }
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, r);
    while (!r->done && mono_ns() < deadline) {
        struct pollfd p = {.fd = ivmon_get_fd(m), .events = (short)ivmon_get_events(m)};
        if (poll(&p, 1, ivmon_get_timeout(m)) < 0 && errno != EINTR)
            break;
        e = ivmon_process(m, 0);
        if (e < 0) {
            if (!r->why[0])
                snprintf(r->why, sizeof r->why, "%s", ivmon_get_error(m));
            break;
        }
    }
    ivmon_get_stat(m, IVMON_STAT_WAKEUPS, ret_wakeups);
    ivmon_get_stat(m, IVMON_STAT_FRAGMENTS, ret_fragments);
    ivmon_close(m);
    return r->done ? 0 : -1;
}

/* vchan_read_all's question between waits: is the producer's domain still there, and is there
 * time left? Asks Xen at most once a second. */
static int vchan_alive(void *arg)
{
    struct run *r = arg;
    uint64_t now = mono_ns();
    if (now >= r->deadline)
        return 0;
    if (r->xch && now - r->alive_ns >= 1000000000u) {
        xc_dominfo_t info;
        r->alive_ns = now;
        return ivmon__xen_domain_info(r->xch, r->domid, &info) == 0 && !info.dying;
    }
    return 1;
}

static int read_vchan(struct run *r, uint64_t deadline)
{
    static union {
        struct ivmon_rec_hdr hdr;
        uint8_t bytes[IVMON_REC_MAX];
    } rec;
    static struct ivmon_event ev;
    char *end;
    errno = 0;
    unsigned long domid = strtoul(r->uri + 6, &end, 10);
    if (errno || end == r->uri + 6 || *end != ':' || !end[1] || domid > 0x7fef) {
        snprintf(r->why, sizeof r->why, "not vchan:DOMID:XS_PATH");
        return -1;
    }
    const char *path = end + 1;
    struct libxenvchan *v;
    while (!(v = libxenvchan_client_init(NULL, (int)domid, path))) {
        xc_dominfo_t info;
        if (r->xch && ivmon__xen_domain_info(r->xch, r->domid, &info) < 0) {
            snprintf(r->why, sizeof r->why, "domain %u went away before its vchan came",
                     (unsigned)r->domid);
            return -1;
        }
        if (mono_ns() >= deadline) {
            snprintf(r->why, sizeof r->why, "no vchan at %s: %s", path, strerror(errno));
            return -1;
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    v->blocking = 0; /* vchan_io.h waits, a bounded time at once */
    r->deadline = deadline;
    while (!r->done) {
        const char *why = NULL;
        if (vchan_read_all(v, &rec.hdr, sizeof rec.hdr, vchan_alive, r) < 0) {
            snprintf(r->why, sizeof r->why,
                     "the vchan closed, or the guest went away, before the final heartbeat");
            break;
        }
        uint32_t len = rec.hdr.len;
        if (len < sizeof rec.hdr || len > sizeof rec ||
            vchan_read_all(v, rec.bytes + sizeof rec.hdr, len - sizeof rec.hdr, vchan_alive, r) <
                0) {
            snprintf(r->why, sizeof r->why, "a record of %u bytes", (unsigned)len);
            break;
        }
        if (ivmon__decode(&rec, len, &ev, &why) < 0) {
            snprintf(r->why, sizeof r->why, "record seq %llu does not decode: %s",
                     (unsigned long long)rec.hdr.seq, why);
            break;
        }
        if (take(r, &ev) < 0)
            break;
    }
    /* The producer waits for this byte: its clock stops when everything was checked. */
    if (r->done && vchan_write_all(v, "K", 1) < 0) {
        snprintf(r->why, sizeof r->why, "cannot answer the producer");
        r->done = 0;
    }
    libxenvchan_close(v);
    return r->done ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"timeout", required_argument, NULL, 't'},
                                       {"domid", required_argument, NULL, 'd'},
                                       {NULL, 0, NULL, 0}};
    struct run r = {.next_seq = 1};
    double timeout = 600;
    int c, usage = 0;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        char *end;
        if (c == 't')
            usage |= (timeout = strtod(optarg, &end)) <= 0 || *end;
        else if (c == 'd') {
            r.domid = (uint32_t)strtoul(optarg, &end, 10);
            r.xch = ivmon__xen_sys->xc_open();
            usage |= *end || !r.xch;
        } else
            usage = 1;
    }
    if (usage || optind != argc - 1) {
        fprintf(stderr, "usage: " PROGRAM " [--timeout SECONDS] [--domid N] URI\n");
        return 2;
    }
    r.uri = argv[optind];
    uint64_t deadline = mono_ns() + (uint64_t)(timeout * 1e9), wakeups = 0, fragments = 0;
    int e = strncmp(r.uri, "vchan:", 6) == 0 ? read_vchan(&r, deadline)
                                             : read_session(&r, deadline, &wakeups, &fragments);
    uint64_t cpu = cpu_ns() - r.cpu_first;
    if (e < 0 || r.files < 2) {
        fprintf(stderr, PROGRAM ": %s: %s\n", r.uri,
                r.why[0] ? r.why : "timed out before the final heartbeat");
        return 1;
    }
    printf("{\"uri\":\"%s\",\"file_records\":%llu,\"elapsed_ns\":%llu,\"cpu_ns\":%llu,"
           "\"guest_cpu_ns\":%llu,\"wakeups\":%llu,\"fragments\":%llu}\n",
           r.uri, (unsigned long long)r.files, (unsigned long long)(r.t_last - r.t_first),
           (unsigned long long)cpu, (unsigned long long)(r.guest_last - r.guest_first),
           (unsigned long long)wakeups, (unsigned long long)fragments);
    if (r.xch)
        ivmon__xen_sys->xc_close(r.xch);
    return fflush(stdout) == 0 ? 0 : 1;
}
