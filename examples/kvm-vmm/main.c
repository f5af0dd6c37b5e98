/* SPDX-License-Identifier: MIT */
/*
 * ivmon-kvm-vmm: runs the example VMM (vmm.h) on /dev/kvm with its guest payload and prints the
 * file events the guest reports through the kvm: transport, one line each, as ivmon-watch does.
 * The vCPUs run in their own threads; this thread is the monitor: poll, ivmon_process, print.
 *
 *   ivmon-kvm-vmm [--vcpus N] [--mode scripted|hostile] [--options K=V&...] [--get-regs]
 *                 [--quiet] [--stats]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivmon/ivmon.h>
#include <ivmon/kvm.h>

#include "vmm.h"

#define PROGRAM "ivmon-kvm-vmm"

static int quiet;

/* Bytes as they are when printable ASCII, else \xNN (and \\ for the backslash). */
static void put_escaped(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            putchar(*p);
        else if (*p == '\\')
            fputs("\\\\", stdout);
        else
            printf("\\x%02x", *p);
    }
}

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    if (quiet)
        return 0;
    printf("%s seq=%" PRIu64 " ", ivmon_event_source(ev), ivmon_event_seq(ev));
    switch (ivmon_event_type(ev)) {
    case IVMON_EVENT_FILE:
        printf("%s ", ivmon_op_name(ivmon_event_op(ev)));
        put_escaped(ivmon_event_path(ev));
        if (*ivmon_event_new_path(ev)) {
            fputs(" -> ", stdout);
            put_escaped(ivmon_event_new_path(ev));
        }
        printf(" pid=%u tid=%u uid=%u comm=", ivmon_event_pid(ev), ivmon_event_tid(ev),
               ivmon_event_uid(ev));
        put_escaped(ivmon_event_comm(ev));
        fputs(" exe=", stdout);
        put_escaped(ivmon_event_exe(ev));
        printf(" flags=0x%x\n", ivmon_event_file_flags(ev));
        break;
    case IVMON_EVENT_HELLO:
        fputs("hello host=", stdout);
        put_escaped(ivmon_event_hostname(ev));
        fputs(" agent=", stdout);
        put_escaped(ivmon_event_agent(ev));
        putchar('\n');
        break;
    case IVMON_EVENT_LOST:
        printf("lost reason=%u count=%" PRIu64 "\n", ivmon_event_lost_reason(ev),
               ivmon_event_lost_count(ev));
        break;
    default:
        printf("heartbeat produced=%" PRIu64 "\n", ivmon_event_produced(ev));
    }
    return 0;
}

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    fprintf(stderr, PROGRAM ": %s\n", msg);
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: " PROGRAM " [--vcpus N] [--mode scripted|hostile] [--options K=V&...]\n"
               "       [--get-regs] [--quiet] [--stats]\n"
               "  --vcpus N      vCPUs, one thread each (default 2)\n"
               "  --mode M       the guest payload: scripted (default) or hostile\n"
               "  --options O    more kvm: URI options, e.g. queue=1M&expire_ms=100\n"
               "  --get-regs     read registers with KVM_GET_REGS, not from kvm_run\n"
               "  --quiet        do not print the events\n"
               "  --stats        print the session's counters at the end\n");
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"vcpus", required_argument, NULL, 'n'},   {"mode", required_argument, NULL, 'm'},
        {"options", required_argument, NULL, 'o'}, {"get-regs", no_argument, NULL, 'g'},
        {"quiet", no_argument, NULL, 'q'},         {"stats", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct vmm_config c = {.vcpus = 2, .mode = VMM_MODE_SCRIPTED, .doorbell_fd = -1};
    const char *options = NULL;
    int stats = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n':
            c.vcpus = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            if (!strcmp(optarg, "scripted"))
                c.mode = VMM_MODE_SCRIPTED;
            else if (!strcmp(optarg, "hostile"))
                c.mode = VMM_MODE_HOSTILE;
            else
                return usage(stderr, 2);
            break;
        case 'o':
            options = optarg;
            break;
        case 'g':
            c.get_regs = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 's':
            stats = 1;
            break;
        case 'h':
            return usage(stdout, 0);
        default:
            return usage(stderr, 2);
        }
    }
    if (optind < argc)
        return usage(stderr, 2);

    char uri[512], err[256];
    snprintf(uri, sizeof uri, "kvm:example?vcpus=%u%s%s", c.vcpus, options ? "&" : "",
             options ? options : "");
    int r = ivmon_open(&c.kvm, uri, 0);
    if (r < 0) {
        fprintf(stderr, PROGRAM ": %s: %s\n", uri, ivmon_open_error());
        return 1;
    }
    ivmon_set_handler(c.kvm, IVMON_EVENT_ANY, on_event, NULL);
    ivmon_set_log(c.kvm, on_log, NULL);
    struct vmm *v = NULL;
    if ((r = vmm_start(&v, &c, err, sizeof err)) < 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        ivmon_close(c.kvm);
        return 1;
    }
    /* The monitor's loop; once the vCPUs are done, one more pass takes what they left. */
    for (int last = 0; !last;) {
        last = vmm_running(v) == 0;
        struct pollfd p = {.fd = ivmon_get_fd(c.kvm), .events = (short)ivmon_get_events(c.kvm)};
        int t = ivmon_get_timeout(c.kvm);
        poll(&p, 1, last ? 0 : t < 20 ? t : 20); /* a short nap at most, to notice the end */
        do
            r = ivmon_process(c.kvm, 0);
        while (r > 0 || (r == 0 && ivmon_get_timeout(c.kvm) == 0));
        if (r < 0) {
            fprintf(stderr, PROGRAM ": %s\n", ivmon_get_error(c.kvm));
            break;
        }
    }
    struct vmm_stats st;
    int w = vmm_wait(v, &st, err, sizeof err);
    if (w < 0)
        fprintf(stderr, PROGRAM ": %s\n", err);
    if (stats) {
        fprintf(stderr, PROGRAM ": exits %" PRIu64 " (libivmon's %" PRIu64 "), registers %s\n",
                st.exits, st.kvm_exits, st.sync_regs ? "synced in kvm_run" : "by KVM_GET_REGS");
        for (unsigned i = 0; i <= IVMON_STAT_MAX; i++) {
            uint64_t val = 0;
            ivmon_get_stat(c.kvm, i, &val);
            fprintf(stderr, "%s%s=%" PRIu64, i ? " " : PROGRAM ": ", ivmon_stat_name(i), val);
        }
        fputc('\n', stderr);
    }
    vmm_free(v);
    ivmon_close(c.kvm);
    return r < 0 || w < 0 ? 1 : 0;
}
