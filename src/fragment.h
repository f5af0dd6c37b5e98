/* SPDX-License-Identifier: MIT */
/*
 * The register-fragment reassembler: the core half of every register transport (the KVM port-I/O
 * backend, the Xen vm_event backend). Not installed. The wire format is include/ivmon/fragment.h
 * and docs/PROTOCOL.md, "Register fragments".
 *
 * A transport creates one reassembler per session with the number of vCPUs and its K (payload
 * words per fragment), and feeds it every trap: the vCPU it came from, the header word and the K
 * payload words, all hostile. Each vCPU has its own record in progress (bounded by
 * IVMON_REC_MAX), so records on different vCPUs may interleave freely; fragments of one record
 * must arrive in order on one vCPU. Whatever goes wrong is counted per kind
 * (IVMON_FRAG_C_*) and never reaches the record layer: a record destroyed in transit is not
 * handed on, so its sequence number shows up as IVMON_STAT_MISSED when a later record arrives,
 * exactly as a record lost in any other way, and delivered + lost + malformed + missed ==
 * seq_span still holds. A complete record is handed to the caller (ivmon__frag_feed) or straight
 * to ivmon__ingest (ivmon__frag_feed_ingest), which validates, accounts and dispatches it.
 *
 * Threads: each vCPU's state has one writer. Feeds for one vcpu index must not overlap; feeds for
 * different indexes may run concurrently on different threads (the KVM backend calls it from
 * the VMM's vCPU threads). The counters may be read (ivmon__frag_counters, _fold_stats) from any
 * thread at any time: they are relaxed atomics, each written by its vCPU's thread only.
 * ivmon__frag_expire touches every vCPU, so only a single-threaded user may call it.
 */
#ifndef IVMON_FRAGMENT_INTERNAL_H
#define IVMON_FRAGMENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "ivmon/fragment.h"

#define IVMON_FRAG_VCPUS_MAX     4096u
#define IVMON_FRAG_STALL_DEFAULT 64u

struct ivmon_frag;

struct ivmon_frag_limits {
    /* Longest record accepted, IVMON_FRAG_REC_MIN..IVMON_REC_MAX; 0: IVMON_REC_MAX. */
    uint32_t max_record;
    /* A record in progress is given up (IVMON_FRAG_C_EXPIRED) after this many fragments on its
     * vCPU that do not advance it (duplicates, strays, refused fragments); 0: the default,
     * IVMON_FRAG_STALL_DEFAULT. An honest producer sends none. */
    uint32_t stall_fragments;
    /* ... or when a fragment arrives more than this long after the record last advanced; 0:
     * never. Time is the caller's now_ns, any monotonic clock. */
    uint64_t expire_ns;
};

/* Creates a reassembler for vCPUs 0..vcpus-1 (1..IVMON_FRAG_VCPUS_MAX) and fragments of `words`
 * payload words (IVMON_FRAG_WORDS_MIN..IVMON_FRAG_WORDS_MAX). limits may be NULL (defaults).
 * Returns 0 and stores it in *ret, -EINVAL for an argument out of range, or -ENOMEM. Memory:
 * about 16.5 KiB per vCPU, allocated here; feeding never allocates. */
int ivmon__frag_new(struct ivmon_frag **ret, unsigned vcpus, unsigned words,
                    const struct ivmon_frag_limits *limits);
/* Frees it; accepts NULL. */
void ivmon__frag_free(struct ivmon_frag *f);

unsigned ivmon__frag_vcpus(const struct ivmon_frag *f);
unsigned ivmon__frag_words(const struct ivmon_frag *f);

/* ivmon__frag_feed results */
#define IVMON_FRAG_TAKEN   0 /* the fragment advanced a record that is not complete yet */
#define IVMON_FRAG_RECORD  1 /* the fragment completed a record: *ret_rec, *ret_len */
#define IVMON_FRAG_DROPPED 2 /* the fragment was refused or fits nothing; counted */

/* Feeds one trap from vCPU `vcpu`: the header word and ivmon__frag_words() payload words (read
 * once each, here). now_ns is the caller's monotonic time, for expiry. Returns an IVMON_FRAG_*
 * result, or -EINVAL if vcpu is out of range (a caller bug, not the guest's). On
 * IVMON_FRAG_RECORD, *ret_rec and *ret_len give the record (len bytes, 8-byte aligned, its
 * fragment-level checks passed, its content not validated yet), valid until the next feed for
 * the same vCPU; otherwise they are untouched. Bounded work: at most one record's CRC. */
int ivmon__frag_feed(struct ivmon_frag *f, unsigned vcpu, uint64_t hdr, const uint64_t *payload,
                     uint64_t now_ns, const void **ret_rec, size_t *ret_len);

/* ivmon__frag_feed, then a completed record goes to ivmon__ingest(m, ...): for transports whose
 * traps arrive on the session's own thread. Returns what ivmon__ingest returned for a completed
 * record (1 dispatched, 0 rejected as malformed, a handler's negative errno), 0 when no record
 * completed, or -EINVAL for a vcpu out of range. */
int ivmon__frag_feed_ingest(ivmon *m, struct ivmon_frag *f, unsigned vcpu, uint64_t hdr,
                            const uint64_t *payload, uint64_t now_ns);

/* A trap on vCPU `vcpu` that cannot carry a fragment (KVM: an access to the port that is not a
 * one-byte OUT): counted as a fragment and as IVMON_FRAG_C_BAD_ACCESS, and as a stall of the
 * record in progress. Returns 0 or -EINVAL. */
int ivmon__frag_feed_invalid(struct ivmon_frag *f, unsigned vcpu, uint64_t now_ns);

/* The transport dropped a record this reassembler completed on `vcpu` (its hand-off queue was
 * full): counted as IVMON_FRAG_C_OVERRUN. Call from the vCPU's feeding thread. */
void ivmon__frag_note_overrun(struct ivmon_frag *f, unsigned vcpu);

/* Gives up, as expired, every record in progress whose last progress is more than
 * limits.expire_ns before now_ns (nothing if expire_ns is 0). Touches every vCPU: only for
 * users that feed every vCPU from one thread, and not while a feed runs. Returns how many. */
unsigned ivmon__frag_expire(struct ivmon_frag *f, uint64_t now_ns);

/* Counters, per vCPU, summed by ivmon__frag_counters. Every fragment fed has exactly one fate:
 *   FRAGMENTS == BAD_MAGIC + BAD_CHECK + BAD_FIELD + BAD_ACCESS + ORPHAN + STRAY + DUPLICATE
 *                + TAKEN
 * and every record begun (a fragment 0 taken) exactly one end, or is still in progress:
 *   STARTED == COMPLETE + GAP + SUPERSEDED + BAD_RECORD + EXPIRED + (records in progress) */
#define IVMON_FRAG_C_FRAGMENTS  0  /* traps fed */
#define IVMON_FRAG_C_BAD_MAGIC  1  /* refused: the magic byte is not IVMON_FRAG_MAGIC */
#define IVMON_FRAG_C_BAD_CHECK  2  /* refused: the check does not match */
#define IVMON_FRAG_C_BAD_FIELD  3  /* refused: words, len, index or the reserved bit wrong */
#define IVMON_FRAG_C_BAD_ACCESS 4  /* refused: the trap itself could not carry a fragment */
#define IVMON_FRAG_C_ORPHAN     5  /* a continuation with no record begun for it */
#define IVMON_FRAG_C_STRAY      6  /* a continuation of another record in the middle of one */
#define IVMON_FRAG_C_DUPLICATE  7  /* a fragment of the record in progress already received */
#define IVMON_FRAG_C_TAKEN      8  /* fragments that advanced a record */
#define IVMON_FRAG_C_STARTED    9  /* records begun */
#define IVMON_FRAG_C_COMPLETE   10 /* records completed and handed on */
#define IVMON_FRAG_C_GAP        11 /* records given up: a later fragment came, one is missing */
#define IVMON_FRAG_C_SUPERSEDED 12 /* records given up: a new record began before they ended */
#define IVMON_FRAG_C_BAD_RECORD 13 /* records given up: record CRC, padding or tag wrong */
#define IVMON_FRAG_C_EXPIRED    14 /* records given up: stalled too long (time or fragments) */
#define IVMON_FRAG_C_OVERRUN    15 /* completed records the transport could not hand on */
#define IVMON_FRAG_C_MAX        16

/* Sums each counter over the vCPUs into ret[IVMON_FRAG_C_MAX]. Any thread. */
void ivmon__frag_counters(const struct ivmon_frag *f, uint64_t *ret);

/* A short description of counter c for logs ("fragment check mismatch"), or NULL. */
const char *ivmon__frag_counter_name(unsigned c);

/* Stores the fragment totals in a session's counters array (IVMON_STAT_MAX + 1 entries):
 * IVMON_STAT_FRAGMENTS, _FRAG_REJECTED, _FRAG_UNMATCHED, _FRAG_DUPLICATES, _FRAG_DAMAGED,
 * _FRAG_EXPIRED, _OVERRUNS (see ivmon.h for what each sums). The session thread calls it,
 * typically once per process call. */
void ivmon__frag_fold_stats(const struct ivmon_frag *f, uint64_t *stats);

#endif /* IVMON_FRAGMENT_INTERNAL_H */
