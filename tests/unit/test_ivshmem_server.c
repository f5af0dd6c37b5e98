/* SPDX-License-Identifier: MIT */
/* ivshmem+doorbell: the test plays QEMU's side of the ivshmem client-server protocol (QEMU
 * docs/specs/ivshmem-spec.rst) against a session, and the guest agent behind it: it takes the
 * version, its id, the shared memory fd and the peers' eventfds, maps the ring, produces into it
 * with the ring code and rings peer 0's eventfd when the ring asks for it, as the guest's write
 * to BAR0's Doorbell would. Hostile clients (garbage, fds, early close, a flood, one that never
 * reads) must neither crash nor block the monitor, and a restarted monitor, which QEMU never
 * reconnects to, must still drain the same ring and report the gap. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ivmon/ivmon.h"
#include "ring.h"
#include "unit_records.h"

#define MAX_PEERS 16

/* One QEMU, as far as the protocol goes, plus the guest's producer on the ring it was given. */
struct qemu {
    int sock;
    int64_t id;
    int shm_fd;
    size_t shm_size;
    uint8_t *map;
    struct ivmon_producer p;
    int own_efd;             /* where peers interrupt us */
    int peer_efd[MAX_PEERS]; /* vector 0 of peer i, indexed by id (small ids only) */
    int64_t gone[MAX_PEERS]; /* disconnect notifications, in order */
    unsigned n_gone;
};

static char sock_path[108], shm_path[128], uri[512];
static struct rec_buf rb;
static unsigned delivered_files;
static char last_path[256];

static int on_file(ivmon *m, const ivmon_event *ev, void *userdata)
{
    delivered_files++;
    snprintf(last_path, sizeof last_path, "%s", ivmon_event_path(ev));
    return 0;
}

static uint64_t stat_of(ivmon *m, unsigned which)
{
    uint64_t v = UINT64_MAX;
    assert_int_equal(ivmon_get_stat(m, which, &v), 0);
    return v;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ivmon_process must never block: every call returns well within this (valgrind included). */
#define PROCESS_MAX_MS 2000

static int process(ivmon *m)
{
    int64_t t0 = now_ms();
    int r = ivmon_process(m, 0);
    int64_t dt = now_ms() - t0;
    if (dt > PROCESS_MAX_MS)
        fail_msg("ivmon_process took %lld ms", (long long)dt);
    return r;
}

static void names(const char *what)
{
    snprintf(sock_path, sizeof sock_path, "/tmp/ivmon-unit-db-%s-%d.sock", what, (int)getpid());
    snprintf(shm_path, sizeof shm_path, "/dev/shm/ivmon-unit-db-%s-%d", what, (int)getpid());
    snprintf(uri, sizeof uri, "ivshmem+doorbell:%s?shm=%s&size=128K", sock_path, shm_path + 9);
    unlink(sock_path);
    unlink(shm_path);
}

static ivmon *open_session(void)
{
    ivmon *m = NULL;
    int r = ivmon_open(&m, uri, 0);
    if (r < 0)
        fail_msg("ivmon_open(%s): %d: %s", uri, r, ivmon_open_error());
    assert_int_equal(ivmon_set_handler(m, IVMON_EVENT_FILE, on_file, NULL), 0);
    return m;
}

static void q_reset(struct qemu *q)
{
    memset(q, 0, sizeof *q);
    q->sock = q->shm_fd = q->own_efd = -1;
    q->id = -2;
    for (int i = 0; i < MAX_PEERS; i++)
        q->peer_efd[i] = -1;
}

static int q_connect(struct qemu *q)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    q_reset(q);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    q->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(q->sock >= 0);
    /* A receive timeout, so a server that fails to send fails the test instead of hanging it. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(q->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return connect(q->sock, (struct sockaddr *)&a, sizeof a) < 0 ? -errno : 0;
}

/* One message, as QEMU reads it: 8 bytes, little-endian, maybe one fd. Returns 0, or -1 at the
 * end of the connection or on a timeout. */
static int q_recv(struct qemu *q, int64_t *value, int *fd)
{
    uint64_t le = 0;
    struct iovec iov = {.iov_base = &le, .iov_len = sizeof le};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    *fd = -1;
    ssize_t n = recvmsg(q->sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    if (n != sizeof le)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        assert_int_equal(c->cmsg_level, SOL_SOCKET);
        assert_int_equal(c->cmsg_type, SCM_RIGHTS);
        /* exactly one fd per message */
        assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(int)));
        assert_int_equal(*fd, -1);
        memcpy(fd, CMSG_DATA(c), sizeof *fd);
    }
    *value = (int64_t)le;
    return 0;
}

/* Handles one connect/disconnect notification (step 6). */
static void q_note(struct qemu *q, int64_t v, int fd)
{
    assert_true(v >= 0 && v < MAX_PEERS);
    if (fd >= 0) {
        if (q->peer_efd[v] >= 0)
            close(q->peer_efd[v]);
        q->peer_efd[v] = fd;
    } else {
        if (q->peer_efd[v] >= 0)
            close(q->peer_efd[v]);
        q->peer_efd[v] = -1;
        q->gone[q->n_gone++ % MAX_PEERS] = v;
    }
}

/* QEMU's ivshmem_recv_setup: version, id, then messages until the shm fd, then (QEMU takes them
 * as they come) peers' vectors until our own. Maps the ring and attaches a producer. */
static void q_setup(struct qemu *q)
{
    int64_t v;
    int fd;
    struct stat st;
    const char *why = NULL;
    struct ivmon_ring r;

    assert_int_equal(q_recv(q, &v, &fd), 0);
    assert_int_equal(v, 0); /* protocol version */
    assert_int_equal(fd, -1);
    assert_int_equal(q_recv(q, &q->id, &fd), 0);
    assert_int_equal(fd, -1);
    assert_true(q->id >= 1 && q->id <= 65535); /* 0 is the host library */
    assert_int_equal(q_recv(q, &v, &q->shm_fd), 0);
    assert_int_equal(v, -1);
    assert_true(q->shm_fd >= 0);
    for (;;) {
        assert_int_equal(q_recv(q, &v, &fd), 0);
        assert_true(fd >= 0); /* setup messages all carry an fd */
        if (v == q->id) {
            q->own_efd = fd;
            break;
        }
        q_note(q, v, fd);
    }
    assert_true(q->peer_efd[0] >= 0); /* peer 0, the library, came with the others */
    assert_int_equal(fstat(q->shm_fd, &st), 0);
    q->shm_size = (size_t)st.st_size;
    void *map = mmap(NULL, q->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, q->shm_fd, 0);
    assert_true(map != MAP_FAILED);
    q->map = map;
    if (ivmon_ring_attach(&r, map, q->shm_size, &why) < 0)
        fail_msg("attach the ring QEMU was given: %s", or_null(why));
    ivmon_producer_init(&q->p, &r, 0);
}

static void q_close(struct qemu *q)
{
    if (q->map)
        munmap(q->map, q->shm_size);
    if (q->sock >= 0)
        close(q->sock);
    if (q->shm_fd >= 0)
        close(q->shm_fd);
    if (q->own_efd >= 0)
        close(q->own_efd);
    for (int i = 0; i < MAX_PEERS; i++)
        if (q->peer_efd[i] >= 0)
            close(q->peer_efd[i]);
    q_reset(q);
}

/* The guest's doorbell: BAR0 Doorbell = (0 << 16 | 0) makes QEMU write peer 0's vector 0. */
static void q_doorbell(struct qemu *q)
{
    uint64_t one = 1;
    assert_int_equal(write(q->peer_efd[0], &one, sizeof one), sizeof one);
}

/* Emits a record as the agent does: rings only when the ring asks. Returns emit's result. */
static int q_emit(struct qemu *q, const char *path, int ring)
{
    rec_file(&rb, 0, IVMON_OP_CREATE, path, NULL);
    int r = ivmon_producer_emit(&q->p, &rb.hdr);
    if (r == 1 && ring)
        q_doorbell(q);
    return r;
}

static void q_hello(struct qemu *q)
{
    rec_hello(&rb, 0);
    int r = ivmon_producer_emit(&q->p, &rb.hdr);
    assert_true(r >= 0);
    if (r == 1)
        q_doorbell(q);
}

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

/* The monitor's loop until `files` file events were delivered in all, or 5 s. */
static void loop_until(ivmon *m, unsigned files)
{
    int64_t deadline = now_ms() + 5000;
    while (delivered_files < files) {
        if (now_ms() > deadline)
            fail_msg("%u of %u file events delivered", delivered_files, files);
        struct pollfd p = {.fd = ivmon_get_fd(m), .events = (short)ivmon_get_events(m)};
        int t = ivmon_get_timeout(m);
        assert_true(t >= 0);
        assert_true(poll(&p, 1, t) >= 0);
        assert_true(process(m) >= 0);
    }
}

static unsigned open_fds(void)
{
    unsigned n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static int teardown(void **state)
{
    unlink(sock_path);
    unlink(shm_path);
    delivered_files = 0;
    return 0;
}

/* ---- the protocol, and records through the doorbell ----------------------------------------- */

static void test_setup_and_doorbell(void **state)
{
    struct qemu q;
    names("setup");
    ivmon *m = open_session();
    /* The ring exists and is formatted before anyone connects: QEMU maps it at once. */
    struct stat st;
    assert_int_equal(stat(shm_path, &st), 0);
    assert_int_equal(st.st_size, 128 * 1024);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ivmon_get_timeout(m), 0); /* first pass: look at once */

    assert_int_equal(q_connect(&q), 0);
    assert_true(fd_readable(ivmon_get_fd(m), 1000)); /* the connection wakes the loop */
    assert_int_equal(process(m), 0);
    q_setup(&q);
    assert_int_equal(q.id, 1);
    assert_int_equal(q.shm_size, 128 * 1024);
    assert_int_equal(q.p.ring.size, 64 * 1024); /* half the region: the rest is the header */
    /* With a client connected the monitor sleeps on the doorbell: cons_waiting is set. */
    assert_int_equal(ivmon_get_timeout(m), 1000);
    struct ivmon_ring_hdr *h = (struct ivmon_ring_hdr *)q.map;
    assert_int_equal(h->cons_waiting, 1);
    assert_false(fd_readable(ivmon_get_fd(m), 0));

    /* First record: the ring asks for the doorbell; the rest of the batch does not. */
    q_hello(&q);
    assert_int_equal(q_emit(&q, "/tmp/a", 1), 0);
    assert_int_equal(q_emit(&q, "/tmp/b", 1), 0);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 3);
    assert_int_equal(delivered_files, 2);
    assert_string_equal(last_path, "/tmp/b");
    assert_int_equal(stat_of(m, IVMON_STAT_WAKEUPS), 1);

    /* Many records, one doorbell per sleep: far fewer wakeups than records. */
    for (int i = 0; i < 2000; i++) {
        char p[32];
        snprintf(p, sizeof p, "/tmp/f%d", i);
        int r;
        while ((r = q_emit(&q, p, 1)) == -ENOBUFS)
            fail_msg("ring full at record %d", i);
        assert_true(r >= 0);
        if (i % 500 == 499)
            loop_until(m, 2 + (unsigned)i + 1);
    }
    loop_until(m, 2002);
    assert_int_equal(stat_of(m, IVMON_STAT_LOST), 0);
    assert_int_equal(stat_of(m, IVMON_STAT_MISSED), 0);
    assert_int_equal(stat_of(m, IVMON_STAT_MALFORMED), 0);
    uint64_t wakeups = stat_of(m, IVMON_STAT_WAKEUPS);
    assert_true(wakeups >= 2 && wakeups <= 10);

    /* QEMU goes away (VM shut down): the monitor polls from now on. */
    q_close(&q);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 0);
    assert_int_equal(ivmon_get_timeout(m), 20);
    ivmon_close(m);
    /* The socket goes with the session; the ring file stays for a restarted monitor. */
    assert_int_equal(access(sock_path, F_OK), -1);
    assert_int_equal(access(shm_path, F_OK), 0);
}

/* Several clients: each learns of the others (connect notifications with their eventfds) and of
 * their departure (the id alone), as QEMU's ivshmem-server does it. */
static void test_peers(void **state)
{
    struct qemu a, b;
    int64_t v;
    int fd;
    names("peers");
    ivmon *m = open_session();
    assert_int_equal(q_connect(&a), 0);
    assert_int_equal(process(m), 0);
    q_setup(&a);
    assert_int_equal(q_connect(&b), 0);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 0);
    q_setup(&b);
    assert_int_equal(a.id, 1);
    assert_int_equal(b.id, 2);
    assert_true(b.peer_efd[1] >= 0); /* b was told of a during its setup */
    /* a is told of b */
    assert_int_equal(q_recv(&a, &v, &fd), 0);
    assert_int_equal(v, 2);
    assert_true(fd >= 0);
    q_note(&a, v, fd);
    /* the eventfd a got for b is the one b listens on */
    uint64_t one = 1, got = 0;
    assert_int_equal(write(a.peer_efd[2], &one, sizeof one), sizeof one);
    assert_int_equal(read(b.own_efd, &got, sizeof got), sizeof got);
    assert_int_equal(got, 1);
    /* both got the same peer 0 and the same memory */
    struct stat s1, s2;
    assert_int_equal(fstat(a.shm_fd, &s1), 0);
    assert_int_equal(fstat(b.shm_fd, &s2), 0);
    assert_int_equal(s1.st_ino, s2.st_ino);

    /* b leaves: a hears its id without an fd; a third client gets a fresh id (never 2 again:
     * QEMU 7.2 corrupts its heap on a connect for an id it saw leave). */
    q_close(&b);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 0);
    assert_int_equal(q_recv(&a, &v, &fd), 0);
    assert_int_equal(v, 2);
    assert_int_equal(fd, -1);
    assert_int_equal(q_connect(&b), 0);
    assert_int_equal(process(m), 0);
    q_setup(&b);
    assert_int_equal(b.id, 3);
    assert_int_equal(b.peer_efd[2], -1);
    q_close(&a);
    q_close(&b);
    ivmon_close(m);
}

/* ---- hostile clients ------------------------------------------------------------------------ */

static void test_hostile_clients(void **state)
{
    struct qemu good, bad[12];
    int64_t v;
    int fd;
    names("hostile");
    unsigned fds_before = open_fds();
    ivmon *m = open_session();
    assert_int_equal(q_connect(&good), 0);
    assert_int_equal(process(m), 0);
    q_setup(&good);
    q_hello(&good);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 1);

    /* Garbage: a client that talks is not QEMU; it is dropped, the good one hears it go. */
    assert_int_equal(q_connect(&bad[0]), 0);
    assert_int_equal(process(m), 0);
    assert_int_equal(send(bad[0].sock, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL), 18);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 0);
    for (;;) { /* its setup, then the end of the connection */
        if (q_recv(&bad[0], &v, &fd) < 0)
            break;
        if (fd >= 0)
            close(fd);
    }
    q_close(&bad[0]);
    assert_int_equal(q_recv(&good, &v, &fd), 0); /* connect notice of bad[0] */
    q_note(&good, v, fd);
    assert_int_equal(q_recv(&good, &v, &fd), 0); /* and its departure */
    assert_int_equal(fd, -1);
    q_note(&good, v, fd);

    /* A client that sends fds (SCM_RIGHTS) along: dropped, and the fds do not pile up here. */
    assert_int_equal(q_connect(&bad[1]), 0);
    assert_int_equal(process(m), 0);
    {
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        char c = 'x';
        struct iovec iov = {.iov_base = &c, .iov_len = 1};
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(2 * sizeof(int))];
        } control;
        memset(&control, 0, sizeof control);
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof control.buf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(cm), pipefd, sizeof pipefd);
        assert_int_equal(sendmsg(bad[1].sock, &msg, MSG_NOSIGNAL), 1);
        close(pipefd[0]);
        close(pipefd[1]);
    }
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 0);
    q_close(&bad[1]);

    /* Early close: connected and gone before the monitor looks. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(q_connect(&bad[i]), 0);
        close(bad[i].sock);
        bad[i].sock = -1;
    }
    assert_int_equal(process(m), 0);
    assert_int_equal(process(m), 0);

    /* A flood: more clients than slots. Seven get in beside the good one (8 in all), the rest
     * are closed at once; none of it blocks the loop. */
    for (int i = 0; i < 12; i++)
        assert_int_equal(q_connect(&bad[i]), 0);
    assert_int_equal(process(m), 0);
    assert_int_equal(process(m), 0);
    unsigned admitted = 0, refused = 0;
    int leaver = -1;
    for (int i = 0; i < 12; i++) {
        if (q_recv(&bad[i], &v, &fd) == 0) {
            admitted++;
            leaver = i;
            assert_int_equal(v, 0);
        } else {
            refused++;
        }
    }
    assert_int_equal(admitted, 7);
    assert_int_equal(refused, 5);
    /* The refused ones are gone already; one admitted client leaves, so that each churn client
     * below gets the free slot and every remaining client hears of it coming and going. */
    assert_true(leaver >= 0);
    q_close(&bad[leaver]);
    assert_true(process(m) >= 0);

    /* The admitted ones never read. Churn (connect, leave) makes the monitor send them notices
     * until their socket buffers are full: then they are dropped, never waited for. The good
     * client reads its notices and stays. */
    int64_t t0 = now_ms();
    for (int round = 0; round < 400; round++) {
        struct qemu churn;
        assert_int_equal(q_connect(&churn), 0);
        assert_true(process(m) >= 0);
        close(churn.sock);
        assert_true(process(m) >= 0);
        /* the good client takes what is there */
        while (fd_readable(good.sock, 0)) {
            assert_int_equal(q_recv(&good, &v, &fd), 0);
            if (fd >= 0)
                close(fd);
        }
    }
    assert_true(now_ms() - t0 < 60000);
    unsigned dropped = 0;
    for (int i = 0; i < 12; i++) {
        if (i == leaver)
            continue;
        /* a dropped client sees the end of its connection after its unread messages */
        for (;;) {
            if (q_recv(&bad[i], &v, &fd) < 0)
                break;
            if (fd >= 0)
                close(fd);
        }
        struct pollfd p = {.fd = bad[i].sock, .events = POLLIN};
        if (poll(&p, 1, 0) == 1 && recv(bad[i].sock, &v, 1, MSG_DONTWAIT) == 0)
            dropped++;
        q_close(&bad[i]);
    }
    assert_int_equal(dropped, 11); /* 5 refused at once, 6 dropped as deaf */
    while (fd_readable(ivmon_get_fd(m), 0))
        assert_true(process(m) >= 0);

    /* Through all of it, the good client's records still arrive by doorbell. */
    assert_int_equal(q_emit(&good, "/still/here", 1) >= 0, 1);
    loop_until(m, 1);
    assert_string_equal(last_path, "/still/here");
    q_close(&good);
    ivmon_close(m);
    assert_int_equal(open_fds(), fds_before);
}

/* ---- restarts ------------------------------------------------------------------------------- */

/* QEMU never reconnects to a restarted server (see backends/ivshmem/doorbell.c). The restarted
 * monitor finds the same ring by name, reports what the guest had to drop meanwhile, and polls. */
static void test_monitor_restart(void **state)
{
    struct qemu q;
    names("restart");
    ivmon *m = open_session();
    assert_int_equal(q_connect(&q), 0);
    assert_int_equal(process(m), 0);
    q_setup(&q);
    q_hello(&q);
    for (int i = 0; i < 10; i++)
        assert_true(q_emit(&q, "/before", 1) >= 0);
    loop_until(m, 10);
    /* The monitor dies (its connection to QEMU with it); the guest keeps writing into the ring
     * until it is full, and drops the rest. */
    ivmon_close(m);
    m = NULL;
    unsigned written = 0, dropped = 0;
    for (int i = 0; i < 2000; i++) {
        int r = q_emit(&q, "/during", 1);
        if (r == -ENOBUFS)
            dropped++;
        else if (r >= 0)
            written++;
    }
    assert_true(dropped > 0);
    assert_true(written > 0);

    /* The new monitor: same URI, same ring; QEMU does not connect, so no doorbell: it polls. */
    delivered_files = 0;
    m = open_session();
    loop_until(m, written);
    assert_true(ivmon_get_timeout(m) <= 20);
    /* Polling: the consumer stays "awake", so the guest does not ring a doorbell nobody hears. */
    struct ivmon_ring_hdr *h = (struct ivmon_ring_hdr *)q.map;
    assert_int_equal(h->cons_waiting, 0);
    /* Events resume; the first record written after the gap carries the loss report. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(q_emit(&q, "/after", 1), 0);
    loop_until(m, written + 5);
    assert_string_equal(last_path, "/after");
    assert_int_equal(stat_of(m, IVMON_STAT_LOST), dropped);
    assert_int_equal(stat_of(m, IVMON_STAT_MALFORMED), 0);
    assert_int_equal(stat_of(m, IVMON_STAT_WAKEUPS), 0);
    assert_int_equal(stat_of(m, IVMON_STAT_MISSED), 0);
    q_close(&q);
    ivmon_close(m);
}

/* A client is connected, but the guest's doorbell goes elsewhere (its QEMU was served by an
 * earlier monitor): the monitor notices that the guest took cons_waiting and no doorbell came,
 * and polls. */
static void test_deaf_doorbell(void **state)
{
    struct qemu q, other;
    names("deaf");
    ivmon *m = open_session();
    assert_int_equal(q_connect(&other), 0);
    assert_int_equal(process(m), 0);
    q_setup(&other);
    /* The producing guest: same ring, but its "QEMU" rings an eventfd nobody reads. */
    q_reset(&q);
    struct stat st;
    q.shm_fd = open(shm_path, O_RDWR | O_CLOEXEC);
    assert_true(q.shm_fd >= 0);
    assert_int_equal(fstat(q.shm_fd, &st), 0);
    q.shm_size = (size_t)st.st_size;
    q.map = mmap(NULL, q.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, q.shm_fd, 0);
    assert_true(q.map != MAP_FAILED);
    struct ivmon_ring r;
    const char *why = NULL;
    assert_int_equal(ivmon_ring_attach(&r, q.map, q.shm_size, &why), 0);
    ivmon_producer_init(&q.p, &r, 0);
    assert_int_equal(q_emit(&q, "/unheard", 0), 1); /* it asked for a doorbell that never comes */
    loop_until(m, 1);
    assert_true(ivmon_get_timeout(m) <= 20);
    for (int i = 0; i < 20; i++)
        assert_true(q_emit(&q, "/polled", 0) >= 0);
    loop_until(m, 21);
    assert_string_equal(last_path, "/polled");
    assert_int_equal(stat_of(m, IVMON_STAT_WAKEUPS), 0);
    q_close(&q);
    q_close(&other);
    ivmon_close(m);
}

/* A doorbell a little behind the flag is not a deaf doorbell: the producer took cons_waiting but
 * its doorbell arrives only after the monitor looked twice in a row (ivmon_process may be called
 * whenever the caller likes). The session must keep sleeping on the doorbell, not fall back to
 * polling for good. */
static void test_late_doorbell(void **state)
{
    struct qemu q;
    names("late");
    ivmon *m = open_session();
    assert_int_equal(q_connect(&q), 0);
    assert_int_equal(process(m), 0);
    q_setup(&q);
    q_hello(&q);
    loop_until(m, 0);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 1);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(ivmon_get_timeout(m), 1000); /* asleep on the doorbell */
        assert_int_equal(q_emit(&q, "/late", 0), 1);  /* flag taken, doorbell not yet rung */
        assert_true(process(m) >= 0);
        assert_true(process(m) >= 0);
        q_doorbell(&q);
        assert_true(fd_readable(ivmon_get_fd(m), 1000));
        assert_true(process(m) >= 0);
    }
    assert_int_equal(delivered_files, 3);
    assert_int_equal(ivmon_get_timeout(m), 1000);
    assert_int_equal(q_emit(&q, "/on-time", 1), 1);
    assert_true(fd_readable(ivmon_get_fd(m), 1000));
    assert_int_equal(process(m), 1);
    assert_string_equal(last_path, "/on-time");
    assert_int_equal(stat_of(m, IVMON_STAT_WAKEUPS), 5);
    q_close(&q);
    ivmon_close(m);
}

/* ---- opening ------------------------------------------------------------------------------- */

static void test_open_errors(void **state)
{
    ivmon *m = NULL, *m2 = NULL;
    char u[600];
    names("open");

    /* relative socket path, bad sizes, unknown options */
    assert_int_equal(ivmon_open(&m, "ivshmem+doorbell:vm.sock", 0), -EINVAL);
    snprintf(u, sizeof u, "ivshmem+doorbell:%s?size=96K", sock_path);
    assert_int_equal(ivmon_open(&m, u, 0), -EINVAL);
    snprintf(u, sizeof u, "ivshmem+doorbell:%s?size=64K", sock_path);
    assert_int_equal(ivmon_open(&m, u, 0), -EINVAL);
    snprintf(u, sizeof u, "ivshmem+doorbell:%s?vectors=2", sock_path);
    assert_int_equal(ivmon_open(&m, u, 0), -EINVAL);
    snprintf(u, sizeof u, "ivshmem+doorbell:%s?shm=a/b", sock_path);
    assert_int_equal(ivmon_open(&m, u, 0), -EINVAL);

    /* a second monitor on the same ring, or on the same socket, is refused */
    m = open_session();
    assert_int_equal(ivmon_open(&m2, uri, 0), -EBUSY);
    snprintf(u, sizeof u, "ivshmem+doorbell:%s?shm=ivmon-unit-db-other-%d&size=128K", sock_path,
             (int)getpid());
    assert_int_equal(ivmon_open(&m2, u, 0), -EBUSY);
    char other[128];
    snprintf(other, sizeof other, "/dev/shm/ivmon-unit-db-other-%d", (int)getpid());
    unlink(other);
    ivmon_close(m);

    /* a socket file left by a monitor that was killed is replaced */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    close(s);
    m = open_session();
    ivmon_close(m);

    /* something that is not a socket is left alone */
    int f = open(sock_path, O_CREAT | O_WRONLY, 0600);
    assert_true(f >= 0);
    close(f);
    assert_int_equal(ivmon_open(&m, uri, 0), -EEXIST);
    unlink(sock_path);

    /* an existing ring file QEMU cannot map (not a power of two: a shm: ring, say) */
    unlink(shm_path);
    f = open(shm_path, O_CREAT | O_WRONLY, 0600);
    assert_true(f >= 0);
    assert_int_equal(ftruncate(f, 4096 + 65536), 0);
    close(f);
    assert_int_equal(ivmon_open(&m, uri, 0), -EPROTO);
    unlink(shm_path);

    /* a symbolic link planted where the ring file goes */
    assert_int_equal(symlink("/etc/hostname", shm_path), 0);
    assert_int_equal(ivmon_open(&m, uri, 0), -EPERM);
    unlink(shm_path);

    /* no shm=: a stable name derived from the socket path, in /dev/shm */
    snprintf(u, sizeof u, "ivshmem+doorbell:%s", sock_path);
    assert_int_equal(ivmon_open(&m, u, 0), 0);
    char derived[256];
    snprintf(derived, sizeof derived, "/dev/shm/ivmon-db-ivmon-unit-db-open-%d-", (int)getpid());
    int found = 0;
    FILE *ls = popen("ls /dev/shm", "r");
    assert_non_null(ls);
    char line[512];
    while (fgets(line, sizeof line, ls)) {
        line[strcspn(line, "\n")] = '\0';
        char full[600];
        snprintf(full, sizeof full, "/dev/shm/%s", line);
        if (!strncmp(full, derived, strlen(derived)) && strlen(full) == strlen(derived) + 16) {
            struct stat st;
            assert_int_equal(stat(full, &st), 0);
            assert_int_equal(st.st_size, 4 << 20); /* the default region */
            unlink(full);
            found = 1;
        }
    }
    pclose(ls);
    assert_true(found);
    ivmon_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_setup_and_doorbell, teardown),
        cmocka_unit_test_teardown(test_peers, teardown),
        cmocka_unit_test_teardown(test_hostile_clients, teardown),
        cmocka_unit_test_teardown(test_monitor_restart, teardown),
        cmocka_unit_test_teardown(test_deaf_doorbell, teardown),
        cmocka_unit_test_teardown(test_late_doorbell, teardown),
        cmocka_unit_test_teardown(test_open_errors, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
