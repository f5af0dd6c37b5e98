/* SPDX-License-Identifier: MIT */
/*
 * The synthetic FILE records of ivmon-produce and of the Xen bench's vchan producer
 * (bench/xen/vchan_produce.c), so that every transport measured carries the same bytes: op
 * modify, this process's ids, comm "ivmon-produce", path "/ivmon-produce/<i>" padded with 'x' to
 * the requested record size.
 */
#ifndef IVMON_GUEST_SYNTH_RECORD_H
#define IVMON_GUEST_SYNTH_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "record_encode.h"

#define SYNTH_COMM "ivmon-produce"
/* Record bytes without the path, and the largest record size a synth_record can make. */
#define SYNTH_FIXED                                                                                \
    (sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_file) + sizeof SYNTH_COMM - 1)
#define SYNTH_SIZE_MAX (SYNTH_FIXED + IVMON_PATH_MAX)

struct synth_record {
    struct ivmon_enc_file f;
    size_t want_path;
    size_t numbered; /* the end of the longest prefix and number written into path so far */
    char path[IVMON_PATH_MAX + 1];
};

/* Prepares records of `size` bytes (at most SYNTH_SIZE_MAX; a size too small for the shortest
 * path gives records just long enough). */
void synth_record_init(struct synth_record *s, uint64_t size);

/* Encodes record number i (its path names i) into rec, time_ns now, seq 0. Returns the record's
 * length or a negative errno from the encoder. */
int synth_record_encode(struct synth_record *s, uint64_t i, union ivmon_enc_buf *rec);

#endif /* IVMON_GUEST_SYNTH_RECORD_H */
