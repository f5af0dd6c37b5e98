/* SPDX-License-Identifier: MIT */
/* Generic producer transport: the producer, doorbell bookkeeping, lossless waits, heartbeat and
 * flush. Backends provide the region and the doorbell (transport_backend.h). */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "identity.h"
#include "record_encode.h"
#include "ring.h"
#include "transport_backend.h"

/* Lossless mode, ring full: how long to nap between attempts. Short enough that a consumer
 * draining the ring is followed closely, long enough not to burn a (possibly emulated) vCPU. */
#define FULL_NAP_NS 100000u
/* Lossless mode, ring full: ring the doorbell at this period even if nobody asked, as a backstop
 * against a consumer that missed a wakeup; the cost is one eventfd write per period. */
#define BACKSTOP_NS 10000000u
/* Poll timeout asked of the caller while a doorbell is pending. */
#define PENDING_RETRY_MS 20

static const struct ivmon_guest_backend *const backends[] = {
    &ivmon_guest_backend_shm,
    &ivmon_guest_backend_ivshmem,
    &ivmon_guest_backend_xen_shm,
    &ivmon_guest_backend_xen_vcpu,
};

struct ivmon_guest_transport {
    const struct ivmon_guest_backend *be;
    void *priv;
    int opened;              /* be->open was called: be->close must be */
    struct ivmon_producer p; /* owns the ring and the sequence numbers */
    int hello_done;          /* a HELLO took sequence number 1 */
    int doorbell_pending;    /* the consumer asked to be woken and has not been yet */
    int batching;            /* between batch_begin and batch_end: emit_more, publish later */
    struct ivmon_guest_transport_stats st;
};

int ivmon_guest_transport_open(struct ivmon_guest_transport **ret, const char *uri, unsigned flags,
                               char *err, size_t errlen)
{
    struct ivmon_guest_uri u;
    const char *why = "invalid URI";

    if (flags & ~IVMON_GUEST_OPEN_LOSSLESS) {
        snprintf(err, errlen, "unknown open flags");
        return -EINVAL;
    }
    int r = ivmon_guest_uri_parse(uri, &u, &why);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", uri, why);
        return r;
    }
    const struct ivmon_guest_backend *be = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (backends[i]->uri_kind == u.kind)
            be = backends[i];
    if (!be || be->abi != IVMON_GUEST_BACKEND_ABI || be->size < sizeof *be) {
        snprintf(err, errlen, "%s: no transport backend for this URI", uri);
        return -EPROTONOSUPPORT;
    }

    struct ivmon_guest_transport *t = calloc(1, sizeof *t);
    if (!t || !(t->priv = calloc(1, be->priv_size ? be->priv_size : 1))) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->be = be;
    int lossless = (flags & IVMON_GUEST_OPEN_LOSSLESS) || u.lossless;
    struct ivmon_ring ring;
    t->opened = 1;
    r = be->open(t->priv, &u, lossless, &ring, err, errlen);
    if (r < 0) {
        ivmon_guest_transport_close(t);
        return r;
    }
    /* A ring formatted lossless by whoever created it asks every producer to wait, not drop. */
    if (ring.flags & IVMON_RING_LOSSLESS)
        lossless = 1;
    /* A restarted producer continues from the ring's published index with sequence 1 again;
     * the HELLO it must send first tells the consumer so. */
    ivmon_producer_init(&t->p, &ring, lossless);
    t->st.ring_size = ring.size;
    t->st.lossless = lossless;
    *ret = t;
    return 0;
}

/* Delivers a pending doorbell if the backend can now. */
static void deliver_pending(struct ivmon_guest_transport *t)
{
    if (!t->doorbell_pending)
        return;
    int r = t->be->doorbell(t->priv, t->p.ring.hdr);
    if (r == 0) {
        t->doorbell_pending = 0;
        t->st.doorbells++;
    } else if (r == -ENOTCONN) {
        t->doorbell_pending = 0; /* nobody to wake */
        t->st.doorbell_misses++;
    } else if (r != -EAGAIN) {
        /* Failed: it stays pending (the records are still in the ring), and the failure is
         * counted for the caller to report. */
        t->st.doorbell_errors++;
        t->st.last_doorbell_error = r;
    }
}

static void nap(void)
{
    struct timespec ts = {0, FULL_NAP_NS};
    /* An interrupted nap only shortens the wait; the loop re-checks. */
    nanosleep(&ts, NULL);
}

/* One producer emit plus the bookkeeping around it. hb: rec is a heartbeat whose counters are
 * refreshed before each attempt, because a LOST record written first shifts its sequence. */
static int emit_loop(struct ivmon_guest_transport *t, struct ivmon_rec_hdr *rec, int timeout_ms,
                     int hb)
{
    uint64_t start = 0, last_backstop = 0;
    int waited = 0;

    /* A heartbeat's buffer is only filled below, so its type is known without reading it. */
    if (!t->hello_done && (hb || rec->type != IVMON_REC_HELLO))
        return -EINVAL;
    for (;;) {
        if (hb) {
            /* The heartbeat takes next_seq, or next_seq + 1 if a pending loss report goes
             * first. Either way "produced" names the heartbeat's own sequence number. */
            uint64_t produced = t->p.next_seq + (t->p.lost_count ? 1 : 0);
            ivmon_enc_heartbeat(rec,
                                sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_heartbeat),
                                ivmon_guest_realtime_ns(), produced, t->p.dropped_total);
        }
        int r =
            t->batching ? ivmon_producer_emit_more(&t->p, rec) : ivmon_producer_emit(&t->p, rec);
        /* A failed emit may still have published (a loss report, or the batch so far, so the
         * consumer can make room); the doorbell that wanted is collected here. */
        if (r < 0 && ivmon_producer_publish(&t->p))
            t->doorbell_pending = 1;
        if (r != -EAGAIN) {
            if ((r >= 0 || r == -ENOBUFS) && rec->type == IVMON_REC_HELLO)
                t->hello_done = 1; /* even dropped: it took its number, a LOST will name it */
            if (r == 1)
                t->doorbell_pending = 1;
            deliver_pending(t);
            return r < 0 ? r : 0;
        }
        /* Lossless and full: wait for the consumer, making sure it is awake. */
        uint64_t now = ivmon_guest_monotonic_ns();
        if (!waited) {
            waited = 1;
            start = last_backstop = now;
            t->st.full_waits++;
        }
        if (timeout_ms >= 0 && now - start >= (uint64_t)timeout_ms * 1000000u)
            return -ETIMEDOUT;
        deliver_pending(t);
        if (!t->doorbell_pending && now - last_backstop >= BACKSTOP_NS) {
            last_backstop = now;
            t->doorbell_pending = 1;
            deliver_pending(t);
        }
        nap();
    }
}

void ivmon_guest_transport_batch_begin(struct ivmon_guest_transport *t)
{
    t->batching = 1;
}

void ivmon_guest_transport_batch_end(struct ivmon_guest_transport *t)
{
    t->batching = 0;
    if (ivmon_producer_publish(&t->p))
        t->doorbell_pending = 1;
    deliver_pending(t);
}

int ivmon_guest_transport_emit(struct ivmon_guest_transport *t, struct ivmon_rec_hdr *rec,
                               int timeout_ms)
{
    return emit_loop(t, rec, timeout_ms, 0);
}

int ivmon_guest_transport_heartbeat(struct ivmon_guest_transport *t, int timeout_ms)
{
    union {
        struct ivmon_rec_hdr h;
        uint8_t b[sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_heartbeat)];
    } rec;
    return emit_loop(t, &rec.h, timeout_ms, 1);
}

int ivmon_guest_transport_flush(struct ivmon_guest_transport *t, int timeout_ms)
{
    /* Lossless for this one record: in drop mode a full ring would drop the heartbeat and leave
     * the loss report pending forever; waiting lets both out once the consumer makes room. */
    int saved = t->p.lossless;
    t->p.lossless = 1;
    int r = ivmon_guest_transport_heartbeat(t, timeout_ms);
    t->p.lossless = saved;
    return r;
}

int ivmon_guest_transport_tick(struct ivmon_guest_transport *t)
{
    deliver_pending(t);
    return t->doorbell_pending ? PENDING_RETRY_MS : -1;
}

void ivmon_guest_transport_get_stats(const struct ivmon_guest_transport *t,
                                     struct ivmon_guest_transport_stats *ret)
{
    *ret = t->st;
    ret->produced = t->p.next_seq - 1;
    ret->dropped = t->p.dropped_total;
}

void ivmon_guest_transport_close(struct ivmon_guest_transport *t)
{
    if (!t)
        return;
    if (t->opened)
        t->be->close(t->priv);
    free(t->priv);
    free(t);
}
