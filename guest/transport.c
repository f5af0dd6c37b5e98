/* SPDX-License-Identifier: MIT */
/* Generic producer transport: the producer, doorbell bookkeeping, lossless waits, heartbeat and
 * flush. Ring backends provide the region and the doorbell, record backends send each record,
 * stream backends provide a descriptor (transport_backend.h); the records go through ring.c's
 * producer, the backend's send, or stream_producer.c. */
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
#include "stream_producer.h"
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
    &ivmon_guest_backend_shm,           /* ring */
    &ivmon_guest_backend_ivshmem,       /* ring */
    &ivmon_guest_backend_virtio_serial, /* stream */
#ifdef IVMON_GUEST_HAVE_KVM_HCALL
    &ivmon_guest_backend_kvm_hcall, /* records */
#endif
    &ivmon_guest_backend_xen_shm,  /* ring */
    &ivmon_guest_backend_xen_vcpu, /* records */
};

struct ivmon_guest_transport {
    const struct ivmon_guest_backend *be;
    void *priv;
    int opened;              /* be->open was called: be->close must be */
    int records;             /* a record backend (be->send): no ring, no doorbell */
    struct ivmon_producer p; /* ring backends: owns the ring and the sequence numbers */
    /* Stream backends: owns the sequence numbers instead; NULL otherwise. */
    struct ivmon_stream_producer *s;
    int hello_done;       /* a HELLO took sequence number 1 */
    int doorbell_pending; /* the consumer asked to be woken and has not been yet */
    int batching;         /* between batch_begin and batch_end: emit_more, publish later */
    uint64_t next_seq;    /* record backends: the sequence number the next record takes */
    struct ivmon_guest_transport_stats st;
};

/* Opens the ring of a ring backend and attaches the producer to it. */
static int open_ring(struct ivmon_guest_transport *t, const struct ivmon_guest_uri *u,
                     unsigned flags, char *err, size_t errlen)
{
    int lossless = (flags & IVMON_GUEST_OPEN_LOSSLESS) || u->lossless;
    struct ivmon_ring ring;
    int r = t->be->open(t->priv, u, lossless, &ring, err, errlen);
    if (r < 0)
        return r;
    /* A ring formatted lossless by whoever created it asks every producer to wait, not drop. */
    if (ring.flags & IVMON_RING_LOSSLESS)
        lossless = 1;
    /* A restarted producer continues from the ring's published index with sequence 1 again;
     * the HELLO it must send first tells the consumer so. */
    ivmon_producer_init(&t->p, &ring, lossless);
    t->st.ring_size = ring.size;
    t->st.lossless = lossless;
    return 0;
}

/* Opens the descriptor of a stream backend and puts the stream producer on it. */
static int open_stream(struct ivmon_guest_transport *t, const struct ivmon_guest_uri *u,
                       unsigned flags, char *err, size_t errlen)
{
    int lossless = (flags & IVMON_GUEST_OPEN_LOSSLESS) || u->lossless;
    int fd = -1;
    /* The backend first: close() after a failure here must find priv as open_stream left it. */
    int r = t->be->open_stream(t->priv, u, &fd, err, errlen);
    if (r < 0)
        return r;
    t->s = malloc(sizeof *t->s);
    if (!t->s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ivmon_stream_init(t->s, fd, lossless);
    t->st.ring_size = sizeof t->s->queue;
    t->st.lossless = lossless;
    t->st.stream = 1;
    return 0;
}

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
    t->opened = 1;
    t->records = be->send != NULL;
    if (t->records) {
        t->next_seq = 1;
        t->st.lossless = 1; /* nothing can be full, so nothing is dropped */
        r = be->open_record(t->priv, &u, err, errlen);
    } else if (be->open_stream) {
        r = open_stream(t, &u, flags, err, errlen);
    } else {
        r = open_ring(t, &u, flags, err, errlen);
    }
    if (r < 0) {
        ivmon_guest_transport_close(t);
        return r;
    }
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

/* Milliseconds of timeout_ms left at now after a wait that began at start; -1 without limit. */
static int ms_left(int timeout_ms, uint64_t start, uint64_t now)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t spent = (now - start) / 1000000u;
    return spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
}

/* One attempt of the ring or stream producer. */
static int emit_once(struct ivmon_guest_transport *t, struct ivmon_rec_hdr *rec)
{
    if (t->s)
        return t->batching ? ivmon_stream_emit_more(t->s, rec) : ivmon_stream_emit(t->s, rec);
    int r = t->batching ? ivmon_producer_emit_more(&t->p, rec) : ivmon_producer_emit(&t->p, rec);
    /* A failed emit may still have published (a loss report, or the batch so far, so the
     * consumer can make room); the doorbell that wanted is collected here. */
    if (r < 0 && ivmon_producer_publish(&t->p))
        t->doorbell_pending = 1;
    return r;
}

/* A record backend: the record takes the next sequence number and goes out whole, now. A
 * heartbeat names its own number, and the records the backend could not send. */
static int emit_record(struct ivmon_guest_transport *t, struct ivmon_rec_hdr *rec, int hb)
{
    if (hb)
        ivmon_enc_heartbeat(rec, sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_heartbeat),
                            ivmon_guest_realtime_ns(), t->next_seq, t->st.send_errors);
    else if (rec->len < sizeof *rec || rec->len > IVMON_REC_MAX)
        return -EINVAL;
    rec->seq = t->next_seq++;
    if (rec->type == IVMON_REC_HELLO)
        t->hello_done = 1;
    int r = t->be->send(t->priv, rec);
    if (r < 0) {
        t->st.send_errors++;
        return r;
    }
    t->st.traps += (uint64_t)r;
    return 0;
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
    if (t->records)
        return emit_record(t, rec, hb);
    for (;;) {
        if (hb) {
            /* The heartbeat takes next_seq, or next_seq + 1 if a pending loss report goes
             * first. Either way "produced" names the heartbeat's own sequence number. */
            uint64_t next = t->s ? t->s->next_seq : t->p.next_seq;
            uint64_t lost = t->s ? t->s->lost_count : t->p.lost_count;
            ivmon_enc_heartbeat(rec,
                                sizeof(struct ivmon_rec_hdr) + sizeof(struct ivmon_rec_heartbeat),
                                ivmon_guest_realtime_ns(), next + (lost ? 1 : 0),
                                t->s ? t->s->dropped_total : t->p.dropped_total);
        }
        int r = emit_once(t, rec);
        if (r != -EAGAIN) {
            /* Every outcome but a malformed record took a number, even a drop (a LOST will
             * name it) or a stream's device error. */
            if (r != -EINVAL && rec->type == IVMON_REC_HELLO)
                t->hello_done = 1;
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
        if (t->s) {
            /* A stream's descriptor says when it takes bytes again: sleep in poll until then. */
            int w = ivmon_stream_wait(t->s, ms_left(timeout_ms, start, now));
            if (w < 0)
                return w;
            continue;
        }
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
    t->batching = !t->records; /* a record backend has nothing to publish later */
}

void ivmon_guest_transport_batch_end(struct ivmon_guest_transport *t)
{
    if (t->records)
        return;
    t->batching = 0;
    if (t->s) {
        /* A failed write shows again, and is returned, at the next emit. */
        (void)ivmon_stream_publish(t->s);
        return;
    }
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
    int *lossless = t->s ? &t->s->lossless : &t->p.lossless;
    int saved = *lossless;
    uint64_t start = ivmon_guest_monotonic_ns();
    *lossless = 1;
    int r = ivmon_guest_transport_heartbeat(t, timeout_ms);
    *lossless = saved;
    /* A stream's queue is this process's memory: it is written out now or never. */
    while (r == 0 && t->s && ivmon_stream_queued(t->s))
        r = ivmon_stream_wait(t->s, ms_left(timeout_ms, start, ivmon_guest_monotonic_ns()));
    return r;
}

int ivmon_guest_transport_tick(struct ivmon_guest_transport *t)
{
    if (t->records)
        return -1;
    if (t->s) {
        /* Drop mode leaves what the descriptor refused queued; it goes out from here too. */
        (void)ivmon_stream_publish(t->s);
        return ivmon_stream_queued(t->s) ? PENDING_RETRY_MS : -1;
    }
    deliver_pending(t);
    return t->doorbell_pending ? PENDING_RETRY_MS : -1;
}

void ivmon_guest_transport_get_stats(const struct ivmon_guest_transport *t,
                                     struct ivmon_guest_transport_stats *ret)
{
    *ret = t->st;
    if (t->s) {
        ret->produced = t->s->next_seq - 1;
        ret->dropped = t->s->dropped_total;
        ret->writes = t->s->writes;
        return;
    }
    ret->produced = (t->records ? t->next_seq : t->p.next_seq) - 1;
    ret->dropped = t->records ? t->st.send_errors : t->p.dropped_total;
}

void ivmon_guest_transport_close(struct ivmon_guest_transport *t)
{
    if (!t)
        return;
    if (t->opened)
        t->be->close(t->priv);
    free(t->s);
    free(t->priv);
    free(t);
}
