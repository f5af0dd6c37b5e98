/* SPDX-License-Identifier: MIT */
/*
 * The kvm: backend's hand-off from the vCPU threads to the session thread: one single-producer
 * single-consumer queue of completed records per vCPU, in private host memory, merged by the
 * consumer in the order the records completed.
 *
 * Order: every record takes a ticket from one shared counter when it is queued, and the
 * consumer takes ticket n + 1 only after ticket n. A guest producer emits one record at a time
 * and its vCPU is stopped in the trap until the VMM's call returns, so completion order is the
 * guest's sequence order even when consecutive records come from different vCPUs. A ticket is
 * taken only once the record is sure to fit, so every ticket taken is published; one that stays
 * missing belongs to a thread stopped between the two steps, and is skipped after
 * IVMON_KVM_TICKET_WAIT_NS so that one frozen vCPU thread cannot stop the session (if its record
 * comes later after all, it is dropped and counted as late: the order cannot be kept).
 *
 * Wakeups, as the ring's notification suppression: the consumer calls prepare_sleep before it
 * sleeps, publish returns 1 when the consumer asked to be woken, and at most one publish per
 * sleep does. Threads: reserve and publish for queue i from queue i's producer thread only; the
 * rest from the consumer thread only.
 */
#ifndef IVMON_KVM_QUEUE_H
#define IVMON_KVM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define IVMON_KVM_QUEUE_MIN      (32u << 10) /* two entries of the longest record */
#define IVMON_KVM_QUEUE_MAX      (64u << 20)
#define IVMON_KVM_TICKET_WAIT_NS 100000000u

struct ivmon_kvm_queues;

/* A record's place, between reserve and publish. */
struct ivmon_kvm_slot {
    uint64_t ticket;
    uint64_t at; /* producer index of the entry */
    uint32_t len;
};

/* vcpus queues of size bytes each (a power of two, IVMON_KVM_QUEUE_MIN..IVMON_KVM_QUEUE_MAX).
 * Returns 0, -EINVAL or -ENOMEM. */
int ivmon_kvm_queues_new(struct ivmon_kvm_queues **ret, unsigned vcpus, uint64_t size);
void ivmon_kvm_queues_free(struct ivmon_kvm_queues *qs);

/* Producer i: makes room for a record of len bytes (<= IVMON_REC_MAX) and takes its ticket.
 * Returns 0, or -ENOBUFS if queue i has no room (nothing taken). */
int ivmon_kvm_queues_reserve(struct ivmon_kvm_queues *qs, unsigned i, size_t len,
                             struct ivmon_kvm_slot *ret);
/* Producer i: writes the record in the reserved slot and makes it visible. Returns 1 if the
 * consumer is asleep and this call must wake it, else 0. */
int ivmon_kvm_queues_publish(struct ivmon_kvm_queues *qs, unsigned i,
                             const struct ivmon_kvm_slot *slot, const void *rec);

/* Consumer: copies the next record in completion order into buf (IVMON_REC_MAX bytes) and
 * returns its length; 0 if there is none; -EAGAIN if the next ticket is still missing (call
 * again within a millisecond or so; now_ns is a monotonic clock, for the skip). */
int ivmon_kvm_queues_pop(struct ivmon_kvm_queues *qs, void *buf, uint64_t now_ns);
/* Consumer: hands the space of the records popped so far back to the producers. */
void ivmon_kvm_queues_commit(struct ivmon_kvm_queues *qs);
/* Consumer: awake, producers need not wake it. */
void ivmon_kvm_queues_awake(struct ivmon_kvm_queues *qs);
/* Consumer: about to sleep. Returns 1 if it may (every queue empty; the next publish wakes it),
 * 0 if records arrived. */
int ivmon_kvm_queues_prepare_sleep(struct ivmon_kvm_queues *qs);
/* Consumer: records dropped because their ticket had been skipped as stuck. */
uint64_t ivmon_kvm_queues_late(const struct ivmon_kvm_queues *qs);

#endif /* IVMON_KVM_QUEUE_H */
