/* SPDX-License-Identifier: MIT */
/*
 * libvirt:DOMAIN -- a libvirt domain, by name or UUID, watched across its restarts.
 *
 * The ring itself is another backend's business: this one reads the domain's <shmem> device
 * from its live XML and opens the backend that serves it (ivshmem-plain: the file QEMU maps,
 * /dev/shm/NAME) as an inner session sharing this session's accounting, then follows the
 * domain's lifecycle events: when the domain stops, what is left in the ring is read and the
 * ring is let go; when it starts again, the ring is attached afresh (QEMU may have recreated the
 * file, and the guest's agent may format a new ring). The session stays open throughout.
 *
 * Why lifecycle events and a domain id rather than just the events: libvirt numbers each run of
 * a domain, so comparing ids also catches a stop and start that happened between two calls.
 * The events are only the prompt to look.
 *
 * Threads: none of our own; libvirt's event loop runs inside the caller's loop (lv_loop.c).
 * libvirt's callbacks may run on another thread (another session's ivmon_process, or the
 * application's own libvirt loop) and may outlive the session, so they only touch a small
 * reference-counted link: an atomic bit mask and an eventfd in this session's epoll set.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "internal.h"
#include "libvirt/lv_loop.h"
#include "libvirt/lv_xml.h"

#define LV_DEFAULT_CONNECT "qemu:///system"
#define LV_RETRY_MS        1000u /* reconnecting, or retrying an attach that failed */
/* The id of a domain that does not run. Whether a domain runs is read from the id in the
 * look-up's answer, not from a second call (virDomainIsActive): between two calls it may start,
 * and a running domain with the id of a stopped one would be attached as run -1. */
#define LV_NO_ID    ((unsigned int)-1)
#define LV_PATH_MAX (sizeof "/dev/shm/" + IVMON_LV_NAME_MAX)

/* lv_link.pending */
#define LV_PENDING_LIFECYCLE 0x1u
#define LV_PENDING_CLOSED    0x2u

struct lv_link {
    atomic_int refs;
    atomic_uint pending;
    atomic_int last_event; /* VIR_DOMAIN_EVENT_*, for the debug log */
    int efd;
    int by_uuid;
    char target[VIR_UUID_STRING_BUFLEN + IVMON_URI_MAX]; /* domain name, or canonical UUID */
};

struct lv_backend {
    int epoll_fd; /* what the caller polls */
    int loop_fd;  /* libvirt's work (lv_loop), or -1 if the application runs libvirt's loop */
    struct lv_link *link;
    virConnectPtr conn;
    int lifecycle_id; /* virConnectDomainEventRegisterAny id, or -1 */
    int close_registered;
    char *connect;    /* libvirt URI */
    char *shmem;      /* wanted <shmem name=...>, or NULL: the first */
    unsigned poll_ms; /* passed on to ivshmem:, or 0 */
    const char *domain;

    /* the ring while attached: an inner backend session */
    const struct ivmon_backend_ops *inner;
    void *inner_priv;
    int inner_fd;
    int attached;
    int draining;         /* the domain stopped: read what is left, then detach */
    unsigned int dom_id;  /* the run attached to (plain), or last seen (doorbell) */
    unsigned int fail_id; /* the run an attach failed for, logged once */
    int fail_final;       /* ... and it is not worth retrying (no usable <shmem>) */
    int have_fail;
    int reconcile;        /* look at the domain on the next process call */
    uint64_t retry_at;    /* CLOCK_MONOTONIC ms; 0: nothing scheduled */
    int reconnect_logged; /* the first failed reconnect was logged */
    int server_mode; /* ivshmem-doorbell: the inner session is a server living as long as we do */
    int have_run;    /* dom_id names a run we saw */
    unsigned runs;   /* runs of the domain seen */
    char path[LV_PATH_MAX + IVMON_LV_SERVER_MAX]; /* the ring file, or the doorbell socket */
};

/* libvirt's last error on this thread, as text. */
static const char *lv_error(void)
{
    const char *s = virGetLastErrorMessage();
    return s && *s ? s : "unknown error";
}

static int lv_error_code(void)
{
    virErrorPtr e = virGetLastError();
    return e ? e->code : VIR_ERR_OK;
}

/* ---- the link libvirt's callbacks reach ----------------------------------------------------- */

static void link_unref(void *opaque)
{
    struct lv_link *l = opaque;
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1) {
        close(l->efd);
        free(l);
    }
}

static struct lv_link *link_ref(struct lv_link *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

static void link_signal(struct lv_link *l, unsigned bit)
{
    uint64_t one = 1;
    atomic_fetch_or_explicit(&l->pending, bit, memory_order_release);
    /* Fails only when the counter is saturated, i.e. already readable. */
    ssize_t w = write(l->efd, &one, sizeof one);
    (void)w;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    struct lv_link *l = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN];

    /* Registered for every domain (see lv_connect): the one we follow is picked here. */
    if (l->by_uuid) {
        if (virDomainGetUUIDString(dom, uuid) < 0 || strcmp(uuid, l->target) != 0)
            return 0;
    } else {
        const char *name = virDomainGetName(dom);
        if (!name || strcmp(name, l->target) != 0)
            return 0;
    }
    atomic_store_explicit(&l->last_event, event, memory_order_relaxed);
    link_signal(l, LV_PENDING_LIFECYCLE);
    return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    link_signal(opaque, LV_PENDING_CLOSED);
}

/* The per-connection error function: without one, libvirt falls back to the process-wide one,
 * which prints to stderr unless someone replaced it. */
static void lv_silent(void *userdata, virErrorPtr err)
{
}

static const char *event_name(int event)
{
    static const char *const names[] = {"defined",   "undefined",   "started",
                                        "suspended", "resumed",     "stopped",
                                        "shutdown",  "pmsuspended", "crashed"};
    return event >= 0 && (size_t)event < sizeof names / sizeof names[0] ? names[event] : "other";
}

/* ---- URI values ----------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A URI value with %XX escapes decoded: a libvirt URI may itself hold '?' and '&', which the
 * ivmon URI would otherwise split. Returns a new string, or NULL (bad escape, %00, no memory). */
static char *percent_decode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s != '%') {
            *o++ = *s;
            continue;
        }
        int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi << 4 | lo);
        s += 2;
    }
    *o = '\0';
    return out;
}

/* 32 hex digits, optionally with dashes, as virDomainLookupByUUIDString takes them. */
static int looks_like_uuid(const char *s)
{
    unsigned digits = 0;
    for (; *s; s++) {
        if (hexval(*s) >= 0)
            digits++;
        else if (*s != '-')
            return 0;
    }
    return digits == 32;
}

/* ---- the connection ------------------------------------------------------------------------- */

static void drop_connection(struct lv_backend *b)
{
    if (!b->conn)
        return;
    /* On a dead connection these fail after removing the callbacks locally, which is all we
     * need; their free functions release the link's references. */
    if (b->lifecycle_id >= 0)
        virConnectDomainEventDeregisterAny(b->conn, b->lifecycle_id);
    if (b->close_registered)
        virConnectUnregisterCloseCallback(b->conn, on_close);
    b->lifecycle_id = -1;
    b->close_registered = 0;
    virConnectClose(b->conn);
    b->conn = NULL;
}

static int lv_connect(ivmon *m, struct lv_backend *b)
{
    virConnectPtr c = virConnectOpen(b->connect);
    if (!c) {
        int code = lv_error_code();
        if (code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_NO_CONNECT)
            return ivmon__error(m, -ECONNREFUSED,
                                "libvirt: cannot connect to %s: %s. Is libvirtd running? (Debian: "
                                "apt-get install libvirt-daemon-system; without systemd: "
                                "virtlogd -d; libvirtd -d)",
                                b->connect, lv_error());
        int err = code == VIR_ERR_AUTH_FAILED || code == VIR_ERR_AUTH_CANCELLED ||
                          code == VIR_ERR_OPERATION_DENIED
                      ? -EACCES
                      : -EINVAL;
        return ivmon__error(m, err, "libvirt: cannot connect to %s: %s", b->connect, lv_error());
    }
    virConnSetErrorFunc(c, NULL, lv_silent);
    b->conn = c;
    /* Each registration that succeeds holds a reference, dropped by libvirt through link_unref
     * when it lets the callback go. It is taken after the call: the callbacks run only inside
     * this session's ivmon_process (lv_loop.c), never before the registration returns. */
    /* A closed connection (libvirtd restarted) is noticed here, not on the next call. */
    if (virConnectRegisterCloseCallback(c, on_close, b->link, link_unref) == 0) {
        link_ref(b->link);
        b->close_registered = 1;
    }
    /* For every domain, filtered in on_lifecycle: registering for one virDomainPtr would follow
     * its UUID, and a transient domain created again under the same name has a new one. */
    b->lifecycle_id = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                       VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
                                                       b->link, link_unref);
    if (b->lifecycle_id >= 0)
        link_ref(b->link);
    if (b->lifecycle_id < 0) {
        int r = ivmon__error(m, -EIO, "libvirt: cannot follow domain events on %s: %s", b->connect,
                             lv_error());
        drop_connection(b);
        return r;
    }
    return 0;
}

/* The domain we follow, or NULL with *ret_gone set if libvirt says there is no such domain
 * (as opposed to a failed call). */
static virDomainPtr lookup(struct lv_backend *b, int *ret_gone)
{
    virDomainPtr d = b->link->by_uuid ? virDomainLookupByUUIDString(b->conn, b->link->target)
                                      : virDomainLookupByName(b->conn, b->link->target);
    *ret_gone = !d && lv_error_code() == VIR_ERR_NO_DOMAIN;
    return d;
}

/* ---- the ring: attach, detach --------------------------------------------------------------- */

/* Finds the domain's <shmem> in its XML (live if it runs, else its configuration). Returns 0,
 * or a negative errno with the session error set: -ENODEV (no such device, with the element to
 * add), -EOPNOTSUPP (a doorbell device and no doorbell backend), -EPROTO (unreadable XML),
 * -EINVAL (an unusable device), -EIO (libvirt failed). */
static int read_shmem(ivmon *m, struct lv_backend *b, virDomainPtr d, struct ivmon_lv_shmem *s)
{
    char why[256];
    int compiled_out;
    char *xml = virDomainGetXMLDesc(d, 0);
    if (!xml)
        return ivmon__error(m, -EIO, "libvirt: cannot read the XML of domain '%s': %s", b->domain,
                            lv_error());
    int r = ivmon__lv_find_shmem(xml, strlen(xml), b->shmem, s, why, sizeof why);
    free(xml);
    if (r == -ENODEV)
        return ivmon__error(m, r,
                            "libvirt: domain '%s': %s. Add to its <devices> (virsh edit %s): "
                            "<shmem name='%s'><model type='ivshmem-plain'/><size "
                            "unit='M'>4</size></shmem>, start it, and run ivmon-agent in the guest",
                            b->domain, why, b->domain, b->shmem ? b->shmem : "ivmon");
    if (r == -EBADMSG)
        return ivmon__error(m, -EPROTO, "libvirt: domain '%s': %s", b->domain, why);
    if (r < 0)
        return ivmon__error(m, r, "libvirt: domain '%s': %s", b->domain, why);
    if (s->model == IVMON_LV_SHMEM_DOORBELL &&
        !ivmon__backend_find("ivshmem+doorbell", &compiled_out))
        return ivmon__error(m, -EOPNOTSUPP,
                            "libvirt: domain '%s': <shmem name='%s'> is an ivshmem-doorbell "
                            "device; doorbell via libvirt is not supported by this build: use "
                            "<model type='ivshmem-plain'/>",
                            b->domain, s->name);
    /* The path goes into an ivmon URI, where these two would split it. */
    if (s->model == IVMON_LV_SHMEM_DOORBELL && strpbrk(s->server, "?&"))
        return ivmon__error(m, -EINVAL,
                            "libvirt: domain '%s': the <server path=...> of <shmem name='%s'> "
                            "holds '?' or '&'; choose another path",
                            b->domain, s->name);
    return 0;
}

static void detach(ivmon *m, struct lv_backend *b)
{
    if (!b->attached)
        return;
    if (b->inner_fd >= 0)
        epoll_ctl(b->epoll_fd, EPOLL_CTL_DEL, b->inner_fd, NULL);
    b->inner->close(m, b->inner_priv);
    free(b->inner_priv);
    b->inner_priv = NULL;
    b->inner_fd = -1;
    b->attached = b->draining = 0;
}

/* Opens the inner backend for a <shmem> device:
 *  - ivshmem-plain: ivshmem:/dev/shm/NAME, the file QEMU maps. It is never created here: QEMU
 *    runs as another user and could not open a file we made. Attached per run of the domain.
 *  - ivshmem-doorbell: ivshmem+doorbell:SERVER, the library serving QEMU's ivshmem protocol on
 *    the <server path=...> socket. QEMU connects to it as it starts, so it must be up before
 *    the domain starts, and it stays up for the whole session: it owns the ring, and each run's
 *    QEMU connects again. */
static int open_inner(ivmon *m, struct lv_backend *b, const struct ivmon_lv_shmem *s)
{
    char uri[LV_PATH_MAX + IVMON_LV_SERVER_MAX + 64];
    const char *why = NULL;
    int compiled_out;
    ivmon_uri u;

    b->server_mode = s->model == IVMON_LV_SHMEM_DOORBELL;
    if (b->server_mode)
        snprintf(b->path, sizeof b->path, "%s", s->server);
    else
        snprintf(b->path, sizeof b->path, "/dev/shm/%s", s->name);
    const char *scheme = b->server_mode ? "ivshmem+doorbell" : "ivshmem";
    const struct ivmon_backend_ops *ops = ivmon__backend_find(scheme, &compiled_out);
    if (!ops)
        return ivmon__error(m, -EPROTONOSUPPORT,
                            "libvirt: this libivmon was built without the %s: backend "
                            "(IVMON_BACKEND_IVSHMEM), which serves <shmem> devices",
                            scheme);
    if (b->poll_ms && !b->server_mode)
        snprintf(uri, sizeof uri, "%s:%s?poll_ms=%u", scheme, b->path, b->poll_ms);
    else
        snprintf(uri, sizeof uri, "%s:%s", scheme, b->path);
    int r = ivmon__uri_parse(&u, uri, &why);
    if (r < 0)
        return ivmon__error(m, r, "libvirt: %s: %s", b->path, why ? why : "out of memory");
    b->inner_priv = calloc(1, ops->priv_size ? ops->priv_size : 1);
    if (!b->inner_priv) {
        ivmon__uri_free(&u);
        return ivmon__error(m, -ENOMEM, "libvirt: out of memory");
    }
    b->inner = ops;
    r = ops->open(m, b->inner_priv, &u);
    ivmon__uri_free(&u);
    if (r == 0) {
        b->inner_fd = ops->get_fd(b->inner_priv);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = b->inner_fd};
        if (epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, b->inner_fd, &ev) < 0)
            r = ivmon__error(m, -errno, "libvirt: epoll_ctl: %s", strerror(errno));
    }
    if (r < 0) {
        ops->close(m, b->inner_priv);
        free(b->inner_priv);
        b->inner_priv = NULL;
        b->inner_fd = -1;
        return r;
    }
    b->attached = 1;
    return 0;
}

/* A run of the domain began (its id is new): count and log it. */
static void note_run(ivmon *m, struct lv_backend *b, unsigned int id)
{
    const char *how =
        b->server_mode ? "its QEMU connects to the doorbell server at" : "attached to";
    b->dom_id = id;
    b->have_run = 1;
    if (b->runs++ == 0) {
        ivmon__log(m, IVMON_LOG_INFO, "libvirt: domain '%s' runs (id %u): %s %s", b->domain, id,
                   how, b->path);
        return;
    }
    ivmon__stat_add(m, IVMON_STAT_REATTACHES, 1);
    ivmon__log(m, IVMON_LOG_INFO, "libvirt: domain '%s' started again (id %u): %s %s (restart %u)",
               b->domain, id, how, b->path, b->runs - 1);
}

/* Attaches to the ring of run `id` of the domain (ivshmem-plain). Returns 0 or a negative errno
 * with the session error set. */
static int attach(ivmon *m, struct lv_backend *b, virDomainPtr d, unsigned int id)
{
    struct ivmon_lv_shmem s = {0};
    int r = read_shmem(m, b, d, &s);
    if (r == 0 && s.model == IVMON_LV_SHMEM_DOORBELL)
        /* The device changed model between runs: the server would have had to be up first. */
        r = ivmon__error(m, -EOPNOTSUPP,
                         "libvirt: domain '%s': <shmem name='%s'> became an ivshmem-doorbell "
                         "device; open the session again",
                         b->domain, s.name);
    if (r == 0)
        r = open_inner(m, b, &s);
    if (r < 0)
        return r;
    b->have_fail = 0;
    note_run(m, b, id);
    return 0;
}

/* Brings the attachment in line with the domain: detach from a run that ended (after reading
 * what it left), attach to a run that began. With a doorbell server, which outlives the runs,
 * only count and log them. */
static void reconcile(ivmon *m, struct lv_backend *b)
{
    int gone;
    virDomainPtr d = lookup(b, &gone);
    if (!d && !gone) {
        ivmon__log(m, IVMON_LOG_WARNING, "libvirt: cannot look up domain '%s': %s", b->domain,
                   lv_error());
        b->retry_at = ivmon__monotonic_ms() + LV_RETRY_MS;
        return;
    }
    unsigned int id = d ? virDomainGetID(d) : LV_NO_ID;
    int active = id != LV_NO_ID;

    if (b->server_mode) {
        if (active && (!b->have_run || id != b->dom_id))
            note_run(m, b, id);
        else if (!active && b->have_run)
            ivmon__log(m, IVMON_LOG_INFO,
                       "libvirt: domain '%s' stopped (id %u); the doorbell server at %s waits "
                       "for its next start",
                       b->domain, b->dom_id, b->path);
        if (!active)
            b->have_run = 0;
    } else if (b->attached && (!active || id != b->dom_id)) {
        if (!b->draining)
            ivmon__log(m, IVMON_LOG_INFO,
                       "libvirt: domain '%s' stopped (id %u): reading what is left in %s, then "
                       "waiting for it to start again",
                       b->domain, b->dom_id, b->path);
        b->draining = 1;
    } else if (!b->attached && active && !(b->have_fail && b->fail_id == id && b->fail_final)) {
        int r = attach(m, b, d, id);
        if (r < 0) {
            /* A missing device will not appear in this run: say so once. Anything else (the
             * file not there yet, a libvirt call that failed) may pass: retry, say it once. */
            int final = r == -ENODEV || r == -EOPNOTSUPP || r == -EPROTO || r == -EINVAL ||
                        r == -EPROTONOSUPPORT;
            if (!b->have_fail || b->fail_id != id)
                ivmon__log(m, final ? IVMON_LOG_ERR : IVMON_LOG_WARNING, "%s%s", m->error,
                           final ? "" : "; retrying every second");
            b->have_fail = 1;
            b->fail_id = id;
            b->fail_final = final;
            if (!final)
                b->retry_at = ivmon__monotonic_ms() + LV_RETRY_MS;
        }
    }
    if (d)
        virDomainFree(d);
}

/* ---- backend operations --------------------------------------------------------------------- */

static int lv_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct lv_backend *b = priv;
    const char *connect = ivmon__uri_get(u, "connect");
    const char *shmem = ivmon__uri_get(u, "shmem");
    char *target = NULL;
    int gone, r;

    b->epoll_fd = b->loop_fd = b->inner_fd = b->lifecycle_id = -1;
    b->link = calloc(1, sizeof *b->link);
    if (!b->link)
        return ivmon__error(m, -ENOMEM, "libvirt: out of memory");
    atomic_init(&b->link->refs, 1);
    b->link->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->link->efd < 0)
        return ivmon__error(m, -errno, "libvirt: eventfd: %s", strerror(errno));
    b->domain = b->link->target;

    target = percent_decode(u->target);
    b->connect = percent_decode(connect ? connect : LV_DEFAULT_CONNECT);
    b->shmem = shmem ? percent_decode(shmem) : NULL;
    if (!target || !b->connect || (shmem && !b->shmem)) {
        free(target);
        return ivmon__error(m, -EINVAL, "libvirt: bad %%XX escape in the URI");
    }
    if (!target[0] || strlen(target) >= sizeof b->link->target || (b->shmem && !b->shmem[0])) {
        free(target);
        return ivmon__error(m, -EINVAL,
                            "libvirt: the URI is libvirt:DOMAIN (a name or UUID), with options "
                            "connect=LIBVIRT-URI and shmem=NAME");
    }
    memcpy(b->link->target, target, strlen(target) + 1);
    free(target);
    /* Checked here, not only by ivshmem: when the domain starts, which may be much later. */
    uint64_t ms = 0;
    if (ivmon__uri_get_size(u, "poll_ms", &ms) < 0 || ms > 1000 ||
        (ivmon__uri_get(u, "poll_ms") && ms < 1))
        return ivmon__error(m, -EINVAL, "libvirt: poll_ms= must be 1..1000 milliseconds");
    b->poll_ms = (unsigned)ms;

    r = ivmon__lv_loop_init(&b->loop_fd);
    if (r < 0)
        return ivmon__error(m, r, "libvirt: cannot set up the event loop: %s", strerror(-r));
    b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epoll_fd < 0)
        return ivmon__error(m, -errno, "libvirt: epoll: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = b->link->efd};
    if (epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, b->link->efd, &ev) < 0)
        return ivmon__error(m, -errno, "libvirt: epoll_ctl: %s", strerror(errno));
    if (b->loop_fd >= 0) {
        ev.data.fd = b->loop_fd;
        if (epoll_ctl(b->epoll_fd, EPOLL_CTL_ADD, b->loop_fd, &ev) < 0)
            return ivmon__error(m, -errno, "libvirt: epoll_ctl: %s", strerror(errno));
    }

    /* Events first, then the state: a domain that starts in between is not missed. */
    r = lv_connect(m, b);
    if (r < 0)
        return r;
    b->link->by_uuid = looks_like_uuid(b->link->target);
    virDomainPtr d = lookup(b, &gone);
    if (!d && b->link->by_uuid) {
        /* A name may look like a UUID too. */
        b->link->by_uuid = 0;
        d = lookup(b, &gone);
    }
    if (!d)
        return ivmon__error(m, gone ? -ENODEV : -EIO, "libvirt: no domain '%s' on %s: %s",
                            b->domain, b->connect, lv_error());
    if (b->link->by_uuid) {
        /* Canonical form, as on_lifecycle compares it. */
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (virDomainGetUUIDString(d, uuid) == 0)
            memcpy(b->link->target, uuid, sizeof uuid);
    }

    /* Refuse a domain that cannot work now, not at its next start: its configuration (or live
     * XML) must have the device. */
    struct ivmon_lv_shmem s = {0};
    unsigned int id = virDomainGetID(d);
    int active = id != LV_NO_ID;
    r = read_shmem(m, b, d, &s);
    if (r == 0 && s.model == IVMON_LV_SHMEM_DOORBELL) {
        r = open_inner(m, b, &s);
        if (r == 0 && active)
            note_run(m, b, id);
    } else if (r == 0 && active) {
        r = attach(m, b, d, id);
    }
    if (r == 0 && !active)
        ivmon__log(m, IVMON_LOG_INFO,
                   "libvirt: domain '%s' is not running; waiting for it to start", b->domain);
    virDomainFree(d);
    return r;
}

static void lv_close(ivmon *m, void *priv)
{
    struct lv_backend *b = priv;
    detach(m, b);
    drop_connection(b);
    if (b->epoll_fd >= 0)
        close(b->epoll_fd);
    if (b->link)
        link_unref(b->link);
    free(b->connect);
    free(b->shmem);
    /* virConnectClose removed libvirt's watches and timeouts; their free functions run in the
     * loop, and the caller will not call ivmon_process on this session again. */
    if (b->loop_fd >= 0)
        ivmon__lv_loop_run();
}

static int lv_get_fd(const void *priv)
{
    return ((const struct lv_backend *)priv)->epoll_fd;
}

static int lv_get_timeout(const void *priv)
{
    const struct lv_backend *b = priv;
    int t = -1;
    if (b->reconcile || b->draining)
        return 0;
    if (b->attached && b->inner->get_timeout)
        t = b->inner->get_timeout(b->inner_priv);
    if (b->retry_at) {
        uint64_t now = ivmon__monotonic_ms();
        int wait = b->retry_at > now ? (int)(b->retry_at - now) : 0;
        if (t < 0 || wait < t)
            t = wait;
    }
    return t;
}

/* libvirt told us the connection closed (libvirtd restarted, say). The domain keeps running
 * without libvirtd, so the ring stays attached; reconnect and look again. */
static void lost_connection(ivmon *m, struct lv_backend *b)
{
    ivmon__log(m, IVMON_LOG_WARNING,
               "libvirt: lost the connection to %s; reconnecting every second (the ring of "
               "domain '%s' stays attached)",
               b->connect, b->domain);
    drop_connection(b);
    b->retry_at = ivmon__monotonic_ms();
    b->reconnect_logged = 0;
}

static void reconnect(ivmon *m, struct lv_backend *b)
{
    char saved[IVMON_ERROR_MAX];
    /* A failed attempt is not the session's error: keep what ivmon_get_error() said. */
    memcpy(saved, m->error, sizeof saved);
    int r = lv_connect(m, b);
    if (r < 0) {
        if (!b->reconnect_logged)
            ivmon__log(m, IVMON_LOG_WARNING, "%s; retrying every second", m->error);
        b->reconnect_logged = 1;
        b->retry_at = ivmon__monotonic_ms() + LV_RETRY_MS;
    } else {
        ivmon__log(m, IVMON_LOG_INFO, "libvirt: reconnected to %s", b->connect);
        b->reconcile = 1;
    }
    memcpy(m->error, saved, sizeof saved);
}

static int lv_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct lv_backend *b = priv;
    uint64_t count;

    *ret_more = 0;
    if (b->loop_fd >= 0)
        ivmon__lv_loop_run();
    /* Only to clear it (EAGAIN: nothing signalled): the bits below are the truth either way. */
    ssize_t got = read(b->link->efd, &count, sizeof count);
    (void)got;
    unsigned pending = atomic_exchange_explicit(&b->link->pending, 0, memory_order_acquire);
    if (pending & LV_PENDING_CLOSED)
        lost_connection(m, b);
    if (pending & LV_PENDING_LIFECYCLE) {
        ivmon__log(m, IVMON_LOG_DEBUG, "libvirt: domain '%s': lifecycle event %s", b->domain,
                   event_name(atomic_load_explicit(&b->link->last_event, memory_order_relaxed)));
        b->reconcile = 1;
    }
    if (b->retry_at && ivmon__monotonic_ms() >= b->retry_at) {
        b->retry_at = 0;
        if (b->conn)
            b->reconcile = 1;
        else
            reconnect(m, b);
    }
    if (b->conn && b->reconcile && !b->draining) {
        b->reconcile = 0;
        reconcile(m, b);
    }
    if (!b->attached)
        return 0;
    int n = b->inner->process(m, b->inner_priv, budget, ret_more);
    if (n >= 0 && b->draining && !*ret_more) {
        /* Everything the stopped run wrote is in; the next run gets a fresh attach. */
        detach(m, b);
        ivmon__log(m, IVMON_LOG_INFO, "libvirt: domain '%s': ring detached; the session waits",
                   b->domain);
        if (b->conn)
            reconcile(m, b);
    }
    return n;
}

static const char *const lv_options[] = {"connect", "shmem", "poll_ms", NULL};

const struct ivmon_backend_ops ivmon__backend_libvirt = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "libvirt domain",
    .scheme = "libvirt",
    .priv_size = sizeof(struct lv_backend),
    .options = lv_options,
    .open = lv_open,
    .close = lv_close,
    .get_fd = lv_get_fd,
    .get_timeout = lv_get_timeout,
    .process = lv_process,
};
