/* SPDX-License-Identifier: MIT */
/*
 * ivmon-bench-ring: records/s through the libivmon ring against a pipe and a UNIX SOCK_SEQPACKET
 * socketpair, producer and consumer in two processes, every record checked for sequence.
 *
 * Progress goes to stderr; the report, in Markdown, goes to stdout (bench/run.sh puts it in
 * bench/results.md). Exit status: 0 when every run delivered every record in order, 1 when a run
 * failed (lost, reordered or malformed records, an error, a hang), 2 for a usage error.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SIZES 8u
#define MAX_REPS  99u
#define N_XPORTS  4u

/* The socket comes last so the ratio column has its denominator; order within a repetition is
 * the same each time, and repetitions interleave transports so slow drift (thermal, noisy
 * neighbours) is spread over all of them instead of landing on one. */
static const struct bench_xport *const xports[N_XPORTS] = {
    &bench_xport_ring,
    &bench_xport_ring_batch,
    &bench_xport_pipe,
    &bench_xport_seqpacket,
};
#define SOCKET_IDX    3u
#define N_RING_XPORTS 2u /* the first entries are the ring's modes */

struct result {
    double rate; /* records/s */
    double mbps; /* 10^6 bytes/s of record bytes */
    struct bench_prod_stats p;
    struct bench_cons_stats c;
    char note[128];
};

struct opts {
    uint64_t count;
    unsigned reps;
    size_t buf_bytes;
    uint32_t sizes[MAX_SIZES];
    unsigned n_sizes;
    int pin;
    unsigned timeout_s;
};

char bench_path[BENCH_REC_LIMIT];

void bench_path_init(void)
{
    /* A plausible deep path, repeated: content does not matter to any transport, only length. */
    static const char part[] = "/home/analyst/projects/sandbox/run-0042/samples/payload.bin";
    for (size_t i = 0; i < sizeof bench_path; i++)
        bench_path[i] = part[i % (sizeof part - 1)];
}

int bench_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, BENCH_ERR_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* The producer of the run in progress, for the watchdog. */
static volatile pid_t g_child;

volatile sig_atomic_t bench_producer_gone;

/* Installed without SA_RESTART, so a consumer blocked on the doorbell gets EINTR and can see
 * that the producer is gone instead of waiting for a doorbell that will never ring. */
static void on_child(int sig)
{
    bench_producer_gone = 1;
}

/* A run that does not finish in time is a hang (a lost doorbell would look exactly like this),
 * which must fail the bench loudly rather than block it forever. */
static void on_alarm(int sig)
{
    static const char msg[] = "ivmon-bench-ring: FAIL: run timed out (lost wakeup or hang)\n";
    if (g_child > 0)
        kill(g_child, SIGKILL);
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(1);
}

static uint64_t tv_ns(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000000000u + (uint64_t)tv->tv_usec * 1000u;
}

/* The deltas of CPU time and context switches between two getrusage() calls. */
static void rusage_delta(const struct rusage *a, const struct rusage *b, uint64_t *cpu_ns,
                         uint64_t *nvcsw, uint64_t *nivcsw)
{
    *cpu_ns = tv_ns(&b->ru_utime) + tv_ns(&b->ru_stime) - tv_ns(&a->ru_utime) - tv_ns(&a->ru_stime);
    *nvcsw = (uint64_t)(b->ru_nvcsw - a->ru_nvcsw);
    *nivcsw = (uint64_t)(b->ru_nivcsw - a->ru_nivcsw);
}

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) {
        fprintf(stderr, "ivmon-bench-ring: sched_setaffinity(%d): %s\n", cpu, strerror(errno));
        _exit(1);
    }
}

/* The producer process: opens its end, waits for the start signal, produces, reports through
 * the shared page, exits. Never returns. */
static void producer_main(const struct bench_xport *x, struct bench_chan *c,
                          const struct bench_cfg *cfg, int go_fd, struct bench_prod_stats *st,
                          int pin)
{
    /* A dead consumer must surface as EPIPE in the report, not as a silent death by signal. */
    signal(SIGPIPE, SIG_IGN);
    if (pin)
        pin_to(0);
    if (x->producer_open(c, st->err) < 0)
        _exit(1);
    char b;
    if (read(go_fd, &b, 1) != 1)
        _exit(1); /* the parent gave up before starting */
    close(go_fd);
    alarm(cfg->timeout_s);

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    st->t0_ns = bench_now_ns(CLOCK_MONOTONIC);
    int rc = x->produce(c, cfg, st, st->err);
    getrusage(RUSAGE_SELF, &r1);
    rusage_delta(&r0, &r1, &st->cpu_ns, &st->nvcsw, &st->nivcsw);
    st->ok = rc == 0;
    x->close(c);
    _exit(rc == 0 ? 0 : 1);
}

/* One timed run of one transport. Returns 0 with *res filled, or -1 with err set. */
static int run_once(const struct bench_xport *x, const struct bench_cfg *cfg,
                    struct bench_prod_stats *shared, int pin, struct result *res, char *err)
{
    struct bench_chan c = {.fd = {-1, -1}, .memfd = -1, .efd = -1};
    int go[2] = {-1, -1}, rc = -1, status = 0;
    pid_t pid = -1;

    memset(shared, 0, sizeof *shared);
    memset(res, 0, sizeof *res);
    bench_producer_gone = 0;
    if (x->setup(&c, cfg, err) < 0)
        goto out;
    if (pipe2(go, O_CLOEXEC) < 0) {
        bench_fail(err, "pipe2: %s", strerror(errno));
        goto out;
    }
    fflush(NULL); /* or the child's exit could flush our buffered stdout a second time */
    pid = fork();
    if (pid < 0) {
        bench_fail(err, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        close(go[1]);
        producer_main(x, &c, cfg, go[0], shared, pin);
    }
    g_child = pid;
    close(go[0]);
    go[0] = -1;
    if (x->consumer_open(&c, err) < 0)
        goto out;

    struct rusage r0, r1;
    struct bench_cons_stats cs = {0};
    getrusage(RUSAGE_SELF, &r0);
    alarm(cfg->timeout_s);
    /* The clock starts in the producer when it reads this byte; both ends are open by now. */
    if (write(go[1], "g", 1) != 1) {
        bench_fail(err, "start pipe: %s", strerror(errno));
        goto out;
    }
    int crc = x->consume(&c, cfg, &cs, err);
    cs.t1_ns = bench_now_ns(CLOCK_MONOTONIC);
    alarm(0);
    getrusage(RUSAGE_SELF, &r1);
    rusage_delta(&r0, &r1, &cs.cpu_ns, &cs.nvcsw, &cs.nivcsw);
    if (crc < 0)
        goto out;

    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0) {
        bench_fail(err, "waitpid: %s", strerror(errno));
        goto out;
    }
    pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !shared->ok) {
        /* Its message, if any, is in shared->err; the caller prints it. */
        bench_fail(err, "the producer failed (%s %d)",
                   WIFSIGNALED(status) ? "signal" : "exit status",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        goto out;
    }
    double secs = (double)(cs.t1_ns - shared->t0_ns) / 1e9;
    res->rate = (double)cfg->count / secs;
    res->mbps = res->rate * cfg->rec_len / 1e6;
    res->p = *shared;
    res->c = cs;
    memcpy(res->note, c.note, sizeof res->note);
    rc = 0;
out:
    if (pid > 0) {
        /* The consumer failed: the producer may be blocked on a full buffer forever. Its own
         * error, if it had one, is in shared->err for the caller to print. */
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    g_child = 0;
    alarm(0);
    for (int i = 0; i < 2; i++)
        if (go[i] >= 0)
            close(go[i]);
    x->close(&c);
    return rc;
}

static int cmp_rate(const void *a, const void *b)
{
    double x = ((const struct result *)a)->rate, y = ((const struct result *)b)->rate;
    return (x > y) - (x < y);
}

/* Returns the median run of n by records/s (for even n the upper middle one); sorts runs. */
static const struct result *median(struct result *runs, unsigned n)
{
    qsort(runs, n, sizeof *runs, cmp_rate);
    return &runs[n / 2];
}

/* 12345678.9 -> "12,345,679": wide numbers are unreadable in a table without separators. */
static const char *grouped(double v, char *buf, size_t len)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.0f", v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static double per_rec(uint64_t v, uint64_t count)
{
    return (double)v / (double)count;
}

static void report(const struct opts *o, struct result runs[][N_XPORTS][MAX_REPS])
{
    const struct result *med[MAX_SIZES][N_XPORTS];
    char b1[32];
    /* Median per case; the copies keep the per-run figures, in run order, for the detail table. */
    static struct result sorted[MAX_SIZES][N_XPORTS][MAX_REPS];
    for (unsigned s = 0; s < o->n_sizes; s++)
        for (unsigned t = 0; t < N_XPORTS; t++) {
            memcpy(sorted[s][t], runs[s][t], sizeof sorted[s][t]);
            med[s][t] = median(sorted[s][t], o->reps);
        }

    printf("%" PRIu64 " records per run, %u runs per case, median run shown; "
           "ring data area %zu B; producer and consumer %s.\n\n",
           o->count, o->reps, o->buf_bytes,
           o->pin ? "pinned to CPU 0 and CPU 1" : "not pinned (the scheduler places them)");
    printf("| transport | record size | records/s | MB/s | ratio vs socket |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (unsigned s = 0; s < o->n_sizes; s++)
        for (unsigned t = 0; t < N_XPORTS; t++) {
            const struct result *r = med[s][t];
            printf("| %s | %" PRIu32 " B | %s | %.1f | %.2fx |\n", xports[t]->label, o->sizes[s],
                   grouped(r->rate, b1, sizeof b1), r->mbps, r->rate / med[s][SOCKET_IDX]->rate);
        }

    printf(
        "\n### Target: the ring moves at least 10x the records/s of the SOCK_SEQPACKET socket\n\n");
    for (unsigned t = 0; t < N_RING_XPORTS; t++) {
        int all = 1;
        for (unsigned s = 0; s < o->n_sizes; s++) {
            double ratio = med[s][t]->rate / med[s][SOCKET_IDX]->rate;
            all &= ratio >= 10.0;
            printf("- %s, %" PRIu32 " B records: ring / socket = %.2fx: target **%s** "
                   "(%.4f doorbells per record).\n",
                   xports[t]->label, o->sizes[s], ratio, ratio >= 10.0 ? "met" : "NOT met",
                   per_rec(med[s][t]->p.doorbells, o->count));
        }
        printf("- %s, all sizes: target **%s**.\n", xports[t]->label, all ? "met" : "NOT met");
    }

    printf("\n### Detail (median run unless stated)\n\n");
    printf("MB = 10^6 bytes of record bytes. CPU and context switches come from getrusage() of "
           "each process over its timed part; a voluntary switch means the process blocked. "
           "Consumer sleeps: times the ring consumer found the ring empty, armed the doorbell "
           "and read the eventfd (it only blocks if the doorbell has not rung yet).\n\n");
    printf("| transport | size | records/s, every run | producer CPU ns/rec | consumer CPU ns/rec "
           "| producer blocks/rec | consumer blocks/rec | doorbells/rec | consumer sleeps/rec "
           "| ring-full records "
           "| buffer |\n");
    printf("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (unsigned s = 0; s < o->n_sizes; s++)
        for (unsigned t = 0; t < N_XPORTS; t++) {
            const struct result *r = med[s][t];
            printf("| %s | %" PRIu32 " B | ", xports[t]->label, o->sizes[s]);
            for (unsigned k = 0; k < o->reps; k++)
                printf("%s%s", k ? ", " : "", grouped(runs[s][t][k].rate, b1, sizeof b1));
            printf(" | %.0f | %.0f | %.4f | %.4f | ", per_rec(r->p.cpu_ns, o->count),
                   per_rec(r->c.cpu_ns, o->count), per_rec(r->p.nvcsw, o->count),
                   per_rec(r->c.nvcsw, o->count));
            if (t < N_RING_XPORTS)
                printf("%.5f | %.5f | %" PRIu64 " | %s |\n", per_rec(r->p.doorbells, o->count),
                       per_rec(r->c.wakeups, o->count), r->p.full_waits, r->note);
            else
                printf("n/a | n/a | n/a | %s |\n", r->note);
        }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ivmon-bench-ring [-n records] [-r runs] [-b ring-bytes] [-s size,size...] "
            "[-c] [-t seconds]\n"
            "  -n  records per run (default 2000000)\n"
            "  -r  runs per case; the median is reported (default 3)\n"
            "  -b  ring data area in bytes, a power of two; pipe and socket buffers are sized\n"
            "      to match (default 262144)\n"
            "  -s  record sizes in bytes, %u..%u, multiples of %u (default 64,256)\n"
            "  -c  pin the producer to CPU 0 and the consumer to CPU 1\n"
            "  -t  seconds after which a run counts as hung and fails (default 300)\n",
            BENCH_REC_MIN, BENCH_REC_LIMIT, IVMON_REC_ALIGN);
}

static int parse_u64(const char *s, uint64_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *ret = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.count = 2000000, .reps = 3, .buf_bytes = 262144, .timeout_s = 300};
    const char *sizes = "64,256";
    uint64_t v;
    int ch;
    while ((ch = getopt(argc, argv, "n:r:b:s:ct:h")) != -1) {
        switch (ch) {
        case 'n':
            if (parse_u64(optarg, &o->count) < 0 || o->count == 0)
                return -1;
            break;
        case 'r':
            if (parse_u64(optarg, &v) < 0 || v == 0 || v > MAX_REPS)
                return -1;
            o->reps = (unsigned)v;
            break;
        case 'b':
            if (parse_u64(optarg, &v) < 0 || v < IVMON_RING_MIN_DATA || v > IVMON_RING_MAX_DATA ||
                (v & (v - 1)))
                return -1;
            o->buf_bytes = (size_t)v;
            break;
        case 's':
            sizes = optarg;
            break;
        case 'c':
            o->pin = 1;
            break;
        case 't':
            if (parse_u64(optarg, &v) < 0 || v == 0 || v > 86400)
                return -1;
            o->timeout_s = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc)
        return -1;
    char copy[128];
    snprintf(copy, sizeof copy, "%s", sizes);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->n_sizes == MAX_SIZES || parse_u64(tok, &v) < 0 || v < BENCH_REC_MIN ||
            v > BENCH_REC_LIMIT || v % IVMON_REC_ALIGN)
            return -1;
        o->sizes[o->n_sizes++] = (uint32_t)v;
    }
    if (o->n_sizes == 0)
        return -1;
    if (o->pin && sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        fprintf(stderr, "ivmon-bench-ring: -c needs two CPUs\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    bench_path_init();

    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct sigaction sc = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGCHLD, &sc, NULL);
    if (o.pin)
        pin_to(1);

    /* The producer writes its figures here; MAP_SHARED so they survive into the parent. */
    struct bench_prod_stats *shared =
        mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("ivmon-bench-ring: mmap");
        return 1;
    }
    static struct result runs[MAX_SIZES][N_XPORTS][MAX_REPS];
    for (unsigned k = 0; k < o.reps; k++)
        for (unsigned s = 0; s < o.n_sizes; s++)
            for (unsigned t = 0; t < N_XPORTS; t++) {
                struct bench_cfg cfg = {.count = o.count,
                                        .rec_len = o.sizes[s],
                                        .buf_bytes = o.buf_bytes,
                                        .timeout_s = o.timeout_s};
                char err[BENCH_ERR_MAX] = "";
                struct result *r = &runs[s][t][k];
                if (run_once(xports[t], &cfg, shared, o.pin, r, err) < 0) {
                    fprintf(stderr,
                            "ivmon-bench-ring: FAIL: %s, %" PRIu32 " B records, run %u: %s\n",
                            xports[t]->name, o.sizes[s], k + 1, err);
                    if (shared->err[0])
                        fprintf(stderr, "ivmon-bench-ring: FAIL: producer: %s\n", shared->err);
                    return 1;
                }
                fprintf(stderr,
                        "%-9s %4" PRIu32 " B run %u/%u: %12.0f records/s %8.1f MB/s, all %" PRIu64
                        " in order",
                        xports[t]->name, o.sizes[s], k + 1, o.reps, r->rate, r->mbps, o.count);
                if (t == 0)
                    fprintf(stderr, ", %.5f doorbells/record", per_rec(r->p.doorbells, o.count));
                fputc('\n', stderr);
            }
    report(&o, runs);
    return 0;
}
