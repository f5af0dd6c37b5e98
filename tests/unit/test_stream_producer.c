/* SPDX-License-Identifier: MIT */
/* The guest's stream producer (guest/stream_producer.c, the virtio-serial transport's writer)
 * against the host core: records written into a non-blocking UNIX stream socket, which fills up
 * and takes short writes as a busy port would, are read back, cut at the headers' lengths and
 * handed to the library's ingest path (validation, sequence accounting). Drop mode must drop and
 * report exactly what did not fit, lossless mode must refuse and then deliver everything, and a
 * stream cut by short writes of large records must still frame. Also the guest's
 * virtio-serial: URIs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "stream_producer.h"
#include "unit_records.h"
#include "uri.h"

#define SNDBUF 8192 /* the kernel doubles it; small, so the socket fills after a few records */

struct pipe_end {
    int prod, cons; /* the producer's non-blocking end, the consumer's end */
    uint8_t *got;   /* every byte read so far */
    size_t got_len, got_cap;
};

static struct rec_buf rb;
static struct ivmon_stream_producer sp;

static void chan_open(struct pipe_end *c)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int size = SNDBUF;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    c->prod = sv[0];
    c->cons = sv[1];
    c->got_cap = 1u << 24;
    c->got_len = 0;
    c->got = malloc(c->got_cap);
    assert_non_null(c->got);
}

static void chan_close(struct pipe_end *c)
{
    close(c->prod);
    close(c->cons);
    free(c->got);
}

/* Reads whatever the socket holds (the host side emptying the port). */
static void chan_drain(struct pipe_end *c)
{
    for (;;) {
        ssize_t n = recv(c->cons, c->got + c->got_len, c->got_cap - c->got_len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        c->got_len += (size_t)n;
    }
}

/* A session the core's ingest path works on, with no backend (as tests/fuzz/fuzz_ring.c). */
static ivmon *bare_session(void)
{
    ivmon *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->budget = IVMON_BUDGET_DEFAULT;
    m->event.source = "stream:";
    return m;
}

static uint64_t stat_of(const ivmon *m, unsigned s)
{
    uint64_t v = 0;
    assert_int_equal(ivmon_get_stat(m, s, &v), 0);
    return v;
}

/* Cuts everything read at the records' own lengths and ingests each record; every record must
 * be accepted. Returns the number of records. */
static uint64_t ingest_all(ivmon *m, const struct pipe_end *c)
{
    size_t off = 0;
    uint64_t n = 0;
    while (off < c->got_len) {
        struct ivmon_rec_hdr h;
        assert_true(c->got_len - off >= sizeof h);
        memcpy(&h, c->got + off, sizeof h);
        assert_true(h.len >= sizeof h && h.len <= IVMON_REC_MAX && h.len <= c->got_len - off);
        memcpy(m->recbuf, c->got + off, h.len);
        assert_int_equal(ivmon__ingest(m, m->recbuf, h.len), 1);
        off += h.len;
        n++;
    }
    return n;
}

static int emit_file(uint64_t i, size_t path_len, int more)
{
    char path[IVMON_PATH_MAX];
    memset(path, 'p', sizeof path);
    path[0] = '/';
    path[1] = (char)('a' + i % 26);
    rec_file_n(&rb, 0, IVMON_OP_OPEN, 0, "cat", 3, "", 0, path, path_len, "", 0);
    return more ? ivmon_stream_emit_more(&sp, &rb.hdr) : ivmon_stream_emit(&sp, &rb.hdr);
}

static void emit_hello(void)
{
    rec_hello(&rb, 0);
    assert_int_equal(ivmon_stream_emit(&sp, &rb.hdr), 0);
}

/* A fresh port and producer (lossless or drop mode) that has sent its HELLO. */
static void start(struct pipe_end *c, int lossless)
{
    chan_open(c);
    ivmon_stream_init(&sp, c->prod, lossless);
    emit_hello();
}

/* Lossless: emits record i, reading the port whenever the producer has to wait. */
static void emit_waiting(struct pipe_end *c, uint64_t i, size_t path_len, int more)
{
    int r;
    while ((r = emit_file(i, path_len, more)) == -EAGAIN) {
        chan_drain(c);
        assert_int_equal(ivmon_stream_wait(&sp, 1000), 0);
    }
    assert_int_equal(r, 0);
}

/* Reads the port until the producer's queue is written out and read, then ingests everything
 * into a new bare session (the caller frees it). */
static ivmon *finish(struct pipe_end *c, uint64_t want_records)
{
    while (ivmon_stream_queued(&sp)) {
        chan_drain(c);
        assert_int_equal(ivmon_stream_wait(&sp, 1000), 0);
    }
    chan_drain(c);
    ivmon *m = bare_session();
    assert_int_equal(ingest_all(m, c), want_records);
    return m;
}

/* Lossless, one record per emit and in batches: everything arrives in order, framed, and a
 * direct emit costs exactly one write(). */
static void test_lossless_round_trip(void **state)
{
    struct pipe_end c;
    start(&c, 1);
    assert_int_equal(sp.writes, 1);
    for (uint64_t i = 1; i <= 2000; i++) {
        emit_waiting(&c, i, 20, i > 1000);
        if (i % 7 == 0)
            chan_drain(&c);
        if (i == 1000)
            assert_int_equal(ivmon_stream_publish(&sp), 0);
    }
    ivmon *m = finish(&c, 2001);
    assert_int_equal(stat_of(m, IVMON_STAT_DELIVERED), 2001);
    assert_int_equal(stat_of(m, IVMON_STAT_LAST_SEQ), 2001);
    assert_int_equal(stat_of(m, IVMON_STAT_MISSED) + stat_of(m, IVMON_STAT_LOST), 0);
    assert_int_equal(sp.dropped_total, 0);
    /* Batched records (the second thousand, 64 bytes each) went out in writes of ~4 KiB. */
    assert_true(sp.writes < 1001 + 1000 / 32);
    free(m);
    chan_close(&c);
}

/* Drop mode with nobody reading: the queue fills and records are dropped and counted; once the
 * reader empties the port, a LOST record names exactly them and the accounting is exact. */
static void test_drop_and_report(void **state)
{
    struct pipe_end c;
    start(&c, 0);
    uint64_t dropped = 0, i;
    for (i = 1; i <= 3000; i++) {
        int r = emit_file(i, 200, 0);
        assert_true(r == 0 || r == -ENOBUFS);
        dropped += r == -ENOBUFS;
    }
    assert_true(dropped > 0);
    assert_int_equal(sp.dropped_total, dropped);
    assert_true(ivmon_stream_queued(&sp) > IVMON_STREAM_QUEUE - 300);
    /* The host reads again: the queue goes out, then the loss report, then the next record. */
    for (int k = 0; k < 100 && ivmon_stream_queued(&sp); k++) {
        chan_drain(&c);
        assert_int_equal(ivmon_stream_publish(&sp), 0);
    }
    assert_int_equal(emit_file(i, 200, 0), 0);
    chan_drain(&c);
    assert_int_equal(ivmon_stream_queued(&sp), 0);
    ivmon *m = bare_session();
    uint64_t n = ingest_all(m, &c);
    uint64_t produced = sp.next_seq - 1;
    assert_int_equal(n + dropped, produced);
    assert_int_equal(stat_of(m, IVMON_STAT_LOST), dropped);
    assert_int_equal(stat_of(m, IVMON_STAT_MISSED), 0);
    assert_int_equal(stat_of(m, IVMON_STAT_MALFORMED), 0);
    assert_int_equal(stat_of(m, IVMON_STAT_SEQ_SPAN), produced);
    assert_int_equal(stat_of(m, IVMON_STAT_DELIVERED) + stat_of(m, IVMON_STAT_LOST), produced);
    free(m);
    chan_close(&c);
}

/* Lossless mode with nobody reading: a full queue refuses (nothing taken, no number used), the
 * wait times out, and after the reader makes room the record goes through. */
static void test_lossless_refuses_then_waits(void **state)
{
    struct pipe_end c;
    start(&c, 1);
    int r;
    uint64_t i = 0;
    while ((r = emit_file(++i, 1000, 0)) == 0)
        ;
    assert_int_equal(r, -EAGAIN);
    uint64_t next = sp.next_seq;
    assert_int_equal(emit_file(i, 1000, 0), -EAGAIN);
    assert_int_equal(sp.next_seq, next);
    assert_int_equal(ivmon_stream_wait(&sp, 30), -ETIMEDOUT);
    chan_drain(&c);
    assert_int_equal(ivmon_stream_wait(&sp, 1000), 0);
    assert_int_equal(emit_file(i, 1000, 0), 0);
    assert_int_equal(sp.next_seq, next + 1);
    ivmon *m = finish(&c, next);
    assert_int_equal(stat_of(m, IVMON_STAT_LOST) + stat_of(m, IVMON_STAT_MISSED), 0);
    free(m);
    chan_close(&c);
}

/* Records far larger than the socket buffer: writes come back short, and the rest of a record
 * must go out before anything else, with no record torn or repeated. */
static void test_short_writes(void **state)
{
    struct pipe_end c;
    start(&c, 1);
    uint64_t seed = 42;
    for (uint64_t i = 1; i <= 300; i++) {
        emit_waiting(&c, i, 1 + unit_rand(&seed) % (IVMON_PATH_MAX - 1), i % 3 == 0);
        chan_drain(&c);
    }
    ivmon *m = finish(&c, 301);
    assert_int_equal(stat_of(m, IVMON_STAT_LAST_SEQ), 301);
    free(m);
    chan_close(&c);
}

static void uri_ok(const char *s, const char *path, int lossless)
{
    struct ivmon_guest_uri u;
    const char *why = NULL;
    int r = ivmon_guest_uri_parse(s, &u, &why);
    if (r != 0)
        fail_msg("%s: %d %s", s, r, or_null(why));
    assert_int_equal(u.kind, IVMON_GUEST_URI_VIRTIO_SERIAL);
    assert_string_equal(u.path, path);
    assert_int_equal(u.lossless, lossless);
}

static void uri_bad(const char *s)
{
    struct ivmon_guest_uri u;
    const char *why = NULL;
    if (ivmon_guest_uri_parse(s, &u, &why) != -EINVAL || !why)
        fail_msg("%s was accepted", s);
}

static void test_uri(void **state)
{
    uri_ok("virtio-serial:org.ivmon.0", "org.ivmon.0", 0);
    uri_ok("virtio-serial:/dev/vport0p1?lossless=1", "/dev/vport0p1", 1);
    uri_ok("virtio-serial:/dev/virtio-ports/x?lossless=0", "/dev/virtio-ports/x", 0);
    uri_bad("virtio-serial:");
    uri_bad("virtio-serial:a/b");
    uri_bad("virtio-serial:..");
    uri_bad("virtio-serial:x?size=1M");
    uri_bad("virtio-serial:x?wait=1");
    uri_bad("virtio-serial:x?lossless=2");
    uri_bad("virtio-serial:x?bogus=1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossless_round_trip),
        cmocka_unit_test(test_drop_and_report),
        cmocka_unit_test(test_lossless_refuses_then_waits),
        cmocka_unit_test(test_short_writes),
        cmocka_unit_test(test_uri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
