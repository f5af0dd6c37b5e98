/* SPDX-License-Identifier: MIT */
/* ivmon__decode: every record type decoded field by field, strings at their bounds, and every
 * way a record can be malformed rejected with -EBADMSG for the right reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "unit_records.h"

static struct rec_buf rb;
static struct ivmon_event ev;

/* Decodes the first len bytes of rb and expects -EBADMSG with a reason containing `reason`. */
#define REJECT(len, reason)                                                                        \
    do {                                                                                           \
        const char *why_ = NULL;                                                                   \
        assert_int_equal(ivmon__decode(rb.bytes, (len), &ev, &why_), -EBADMSG);                    \
        assert_non_null(why_);                                                                     \
        if (!strstr(why_, (reason)))                                                               \
            fail_msg("rejected because \"%s\", expected \"%s\"", why_, (reason));                  \
    } while (0)

#define ACCEPT(len)                                                                                \
    do {                                                                                           \
        const char *why_ = NULL;                                                                   \
        int r_ = ivmon__decode(rb.bytes, (len), &ev, &why_);                                       \
        if (r_ != 0)                                                                               \
            fail_msg("decode returned %d: %s", r_, why_ ? why_ : "(no reason)");                   \
    } while (0)

/* Bytes 1..255 repeated: every non-NUL byte value, including ones that are not UTF-8. */
static void fill_pattern(uint8_t *dst, size_t n, unsigned start)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint8_t)(1 + (start + i) % 255);
}

static void assert_no_file_fields(void)
{
    assert_int_equal(ivmon_event_op(&ev), 0);
    assert_int_equal(ivmon_event_file_flags(&ev), 0);
    assert_int_equal(ivmon_event_pid(&ev), 0);
    assert_int_equal(ivmon_event_tid(&ev), 0);
    assert_int_equal(ivmon_event_ppid(&ev), 0);
    assert_int_equal(ivmon_event_uid(&ev), 0);
    assert_int_equal(ivmon_event_gid(&ev), 0);
    assert_string_equal(ivmon_event_comm(&ev), "");
    assert_string_equal(ivmon_event_exe(&ev), "");
    assert_string_equal(ivmon_event_path(&ev), "");
    assert_string_equal(ivmon_event_new_path(&ev), "");
}

static void assert_no_hello_fields(void)
{
    uint8_t id[16], zero[16] = {0};
    assert_string_equal(ivmon_event_hostname(&ev), "");
    assert_string_equal(ivmon_event_agent(&ev), "");
    assert_int_equal(ivmon_event_agent_pid(&ev), 0);
    assert_int_equal(ivmon_event_caps(&ev), 0);
    assert_int_equal(ivmon_event_proto_version(&ev), 0);
    ivmon_event_boot_id(&ev, id);
    assert_memory_equal(id, zero, 16);
    ivmon_event_instance_id(&ev, id);
    assert_memory_equal(id, zero, 16);
}

static void assert_no_lost_fields(void)
{
    assert_int_equal(ivmon_event_lost_reason(&ev), 0);
    assert_int_equal(ivmon_event_lost_count(&ev), 0);
    assert_int_equal(ivmon_event_lost_first(&ev), 0);
    assert_int_equal(ivmon_event_lost_last(&ev), 0);
}

static void assert_no_heartbeat_fields(void)
{
    assert_int_equal(ivmon_event_produced(&ev), 0);
    assert_int_equal(ivmon_event_dropped(&ev), 0);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_hello_round_trip(void **state)
{
    uint8_t id[16], want[16];
    ev.source = "shm:test";
    size_t len = rec_hello(&rb, 1);
    ACCEPT(len);
    assert_int_equal(ivmon_event_type(&ev), IVMON_EVENT_HELLO);
    assert_int_equal(ivmon_event_seq(&ev), 1);
    assert_int_equal(ivmon_event_time_ns(&ev), REC_TIME(1));
    assert_string_equal(ivmon_event_source(&ev), "shm:test"); /* decode leaves source alone */
    assert_string_equal(ivmon_event_hostname(&ev), "guest1");
    assert_string_equal(ivmon_event_agent(&ev), "ivmon-agent 0.1.0 linux");
    assert_int_equal(ivmon_event_agent_pid(&ev), 777);
    assert_int_equal(ivmon_event_caps(&ev), IVMON_CAP_RENAME_PAIR | IVMON_CAP_EXEC);
    assert_int_equal(ivmon_event_proto_version(&ev), IVMON_PROTO_MAJOR << 16 | IVMON_PROTO_MINOR);
    ivmon_event_boot_id(&ev, id);
    rec_id(want, 0x10);
    assert_memory_equal(id, want, 16);
    ivmon_event_instance_id(&ev, id);
    rec_id(want, 0xa0);
    assert_memory_equal(id, want, 16);
    assert_no_file_fields();
    assert_no_lost_fields();
    assert_no_heartbeat_fields();
    ev.source = NULL;
}

static void test_hello_empty_strings(void **state)
{
    ACCEPT(rec_hello_n(&rb, 3, "", 0, "", 0));
    assert_int_equal(ivmon_event_seq(&ev), 3);
    assert_string_equal(ivmon_event_hostname(&ev), "");
    assert_string_equal(ivmon_event_agent(&ev), "");
}

static void test_hello_strings_at_bound(void **state)
{
    uint8_t host[IVMON_HOSTNAME_MAX], agent[IVMON_AGENT_MAX];
    fill_pattern(host, sizeof host, 0);
    fill_pattern(agent, sizeof agent, 100);
    ACCEPT(rec_hello_n(&rb, 9, host, sizeof host, agent, sizeof agent));
    assert_int_equal(strlen(ivmon_event_hostname(&ev)), IVMON_HOSTNAME_MAX);
    assert_memory_equal(ivmon_event_hostname(&ev), host, sizeof host);
    assert_int_equal(strlen(ivmon_event_agent(&ev)), IVMON_AGENT_MAX);
    assert_memory_equal(ivmon_event_agent(&ev), agent, sizeof agent);
}

static void test_file_every_op(void **state)
{
    for (uint32_t op = 1; op <= IVMON_OP_MAX; op++) {
        int rename = op == IVMON_OP_RENAME;
        size_t len = rec_file(&rb, 100 + op, op, "/etc/passwd", rename ? "/etc/passwd-" : NULL);
        ACCEPT(len);
        assert_int_equal(ivmon_event_type(&ev), IVMON_EVENT_FILE);
        assert_int_equal(ivmon_event_seq(&ev), 100 + op);
        assert_int_equal(ivmon_event_time_ns(&ev), REC_TIME(100 + op));
        assert_int_equal(ivmon_event_op(&ev), op);
        assert_int_equal(ivmon_event_file_flags(&ev), 0);
        assert_int_equal(ivmon_event_pid(&ev), 4242);
        assert_int_equal(ivmon_event_tid(&ev), 4243);
        assert_int_equal(ivmon_event_ppid(&ev), 1);
        assert_int_equal(ivmon_event_uid(&ev), 1000);
        assert_int_equal(ivmon_event_gid(&ev), 100);
        assert_string_equal(ivmon_event_comm(&ev), "cat");
        assert_string_equal(ivmon_event_exe(&ev), "/usr/bin/cat");
        assert_string_equal(ivmon_event_path(&ev), "/etc/passwd");
        assert_string_equal(ivmon_event_new_path(&ev), rename ? "/etc/passwd-" : "");
        assert_no_hello_fields();
        assert_no_lost_fields();
        assert_no_heartbeat_fields();
    }
}

static void test_file_flags_and_ids(void **state)
{
    for (uint32_t flags = 0; flags <= IVMON_FILE_FLAGS_ALL; flags++) {
        size_t len = rec_file_n(&rb, 7, IVMON_OP_CREATE, flags, "", 0, "", 0, "/tmp/x", 6, "", 0);
        struct ivmon_rec_file *f = rec_file_body(&rb);
        f->pid = 0xfffffffe;
        f->tid = 0x7fffffff;
        f->ppid = 0x80000000;
        f->uid = 0xffffffff;
        f->gid = 12345;
        ACCEPT(len);
        assert_int_equal(ivmon_event_file_flags(&ev), flags);
        assert_int_equal(ivmon_event_pid(&ev), 0xfffffffe);
        assert_int_equal(ivmon_event_tid(&ev), 0x7fffffff);
        assert_int_equal(ivmon_event_ppid(&ev), 0x80000000);
        assert_int_equal(ivmon_event_uid(&ev), 0xffffffff);
        assert_int_equal(ivmon_event_gid(&ev), 12345);
        /* empty comm and exe (the process was gone) are allowed */
        assert_string_equal(ivmon_event_comm(&ev), "");
        assert_string_equal(ivmon_event_exe(&ev), "");
        assert_string_equal(ivmon_event_path(&ev), "/tmp/x");
    }
}

static void test_file_strings_at_bound(void **state)
{
    static uint8_t comm[IVMON_COMM_MAX], exe[IVMON_PATH_MAX], path[IVMON_PATH_MAX],
        new_path[IVMON_PATH_MAX];
    fill_pattern(comm, sizeof comm, 0);
    fill_pattern(exe, sizeof exe, 7);
    fill_pattern(path, sizeof path, 50);
    fill_pattern(new_path, sizeof new_path, 200);

    /* the largest file record there can be: every string at its bound */
    size_t len = rec_file_n(&rb, 5, IVMON_OP_RENAME, IVMON_FILE_TRUNCATED, comm, sizeof comm, exe,
                            sizeof exe, path, sizeof path, new_path, sizeof new_path);
    assert_int_equal(len, 24 + 40 + 16 + 3 * 4096);
    ACCEPT(len);
    assert_int_equal(strlen(ivmon_event_comm(&ev)), IVMON_COMM_MAX);
    assert_memory_equal(ivmon_event_comm(&ev), comm, sizeof comm);
    assert_int_equal(strlen(ivmon_event_exe(&ev)), IVMON_PATH_MAX);
    assert_memory_equal(ivmon_event_exe(&ev), exe, sizeof exe);
    assert_int_equal(strlen(ivmon_event_path(&ev)), IVMON_PATH_MAX);
    assert_memory_equal(ivmon_event_path(&ev), path, sizeof path);
    assert_int_equal(strlen(ivmon_event_new_path(&ev)), IVMON_PATH_MAX);
    assert_memory_equal(ivmon_event_new_path(&ev), new_path, sizeof new_path);
    assert_int_equal(ivmon_event_file_flags(&ev), IVMON_FILE_TRUNCATED);

    /* comm 16 and path 4096 alone */
    ACCEPT(
        rec_file_n(&rb, 6, IVMON_OP_OPEN, 0, comm, sizeof comm, "", 0, path, sizeof path, "", 0));
    assert_memory_equal(ivmon_event_comm(&ev), comm, sizeof comm);
    assert_int_equal(strlen(ivmon_event_path(&ev)), IVMON_PATH_MAX);
    assert_string_equal(ivmon_event_new_path(&ev), "");
}

static void test_lost_round_trip(void **state)
{
    ACCEPT(rec_lost(&rb, 15, IVMON_LOST_RING_FULL, 5, 10, 14));
    assert_int_equal(ivmon_event_type(&ev), IVMON_EVENT_LOST);
    assert_int_equal(ivmon_event_seq(&ev), 15);
    assert_int_equal(ivmon_event_time_ns(&ev), REC_TIME(15));
    assert_int_equal(ivmon_event_lost_reason(&ev), IVMON_LOST_RING_FULL);
    assert_int_equal(ivmon_event_lost_count(&ev), 5);
    assert_int_equal(ivmon_event_lost_first(&ev), 10);
    assert_int_equal(ivmon_event_lost_last(&ev), 14);
    assert_no_file_fields();
    assert_no_hello_fields();
    assert_no_heartbeat_fields();

    /* a single record, and the largest range there can be */
    ACCEPT(rec_lost(&rb, 2, IVMON_LOST_RING_FULL, 1, 1, 1));
    assert_int_equal(ivmon_event_lost_count(&ev), 1);
    assert_int_equal(ivmon_event_lost_first(&ev), 1);
    assert_int_equal(ivmon_event_lost_last(&ev), 1);
    ACCEPT(rec_lost(&rb, UINT64_MAX, IVMON_LOST_RING_FULL, UINT64_MAX - 1, 1, UINT64_MAX - 1));
    assert_int_equal(ivmon_event_lost_count(&ev), UINT64_MAX - 1);

    ACCEPT(rec_lost(&rb, 16, IVMON_LOST_SOURCE_OVERFLOW, 0, 0, 0));
    assert_int_equal(ivmon_event_type(&ev), IVMON_EVENT_LOST);
    assert_int_equal(ivmon_event_seq(&ev), 16);
    assert_int_equal(ivmon_event_lost_reason(&ev), IVMON_LOST_SOURCE_OVERFLOW);
    assert_int_equal(ivmon_event_lost_count(&ev), 0);
    assert_int_equal(ivmon_event_lost_first(&ev), 0);
    assert_int_equal(ivmon_event_lost_last(&ev), 0);
}

static void test_heartbeat_round_trip(void **state)
{
    ACCEPT(rec_heartbeat(&rb, 99, 99, 1234567890123ull));
    assert_int_equal(ivmon_event_type(&ev), IVMON_EVENT_HEARTBEAT);
    assert_int_equal(ivmon_event_seq(&ev), 99);
    assert_int_equal(ivmon_event_time_ns(&ev), REC_TIME(99));
    assert_int_equal(ivmon_event_produced(&ev), 99);
    assert_int_equal(ivmon_event_dropped(&ev), 1234567890123ull);
    assert_no_file_fields();
    assert_no_hello_fields();
    assert_no_lost_fields();
}

/* One event struct is reused for every record: nothing of the previous record may survive. */
static void test_event_reuse_clears_fields(void **state)
{
    ACCEPT(rec_file(&rb, 1, IVMON_OP_RENAME, "/a", "/b"));
    assert_string_equal(ivmon_event_new_path(&ev), "/b");
    ACCEPT(rec_heartbeat(&rb, 2, 2, 0));
    assert_no_file_fields();
    ACCEPT(rec_hello(&rb, 3));
    ACCEPT(rec_lost(&rb, 4, IVMON_LOST_RING_FULL, 1, 3, 3));
    assert_no_hello_fields();
    ACCEPT(rec_file(&rb, 5, IVMON_OP_OPEN, "/c", NULL));
    assert_no_lost_fields();
    assert_string_equal(ivmon_event_path(&ev), "/c");
    assert_string_equal(ivmon_event_new_path(&ev), "");
}

/* ---- header ---------------------------------------------------------------------------------- */

static void test_reject_header(void **state)
{
    size_t len = rec_heartbeat(&rb, 1, 1, 0);
    assert_int_equal(len, 40);

    /* length below the header */
    REJECT(0, "record length out of bounds");
    rb.hdr.len = 23;
    REJECT(23, "record length out of bounds");
    rb.hdr.len = 1;
    REJECT(1, "record length out of bounds");

    /* length above IVMON_REC_MAX; REC_MAX itself passes the length check and fails later */
    len = rec_file(&rb, 1, IVMON_OP_OPEN, "/x", NULL);
    rb.hdr.len = IVMON_REC_MAX + 1;
    REJECT(IVMON_REC_MAX + 1, "record length out of bounds");
    rb.hdr.len = IVMON_REC_MAX;
    REJECT(IVMON_REC_MAX, "does not match its string lengths");

    /* header length disagrees with the bytes */
    len = rec_heartbeat(&rb, 1, 1, 0);
    rb.hdr.len = (uint32_t)len + 8;
    REJECT(len, "header length does not match");
    rb.hdr.len = (uint32_t)len - 1;
    REJECT(len, "header length does not match");
    rb.hdr.len = 0;
    REJECT(len, "header length does not match");
    rb.hdr.len = (uint32_t)len;
    ACCEPT(len);

    for (unsigned bit = 0; bit < 16; bit++) {
        rb.hdr.flags = (uint16_t)(1u << bit);
        REJECT(len, "record header has unknown flags");
    }
    rb.hdr.flags = 0;

    rb.hdr.seq = 0;
    REJECT(len, "sequence number 0");
    rb.hdr.seq = UINT64_MAX;
    ACCEPT(len);

    static const uint16_t bad_types[] = {0, 5, 6, 0x100, 0xffff};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        rb.hdr.type = bad_types[i];
        REJECT(len, "unknown record type");
    }
}

/* Lengths whose sum or truncation would wrap in a narrower type must not line up. */
static void test_reject_length_wrap(void **state)
{
    size_t len = rec_heartbeat(&rb, 1, 1, 0);
    /* a size_t length that truncates to the header's 32-bit length; the bytes past len are
     * never there, so a decoder that reads them would be caught by ASan/valgrind */
    if (sizeof(size_t) > 4) {
        REJECT(((size_t)1 << 32) + len, "record length out of bounds");
        REJECT(SIZE_MAX, "record length out of bounds");
    }
    rb.hdr.len = UINT32_MAX;
    REJECT(len, "header length does not match");

    /* file: 1 + 0xffff + 1 + 0xffff wraps to 0 in 16 bits, and the record has no strings */
    len = rec_file_n(&rb, 1, IVMON_OP_RENAME, 0, "", 0, "", 0, "", 0, "", 0);
    struct ivmon_rec_file *f = rec_file_body(&rb);
    f->comm_len = 1;
    f->exe_len = 0xffff;
    f->path_len = 1;
    f->new_path_len = 0xffff;
    REJECT(len, "longer than its bound");
    /* the same with one string byte: 0x10001 wraps to 1 */
    len = rec_file_n(&rb, 1, IVMON_OP_OPEN, 0, "", 0, "", 0, "p", 1, "", 0);
    f->exe_len = 0xffff;
    f->path_len = 2;
    REJECT(len, "longer than its bound");

    /* hello: 0xffff + 1 wraps to 0 in 16 bits */
    len = rec_hello_n(&rb, 1, "", 0, "", 0);
    rec_hello_body(&rb)->hostname_len = 0xffff;
    rec_hello_body(&rb)->agent_len = 1;
    REJECT(len, "hello record string lengths out of bounds");
    rec_hello_body(&rb)->hostname_len = 1;
    rec_hello_body(&rb)->agent_len = 0xffff;
    REJECT(len, "hello record string lengths out of bounds");
}

/* ---- file records ---------------------------------------------------------------------------- */

static void test_reject_file_short(void **state)
{
    for (size_t body = 0; body < sizeof(struct ivmon_rec_file); body++) {
        rec_file(&rb, 1, IVMON_OP_OPEN, "/x", NULL);
        rb.hdr.len = (uint32_t)(sizeof(struct ivmon_rec_hdr) + body);
        REJECT(rb.hdr.len, "file record shorter than its fixed part");
    }
}

static void test_reject_file_op_and_flags(void **state)
{
    static const uint32_t bad_ops[] = {0, IVMON_OP_MAX + 1, 100, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
        size_t len = rec_file(&rb, 1, IVMON_OP_OPEN, "/x", NULL);
        rec_file_body(&rb)->op = bad_ops[i];
        REJECT(len, "file record with unknown operation");
    }
    for (unsigned bit = 3; bit < 32; bit++) {
        size_t len = rec_file(&rb, 1, IVMON_OP_OPEN, "/x", NULL);
        rec_file_body(&rb)->flags = IVMON_FILE_FLAGS_ALL | 1u << bit;
        REJECT(len, "file record with unknown flags");
    }
}

static void test_reject_file_string_over_bound(void **state)
{
    static uint8_t big[IVMON_PATH_MAX + 1];
    fill_pattern(big, sizeof big, 0);

    REJECT(rec_file_n(&rb, 1, IVMON_OP_OPEN, 0, big, IVMON_COMM_MAX + 1, "", 0, "/x", 2, "", 0),
           "longer than its bound");
    REJECT(rec_file_n(&rb, 1, IVMON_OP_OPEN, 0, "", 0, big, IVMON_PATH_MAX + 1, "/x", 2, "", 0),
           "longer than its bound");
    REJECT(rec_file_n(&rb, 1, IVMON_OP_OPEN, 0, "", 0, "", 0, big, IVMON_PATH_MAX + 1, "", 0),
           "longer than its bound");
    REJECT(rec_file_n(&rb, 1, IVMON_OP_RENAME, 0, "", 0, "", 0, "/x", 2, big, IVMON_PATH_MAX + 1),
           "longer than its bound");
}

static void test_reject_file_path_and_rename(void **state)
{
    REJECT(rec_file_n(&rb, 1, IVMON_OP_OPEN, 0, "c", 1, "e", 1, "", 0, "", 0), "without a path");
    REJECT(rec_file_n(&rb, 1, IVMON_OP_RENAME, 0, "c", 1, "e", 1, "", 0, "/n", 2),
           "without a path");
    REJECT(rec_file(&rb, 1, IVMON_OP_RENAME, "/a", NULL), "rename without new_path");
    for (uint32_t op = 1; op <= IVMON_OP_MAX; op++) {
        if (op == IVMON_OP_RENAME)
            continue;
        REJECT(rec_file(&rb, 1, op, "/a", "/b"), "new_path present without rename");
    }
}

static void test_reject_file_length_mismatch(void **state)
{
    size_t len = rec_file(&rb, 1, IVMON_OP_RENAME, "/old", "/new");
    struct ivmon_rec_file *f = rec_file_body(&rb);
    uint16_t *fields[] = {&f->comm_len, &f->exe_len, &f->path_len, &f->new_path_len};

    /* each length one too long and one too short */
    for (size_t i = 0; i < 4; i++) {
        (*fields[i])++;
        REJECT(len, "does not match its string lengths");
        *fields[i] -= 2;
        REJECT(len, "does not match its string lengths");
        (*fields[i])++;
    }
    ACCEPT(len);

    /* the record carries bytes beyond its strings, or fewer than they claim */
    rb.bytes[len] = 'x';
    rb.hdr.len = (uint32_t)len + 1;
    REJECT(len + 1, "does not match its string lengths");
    rb.hdr.len = (uint32_t)len - 1;
    REJECT(len - 1, "does not match its string lengths");
}

static void test_reject_file_nul_inside(void **state)
{
    /* NUL at the start, middle and end of each string */
    static const char comm[] = "comm", exe[] = "/bin/exe", path[] = "/some/path",
                      new_path[] = "/other/path";
    const char *strs[] = {comm, exe, path, new_path};
    size_t offs[4], lens[4] = {4, 8, 10, 11};
    offs[0] = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_file);
    for (size_t i = 1; i < 4; i++)
        offs[i] = offs[i - 1] + lens[i - 1];
    for (size_t i = 0; i < 4; i++) {
        size_t at[3] = {0, lens[i] / 2, lens[i] - 1};
        for (size_t j = 0; j < 3; j++) {
            size_t len = rec_file_n(&rb, 1, IVMON_OP_RENAME, 0, strs[0], lens[0], strs[1], lens[1],
                                    strs[2], lens[2], strs[3], lens[3]);
            ACCEPT(len);
            rb.bytes[offs[i] + at[j]] = '\0';
            REJECT(len, "contains a NUL byte");
        }
    }
}

/* ---- hello ----------------------------------------------------------------------------------- */

static void test_reject_hello(void **state)
{
    size_t len = rec_hello(&rb, 1);
    static const uint16_t majors[] = {0, IVMON_PROTO_MAJOR + 1, 0xffff};
    for (size_t i = 0; i < sizeof majors / sizeof majors[0]; i++) {
        rec_hello(&rb, 1);
        rec_hello_body(&rb)->proto_major = majors[i];
        REJECT(len, "another protocol major version");
    }

    for (size_t body = 0; body < sizeof(struct ivmon_rec_hello); body++) {
        rec_hello(&rb, 1);
        rb.hdr.len = (uint32_t)(sizeof(struct ivmon_rec_hdr) + body);
        REJECT(rb.hdr.len, "hello record shorter than its fixed part");
    }

    static uint8_t big[IVMON_HOSTNAME_MAX + 1];
    fill_pattern(big, sizeof big, 0);
    REJECT(rec_hello_n(&rb, 1, big, IVMON_HOSTNAME_MAX + 1, "a", 1),
           "hello record string lengths out of bounds");
    REJECT(rec_hello_n(&rb, 1, "h", 1, big, IVMON_AGENT_MAX + 1),
           "hello record string lengths out of bounds");

    len = rec_hello(&rb, 1);
    rec_hello_body(&rb)->hostname_len++;
    REJECT(len, "hello record string lengths out of bounds");
    rec_hello_body(&rb)->hostname_len -= 2;
    REJECT(len, "hello record string lengths out of bounds");
    rec_hello(&rb, 1);
    rec_hello_body(&rb)->agent_len++;
    REJECT(len, "hello record string lengths out of bounds");
    rec_hello_body(&rb)->agent_len -= 2;
    REJECT(len, "hello record string lengths out of bounds");
    rec_hello(&rb, 1);
    rb.hdr.len = (uint32_t)len + 1;
    REJECT(len + 1, "hello record string lengths out of bounds");

    /* NUL inside each string, first and last byte */
    size_t host_at = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_hello);
    size_t agent_at = host_at + 6;
    size_t bad[] = {host_at, host_at + 5, agent_at, agent_at + 22};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        len = rec_hello(&rb, 1);
        rb.bytes[bad[i]] = '\0';
        REJECT(len, "hello record string contains a NUL");
    }
}

/* ---- lost ------------------------------------------------------------------------------------ */

static void test_reject_lost(void **state)
{
    size_t len = rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 5, 10, 14);
    ACCEPT(len);

    /* wrong length, in both directions */
    rb.hdr.len = (uint32_t)len - 1;
    REJECT(len - 1, "lost record has the wrong length");
    rb.hdr.len = (uint32_t)len - 8;
    REJECT(len - 8, "lost record has the wrong length");
    rb.hdr.len = (uint32_t)len + 1;
    REJECT(len + 1, "lost record has the wrong length");
    rb.hdr.len = (uint32_t)len + 8;
    REJECT(len + 8, "lost record has the wrong length");
    rb.hdr.len = sizeof(struct ivmon_rec_hdr);
    REJECT(sizeof(struct ivmon_rec_hdr), "lost record has the wrong length");

    /* inconsistent ranges */
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 0, 10, 14), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 0, 10, 9), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 5, 0, 4), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 1, 0, 0), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 5, 14, 10), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 4, 10, 14), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 6, 10, 14), "range is inconsistent");
    /* a count that would match only if last - first + 1 wrapped around */
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 0, 0, UINT64_MAX), "range is inconsistent");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_RING_FULL, 1, 2, 1), "range is inconsistent");

    /* source overflow names no sequence numbers */
    REJECT(rec_lost(&rb, 20, IVMON_LOST_SOURCE_OVERFLOW, 1, 0, 0), "names sequence numbers");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_SOURCE_OVERFLOW, 0, 1, 0), "names sequence numbers");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_SOURCE_OVERFLOW, 0, 0, 1), "names sequence numbers");
    REJECT(rec_lost(&rb, 20, IVMON_LOST_SOURCE_OVERFLOW, 1, 1, 1), "names sequence numbers");

    static const uint32_t reasons[] = {0, 3, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        REJECT(rec_lost(&rb, 20, reasons[i], 0, 0, 0), "lost record with unknown reason");
}

/* ---- heartbeat ------------------------------------------------------------------------------- */

static void test_reject_heartbeat(void **state)
{
    size_t len = rec_heartbeat(&rb, 1, 1, 0);
    static const int deltas[] = {-16, -8, -1, 1, 8, 16};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        rec_heartbeat(&rb, 1, 1, 0);
        rb.hdr.len = (uint32_t)((int)len + deltas[i]);
        REJECT(rb.hdr.len, "heartbeat record has the wrong length");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_hello_empty_strings),
        cmocka_unit_test(test_hello_strings_at_bound),
        cmocka_unit_test(test_file_every_op),
        cmocka_unit_test(test_file_flags_and_ids),
        cmocka_unit_test(test_file_strings_at_bound),
        cmocka_unit_test(test_lost_round_trip),
        cmocka_unit_test(test_heartbeat_round_trip),
        cmocka_unit_test(test_event_reuse_clears_fields),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_length_wrap),
        cmocka_unit_test(test_reject_file_short),
        cmocka_unit_test(test_reject_file_op_and_flags),
        cmocka_unit_test(test_reject_file_string_over_bound),
        cmocka_unit_test(test_reject_file_path_and_rename),
        cmocka_unit_test(test_reject_file_length_mismatch),
        cmocka_unit_test(test_reject_file_nul_inside),
        cmocka_unit_test(test_reject_hello),
        cmocka_unit_test(test_reject_lost),
        cmocka_unit_test(test_reject_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
