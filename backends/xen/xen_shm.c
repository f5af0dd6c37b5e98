/* SPDX-License-Identifier: MIT */
/*
 * xen+shm:GUEST -- the ring in pages a Xen guest grants to dom0, woken by an event channel.
 *
 * The agent in the guest (guest/transport_xen_shm.c) allocates 1 + 2^k pages with gntalloc,
 * formats the ring in them, allocates an unbound event channel for dom0 and publishes the grant
 * refs, the port and a generation in XenStore under /local/domain/<id>/data/ivmon (layout in
 * include/ivmon/xen.h and docs/PROTOCOL.md, "Xen"), `state` last. Here, in dom0:
 *
 *   open     find the domain (id or name), take the one-consumer lock, watch the guest's
 *            directory and @releaseDomain, and attach if the agent is already there. The session
 *            opens whether or not it is: either side may start first.
 *   attach   read every key in one XenStore transaction, parse each strictly and bound it, map
 *            the pages (libxengnttab), attach the ring (its header validated like any other
 *            ring), bind the event channel (libxenevtchn), bump the ring's consumer_gen.
 *   process  take event-channel wakeups and XenStore watch events, drain the ring exactly like
 *            shm: (ivmon__ring_drain, linger, cons_waiting), then act on what the watches said:
 *            a new generation is a restarted agent (drain the old ring to the end, unmap, map
 *            the new one: IVMON_STAT_REATTACHES); state "closed" or a removed directory is an
 *            agent that stopped (drain, unmap, wait); a domain that is gone ends the session with
 *            -ENODEV after a final drain (its pages stay valid while we map them: Xen keeps a
 *            dying domain's granted pages until every mapping is gone).
 *
 * Hostile guest: the keys are the guest's to write, so a bad value (an absurd page count,
 * grant refs that do not map, a port that does not bind, junk where a number belongs) fails this
 * session with -EPROTO and a message naming the key; other sessions never notice. The mapped
 * ring is read through src/ring.c, which treats it as hostile, and the guest cannot take the
 * mapping away (no SIGBUS as with a shrinking file).
 *
 * Threads: libxenstore starts one reader thread per session handle when the session first
 * watches (that is how its watch fd works). Nothing else runs outside the caller's thread.
 *
 * URI options: none besides the core's (budget=).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "ivmon/xen.h"
#include "xen/xen_common.h"

#define XSHM_SCHEME          "xen+shm"
#define XSHM_PERIODIC_MS     1000
#define XSHM_TOKEN_DIR       "ivmon-shm-dir"
#define XSHM_TOKEN_RELEASE   "ivmon-shm-release"
#define XSHM_WATCH_BATCH     64 /* watch events taken per call: bounded, the rest wait */
#define XSHM_TX_RETRIES      8  /* XenStore transactions that raced a writer */
#define XSHM_EVTCHN_PORT_MAX ((1u << 17) - 1) /* FIFO event channels: 2^17 ports */
#define XSHM_PATH_MAX        96

struct xshm_entries {
    uint32_t backend, pages, port;
    uint64_t generation;
    uint32_t *refs; /* pages refs, malloc'd */
};

struct xen_shm {
    struct ivmon_xen_conn c;
    uint32_t self;
    int epoll_fd, xs_fd, evtchn_fd;
    xengnttab_handle *xgt;
    int watch_dir, watch_release;
    char dir[XSHM_PATH_MAX]; /* /local/domain/<id>/data/ivmon */

    /* the ring of the generation we are attached to */
    int attached;
    void *map;
    uint32_t pages;
    int lport; /* our end of the event channel, or -1 */
    uint64_t generation;
    struct ivmon_ring ring;

    int first_pass;            /* drain what is there at once */
    int rescan;                /* the guest's directory changed: look again */
    int domcheck;              /* some domain went away: is it ours? */
    uint64_t next_domcheck_ns; /* look anyway then (ivmon__monotonic_ns) */
    int gone;                  /* ours is: drain to the end, then end the session */
};

/* Fails the session with the message an earlier ivmon__error left (copied: it is rewritten). */
static int fail_session(ivmon *m, int err)
{
    char why[IVMON_ERROR_MAX];
    snprintf(why, sizeof why, "%s", m->error);
    return ivmon__fail(m, err, "%s", why);
}

/* ---- XenStore entries ----------------------------------------------------------------------- */

/* path of key (NULL: the directory itself) inside the guest's directory */
static void key_path(const struct xen_shm *b, const char *key, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", b->dir, key);
}

/* Reads one decimal key. Returns 0, -ENOENT (missing) or -EPROTO with a message on m. */
static int read_number(ivmon *m, struct xen_shm *b, xs_transaction_t t, const char *key,
                       uint64_t min, uint64_t max, uint64_t *ret)
{
    char path[XSHM_PATH_MAX + 32], v[64];
    *ret = 0;
    key_path(b, key, path, sizeof path);
    int n = ivmon__xen_read(b->c.xs, t, path, v, sizeof v);
    if (n == -ENOENT)
        return ivmon__error(m, -EPROTO, XSHM_SCHEME ": domain %u: %s is missing",
                            (unsigned)b->c.domid, path);
    if (n < 0 || ivmon__xen_parse_u64(v, (size_t)n, max, ret) < 0 || *ret < min)
        return ivmon__error(
            m, -EPROTO, XSHM_SCHEME ": domain %u: %s is not a number from %llu to %llu",
            (unsigned)b->c.domid, path, (unsigned long long)min, (unsigned long long)max);
    return 0;
}

/* Parses one gref/K list into refs[0..count-1]: exactly count numbers separated by one space. */
static int parse_refs(const char *v, size_t len, uint32_t *refs, uint32_t count)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t start = pos;
        while (pos < len && v[pos] != ' ')
            pos++;
        uint64_t ref;
        if (ivmon__xen_parse_u64(v + start, pos - start, UINT32_MAX, &ref) < 0)
            return -EPROTO;
        refs[i] = (uint32_t)ref;
        if (i + 1 < count) {
            if (pos >= len)
                return -EPROTO; /* too few */
            pos++;              /* the one space */
        }
    }
    return pos == len ? 0 : -EPROTO; /* anything after the last ref is too much */
}

static int read_refs(ivmon *m, struct xen_shm *b, xs_transaction_t t, struct xshm_entries *e)
{
    e->refs = calloc(e->pages, sizeof *e->refs);
    if (!e->refs)
        return ivmon__error(m, -ENOMEM, XSHM_SCHEME ": out of memory");
    uint32_t keys = (e->pages + IVMON_XEN_GREFS_PER_KEY - 1) / IVMON_XEN_GREFS_PER_KEY;
    for (uint32_t k = 0; k < keys; k++) {
        char key[32], path[XSHM_PATH_MAX + 32], v[IVMON_XEN_XS_VALUE_MAX];
        snprintf(key, sizeof key, IVMON_XEN_XS_GREF_DIR "/%u", (unsigned)k);
        key_path(b, key, path, sizeof path);
        uint32_t first = k * IVMON_XEN_GREFS_PER_KEY;
        uint32_t count =
            e->pages - first < IVMON_XEN_GREFS_PER_KEY ? e->pages - first : IVMON_XEN_GREFS_PER_KEY;
        int n = ivmon__xen_read(b->c.xs, t, path, v, sizeof v);
        if (n < 0 || parse_refs(v, (size_t)n, e->refs + first, count) < 0)
            return ivmon__error(
                m, -EPROTO, XSHM_SCHEME ": domain %u: %s %s (expected %u grant refs)",
                (unsigned)b->c.domid, path,
                n == -ENOENT ? "is missing" : "is not a list of grant refs", (unsigned)count);
    }
    return 0;
}

/* Reads the state and, if "ready", every other key. Returns 1 ready (e filled), 0 no agent
 * (missing or closed), or -EPROTO / another negative errno with a message on m. */
static int read_entries_once(ivmon *m, struct xen_shm *b, xs_transaction_t t,
                             struct xshm_entries *e)
{
    char path[XSHM_PATH_MAX + 32], v[64];
    uint64_t n = 0;
    int r;

    key_path(b, IVMON_XEN_XS_STATE, path, sizeof path);
    r = ivmon__xen_read(b->c.xs, t, path, v, sizeof v);
    if (r == -ENOENT || (r >= 0 && !strcmp(v, IVMON_XEN_STATE_CLOSING)))
        return 0;
    if (r < 0 || strcmp(v, IVMON_XEN_STATE_READY) != 0)
        return ivmon__error(m, -EPROTO, XSHM_SCHEME ": domain %u: %s is not '%s' or '%s'",
                            (unsigned)b->c.domid, path, IVMON_XEN_STATE_READY,
                            IVMON_XEN_STATE_CLOSING);
    if ((r = read_number(m, b, t, IVMON_XEN_XS_LAYOUT, 0, UINT32_MAX, &n)) < 0)
        return r;
    if (n != IVMON_XEN_LAYOUT)
        return ivmon__error(m, -EPROTO,
                            XSHM_SCHEME ": domain %u: XenStore layout %llu, this libivmon knows %d",
                            (unsigned)b->c.domid, (unsigned long long)n, IVMON_XEN_LAYOUT);
    key_path(b, IVMON_XEN_XS_PROTO, path, sizeof path);
    r = ivmon__xen_read(b->c.xs, t, path, v, sizeof v);
    char *dot = r > 0 ? strchr(v, '.') : NULL;
    uint64_t major, minor;
    if (!dot || ivmon__xen_parse_u64(v, (size_t)(dot - v), 0xffff, &major) < 0 ||
        ivmon__xen_parse_u64(dot + 1, strlen(dot + 1), 0xffff, &minor) < 0)
        return ivmon__error(m, -EPROTO, XSHM_SCHEME ": domain %u: %s is not MAJOR.MINOR",
                            (unsigned)b->c.domid, path);
    if (major != IVMON_PROTO_MAJOR)
        return ivmon__error(m, -EPROTO,
                            XSHM_SCHEME ": domain %u: the agent speaks protocol %llu.%llu, this "
                                        "libivmon %d.%d",
                            (unsigned)b->c.domid, (unsigned long long)major,
                            (unsigned long long)minor, IVMON_PROTO_MAJOR, IVMON_PROTO_MINOR);
    if ((r = read_number(m, b, t, IVMON_XEN_XS_BACKEND, 0, IVMON_XEN_DOMID_MAX, &n)) < 0)
        return r;
    e->backend = (uint32_t)n;
    if (e->backend != b->self)
        return ivmon__error(m, -EPROTO,
                            XSHM_SCHEME ": domain %u granted its ring to domain %u, not to this "
                                        "one (%u): start the agent with backend=%u",
                            (unsigned)b->c.domid, (unsigned)e->backend, (unsigned)b->self,
                            (unsigned)b->self);
    if ((r = read_number(m, b, t, IVMON_XEN_XS_PAGES, 1 + IVMON_XEN_DATA_PAGES_MIN,
                         1 + IVMON_XEN_DATA_PAGES_MAX, &n)) < 0)
        return r;
    if ((n - 1) & (n - 2))
        return ivmon__error(m, -EPROTO,
                            XSHM_SCHEME ": domain %u: %llu pages is not 1 + a power of two",
                            (unsigned)b->c.domid, (unsigned long long)n);
    e->pages = (uint32_t)n;
    if ((r = read_number(m, b, t, IVMON_XEN_XS_EVTCHN, 1, XSHM_EVTCHN_PORT_MAX, &n)) < 0)
        return r;
    e->port = (uint32_t)n;
    if ((r = read_number(m, b, t, IVMON_XEN_XS_GENERATION, 1, UINT64_MAX, &e->generation)) < 0)
        return r;
    if ((r = read_refs(m, b, t, e)) < 0)
        return r;
    return 1;
}

/* All keys as one consistent snapshot: a transaction that commits only if no writer raced it. */
static int read_entries(ivmon *m, struct xen_shm *b, struct xshm_entries *e)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    for (int attempt = 0; attempt < XSHM_TX_RETRIES; attempt++) {
        xs_transaction_t t = x->xs_transaction_start(b->c.xs);
        if (t == XBT_NULL)
            return ivmon__error(m, -errno ? -errno : -EIO, XSHM_SCHEME ": XenStore transaction: %s",
                                strerror(errno));
        memset(e, 0, sizeof *e);
        int r = read_entries_once(m, b, t, e);
        if (r < 0) {
            x->xs_transaction_end(b->c.xs, t, true);
            free(e->refs);
            e->refs = NULL;
            return r;
        }
        if (x->xs_transaction_end(b->c.xs, t, false))
            return r;
        free(e->refs);
        e->refs = NULL;
        if (errno != EAGAIN)
            return ivmon__error(m, -EIO, XSHM_SCHEME ": XenStore transaction: %s", strerror(errno));
    }
    /* A guest that rewrites its keys without pause keeps us from ever reading them. */
    return ivmon__error(m, -EPROTO, XSHM_SCHEME ": domain %u keeps rewriting %s",
                        (unsigned)b->c.domid, b->dir);
}

/* ---- Attaching ------------------------------------------------------------------------------ */

static void detach(struct xen_shm *b)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    if (b->lport >= 0) {
        /* Off the epoll set and back on when bound again: the fd stays, the port goes. */
        x->evtchn_unbind(b->c.xce, (evtchn_port_t)b->lport);
        b->lport = -1;
    }
    if (b->map)
        x->gnttab_unmap(b->xgt, b->map, b->pages);
    b->map = NULL;
    b->attached = 0;
}

static int attach(ivmon *m, struct xen_shm *b, struct xshm_entries *e)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    const char *why = "invalid ring";

    b->map = x->gnttab_map(b->xgt, e->pages, b->c.domid, e->refs, PROT_READ | PROT_WRITE);
    if (!b->map)
        return ivmon__error(m, -EPROTO,
                            XSHM_SCHEME ": domain %u: cannot map its %u granted pages (grant refs "
                                        "in %s/" IVMON_XEN_XS_GREF_DIR "): %s",
                            (unsigned)b->c.domid, (unsigned)e->pages, b->dir, strerror(errno));
    b->pages = e->pages;
    size_t region = (size_t)e->pages * IVMON_XEN_PAGE_SIZE;
    int r = ivmon_ring_attach(&b->ring, b->map, region, &why);
    if (r < 0)
        return ivmon__error(m, -EPROTO, XSHM_SCHEME ": domain %u: %s", (unsigned)b->c.domid,
                            r == -EAGAIN ? "the granted ring is not formatted" : why);
    xenevtchn_port_or_error_t lp = x->evtchn_bind(b->c.xce, b->c.domid, e->port);
    if (lp < 0)
        return ivmon__error(m, -EPROTO,
                            XSHM_SCHEME ": domain %u: cannot bind its event channel %u: %s",
                            (unsigned)b->c.domid, (unsigned)e->port, strerror(errno));
    b->lport = lp;
    /* A producer that rendezvouses per consumer would see a new one; ours only counts it.
     * acq_rel as for the ring files: the header we attached is the one the count belongs to. */
    atomic_fetch_add_explicit((_Atomic uint64_t *)&b->ring.hdr->consumer_gen, 1,
                              memory_order_acq_rel);
    b->generation = e->generation;
    b->attached = 1;
    return 0;
}

/* Acts on the guest's directory. Called with the current ring (if any) drained. Returns 0 or a
 * negative errno after failing the session. */
static int rescan(ivmon *m, struct xen_shm *b)
{
    struct xshm_entries e = {0};
    b->rescan = 0;
    int r = read_entries(m, b, &e);
    if (r < 0)
        return fail_session(m, r);
    if (r == 0) {
        if (b->attached) { /* the agent stopped; its last records are drained */
            detach(b);
            ivmon__log(m, IVMON_LOG_INFO,
                       XSHM_SCHEME ": domain %u: the agent closed its ring or its entries are "
                                   "gone; unmapped, waiting for an agent",
                       (unsigned)b->c.domid);
        }
        return 0;
    }
    if (b->attached && e.generation == b->generation) {
        free(e.refs);
        return 0;
    }
    int reattach = b->attached;
    detach(b);
    r = attach(m, b, &e);
    free(e.refs);
    if (r < 0) {
        detach(b);
        return fail_session(m, r);
    }
    if (reattach)
        ivmon__stat_add(m, IVMON_STAT_REATTACHES, 1);
    ivmon__log(m, IVMON_LOG_INFO,
               XSHM_SCHEME ": attached to domain %u: %u pages, event channel %d, generation %llu",
               (unsigned)b->c.domid, (unsigned)b->pages, b->lport,
               (unsigned long long)b->generation);
    return 0;
}

/* ---- Session -------------------------------------------------------------------------------- */

static int epoll_add(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Our own domain id, the one the guest must grant to: dom0 unless we run in a driver domain. */
static uint32_t own_domid(struct xs_handle *xs)
{
    char v[16];
    uint64_t id;
    int n = ivmon__xen_read(xs, XBT_NULL, "domid", v, sizeof v);
    if (n > 0 && ivmon__xen_parse_u64(v, (size_t)n, IVMON_XEN_DOMID_MAX, &id) == 0)
        return (uint32_t)id;
    return 0;
}

static int xshm_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct xen_shm *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    int r;

    b->c.lock_fd = b->epoll_fd = b->xs_fd = b->evtchn_fd = b->lport = -1;
    r = ivmon__xen_connect(m, XSHM_SCHEME, "shm", u->target, &b->c);
    if (r < 0)
        return r;
    b->self = own_domid(b->c.xs);
    b->xgt = x->gnttab_open();
    if (!b->xgt)
        return ivmon__error(m, -ENODEV, XSHM_SCHEME ": /dev/xen/gntdev: %s (modprobe xen-gntdev)",
                            strerror(errno));
    snprintf(b->dir, sizeof b->dir, "/local/domain/%u/" IVMON_XEN_XS_DIR, (unsigned)b->c.domid);

    /* Watch before the first look, so nothing written in between is missed: a watch fires once
     * when set, and every change after. */
    if (!x->xs_watch(b->c.xs, b->dir, XSHM_TOKEN_DIR))
        return ivmon__error(m, -errno ? -errno : -EIO, XSHM_SCHEME ": watch %s: %s", b->dir,
                            strerror(errno));
    b->watch_dir = 1;
    if (!x->xs_watch(b->c.xs, "@releaseDomain", XSHM_TOKEN_RELEASE))
        return ivmon__error(m, -errno ? -errno : -EIO, XSHM_SCHEME ": watch @releaseDomain: %s",
                            strerror(errno));
    b->watch_release = 1;
    b->xs_fd = x->xs_fileno(b->c.xs);
    b->evtchn_fd = x->evtchn_fd(b->c.xce);
    if (b->xs_fd < 0 || b->evtchn_fd < 0)
        return ivmon__error(m, -EIO, XSHM_SCHEME ": no XenStore or event channel fd");
    b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epoll_fd < 0)
        return ivmon__error(m, -errno, XSHM_SCHEME ": epoll: %s", strerror(errno));
    if ((r = epoll_add(b->epoll_fd, b->xs_fd)) < 0 ||
        (r = epoll_add(b->epoll_fd, b->evtchn_fd)) < 0)
        return ivmon__error(m, r, XSHM_SCHEME ": epoll_ctl: %s", strerror(-r));

    /* An agent already running is attached now, so a broken one fails the open itself. */
    struct xshm_entries e = {0};
    r = read_entries(m, b, &e);
    if (r < 0)
        return r;
    if (r > 0) {
        r = attach(m, b, &e);
        free(e.refs);
        if (r < 0)
            return r;
    }
    b->first_pass = 1;
    return 0;
}

static void xshm_close(ivmon *m, void *priv)
{
    struct xen_shm *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    detach(b);
    if (b->watch_dir)
        x->xs_unwatch(b->c.xs, b->dir, XSHM_TOKEN_DIR);
    if (b->watch_release)
        x->xs_unwatch(b->c.xs, "@releaseDomain", XSHM_TOKEN_RELEASE);
    if (b->epoll_fd >= 0)
        close(b->epoll_fd);
    if (b->xgt)
        x->gnttab_close(b->xgt);
    ivmon__xen_disconnect(&b->c);
}

static int xshm_get_fd(const void *priv)
{
    return ((const struct xen_shm *)priv)->epoll_fd;
}

static int xshm_get_timeout(const void *priv)
{
    const struct xen_shm *b = priv;
    return b->first_pass || b->rescan || b->domcheck ? 0 : XSHM_PERIODIC_MS;
}

/* Event-channel notifications and XenStore watch events, without blocking. */
static void take_wakeups(ivmon *m, struct xen_shm *b)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    if (b->lport >= 0)
        ivmon__stat_add(m, IVMON_STAT_WAKEUPS,
                        ivmon__xen_take_events(b->c.xce, b->evtchn_fd, b->lport));
    else
        ivmon__xen_take_events(b->c.xce, b->evtchn_fd, -1);
    for (int i = 0; i < XSHM_WATCH_BATCH; i++) {
        char **w = x->xs_check_watch(b->c.xs);
        if (!w)
            break;
        if (!strcmp(w[XS_WATCH_TOKEN], XSHM_TOKEN_DIR))
            b->rescan = 1;
        else if (!strcmp(w[XS_WATCH_TOKEN], XSHM_TOKEN_RELEASE))
            b->domcheck = 1;
        free(w);
    }
}

static int xshm_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct xen_shm *b = priv;
    int n = 0, r;

    *ret_more = 0;
    take_wakeups(m, b);
    b->first_pass = 0;
    if (b->attached) {
        /* The header is the guest's to rewrite; we run on private copies, but a changed magic
         * means the other side stopped speaking the protocol. */
        if (atomic_load_explicit((_Atomic uint64_t *)&b->ring.hdr->magic, memory_order_relaxed) !=
            IVMON_RING_MAGIC)
            return ivmon__fail(m, -EPROTO, XSHM_SCHEME ": domain %u overwrote the ring header",
                               (unsigned)b->c.domid);
        ivmon_ring_consumer_awake(&b->ring);
        n = ivmon__ring_drain(m, &b->ring, budget, ret_more);
        if (n < 0 || *ret_more)
            return n; /* the watches are acted on once the ring is drained */
    }
    /* @releaseDomain says promptly that a domain went away, but it is one watch event from
     * xenstored: the session must not outlive its domain because that event came late or not
     * at all (once, under TCG, a session was still waiting 27 s after its domain's destroy). */
    uint64_t now = ivmon__monotonic_ns();
    if (b->domcheck || now >= b->next_domcheck_ns) {
        b->domcheck = 0;
        b->next_domcheck_ns = now + XSHM_PERIODIC_MS * 1000000ull;
        b->gone = ivmon__xen_domain_gone(b->c.xch, b->c.domid);
    }
    if (b->gone) {
        detach(b);
        return ivmon__fail(m, -ENODEV,
                           XSHM_SCHEME ": domain %u went away; its ring was drained to the end",
                           (unsigned)b->c.domid);
    }
    if (b->rescan) {
        if ((r = rescan(m, b)) < 0)
            return r;
        if (b->attached && b->ring.prod != b->ring.cons)
            *ret_more = 1; /* a new ring may hold records already: take them now */
    }
    if (!b->attached || *ret_more)
        return n;
    if (ivmon_ring_consumer_linger(&b->ring, IVMON_RING_LINGER_SPINS) ||
        !ivmon_ring_consumer_prepare_sleep(&b->ring))
        *ret_more = 1;
    return n;
}

const struct ivmon_backend_ops ivmon__backend_xen_shm = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "Xen grant pages and event channel",
    .scheme = XSHM_SCHEME,
    .priv_size = sizeof(struct xen_shm),
    .options = NULL,
    .open = xshm_open,
    .close = xshm_close,
    .get_fd = xshm_get_fd,
    .get_timeout = xshm_get_timeout,
    .process = xshm_process,
};
