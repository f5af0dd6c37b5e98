/* SPDX-License-Identifier: MIT */
/* The public API: ivmon_open's errors, names and strings, handlers, and event copies. Built twice:
 * against the static core and against libivmon.so (test_api_shared), so it uses nothing but the
 * public header plus the ring code to play the producer. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ivmon/ivmon.h"
#include "unit_records.h"
#include "unit_shm.h"

static char ring_path[128], ring_uri[160];
static struct rec_buf rb;

static int setup(void **state)
{
    unit_ring_name(ring_path, sizeof ring_path, ring_uri, sizeof ring_uri, "api");
    unit_ring_remove(ring_path);
    return 0;
}

static int teardown(void **state)
{
    unit_ring_remove(ring_path);
    return 0;
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* ivmon_open must fail with err, leave *ret alone and explain with a text containing `reason`. */
#define OPEN_FAILS(uri, err, reason)                                                               \
    do {                                                                                           \
        ivmon *m_ = (ivmon *)&rb; /* a sentinel that must survive */                               \
        int r_ = ivmon_open(&m_, (uri), 0);                                                        \
        if (r_ != (err))                                                                           \
            fail_msg("ivmon_open(\"%s\") returned %d (%s), expected %d", or_null(uri), r_,         \
                     ivmon_open_error(), (err));                                                   \
        assert_ptr_equal(m_, (ivmon *)&rb);                                                        \
        if (!strstr(ivmon_open_error(), (reason)))                                                 \
            fail_msg("ivmon_open(\"%s\") explained \"%s\", expected \"%s\"", or_null(uri),         \
                     ivmon_open_error(), (reason));                                                \
    } while (0)

static void test_open_argument_errors(void **state)
{
    ivmon *m = (ivmon *)&rb;
    assert_int_equal(ivmon_open(NULL, ring_uri, 0), -EINVAL);
    assert_int_equal(ivmon_open(&m, ring_uri, 1), -EINVAL);
    assert_int_equal(ivmon_open(&m, ring_uri, 0x80000000u), -EINVAL);
    assert_ptr_equal(m, (ivmon *)&rb);
    assert_false(file_exists(ring_path)); /* rejected before anything was created */

    OPEN_FAILS(NULL, -EINVAL, "empty URI");
    OPEN_FAILS("", -EINVAL, "empty URI");
    OPEN_FAILS("demo", -EINVAL, "no scheme");
    OPEN_FAILS("SHM:demo", -EINVAL, "scheme must be");
    OPEN_FAILS("foo:x", -EINVAL, "unknown URI scheme foo:");
    OPEN_FAILS("shmx:x", -EINVAL, "unknown URI scheme");
#ifdef IVMON_HAVE_BACKEND_XEN
    /* Built in: outside a Xen dom0 the hypervisor is not there to be reached. */
    OPEN_FAILS("xen+shm:x", -ENODEV, "xen+shm: cannot reach");
#else
    OPEN_FAILS("xen+shm:x", -EPROTONOSUPPORT, "xen+shm");
    OPEN_FAILS("xen+shm:x", -EPROTONOSUPPORT, "not built");
#endif
    OPEN_FAILS("shm:x?a=1&a=2", -EINVAL, "given twice");
}

static void test_open_shm_errors(void **state)
{
    char uri[512];

    snprintf(uri, sizeof uri, "%s?create=0", ring_uri);
    OPEN_FAILS(uri, -ENODEV, "no ring at");
    assert_false(file_exists(ring_path));

    /* bad sizes are refused before the file is created */
    static const char *const sizes[] = {"1000", "3M", "2G", "32K", "x", "", "64K1", "-64K"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(uri, sizeof uri, "%s?size=%s", ring_uri, sizes[i]);
        OPEN_FAILS(uri, -EINVAL, "size=");
        assert_false(file_exists(ring_path));
    }
    static const char *const budgets[] = {"0", "65537", "x", "1K1"};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        snprintf(uri, sizeof uri, "%s?budget=%s", ring_uri, budgets[i]);
        OPEN_FAILS(uri, -EINVAL, "budget=");
        assert_false(file_exists(ring_path));
    }
    snprintf(uri, sizeof uri, "%s?lossless=maybe", ring_uri);
    OPEN_FAILS(uri, -EINVAL, "lossless=");
    snprintf(uri, sizeof uri, "%s?create=2", ring_uri);
    OPEN_FAILS(uri, -EINVAL, "create=");
    OPEN_FAILS("shm:", -EINVAL, "target");
    OPEN_FAILS("shm:a/b", -EINVAL, "target");
    OPEN_FAILS("shm:..", -EINVAL, "target");

    /* an option nobody knows: named in the explanation, and refused before anything is
     * created (a typo must have no side effects) */
    snprintf(uri, sizeof uri, "%s?size=64K&bogus=1", ring_uri);
    OPEN_FAILS(uri, -EINVAL, "bogus");
    assert_false(file_exists(ring_path));
    unit_ring_remove(ring_path);

    /* limits that are fine */
    ivmon *m = NULL;
    snprintf(uri, sizeof uri, "%s?size=64K&budget=65536&lossless=no&create=yes", ring_uri);
    assert_int_equal(ivmon_open(&m, uri, 0), 0);
    assert_non_null(m);
    assert_string_equal(ivmon_open_error(), "");
    ivmon_close(m);
}

static void write_file(const char *path, const void *data, size_t len, size_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
    close(fd);
}

static void test_open_garbage_file(void **state)
{
    char head[16];
    struct ivmon_ring_hdr h = {0};

    /* a non-zero magic that is not ours: refused, and the file is left alone */
    write_file(ring_path, "GARBAGE!", 8, IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA);
    OPEN_FAILS(ring_uri, -EPROTO, "bad ring magic");
    int fd = open(ring_path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, head, 8, 0), 8);
    close(fd);
    assert_memory_equal(head, "GARBAGE!", 8);

    /* our magic, another major version */
    h.magic = IVMON_RING_MAGIC;
    h.proto_major = IVMON_PROTO_MAJOR + 1;
    h.hdr_size = h.data_offset = IVMON_RING_HDR_SIZE;
    h.data_size = IVMON_RING_MIN_DATA;
    write_file(ring_path, &h, sizeof h, IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA);
    OPEN_FAILS(ring_uri, -EPROTO, "version");

    /* a file of a size no ring has */
    write_file(ring_path, "GARBAGE!", 8, 100);
    OPEN_FAILS(ring_uri, -EPROTO, "not a ring size");
    unit_ring_remove(ring_path);
}

static void test_second_consumer_busy(void **state)
{
    ivmon *a = NULL, *b = NULL;
    char sock[300];
    snprintf(sock, sizeof sock, "%s.sock", ring_path);
    assert_int_equal(ivmon_open(&a, ring_uri, 0), 0);
    assert_true(file_exists(sock));
    OPEN_FAILS(ring_uri, -EBUSY, "another consumer");
    /* the failed open did not take the first consumer's doorbell away */
    assert_true(file_exists(sock));
    assert_int_equal(ivmon_process(a, 0), 0);
    ivmon_close(a);
    assert_false(file_exists(sock));
    /* once the first consumer is gone, the next one may attach */
    assert_int_equal(ivmon_open(&b, ring_uri, 0), 0);
    ivmon_close(b);
}

static void test_close_null(void **state)
{
    ivmon_close(NULL);
    ivmon_event_free(NULL);
}

static void test_strerror(void **state)
{
    assert_string_equal(ivmon_strerror(-EPROTO), "the peer broke the protocol");
    assert_string_equal(ivmon_strerror(-EBADMSG), "malformed record");
    assert_string_equal(ivmon_strerror(-EPROTONOSUPPORT), "transport not built into this libivmon");
    assert_string_equal(ivmon_strerror(-ENODEV), "no such target");
    assert_string_equal(ivmon_strerror(-ENOBUFS), "no room in the ring");
    assert_string_equal(ivmon_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(ivmon_strerror(-4095), "unknown error");
    assert_string_equal(ivmon_strerror(-100000), "unknown error");
    assert_string_equal(ivmon_strerror(INT_MIN), "unknown error");
    assert_string_equal(ivmon_strerror(5), "unknown error");
    assert_non_null(ivmon_strerror(0));
    assert_non_null(ivmon_strerror(INT_MAX));
}

static void test_stat_names(void **state)
{
    static const char *const names[] = {
        "records",        "bytes",           "delivered",        "lost",         "malformed",
        "missed",         "wakeups",         "source_overflows", "restarts",     "first_seq",
        "last_seq",       "seq_span",        "reattaches",       "fragments",    "frag_rejected",
        "frag_unmatched", "frag_duplicates", "frag_damaged",     "frag_expired", "overruns"};
    assert_int_equal(sizeof names / sizeof names[0], IVMON_STAT_MAX + 1);
    for (unsigned i = 0; i <= IVMON_STAT_MAX; i++) {
        assert_non_null(ivmon_stat_name(i));
        assert_string_equal(ivmon_stat_name(i), names[i]);
    }
    assert_null(ivmon_stat_name(IVMON_STAT_MAX + 1));
    assert_null(ivmon_stat_name(UINT_MAX));
}

static void test_op_names(void **state)
{
    static const char *const names[] = {NULL,     "open",   "modify", "close_write", "create",
                                        "delete", "rename", "attrib", "exec"};
    for (unsigned op = 1; op <= 8; op++) {
        assert_string_equal(ivmon_op_name(op), names[op]);
        assert_int_equal(ivmon_op_from_name(names[op]), op);
        assert_int_equal(ivmon_op_from_name(ivmon_op_name(op)), op);
    }
    assert_int_equal(IVMON_OP_CLOSE_WRITE, 3);
    assert_int_equal(ivmon_op_from_name("exec"), IVMON_OP_EXEC);
    assert_null(ivmon_op_name(0));
    assert_null(ivmon_op_name(9));
    assert_null(ivmon_op_name(UINT_MAX));
    static const char *const bad[] = {"", "OPEN", "open ", "opens", "exe", "close-write", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ivmon_op_from_name(bad[i]), -EINVAL);
    assert_int_equal(ivmon_op_from_name(NULL), -EINVAL);
}

static void test_session_basics(void **state)
{
    ivmon *m = NULL;
    char uri[512];
    uint64_t v;
    snprintf(uri, sizeof uri, "%s?size=64K", ring_uri);
    assert_int_equal(ivmon_open(&m, uri, 0), 0);
    assert_string_equal(ivmon_get_uri(m), uri);
    assert_int_equal(ivmon_get_events(m), POLLIN);
    int fd = ivmon_get_fd(m);
    assert_true(fd >= 0);
    assert_int_equal(ivmon_get_timeout(m), 0); /* look at what is already there at once */
    assert_string_equal(ivmon_get_error(m), "");
    assert_int_equal(ivmon_process(m, 1), -EINVAL);
    assert_int_equal(ivmon_process(m, 0), 0);
    int t = ivmon_get_timeout(m);
    assert_true(t > 0);
    assert_int_equal(ivmon_get_fd(m), fd);
    for (unsigned s = 0; s <= IVMON_STAT_MAX; s++) {
        v = 99;
        assert_int_equal(ivmon_get_stat(m, s, &v), 0);
        assert_int_equal(v, 0);
    }
    v = 99;
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_MAX + 1, &v), -EINVAL);
    assert_int_equal(v, 99);

    for (unsigned type = 0; type <= IVMON_EVENT_MAX; type++) {
        assert_int_equal(ivmon_set_handler(m, type, NULL, NULL), 0);
    }
    assert_int_equal(ivmon_set_handler(m, IVMON_EVENT_MAX + 1, NULL, NULL), -EINVAL);
    assert_int_equal(ivmon_set_handler(m, UINT_MAX, NULL, NULL), -EINVAL);
    ivmon_close(m);

    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", IVMON_VERSION_MAJOR, IVMON_VERSION_MINOR,
             IVMON_VERSION_PATCH);
    assert_string_equal(ivmon_version(), want);
    assert_string_equal(ivmon_version(), IVMON_VERSION_STRING);
}

/* ---- handlers and event copies --------------------------------------------------------------- */

struct seen {
    unsigned calls;
    unsigned types[16];
    uint64_t seqs[16];
    ivmon_event *copies[16];
    int ret; /* what the handler returns */
};

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct seen *s = userdata;
    if (s->calls < 16) {
        s->types[s->calls] = ivmon_event_type(ev);
        s->seqs[s->calls] = ivmon_event_seq(ev);
        if (ivmon_event_copy(ev, &s->copies[s->calls]) < 0)
            s->copies[s->calls] = NULL;
    }
    s->calls++;
    return s->ret;
}

static void free_copies(struct seen *s)
{
    for (unsigned i = 0; i < 16; i++)
        ivmon_event_free(s->copies[i]);
    memset(s, 0, sizeof *s);
}

static void test_handler_dispatch(void **state)
{
    ivmon *m = NULL;
    struct test_producer tp;
    struct seen any = {0}, file = {0};
    uint64_t v;
    assert_int_equal(ivmon_open(&m, ring_uri, 0), 0);
    assert_int_equal(tp_attach(&tp, ring_path, 0), 0);

    /* no handler at all: records are still taken and counted */
    rec_hello(&rb, 0);
    assert_int_equal(tp_emit(&tp, &rb.hdr), 0); /* 1 */
    assert_int_equal(ivmon_process(m, 0), 1);
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_DELIVERED, &v), 0);
    assert_int_equal(v, 1);

    assert_int_equal(ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &any), 0);
    assert_int_equal(ivmon_set_handler(m, IVMON_EVENT_FILE, on_event, &file), 0);
    rec_file(&rb, 0, IVMON_OP_RENAME, "/home/u/a.txt", "/home/u/b.txt");
    assert_true(tp_emit(&tp, &rb.hdr) >= 0); /* 2 */
    rec_heartbeat(&rb, 0, 3, 0);
    assert_true(tp_emit(&tp, &rb.hdr) >= 0); /* 3 */
    rec_lost(&rb, 0, IVMON_LOST_SOURCE_OVERFLOW, 0, 0, 0);
    assert_true(tp_emit(&tp, &rb.hdr) >= 0); /* 4 */
    rec_file(&rb, 0, IVMON_OP_EXEC, "/usr/bin/id", NULL);
    assert_true(tp_emit(&tp, &rb.hdr) >= 0); /* 5 */
    assert_int_equal(ivmon_process(m, 0), 4);

    /* the type's own handler wins; ANY gets the rest */
    assert_int_equal(file.calls, 2);
    assert_int_equal(file.seqs[0], 2);
    assert_int_equal(file.seqs[1], 5);
    assert_int_equal(any.calls, 2);
    assert_int_equal(any.types[0], IVMON_EVENT_HEARTBEAT);
    assert_int_equal(any.seqs[0], 3);
    assert_int_equal(any.types[1], IVMON_EVENT_LOST);
    assert_int_equal(any.seqs[1], 4);

    /* cleared: files fall back to ANY */
    assert_int_equal(ivmon_set_handler(m, IVMON_EVENT_FILE, NULL, NULL), 0);
    rec_file(&rb, 0, IVMON_OP_OPEN, "/x", NULL);
    assert_true(tp_emit(&tp, &rb.hdr) >= 0); /* 6 */
    assert_int_equal(ivmon_process(m, 0), 1);
    assert_int_equal(file.calls, 2);
    assert_int_equal(any.calls, 3);
    assert_int_equal(any.types[2], IVMON_EVENT_FILE);
    assert_int_equal(any.seqs[2], 6);

    /* a handler's error stops ivmon_process and comes back from it; the session goes on with
     * the next record */
    for (int i = 0; i < 3; i++) {
        rec_file(&rb, 0, IVMON_OP_MODIFY, "/y", NULL);
        assert_true(tp_emit(&tp, &rb.hdr) >= 0); /* 7, 8, 9 */
    }
    any.ret = -ECANCELED;
    assert_int_equal(ivmon_process(m, 0), -ECANCELED);
    assert_int_equal(any.calls, 4);
    assert_int_equal(any.seqs[3], 7);
    any.ret = 0;
    assert_int_equal(ivmon_process(m, 0), 2);
    assert_int_equal(any.calls, 6);
    assert_int_equal(any.seqs[4], 8);
    assert_int_equal(any.seqs[5], 9);
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_DELIVERED, &v), 0);
    assert_int_equal(v, 9);

    /* copies outlive the session, the ring and its file */
    ivmon_close(m);
    tp_close(&tp);
    unit_ring_remove(ring_path);
    const ivmon_event *c = file.copies[0];
    assert_non_null(c);
    assert_int_equal(ivmon_event_type(c), IVMON_EVENT_FILE);
    assert_int_equal(ivmon_event_seq(c), 2);
    assert_int_equal(ivmon_event_time_ns(c), REC_TIME(0));
    assert_int_equal(ivmon_event_op(c), IVMON_OP_RENAME);
    assert_string_equal(ivmon_event_path(c), "/home/u/a.txt");
    assert_string_equal(ivmon_event_new_path(c), "/home/u/b.txt");
    assert_string_equal(ivmon_event_comm(c), "cat");
    assert_string_equal(ivmon_event_exe(c), "/usr/bin/cat");
    assert_int_equal(ivmon_event_pid(c), 4242);
    assert_int_equal(ivmon_event_uid(c), 1000);
    assert_string_equal(ivmon_event_source(c), ring_uri);
    /* a copy of a copy */
    ivmon_event *cc = NULL;
    assert_int_equal(ivmon_event_copy(c, &cc), 0);
    ivmon_event_free(file.copies[0]);
    file.copies[0] = NULL;
    assert_string_equal(ivmon_event_new_path(cc), "/home/u/b.txt");
    assert_string_equal(ivmon_event_source(cc), ring_uri);
    ivmon_event_free(cc);
    c = file.copies[1];
    assert_string_equal(ivmon_event_path(c), "/usr/bin/id");
    assert_string_equal(ivmon_event_new_path(c), "");
    c = any.copies[1];
    assert_int_equal(ivmon_event_lost_reason(c), IVMON_LOST_SOURCE_OVERFLOW);
    assert_string_equal(ivmon_event_path(c), "");
    free_copies(&any);
    free_copies(&file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_argument_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_shm_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_consumer_busy, setup, teardown),
        cmocka_unit_test(test_close_null),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_stat_names),
        cmocka_unit_test(test_op_names),
        cmocka_unit_test_setup_teardown(test_session_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_dispatch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
