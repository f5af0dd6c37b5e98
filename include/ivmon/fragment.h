/* SPDX-License-Identifier: MIT */
/*
 * libivmon register fragments: how a record travels in vCPU registers, one trap per fragment.
 *
 * A register transport (KVM port I/O, Xen vm_event guest requests) cannot point the host at
 * memory: each trap carries only what fits in the registers the host reads. A record
 * (include/ivmon/proto.h) is therefore cut into fragments of one 64-bit header word plus K
 * payload words, where K is fixed by the transport's register profile (KVM port I/O: 7, Xen
 * through /dev/xen/privcmd: 2). The header word names the record (its length and the low byte
 * of its sequence number), the fragment's place in it and its own check, so the host can detect
 * loss, reordering, duplicates, interleaving, truncation and corruption; a CRC-32C of the whole
 * record rides after the record bytes in the payload. docs/PROTOCOL.md ("Register fragments")
 * gives the layout byte for byte; the two must change together.
 *
 * Freestanding: this header needs only <stdint.h> (through proto.h), no libc, no allocation, no
 * floating point, so a guest kernel module, a Windows driver or a bare-metal payload can use the
 * encoder below as it is. The host's reassembler (src/fragment.c) is written against the same
 * definitions.
 */
#ifndef IVMON_FRAGMENT_H
#define IVMON_FRAGMENT_H

#include <stdint.h>

#include "ivmon/proto.h"

/* ---- The header word ------------------------------------------------------------------------
 *
 *   bits  0..15  check    low 16 bits of CRC-32C over this word (check bits zero) and the payload
 *   bits 16..27  index    0, 1, ... count - 1: the fragment's place in the record
 *   bits 28..42  len      the record's length in bytes, IVMON_FRAG_REC_MIN..IVMON_REC_MAX
 *   bits 43..50  tag      the low 8 bits of the record's seq (ivmon_rec_hdr.seq)
 *   bits 51..54  words    K, the payload words per fragment, 1..15, as the transport fixes it
 *   bit  55      reserved 0
 *   bits 56..63  magic    IVMON_FRAG_MAGIC: fragment format 1
 */
#define IVMON_FRAG_CHECK_SHIFT    0
#define IVMON_FRAG_CHECK_BITS     16
#define IVMON_FRAG_INDEX_SHIFT    16
#define IVMON_FRAG_INDEX_BITS     12
#define IVMON_FRAG_LEN_SHIFT      28
#define IVMON_FRAG_LEN_BITS       15
#define IVMON_FRAG_TAG_SHIFT      43
#define IVMON_FRAG_TAG_BITS       8
#define IVMON_FRAG_WORDS_SHIFT    51
#define IVMON_FRAG_WORDS_BITS     4
#define IVMON_FRAG_RESERVED_SHIFT 55
#define IVMON_FRAG_MAGIC_SHIFT    56
#define IVMON_FRAG_MAGIC_BITS     8

/* Extracts field NAME (CHECK, INDEX, LEN, TAG, WORDS, MAGIC) from a header word. */
#define IVMON_FRAG_FIELD(hdr, NAME)                                                                \
    ((uint32_t)(((uint64_t)(hdr) >> IVMON_FRAG_##NAME##_SHIFT) &                                   \
                ((UINT64_C(1) << IVMON_FRAG_##NAME##_BITS) - 1)))

#define IVMON_FRAG_MAGIC     0xf1u /* fragment format 1; another value is not a fragment */
#define IVMON_FRAG_WORDS_MIN 1u
#define IVMON_FRAG_WORDS_MAX 15u
#define IVMON_FRAG_REC_MIN   24u /* sizeof(struct ivmon_rec_hdr): the shortest record */
#define IVMON_FRAG_TRAILER   4u  /* bytes of record CRC-32C after the record in the payload */
/* Fragments of the longest record with one payload word each: (16384 + 4) / 8, rounded up. */
#define IVMON_FRAG_COUNT_MAX 2049u

/* ---- CRC-32C (Castagnoli) ------------------------------------------------------------------
 * Reflected polynomial 0x82f63b78, initial value and final XOR 0xffffffff: the CRC of iSCSI,
 * ext4 and SSE4.2's crc32 instruction; crc32c("123456789") = 0xe3069283. Chained like zlib's
 * crc32: start with 0 and pass the previous result in. Four bits a step with a 16-entry table:
 * small enough for any freestanding environment, and fast enough for the host too (a fragment
 * costs a few hundred nanoseconds to check, a trap some microseconds to take). */
static inline uint32_t ivmon_crc32c(uint32_t crc, const void *data, uint32_t len)
{
    static const uint32_t nibble[16] = {
        0x00000000u, 0x105ec76fu, 0x20bd8edeu, 0x30e349b1u, 0x417b1dbcu, 0x5125dad3u,
        0x61c69362u, 0x7198540du, 0x82f63b78u, 0x92a8fc17u, 0xa24bb5a6u, 0xb21572c9u,
        0xc38d26c4u, 0xd3d3e1abu, 0xe330a81au, 0xf36e6f75u,
    };
    const uint8_t *p = (const uint8_t *)data;

    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ nibble[crc & 15u];
        crc = (crc >> 4) ^ nibble[crc & 15u];
    }
    return ~crc;
}

/* CRC-32C continued over the 8 little-endian bytes of w. */
static inline uint32_t ivmon_crc32c_u64(uint32_t crc, uint64_t w)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++)
        b[i] = (uint8_t)(w >> (8 * i));
    return ivmon_crc32c(crc, b, 8);
}

/* ---- Encoding -------------------------------------------------------------------------------
 * The payload stream of a record of len bytes is
 *     record bytes (len) || CRC-32C of the record bytes (4, little-endian) || zeros
 * cut into `count` fragments of 8 * words bytes; fragment i's payload word j holds stream bytes
 * (i * words + j) * 8 ... + 7, little-endian. The zeros fill the last fragment exactly. */

/* Fragments needed for a record of len bytes with `words` payload words each. */
static inline uint32_t ivmon_frag_count(uint32_t len, uint32_t words)
{
    uint32_t per = 8u * words;
    return (len + IVMON_FRAG_TRAILER + per - 1) / per;
}

/* The check field for a header word (its check bits are ignored) and its payload. */
static inline uint32_t ivmon_frag_check(uint64_t hdr, const uint64_t *payload, uint32_t words)
{
    uint32_t crc = ivmon_crc32c_u64(0, hdr & ~(uint64_t)0xffffu);
    for (uint32_t j = 0; j < words; j++)
        crc = ivmon_crc32c_u64(crc, payload[j]);
    return crc & 0xffffu;
}

/* The header word of fragment `index` of a record of len bytes whose seq ends in byte tag. */
static inline uint64_t ivmon_frag_header(uint32_t words, uint32_t len, uint32_t tag, uint32_t index,
                                         const uint64_t *payload)
{
    uint64_t h = (uint64_t)IVMON_FRAG_MAGIC << IVMON_FRAG_MAGIC_SHIFT |
                 (uint64_t)(words & 0xfu) << IVMON_FRAG_WORDS_SHIFT |
                 (uint64_t)(tag & 0xffu) << IVMON_FRAG_TAG_SHIFT |
                 (uint64_t)(len & 0x7fffu) << IVMON_FRAG_LEN_SHIFT |
                 (uint64_t)(index & 0xfffu) << IVMON_FRAG_INDEX_SHIFT;
    return h | ivmon_frag_check(h, payload, words);
}

/* Cuts one record into fragments, in order. The record must stay unchanged until the last
 * fragment is out. Fields are private to the functions below. */
struct ivmon_frag_writer {
    const uint8_t *rec;
    uint32_t len;   /* record bytes */
    uint32_t words; /* K */
    uint32_t count; /* fragments in all */
    uint32_t index; /* the next fragment */
    uint32_t tag;   /* low byte of the record's seq */
    uint32_t crc;   /* CRC-32C of the record bytes */
};

/* Prepares w to cut the record at rec, len bytes, header included and seq already set, into
 * fragments of `words` payload words. Returns the number of fragments (>= 1), or 0 if len or
 * words is out of range (nothing is read then, and ivmon_frag_writer_next writes nothing). */
static inline uint32_t ivmon_frag_writer_init(struct ivmon_frag_writer *w, const void *rec,
                                              uint32_t len, uint32_t words)
{
    int ok = words >= IVMON_FRAG_WORDS_MIN && words <= IVMON_FRAG_WORDS_MAX &&
             len >= IVMON_FRAG_REC_MIN && len <= IVMON_REC_MAX;
    w->rec = (const uint8_t *)rec;
    w->len = ok ? len : 0;
    w->words = ok ? words : 0;
    w->count = ok ? ivmon_frag_count(len, words) : 0;
    w->index = 0;
    /* seq is at offset 8, little-endian: its low byte comes first */
    w->tag = ok ? w->rec[8] : 0;
    w->crc = ok ? ivmon_crc32c(0, rec, len) : 0;
    return w->count;
}

/* Byte pos of the payload stream described by w. */
static inline uint8_t ivmon_frag_stream_byte(const struct ivmon_frag_writer *w, uint32_t pos)
{
    if (pos < w->len)
        return w->rec[pos];
    if (pos < w->len + IVMON_FRAG_TRAILER)
        return (uint8_t)(w->crc >> (8 * (pos - w->len)));
    return 0;
}

/* Writes the next fragment: its header word in *ret_hdr and its w->words payload words in
 * ret_payload. Returns 1, or 0 once every fragment has been written. */
static inline int ivmon_frag_writer_next(struct ivmon_frag_writer *w, uint64_t *ret_hdr,
                                         uint64_t *ret_payload)
{
    if (w->index >= w->count)
        return 0;
    uint32_t pos = w->index * w->words * 8u;
    for (uint32_t j = 0; j < w->words; j++) {
        uint64_t v = 0;
        for (uint32_t b = 0; b < 8; b++, pos++)
            v |= (uint64_t)ivmon_frag_stream_byte(w, pos) << (8 * b);
        ret_payload[j] = v;
    }
    *ret_hdr = ivmon_frag_header(w->words, w->len, w->tag, w->index, ret_payload);
    w->index++;
    return 1;
}

#endif /* IVMON_FRAGMENT_H */
