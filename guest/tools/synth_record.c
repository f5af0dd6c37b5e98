/* SPDX-License-Identifier: MIT */
/* The synthetic FILE records; see synth_record.h. */
#include "synth_record.h"

#include <string.h>
#include <unistd.h>

#include "identity.h"

#define PREFIX "/ivmon-produce/"

void synth_record_init(struct synth_record *s, uint64_t size)
{
    memset(s, 0, sizeof *s);
    s->f.op = IVMON_OP_MODIFY;
    s->f.pid = (uint32_t)getpid();
    s->f.tid = (uint32_t)getpid();
    s->f.ppid = (uint32_t)getppid();
    s->f.uid = (uint32_t)getuid();
    s->f.gid = (uint32_t)getgid();
    s->f.comm = SYNTH_COMM;
    s->f.comm_len = sizeof SYNTH_COMM - 1;
    s->f.path = s->path;
    s->want_path = size > SYNTH_FIXED ? (size_t)(size - SYNTH_FIXED) : 0;
    if (s->want_path > IVMON_PATH_MAX)
        s->want_path = IVMON_PATH_MAX;
    /* The prefix and the padding, once: each record rewrites only its number. */
    memset(s->path, 'x', IVMON_PATH_MAX);
    memcpy(s->path, PREFIX, sizeof PREFIX - 1);
}

int synth_record_encode(struct synth_record *s, uint64_t i, union ivmon_enc_buf *rec)
{
    /* The number by hand, not with snprintf: under QEMU's TCG snprintf took 1.1 us of the
     * 1.5 us a 128-byte record cost the producer, and the benches would have measured printf
     * instead of the transports. */
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    size_t len = sizeof PREFIX - 1;
    while (n)
        s->path[len++] = digits[--n];
    if (s->numbered > len) /* a shorter number than before: pad over the rest of the old one */
        memset(s->path + len, 'x', s->numbered - len);
    s->numbered = len;
    if (s->want_path > len)
        len = s->want_path;
    s->f.path_len = len;
    return ivmon_enc_file(rec, sizeof *rec, ivmon_guest_realtime_ns(), &s->f);
}
