/* SPDX-License-Identifier: MIT */
/*
 * ivmon-bench-vm-host: the host side of the VM bench (bench/vm/run.sh). One process, one poll
 * loop, serving both channels of one guest while the guest's producer takes turns on them:
 *
 *   ivmon-bench-vm-host --doorbell SOCKET --vser SOCKET --clock FILE --out DIR [--samples N]
 *
 *  - ivshmem with doorbell: the library's own session, ivmon_open("ivshmem+doorbell:SOCKET"),
 *    listening before QEMU starts, driven by ivmon_get_fd/ivmon_process as any monitor does;
 *  - virtio-serial: QEMU's chardev socket (server=on) at the --vser SOCKET, connected as soon as
 *    QEMU has made it; its stream is cut into records and validated by the same core path
 *    (vser_reader.h);
 *  - the clock page (clock_page.h) in FILE, which this program creates for QEMU's
 *    memory-backend-file and answers from a second thread (the only one), so that the guest can
 *    compare its clock with ours.
 *
 * A run is one producer instance: a HELLO, file records, a final HEARTBEAT (ivmon-produce).
 * For each run and channel this program notes, at the callbacks: CLOCK_REALTIME at the HELLO, at
 * the first and the last FILE record and at the HEARTBEAT; the CPU time QEMU's threads used from
 * the HELLO to the HEARTBEAT (/proc/PID/task/TID/schedstat, nanoseconds; the vCPU threads, named
 * "CPU n/...", also on their own); the session counters over the run; and, for the first N FILE
 * records (--samples, default 20000), the record's guest time_ns and our CLOCK_REALTIME at its
 * callback. Each run ends with one JSON line in DIR/runs.jsonl and its samples in
 * DIR/CHANNEL-RUN.bin (pairs of little-endian int64: guest ns, host ns). QEMU is the process at
 * the other end of the virtio-serial socket (SO_PEERCRED). It stops on SIGTERM or SIGINT, or when
 * QEMU closes the virtio-serial connection (the VM is gone); exit status 0, or 1 if a session
 * failed or a file could not be written.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock_page.h"
#include "vser_reader.h"

#define PROG             "ivmon-bench-vm-host"
#define CLOCK_FILE_SIZE  65536u     /* QEMU wants a power of two; the page uses 192 bytes */
#define CLOCK_IDLE_NS    2000000u   /* how often the clock thread looks for a session */
#define CLOCK_SESSION_NS 5000000000 /* a session the guest does not end is given up after this */
#define CONNECT_RETRY_MS 20
#define SAMPLES_DEFAULT  20000u
#define N_STATS          (IVMON_STAT_MAX + 1)

struct app;

struct sample {
    int64_t guest_ns;
    int64_t host_ns;
};

/* One channel's session and the run in progress on it. */
struct chan {
    const char *name; /* "ivshmem" or "vser" */
    ivmon *m;
    struct app *app;
    unsigned runs; /* runs finished */
    int in_run;
    uint64_t hello_ns, first_ns, last_ns;
    uint64_t file_records;
    uint64_t cpu0_all, cpu0_vcpu; /* QEMU's CPU at the HELLO; UINT64_MAX: not measured */
    uint64_t stats0[N_STATS];
    size_t nsamples;
    struct sample *samples;
};

struct app {
    const char *out_dir;
    FILE *runs;
    size_t max_samples;
    pid_t qemu;
    int failed; /* a file could not be written */
    struct chan chans[2];
};

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- QEMU's CPU time ------------------------------------------------------------------------ */

/* Reads a small /proc file into buf as a string. Returns 0 or a negative errno. */
static int read_proc(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    return 0;
}

/* Nanoseconds on a CPU so far of every thread of pid, and of its vCPU threads. Returns 0, or a
 * negative errno if the process cannot be read. */
static int qemu_cpu(pid_t pid, uint64_t *ret_all, uint64_t *ret_vcpu)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    uint64_t all = 0, vcpu = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char file[sizeof path + 256 + 16], buf[128];
        if (e->d_name[0] == '.')
            continue;
        /* schedstat: run time in ns, wait time, timeslices; finer than stat's clock ticks. */
        snprintf(file, sizeof file, "%s/%s/schedstat", path, e->d_name);
        if (read_proc(file, buf, sizeof buf) < 0)
            continue; /* the thread ended meanwhile */
        uint64_t ns = strtoull(buf, NULL, 10);
        all += ns;
        snprintf(file, sizeof file, "%s/%s/comm", path, e->d_name);
        if (read_proc(file, buf, sizeof buf) == 0 && strncmp(buf, "CPU ", 4) == 0)
            vcpu += ns;
    }
    closedir(d);
    *ret_all = all;
    *ret_vcpu = vcpu;
    return 0;
}

/* ---- Runs ----------------------------------------------------------------------------------- */

static void run_begin(struct chan *c)
{
    c->in_run = 1;
    c->hello_ns = realtime_ns();
    c->first_ns = c->last_ns = 0;
    c->file_records = 0;
    c->nsamples = 0;
    if (c->app->qemu <= 0 || qemu_cpu(c->app->qemu, &c->cpu0_all, &c->cpu0_vcpu) < 0)
        c->cpu0_all = c->cpu0_vcpu = UINT64_MAX;
    for (unsigned i = 0; i < N_STATS; i++)
        ivmon_get_stat(c->m, i, &c->stats0[i]);
}

static int write_samples(const struct chan *c, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    size_t n = fwrite(c->samples, sizeof *c->samples, c->nsamples, f);
    int bad = n != c->nsamples || ferror(f);
    if (fclose(f) != 0 || bad)
        return -EIO;
    return 0;
}

/* The stat's increase over the run. */
static uint64_t run_stat(const struct chan *c, unsigned stat)
{
    uint64_t v = 0;
    ivmon_get_stat(c->m, stat, &v);
    return v - c->stats0[stat];
}

static void run_end(struct chan *c, uint64_t last_seq)
{
    uint64_t end_ns = realtime_ns(), all = 0, vcpu = 0;
    long long cpu_all = -1, cpu_vcpu = -1;
    if (c->cpu0_all != UINT64_MAX && qemu_cpu(c->app->qemu, &all, &vcpu) == 0) {
        cpu_all = (long long)(all - c->cpu0_all);
        cpu_vcpu = (long long)(vcpu - c->cpu0_vcpu);
    }
    c->in_run = 0;
    unsigned k = ++c->runs;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%u.bin", c->app->out_dir, c->name, k);
    int w = write_samples(c, path);
    if (w < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(-w));
        c->app->failed = 1;
    }
    fprintf(c->app->runs,
            "{\"channel\":\"%s\",\"run\":%u,\"hello_ns\":%" PRIu64 ",\"first_ns\":%" PRIu64
            ",\"last_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64 ",\"file_records\":%" PRIu64
            ",\"last_seq\":%" PRIu64 ",\"qemu_cpu_ns\":%lld,\"qemu_vcpu_ns\":%lld"
            ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"malformed\":%" PRIu64
            ",\"missed\":%" PRIu64 ",\"wakeups\":%" PRIu64 ",\"bytes\":%" PRIu64
            ",\"samples\":\"%s\",\"nsamples\":%zu}\n",
            c->name, k, c->hello_ns, c->first_ns, c->last_ns, end_ns, c->file_records, last_seq,
            cpu_all, cpu_vcpu, run_stat(c, IVMON_STAT_DELIVERED), run_stat(c, IVMON_STAT_LOST),
            run_stat(c, IVMON_STAT_MALFORMED), run_stat(c, IVMON_STAT_MISSED),
            run_stat(c, IVMON_STAT_WAKEUPS), run_stat(c, IVMON_STAT_BYTES), path, c->nsamples);
    if (fflush(c->app->runs) != 0)
        c->app->failed = 1;
}

/* Every record of both channels comes here; the time is taken first. */
static int on_record(ivmon *m, const ivmon_event *ev, void *userdata)
{
    uint64_t now = realtime_ns();
    struct chan *c = userdata;

    switch (ivmon_event_type(ev)) {
    case IVMON_EVENT_HELLO:
        run_begin(c);
        break;
    case IVMON_EVENT_FILE:
        if (!c->in_run)
            break;
        if (!c->first_ns)
            c->first_ns = now;
        c->last_ns = now;
        c->file_records++;
        if (c->nsamples < c->app->max_samples) {
            c->samples[c->nsamples].guest_ns = (int64_t)ivmon_event_time_ns(ev);
            c->samples[c->nsamples].host_ns = (int64_t)now;
            c->nsamples++;
        }
        break;
    case IVMON_EVENT_HEARTBEAT:
        /* ivmon-produce sends one heartbeat, its last record. */
        if (c->in_run)
            run_end(c, ivmon_event_seq(ev));
        break;
    default:
        break;
    }
    return 0;
}

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    if (level <= IVMON_LOG_WARNING)
        fprintf(stderr, PROG ": %s: %s\n", ivmon_get_uri(m), msg);
}

/* ---- The clock page ------------------------------------------------------------------------- */

static _Atomic int clock_stop;

static uint64_t page_load(uint64_t *p)
{
    return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire);
}

static void page_store(uint64_t *p, uint64_t v)
{
    atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_release);
}

/* Answers the guest's sessions: idle naps between them, a spin during one. */
static void *clock_thread(void *arg)
{
    struct vm_clock_page *pg = arg;
    while (!atomic_load(&clock_stop)) {
        uint64_t s = page_load(&pg->session);
        if (s == page_load(&pg->ack)) {
            struct timespec ts = {0, CLOCK_IDLE_NS};
            nanosleep(&ts, NULL);
            continue;
        }
        uint64_t seen = page_load(&pg->ping);
        page_store(&pg->ack, s);
        uint64_t start = realtime_ns();
        while (page_load(&pg->done) != s && realtime_ns() - start < CLOCK_SESSION_NS) {
            uint64_t k = page_load(&pg->ping);
            if (k == seen)
                continue;
            /* host_ns before pong, both released: the guest that sees pong == k reads ours. */
            page_store(&pg->host_ns, realtime_ns());
            page_store(&pg->pong, k);
            seen = k;
        }
    }
    return NULL;
}

static struct vm_clock_page *clock_page_create(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, CLOCK_FILE_SIZE) < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    void *m = mmap(NULL, CLOCK_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        fprintf(stderr, PROG ": mmap %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct vm_clock_page *pg = m;
    page_store(&pg->magic, VM_CLOCK_MAGIC);
    return pg;
}

/* ---- Main ----------------------------------------------------------------------------------- */

struct opts {
    const char *doorbell, *vser, *clock, *out;
    unsigned long samples;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"doorbell", required_argument, NULL, 'd'}, {"vser", required_argument, NULL, 'v'},
        {"clock", required_argument, NULL, 'c'},    {"out", required_argument, NULL, 'o'},
        {"samples", required_argument, NULL, 's'},  {NULL, 0, NULL, 0},
    };
    o->samples = SAMPLES_DEFAULT;
    for (;;) {
        int c = getopt_long(argc, argv, "", lo, NULL);
        if (c == -1)
            break;
        char *end;
        switch (c) {
        case 'd':
            o->doorbell = optarg;
            break;
        case 'v':
            o->vser = optarg;
            break;
        case 'c':
            o->clock = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 's':
            o->samples = strtoul(optarg, &end, 10);
            if (*end || end == optarg)
                return -EINVAL;
            break;
        default:
            return -EINVAL;
        }
    }
    return optind == argc && o->doorbell && o->vser && o->clock && o->out ? 0 : -EINVAL;
}

static int chan_init(struct chan *c, struct app *app, const char *name, ivmon *m)
{
    c->name = name;
    c->app = app;
    c->m = m;
    c->samples = calloc(app->max_samples ? app->max_samples : 1, sizeof *c->samples);
    if (!c->samples)
        return -ENOMEM;
    ivmon_set_log(m, on_log, c);
    return ivmon_set_handler(m, IVMON_EVENT_ANY, on_record, c);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The loop; returns 0 when QEMU is gone or a signal came, or a session's error. Each channel is
 * served only when its fd is readable or (the doorbell session) its timeout is due, as a monitor
 * with many sessions does: the other channel's traffic must not make it spin over an idle ring. */
static int run(struct app *app, ivmon *db, struct vser_reader *vr, const char *vser_path, int sigfd)
{
    uint64_t db_due = 0; /* monotonic ms at which the doorbell session wants to be processed */
    for (;;) {
        struct pollfd pfd[3] = {
            {.fd = sigfd, .events = POLLIN},
            {.fd = ivmon_get_fd(db), .events = (short)ivmon_get_events(db)},
            {.fd = vr->fd, .events = POLLIN},
        };
        uint64_t now = monotonic_ms();
        int timeout = db_due > now ? (int)(db_due - now) : 0;
        if (vr->fd < 0 && timeout > CONNECT_RETRY_MS)
            timeout = CONNECT_RETRY_MS;
        if (poll(pfd, 3, timeout) < 0 && errno != EINTR)
            return -errno;
        if (pfd[0].revents & POLLIN)
            return 0;
        if (pfd[1].revents || monotonic_ms() >= db_due) {
            /* Once per wakeup, as the library's loop contract has it: when it stopped with work
             * left, the timeout it asks for is 0. */
            int r = ivmon_process(db, 0);
            if (r < 0)
                return r;
            db_due = monotonic_ms() + (uint64_t)ivmon_get_timeout(db);
        }
        if (vr->fd < 0) {
            /* QEMU makes the socket when it starts; until then, and until it listens, retry. */
            if (vser_reader_connect(vr, vser_path, 0) == 0)
                app->qemu = vr->peer;
            continue;
        }
        if (!(pfd[2].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        int r;
        while ((r = vser_reader_process(vr)) > 0)
            ;
        if (r == -EPIPE)
            return 0;
        if (r < 0)
            return r;
    }
}

/* Opens both channels and serves them until the end. Returns the exit status. */
static int serve(struct app *app, const struct opts *o, int sigfd)
{
    static struct vser_reader vr; /* static: holds a 64 KiB chunk */
    char uri[4200];
    ivmon *db = NULL;
    int status = 1;

    snprintf(uri, sizeof uri, "ivshmem+doorbell:%s", o->doorbell);
    int r = ivmon_open(&db, uri, 0);
    if (r < 0) {
        fprintf(stderr, PROG ": %s: %s: %s\n", uri, ivmon_strerror(r), ivmon_open_error());
        return 1;
    }
    snprintf(uri, sizeof uri, "virtio-serial:%s", o->vser);
    if (vser_reader_init(&vr, uri) < 0 || chan_init(&app->chans[0], app, "ivshmem", db) < 0 ||
        chan_init(&app->chans[1], app, "vser", vr.m) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
    } else {
        fprintf(stderr, PROG ": serving %s, waiting for QEMU's %s\n", ivmon_get_uri(db), o->vser);
        r = run(app, db, &vr, o->vser, sigfd);
        if (r < 0)
            fprintf(stderr, PROG ": %s (%s; %s)\n", ivmon_strerror(r), ivmon_get_error(db),
                    ivmon_get_error(vr.m));
        else if (!app->failed)
            status = 0;
    }
    for (int i = 0; i < 2; i++)
        free(app->chans[i].samples);
    ivmon_close(db);
    vser_reader_close(&vr);
    return status;
}

int main(int argc, char **argv)
{
    struct app app = {0};
    struct opts o = {0};
    char path[4200];
    pthread_t th;
    int status = 1;

    if (parse_args(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: " PROG " --doorbell SOCKET --vser SOCKET --clock FILE --out DIR "
                        "[--samples N]\n");
        return 2;
    }
    app.out_dir = o.out;
    app.max_samples = o.samples;
    int sigfd = vser_stop_signals();
    if (sigfd < 0) {
        fprintf(stderr, PROG ": signals: %s\n", strerror(-sigfd));
        return 1;
    }
    struct vm_clock_page *pg = clock_page_create(o.clock);
    if (!pg || pthread_create(&th, NULL, clock_thread, pg) != 0) {
        close(sigfd);
        return 1;
    }
    snprintf(path, sizeof path, "%s/runs.jsonl", o.out);
    app.runs = fopen(path, "we");
    if (!app.runs) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
    } else {
        status = serve(&app, &o, sigfd);
        if (fclose(app.runs) != 0)
            status = 1;
    }
    atomic_store(&clock_stop, 1);
    pthread_join(th, NULL);
    close(sigfd);
    return status;
}
