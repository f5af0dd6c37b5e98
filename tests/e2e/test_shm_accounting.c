/* SPDX-License-Identifier: MIT */
/*
 * Two processes over a real shm: ring file: the real producer (ivmon-produce, the agent's
 * transport code) and this process consuming through libivmon's public API. Proves the loss
 * accounting with exact sequence numbers (DESIGN.md invariant 3):
 *   overload   a small ring and a slow consumer: drops happen, and delivered + lost == produced;
 *   lossless   the same overload on a lossless ring: nothing lost, everything delivered;
 *   restart    the consumer closes mid-stream and a new one attaches: the two sessions together
 *              account for every record, and the gap while nobody consumed is reported as lost;
 *   producer   two producer instances one after the other: a restart is seen, and each
 *              instance's records are all delivered.
 *
 *   test_shm_accounting PATH_TO_IVMON_PRODUCE
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivmon/ivmon.h>

#include "check.h"

static const char *producer_path;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct producer {
    pid_t pid;
    int out; /* its stdout */
    char json[512];
    size_t json_len;
    int done;
    uint64_t produced, dropped;
};

static void producer_start(struct producer *p, const char *path, const char *const *args)
{
    char uri[256];
    snprintf(uri, sizeof uri, "shm:%s", path);
    int fds[2];
    memset(p, 0, sizeof *p);
    if (pipe(fds) < 0) {
        perror("pipe");
        exit(1);
    }
    const char *argv[16];
    int n = 0;
    argv[n++] = producer_path;
    for (; args && *args && n < 14; args++)
        argv[n++] = *args;
    argv[n++] = uri;
    argv[n] = NULL;
    p->pid = fork();
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(producer_path, (char *const *)argv);
        perror("execv ivmon-produce");
        _exit(127);
    }
    close(fds[1]);
    p->out = fds[0];
}

/* Collects the producer's summary once it has exited. Returns 1 when done. */
static int producer_poll(struct producer *p)
{
    if (p->done)
        return 1;
    int status;
    if (waitpid(p->pid, &status, WNOHANG) != p->pid)
        return 0;
    ssize_t n;
    while ((n = read(p->out, p->json + p->json_len, sizeof p->json - 1 - p->json_len)) > 0)
        p->json_len += (size_t)n;
    close(p->out);
    p->json[p->json_len] = '\0';
    const char *s = strstr(p->json, "\"produced\":");
    const char *d = strstr(p->json, "\"dropped\":");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !s || !d) {
        fprintf(stderr, "ivmon-produce failed (status %d): %s\n", status, p->json);
        exit(1);
    }
    p->produced = strtoull(s + 11, NULL, 10);
    p->dropped = strtoull(d + 10, NULL, 10);
    p->done = 1;
    return 1;
}

struct tally {
    uint64_t lost_events, lost_sum, file_events;
};

static int on_any(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct tally *t = userdata;
    if (ivmon_event_type(ev) == IVMON_EVENT_LOST) {
        t->lost_events++;
        t->lost_sum += ivmon_event_lost_count(ev);
    } else if (ivmon_event_type(ev) == IVMON_EVENT_FILE) {
        t->file_events++;
    }
    return 0;
}

static ivmon *open_session(const char *uri, struct tally *t)
{
    ivmon *m;
    int r = ivmon_open(&m, uri, 0);
    if (r < 0) {
        fprintf(stderr, "ivmon_open %s: %s: %s\n", uri, ivmon_strerror(r), ivmon_open_error());
        exit(1);
    }
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_any, t);
    return m;
}

/* One round of the caller's loop; slow_us > 0 makes this consumer deliberately slow. */
static void pump(ivmon *m, int slow_us)
{
    struct pollfd p = {.fd = ivmon_get_fd(m), .events = (short)ivmon_get_events(m)};
    int timeout = ivmon_get_timeout(m);
    poll(&p, 1, timeout > 50 ? 50 : timeout);
    int r = ivmon_process(m, 0);
    if (r < 0) {
        fprintf(stderr, "ivmon_process: %s: %s\n", ivmon_strerror(r), ivmon_get_error(m));
        exit(1);
    }
    if (slow_us)
        usleep((useconds_t)slow_us);
}

/* Consumes until the producer has exited and its last record has arrived. */
static void drain_until_done(ivmon *m, struct producer *p, int slow_us)
{
    double deadline = now() + 120;
    while (now() < deadline) {
        pump(m, slow_us);
        if (producer_poll(p) && stat_of(m, IVMON_STAT_LAST_SEQ) == p->produced)
            return;
    }
    fprintf(stderr, "timed out: last_seq %" PRIu64 ", produced %" PRIu64 "\n",
            stat_of(m, IVMON_STAT_LAST_SEQ), p->produced);
    exit(1);
}

static void ring_name(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "/dev/shm/ivmon-test-acct-%s-%d", what, (int)getpid());
    unlink(buf);
}

static void print_stats(const char *name, ivmon *m, const struct producer *p)
{
    printf("%-9s produced=%" PRIu64 " producer_dropped=%" PRIu64, name, p->produced, p->dropped);
    for (unsigned s = 0; s <= IVMON_STAT_MAX; s++)
        printf(" %s=%" PRIu64, ivmon_stat_name(s), stat_of(m, s));
    printf("\n");
}

static void check_identity(ivmon *m, uint64_t produced)
{
    uint64_t delivered = stat_of(m, IVMON_STAT_DELIVERED), lost = stat_of(m, IVMON_STAT_LOST);
    CHECK(stat_of(m, IVMON_STAT_MALFORMED) == 0, "malformed %" PRIu64,
          stat_of(m, IVMON_STAT_MALFORMED));
    CHECK(stat_of(m, IVMON_STAT_MISSED) == 0, "missed %" PRIu64, stat_of(m, IVMON_STAT_MISSED));
    CHECK(delivered + lost == produced,
          "delivered %" PRIu64 " + lost %" PRIu64 " != produced %" PRIu64, delivered, lost,
          produced);
    CHECK(stat_of(m, IVMON_STAT_SEQ_SPAN) == produced, "seq_span %" PRIu64,
          stat_of(m, IVMON_STAT_SEQ_SPAN));
}

static void test_overload(void)
{
    char path[128], uri[192];
    struct tally t = {0};
    struct producer p;
    ring_name(path, sizeof path, "overload");
    snprintf(uri, sizeof uri, "shm:%s?size=64K&budget=64", path);
    ivmon *m = open_session(uri, &t);
    const char *args[] = {"--count", "200000", "--size", "64", NULL};
    producer_start(&p, path, args);
    drain_until_done(m, &p, 300);
    print_stats("overload", m, &p);
    check_identity(m, p.produced);
    CHECK(stat_of(m, IVMON_STAT_FIRST_SEQ) == 1, "first_seq %" PRIu64,
          stat_of(m, IVMON_STAT_FIRST_SEQ));
    CHECK(stat_of(m, IVMON_STAT_LOST) > 0, "the slow consumer must have caused drops");
    CHECK(stat_of(m, IVMON_STAT_LOST) == p.dropped,
          "lost %" PRIu64 " != producer's dropped %" PRIu64, stat_of(m, IVMON_STAT_LOST),
          p.dropped);
    CHECK(t.lost_sum == stat_of(m, IVMON_STAT_LOST), "loss reports add up");
    CHECK(t.file_events + p.dropped == 200000, "file events %" PRIu64, t.file_events);
    ivmon_close(m);
    unlink(path);
}

static void test_lossless(void)
{
    char path[128], uri[192];
    struct tally t = {0};
    struct producer p;
    ring_name(path, sizeof path, "lossless");
    snprintf(uri, sizeof uri, "shm:%s?size=64K&budget=64&lossless=1", path);
    ivmon *m = open_session(uri, &t);
    const char *args[] = {"--count", "50000", "--size", "256", "--lossless", NULL};
    producer_start(&p, path, args);
    drain_until_done(m, &p, 300);
    print_stats("lossless", m, &p);
    check_identity(m, p.produced);
    CHECK(stat_of(m, IVMON_STAT_LOST) == 0 && p.dropped == 0, "lossless ring lost records");
    CHECK(t.file_events == 50000, "file events %" PRIu64, t.file_events);
    ivmon_close(m);
    unlink(path);
}

static void test_consumer_restart(void)
{
    char path[128], uri[192];
    struct tally t1 = {0}, t2 = {0};
    struct producer p;
    ring_name(path, sizeof path, "restart");
    snprintf(uri, sizeof uri, "shm:%s?size=64K", path);
    ivmon *m1 = open_session(uri, &t1);
    const char *args[] = {"--count", "60000", "--rate", "100000", NULL};
    producer_start(&p, path, args);
    double until = now() + 0.2;
    while (now() < until)
        pump(m1, 0);
    uint64_t d1 = stat_of(m1, IVMON_STAT_DELIVERED), l1 = stat_of(m1, IVMON_STAT_LOST);
    ivmon_close(m1);
    usleep(200000); /* the producer keeps writing; the 64 KiB ring overflows meanwhile */
    ivmon *m2 = open_session(uri, &t2);
    drain_until_done(m2, &p, 0);
    print_stats("restart", m2, &p);
    uint64_t d2 = stat_of(m2, IVMON_STAT_DELIVERED), l2 = stat_of(m2, IVMON_STAT_LOST);
    CHECK(d1 > 0, "the first consumer saw records");
    CHECK(stat_of(m2, IVMON_STAT_MISSED) == 0 && stat_of(m2, IVMON_STAT_MALFORMED) == 0,
          "second consumer: missed or malformed");
    CHECK(l2 > 0, "the gap while no consumer ran must be reported as lost");
    CHECK(d1 + l1 + d2 + l2 == p.produced,
          "d1 %" PRIu64 " + l1 %" PRIu64 " + d2 %" PRIu64 " + l2 %" PRIu64 " != produced %" PRIu64,
          d1, l1, d2, l2, p.produced);
    ivmon_close(m2);
    unlink(path);
}

static void test_producer_restart(void)
{
    char path[128], uri[192];
    struct tally t = {0};
    struct producer p1, p2;
    ring_name(path, sizeof path, "prodrestart");
    snprintf(uri, sizeof uri, "shm:%s?lossless=1", path);
    ivmon *m = open_session(uri, &t);
    const char *args[] = {"--count", "20000", "--lossless", NULL};
    producer_start(&p1, path, args);
    drain_until_done(m, &p1, 0);
    uint64_t d1 = stat_of(m, IVMON_STAT_DELIVERED);
    CHECK(d1 == p1.produced, "first instance: delivered %" PRIu64 " produced %" PRIu64, d1,
          p1.produced);
    producer_start(&p2, path, args);
    drain_until_done(m, &p2, 0);
    print_stats("producer", m, &p2);
    CHECK(stat_of(m, IVMON_STAT_RESTARTS) == 1, "restarts %" PRIu64,
          stat_of(m, IVMON_STAT_RESTARTS));
    CHECK(stat_of(m, IVMON_STAT_FIRST_SEQ) == 1, "second instance counts from 1");
    CHECK(stat_of(m, IVMON_STAT_DELIVERED) == p1.produced + p2.produced,
          "delivered %" PRIu64 " != %" PRIu64, stat_of(m, IVMON_STAT_DELIVERED),
          p1.produced + p2.produced);
    CHECK(t.file_events == 40000, "file events %" PRIu64, t.file_events);
    CHECK(stat_of(m, IVMON_STAT_SEQ_SPAN) == p1.produced + p2.produced,
          "seq_span %" PRIu64 " covers both instances", stat_of(m, IVMON_STAT_SEQ_SPAN));
    ivmon_close(m);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_IVMON_PRODUCE\n", argv[0]);
        return 2;
    }
    producer_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_overload();
    test_lossless();
    test_consumer_restart();
    test_producer_restart();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all accounting checks passed\n");
    return 0;
}
