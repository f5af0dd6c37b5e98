/* SPDX-License-Identifier: MIT */
/*
 * Builds wire records (include/ivmon/proto.h) into a caller buffer. Every function checks the
 * buffer capacity and the protocol bounds, so what it returns is a record the host accepts.
 * The producer (ring.c) fills in the sequence number when the record is emitted.
 */
#ifndef IVMON_GUEST_RECORD_ENCODE_H
#define IVMON_GUEST_RECORD_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "ivmon/proto.h"

/* A buffer that holds any record, aligned for the header. */
union ivmon_enc_buf {
    struct ivmon_rec_hdr hdr;
    uint64_t align;
    uint8_t bytes[IVMON_REC_MAX];
};

struct ivmon_enc_hello {
    uint32_t caps; /* IVMON_CAP_* */
    uint8_t boot_id[16];
    uint8_t instance_id[16];
    uint32_t agent_pid;
    const char *hostname; /* cut to IVMON_HOSTNAME_MAX */
    size_t hostname_len;
    const char *agent; /* cut to IVMON_AGENT_MAX */
    size_t agent_len;
};

/* One file event. The strings need not be NUL-terminated; *_len counts their bytes. */
struct ivmon_enc_file {
    uint32_t op;    /* IVMON_OP_* */
    uint32_t flags; /* IVMON_FILE_*; TRUNCATED is added by the encoder when it cuts a path */
    uint32_t pid, tid, ppid, uid, gid;
    const char *comm; /* cut to IVMON_COMM_MAX */
    size_t comm_len;
    const char *exe; /* exe, path, new_path: cut to IVMON_PATH_MAX with IVMON_FILE_TRUNCATED */
    size_t exe_len;
    const char *path; /* must not be empty */
    size_t path_len;
    const char *new_path; /* IVMON_OP_RENAME only; may be empty */
    size_t new_path_len;
};

/* Each encoder writes one record of the returned length into buf (cap bytes, 8-byte aligned)
 * with type, len and time_ns set, seq and flags zero (file: flags as given). Returns the length
 * (> 0); -ENOSPC if cap is too small; -EINVAL if the input breaks the protocol (unknown op or
 * flags, empty path, new_path on a non-rename, a NUL byte inside a string). */
int ivmon_enc_hello(void *buf, size_t cap, uint64_t time_ns, const struct ivmon_enc_hello *h);
int ivmon_enc_file(void *buf, size_t cap, uint64_t time_ns, const struct ivmon_enc_file *f);
int ivmon_enc_lost(void *buf, size_t cap, uint64_t time_ns, uint32_t reason, uint64_t count,
                   uint64_t first_seq, uint64_t last_seq);
int ivmon_enc_heartbeat(void *buf, size_t cap, uint64_t time_ns, uint64_t produced,
                        uint64_t dropped);

#endif /* IVMON_GUEST_RECORD_ENCODE_H */
