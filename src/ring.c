/* SPDX-License-Identifier: MIT */
/* The shared-memory ring, both halves. See ring.h for the contract and docs/PROTOCOL.md for the
 * layout. */
#include "ring.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "lock-free 64-bit atomics");
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "lock-free 32-bit atomics");

/* The shared header holds plain integers (it is a wire format); these views give the C11
 * atomic operations on them. Both sides are the same width and lock-free, so this is the same
 * memory access a native _Atomic field would make. */
static inline _Atomic uint64_t *a64(uint64_t *p)
{
    return (_Atomic uint64_t *)p;
}
static inline _Atomic uint32_t *a32(uint32_t *p)
{
    return (_Atomic uint32_t *)p;
}

static inline uint64_t align_rec(uint64_t len)
{
    return (len + IVMON_REC_ALIGN - 1) & ~(uint64_t)(IVMON_REC_ALIGN - 1);
}

uint64_t ivmon_ring_data_size_for(size_t region_size)
{
    if (region_size < IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA)
        return 0;
    uint64_t avail = region_size - IVMON_RING_HDR_SIZE, size = IVMON_RING_MIN_DATA;
    while (size * 2 <= avail && size * 2 <= IVMON_RING_MAX_DATA)
        size *= 2;
    return size;
}

int ivmon_ring_format(void *base, size_t region_size, uint32_t flags)
{
    uint64_t size = ivmon_ring_data_size_for(region_size);
    if (!size)
        return -EINVAL;
    struct ivmon_ring_hdr *h = base;
    atomic_store_explicit(a64(&h->magic), 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memset((uint8_t *)h + sizeof h->magic, 0, sizeof *h - sizeof h->magic);
    h->proto_major = IVMON_PROTO_MAJOR;
    h->proto_minor = IVMON_PROTO_MINOR;
    h->hdr_size = IVMON_RING_HDR_SIZE;
    h->data_offset = IVMON_RING_HDR_SIZE;
    h->data_size = size;
    h->flags = flags;
    /* Release: a peer that reads the magic with acquire sees every field above. */
    atomic_store_explicit(a64(&h->magic), IVMON_RING_MAGIC, memory_order_release);
    return 0;
}

int ivmon_ring_attach(struct ivmon_ring *r, void *base, size_t region_size, const char **ret_why)
{
    struct ivmon_ring_hdr *h = base;
    const char *why = NULL;

    if (region_size < IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA) {
        *ret_why = "region too small for a ring";
        return -EPROTO;
    }
    /* Acquire pairs with the release in ivmon_ring_format. */
    uint64_t magic = atomic_load_explicit(a64(&h->magic), memory_order_acquire);
    if (magic == 0)
        return -EAGAIN;
    /* Each field read exactly once into a private copy: the peer may change them under us. */
    uint16_t major = *(volatile uint16_t *)&h->proto_major;
    uint64_t offset = *(volatile uint64_t *)&h->data_offset;
    uint64_t size = *(volatile uint64_t *)&h->data_size;
    uint32_t flags = *(volatile uint32_t *)&h->flags;

    if (magic != IVMON_RING_MAGIC)
        why = "bad ring magic";
    else if (major != IVMON_PROTO_MAJOR)
        why = "unsupported ring protocol version";
    else if (offset != IVMON_RING_HDR_SIZE)
        why = "bad ring data offset";
    else if (size < IVMON_RING_MIN_DATA || size > IVMON_RING_MAX_DATA || (size & (size - 1)))
        why = "bad ring data size";
    else if (size > region_size - IVMON_RING_HDR_SIZE)
        why = "ring data size exceeds the region";
    if (why) {
        *ret_why = why;
        return -EPROTO;
    }
    uint64_t prod = atomic_load_explicit(a64(&h->prod), memory_order_acquire);
    uint64_t cons = atomic_load_explicit(a64(&h->cons), memory_order_acquire);
    if (prod - cons > size || (prod % IVMON_REC_ALIGN) || (cons % IVMON_REC_ALIGN)) {
        *ret_why = "ring indices inconsistent";
        return -EPROTO;
    }
    memset(r, 0, sizeof *r);
    r->hdr = h;
    r->data = (uint8_t *)base + IVMON_RING_HDR_SIZE;
    r->size = size;
    r->mask = size - 1;
    r->cons = cons;
    r->prod_seen = cons;
    r->prod = prod;
    r->flags = flags;
    return 0;
}

/* Copies len bytes at ring offset idx into dst, in two pieces when they wrap. */
static void copy_out(const struct ivmon_ring *r, uint64_t idx, void *dst, uint64_t len)
{
    uint64_t off = idx & r->mask, first = r->size - off;
    if (first > len)
        first = len;
    memcpy(dst, r->data + off, first);
    memcpy((uint8_t *)dst + first, r->data, len - first);
}

static void copy_in(struct ivmon_ring *r, uint64_t idx, const void *src, uint64_t len)
{
    uint64_t off = idx & r->mask, first = r->size - off;
    if (first > len)
        first = len;
    memcpy(r->data + off, src, first);
    memcpy(r->data, (const uint8_t *)src + first, len - first);
}

int ivmon_ring_read(struct ivmon_ring *r, void *buf, size_t cap, const char **ret_why)
{
    if (cap < IVMON_REC_MAX)
        return -EINVAL; /* the caller's mistake, not the producer's: any valid record must fit */
    uint64_t avail = r->prod_seen - r->cons;
    if (avail == 0) {
        /* Acquire pairs with the producer's release of prod: the record bytes are visible. */
        r->prod_seen = atomic_load_explicit(a64(&r->hdr->prod), memory_order_acquire);
        avail = r->prod_seen - r->cons;
        if (avail == 0)
            return 0;
    }
    if (avail > r->size || (avail % IVMON_REC_ALIGN)) {
        *ret_why = "producer index out of bounds";
        return -EPROTO;
    }
    if (avail < sizeof(struct ivmon_rec_hdr)) {
        *ret_why = "truncated record header in ring";
        return -EPROTO;
    }
    struct ivmon_rec_hdr h;
    copy_out(r, r->cons, &h, sizeof h);
    if (h.len < sizeof h || h.len > IVMON_REC_MAX) {
        *ret_why = "record length out of bounds";
        return -EPROTO;
    }
    uint64_t span = align_rec(h.len);
    if (span > avail) {
        *ret_why = "record extends past the producer index";
        return -EPROTO;
    }
    /* Copy the whole record, header again included, so that what is validated later is exactly
     * what sits in buf; the length is taken from our private h, never re-read. */
    copy_out(r, r->cons, buf, h.len);
    ((struct ivmon_rec_hdr *)buf)->len = h.len;
    r->cons += span;
    return (int)h.len;
}

void ivmon_ring_consumer_commit(struct ivmon_ring *r)
{
    /* Release: our reads of the records happen before the producer may overwrite them. */
    atomic_store_explicit(a64(&r->hdr->cons), r->cons, memory_order_release);
}

void ivmon_ring_consumer_awake(struct ivmon_ring *r)
{
    atomic_store_explicit(a32(&r->hdr->cons_waiting), 0, memory_order_relaxed);
}

int ivmon_ring_consumer_linger(struct ivmon_ring *r, unsigned spins)
{
    for (unsigned i = 0; i < spins; i++) {
        if (atomic_load_explicit(a64(&r->hdr->prod), memory_order_relaxed) != r->cons)
            return 1;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    return 0;
}

int ivmon_ring_consumer_prepare_sleep(struct ivmon_ring *r)
{
    ivmon_ring_consumer_commit(r);
    atomic_store_explicit(a32(&r->hdr->cons_waiting), 1, memory_order_relaxed);
    /* Full fence: orders our store of cons_waiting before our load of prod, against the
     * producer's store of prod before its load of cons_waiting (ivmon_producer_emit). One of us
     * sees the other's store, so a record published now is never left without a doorbell. */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t prod = atomic_load_explicit(a64(&r->hdr->prod), memory_order_acquire);
    if (prod == r->cons)
        return 1;
    /* Records arrived: the consumer stays awake, so the producer must not ring for them. Safe
     * against a producer that already took the flag: that only costs a spurious wakeup. */
    ivmon_ring_consumer_awake(r);
    return 0;
}

void ivmon_producer_init(struct ivmon_producer *p, const struct ivmon_ring *r, int lossless)
{
    memset(p, 0, sizeof *p);
    p->ring = *r;
    p->next_seq = 1;
    p->lossless = lossless;
    p->cons_cache = r->cons;
    p->published = r->prod;
}

/* Whether need bytes are free. The consumer index is read from shared memory only when the
 * cached copy says "no room": a stale copy only underestimates the room, and not touching the
 * consumer's cache line on every record keeps the two sides from bouncing it between CPUs.
 * A consumer index that claims more than the ring holds counts as "no room": a broken consumer
 * costs us records, never memory safety. */
static int producer_has_room(struct ivmon_producer *p, uint64_t need)
{
    if (p->ring.size - (p->ring.prod - p->cons_cache) >= need)
        return 1;
    /* Acquire: the consumer's reads of the space we are about to reuse are done. */
    uint64_t cons = atomic_load_explicit(a64(&p->ring.hdr->cons), memory_order_acquire);
    if (p->ring.prod - cons > p->ring.size)
        return 0;
    p->cons_cache = cons;
    return p->ring.size - (p->ring.prod - cons) >= need;
}

/* Copies a record in behind the private index. The consumer does not see it until
 * producer_publish stores the index. */
static void producer_put(struct ivmon_producer *p, const struct ivmon_rec_hdr *rec)
{
    static const uint8_t zeros[IVMON_REC_ALIGN];
    uint64_t span = align_rec(rec->len);
    copy_in(&p->ring, p->ring.prod, rec, rec->len);
    copy_in(&p->ring, p->ring.prod + rec->len, zeros, span - rec->len);
    p->ring.prod += span;
}

/* Writes the pending loss report, stamped time_ns, if there is one and it fits. Returns 1 if none
 * is pending any more, 0 if it is still pending. */
static int producer_flush_lost(struct ivmon_producer *p, uint64_t time_ns)
{
    if (!p->lost_count)
        return 1;
    struct {
        struct ivmon_rec_hdr h;
        struct ivmon_rec_lost l;
    } rec = {0};
    if (!producer_has_room(p, align_rec(sizeof rec)))
        return 0;
    rec.h.type = IVMON_REC_LOST;
    rec.h.len = sizeof rec;
    rec.h.seq = p->next_seq++;
    rec.h.time_ns = time_ns; /* the report is made now, on behalf of the record that follows */
    rec.l.count = p->lost_count;
    rec.l.first_seq = p->lost_first;
    rec.l.last_seq = p->lost_first + p->lost_count - 1;
    rec.l.reason = IVMON_LOST_RING_FULL;
    producer_put(p, &rec.h);
    p->lost_count = 0;
    return 1;
}

/* Takes a sequence number for rec and writes it, unpublished; or drops it and counts it.
 * Returns 0, -ENOBUFS (dropped), -EAGAIN (lossless and full) or -EINVAL. */
static int producer_write(struct ivmon_producer *p, struct ivmon_rec_hdr *rec)
{
    if (rec->len < sizeof *rec || rec->len > IVMON_REC_MAX)
        return -EINVAL;
    int flushed = producer_flush_lost(p, rec->time_ns);
    if (flushed && producer_has_room(p, align_rec(rec->len))) {
        rec->seq = p->next_seq++;
        producer_put(p, rec);
        return 0;
    }
    if (p->lossless)
        return -EAGAIN; /* lossless rings never hold a pending loss: nothing else to do */
    rec->seq = p->next_seq++;
    if (!p->lost_count)
        p->lost_first = rec->seq;
    p->lost_count++;
    p->dropped_total++;
    atomic_store_explicit(a64(&p->ring.hdr->prod_dropped), p->dropped_total, memory_order_relaxed);
    return -ENOBUFS;
}

int ivmon_producer_publish(struct ivmon_producer *p)
{
    int owed = p->doorbell_owed;
    p->doorbell_owed = 0;
    if (p->ring.prod == p->published)
        return owed;
    /* Release: the record bytes are visible before the consumer can see the new index. */
    atomic_store_explicit(a64(&p->ring.hdr->prod), p->ring.prod, memory_order_release);
    p->published = p->ring.prod;
    /* Full fence: orders our store of prod before our load of cons_waiting, and pairs with the
     * one in ivmon_ring_consumer_prepare_sleep. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(a32(&p->ring.hdr->cons_waiting), memory_order_relaxed))
        return owed;
    /* One doorbell per sleep: whoever clears the flag rings. */
    return atomic_exchange_explicit(a32(&p->ring.hdr->cons_waiting), 0, memory_order_relaxed) !=
               0 ||
           owed;
}

int ivmon_producer_emit_more(struct ivmon_producer *p, struct ivmon_rec_hdr *rec)
{
    int r = producer_write(p, rec);
    if (r < 0) {
        /* The consumer must see what is written to make room; a doorbell that this wants is
         * owed to the caller's next publish. */
        p->doorbell_owed |= ivmon_producer_publish(p);
        return r;
    }
    return p->ring.prod - p->published >= IVMON_PRODUCER_BATCH ? ivmon_producer_publish(p) : 0;
}

int ivmon_producer_emit(struct ivmon_producer *p, struct ivmon_rec_hdr *rec)
{
    int r = producer_write(p, rec);
    int doorbell = ivmon_producer_publish(p);
    if (r < 0) {
        p->doorbell_owed |= doorbell;
        return r;
    }
    return doorbell;
}
