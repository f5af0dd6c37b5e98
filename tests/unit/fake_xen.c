/* SPDX-License-Identifier: MIT */
/* A fake Xen behind the backends' table of library calls; see fake_xen.h. */
#include "fake_xen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PAGE 4096u

struct fake_xen fx;

struct fake_dom *fake_xen_dom(uint32_t domid)
{
    for (int i = 0; i < FAKE_XEN_DOMS; i++)
        if (fx.doms[i].exists && fx.doms[i].domid == domid)
            return &fx.doms[i];
    return NULL;
}

static int key_slot(const char *path)
{
    for (int i = 0; i < FAKE_XEN_KEYS; i++)
        if (fx.keys[i] && !strcmp(fx.keys[i], path))
            return i;
    return -1;
}

void fake_xen_set_bytes(const char *path, const void *value, size_t len)
{
    int i = key_slot(path);
    for (int j = 0; i < 0 && j < FAKE_XEN_KEYS; j++)
        if (!fx.keys[j])
            i = j;
    if (i < 0)
        abort(); /* a test that writes more keys than the store holds is wrong */
    char *v = malloc(len + 1);
    char *k = fx.keys[i] ? fx.keys[i] : strdup(path);
    if (!v || !k)
        abort();
    memcpy(v, value, len);
    v[len] = '\0';
    free(fx.values[i]);
    fx.keys[i] = k;
    fx.values[i] = v;
    fx.lens[i] = (unsigned)len;
}

void fake_xen_set(const char *path, const char *value)
{
    fake_xen_set_bytes(path, value, strlen(value));
}

void fake_xen_rm(const char *path)
{
    int i = key_slot(path);
    if (i < 0)
        return;
    free(fx.keys[i]);
    free(fx.values[i]);
    fx.keys[i] = fx.values[i] = NULL;
}

char *fake_xen_get(const char *path, unsigned *ret_len)
{
    int i = key_slot(path);
    if (i < 0)
        return NULL;
    char *v = malloc(fx.lens[i] + 1);
    if (v) {
        memcpy(v, fx.values[i], fx.lens[i] + 1);
        *ret_len = fx.lens[i];
    }
    return v;
}

int fake_xen_queue_watch(const char *path, const char *token)
{
    if (fx.nwatch >= FAKE_XEN_WATCHES)
        return -ENOSPC;
    /* a stack: the newest first, as order does not matter to the backend */
    fx.watches[fx.nwatch][0] = path;
    fx.watches[fx.nwatch][1] = token;
    fx.nwatch++;
    return 0;
}

struct fake_dom *fake_xen_add_dom(int slot, uint32_t domid, const char *name)
{
    struct fake_dom *d = &fx.doms[slot];
    d->domid = domid;
    d->name = name;
    d->exists = 1;
    d->dying = 0;
    d->pv = 0;
    char path[64];
    snprintf(path, sizeof path, "/local/domain/%u/name", (unsigned)domid);
    fake_xen_set(path, name);
    return d;
}

void *fake_xen_new_region(struct fake_dom *d, uint32_t pages)
{
    void *p = NULL;
    if (d->nregions >= FAKE_XEN_REGIONS || posix_memalign(&p, PAGE, (size_t)pages * PAGE) != 0)
        return NULL;
    memset(p, 0, (size_t)pages * PAGE);
    d->regions[d->nregions++] = p;
    d->region = p;
    d->region_pages = pages;
    return p;
}

/* ---- the table ------------------------------------------------------------------------------ */

static xc_interface *f_xc_open(void)
{
    return (xc_interface *)&fx.handle;
}
static int f_xc_close(xc_interface *x)
{
    return 0;
}
/* As Xen 4.17's xc_domain_getinfo: the first max domains with an id from first on, in id
 * order; -1 with ESRCH when there is none. */
static int f_domain_getinfo(xc_interface *x, uint32_t first, unsigned int max, xc_dominfo_t *info)
{
    unsigned n = 0;
    uint32_t from = first;
    while (n < max) {
        const struct fake_dom *next = NULL;
        for (int i = 0; i < FAKE_XEN_DOMS; i++)
            if (fx.doms[i].exists && fx.doms[i].domid >= from &&
                (!next || fx.doms[i].domid < next->domid))
                next = &fx.doms[i];
        if (!next)
            break;
        memset(&info[n], 0, sizeof info[n]);
        info[n].domid = next->domid;
        info[n].dying = next->dying ? 1 : 0;
        info[n].hvm = !next->pv;
        n++;
        from = next->domid + 1;
    }
    if (n == 0) {
        errno = ESRCH;
        return -1;
    }
    return (int)n;
}
static int f_domain_pause(xc_interface *x, uint32_t domid)
{
    fx.pauses++;
    return 0;
}
static int f_domain_unpause(xc_interface *x, uint32_t domid)
{
    fx.unpauses++;
    return 0;
}
static struct xs_handle *f_xs_open(void)
{
    return (struct xs_handle *)&fx.handle;
}
static void f_xs_close(struct xs_handle *xs)
{
}
static void *f_xs_read(struct xs_handle *xs, xs_transaction_t t, const char *path,
                       unsigned int *len)
{
    char *v = fake_xen_get(path, len);
    if (!v)
        errno = ENOENT;
    return v;
}
static char **f_xs_directory(struct xs_handle *xs, xs_transaction_t t, const char *path,
                             unsigned int *num)
{
    /* one block: the pointer array, then the strings (freed with one free, like libxenstore) */
    char **v = calloc(1, FAKE_XEN_DOMS * (sizeof(char *) + 16));
    if (!v)
        return NULL;
    char *s = (char *)(v + FAKE_XEN_DOMS);
    unsigned n = 0;
    for (int i = 0; i < FAKE_XEN_DOMS; i++)
        if (fx.doms[i].exists) {
            snprintf(s, 16, "%u", (unsigned)fx.doms[i].domid);
            v[n++] = s;
            s += 16;
        }
    *num = n;
    return v;
}
static bool f_xs_write(struct xs_handle *xs, xs_transaction_t t, const char *path, const void *data,
                       unsigned int len)
{
    if (fx.write_fails) {
        errno = EACCES;
        return false;
    }
    fake_xen_set_bytes(path, data, len);
    return true;
}
static bool f_xs_rm(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
    fake_xen_rm(path);
    return true;
}
static bool f_xs_watch(struct xs_handle *xs, const char *path, const char *token)
{
    return true;
}
static int f_xs_fileno(struct xs_handle *xs)
{
    return fx.pipefd[0];
}
static char **f_xs_check_watch(struct xs_handle *xs)
{
    if (!fx.nwatch) {
        errno = EAGAIN;
        return NULL;
    }
    fx.nwatch--;
    char **v = calloc(1, 2 * sizeof(char *) + 256);
    if (!v)
        return NULL;
    char *s = (char *)(v + 2);
    snprintf(s, 128, "%s", fx.watches[fx.nwatch][0]);
    snprintf(s + 128, 128, "%s", fx.watches[fx.nwatch][1]);
    v[XS_WATCH_PATH] = s;
    v[XS_WATCH_TOKEN] = s + 128;
    return v;
}
static xs_transaction_t f_tx_start(struct xs_handle *xs)
{
    return 1;
}
static bool f_tx_end(struct xs_handle *xs, xs_transaction_t t, bool abort)
{
    return true;
}
static xengnttab_handle *f_gnttab_open(void)
{
    return (xengnttab_handle *)&fx.handle;
}
static int f_gnttab_close(xengnttab_handle *x)
{
    return 0;
}
static void *f_gnttab_map(xengnttab_handle *x, uint32_t count, uint32_t domid, uint32_t *refs,
                          int prot)
{
    fx.maps++;
    struct fake_dom *d = fake_xen_dom(domid);
    if (fx.map_fails || !d || !d->region || count != d->region_pages) {
        errno = EINVAL;
        return NULL;
    }
    return d->region;
}
static int f_gnttab_unmap(xengnttab_handle *x, void *start, uint32_t count)
{
    fx.unmaps++;
    return 0;
}
static xenevtchn_handle *f_evtchn_open(void)
{
    return (xenevtchn_handle *)&fx.handle;
}
static int f_evtchn_close(xenevtchn_handle *x)
{
    return 0;
}
static int f_evtchn_fd(xenevtchn_handle *x)
{
    return fx.evfd;
}
static xenevtchn_port_or_error_t f_evtchn_bind(xenevtchn_handle *x, uint32_t domid,
                                               evtchn_port_t port)
{
    fx.binds++;
    if (fx.bind_fails) {
        errno = EINVAL;
        return -1;
    }
    return FAKE_XEN_EVTCHN;
}
static int f_evtchn_unbind(xenevtchn_handle *x, evtchn_port_t port)
{
    return 0;
}
static xenevtchn_port_or_error_t f_evtchn_pending(xenevtchn_handle *x)
{
    uint64_t v;
    return read(fx.evfd, &v, sizeof v) == (ssize_t)sizeof v ? FAKE_XEN_EVTCHN : -1;
}
static int f_evtchn_unmask(xenevtchn_handle *x, evtchn_port_t port)
{
    return 0;
}
static void *f_monitor_enable(xc_interface *x, uint32_t domid, uint32_t *port)
{
    if (fx.monitor_on) {
        errno = EBUSY; /* Xen: one vm_event monitor per domain */
        return NULL;
    }
    if (!fx.vm_page) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    fx.monitor_on = 1;
    *port = 9;
    return fx.vm_page;
}
static int f_monitor_off(xc_interface *x, uint32_t domid)
{
    fx.monitor_on = 0;
    fx.disables++;
    return 0;
}
static int f_monitor_gr(xc_interface *x, uint32_t domid, bool on, bool sync, bool user)
{
    fx.gr_on = on;
    fx.gr_sync = sync;
    return 0;
}
static void f_unmap_page(void *page)
{
}
static int f_notify(xenevtchn_handle *x, evtchn_port_t port)
{
    return 0;
}

const struct ivmon_xen_sys fake_xen_sys = {
    .xc_open = f_xc_open,
    .xc_close = f_xc_close,
    .domain_getinfo = f_domain_getinfo,
    .domain_pause = f_domain_pause,
    .domain_unpause = f_domain_unpause,
    .monitor_enable = f_monitor_enable,
    .monitor_disable = f_monitor_off,
    .monitor_guest_request = f_monitor_gr,
    .unmap_page = f_unmap_page,
    .xs_open = f_xs_open,
    .xs_close = f_xs_close,
    .xs_read = f_xs_read,
    .xs_directory = f_xs_directory,
    .xs_write = f_xs_write,
    .xs_rm = f_xs_rm,
    .xs_watch = f_xs_watch,
    .xs_unwatch = f_xs_watch,
    .xs_fileno = f_xs_fileno,
    .xs_check_watch = f_xs_check_watch,
    .xs_transaction_start = f_tx_start,
    .xs_transaction_end = f_tx_end,
    .gnttab_open = f_gnttab_open,
    .gnttab_close = f_gnttab_close,
    .gnttab_map = f_gnttab_map,
    .gnttab_unmap = f_gnttab_unmap,
    .evtchn_open = f_evtchn_open,
    .evtchn_close = f_evtchn_close,
    .evtchn_fd = f_evtchn_fd,
    .evtchn_bind = f_evtchn_bind,
    .evtchn_unbind = f_evtchn_unbind,
    .evtchn_pending = f_evtchn_pending,
    .evtchn_unmask = f_evtchn_unmask,
    .evtchn_notify = f_notify,
};

int fake_xen_init(void)
{
    memset(&fx, 0, sizeof fx);
    fx.pipefd[0] = fx.pipefd[1] = -1;
    fx.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fx.evfd < 0 || pipe(fx.pipefd) < 0) {
        int e = errno;
        fake_xen_fini();
        return -e;
    }
    ivmon__xen_sys = &fake_xen_sys;
    return 0;
}

void fake_xen_fini(void)
{
    ivmon__xen_sys = &ivmon__xen_sys_real;
    for (int i = 0; i < FAKE_XEN_KEYS; i++) {
        free(fx.keys[i]);
        free(fx.values[i]);
        fx.keys[i] = fx.values[i] = NULL;
    }
    for (int i = 0; i < FAKE_XEN_DOMS; i++)
        for (unsigned j = 0; j < fx.doms[i].nregions; j++)
            free(fx.doms[i].regions[j]);
    if (fx.evfd >= 0)
        close(fx.evfd);
    for (int i = 0; i < 2; i++)
        if (fx.pipefd[i] >= 0)
            close(fx.pipefd[i]);
    memset(&fx, 0, sizeof fx);
    fx.evfd = fx.pipefd[0] = fx.pipefd[1] = -1;
}
