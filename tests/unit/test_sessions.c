/* SPDX-License-Identifier: MIT */
/* Sessions end to end inside one process: the test plays the guest agents (the ring code on the
 * same files, doorbells fetched from RING.sock) and the monitor (one poll loop over several
 * sessions). The "bad input" requirement: a producer that breaks its ring gets -EPROTO on its own
 * session, for good, while another session in the same loop keeps delivering every record. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ivmon/ivmon.h"
#include "unit_records.h"
#include "unit_shm.h"

#define MAX_LOG 4096

struct sess {
    ivmon *m;
    struct test_producer tp;
    char path[128], uri[256];
    int last;   /* last ivmon_process() result */
    int broken; /* the loop stops polling it */
    unsigned n; /* events delivered to the handler */
    uint64_t seqs[MAX_LOG];
    unsigned types[MAX_LOG];
    unsigned errors_logged;
    uint64_t fail_seq; /* the handler refuses this record with -ECANCELED */
};

static struct sess S[2];
static struct rec_buf rb;

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct sess *s = userdata;
    if (s->fail_seq && ivmon_event_seq(ev) == s->fail_seq)
        return -ECANCELED;
    if (s->n < MAX_LOG) {
        s->seqs[s->n] = ivmon_event_seq(ev);
        s->types[s->n] = ivmon_event_type(ev);
    }
    s->n++;
    return 0;
}

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    struct sess *s = userdata;
    /* a rejected record is not an error of any call: it is logged, as a warning */
    if (level == IVMON_LOG_WARNING && strstr(msg, "rejected a record"))
        s->errors_logged++;
}

static uint64_t sstat(struct sess *s, unsigned which)
{
    uint64_t v = UINT64_MAX;
    assert_int_equal(ivmon_get_stat(s->m, which, &v), 0);
    return v;
}

/* Opens a session named `what` with extra URI options, and its producer (doorbell optional). */
static void sess_open(struct sess *s, const char *what, const char *options, int doorbell)
{
    char uri[160];
    memset(s, 0, sizeof *s);
    tp_reset(&s->tp);
    unit_ring_name(s->path, sizeof s->path, uri, sizeof uri, what);
    unit_ring_remove(s->path);
    snprintf(s->uri, sizeof s->uri, "%s?size=64K%s%s", uri, options ? "&" : "",
             options ? options : "");
    int r = ivmon_open(&s->m, s->uri, 0);
    if (r < 0)
        fail_msg("ivmon_open(%s): %d: %s", s->uri, r, ivmon_open_error());
    assert_int_equal(ivmon_set_handler(s->m, IVMON_EVENT_ANY, on_event, s), 0);
    ivmon_set_log(s->m, on_log, s);
    assert_int_equal(tp_attach(&s->tp, s->path, 0), 0);
    if (doorbell) {
        assert_int_equal(tp_connect(&s->tp), 0);
        /* the consumer accepts in its next process call */
        assert_int_equal(ivmon_process(s->m, 0), 0);
        assert_int_equal(tp_receive_doorbell(&s->tp), 0);
        assert_true(s->tp.efd >= 0);
        assert_int_equal(s->tp.generation, s->tp.hdr->consumer_gen);
    }
}

static void sess_close(struct sess *s)
{
    if (!s->path[0])
        return; /* never opened */
    ivmon_close(s->m);
    s->m = NULL;
    tp_close(&s->tp);
    unit_ring_remove(s->path);
}

static int teardown(void **state)
{
    for (int i = 0; i < 2; i++)
        sess_close(&S[i]);
    memset(S, 0, sizeof S);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One iteration of a monitor's loop over n sessions: poll with the smallest timeout, process the
 * sessions that are ready or due. A session that returns -EPROTO is dropped from the loop, as a
 * monitor would. */
static void loop_once(struct sess **ss, int n)
{
    struct pollfd pfd[8];
    int timeout = -1, k = 0;
    struct sess *polled[8];
    for (int i = 0; i < n; i++) {
        if (ss[i]->broken)
            continue;
        int t = ivmon_get_timeout(ss[i]->m);
        assert_true(t >= 0);
        if (timeout < 0 || t < timeout)
            timeout = t;
        pfd[k] = (struct pollfd){.fd = ivmon_get_fd(ss[i]->m),
                                 .events = (short)ivmon_get_events(ss[i]->m)};
        polled[k++] = ss[i];
    }
    if (k == 0)
        return;
    int r = poll(pfd, (nfds_t)k, timeout);
    assert_true(r >= 0);
    for (int i = 0; i < k; i++) {
        if (!pfd[i].revents && r > 0 && ivmon_get_timeout(polled[i]->m) > 0)
            continue;
        polled[i]->last = ivmon_process(polled[i]->m, 0);
        if (polled[i]->last == -EPROTO)
            polled[i]->broken = 1;
        else if (polled[i]->last < 0)
            fail_msg("ivmon_process(%s): %d", polled[i]->uri, polled[i]->last);
    }
}

/* Runs the loop until every session has delivered want[i] events (or broke), 10 s at most. */
static void loop_until(struct sess **ss, int n, const unsigned *want)
{
    int64_t deadline = now_ms() + 10000;
    for (;;) {
        int done = 1;
        for (int i = 0; i < n; i++)
            if (!ss[i]->broken && ss[i]->n < want[i])
                done = 0;
        if (done)
            return;
        if (now_ms() > deadline) {
            for (int i = 0; i < n; i++)
                print_error("%s: %u of %u events, last process %d\n", ss[i]->uri, ss[i]->n, want[i],
                            ss[i]->last);
            fail_msg("the loop did not deliver in 10 s");
        }
        loop_once(ss, n);
    }
}

static void emit_file(struct sess *s, uint32_t op, const char *path)
{
    rec_file(&rb, 0, op, path, op == IVMON_OP_RENAME ? "/renamed" : NULL);
    int r = tp_emit(&s->tp, &rb.hdr);
    if (r < 0)
        fail_msg("emit into %s: %d", s->path, r);
}

static void assert_seqs(struct sess *s, uint64_t first, unsigned count)
{
    assert_true(s->n >= count);
    for (unsigned i = 0; i < count && i < MAX_LOG; i++)
        if (s->seqs[i] != first + i)
            fail_msg("%s: event %u has seq %llu, expected %llu", s->uri, i,
                     (unsigned long long)s->seqs[i], (unsigned long long)(first + i));
}

/* ---- a producer breaks its ring ------------------------------------------------------------- */

enum corruption { C_LEN5, C_LEN_HUGE, C_INDEX, C_MISALIGNED, C_PAST_PROD, C_MAGIC, C_TRUNCATE };

struct variant {
    enum corruption kind;
    const char *reason;
};

static const struct variant V_LEN5 = {C_LEN5, "record length out of bounds"};
static const struct variant V_LEN_HUGE = {C_LEN_HUGE, "record length out of bounds"};
static const struct variant V_INDEX = {C_INDEX, "producer index out of bounds"};
static const struct variant V_MISALIGNED = {C_MISALIGNED, "producer index out of bounds"};
static const struct variant V_PAST_PROD = {C_PAST_PROD, "extends past the producer index"};
static const struct variant V_MAGIC = {C_MAGIC, "ring header"};
static const struct variant V_TRUNCATE = {C_TRUNCATE, "truncated"};

/* Writes a record header straight into the data area at the producer's position. */
static void poke_header(struct test_producer *tp, uint32_t len)
{
    struct ivmon_rec_hdr h = {.type = IVMON_REC_FILE, .len = len, .seq = tp->p.next_seq};
    uint8_t *data = tp->map + IVMON_RING_HDR_SIZE;
    uint64_t mask = tp->p.ring.size - 1;
    for (size_t i = 0; i < sizeof h; i++)
        data[(tp->p.ring.prod + i) & mask] = ((const uint8_t *)&h)[i];
}

static void corrupt(struct test_producer *tp, enum corruption kind)
{
    volatile uint64_t *prod = &tp->hdr->prod;
    switch (kind) {
    case C_LEN5:
        poke_header(tp, 5);
        *prod = tp->p.ring.prod + 24;
        break;
    case C_LEN_HUGE:
        poke_header(tp, UINT32_MAX);
        *prod = tp->p.ring.prod + 24;
        break;
    case C_INDEX:
        *prod = tp->p.ring.prod + tp->p.ring.size + 8;
        break;
    case C_MISALIGNED:
        *prod = tp->p.ring.prod + 4;
        break;
    case C_PAST_PROD:
        poke_header(tp, 200);
        *prod = tp->p.ring.prod + 64;
        break;
    case C_MAGIC:
        tp->hdr->magic = 0x4141414141414141ull;
        break;
    case C_TRUNCATE:
        /* Without the size check the consumer's next read of the mapping is a SIGBUS. */
        assert_int_equal(ftruncate(tp->fd, IVMON_RING_HDR_SIZE), 0);
        break;
    }
    tp_ring(tp); /* and tell the consumer to look */
}

static void test_bad_input_isolated(void **state)
{
    const struct variant *v = *state;
    struct sess *a = &S[0], *b = &S[1];
    struct sess *both[2] = {a, b};
    sess_open(a, "bad-a", NULL, 1);
    sess_open(b, "bad-b", NULL, 1);

    /* both producers well-behaved: hello + 20 file records each */
    for (int i = 0; i < 2; i++) {
        rec_hello(&rb, 0);
        assert_true(tp_emit(&both[i]->tp, &rb.hdr) >= 0);
        for (int k = 0; k < 20; k++)
            emit_file(both[i], IVMON_OP_OPEN, "/etc/hosts");
    }
    loop_until(both, 2, (const unsigned[]){21, 21});
    for (int i = 0; i < 2; i++) {
        assert_int_equal(both[i]->n, 21);
        assert_seqs(both[i], 1, 21);
        assert_int_equal(both[i]->types[0], IVMON_EVENT_HELLO);
        assert_true(both[i]->last >= 0);
    }

    /* A breaks its ring, B goes on */
    corrupt(&a->tp, v->kind);
    for (int k = 0; k < 5; k++)
        emit_file(b, IVMON_OP_MODIFY, "/var/log/syslog");
    loop_until(both, 2, (const unsigned[]){UINT32_MAX, 26});
    assert_int_equal(a->last, -EPROTO);
    assert_true(a->broken);
    if (!strstr(ivmon_get_error(a->m), v->reason))
        fail_msg("session A says \"%s\", expected \"%s\"", ivmon_get_error(a->m), v->reason);
    /* for good, even if the ring were repaired */
    for (int k = 0; k < 3; k++)
        assert_int_equal(ivmon_process(a->m, 0), -EPROTO);
    if (v->kind == C_TRUNCATE) /* the repair below writes through the mapping */
        assert_int_equal(ftruncate(a->tp.fd, (off_t)a->tp.size), 0);
    a->tp.hdr->magic = IVMON_RING_MAGIC;
    a->tp.hdr->prod = a->tp.p.ring.prod;
    assert_int_equal(ivmon_process(a->m, 0), -EPROTO);
    assert_non_null(strstr(ivmon_get_error(a->m), v->reason));
    assert_int_equal(a->n, 21);
    assert_int_equal(sstat(a, IVMON_STAT_DELIVERED), 21);
    assert_int_equal(sstat(a, IVMON_STAT_MALFORMED), 0);

    /* B: every record, exact sequence numbers, while A's producer keeps flooding its dead ring */
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 10; k++) {
            emit_file(b, IVMON_OP_CREATE, "/tmp/b");
            rec_file(&rb, 0, IVMON_OP_OPEN, "/flood", NULL);
            ivmon_producer_emit(&a->tp.p, &rb.hdr);
            tp_ring(&a->tp);
        }
        loop_until(both, 2, (const unsigned[]){0, 26 + 10 * (round + 1)});
    }
    assert_int_equal(b->n, 226);
    assert_seqs(b, 1, 226);
    assert_true(b->last >= 0);
    assert_string_equal(ivmon_get_error(b->m), "");
    assert_int_equal(sstat(b, IVMON_STAT_DELIVERED), 226);
    assert_int_equal(sstat(b, IVMON_STAT_MALFORMED), 0);
    assert_int_equal(sstat(b, IVMON_STAT_LOST), 0);
    assert_int_equal(sstat(b, IVMON_STAT_MISSED), 0);
    assert_int_equal(sstat(b, IVMON_STAT_FIRST_SEQ), 1);
    assert_int_equal(sstat(b, IVMON_STAT_LAST_SEQ), 226);
    assert_int_equal(a->n, 21);
}

/* ---- malformed but framed records, and the accounting identity ------------------------------ */

static void assert_identity(struct sess *s)
{
    uint64_t d = sstat(s, IVMON_STAT_DELIVERED), l = sstat(s, IVMON_STAT_LOST),
             mf = sstat(s, IVMON_STAT_MALFORMED), ms = sstat(s, IVMON_STAT_MISSED),
             first = sstat(s, IVMON_STAT_FIRST_SEQ), last = sstat(s, IVMON_STAT_LAST_SEQ);
    if (d + l + mf + ms != last - first + 1)
        fail_msg("delivered %llu + lost %llu + malformed %llu + missed %llu != %llu..%llu",
                 (unsigned long long)d, (unsigned long long)l, (unsigned long long)mf,
                 (unsigned long long)ms, (unsigned long long)first, (unsigned long long)last);
}

static void test_malformed_counted(void **state)
{
    struct sess *s = &S[0];
    struct sess *one[1] = {s};
    uint64_t bytes = 0;
    sess_open(s, "malformed", NULL, 1);

    rec_hello(&rb, 0);
    bytes += rb.hdr.len;
    assert_true(tp_emit(&s->tp, &rb.hdr) >= 0); /* 1 */
    emit_file(s, IVMON_OP_OPEN, "/a");          /* 2 */
    bytes += rb.hdr.len;
    rec_file(&rb, 0, IVMON_OP_OPEN, "/bad-op", NULL);
    rec_file_body(&rb)->op = 9;
    bytes += rb.hdr.len;
    assert_true(tp_emit(&s->tp, &rb.hdr) >= 0); /* 3: malformed */
    emit_file(s, IVMON_OP_OPEN, "/b");          /* 4 */
    bytes += rb.hdr.len;
    loop_until(one, 1, (const unsigned[]){3});
    assert_true(s->last >= 0);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->seqs[0], 1);
    assert_int_equal(s->seqs[1], 2);
    assert_int_equal(s->seqs[2], 4);
    assert_int_equal(sstat(s, IVMON_STAT_RECORDS), 4);
    assert_int_equal(sstat(s, IVMON_STAT_BYTES), bytes);
    assert_int_equal(sstat(s, IVMON_STAT_DELIVERED), 3);
    assert_int_equal(sstat(s, IVMON_STAT_MALFORMED), 1);
    assert_int_equal(sstat(s, IVMON_STAT_FIRST_SEQ), 1);
    assert_int_equal(sstat(s, IVMON_STAT_LAST_SEQ), 4);
    assert_non_null(strstr(ivmon_get_error(s->m), "unknown operation"));
    assert_int_equal(s->errors_logged, 1);
    assert_identity(s);

    /* more kinds of malformed records, each framed correctly, each followed by a good one */
    for (int kind = 0; kind < 6; kind++) {
        switch (kind) {
        case 0: /* NUL inside the path */
            rec_file(&rb, 0, IVMON_OP_OPEN, "/nul/here", NULL);
            rb.bytes[rb.hdr.len - 5] = '\0';
            break;
        case 1: /* unknown record type */
            rec_heartbeat(&rb, 0, 1, 0);
            rb.hdr.type = 77;
            break;
        case 2: /* header flags */
            rec_heartbeat(&rb, 0, 1, 0);
            rb.hdr.flags = 0x8000;
            break;
        case 3: /* loss range that does not add up */
            rec_lost(&rb, 0, IVMON_LOST_RING_FULL, 3, 1, 5);
            break;
        case 4: /* rename without its second name */
            rec_file(&rb, 0, IVMON_OP_RENAME, "/only-one", NULL);
            break;
        case 5: /* hello from the future */
            rec_hello(&rb, 0);
            rec_hello_body(&rb)->proto_major = 2;
            break;
        }
        assert_true(tp_emit(&s->tp, &rb.hdr) >= 0);
        emit_file(s, IVMON_OP_MODIFY, "/good");
    }
    loop_until(one, 1, (const unsigned[]){9});
    assert_int_equal(s->n, 9);
    for (unsigned i = 3; i < 9; i++) {
        assert_int_equal(s->seqs[i], 4 + 2 * (i - 2)); /* 6, 8, ..., 16 */
        assert_int_equal(s->types[i], IVMON_EVENT_FILE);
    }
    assert_int_equal(sstat(s, IVMON_STAT_MALFORMED), 7);
    assert_int_equal(s->errors_logged, 7);
    assert_int_equal(sstat(s, IVMON_STAT_LAST_SEQ), 16);
    assert_identity(s);

    /* sequence numbers that vanish without a report are "missed" */
    s->tp.p.next_seq += 3;                     /* 17, 18, 19 never appear */
    emit_file(s, IVMON_OP_OPEN, "/after-gap"); /* 20 */
    loop_until(one, 1, (const unsigned[]){10});
    assert_int_equal(s->seqs[9], 20);
    assert_int_equal(sstat(s, IVMON_STAT_MISSED), 3);
    assert_identity(s);

    /* a full ring: records dropped, reported, counted as lost. No processing meanwhile. */
    unsigned dropped = 0, written = 0;
    for (int k = 0; k < 2000; k++) {
        rec_file(&rb, 0, IVMON_OP_MODIFY, "/flood/of/records/with/a/longer/path", NULL);
        int r = tp_emit(&s->tp, &rb.hdr);
        assert_true(r >= 0 || r == -ENOBUFS);
        dropped += r == -ENOBUFS;
        written += r >= 0;
    }
    assert_true(dropped > 100);
    /* the session drains the ring over several budgets; then one more record carries the
     * loss report */
    loop_until(one, 1, (const unsigned[]){10 + written});
    emit_file(s, IVMON_OP_CLOSE_WRITE, "/last");
    loop_until(one, 1, (const unsigned[]){10 + written + 2});
    assert_int_equal(s->types[10 + written], IVMON_EVENT_LOST);
    assert_int_equal(s->types[10 + written + 1], IVMON_EVENT_FILE);
    assert_int_equal(sstat(s, IVMON_STAT_LOST), dropped);
    assert_int_equal(sstat(s, IVMON_STAT_MISSED), 3);
    assert_int_equal(sstat(s, IVMON_STAT_MALFORMED), 7);
    assert_int_equal(sstat(s, IVMON_STAT_DELIVERED), 10 + written + 2);
    assert_int_equal(sstat(s, IVMON_STAT_LAST_SEQ), s->tp.p.next_seq - 1);
    assert_int_equal(sstat(s, IVMON_STAT_FIRST_SEQ), 1);
    assert_identity(s);

    /* and a source overflow report is counted as such, not as lost */
    rec_lost(&rb, 0, IVMON_LOST_SOURCE_OVERFLOW, 0, 0, 0);
    assert_true(tp_emit(&s->tp, &rb.hdr) >= 0);
    loop_until(one, 1, (const unsigned[]){10 + written + 3});
    assert_int_equal(sstat(s, IVMON_STAT_SOURCE_OVERFLOWS), 1);
    assert_int_equal(sstat(s, IVMON_STAT_LOST), dropped);
    assert_identity(s);
    assert_true(s->last >= 0);
}

/* A malformed record before any trusted sequence number (a monitor attached to a ring whose
 * first record is garbage) still took a number: seq_span counts it, so the identity holds. */
static void test_malformed_first(void **state)
{
    struct sess *s = &S[0];
    struct sess *one[1] = {s};
    sess_open(s, "malformed-first", NULL, 1);

    rec_file(&rb, 0, IVMON_OP_OPEN, "/bad-op", NULL);
    rec_file_body(&rb)->op = 9;
    assert_true(tp_emit(&s->tp, &rb.hdr) >= 0); /* 1: malformed, before the hello */
    rec_hello(&rb, 0);
    assert_true(tp_emit(&s->tp, &rb.hdr) >= 0); /* 2 */
    emit_file(s, IVMON_OP_OPEN, "/a");          /* 3 */
    loop_until(one, 1, (const unsigned[]){2});
    assert_int_equal(sstat(s, IVMON_STAT_RECORDS), 3);
    assert_int_equal(sstat(s, IVMON_STAT_MALFORMED), 1);
    assert_int_equal(sstat(s, IVMON_STAT_DELIVERED), 2);
    assert_int_equal(sstat(s, IVMON_STAT_MISSED), 0);
    assert_int_equal(sstat(s, IVMON_STAT_SEQ_SPAN), 3);
}

/* ---- the budget ------------------------------------------------------------------------------ */

static void test_budget(void **state)
{
    struct sess *s = &S[0];
    sess_open(s, "budget", "budget=4", 0);
    for (int k = 0; k < 10; k++)
        emit_file(s, IVMON_OP_OPEN, "/x");
    assert_int_equal(ivmon_get_timeout(s->m), 0);
    assert_int_equal(ivmon_process(s->m, 0), 4);
    assert_int_equal(ivmon_get_timeout(s->m), 0);
    assert_int_equal(s->n, 4);
    assert_int_equal(ivmon_process(s->m, 0), 4);
    assert_int_equal(ivmon_get_timeout(s->m), 0);
    assert_int_equal(s->n, 8);
    assert_int_equal(ivmon_process(s->m, 0), 2);
    assert_true(ivmon_get_timeout(s->m) > 0);
    assert_int_equal(s->n, 10);
    assert_seqs(s, 1, 10);
    assert_int_equal(ivmon_process(s->m, 0), 0);
    assert_true(ivmon_get_timeout(s->m) > 0);
}

/* A flooding session does not starve another one in the same loop. */
static void test_budget_fairness(void **state)
{
    struct sess *a = &S[0], *b = &S[1];
    sess_open(a, "flood-a", "budget=4", 1);
    sess_open(b, "flood-b", NULL, 1);
    for (int k = 0; k < 400; k++)
        emit_file(a, IVMON_OP_MODIFY, "/flood");
    emit_file(b, IVMON_OP_OPEN, "/quiet");
    struct sess *both[2] = {a, b};
    loop_once(both, 2);
    assert_int_equal(a->last, 4);
    assert_int_equal(b->last, 1);
    assert_int_equal(b->n, 1);
    assert_int_equal(a->n, 4);
    assert_int_equal(ivmon_get_timeout(a->m), 0);
    loop_until(both, 2, (const unsigned[]){400, 1});
    assert_seqs(a, 1, 400);
}

static int readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    assert_true(r >= 0);
    return r > 0 && (p.revents & POLLIN);
}

/* A handler that stops ivmon_process() leaves records behind: the session must say so through its
 * timeout, or they wait for the periodic check (the producer will not ring for them: the
 * consumer never went to sleep). */
static void test_handler_stop_leaves_work_pending(void **state)
{
    struct sess *s = &S[0];
    struct sess *one[1] = {s};
    sess_open(s, "handler-stop", NULL, 1);
    s->fail_seq = 3;
    for (int k = 0; k < 6; k++)
        emit_file(s, IVMON_OP_OPEN, "/x");
    assert_true(readable(ivmon_get_fd(s->m), 1000));
    assert_int_equal(ivmon_process(s->m, 0), -ECANCELED);
    assert_int_equal(s->n, 2);
    assert_int_equal(ivmon_get_timeout(s->m), 0);
    int64_t t0 = now_ms();
    loop_until(one, 1, (const unsigned[]){5});
    assert_true(now_ms() - t0 < 500);
    assert_int_equal(s->n, 5);
    assert_int_equal(s->seqs[2], 4);
    assert_int_equal(s->seqs[4], 6);
    assert_int_equal(sstat(s, IVMON_STAT_DELIVERED), 6); /* delivered, the handler said no */
    assert_true(ivmon_get_timeout(s->m) > 0);
}

/* ---- the doorbell ---------------------------------------------------------------------------- */

static void test_doorbell(void **state)
{
    struct sess *s = &S[0];
    sess_open(s, "doorbell", NULL, 0);
    int fd = ivmon_get_fd(s->m);

    /* a producer connects: the consumer's fd wakes up for it */
    assert_int_equal(tp_connect(&s->tp), 0);
    assert_true(readable(fd, 1000));
    assert_int_equal(ivmon_process(s->m, 0), 0);
    assert_int_equal(tp_receive_doorbell(&s->tp), 0);
    assert_int_equal(s->tp.generation, 1);
    assert_int_equal(s->tp.hdr->consumer_gen, 1);
    assert_false(readable(fd, 0));
    assert_int_equal(sstat(s, IVMON_STAT_WAKEUPS), 0);

    /* the consumer sleeps on an empty ring: the first record asks for the doorbell */
    rec_hello(&rb, 0);
    assert_int_equal(ivmon_producer_emit(&s->tp.p, &rb.hdr), 1);
    assert_false(readable(fd, 0)); /* nothing until the producer rings */
    tp_ring(&s->tp);
    assert_true(readable(fd, 1000));
    assert_int_equal(ivmon_process(s->m, 0), 1);
    assert_int_equal(sstat(s, IVMON_STAT_WAKEUPS), 1);
    assert_int_equal(s->n, 1);
    assert_false(readable(fd, 0));

    /* one doorbell per sleep, however many records */
    rec_file(&rb, 0, IVMON_OP_OPEN, "/a", NULL);
    assert_int_equal(ivmon_producer_emit(&s->tp.p, &rb.hdr), 1);
    tp_ring(&s->tp);
    for (int k = 0; k < 5; k++) {
        rec_file(&rb, 0, IVMON_OP_OPEN, "/b", NULL);
        assert_int_equal(ivmon_producer_emit(&s->tp.p, &rb.hdr), 0);
    }
    assert_true(readable(fd, 1000));
    assert_int_equal(ivmon_process(s->m, 0), 6);
    assert_int_equal(sstat(s, IVMON_STAT_WAKEUPS), 2);
    assert_seqs(s, 1, 7);

    /* through tp_emit, in a loop */
    for (int k = 0; k < 10; k++) {
        emit_file(s, IVMON_OP_OPEN, "/c");
        assert_true(readable(fd, 1000));
        assert_int_equal(ivmon_process(s->m, 0), 1);
    }
    assert_int_equal(sstat(s, IVMON_STAT_WAKEUPS), 12);
    assert_seqs(s, 1, 17);

    /* the producer goes away: noticed, and the fd goes quiet again (no busy loop) */
    close(s->tp.sock);
    s->tp.sock = -1;
    assert_true(readable(fd, 1000));
    assert_int_equal(ivmon_process(s->m, 0), 0);
    assert_false(readable(fd, 0));

    /* a restarted producer gets the same generation; a restarted consumer bumps it */
    close(s->tp.efd);
    s->tp.efd = -1;
    assert_int_equal(tp_connect(&s->tp), 0);
    assert_int_equal(ivmon_process(s->m, 0), 0);
    assert_int_equal(tp_receive_doorbell(&s->tp), 0);
    assert_int_equal(s->tp.generation, 1);
    ivmon_close(s->m);
    s->m = NULL;
    close(s->tp.sock);
    close(s->tp.efd);
    s->tp.sock = s->tp.efd = -1;
    assert_int_equal(ivmon_open(&s->m, s->uri, 0), 0);
    assert_int_equal(ivmon_set_handler(s->m, IVMON_EVENT_ANY, on_event, s), 0);
    assert_int_equal(s->tp.hdr->consumer_gen, 2);
    assert_int_equal(tp_connect(&s->tp), 0);
    assert_int_equal(ivmon_process(s->m, 0), 0);
    assert_int_equal(tp_receive_doorbell(&s->tp), 0);
    assert_int_equal(s->tp.generation, 2);
    /* the new consumer continues where the old one stopped */
    emit_file(s, IVMON_OP_DELETE, "/d");
    assert_true(readable(ivmon_get_fd(s->m), 1000));
    assert_int_equal(ivmon_process(s->m, 0), 1);
    assert_int_equal(s->n, 18);
    assert_int_equal(s->seqs[17], 18);
    assert_int_equal(sstat(s, IVMON_STAT_FIRST_SEQ), 18);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_LEN5),
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_LEN_HUGE),
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_INDEX),
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_MISALIGNED),
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_PAST_PROD),
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_MAGIC),
        cmocka_unit_test_prestate_setup_teardown(test_bad_input_isolated, NULL, teardown,
                                                 (void *)&V_TRUNCATE),
        cmocka_unit_test_teardown(test_malformed_counted, teardown),
        cmocka_unit_test_teardown(test_malformed_first, teardown),
        cmocka_unit_test_teardown(test_budget, teardown),
        cmocka_unit_test_teardown(test_budget_fairness, teardown),
        cmocka_unit_test_teardown(test_handler_stop_leaves_work_pending, teardown),
        cmocka_unit_test_teardown(test_doorbell, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
