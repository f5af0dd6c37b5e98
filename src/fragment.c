/* SPDX-License-Identifier: MIT */
/* The register-fragment reassembler; see fragment.h for the contract and docs/PROTOCOL.md for the
 * format. Every word comes from the guest: the payload is copied once into a private array, each
 * header field is bounded before it is used, a fragment lands in the vCPU's buffer only at the
 * position its bounded index gives, and a record is handed on only when every fragment-level
 * check has passed. */
#include "fragment.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* One vCPU's buffer holds the longest payload stream: a record of IVMON_REC_MAX bytes, its
 * trailer and the zeros that fill its last fragment, which are fewer than one fragment. */
#define FRAG_BUF (IVMON_REC_MAX + 8u * (IVMON_FRAG_WORDS_MAX + 1))
_Static_assert(IVMON_REC_MAX + IVMON_FRAG_TRAILER + 8u * IVMON_FRAG_WORDS_MAX - 1 <= FRAG_BUF,
               "a whole number of the largest fragments after the longest record fits");
_Static_assert(IVMON_REC_MAX < (1u << IVMON_FRAG_LEN_BITS), "len field holds every length");
_Static_assert(IVMON_FRAG_COUNT_MAX <= (1u << IVMON_FRAG_INDEX_BITS),
               "index field holds every index");
_Static_assert(IVMON_FRAG_WORDS_MAX < (1u << IVMON_FRAG_WORDS_BITS), "words field holds every K");

struct frag_vcpu {
    uint8_t buf[FRAG_BUF] __attribute__((aligned(8)));
    /* The record in progress; touched only by the thread feeding this vCPU. */
    int active;
    uint32_t len, count, next, tag;
    uint64_t first_hdr; /* its fragment 0's header word */
    uint32_t stall;     /* fragments since the record last advanced */
    uint64_t last_ns;   /* when it last advanced */
    /* The first fragment (header word, then payload) of the record completed last, to know a
     * replay of it from a new record. */
    uint64_t done_first[1 + IVMON_FRAG_WORDS_MAX];
    /* Written only by the feeding thread, read by any: see bump(). */
    _Atomic uint64_t c[IVMON_FRAG_C_MAX];
} __attribute__((aligned(64))); /* one vCPU's lines never share a cache line with another's */

struct ivmon_frag {
    unsigned vcpus, words;
    uint32_t max_record, stall_max;
    uint64_t expire_ns;
    struct frag_vcpu *v;
};

int ivmon__frag_new(struct ivmon_frag **ret, unsigned vcpus, unsigned words,
                    const struct ivmon_frag_limits *limits)
{
    static const struct ivmon_frag_limits defaults = {0};
    const struct ivmon_frag_limits *l = limits ? limits : &defaults;

    if (vcpus < 1 || vcpus > IVMON_FRAG_VCPUS_MAX || words < IVMON_FRAG_WORDS_MIN ||
        words > IVMON_FRAG_WORDS_MAX || (l->max_record && l->max_record < IVMON_FRAG_REC_MIN) ||
        l->max_record > IVMON_REC_MAX)
        return -EINVAL;
    struct ivmon_frag *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->v = aligned_alloc(_Alignof(struct frag_vcpu), vcpus * sizeof *f->v);
    if (!f->v) {
        free(f);
        return -ENOMEM;
    }
    memset(f->v, 0, vcpus * sizeof *f->v);
    f->vcpus = vcpus;
    f->words = words;
    f->max_record = l->max_record ? l->max_record : IVMON_REC_MAX;
    f->stall_max = l->stall_fragments ? l->stall_fragments : IVMON_FRAG_STALL_DEFAULT;
    f->expire_ns = l->expire_ns;
    *ret = f;
    return 0;
}

void ivmon__frag_free(struct ivmon_frag *f)
{
    if (!f)
        return;
    free(f->v);
    free(f);
}

unsigned ivmon__frag_vcpus(const struct ivmon_frag *f)
{
    return f->vcpus;
}

unsigned ivmon__frag_words(const struct ivmon_frag *f)
{
    return f->words;
}

/* Each counter has one writer, the vCPU's feeding thread, so a load and a store make the
 * increment; they are relaxed atomics only so that a reader on another thread sees whole values.
 * No ordering is needed: the counters describe, they guard nothing. */
static void bump(struct frag_vcpu *v, unsigned c)
{
    atomic_store_explicit(&v->c[c], atomic_load_explicit(&v->c[c], memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void give_up(struct frag_vcpu *v, unsigned why)
{
    v->active = 0;
    bump(v, why);
}

/* A fragment that does not advance the record in progress. A producer that keeps sending them
 * (duplicates, strays, refused words) will never finish the record, so after stall_max of them
 * it is given up and the vCPU's buffer is free for the next record. */
static int not_taken(const struct ivmon_frag *f, struct frag_vcpu *v, unsigned fate)
{
    bump(v, fate);
    if (v->active && ++v->stall >= f->stall_max)
        give_up(v, IVMON_FRAG_C_EXPIRED);
    return IVMON_FRAG_DROPPED;
}

static void expire_stale(const struct ivmon_frag *f, struct frag_vcpu *v, uint64_t now_ns)
{
    /* Unsigned: a clock that went backwards also expires, which only costs that record. */
    if (v->active && f->expire_ns && now_ns - v->last_ns > f->expire_ns)
        give_up(v, IVMON_FRAG_C_EXPIRED);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The checks only a complete record allows: the trailer is the record's CRC-32C, the bytes
 * after it are zero, and the tag is the low byte of the seq inside. */
static int record_ok(const struct frag_vcpu *v, unsigned words)
{
    size_t end = (size_t)v->count * words * 8;
    if (ivmon_crc32c(0, v->buf, v->len) != le32(v->buf + v->len))
        return 0;
    for (size_t i = v->len + IVMON_FRAG_TRAILER; i < end; i++)
        if (v->buf[i])
            return 0;
    return v->buf[offsetof(struct ivmon_rec_hdr, seq)] == v->tag;
}

int ivmon__frag_feed(struct ivmon_frag *f, unsigned vcpu, uint64_t hdr, const uint64_t *payload,
                     uint64_t now_ns, const void **ret_rec, size_t *ret_len)
{
    uint64_t words[IVMON_FRAG_WORDS_MAX];
    size_t per = (size_t)f->words * 8;

    if (vcpu >= f->vcpus)
        return -EINVAL;
    struct frag_vcpu *v = &f->v[vcpu];
    memcpy(words, payload, per); /* read the guest's words once; only this copy is used */
    bump(v, IVMON_FRAG_C_FRAGMENTS);
    expire_stale(f, v, now_ns);

    /* A guest built for another K computes its check over other words, so K is looked at
     * before the check: a misconfigured producer shows as such, not as line noise. After that,
     * a damaged fragment counts as damaged, and fields that fail under a good check come from
     * a producer that encodes wrongly. */
    if (IVMON_FRAG_FIELD(hdr, MAGIC) != IVMON_FRAG_MAGIC)
        return not_taken(f, v, IVMON_FRAG_C_BAD_MAGIC);
    if (IVMON_FRAG_FIELD(hdr, WORDS) != f->words)
        return not_taken(f, v, IVMON_FRAG_C_BAD_FIELD);
    if (IVMON_FRAG_FIELD(hdr, CHECK) != ivmon_frag_check(hdr, words, f->words))
        return not_taken(f, v, IVMON_FRAG_C_BAD_CHECK);
    uint32_t len = IVMON_FRAG_FIELD(hdr, LEN), index = IVMON_FRAG_FIELD(hdr, INDEX);
    uint32_t tag = IVMON_FRAG_FIELD(hdr, TAG);
    if ((hdr >> IVMON_FRAG_RESERVED_SHIFT & 1) || len < IVMON_FRAG_REC_MIN || len > f->max_record ||
        index >= ivmon_frag_count(len, f->words))
        return not_taken(f, v, IVMON_FRAG_C_BAD_FIELD);

    if (index == 0) {
        /* The same first fragment again (a trap replayed) is a duplicate, not a new record:
         * restarting the record in progress would count as destroyed a record that arrives
         * whole, and restarting one just completed would deliver it twice. */
        if (v->active && len == v->len && tag == v->tag && !memcmp(v->buf, words, per))
            return not_taken(f, v, IVMON_FRAG_C_DUPLICATE);
        if (!v->active && hdr == v->done_first[0] && !memcmp(v->done_first + 1, words, per))
            return not_taken(f, v, IVMON_FRAG_C_DUPLICATE);
        if (v->active)
            give_up(v, IVMON_FRAG_C_SUPERSEDED);
        v->active = 1;
        v->len = len;
        v->count = ivmon_frag_count(len, f->words);
        v->tag = tag;
        v->first_hdr = hdr;
        v->next = 0;
        bump(v, IVMON_FRAG_C_STARTED);
    } else if (!v->active) {
        return not_taken(f, v, IVMON_FRAG_C_ORPHAN);
    } else if (len != v->len || tag != v->tag) {
        return not_taken(f, v, IVMON_FRAG_C_STRAY);
    } else if (index < v->next) {
        return not_taken(f, v, IVMON_FRAG_C_DUPLICATE);
    } else if (index > v->next) {
        /* A fragment went missing: the record cannot complete, and this fragment cannot begin
         * one. */
        give_up(v, IVMON_FRAG_C_GAP);
        bump(v, IVMON_FRAG_C_ORPHAN);
        return IVMON_FRAG_DROPPED;
    }
    /* index == v->next < v->count: the copy ends inside buf (FRAG_BUF's assertion). */
    memcpy(v->buf + (size_t)index * per, words, per);
    v->next = index + 1;
    v->stall = 0;
    v->last_ns = now_ns;
    bump(v, IVMON_FRAG_C_TAKEN);
    if (v->next < v->count)
        return IVMON_FRAG_TAKEN;
    if (!record_ok(v, f->words)) {
        give_up(v, IVMON_FRAG_C_BAD_RECORD);
        return IVMON_FRAG_DROPPED;
    }
    v->active = 0;
    v->done_first[0] = v->first_hdr;
    memcpy(v->done_first + 1, v->buf, per);
    bump(v, IVMON_FRAG_C_COMPLETE);
    *ret_rec = v->buf;
    *ret_len = v->len;
    return IVMON_FRAG_RECORD;
}

int ivmon__frag_feed_ingest(ivmon *m, struct ivmon_frag *f, unsigned vcpu, uint64_t hdr,
                            const uint64_t *payload, uint64_t now_ns)
{
    const void *rec = NULL;
    size_t len = 0;
    int r = ivmon__frag_feed(f, vcpu, hdr, payload, now_ns, &rec, &len);
    if (r != IVMON_FRAG_RECORD)
        return r < 0 ? r : 0;
    /* The vCPU's buffer is private memory the guest cannot reach: no further copy needed. */
    return ivmon__ingest(m, rec, len);
}

int ivmon__frag_feed_invalid(struct ivmon_frag *f, unsigned vcpu, uint64_t now_ns)
{
    if (vcpu >= f->vcpus)
        return -EINVAL;
    struct frag_vcpu *v = &f->v[vcpu];
    bump(v, IVMON_FRAG_C_FRAGMENTS);
    expire_stale(f, v, now_ns);
    not_taken(f, v, IVMON_FRAG_C_BAD_ACCESS);
    return 0;
}

void ivmon__frag_note_overrun(struct ivmon_frag *f, unsigned vcpu)
{
    if (vcpu < f->vcpus)
        bump(&f->v[vcpu], IVMON_FRAG_C_OVERRUN);
}

unsigned ivmon__frag_expire(struct ivmon_frag *f, uint64_t now_ns)
{
    unsigned n = 0;
    for (unsigned i = 0; i < f->vcpus; i++) {
        int was = f->v[i].active;
        expire_stale(f, &f->v[i], now_ns);
        n += was && !f->v[i].active;
    }
    return n;
}

void ivmon__frag_counters(const struct ivmon_frag *f, uint64_t *ret)
{
    for (unsigned c = 0; c < IVMON_FRAG_C_MAX; c++) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < f->vcpus; i++)
            sum += atomic_load_explicit(&f->v[i].c[c], memory_order_relaxed);
        ret[c] = sum;
    }
}

const char *ivmon__frag_counter_name(unsigned c)
{
    static const char *const names[IVMON_FRAG_C_MAX] = {
        [IVMON_FRAG_C_FRAGMENTS] = "fragments",
        [IVMON_FRAG_C_BAD_MAGIC] = "traps that are not fragments (bad magic)",
        [IVMON_FRAG_C_BAD_CHECK] = "fragments whose check does not match",
        [IVMON_FRAG_C_BAD_FIELD] = "fragments with a field out of range",
        [IVMON_FRAG_C_BAD_ACCESS] = "traps that cannot carry a fragment",
        [IVMON_FRAG_C_ORPHAN] = "continuations of no record begun",
        [IVMON_FRAG_C_STRAY] = "fragments of another record in the middle of one",
        [IVMON_FRAG_C_DUPLICATE] = "duplicate fragments",
        [IVMON_FRAG_C_TAKEN] = "fragments taken",
        [IVMON_FRAG_C_STARTED] = "records begun",
        [IVMON_FRAG_C_COMPLETE] = "records completed",
        [IVMON_FRAG_C_GAP] = "records given up for a missing fragment",
        [IVMON_FRAG_C_SUPERSEDED] = "records given up because a new one began",
        [IVMON_FRAG_C_BAD_RECORD] = "records whose CRC, padding or tag is wrong",
        [IVMON_FRAG_C_EXPIRED] = "records given up as stalled",
        [IVMON_FRAG_C_OVERRUN] = "records dropped because the consumer fell behind",
    };
    return c < IVMON_FRAG_C_MAX ? names[c] : NULL;
}

void ivmon__frag_fold_stats(const struct ivmon_frag *f, uint64_t *stats)
{
    uint64_t c[IVMON_FRAG_C_MAX];
    ivmon__frag_counters(f, c);
    stats[IVMON_STAT_FRAGMENTS] = c[IVMON_FRAG_C_FRAGMENTS];
    stats[IVMON_STAT_FRAG_REJECTED] = c[IVMON_FRAG_C_BAD_MAGIC] + c[IVMON_FRAG_C_BAD_CHECK] +
                                      c[IVMON_FRAG_C_BAD_FIELD] + c[IVMON_FRAG_C_BAD_ACCESS];
    stats[IVMON_STAT_FRAG_UNMATCHED] = c[IVMON_FRAG_C_ORPHAN] + c[IVMON_FRAG_C_STRAY];
    stats[IVMON_STAT_FRAG_DUPLICATES] = c[IVMON_FRAG_C_DUPLICATE];
    stats[IVMON_STAT_FRAG_DAMAGED] =
        c[IVMON_FRAG_C_GAP] + c[IVMON_FRAG_C_SUPERSEDED] + c[IVMON_FRAG_C_BAD_RECORD];
    stats[IVMON_STAT_FRAG_EXPIRED] = c[IVMON_FRAG_C_EXPIRED];
    stats[IVMON_STAT_OVERRUNS] = c[IVMON_FRAG_C_OVERRUN];
}
