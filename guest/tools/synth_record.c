/* SPDX-License-Identifier: MIT */
/* The synthetic FILE records; see synth_record.h. */
#include "synth_record.h"

#include <stdio.h>
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
}

int synth_record_encode(struct synth_record *s, uint64_t i, union ivmon_enc_buf *rec)
{
    int n = snprintf(s->path, sizeof s->path, PREFIX "%llu", (unsigned long long)i);
    size_t len = (size_t)n;
    if (s->want_path > len) {
        memset(s->path + len, 'x', s->want_path - len);
        len = s->want_path;
    }
    s->f.path_len = len;
    return ivmon_enc_file(rec, sizeof *rec, ivmon_guest_realtime_ns(), &s->f);
}
