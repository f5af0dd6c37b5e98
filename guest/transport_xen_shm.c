/* SPDX-License-Identifier: MIT */
/*
 * xen+shm: backend, producer side: the agent inside a Xen guest (PV, PVH or HVM) shares the
 * ring in pages it grants to dom0 and wakes dom0 through an event channel. The host half is
 * backends/xen/xen_shm.c (host URI xen+shm:GUEST); the keys are in include/ivmon/xen.h.
 *
 *  1. Pages: /dev/xen/gntalloc grants 1 + pages= pages (a header page and the data pages, 64 by
 *     default: a 256 KiB ring) to backend= (default 0, dom0), writable; mmap of the returned
 *     offset maps them contiguously. The guest formats the ring, as the shm: producer does.
 *  2. Doorbell: /dev/xen/evtchn allocates a port unbound for the backend domain; ringing it is
 *     IOCTL_EVTCHN_NOTIFY. Before dom0 binds it, a notification is dropped by Xen, which is
 *     right: a consumer that attaches drains the ring before it first sleeps.
 *  3. Publish: in one XenStore transaction (so dom0 never sees half of it), remove what an
 *     earlier agent left under data/ivmon and write layout, proto, backend-id, pages, gref/K,
 *     event-channel, a new random generation, and state=ready. Dom0 watches the directory.
 *  4. Close: state=closed, then the fds go. Dom0 drains what is left and unmaps; the kernel
 *     frees the pages once dom0's mapping is gone.
 *
 * One producer per guest: a second agent would replace the first one's keys, so an OFD lock on
 * a file in /run keeps it out (-EBUSY), as the ivshmem backend's lock on BAR2 does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <xen/gntalloc.h>

#include "ivmon/xen.h"
#include "transport_backend.h"
#include "xenbus.h"

#define GNTALLOC_DEV  "/dev/xen/gntalloc"
#define EVTCHN_DEV    "/dev/xen/evtchn"
#define LOCK_FILE     "/run/ivmon-xen-shm.lock"
#define TX_RETRIES    16
#define REFS_LINE_MAX (IVMON_XEN_GREFS_PER_KEY * 11 + 1)

/* From Linux's <xen/evtchn.h> (uapi), which cannot be included without Xen's own headers (it
 * uses their domid_t): the two /dev/xen/evtchn ioctls used here, a stable kernel ABI. */
struct evtchn_bind_unbound_port_arg {
    unsigned int remote_domain;
};
struct evtchn_notify_arg {
    unsigned int port;
};
#define EVTCHN_BIND_UNBOUND_PORT                                                                   \
    _IOC(_IOC_NONE, 'E', 2, sizeof(struct evtchn_bind_unbound_port_arg))
#define EVTCHN_NOTIFY _IOC(_IOC_NONE, 'E', 4, sizeof(struct evtchn_notify_arg))

struct xen_shm_state {
    int gnt_fd, evt_fd, lock_fd;
    void *base;
    size_t region;
    uint32_t pages;
    uint32_t port;
    struct ivmon_xenbus xb;
    int published;
};

static int fail(char *err, size_t errlen, int r, const char *what)
{
    snprintf(err, errlen, "xen+shm: %s: %s", what, strerror(-r));
    return r;
}

static int take_lock(struct xen_shm_state *s, char *err, size_t errlen)
{
    s->lock_fd = open(LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->lock_fd < 0)
        return fail(err, errlen, -errno, LOCK_FILE);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fcntl(s->lock_fd, F_OFD_SETLK, &fl) < 0) {
        if (errno == EAGAIN || errno == EACCES) {
            snprintf(err, errlen, "xen+shm: another producer is attached in this guest");
            return -EBUSY;
        }
        return fail(err, errlen, -errno, "lock " LOCK_FILE);
    }
    return 0;
}

/* Grants and maps the pages; fills refs (s->pages of them). */
static int grant_pages(struct xen_shm_state *s, uint32_t backend, uint32_t *refs, char *err,
                       size_t errlen)
{
    s->gnt_fd = open(GNTALLOC_DEV, O_RDWR | O_CLOEXEC);
    if (s->gnt_fd < 0) {
        int e = errno;
        snprintf(err, errlen,
                 "xen+shm: %s: %s (not a Xen guest, or the xen-gntalloc module is not loaded)",
                 GNTALLOC_DEV, strerror(e));
        return -e;
    }
    /* The ioctl argument ends in a variable array of refs, one per page. */
    size_t len = sizeof(struct ioctl_gntalloc_alloc_gref) + (size_t)s->pages * sizeof(uint32_t);
    struct ioctl_gntalloc_alloc_gref *a = calloc(1, len);
    if (!a)
        return fail(err, errlen, -ENOMEM, "grant");
    a->domid = (uint16_t)backend;
    a->flags = GNTALLOC_FLAG_WRITABLE;
    a->count = s->pages;
    if (ioctl(s->gnt_fd, IOCTL_GNTALLOC_ALLOC_GREF, a) < 0) {
        int e = errno;
        free(a);
        snprintf(err, errlen,
                 "xen+shm: granting %u pages: %s (gntalloc grants 1024 pages at most by "
                 "default: a smaller pages=, or load xen-gntalloc with a higher limit=)",
                 (unsigned)s->pages, strerror(e));
        return -e;
    }
    memcpy(refs, a->gref_ids, (size_t)s->pages * sizeof(uint32_t));
    uint64_t index = a->index;
    free(a);
    s->region = (size_t)s->pages * IVMON_XEN_PAGE_SIZE;
    s->base = mmap(NULL, s->region, PROT_READ | PROT_WRITE, MAP_SHARED, s->gnt_fd, (off_t)index);
    if (s->base == MAP_FAILED) {
        s->base = NULL;
        return fail(err, errlen, -errno, "mmap of the granted pages");
    }
    return 0;
}

static int alloc_port(struct xen_shm_state *s, uint32_t backend, char *err, size_t errlen)
{
    s->evt_fd = open(EVTCHN_DEV, O_RDWR | O_CLOEXEC);
    if (s->evt_fd < 0)
        return fail(err, errlen, -errno, EVTCHN_DEV " (is xen-evtchn loaded?)");
    struct evtchn_bind_unbound_port_arg b = {.remote_domain = backend};
    int port = ioctl(s->evt_fd, EVTCHN_BIND_UNBOUND_PORT, &b);
    if (port < 0)
        return fail(err, errlen, -errno, "event channel for the backend domain");
    s->port = (uint32_t)port;
    return 0;
}

static int write_key(struct xen_shm_state *s, const char *key, const char *value)
{
    char path[64];
    snprintf(path, sizeof path, IVMON_XEN_XS_DIR "/%s", key);
    return ivmon_xenbus_write(&s->xb, path, value);
}

/* One attempt at the publishing transaction; -EAGAIN means try again. */
static int publish_once(struct xen_shm_state *s, uint32_t backend, const uint32_t *refs,
                        uint64_t generation)
{
    char v[32];
    int r = ivmon_xenbus_begin(&s->xb);
    if (r < 0)
        return r;
    r = ivmon_xenbus_rm(&s->xb, IVMON_XEN_XS_DIR);
    snprintf(v, sizeof v, "%d", IVMON_XEN_LAYOUT);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_LAYOUT, v);
    snprintf(v, sizeof v, "%d.%d", IVMON_PROTO_MAJOR, IVMON_PROTO_MINOR);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_PROTO, v);
    snprintf(v, sizeof v, "%u", (unsigned)backend);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_BACKEND, v);
    snprintf(v, sizeof v, "%u", (unsigned)s->pages);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_PAGES, v);
    for (uint32_t k = 0; r == 0 && k * IVMON_XEN_GREFS_PER_KEY < s->pages; k++) {
        char line[REFS_LINE_MAX], key[32];
        size_t used = 0;
        for (uint32_t i = k * IVMON_XEN_GREFS_PER_KEY;
             i < s->pages && i < (k + 1) * IVMON_XEN_GREFS_PER_KEY; i++)
            used += (size_t)snprintf(line + used, sizeof line - used, "%s%u", used ? " " : "",
                                     (unsigned)refs[i]);
        snprintf(key, sizeof key, IVMON_XEN_XS_GREF_DIR "/%u", (unsigned)k);
        r = write_key(s, key, line);
    }
    snprintf(v, sizeof v, "%u", (unsigned)s->port);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_EVTCHN, v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)generation);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_GENERATION, v);
    if (r == 0)
        r = write_key(s, IVMON_XEN_XS_STATE, IVMON_XEN_STATE_READY);
    if (r < 0) {
        ivmon_xenbus_end(&s->xb, 0);
        return r;
    }
    return ivmon_xenbus_end(&s->xb, 1);
}

static int publish(struct xen_shm_state *s, uint32_t backend, const uint32_t *refs, char *err,
                   size_t errlen)
{
    uint64_t generation = 0;
    /* Random, so that a restarted agent (or a rebooted guest) never repeats its predecessor's
     * generation; zero is reserved for "none". */
    while (generation == 0)
        if (getrandom(&generation, sizeof generation, 0) != (ssize_t)sizeof generation)
            return fail(err, errlen, -errno, "getrandom");
    int r = ivmon_xenbus_open(&s->xb);
    if (r < 0) {
        snprintf(err, errlen, "xen+shm: /dev/xen/xenbus: %s (mount xenfs or load xenfs?)",
                 strerror(-r));
        return r;
    }
    for (int i = 0; i < TX_RETRIES; i++) {
        r = publish_once(s, backend, refs, generation);
        if (r != -EAGAIN)
            break;
    }
    if (r < 0) {
        snprintf(err, errlen,
                 "xen+shm: writing XenStore %s: %s (libxl makes <home>/data writable by the "
                 "guest)",
                 IVMON_XEN_XS_DIR, strerror(-r));
        return r;
    }
    s->published = 1;
    return 0;
}

static int xen_shm_open(void *priv, const struct ivmon_guest_uri *u, int lossless,
                        struct ivmon_ring *ret_ring, char *err, size_t errlen)
{
    struct xen_shm_state *s = priv;
    const char *why = "invalid ring";

    s->gnt_fd = s->evt_fd = s->lock_fd = -1;
    s->xb.fd = -1;
    s->pages = 1 + u->xen_pages;
    int r = take_lock(s, err, errlen);
    if (r < 0)
        return r;
    uint32_t *refs = calloc(s->pages, sizeof *refs);
    if (!refs)
        return fail(err, errlen, -ENOMEM, "grant refs");
    r = grant_pages(s, u->xen_backend, refs, err, errlen);
    if (r == 0)
        r = alloc_port(s, u->xen_backend, err, errlen);
    if (r == 0) {
        /* Fresh pages, ours alone until published: format before anyone can look. */
        r = ivmon_ring_format(s->base, s->region, lossless ? IVMON_RING_LOSSLESS : 0);
        if (r == 0)
            r = ivmon_ring_attach(ret_ring, s->base, s->region, &why);
        if (r < 0)
            snprintf(err, errlen, "xen+shm: %s", why);
    }
    if (r == 0)
        r = publish(s, u->xen_backend, refs, err, errlen);
    free(refs);
    return r;
}

static int xen_shm_doorbell(void *priv, const struct ivmon_ring_hdr *hdr)
{
    struct xen_shm_state *s = priv;
    (void)hdr;
    struct evtchn_notify_arg n = {.port = s->port};
    /* The ring's stores were published with release order and a full fence (ring.c); the
     * hypercall behind the ioctl orders them before the event itself. */
    return ioctl(s->evt_fd, EVTCHN_NOTIFY, &n) < 0 ? -ENOTCONN : 0;
}

static void xen_shm_close(void *priv)
{
    struct xen_shm_state *s = priv;
    if (s->published) {
        /* Not removed: dom0 must still find the ring's last records; "closed" tells it that no
         * more will come, and the next agent's publish replaces the directory. */
        for (int i = 0; i < TX_RETRIES; i++) {
            int r = ivmon_xenbus_begin(&s->xb);
            if (r == 0)
                r = write_key(s, IVMON_XEN_XS_STATE, IVMON_XEN_STATE_CLOSING);
            if (r == 0)
                r = ivmon_xenbus_end(&s->xb, 1);
            else if (s->xb.tx)
                ivmon_xenbus_end(&s->xb, 0);
            if (r != -EAGAIN)
                break;
        }
    }
    ivmon_xenbus_close(&s->xb);
    if (s->evt_fd >= 0)
        close(s->evt_fd); /* unbinds the port */
    if (s->base)
        munmap(s->base, s->region);
    if (s->gnt_fd >= 0)
        close(s->gnt_fd); /* ends the grants once dom0 unmaps */
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    s->evt_fd = s->gnt_fd = s->lock_fd = -1;
    s->base = NULL;
}

const struct ivmon_guest_backend ivmon_guest_backend_xen_shm = {
    .abi = IVMON_GUEST_BACKEND_ABI,
    .size = sizeof(struct ivmon_guest_backend),
    .name = "xen+shm",
    .uri_kind = IVMON_GUEST_URI_XEN_SHM,
    .priv_size = sizeof(struct xen_shm_state),
    .open = xen_shm_open,
    .doorbell = xen_shm_doorbell,
    .close = xen_shm_close,
};
