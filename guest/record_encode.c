/* SPDX-License-Identifier: MIT */
/* Record encoders; see record_encode.h. */
#include "record_encode.h"

#include <errno.h>
#include <string.h>

static void put_hdr(void *buf, uint16_t type, size_t len, uint64_t time_ns)
{
    struct ivmon_rec_hdr h = {.type = type, .len = (uint32_t)len, .time_ns = time_ns};
    memcpy(buf, &h, sizeof h);
}

/* Returns the number of bytes of s (len bytes) that go on the wire, at most max; sets *cut when
 * bytes were dropped. A NUL inside is a caller bug: the wire forbids it and the host would
 * reject the whole record, so refuse it here where the cause is visible. */
static int clamp_str(const char *s, size_t len, size_t max, size_t *ret_len, int *cut)
{
    if (len && !s)
        return -EINVAL;
    if (len > max) {
        len = max;
        *cut = 1;
    }
    if (len && memchr(s, '\0', len))
        return -EINVAL;
    *ret_len = len;
    return 0;
}

int ivmon_enc_hello(void *buf, size_t cap, uint64_t time_ns, const struct ivmon_enc_hello *h)
{
    size_t hn, an;
    int cut = 0; /* cutting the host name or agent string is harmless: they are labels */

    if (clamp_str(h->hostname, h->hostname_len, IVMON_HOSTNAME_MAX, &hn, &cut) < 0 ||
        clamp_str(h->agent, h->agent_len, IVMON_AGENT_MAX, &an, &cut) < 0)
        return -EINVAL;
    size_t len = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_hello) + hn + an;
    if (len > cap)
        return -ENOSPC;

    struct ivmon_rec_hello b = {
        .proto_major = IVMON_PROTO_MAJOR,
        .proto_minor = IVMON_PROTO_MINOR,
        .caps = h->caps,
        .agent_pid = h->agent_pid,
        .hostname_len = (uint16_t)hn,
        .agent_len = (uint16_t)an,
    };
    memcpy(b.boot_id, h->boot_id, sizeof b.boot_id);
    memcpy(b.instance_id, h->instance_id, sizeof b.instance_id);

    uint8_t *p = buf;
    put_hdr(p, IVMON_REC_HELLO, len, time_ns);
    p += sizeof(struct ivmon_rec_hdr);
    memcpy(p, &b, sizeof b);
    p += sizeof b;
    if (hn)
        memcpy(p, h->hostname, hn);
    p += hn;
    if (an)
        memcpy(p, h->agent, an);
    return (int)len;
}

int ivmon_enc_file(void *buf, size_t cap, uint64_t time_ns, const struct ivmon_enc_file *f)
{
    size_t cn, en, pn, nn;
    int cut_comm = 0, cut = 0;

    if (f->op < 1 || f->op > IVMON_OP_MAX || (f->flags & ~IVMON_FILE_FLAGS_ALL))
        return -EINVAL;
    if (f->path_len == 0 || (f->new_path_len && f->op != IVMON_OP_RENAME))
        return -EINVAL;
    /* comm is TASK_COMM_LEN-bounded by nature, so cutting it is not "truncation" of a path. */
    if (clamp_str(f->comm, f->comm_len, IVMON_COMM_MAX, &cn, &cut_comm) < 0 ||
        clamp_str(f->exe, f->exe_len, IVMON_PATH_MAX, &en, &cut) < 0 ||
        clamp_str(f->path, f->path_len, IVMON_PATH_MAX, &pn, &cut) < 0 ||
        clamp_str(f->new_path, f->new_path_len, IVMON_PATH_MAX, &nn, &cut) < 0)
        return -EINVAL;
    /* At most 24 + 40 + 16 + 3 * 4096 bytes: always below IVMON_REC_MAX. */
    size_t len = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_file) + cn + en + pn + nn;
    if (len > cap)
        return -ENOSPC;

    struct ivmon_rec_file b = {
        .op = f->op,
        .flags = f->flags | (cut ? IVMON_FILE_TRUNCATED : 0),
        .pid = f->pid,
        .tid = f->tid,
        .ppid = f->ppid,
        .uid = f->uid,
        .gid = f->gid,
        .comm_len = (uint16_t)cn,
        .exe_len = (uint16_t)en,
        .path_len = (uint16_t)pn,
        .new_path_len = (uint16_t)nn,
    };
    uint8_t *p = buf;
    put_hdr(p, IVMON_REC_FILE, len, time_ns);
    p += sizeof(struct ivmon_rec_hdr);
    memcpy(p, &b, sizeof b);
    p += sizeof b;
    if (cn)
        memcpy(p, f->comm, cn);
    p += cn;
    if (en)
        memcpy(p, f->exe, en);
    p += en;
    memcpy(p, f->path, pn);
    p += pn;
    if (nn)
        memcpy(p, f->new_path, nn);
    return (int)len;
}

int ivmon_enc_lost(void *buf, size_t cap, uint64_t time_ns, uint32_t reason, uint64_t count,
                   uint64_t first_seq, uint64_t last_seq)
{
    size_t len = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_lost);

    if (reason != IVMON_LOST_RING_FULL && reason != IVMON_LOST_SOURCE_OVERFLOW)
        return -EINVAL;
    if (reason == IVMON_LOST_SOURCE_OVERFLOW && (count || first_seq || last_seq))
        return -EINVAL;
    if (reason == IVMON_LOST_RING_FULL &&
        (count == 0 || first_seq == 0 || last_seq < first_seq || last_seq - first_seq + 1 != count))
        return -EINVAL;
    if (len > cap)
        return -ENOSPC;
    struct ivmon_rec_lost b = {
        .count = count, .first_seq = first_seq, .last_seq = last_seq, .reason = reason};
    put_hdr(buf, IVMON_REC_LOST, len, time_ns);
    memcpy((uint8_t *)buf + sizeof(struct ivmon_rec_hdr), &b, sizeof b);
    return (int)len;
}

int ivmon_enc_heartbeat(void *buf, size_t cap, uint64_t time_ns, uint64_t produced,
                        uint64_t dropped)
{
    size_t len = sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_heartbeat);

    if (len > cap)
        return -ENOSPC;
    struct ivmon_rec_heartbeat b = {.produced = produced, .dropped = dropped};
    put_hdr(buf, IVMON_REC_HEARTBEAT, len, time_ns);
    memcpy((uint8_t *)buf + sizeof(struct ivmon_rec_hdr), &b, sizeof b);
    return (int)len;
}
