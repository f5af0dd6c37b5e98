/* SPDX-License-Identifier: MIT */
/*
 * The kvm: backend without a VM: the hand-off queues (backends/kvm/kvm_queue.c) on their own,
 * and the session through the public API (include/ivmon/kvm.h) with the register values a VMM
 * would read at each exit, as the guest encoder makes them. Threads play vCPUs calling
 * ivmon_kvm_handle_io() while this thread is the consumer, as in a VMM. The real /dev/kvm runs
 * are tests/kvm.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ivmon/fragment.h"
#include "ivmon/kvm.h"
#include "kvm/kvm_queue.h"
#include "unit_records.h"

static struct rec_buf rb;
static uint8_t out[IVMON_REC_MAX];

/* ---- the queues ----------------------------------------------------------------------------- */

static void push(struct ivmon_kvm_queues *qs, unsigned i, uint64_t seq, size_t body, int want)
{
    struct ivmon_kvm_slot slot;
    size_t len = rec_header(&rb, IVMON_REC_HEARTBEAT, seq, body);
    memset(rec_body(&rb), (int)seq, body);
    assert_int_equal(ivmon_kvm_queues_reserve(qs, i, len, &slot), 0);
    assert_int_equal(ivmon_kvm_queues_publish(qs, i, &slot, &rb), want);
}

static uint64_t pop_seq(struct ivmon_kvm_queues *qs, uint64_t now)
{
    int len = ivmon_kvm_queues_pop(qs, out, now);
    if (len <= 0)
        return (uint64_t)(int64_t)len;
    struct ivmon_rec_hdr h;
    memcpy(&h, out, sizeof h);
    assert_int_equal(h.len, len);
    for (size_t i = sizeof h; i < (size_t)len; i++)
        assert_int_equal(out[i], (uint8_t)h.seq);
    return h.seq;
}

static void test_queues_order_and_wakeups(void **state)
{
    struct ivmon_kvm_queues *qs = NULL;
    assert_int_equal(ivmon_kvm_queues_new(&qs, 0, 65536), -EINVAL);
    assert_int_equal(ivmon_kvm_queues_new(&qs, 2, 16384), -EINVAL);
    assert_int_equal(ivmon_kvm_queues_new(&qs, 2, 65536 + 8), -EINVAL);
    assert_int_equal(ivmon_kvm_queues_new(&qs, 3, IVMON_KVM_QUEUE_MIN), 0);

    /* asleep from the start: the first record wakes, the next ones do not */
    push(qs, 2, 1, 8, 1);
    push(qs, 0, 2, 100, 0);
    push(qs, 2, 3, 16, 0);
    push(qs, 1, 4, 0, 0);
    push(qs, 0, 5, 3000, 0);
    ivmon_kvm_queues_awake(qs);
    for (uint64_t s = 1; s <= 5; s++)
        assert_int_equal(pop_seq(qs, 0), s); /* completion order across the queues */
    assert_int_equal(pop_seq(qs, 0), 0);
    /* a record arriving while the consumer is awake: not a wakeup, and no sleep */
    push(qs, 1, 6, 8, 0);
    assert_int_equal(ivmon_kvm_queues_prepare_sleep(qs), 0);
    assert_int_equal(pop_seq(qs, 0), 6);
    assert_int_equal(ivmon_kvm_queues_prepare_sleep(qs), 1);
    push(qs, 0, 7, 8, 1); /* asleep: this one wakes */
    push(qs, 0, 8, 8, 0); /* and only one does */

    /* wrap-around and a full queue: records of ~10 KiB in a 32 KiB queue */
    ivmon_kvm_queues_awake(qs);
    assert_int_equal(pop_seq(qs, 0), 7);
    assert_int_equal(pop_seq(qs, 0), 8);
    ivmon_kvm_queues_commit(qs);
    uint64_t seq = 9;
    struct ivmon_kvm_slot slot;
    for (int round = 0; round < 20; round++) {
        push(qs, 1, seq, 10000, 0);
        push(qs, 1, seq + 1, 10000, 0);
        push(qs, 1, seq + 2, 10000, 0);
        /* full: nothing taken, the ticket counter untouched */
        assert_int_equal(
            ivmon_kvm_queues_reserve(qs, 1, sizeof(struct ivmon_rec_hdr) + 10000, &slot), -ENOBUFS);
        for (int k = 0; k < 3; k++)
            assert_int_equal(pop_seq(qs, 0), seq + k);
        assert_int_equal(pop_seq(qs, 0), 0);
        ivmon_kvm_queues_commit(qs); /* only now is the space the producer's again */
        seq += 3;
    }
    assert_int_equal(ivmon_kvm_queues_reserve(qs, 0, IVMON_REC_MAX + 1, &slot), -EINVAL);
    assert_int_equal(ivmon_kvm_queues_late(qs), 0);
    ivmon_kvm_queues_free(qs);
    ivmon_kvm_queues_free(NULL);
}

/* A vCPU thread stopped between taking its ticket and publishing: the consumer waits for it,
 * then skips it so that the other vCPUs' records keep flowing; when the stuck record comes after
 * all, it is dropped as late rather than delivered out of order. */
static void test_queues_stuck_ticket(void **state)
{
    struct ivmon_kvm_queues *qs = NULL;
    struct ivmon_kvm_slot stuck;
    assert_int_equal(ivmon_kvm_queues_new(&qs, 2, 65536), 0);
    push(qs, 1, 1, 8, 1);
    size_t len = rec_header(&rb, IVMON_REC_HEARTBEAT, 2, 8);
    memset(rec_body(&rb), 2, 8);
    assert_int_equal(ivmon_kvm_queues_reserve(qs, 0, len, &stuck), 0); /* ticket 1 */
    push(qs, 1, 3, 8, 0);                                              /* ticket 2 */
    push(qs, 1, 4, 8, 0);
    ivmon_kvm_queues_awake(qs);
    uint64_t t0 = 5000000000ull;
    assert_int_equal(pop_seq(qs, t0), 1);
    assert_int_equal(pop_seq(qs, t0), (uint64_t)-EAGAIN);
    assert_int_equal(pop_seq(qs, t0 + IVMON_KVM_TICKET_WAIT_NS - 1), (uint64_t)-EAGAIN);
    assert_int_equal(pop_seq(qs, t0 + IVMON_KVM_TICKET_WAIT_NS), 3);
    assert_int_equal(pop_seq(qs, t0 + IVMON_KVM_TICKET_WAIT_NS), 4);
    /* the stuck thread finishes: its record is older than what was delivered */
    assert_int_equal(ivmon_kvm_queues_publish(qs, 0, &stuck, &rb), 0);
    push(qs, 1, 5, 8, 0);
    assert_int_equal(pop_seq(qs, t0 + IVMON_KVM_TICKET_WAIT_NS), 5);
    assert_int_equal(pop_seq(qs, t0 + IVMON_KVM_TICKET_WAIT_NS), 0);
    assert_int_equal(ivmon_kvm_queues_late(qs), 1);
    ivmon_kvm_queues_free(qs);
}

/* ---- the session ---------------------------------------------------------------------------- */

/* What a VMM reads at the exits of one record: the kvm: profile's registers per fragment. */
struct exits {
    unsigned n;
    struct ivmon_kvm_regs r[IVMON_FRAG_COUNT_MAX];
};

static struct exits X;

static void exits_of(struct exits *x, const void *rec, size_t len)
{
    struct ivmon_frag_writer w;
    uint64_t hdr, p[IVMON_KVM_WORDS];
    ivmon_frag_writer_init(&w, rec, (uint32_t)len, IVMON_KVM_WORDS);
    x->n = 0;
    while (ivmon_frag_writer_next(&w, &hdr, p)) {
        struct ivmon_kvm_regs *r = &x->r[x->n++];
        memset(r, 0xee, sizeof *r); /* registers outside the profile hold whatever */
        r->rbx = hdr;
        r->rcx = p[0];
        r->rbp = p[1];
        r->r11 = p[2];
        r->r12 = p[3];
        r->r13 = p[4];
        r->r14 = p[5];
        r->r15 = p[6];
        r->rdx = IVMON_KVM_PORT_DEFAULT;
    }
}

static void send_exits(ivmon *m, unsigned vcpu, const struct exits *x)
{
    for (unsigned i = 0; i < x->n; i++)
        assert_int_equal(ivmon_kvm_handle_io(m, vcpu, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &x->r[i], 0),
                         1);
}

#define MAX_SEEN 64
struct seen {
    unsigned n;
    uint64_t seq[MAX_SEEN];
    unsigned type[MAX_SEEN];
    char path[MAX_SEEN][IVMON_PATH_MAX + 1];
    uint64_t last_seq;
    int out_of_order;
};

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct seen *s = userdata;
    if (ivmon_event_seq(ev) <= s->last_seq)
        s->out_of_order++;
    s->last_seq = ivmon_event_seq(ev);
    if (s->n < MAX_SEEN) {
        s->seq[s->n] = ivmon_event_seq(ev);
        s->type[s->n] = ivmon_event_type(ev);
        snprintf(s->path[s->n], sizeof s->path[0], "%s", ivmon_event_path(ev));
    }
    s->n++;
    return 0;
}

static uint64_t stat(ivmon *m, unsigned which)
{
    uint64_t v = UINT64_MAX;
    assert_int_equal(ivmon_get_stat(m, which, &v), 0);
    return v;
}

static void check_identity(ivmon *m)
{
    assert_int_equal(stat(m, IVMON_STAT_DELIVERED) + stat(m, IVMON_STAT_LOST) +
                         stat(m, IVMON_STAT_MALFORMED) + stat(m, IVMON_STAT_MISSED),
                     stat(m, IVMON_STAT_SEQ_SPAN));
}

#define OPEN_FAILS(uri, reason)                                                                    \
    do {                                                                                           \
        ivmon *m_ = NULL;                                                                          \
        assert_int_equal(ivmon_open(&m_, (uri), 0), -EINVAL);                                      \
        assert_null(m_);                                                                           \
        if (!strstr(ivmon_open_error(), (reason)))                                                 \
            fail_msg("%s: \"%s\", expected \"%s\"", (uri), ivmon_open_error(), (reason));          \
    } while (0)

static void test_open_errors(void **state)
{
    OPEN_FAILS("kvm:vm", "vcpus= is required");
    OPEN_FAILS("kvm:vm?vcpus=0", "vcpus=");
    OPEN_FAILS("kvm:vm?vcpus=1025", "vcpus=");
    OPEN_FAILS("kvm:vm?vcpus=two", "vcpus=");
    static const char *const ports[] = {"0",  "65536",   "-1",   "+5",  " 5", "010",
                                        "0x", "0x10000", "0X10", "12a", ""};
    char uri[128];
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        snprintf(uri, sizeof uri, "kvm:vm?vcpus=1&port=%s", ports[i]);
        OPEN_FAILS(uri, "port=");
    }
    OPEN_FAILS("kvm:vm?vcpus=1&queue=16K", "queue=");
    OPEN_FAILS("kvm:vm?vcpus=1&queue=100000", "queue=");
    OPEN_FAILS("kvm:vm?vcpus=1&queue=128M", "queue=");
    OPEN_FAILS("kvm:vm?vcpus=1&expire_ms=3600001", "expire_ms=");
    OPEN_FAILS("kvm:vm?vcpus=1&bogus=1", "bogus");

    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "kvm:?vcpus=1024&port=65535&queue=32K&expire_ms=0", 0), 0);
    assert_int_equal(ivmon_kvm_port(m), 65535);
    ivmon_close(m);
    assert_int_equal(ivmon_open(&m, "kvm:vm?vcpus=1&port=0x3f8", 0), 0);
    assert_int_equal(ivmon_kvm_port(m), 0x3f8);
    ivmon_close(m);
    assert_int_equal(ivmon_open(&m, "kvm:vm?vcpus=1&port=80", 0), 0);
    assert_int_equal(ivmon_kvm_port(m), 80);
    ivmon_close(m);
}

static void test_handle_io_arguments(void **state)
{
    ivmon *m = NULL, *shm = NULL;
    struct ivmon_kvm_regs r = {0};
    char path[128], uri[160];
    snprintf(path, sizeof path, "/dev/shm/ivmon-unit-kvm-%d", (int)getpid());
    snprintf(uri, sizeof uri, "shm:ivmon-unit-kvm-%d?size=64K", (int)getpid());
    assert_int_equal(ivmon_open(&m, "kvm:vm?vcpus=2", 0), 0);
    assert_int_equal(ivmon_open(&shm, uri, 0), 0);

    assert_int_equal(ivmon_kvm_port(NULL), -EINVAL);
    assert_int_equal(ivmon_kvm_port(shm), -EINVAL);
    assert_int_equal(ivmon_kvm_port(m), IVMON_KVM_PORT_DEFAULT);
    assert_int_equal(ivmon_kvm_handle_io(NULL, 0, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &r, 0), -EINVAL);
    assert_int_equal(ivmon_kvm_handle_io(shm, 0, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &r, 0), -EINVAL);
    assert_int_equal(ivmon_kvm_handle_io(m, 2, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &r, 0), -EINVAL);
    assert_int_equal(ivmon_kvm_handle_io(m, 0, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, NULL, 0), -EINVAL);
    assert_int_equal(ivmon_kvm_handle_io(m, 0, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &r, 1), -EINVAL);
    assert_int_equal(stat(m, IVMON_STAT_FRAGMENTS), 0);
    /* other ports are the VMM's */
    assert_int_equal(ivmon_kvm_handle_io(m, 0, 0x3f8, 1, 1, 1, &r, 0), 0);
    assert_int_equal(ivmon_kvm_handle_io(m, 0, IVMON_KVM_PORT_DEFAULT + 1, 1, 1, 1, &r, 0), 0);
    /* our port, but not a one-byte OUT (an IN, an `out dx, ax`, a `rep outsb`): ours, and
     * refused even with a good fragment in the registers */
    size_t len = rec_heartbeat(&rb, 1, 1, 0);
    exits_of(&X, &rb, len);
    assert_int_equal(X.n, 1);
    assert_int_equal(ivmon_kvm_handle_io(m, 0, IVMON_KVM_PORT_DEFAULT, 1, 1, 0, &X.r[0], 0), 1);
    assert_int_equal(ivmon_kvm_handle_io(m, 1, IVMON_KVM_PORT_DEFAULT, 2, 1, 1, &X.r[0], 0), 1);
    assert_int_equal(ivmon_kvm_handle_io(m, 1, IVMON_KVM_PORT_DEFAULT, 1, 64, 1, &X.r[0], 0), 1);
    /* a one-byte OUT of zeros: a trap that is not a fragment */
    assert_int_equal(ivmon_kvm_handle_io(m, 1, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &r, 0), 1);
    assert_int_equal(ivmon_process(m, 0), 0);
    assert_int_equal(stat(m, IVMON_STAT_FRAGMENTS), 4);
    assert_int_equal(stat(m, IVMON_STAT_FRAG_REJECTED), 4);
    assert_int_equal(stat(m, IVMON_STAT_RECORDS), 0);
    ivmon_close(m);
    ivmon_close(shm);
    unlink(path);
    snprintf(uri, sizeof uri, "%s.sock", path);
    unlink(uri);
}

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Records through the session: the first exit wakes the consumer, the records come out whole
 * and in order across vCPUs, a record the guest left unfinished counts as missed once the next
 * one arrives, and a queue that the consumer does not empty overruns without the vCPU waiting. */
static void test_session_records(void **state)
{
    ivmon *m = NULL;
    static struct seen s;
    assert_int_equal(ivmon_open(&m, "kvm:unit?vcpus=3&queue=32K", 0), 0);
    assert_int_equal(ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &s), 0);
    int fd = ivmon_get_fd(m);
    assert_false(readable(fd));

    size_t len = rec_hello(&rb, 1);
    exits_of(&X, &rb, len);
    send_exits(m, 2, &X);
    assert_true(readable(fd)); /* the consumer had not looked yet: the first record rings */
    len = rec_file(&rb, 2, IVMON_OP_CREATE, "/srv/a", NULL);
    exits_of(&X, &rb, len);
    send_exits(m, 0, &X);
    char path[IVMON_PATH_MAX + 1];
    memset(path, 'p', IVMON_PATH_MAX);
    path[0] = '/';
    path[IVMON_PATH_MAX] = '\0';
    len = rec_file(&rb, 3, IVMON_OP_OPEN, path, NULL);
    exits_of(&X, &rb, len);
    assert_int_equal(X.n, ivmon_frag_count((uint32_t)len, IVMON_KVM_WORDS));
    send_exits(m, 1, &X);
    assert_int_equal(ivmon_process(m, 0), 3);
    assert_int_equal(stat(m, IVMON_STAT_WAKEUPS), 1);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.type[0], IVMON_EVENT_HELLO);
    assert_string_equal(s.path[1], "/srv/a");
    assert_string_equal(s.path[2], path);
    assert_false(readable(fd));

    /* seq 4 stops half-way on vCPU 0; seq 5 completes on vCPU 1 */
    len = rec_file(&rb, 4, IVMON_OP_OPEN, path, NULL);
    exits_of(&X, &rb, len);
    X.n /= 2;
    send_exits(m, 0, &X);
    len = rec_file(&rb, 5, IVMON_OP_DELETE, "/srv/b", NULL);
    exits_of(&X, &rb, len);
    send_exits(m, 1, &X);
    assert_true(readable(fd)); /* the consumer slept after the last call */
    assert_int_equal(ivmon_process(m, 0), 1);
    assert_string_equal(s.path[3], "/srv/b");
    assert_int_equal(stat(m, IVMON_STAT_MISSED), 1);
    check_identity(m);

    /* the consumer stops looking: vCPU 2's 32 KiB queue holds seven of these (4.2 KiB), the
     * eighth and later are dropped and counted, and show as missed once seq 16 gets through */
    len = rec_file(&rb, 6, IVMON_OP_OPEN, path, NULL);
    for (uint64_t seq = 6; seq <= 15; seq++) {
        rb.hdr.seq = seq;
        exits_of(&X, &rb, len);
        send_exits(m, 2, &X);
    }
    assert_int_equal(ivmon_process(m, 0), 7);
    assert_int_equal(stat(m, IVMON_STAT_OVERRUNS), 3);
    len = rec_heartbeat(&rb, 16, 16, 0);
    exits_of(&X, &rb, len);
    send_exits(m, 2, &X);
    assert_int_equal(ivmon_process(m, 0), 1);
    assert_int_equal(stat(m, IVMON_STAT_MISSED), 4);
    assert_int_equal(stat(m, IVMON_STAT_DELIVERED), 12);
    assert_int_equal(stat(m, IVMON_STAT_SEQ_SPAN), 16);
    assert_int_equal(stat(m, IVMON_STAT_FRAG_DAMAGED), 0); /* seq 4 is still in progress */
    check_identity(m);
    assert_int_equal(s.out_of_order, 0);
    ivmon_close(m);
}

/* vCPU threads and a consumer thread, as in a VMM. The guest is one producer: a record is
 * emitted whole by whichever vCPU holds the producer lock, as an agent migrating between CPUs
 * would, so records of consecutive sequence numbers come from different vCPUs. Everything
 * arrives, in order. */
#define THREADS        4
#define THREAD_RECORDS 3000

struct guest {
    ivmon *m;
    pthread_mutex_t lock;
    uint64_t next_seq;
    uint64_t total;
};

struct vcpu {
    struct guest *g;
    unsigned index;
    struct rec_buf rb;
    struct exits x;
};

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    char path[256];
    for (int i = 0; i < THREAD_RECORDS; i++) {
        pthread_mutex_lock(&v->g->lock);
        uint64_t seq = v->g->next_seq++;
        /* lengths from one fragment to several */
        int n = snprintf(path, sizeof path, "/vcpu%u/%llu/", v->index, (unsigned long long)seq);
        memset(path + n, 'x', seq % 200);
        path[n + seq % 200] = '\0';
        size_t len =
            seq == 1 ? rec_hello(&v->rb, 1) : rec_file(&v->rb, seq, IVMON_OP_MODIFY, path, NULL);
        exits_of(&v->x, &v->rb, len);
        for (unsigned k = 0; k < v->x.n; k++)
            if (ivmon_kvm_handle_io(v->g->m, v->index, IVMON_KVM_PORT_DEFAULT, 1, 1, 1, &v->x.r[k],
                                    0) != 1)
                abort();
        pthread_mutex_unlock(&v->g->lock);
    }
    return NULL;
}

static void test_threads(void **state)
{
    static struct guest g = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_seq = 1};
    static struct vcpu v[THREADS];
    pthread_t t[THREADS];
    static struct seen s;
    assert_int_equal(ivmon_open(&g.m, "kvm:threads?vcpus=4&queue=1M", 0), 0);
    assert_int_equal(ivmon_set_handler(g.m, IVMON_EVENT_ANY, on_event, &s), 0);
    for (unsigned i = 0; i < THREADS; i++) {
        v[i].g = &g;
        v[i].index = i;
        assert_int_equal(pthread_create(&t[i], NULL, vcpu_thread, &v[i]), 0);
    }
    unsigned total = THREADS * THREAD_RECORDS;
    while (s.n < total) {
        struct pollfd p = {.fd = ivmon_get_fd(g.m), .events = POLLIN};
        int timeout = ivmon_get_timeout(g.m);
        assert_true(poll(&p, 1, timeout) >= 0);
        assert_true(ivmon_process(g.m, 0) >= 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(ivmon_process(g.m, 0), 0);
    assert_int_equal(s.n, total);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(stat(g.m, IVMON_STAT_DELIVERED), total);
    assert_int_equal(stat(g.m, IVMON_STAT_MISSED), 0);
    assert_int_equal(stat(g.m, IVMON_STAT_OVERRUNS), 0);
    assert_int_equal(stat(g.m, IVMON_STAT_RESTARTS), 0);
    check_identity(g.m);
    /* far fewer wakeups than records: the consumer is rung only when it sleeps */
    assert_true(stat(g.m, IVMON_STAT_WAKEUPS) <= total);
    ivmon_close(g.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queues_order_and_wakeups),
        cmocka_unit_test(test_queues_stuck_ticket),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_handle_io_arguments),
        cmocka_unit_test(test_session_records),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
