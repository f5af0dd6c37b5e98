/* SPDX-License-Identifier: MIT */
/* Record builders shared by the unit tests. They write wire records byte for byte as the guest
 * agent would, with explicit lengths so that a test can also write records that lie. */
#ifndef IVMON_UNIT_RECORDS_H
#define IVMON_UNIT_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ivmon/proto.h"

/* A record buffer with room for more than IVMON_REC_MAX, so oversized records can be built. */
struct rec_buf {
    union {
        struct ivmon_rec_hdr hdr;
        uint8_t bytes[IVMON_REC_MAX + 4096];
        uint64_t align;
    };
};

#define REC_TIME(seq) (1700000000123456789ull + (seq))

static inline void *rec_body(struct rec_buf *b)
{
    return b->bytes + sizeof(struct ivmon_rec_hdr);
}

static inline size_t rec_header(struct rec_buf *b, uint16_t type, uint64_t seq, size_t body_len)
{
    size_t len = sizeof(struct ivmon_rec_hdr) + body_len;
    b->hdr.type = type;
    b->hdr.flags = 0;
    b->hdr.len = (uint32_t)len;
    b->hdr.seq = seq;
    b->hdr.time_ns = REC_TIME(seq);
    return len;
}

/* A file record; strings are given with explicit lengths and may contain any byte. */
static inline size_t rec_file_n(struct rec_buf *b, uint64_t seq, uint32_t op, uint32_t flags,
                                const void *comm, size_t comm_len, const void *exe, size_t exe_len,
                                const void *path, size_t path_len, const void *new_path,
                                size_t new_path_len)
{
    struct ivmon_rec_file f = {
        .op = op,
        .flags = flags,
        .pid = 4242,
        .tid = 4243,
        .ppid = 1,
        .uid = 1000,
        .gid = 100,
        .comm_len = (uint16_t)comm_len,
        .exe_len = (uint16_t)exe_len,
        .path_len = (uint16_t)path_len,
        .new_path_len = (uint16_t)new_path_len,
    };
    uint8_t *s = (uint8_t *)rec_body(b) + sizeof f;
    memcpy(rec_body(b), &f, sizeof f);
    memcpy(s, comm, comm_len);
    memcpy(s += comm_len, exe, exe_len);
    memcpy(s += exe_len, path, path_len);
    memcpy(s += path_len, new_path, new_path_len);
    return rec_header(b, IVMON_REC_FILE, seq,
                      sizeof f + comm_len + exe_len + path_len + new_path_len);
}

static inline size_t rec_file(struct rec_buf *b, uint64_t seq, uint32_t op, const char *path,
                              const char *new_path)
{
    static const char comm[] = "cat", exe[] = "/usr/bin/cat";
    return rec_file_n(b, seq, op, 0, comm, strlen(comm), exe, strlen(exe), path, strlen(path),
                      new_path ? new_path : "", new_path ? strlen(new_path) : 0);
}

static inline struct ivmon_rec_file *rec_file_body(struct rec_buf *b)
{
    return (struct ivmon_rec_file *)rec_body(b);
}

static inline void rec_id(uint8_t id[16], uint8_t base)
{
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(base + i);
}

static inline size_t rec_hello_n(struct rec_buf *b, uint64_t seq, const void *host, size_t host_len,
                                 const void *agent, size_t agent_len)
{
    struct ivmon_rec_hello h = {
        .proto_major = IVMON_PROTO_MAJOR,
        .proto_minor = IVMON_PROTO_MINOR,
        .caps = IVMON_CAP_RENAME_PAIR | IVMON_CAP_EXEC,
        .agent_pid = 777,
        .hostname_len = (uint16_t)host_len,
        .agent_len = (uint16_t)agent_len,
    };
    rec_id(h.boot_id, 0x10);
    rec_id(h.instance_id, 0xa0);
    uint8_t *s = (uint8_t *)rec_body(b) + sizeof h;
    memcpy(rec_body(b), &h, sizeof h);
    memcpy(s, host, host_len);
    memcpy(s + host_len, agent, agent_len);
    return rec_header(b, IVMON_REC_HELLO, seq, sizeof h + host_len + agent_len);
}

static inline size_t rec_hello(struct rec_buf *b, uint64_t seq)
{
    return rec_hello_n(b, seq, "guest1", 6, "ivmon-agent 0.1.0 linux", 23);
}

static inline struct ivmon_rec_hello *rec_hello_body(struct rec_buf *b)
{
    return (struct ivmon_rec_hello *)rec_body(b);
}

static inline size_t rec_lost(struct rec_buf *b, uint64_t seq, uint32_t reason, uint64_t count,
                              uint64_t first, uint64_t last)
{
    struct ivmon_rec_lost l = {
        .count = count, .first_seq = first, .last_seq = last, .reason = reason};
    memcpy(rec_body(b), &l, sizeof l);
    return rec_header(b, IVMON_REC_LOST, seq, sizeof l);
}

static inline size_t rec_heartbeat(struct rec_buf *b, uint64_t seq, uint64_t produced,
                                   uint64_t dropped)
{
    struct ivmon_rec_heartbeat hb = {.produced = produced, .dropped = dropped};
    memcpy(rec_body(b), &hb, sizeof hb);
    return rec_header(b, IVMON_REC_HEARTBEAT, seq, sizeof hb);
}

/* For messages about a string that may be NULL (a function: a macro argument that is an array
 * would draw -Waddress). */
static inline const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

/* Deterministic pseudo-random numbers (xorshift64*), so a failing run can be replayed. */
static inline uint64_t unit_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

#endif /* IVMON_UNIT_RECORDS_H */
