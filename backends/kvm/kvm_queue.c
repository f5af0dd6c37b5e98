/* SPDX-License-Identifier: MIT */
/* The kvm: backend's per-vCPU queues of completed records and their merge; see kvm_queue.h.
 * Both sides are threads of the host process, so the indices are trusted; the records are the
 * guest's bytes, but already bounded to IVMON_REC_MAX by the reassembler, and only copied. */
#include "kvm/kvm_queue.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ivmon/proto.h"

/* A queued record: this header, then the record bytes, padded to 8. */
struct kvm_entry {
    uint64_t ticket;
    uint32_t len;
    uint32_t reserved;
};

/* One vCPU's queue. The producer and consumer halves sit on separate cache lines. */
struct kvm_queue {
    _Alignas(64) _Atomic uint64_t prod; /* bytes published, by the producer (release) */
    uint64_t prod_priv;                 /* producer: bytes reserved */
    uint64_t cons_cache;                /* producer: the consumer index last read */
    _Alignas(64) _Atomic uint64_t cons; /* bytes consumed, by the consumer (release) */
    uint64_t cons_priv;                 /* consumer: bytes popped */
    uint64_t prod_seen;                 /* consumer: prod as last read */
    uint8_t *data;
};

struct ivmon_kvm_queues {
    /* Written once by new, read by every thread. */
    unsigned vcpus;
    uint64_t size, mask;
    struct kvm_queue *q;
    /* Written by every producer, each on its own cache line. */
    struct {
        _Alignas(64) _Atomic uint64_t tickets; /* the next ticket */
        _Alignas(64) _Atomic uint32_t waiting; /* 1: the consumer sleeps; who clears it wakes it */
    } * sh;
    /* The consumer's. */
    uint64_t next_ticket;
    int stuck;            /* next_ticket was found missing ... */
    uint64_t stuck_since; /* ... at this time */
    uint64_t late;
};

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

int ivmon_kvm_queues_new(struct ivmon_kvm_queues **ret, unsigned vcpus, uint64_t size)
{
    if (vcpus < 1 || size < IVMON_KVM_QUEUE_MIN || size > IVMON_KVM_QUEUE_MAX ||
        (size & (size - 1)))
        return -EINVAL;
    struct ivmon_kvm_queues *qs = calloc(1, sizeof *qs);
    if (!qs)
        return -ENOMEM;
    qs->vcpus = vcpus;
    qs->size = size;
    qs->mask = size - 1;
    /* aligned_alloc: the members are cache-line aligned, malloc's memory need not be. */
    qs->sh = aligned_alloc(64, sizeof *qs->sh);
    qs->q = aligned_alloc(_Alignof(struct kvm_queue), vcpus * sizeof *qs->q);
    if (!qs->sh || !qs->q) {
        ivmon_kvm_queues_free(qs);
        return -ENOMEM;
    }
    memset(qs->q, 0, vcpus * sizeof *qs->q);
    atomic_init(&qs->sh->tickets, 0);
    /* Asleep until the consumer first looks: the first record wakes it. */
    atomic_init(&qs->sh->waiting, 1);
    for (unsigned i = 0; i < vcpus; i++) {
        qs->q[i].data = malloc(size);
        if (!qs->q[i].data) {
            ivmon_kvm_queues_free(qs);
            return -ENOMEM;
        }
    }
    *ret = qs;
    return 0;
}

void ivmon_kvm_queues_free(struct ivmon_kvm_queues *qs)
{
    if (!qs)
        return;
    if (qs->q)
        for (unsigned i = 0; i < qs->vcpus; i++)
            free(qs->q[i].data);
    free(qs->q);
    free(qs->sh);
    free(qs);
}

static void copy_in(const struct ivmon_kvm_queues *qs, struct kvm_queue *q, uint64_t idx,
                    const void *src, uint64_t len)
{
    uint64_t off = idx & qs->mask, first = qs->size - off;
    if (first > len)
        first = len;
    memcpy(q->data + off, src, first);
    memcpy(q->data, (const uint8_t *)src + first, len - first);
}

static void copy_out(const struct ivmon_kvm_queues *qs, const struct kvm_queue *q, uint64_t idx,
                     void *dst, uint64_t len)
{
    uint64_t off = idx & qs->mask, first = qs->size - off;
    if (first > len)
        first = len;
    memcpy(dst, q->data + off, first);
    memcpy((uint8_t *)dst + first, q->data, len - first);
}

/* ---- producers ------------------------------------------------------------------------------ */

int ivmon_kvm_queues_reserve(struct ivmon_kvm_queues *qs, unsigned i, size_t len,
                             struct ivmon_kvm_slot *ret)
{
    struct kvm_queue *q = &qs->q[i];
    if (len > IVMON_REC_MAX)
        return -EINVAL;
    uint64_t need = align8(sizeof(struct kvm_entry) + len);
    if (qs->size - (q->prod_priv - q->cons_cache) < need) {
        /* Acquire: the consumer's reads of the space about to be reused are done. */
        q->cons_cache = atomic_load_explicit(&q->cons, memory_order_acquire);
        if (qs->size - (q->prod_priv - q->cons_cache) < need)
            return -ENOBUFS;
    }
    ret->ticket = atomic_fetch_add_explicit(&qs->sh->tickets, 1, memory_order_relaxed);
    ret->at = q->prod_priv;
    ret->len = (uint32_t)len;
    q->prod_priv += need;
    return 0;
}

int ivmon_kvm_queues_publish(struct ivmon_kvm_queues *qs, unsigned i,
                             const struct ivmon_kvm_slot *slot, const void *rec)
{
    struct kvm_queue *q = &qs->q[i];
    struct kvm_entry e = {.ticket = slot->ticket, .len = slot->len};
    copy_in(qs, q, slot->at, &e, sizeof e);
    copy_in(qs, q, slot->at + sizeof e, rec, slot->len);
    /* Release: the entry's bytes are visible before the index that covers them. */
    atomic_store_explicit(&q->prod, slot->at + align8(sizeof e + slot->len), memory_order_release);
    /* Full fence: orders the store of prod before the load of waiting, against the consumer's
     * store of waiting before its last look at prod (prepare_sleep). One of the two sees the
     * other's store, so a record published now never sits there with the consumer asleep. */
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&qs->sh->waiting, memory_order_relaxed) &&
           atomic_exchange_explicit(&qs->sh->waiting, 0, memory_order_relaxed);
}

/* ---- the consumer --------------------------------------------------------------------------- */

static void look(struct ivmon_kvm_queues *qs)
{
    /* Acquire: pairs with publish's release; the entries up to prod are complete. */
    for (unsigned i = 0; i < qs->vcpus; i++)
        qs->q[i].prod_seen = atomic_load_explicit(&qs->q[i].prod, memory_order_acquire);
}

/* The queue whose oldest record seen carries ticket t, or NULL with *ret_min the smallest
 * ticket at the head of any queue (UINT64_MAX: all empty). */
static struct kvm_queue *find(struct ivmon_kvm_queues *qs, uint64_t t, uint64_t *ret_min)
{
    uint64_t min = UINT64_MAX;
    for (unsigned i = 0; i < qs->vcpus; i++) {
        struct kvm_queue *q = &qs->q[i];
        struct kvm_entry e;
        if (q->cons_priv == q->prod_seen)
            continue;
        copy_out(qs, q, q->cons_priv, &e, sizeof e);
        if (e.ticket == t)
            return q;
        if (e.ticket < min)
            min = e.ticket;
    }
    *ret_min = min;
    return NULL;
}

/* Drops the head entry with ticket t: skipped as stuck, it came after all, too late to keep
 * the order. Its record's sequence number has been counted as missed already. */
static void drop_late(struct ivmon_kvm_queues *qs, uint64_t t)
{
    uint64_t min;
    struct kvm_queue *q = find(qs, t, &min);
    struct kvm_entry e;
    copy_out(qs, q, q->cons_priv, &e, sizeof e);
    q->cons_priv += align8(sizeof e + e.len);
    qs->late++;
}

int ivmon_kvm_queues_pop(struct ivmon_kvm_queues *qs, void *buf, uint64_t now_ns)
{
    uint64_t min;
    struct kvm_queue *q = find(qs, qs->next_ticket, &min);
    if (!q) {
        look(qs);
        q = find(qs, qs->next_ticket, &min);
    }
    while (!q && min < qs->next_ticket) {
        drop_late(qs, min);
        q = find(qs, qs->next_ticket, &min);
    }
    if (!q) {
        if (min == UINT64_MAX) {
            qs->stuck = 0;
            return 0;
        }
        if (!qs->stuck) {
            qs->stuck = 1;
            qs->stuck_since = now_ns;
        }
        if (now_ns - qs->stuck_since < IVMON_KVM_TICKET_WAIT_NS)
            return -EAGAIN;
        qs->next_ticket = min;
        q = find(qs, min, &min);
    }
    qs->stuck = 0;
    struct kvm_entry e;
    copy_out(qs, q, q->cons_priv, &e, sizeof e);
    copy_out(qs, q, q->cons_priv + sizeof e, buf, e.len);
    q->cons_priv += align8(sizeof e + e.len);
    qs->next_ticket = e.ticket + 1;
    return (int)e.len;
}

void ivmon_kvm_queues_commit(struct ivmon_kvm_queues *qs)
{
    /* Release: the copies out of the entries are done before a producer may overwrite them. */
    for (unsigned i = 0; i < qs->vcpus; i++)
        if (atomic_load_explicit(&qs->q[i].cons, memory_order_relaxed) != qs->q[i].cons_priv)
            atomic_store_explicit(&qs->q[i].cons, qs->q[i].cons_priv, memory_order_release);
}

void ivmon_kvm_queues_awake(struct ivmon_kvm_queues *qs)
{
    atomic_store_explicit(&qs->sh->waiting, 0, memory_order_relaxed);
}

int ivmon_kvm_queues_prepare_sleep(struct ivmon_kvm_queues *qs)
{
    ivmon_kvm_queues_commit(qs);
    atomic_store_explicit(&qs->sh->waiting, 1, memory_order_relaxed);
    /* Full fence: pairs with the one in publish (see there). */
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned i = 0; i < qs->vcpus; i++)
        if (atomic_load_explicit(&qs->q[i].prod, memory_order_relaxed) != qs->q[i].cons_priv) {
            ivmon_kvm_queues_awake(qs);
            return 0;
        }
    return 1;
}

uint64_t ivmon_kvm_queues_late(const struct ivmon_kvm_queues *qs)
{
    return qs->late;
}
