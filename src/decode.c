/* SPDX-License-Identifier: MIT */
/* Record validation and decoding. Input is a private copy of bytes the guest wrote: every length
 * is checked against the record before it is used, every string against its bound, and no
 * string may contain NUL (so the C strings handed to callers are exactly the guest's bytes). */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Appends len bytes from src as a NUL-terminated string to ev->strbuf. Returns the offset, or
 * -1 if the bytes contain a NUL or do not fit (the caller's bounds make the latter impossible). */
static int put_string(struct ivmon_event *ev, const uint8_t *src, size_t len)
{
    if (len == 0)
        return 0;
    if (memchr(src, '\0', len))
        return -1;
    if (ev->strbuf_used + len + 1 > sizeof ev->strbuf)
        return -1;
    int off = (int)ev->strbuf_used;
    memcpy(ev->strbuf + off, src, len);
    ev->strbuf[off + len] = '\0';
    ev->strbuf_used += (uint32_t)len + 1;
    return off;
}

static int decode_file(const uint8_t *body, size_t blen, struct ivmon_event *ev, const char **why)
{
    struct ivmon_rec_file f;
    if (blen < sizeof f) {
        *why = "file record shorter than its fixed part";
        return -EBADMSG;
    }
    memcpy(&f, body, sizeof f);
    if (f.op < 1 || f.op > IVMON_OP_MAX) {
        *why = "file record with unknown operation";
        return -EBADMSG;
    }
    if (f.reserved0) {
        *why = "file record with non-zero reserved field";
        return -EBADMSG;
    }
    if (f.flags & ~IVMON_FILE_FLAGS_ALL) {
        *why = "file record with unknown flags";
        return -EBADMSG;
    }
    if (f.comm_len > IVMON_COMM_MAX || f.exe_len > IVMON_PATH_MAX || f.path_len > IVMON_PATH_MAX ||
        f.new_path_len > IVMON_PATH_MAX) {
        *why = "file record string longer than its bound";
        return -EBADMSG;
    }
    if (f.path_len == 0) {
        *why = "file record without a path";
        return -EBADMSG;
    }
    if ((f.op == IVMON_OP_RENAME) != (f.new_path_len != 0)) {
        *why = "new_path present without rename, or rename without new_path";
        return -EBADMSG;
    }
    size_t strings = (size_t)f.comm_len + f.exe_len + f.path_len + f.new_path_len;
    if (blen - sizeof f != strings) {
        *why = "file record length does not match its string lengths";
        return -EBADMSG;
    }
    const uint8_t *s = body + sizeof f;
    int comm = put_string(ev, s, f.comm_len);
    s += f.comm_len;
    int exe = put_string(ev, s, f.exe_len);
    s += f.exe_len;
    int path = put_string(ev, s, f.path_len);
    s += f.path_len;
    int new_path = put_string(ev, s, f.new_path_len);
    if (comm < 0 || exe < 0 || path < 0 || new_path < 0) {
        *why = "file record string contains a NUL byte";
        return -EBADMSG;
    }
    ev->op = f.op;
    ev->flags = f.flags;
    ev->pid = f.pid;
    ev->tid = f.tid;
    ev->ppid = f.ppid;
    ev->uid = f.uid;
    ev->gid = f.gid;
    ev->off_comm = (uint16_t)comm;
    ev->off_exe = (uint16_t)exe;
    ev->off_path = (uint16_t)path;
    ev->off_new_path = (uint16_t)new_path;
    return 0;
}

static int decode_hello(const uint8_t *body, size_t blen, struct ivmon_event *ev, const char **why)
{
    struct ivmon_rec_hello h;
    if (blen < sizeof h) {
        *why = "hello record shorter than its fixed part";
        return -EBADMSG;
    }
    memcpy(&h, body, sizeof h);
    if (h.proto_major != IVMON_PROTO_MAJOR) {
        *why = "hello from an agent speaking another protocol major version";
        return -EBADMSG;
    }
    if (h.hostname_len > IVMON_HOSTNAME_MAX || h.agent_len > IVMON_AGENT_MAX ||
        blen - sizeof h != (size_t)h.hostname_len + h.agent_len) {
        *why = "hello record string lengths out of bounds";
        return -EBADMSG;
    }
    const uint8_t *s = body + sizeof h;
    int host = put_string(ev, s, h.hostname_len);
    int agent = put_string(ev, s + h.hostname_len, h.agent_len);
    if (host < 0 || agent < 0) {
        *why = "hello record string contains a NUL byte";
        return -EBADMSG;
    }
    ev->proto_version = (uint32_t)h.proto_major << 16 | h.proto_minor;
    ev->caps = h.caps;
    ev->agent_pid = h.agent_pid;
    memcpy(ev->boot_id, h.boot_id, sizeof ev->boot_id);
    memcpy(ev->instance_id, h.instance_id, sizeof ev->instance_id);
    ev->off_hostname = (uint16_t)host;
    ev->off_agent = (uint16_t)agent;
    return 0;
}

static int decode_lost(const uint8_t *body, size_t blen, struct ivmon_event *ev, const char **why)
{
    struct ivmon_rec_lost l;
    if (blen != sizeof l) {
        *why = "lost record has the wrong length";
        return -EBADMSG;
    }
    memcpy(&l, body, sizeof l);
    if (l.reserved0) {
        *why = "lost record with non-zero reserved field";
        return -EBADMSG;
    }
    if (l.reason == IVMON_LOST_RING_FULL) {
        if (l.count == 0 || l.first_seq == 0 || l.last_seq < l.first_seq ||
            l.last_seq - l.first_seq + 1 != l.count) {
            *why = "lost record range is inconsistent";
            return -EBADMSG;
        }
    } else if (l.reason == IVMON_LOST_SOURCE_OVERFLOW) {
        if (l.count || l.first_seq || l.last_seq) {
            *why = "source overflow lost record names sequence numbers";
            return -EBADMSG;
        }
    } else {
        *why = "lost record with unknown reason";
        return -EBADMSG;
    }
    ev->lost_reason = l.reason;
    ev->lost_count = l.count;
    ev->lost_first = l.first_seq;
    ev->lost_last = l.last_seq;
    return 0;
}

static int decode_heartbeat(const uint8_t *body, size_t blen, struct ivmon_event *ev,
                            const char **why)
{
    struct ivmon_rec_heartbeat hb;
    if (blen != sizeof hb) {
        *why = "heartbeat record has the wrong length";
        return -EBADMSG;
    }
    memcpy(&hb, body, sizeof hb);
    ev->produced = hb.produced;
    ev->dropped = hb.dropped;
    return 0;
}

int ivmon__decode(const void *rec, size_t len, struct ivmon_event *ev, const char **ret_why)
{
    struct ivmon_rec_hdr h;
    const char *why = NULL;

    if (len < sizeof h || len > IVMON_REC_MAX) {
        *ret_why = "record length out of bounds";
        return -EBADMSG;
    }
    memcpy(&h, rec, sizeof h);
    if (h.len != len) {
        *ret_why = "record header length does not match the record";
        return -EBADMSG;
    }
    if (h.flags != 0) {
        *ret_why = "record header has unknown flags";
        return -EBADMSG;
    }
    if (h.seq == 0) {
        *ret_why = "record has sequence number 0";
        return -EBADMSG;
    }

    const char *source = ev->source;
    char *source_owned = ev->source_owned;
    memset(ev, 0, offsetof(struct ivmon_event, strbuf) + 1);
    ev->source = source;
    ev->source_owned = source_owned;
    ev->strbuf_used = 1; /* offset 0 is the empty string */
    ev->type = h.type;
    ev->seq = h.seq;
    ev->time_ns = h.time_ns;

    const uint8_t *body = (const uint8_t *)rec + sizeof h;
    size_t blen = len - sizeof h;
    int r;
    switch (h.type) {
    case IVMON_REC_HELLO:
        r = decode_hello(body, blen, ev, &why);
        break;
    case IVMON_REC_FILE:
        r = decode_file(body, blen, ev, &why);
        break;
    case IVMON_REC_LOST:
        r = decode_lost(body, blen, ev, &why);
        break;
    case IVMON_REC_HEARTBEAT:
        r = decode_heartbeat(body, blen, ev, &why);
        break;
    default:
        why = "unknown record type";
        r = -EBADMSG;
    }
    if (r < 0)
        *ret_why = why;
    return r;
}
