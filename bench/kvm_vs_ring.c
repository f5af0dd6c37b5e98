/* SPDX-License-Identifier: MIT */
/*
 * ivmon-bench-kvm: the same records from a guest on the real /dev/kvm to a libivmon session,
 * two ways, side by side in one run: the register transport (kvm: fragments, one `out` exit per
 * fragment) and the shared-memory ring (shm: ring mapped into the guest, an `out` doorbell exit
 * only when the consumer asked for one). Both run the example VMM of examples/kvm-vmm with its
 * payload in the bench modes, and both are consumed through the public API with one handler.
 *
 *   ivmon-bench-kvm [-n TYPICAL] [-N LONG] [-r RUNS]
 *
 * Records: HELLO, then file records with a path of 80 bytes (typical, 163 bytes each) or 4096
 * bytes (long, 4179 bytes). Measured from the HELLO's delivery to the last record's, so VM
 * creation is not counted; exits are every exit of the VM over the run (but the vCPU's final
 * "done"), per record. Prints Markdown (results table, then detail) on stdout; exit status 1 if
 * any run lost, damaged or misordered a record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ivmon/ivmon.h>
#include <ivmon/kvm.h>
#include <ivmon/proto.h>

#include "vmm.h"

#define RUNS_MAX 15

enum { T_KVM_SYNC, T_KVM_GETREGS, T_RING, T_MAX };

static const char *const transport_name[T_MAX] = {
    "kvm: fragments, registers synced in kvm_run",
    "kvm: fragments, KVM_GET_REGS per exit",
    "shm: ring + doorbell exit when asked",
};

struct run {
    double records_per_s, exits_per_record, us_per_exit;
    uint64_t records, exits, doorbells, wakeups;
};

struct tally {
    uint32_t path_len;
    uint64_t delivered, last_seq, bad;
    double first, last;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct tally *t = userdata;
    double at = now();
    uint64_t seq = ivmon_event_seq(ev);
    if (seq != t->last_seq + 1 ||
        (ivmon_event_type(ev) == IVMON_EVENT_FILE && strlen(ivmon_event_path(ev)) != t->path_len))
        t->bad++;
    if (seq == 1)
        t->first = at;
    t->last = at;
    t->last_seq = seq;
    t->delivered++;
    return 0;
}

/* The producer's half of the shm: doorbell rendezvous (docs/PROTOCOL.md): connect to PATH.sock;
 * the consumer answers in its next ivmon_process with its generation and an eventfd. */
static int doorbell_connect(const char *ring)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s.sock", ring);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        close(s);
        s = -1;
    }
    return s;
}

static int doorbell_receive(int s)
{
    uint64_t gen;
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &gen, .iov_len = sizeof gen};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(s, &msg, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof gen)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static int pump(ivmon *m, int cap_ms)
{
    struct pollfd p = {.fd = ivmon_get_fd(m), .events = (short)ivmon_get_events(m)};
    int t = ivmon_get_timeout(m);
    poll(&p, 1, t < cap_ms ? t : cap_ms);
    return ivmon_process(m, 0);
}

static int run_once(int transport, uint32_t count, uint32_t path_len, struct run *ret)
{
    char ring[96], uri[256], err[256];
    struct tally t = {.path_len = path_len};
    struct vmm_config c = {.vcpus = 1, .count = count, .path_len = path_len, .doorbell_fd = -1};
    int sock = -1;

    if (transport == T_RING) {
        snprintf(ring, sizeof ring, "/dev/shm/ivmon-bench-kvm-%d", (int)getpid());
        unlink(ring);
        snprintf(uri, sizeof uri, "shm:%s?size=4M", ring);
        c.mode = VMM_MODE_BENCH_RING;
        c.ring_path = ring;
    } else {
        snprintf(uri, sizeof uri, "kvm:bench?vcpus=1&queue=1M");
        c.mode = VMM_MODE_BENCH_KVM;
        c.get_regs = transport == T_KVM_GETREGS;
    }
    ivmon *m;
    if (ivmon_open(&m, uri, 0) < 0) {
        fprintf(stderr, "ivmon-bench-kvm: %s: %s\n", uri, ivmon_open_error());
        return -1;
    }
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &t);
    if (transport == T_RING) {
        sock = doorbell_connect(ring);
        ivmon_process(m, 0); /* accepts the connection and answers it */
        c.doorbell_fd = sock >= 0 ? doorbell_receive(sock) : -1;
        if (c.doorbell_fd < 0)
            fprintf(stderr, "ivmon-bench-kvm: no doorbell from %s.sock\n", ring);
    } else {
        c.kvm = m;
    }

    struct vmm *v = NULL;
    int r = vmm_start(&v, &c, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "ivmon-bench-kvm: %s\n", err);
    } else {
        while (t.delivered < (uint64_t)count + 1 && pump(m, 100) >= 0)
            if (!vmm_running(v) && pump(m, 0) == 0 && t.delivered < (uint64_t)count + 1)
                break; /* the guest is done and nothing more comes */
        struct vmm_stats st;
        r = vmm_wait(v, &st, err, sizeof err);
        if (r < 0)
            fprintf(stderr, "ivmon-bench-kvm: %s\n", err);
        uint64_t exits = st.exits - 1; /* but the final VMM_PORT_DONE */
        uint64_t missed = 0;
        ivmon_get_stat(m, IVMON_STAT_MISSED, &missed);
        ivmon_get_stat(m, IVMON_STAT_WAKEUPS, &ret->wakeups);
        if (t.delivered != (uint64_t)count + 1 || t.bad || missed) {
            fprintf(stderr,
                    "ivmon-bench-kvm: %s: %" PRIu64 " of %u records, %" PRIu64
                    " out of order or wrong, %" PRIu64 " missed\n",
                    transport_name[transport], t.delivered, count + 1, t.bad, missed);
            r = -1;
        }
        double secs = t.last - t.first;
        ret->records = t.delivered;
        ret->exits = exits;
        ret->doorbells = st.doorbells;
        ret->records_per_s = secs > 0 ? (double)count / secs : 0;
        ret->exits_per_record = (double)exits / (double)t.delivered;
        ret->us_per_exit = exits ? secs * 1e6 / (double)exits : 0;
    }
    vmm_free(v);
    ivmon_close(m);
    if (sock >= 0)
        close(sock);
    if (c.doorbell_fd >= 0)
        close(c.doorbell_fd);
    if (transport == T_RING) {
        unlink(ring);
        snprintf(uri, sizeof uri, "%s.sock", ring);
        unlink(uri);
    }
    return r;
}

static int by_rate(const void *a, const void *b)
{
    double x = ((const struct run *)a)->records_per_s, y = ((const struct run *)b)->records_per_s;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint32_t counts[2] = {20000, 2000}, paths[2] = {80, IVMON_PATH_MAX};
    const char *const kind[2] = {"typical (80 B path)", "long (4096 B path)"};
    int runs = 3, o;
    while ((o = getopt(argc, argv, "n:N:r:h")) != -1) {
        if (o == 'n')
            counts[0] = (uint32_t)strtoul(optarg, NULL, 10);
        else if (o == 'N')
            counts[1] = (uint32_t)strtoul(optarg, NULL, 10);
        else if (o == 'r')
            runs = (int)strtol(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: ivmon-bench-kvm [-n TYPICAL] [-N LONG] [-r RUNS]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (runs < 1 || runs > RUNS_MAX || !counts[0] || !counts[1]) {
        fprintf(stderr, "ivmon-bench-kvm: -r 1..%d, counts > 0\n", RUNS_MAX);
        return 2;
    }

    static struct run res[2][T_MAX][RUNS_MAX];
    int failed = 0;
    for (int k = 0; k < 2; k++)
        for (int tr = 0; tr < T_MAX; tr++)
            for (int i = 0; i < runs; i++) {
                fprintf(stderr, "ivmon-bench-kvm: %s, %s, run %d/%d\n", kind[k], transport_name[tr],
                        i + 1, runs);
                if (run_once(tr, counts[k], paths[k], &res[k][tr][i]) < 0)
                    failed = 1;
            }
    if (failed)
        return 1;

    printf("%u typical and %u long records per run after the HELLO, %d runs per case, median "
           "run shown; one vCPU; the guest payload in ring 3.\n\n",
           counts[0], counts[1], runs);
    printf("| records | transport | records/s | exits/record | us per exit | ring / kvm: "
           "records/s |\n|---|---|---:|---:|---:|---:|\n");
    struct run med[2][T_MAX];
    for (int k = 0; k < 2; k++)
        for (int tr = 0; tr < T_MAX; tr++) {
            qsort(res[k][tr], (size_t)runs, sizeof res[k][tr][0], by_rate);
            med[k][tr] = res[k][tr][runs / 2];
        }
    for (int k = 0; k < 2; k++)
        for (int tr = 0; tr < T_MAX; tr++) {
            const struct run *r = &med[k][tr];
            printf("| %s | %s | %.0f | %.3f | ", kind[k], transport_name[tr], r->records_per_s,
                   r->exits_per_record);
            if (tr == T_RING) /* a handful of exits: time per exit says nothing */
                printf("n/a | %.0fx |\n", r->records_per_s / med[k][T_KVM_SYNC].records_per_s);
            else
                printf("%.1f | |\n", r->us_per_exit);
        }
    printf("\n| records | transport | records/s, every run (sorted) | exits | doorbell exits | "
           "consumer "
           "wakeups |\n|---|---|---|---:|---:|---:|\n");
    for (int k = 0; k < 2; k++)
        for (int tr = 0; tr < T_MAX; tr++) {
            printf("| %s | %s | ", kind[k], transport_name[tr]);
            for (int i = 0; i < runs; i++)
                printf("%s%.0f", i ? ", " : "", res[k][tr][i].records_per_s);
            printf(" | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", med[k][tr].exits,
                   med[k][tr].doorbells, med[k][tr].wakeups);
        }
    return 0;
}
