/* SPDX-License-Identifier: MIT */
/* Sessions: open by URI, the caller's event loop, and the path of one record from the transport
 * to the handler (validation, sequence accounting, dispatch). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int ivmon_open(ivmon **ret, const char *uri, unsigned flags)
{
    ivmon_uri u;
    const char *why = NULL;
    int compiled_out = 0, r;

    ivmon__open_error("%s", "");
    if (!ret || flags) {
        ivmon__open_error("invalid arguments");
        return -EINVAL;
    }
    r = ivmon__uri_parse(&u, uri, &why);
    if (r < 0) {
        ivmon__open_error("%s", why ? why : "out of memory");
        return r;
    }
    const struct ivmon_backend_ops *ops = ivmon__backend_find(u.scheme, &compiled_out);
    if (!ops) {
        ivmon__open_error(compiled_out ? "the %s: backend was not built into this libivmon"
                                       : "unknown URI scheme %s:",
                          u.scheme);
        ivmon__uri_free(&u);
        return compiled_out ? -EPROTONOSUPPORT : -EINVAL;
    }

    ivmon *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->ops = ops;
    m->budget = IVMON_BUDGET_DEFAULT;
    m->uri_string = strdup(uri);
    m->priv = calloc(1, ops->priv_size ? ops->priv_size : 1);
    if (!m->uri_string || !m->priv)
        goto nomem;
    m->event.source = m->uri_string;

    uint64_t budget = m->budget;
    if (ivmon__uri_get_size(&u, "budget", &budget) < 0 || budget == 0 ||
        budget > IVMON_BUDGET_MAX) {
        ivmon__open_error("budget= must be 1..%u records", IVMON_BUDGET_MAX);
        r = -EINVAL;
        goto fail;
    }
    m->budget = (unsigned)budget;

    static const char *const core_options[] = {"budget", NULL};
    const char *unknown = ivmon__uri_unknown(&u, core_options, ops->options);
    if (unknown) {
        ivmon__open_error("unknown option %s= for the %s: scheme", unknown, u.scheme);
        r = -EINVAL;
        goto fail;
    }
    r = ops->open(m, m->priv, &u);
    if (r < 0) {
        /* The backend explains through ivmon__error; pass its words on. */
        ivmon__open_error("%s", m->error[0] ? m->error : ivmon_strerror(r));
        ops->close(m, m->priv);
        goto fail;
    }
    ivmon__uri_free(&u);
    m->error[0] = '\0';
    *ret = m;
    return 0;

nomem:
    ivmon__open_error("out of memory");
    r = -ENOMEM;
fail:
    if (m) {
        free(m->priv);
        free(m->uri_string);
        free(m);
    }
    ivmon__uri_free(&u);
    return r;
}

void ivmon_close(ivmon *m)
{
    if (!m)
        return;
    m->ops->close(m, m->priv);
    free(m->priv);
    free(m->uri_string);
    free(m);
}

const char *ivmon_get_uri(const ivmon *m)
{
    return m->uri_string;
}

int ivmon_get_fd(const ivmon *m)
{
    return m->ops->get_fd(m->priv);
}

int ivmon_get_events(const ivmon *m)
{
    return POLLIN;
}

int ivmon_get_timeout(const ivmon *m)
{
    if (m->pending)
        return 0;
    int t = m->ops->get_timeout ? m->ops->get_timeout(m->priv) : -1;
    /* Never "infinite": a transport whose doorbell was lost is still looked at now and then. */
    return t < 0 ? 1000 : t;
}

int ivmon_process(ivmon *m, unsigned flags)
{
    if (flags)
        return -EINVAL;
    if (m->broken)
        return m->broken;
    int more = 0;
    int r = m->ops->process(m, m->priv, m->budget, &more);
    /* Stopped early, at the budget or by a handler's error: records may be waiting, and the
     * producer will not ring for them, since the consumer never went to sleep. */
    m->pending = r >= 0 ? more : !m->broken;
    return r;
}

int ivmon_set_handler(ivmon *m, unsigned type, ivmon_handler fn, void *userdata)
{
    if (type > IVMON_EVENT_MAX)
        return -EINVAL;
    m->handlers[type].fn = fn;
    m->handlers[type].userdata = userdata;
    return 0;
}

/* A producer instance ends (a new one begins): its span moves into the closed total. */
static void close_instance(ivmon *m)
{
    if (!m->have_seq)
        return;
    m->stats[IVMON_STAT_RESTARTS]++;
    m->span_closed += m->next_seq - m->stats[IVMON_STAT_FIRST_SEQ];
}

static void update_span(ivmon *m)
{
    m->stats[IVMON_STAT_SEQ_SPAN] = m->span_closed + (m->next_seq - m->stats[IVMON_STAT_FIRST_SEQ]);
}

/* Sequence accounting for one accepted record. Returns 0, or -EBADMSG with *why if the record's
 * sequence number cannot be right (a replay or a loss report that does not match the gap). */
static int account(ivmon *m, const struct ivmon_event *ev, const char **why)
{
    if (ev->type == IVMON_EVENT_HELLO &&
        (!m->have_seq || memcmp(ev->instance_id, m->instance_id, sizeof m->instance_id) != 0)) {
        /* A new producer instance: its sequence numbers start over. */
        close_instance(m);
        memcpy(m->instance_id, ev->instance_id, sizeof m->instance_id);
        m->have_seq = 1;
        m->next_seq = ev->seq;
        m->stats[IVMON_STAT_FIRST_SEQ] = ev->seq;
    } else if (!m->have_seq || ev->seq < m->next_seq) {
        /* Attached mid-stream (a restarted monitor), or numbers that start over without a hello:
         * a producer restarted while the ring was full, so its hello was among the records it
         * had to drop, and its loss report comes first. Either way, count from here. */
        close_instance(m);
        memset(m->instance_id, 0, sizeof m->instance_id);
        m->have_seq = 1;
        m->next_seq = ev->type == IVMON_EVENT_LOST && ev->lost_reason == IVMON_LOST_RING_FULL
                          ? ev->lost_first
                          : ev->seq;
        m->stats[IVMON_STAT_FIRST_SEQ] = m->next_seq;
    }

    uint64_t gap = ev->seq - m->next_seq;
    if (ev->type == IVMON_EVENT_LOST && ev->lost_reason == IVMON_LOST_RING_FULL) {
        /* The loss report names exactly the numbers between the last record and itself. */
        if (ev->lost_last + 1 != ev->seq || ev->lost_first < m->next_seq) {
            *why = "loss report does not match the sequence gap";
            return -EBADMSG;
        }
        m->stats[IVMON_STAT_LOST] += ev->lost_count;
        gap -= ev->lost_count;
    }
    m->stats[IVMON_STAT_MISSED] += gap;
    m->next_seq = ev->seq + 1;
    m->stats[IVMON_STAT_LAST_SEQ] = ev->seq;
    update_span(m);
    return 0;
}

int ivmon__ingest(ivmon *m, const void *rec, size_t len)
{
    const char *why = NULL;
    struct ivmon_event *ev = &m->event;

    m->stats[IVMON_STAT_RECORDS]++;
    m->stats[IVMON_STAT_BYTES] += len;
    int r = ivmon__decode(rec, len, ev, &why);
    if (r == 0)
        r = account(m, ev, &why);
    if (r < 0) {
        /* The record's own sequence number is not to be trusted; assume it took the next one so
         * the accounting identity still holds for a producer that is merely buggy. */
        m->stats[IVMON_STAT_MALFORMED]++;
        if (m->have_seq) {
            m->stats[IVMON_STAT_LAST_SEQ] = m->next_seq;
            m->next_seq++;
            update_span(m);
        }
        ivmon__reject(m, why);
        return 0;
    }
    if (ev->type == IVMON_EVENT_LOST && ev->lost_reason == IVMON_LOST_SOURCE_OVERFLOW)
        m->stats[IVMON_STAT_SOURCE_OVERFLOWS]++;
    m->stats[IVMON_STAT_DELIVERED]++;

    struct ivmon_handler_slot *h = &m->handlers[ev->type];
    if (!h->fn)
        h = &m->handlers[IVMON_EVENT_ANY];
    if (h->fn) {
        r = h->fn(m, ev, h->userdata);
        if (r < 0)
            return r;
    }
    return 1;
}

int ivmon__ring_drain(ivmon *m, struct ivmon_ring *r, unsigned budget, int *ret_more)
{
    const char *why = NULL;
    int n = 0;

    *ret_more = 0;
    while ((unsigned)n < budget) {
        int len = ivmon_ring_read(r, m->recbuf, sizeof m->recbuf, &why);
        if (len == 0)
            break;
        if (len < 0) {
            ivmon_ring_consumer_commit(r);
            return ivmon__fail(m, -EPROTO, "the producer broke the ring: %s", why);
        }
        int d = ivmon__ingest(m, m->recbuf, (size_t)len);
        if (d < 0) {
            ivmon_ring_consumer_commit(r);
            return d;
        }
        n++;
    }
    ivmon_ring_consumer_commit(r);
    if ((unsigned)n == budget)
        *ret_more = 1;
    return n;
}

void ivmon__stat_add(ivmon *m, unsigned stat, uint64_t n)
{
    m->stats[stat] += n;
}

int ivmon_get_stat(const ivmon *m, unsigned stat, uint64_t *ret)
{
    if (stat > IVMON_STAT_MAX)
        return -EINVAL;
    *ret = m->stats[stat];
    return 0;
}

const char *ivmon_stat_name(unsigned stat)
{
    static const char *const names[IVMON_STAT_MAX + 1] = {
        [IVMON_STAT_RECORDS] = "records",
        [IVMON_STAT_BYTES] = "bytes",
        [IVMON_STAT_DELIVERED] = "delivered",
        [IVMON_STAT_LOST] = "lost",
        [IVMON_STAT_MALFORMED] = "malformed",
        [IVMON_STAT_MISSED] = "missed",
        [IVMON_STAT_WAKEUPS] = "wakeups",
        [IVMON_STAT_SOURCE_OVERFLOWS] = "source_overflows",
        [IVMON_STAT_RESTARTS] = "restarts",
        [IVMON_STAT_FIRST_SEQ] = "first_seq",
        [IVMON_STAT_LAST_SEQ] = "last_seq",
        [IVMON_STAT_SEQ_SPAN] = "seq_span",
        [IVMON_STAT_REATTACHES] = "reattaches",
        [IVMON_STAT_FRAGMENTS] = "fragments",
        [IVMON_STAT_FRAG_REJECTED] = "frag_rejected",
        [IVMON_STAT_FRAG_UNMATCHED] = "frag_unmatched",
        [IVMON_STAT_FRAG_DUPLICATES] = "frag_duplicates",
        [IVMON_STAT_FRAG_DAMAGED] = "frag_damaged",
        [IVMON_STAT_FRAG_EXPIRED] = "frag_expired",
        [IVMON_STAT_OVERRUNS] = "overruns",
    };
    return stat <= IVMON_STAT_MAX ? names[stat] : NULL;
}
