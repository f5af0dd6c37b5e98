/* SPDX-License-Identifier: MIT */
/* The Xen backends' error paths that a real Xen does not produce on demand, through a table of
 * fake Xen library calls (backends/xen/xen_sys.h): grant refs that do not map, an event channel
 * that does not bind, a domain that goes away with records still in its ring, an agent restart
 * (new grant pages), absurd XenStore values that must never reach the grant mapper. The Xen
 * integration test (tests/xen, label xen) covers the same paths on a real hypervisor where it
 * can. Each failing session is checked to leave a healthy one in the same process serving. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "ivmon/fragment.h"
#include "ivmon/xen.h"
#include "unit_records.h"
#include "xen/xen_sys.h"

#include <xen/vm_event.h>

#define PAGES     17 /* header + 16 data pages: the smallest ring */
#define MAX_KEYS  64
#define MAX_DOMS  4
#define LOCAL_EVT 7

/* ---- a fake Xen ------------------------------------------------------------------------------ */

struct fake_dom {
    uint32_t domid;
    const char *name;
    int exists, dying, pv;
    void *region;      /* the guest's granted pages, as the mapper hands them out */
    void *regions[32]; /* every agent start grants new pages; the old stay until teardown */
    unsigned nregions;
};

static struct {
    char *keys[MAX_KEYS], *values[MAX_KEYS];
    struct fake_dom doms[MAX_DOMS];
    char *watches[16][2]; /* queued watch events: path, token */
    unsigned nwatch;
    int map_fails, bind_fails;
    unsigned maps, unmaps, binds;
    int monitor_on;                      /* a vm_event ring is enabled (one domain at a time) */
    unsigned disables, pauses, unpauses; /* monitor_disable, domain_pause, domain_unpause */
    int evfd, pipefd[2];
    char handle; /* what the opaque handles point to */
} F;

static struct fake_dom *dom(uint32_t domid)
{
    for (int i = 0; i < MAX_DOMS; i++)
        if (F.doms[i].exists && F.doms[i].domid == domid)
            return &F.doms[i];
    return NULL;
}

static void kv_set(const char *path, const char *value)
{
    int free_slot = -1;
    for (int i = 0; i < MAX_KEYS; i++) {
        if (F.keys[i] && !strcmp(F.keys[i], path)) {
            free(F.values[i]);
            F.values[i] = strdup(value);
            return;
        }
        if (!F.keys[i] && free_slot < 0)
            free_slot = i;
    }
    assert_true(free_slot >= 0);
    F.keys[free_slot] = strdup(path);
    F.values[free_slot] = strdup(value);
}

static void kv_rm(const char *path)
{
    for (int i = 0; i < MAX_KEYS; i++)
        if (F.keys[i] && !strcmp(F.keys[i], path)) {
            free(F.keys[i]);
            free(F.values[i]);
            F.keys[i] = F.values[i] = NULL;
        }
}

static void kv_clear(void)
{
    for (int i = 0; i < MAX_KEYS; i++) {
        free(F.keys[i]);
        free(F.values[i]);
        F.keys[i] = F.values[i] = NULL;
    }
}

static xc_interface *f_xc_open(void)
{
    return (xc_interface *)&F.handle;
}
static int f_xc_close(xc_interface *x)
{
    return 0;
}
static int f_domain_info(xc_interface *x, uint32_t domid, xc_dominfo_t *ret)
{
    struct fake_dom *d = dom(domid);
    if (!d)
        return -ENODEV;
    memset(ret, 0, sizeof *ret);
    ret->domid = domid;
    ret->dying = d->dying ? 1 : 0;
    ret->hvm = !d->pv;
    return 0;
}
static int f_domain_pause(xc_interface *x, uint32_t domid)
{
    F.pauses++;
    return 0;
}
static int f_domain_unpause(xc_interface *x, uint32_t domid)
{
    F.unpauses++;
    return 0;
}
static struct xs_handle *f_xs_open(void)
{
    return (struct xs_handle *)&F.handle;
}
static void f_xs_close(struct xs_handle *xs)
{
}
static void *f_xs_read(struct xs_handle *xs, xs_transaction_t t, const char *path,
                       unsigned int *len)
{
    for (int i = 0; i < MAX_KEYS; i++)
        if (F.keys[i] && !strcmp(F.keys[i], path)) {
            *len = (unsigned)strlen(F.values[i]);
            return strdup(F.values[i]);
        }
    errno = ENOENT;
    return NULL;
}
static char **f_xs_directory(struct xs_handle *xs, xs_transaction_t t, const char *path,
                             unsigned int *num)
{
    /* one block: the pointer array, then the strings (freed with one free, like libxenstore) */
    char **v = calloc(1, MAX_DOMS * (sizeof(char *) + 16));
    char *s = (char *)(v + MAX_DOMS);
    unsigned n = 0;
    for (int i = 0; i < MAX_DOMS; i++)
        if (F.doms[i].exists) {
            snprintf(s, 16, "%u", (unsigned)F.doms[i].domid);
            v[n++] = s;
            s += 16;
        }
    *num = n;
    return v;
}
static bool f_xs_write(struct xs_handle *xs, xs_transaction_t t, const char *path, const void *data,
                       unsigned int len)
{
    char *v = strndup(data, len);
    kv_set(path, v);
    free(v);
    return true;
}
static bool f_xs_rm(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
    kv_rm(path);
    return true;
}
static bool f_xs_watch(struct xs_handle *xs, const char *path, const char *token)
{
    return true;
}
static int f_xs_fileno(struct xs_handle *xs)
{
    return F.pipefd[0];
}
static char **f_xs_check_watch(struct xs_handle *xs)
{
    if (!F.nwatch) {
        errno = EAGAIN;
        return NULL;
    }
    F.nwatch--;
    char **v = calloc(1, 2 * sizeof(char *) + 256);
    char *s = (char *)(v + 2);
    snprintf(s, 128, "%s", F.watches[F.nwatch][0]);
    snprintf(s + 128, 128, "%s", F.watches[F.nwatch][1]);
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
    return (xengnttab_handle *)&F.handle;
}
static int f_gnttab_close(xengnttab_handle *x)
{
    return 0;
}
static void *f_gnttab_map(xengnttab_handle *x, uint32_t count, uint32_t domid, uint32_t *refs,
                          int prot)
{
    F.maps++;
    struct fake_dom *d = dom(domid);
    if (F.map_fails || !d || count != PAGES) {
        errno = EINVAL;
        return NULL;
    }
    return d->region;
}
static int f_gnttab_unmap(xengnttab_handle *x, void *start, uint32_t count)
{
    F.unmaps++;
    return 0;
}
static xenevtchn_handle *f_evtchn_open(void)
{
    return (xenevtchn_handle *)&F.handle;
}
static int f_evtchn_close(xenevtchn_handle *x)
{
    return 0;
}
static int f_evtchn_fd(xenevtchn_handle *x)
{
    return F.evfd;
}
static xenevtchn_port_or_error_t f_evtchn_bind(xenevtchn_handle *x, uint32_t domid,
                                               evtchn_port_t port)
{
    F.binds++;
    if (F.bind_fails) {
        errno = EINVAL;
        return -1;
    }
    return LOCAL_EVT;
}
static int f_evtchn_unbind(xenevtchn_handle *x, evtchn_port_t port)
{
    return 0;
}
static xenevtchn_port_or_error_t f_evtchn_pending(xenevtchn_handle *x)
{
    uint64_t v;
    return read(F.evfd, &v, sizeof v) == (ssize_t)sizeof v ? LOCAL_EVT : -1;
}
static int f_evtchn_unmask(xenevtchn_handle *x, evtchn_port_t port)
{
    return 0;
}

static void *vm_page;
static void *f_monitor_enable(xc_interface *x, uint32_t domid, uint32_t *port)
{
    if (F.monitor_on) {
        errno = EBUSY; /* Xen: one vm_event monitor per domain */
        return NULL;
    }
    F.monitor_on = 1;
    *port = 9;
    return vm_page;
}
static int f_monitor_off(xc_interface *x, uint32_t domid)
{
    F.monitor_on = 0;
    F.disables++;
    return 0;
}
static int f_monitor_gr(xc_interface *x, uint32_t domid, bool on, bool sync, bool user)
{
    return 0;
}
static void f_unmap_page(void *page)
{
}
static int f_notify(xenevtchn_handle *x, evtchn_port_t port)
{
    return 0;
}

static const struct ivmon_xen_sys fake = {
    .monitor_enable = f_monitor_enable,
    .monitor_disable = f_monitor_off,
    .monitor_guest_request = f_monitor_gr,
    .unmap_page = f_unmap_page,
    .evtchn_notify = f_notify,
    .xc_open = f_xc_open,
    .xc_close = f_xc_close,
    .domain_info = f_domain_info,
    .domain_pause = f_domain_pause,
    .domain_unpause = f_domain_unpause,
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
};

/* ---- a fake guest agent --------------------------------------------------------------------- */

struct guest {
    struct fake_dom *d;
    struct ivmon_producer p;
    struct rec_buf rb;
};

static void queue_watch(const char *path, const char *token)
{
    assert_true(F.nwatch < 16);
    /* a stack: the newest first, as order does not matter to the backend */
    F.watches[F.nwatch][0] = (char *)path;
    F.watches[F.nwatch][1] = (char *)token;
    F.nwatch++;
}

/* Formats a fresh ring in the guest's pages and publishes the keys as the agent does. */
static void guest_start(struct guest *g, uint32_t domid, uint64_t generation)
{
    char dir[64], key[96], v[512];
    const char *why = NULL;
    struct ivmon_ring ring;

    struct fake_dom *d = g->d;
    assert_true(d->nregions < 32);
    assert_int_equal(posix_memalign(&d->region, IVMON_XEN_PAGE_SIZE, PAGES * IVMON_XEN_PAGE_SIZE),
                     0);
    d->regions[d->nregions++] = d->region;
    memset(g->d->region, 0, PAGES * IVMON_XEN_PAGE_SIZE);
    assert_int_equal(ivmon_ring_format(g->d->region, PAGES * IVMON_XEN_PAGE_SIZE, 0), 0);
    assert_int_equal(ivmon_ring_attach(&ring, g->d->region, PAGES * IVMON_XEN_PAGE_SIZE, &why), 0);
    ivmon_producer_init(&g->p, &ring, 0);
    snprintf(dir, sizeof dir, "/local/domain/%u/" IVMON_XEN_XS_DIR, (unsigned)domid);
#define SET(k, ...)                                                                                \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s/%s", dir, k);                                                \
        snprintf(v, sizeof v, __VA_ARGS__);                                                        \
        kv_set(key, v);                                                                            \
    } while (0)
    SET("layout", "1");
    SET("proto", "1.0");
    SET("backend-id", "0");
    SET("pages", "%d", PAGES);
    SET("gref/0", "8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24");
    SET("event-channel", "5");
    SET("generation", "%llu", (unsigned long long)generation);
    SET("state", "ready");
#undef SET
}

static void guest_set(uint32_t domid, const char *key, const char *value)
{
    char path[128];
    snprintf(path, sizeof path, "/local/domain/%u/" IVMON_XEN_XS_DIR "/%s", (unsigned)domid, key);
    kv_set(path, value);
}

static void guest_emit(struct guest *g, int hello, unsigned files)
{
    if (hello) {
        rec_hello(&g->rb, 0);
        assert_true(ivmon_producer_emit(&g->p, &g->rb.hdr) >= 0);
    }
    for (unsigned i = 0; i < files; i++) {
        rec_file(&g->rb, 0, IVMON_OP_OPEN, "/etc/hosts", NULL);
        assert_true(ivmon_producer_emit(&g->p, &g->rb.hdr) >= 0);
    }
}

static unsigned delivered;
static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    (*(unsigned *)userdata)++;
    delivered++;
    return 0;
}

/* Processes until idle; returns the last result. */
static int pump(ivmon *m)
{
    int r = 0;
    for (int i = 0; i < 64; i++) {
        r = ivmon_process(m, 0);
        if (r <= 0 && ivmon_get_timeout(m) != 0)
            break;
    }
    return r;
}

static struct fake_dom *add_dom(int slot, uint32_t domid, const char *name)
{
    struct fake_dom *d = &F.doms[slot];
    d->domid = domid;
    d->name = name;
    d->exists = 1;
    d->dying = 0;
    d->pv = 0;
    char path[64];
    snprintf(path, sizeof path, "/local/domain/%u/name", (unsigned)domid);
    kv_set(path, name);
    return d;
}

static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    F.evfd = eventfd(0, EFD_NONBLOCK);
    assert_true(F.evfd >= 0);
    assert_int_equal(pipe(F.pipefd), 0);
    ivmon__xen_sys = &fake;
    delivered = 0;
    return 0;
}

static int teardown(void **state)
{
    ivmon__xen_sys = &ivmon__xen_sys_real;
    kv_clear();
    for (int i = 0; i < MAX_DOMS; i++)
        for (unsigned j = 0; j < F.doms[i].nregions; j++)
            free(F.doms[i].regions[j]);
    close(F.evfd);
    close(F.pipefd[0]);
    close(F.pipefd[1]);
    return 0;
}

/* A healthy session on domain 11 ("good"), used beside each failing one. */
static ivmon *open_good(struct guest *g, unsigned *count)
{
    ivmon *m = NULL;
    g->d = dom(11);
    guest_start(g, 11, 1);
    guest_emit(g, 1, 3);
    assert_int_equal(ivmon_open(&m, "xen+shm:good", 0), 0);
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, count);
    assert_int_equal(pump(m), 0);
    assert_int_equal(*count, 4);
    return m;
}

/* The healthy session is not affected by the other one's failure: files more records arrive.
 * Closes it. */
static void good_still_serves(ivmon *m, struct guest *good, unsigned *ngood, unsigned files)
{
    unsigned before = *ngood;
    guest_emit(good, 0, files);
    assert_int_equal(pump(m), 0);
    assert_int_equal(*ngood, before + files);
    ivmon_close(m);
}

/* The healthy session on domain 11 and a second one on domain 12 ("g"), whose agent is up.
 * Returns the healthy one; the second goes to *ret. */
static ivmon *open_pair(struct guest *good, unsigned *ngood, struct guest *g, unsigned *n,
                        const char *uri, ivmon **ret)
{
    add_dom(0, 11, "good");
    add_dom(1, 12, "g");
    ivmon *m = open_good(good, ngood);
    g->d = dom(12);
    guest_start(g, 12, 1);
    assert_int_equal(ivmon_open(ret, uri, 0), 0);
    ivmon_set_handler(*ret, IVMON_EVENT_ANY, on_event, n);
    return m;
}

/* With *fault set, an agent on domain 12 is refused at open with -EPROTO and why. */
static void open_refused(struct guest *g, const char *uri, int *fault, const char *why)
{
    ivmon *b = NULL;
    g->d = dom(12);
    guest_start(g, 12, 1);
    *fault = 1;
    assert_int_equal(ivmon_open(&b, uri, 0), -EPROTO);
    assert_non_null(strstr(ivmon_open_error(), why));
    assert_null(b);
    *fault = 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_map_failure(void **state)
{
    struct guest good = {0}, bad = {0};
    unsigned ngood = 0;
    add_dom(0, 11, "good");
    add_dom(1, 12, "bad");
    ivmon *m = open_good(&good, &ngood);

    open_refused(&bad, "xen+shm:12", &F.map_fails, "cannot map its 17 granted pages");

    eventfd_write(F.evfd, 1);
    good_still_serves(m, &good, &ngood, 5);
}

static void test_bind_failure(void **state)
{
    struct guest g = {0};
    add_dom(0, 12, "bad");
    open_refused(&g, "xen+shm:bad", &F.bind_fails, "cannot bind its event channel 5");
    assert_int_equal(F.unmaps, 1); /* what was mapped before the bind failed is given back */
}

static void test_bind_failure_on_restart(void **state)
{
    struct guest good = {0}, g = {0};
    unsigned ngood = 0, n = 0;
    ivmon *b = NULL, *m = open_pair(&good, &ngood, &g, &n, "xen+shm:g", &b);

    /* the agent restarts, and its new port cannot be bound: this session fails, for good */
    guest_start(&g, 12, 2);
    F.bind_fails = 1;
    queue_watch("/local/domain/12/data/ivmon/state", "ivmon-shm-dir");
    assert_int_equal(pump(b), -EPROTO);
    assert_non_null(strstr(ivmon_get_error(b), "cannot bind"));
    assert_int_equal(ivmon_process(b, 0), -EPROTO);
    F.bind_fails = 0;

    good_still_serves(m, &good, &ngood, 2);
    ivmon_close(b);
}

static void test_absurd_values_never_mapped(void **state)
{
    static const struct {
        const char *key, *value, *why;
    } cases[] = {
        {"pages", "4294967313", "pages is not a number"},
        {"pages", "16", "pages is not a number from 17"},
        {"pages", "018", "pages is not a number"},
        {"pages", "+17", "pages is not a number"},
        {"pages", "34", "34 pages is not 1 + a power of two"},
        {"gref/0", "8 9 10", "gref/0 is not a list of grant refs"},
        {"gref/0", "8  9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24", "not a list"},
        {"gref/0", "8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25", "not a list"},
        {"gref/0", "8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 4294967296", "not a list"},
        {"event-channel", "0", "event-channel is not a number from 1"},
        {"event-channel", "131072", "event-channel is not a number from 1"},
        {"generation", "0", "generation is not a number from 1"},
        {"layout", "2", "XenStore layout 2"},
        {"proto", "1", "is not MAJOR.MINOR"},
        {"proto", "3.0", "protocol 3.0"},
        {"backend-id", "7", "granted its ring to domain 7"},
        {"state", "Ready", "state is not"},
    };
    struct guest g = {0};
    add_dom(0, 12, "bad");
    g.d = dom(12);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        guest_start(&g, 12, 1);
        guest_set(12, cases[i].key, cases[i].value);
        F.maps = 0;
        ivmon *b = NULL;
        int r = ivmon_open(&b, "xen+shm:12", 0);
        if (r != -EPROTO || !strstr(ivmon_open_error(), cases[i].why))
            fail_msg("%s=%s: got %d \"%s\", expected -EPROTO \"%s\"", cases[i].key, cases[i].value,
                     r, ivmon_open_error(), cases[i].why);
        assert_int_equal(F.maps, 0); /* refused before anything was mapped */
    }
    /* a missing gref key for a bigger ring */
    guest_start(&g, 12, 1);
    guest_set(12, "pages", "257");
    char refs[IVMON_XEN_GREFS_PER_KEY * 11];
    size_t used = 0;
    for (unsigned i = 0; i < IVMON_XEN_GREFS_PER_KEY; i++)
        used += (size_t)snprintf(refs + used, sizeof refs - used, "%s%u", i ? " " : "", 100 + i);
    guest_set(12, "gref/0", refs);
    ivmon *b = NULL;
    assert_int_equal(ivmon_open(&b, "xen+shm:12", 0), -EPROTO);
    assert_non_null(strstr(ivmon_open_error(), "gref/1 is missing"));
}

static void test_agent_restart_remaps(void **state)
{
    struct guest g = {0};
    unsigned n = 0;
    uint64_t v;
    add_dom(0, 12, "g");
    g.d = dom(12);
    guest_start(&g, 12, 1);
    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "xen+shm:g", 0), 0); /* attaches at open: the agent is up */
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &n);
    guest_emit(&g, 1, 2);
    assert_int_equal(pump(m), 0);
    assert_int_equal(n, 3);

    /* same generation rewritten: nothing happens */
    queue_watch("/local/domain/12/data/ivmon", "ivmon-shm-dir");
    assert_int_equal(pump(m), 0);
    assert_int_equal(F.maps, 1);

    guest_start(&g, 12, 99); /* a new agent: new pages, a new ring */
    guest_emit(&g, 1, 4);
    queue_watch("/local/domain/12/data/ivmon/state", "ivmon-shm-dir");
    assert_int_equal(pump(m), 0);
    assert_int_equal(n, 8);
    assert_int_equal(F.maps, 2);
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_REATTACHES, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_RESTARTS, &v), 0);
    assert_int_equal(v, 1);

    /* the agent stops cleanly: the session stays, unmapped, waiting for the next one */
    guest_set(12, "state", IVMON_XEN_STATE_CLOSING);
    queue_watch("/local/domain/12/data/ivmon/state", "ivmon-shm-dir");
    assert_int_equal(pump(m), 0);
    assert_int_equal(F.unmaps, 2);
    ivmon_close(m);
}

static void test_domain_gone_drains_then_ends(void **state)
{
    struct guest good = {0}, g = {0};
    unsigned ngood = 0, n = 0;
    ivmon *b = NULL, *m = open_pair(&good, &ngood, &g, &n, "xen+shm:12?budget=2", &b);

    guest_emit(&g, 1, 6); /* 7 records, a budget of 2: the final drain takes several calls */
    dom(12)->dying = 1;
    queue_watch("@releaseDomain", "ivmon-shm-release");
    int r;
    int calls = 0;
    while ((r = ivmon_process(b, 0)) > 0)
        calls++;
    assert_int_equal(r, -ENODEV);
    assert_true(calls >= 3);
    assert_int_equal(n, 7); /* every record out before the end */
    assert_non_null(strstr(ivmon_get_error(b), "went away"));
    assert_int_equal(ivmon_process(b, 0), -ENODEV);

    good_still_serves(m, &good, &ngood, 1);
    ivmon_close(b);
}

static void test_open_errors(void **state)
{
    ivmon *m = NULL;
    add_dom(0, 12, "g");
    assert_int_equal(ivmon_open(&m, "xen+shm:nosuch", 0), -ENODEV);
    assert_non_null(strstr(ivmon_open_error(), "no domain named 'nosuch'"));
    assert_int_equal(ivmon_open(&m, "xen+shm:13", 0), -ENODEV);
    assert_int_equal(ivmon_open(&m, "xen+shm:99999", 0), -EINVAL);
    assert_int_equal(ivmon_open(&m, "xen+shm:", 0), -EINVAL);
    assert_int_equal(ivmon_open(&m, "xen+shm:g?pages=4", 0), -EINVAL); /* host takes no pages= */
    dom(12)->dying = 1;
    assert_int_equal(ivmon_open(&m, "xen+shm:12", 0), -ENODEV);
    dom(12)->dying = 0;

    /* no agent yet: the session opens and waits; a second consumer is refused */
    assert_int_equal(ivmon_open(&m, "xen+shm:g", 0), 0);
    ivmon *m2 = NULL;
    assert_int_equal(ivmon_open(&m2, "xen+shm:12", 0), -EBUSY);
    assert_int_equal(pump(m), 0);
    ivmon_close(m);
}

/* Xen's side of the vm_event ring: n guest requests carrying one record's fragments (K = 2),
 * of the given interface version. Returns how many requests it queued. */
static unsigned xen_put_requests(unsigned records, uint32_t version)
{
    vm_event_sring_t *sring = vm_page;
    vm_event_front_ring_t front;
    static struct rec_buf rb;
    FRONT_RING_ATTACH(&front, sring, sring->req_prod, 4096);
    unsigned n = 0;
    for (unsigned r = 0; r < records; r++) {
        struct ivmon_frag_writer w;
        uint64_t hdr, pl[2];
        size_t len = r == 0 ? rec_hello(&rb, 1) : rec_file(&rb, r + 1, IVMON_OP_OPEN, "/x", NULL);
        ivmon_frag_writer_init(&w, rb.bytes, (uint32_t)len, 2);
        while (ivmon_frag_writer_next(&w, &hdr, pl)) {
            vm_event_request_t req = {0};
            req.version = version;
            req.reason = VM_EVENT_REASON_GUEST_REQUEST;
            req.data.regs.x86.rdx = hdr;
            req.data.regs.x86.r10 = pl[0];
            req.data.regs.x86.r8 = pl[1];
            memcpy(RING_GET_REQUEST(&front, front.req_prod_pvt), &req, sizeof req);
            front.req_prod_pvt++;
            n++;
        }
    }
    RING_PUSH_REQUESTS(&front);
    return n;
}

static void test_vcpu_ring_full_and_version(void **state)
{
    unsigned n = 0;
    uint64_t v;
    add_dom(0, 12, "g");
    assert_int_equal(posix_memalign(&vm_page, 4096, 4096), 0);
    memset(vm_page, 0, 4096);
    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g?budget=1", 0), 0);
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &n);
    /* a full ring: RING_SIZE requests waiting, a budget of one record per call */
    vm_event_back_ring_t probe;
    BACK_RING_INIT(&probe, (vm_event_sring_t *)vm_page, 4096);
    unsigned want = RING_SIZE(&probe), queued = 0, recs = 0;
    while (queued < want - 8) {
        queued += xen_put_requests(1, VM_EVENT_INTERFACE_VERSION);
        recs++;
    }
    int calls = 0, r;
    while ((r = ivmon_process(m, 0)) > 0)
        calls++;
    assert_int_equal(r, 0);
    assert_int_equal(n, recs);       /* every record, over several bounded calls */
    assert_true(calls >= (int)recs); /* one record per call: the budget held */
    vm_event_sring_t *sring = vm_page;
    assert_int_equal(sring->rsp_prod, queued); /* every request answered */
    /* an unknown vm_event version: the session fails, clearly */
    xen_put_requests(1, VM_EVENT_INTERFACE_VERSION + 1);
    assert_int_equal(ivmon_process(m, 0), -EPROTO);
    assert_non_null(strstr(ivmon_get_error(m), "vm_event interface version"));
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_FRAGMENTS, &v), 0);
    assert_true(v >= queued);
    ivmon_close(m);
    free(vm_page);
}

static void test_vcpu_pv_refused(void **state)
{
    ivmon *m = NULL;
    add_dom(0, 12, "pv")->pv = 1;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:pv", 0), -EOPNOTSUPP);
    assert_non_null(strstr(ivmon_open_error(), "needs PVH or HVM"));
    assert_null(m);
    assert_int_equal(F.monitor_on, 0); /* refused before any ring was enabled */
    /* xen+shm: serves PV guests */
    assert_int_equal(ivmon_open(&m, "xen+shm:pv", 0), 0);
    ivmon_close(m);
}

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    snprintf(userdata, 256, "%s", msg);
}

static char *mark_value(void)
{
    unsigned len = 0;
    return f_xs_read(NULL, XBT_NULL, "/local/domain/12/ivmon-vcpu-monitor", &len);
}

static void test_vcpu_takeover(void **state)
{
    char want[32], logged[256] = "";
    unsigned n = 0;
    uint64_t v;
    add_dom(0, 12, "g");
    assert_int_equal(posix_memalign(&vm_page, 4096, 4096), 0);
    memset(vm_page, 0, 4096);

    /* a serving session marks the domain with its pid, and takes the mark away when it closes */
    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), 0);
    char *mark = mark_value();
    snprintf(want, sizeof want, "%ld", (long)getpid());
    assert_non_null(mark);
    assert_string_equal(mark, want);
    free(mark);
    ivmon_close(m);
    assert_int_equal(F.monitor_on, 0);
    assert_null(mark_value());

    /* a ring someone else enabled (no mark) is not ours to take */
    F.monitor_on = 1;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), -EBUSY);
    assert_non_null(strstr(ivmon_open_error(), "already has a vm_event monitor"));
    assert_int_equal(F.disables, 1); /* the close above only */
    assert_int_equal(F.pauses, 0);

    /* the ring of an ivmon monitor that died (its mark is left): taken over, the domain paused
     * from before the old ring goes until guest requests are on again */
    kv_set("/local/domain/12/ivmon-vcpu-monitor", "4242");
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g?budget=4", 0), 0);
    assert_int_equal(F.disables, 2);
    assert_int_equal(F.pauses, 1);
    assert_int_equal(F.unpauses, 1);
    mark = mark_value();
    assert_string_equal(mark, want); /* ours now */
    free(mark);
    ivmon_set_log(m, on_log, logged);
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &n);

    /* it serves; a request of another kind is counted, never taken for a fragment */
    unsigned queued = xen_put_requests(1, VM_EVENT_INTERFACE_VERSION);
    assert_true(queued < 8); /* the hello and one more request fit in the ring */
    vm_event_sring_t *sring = vm_page;
    vm_event_front_ring_t front;
    FRONT_RING_ATTACH(&front, sring, sring->req_prod, 4096);
    vm_event_request_t req = {0};
    req.version = VM_EVENT_INTERFACE_VERSION;
    req.reason = VM_EVENT_REASON_SINGLESTEP;
    memcpy(RING_GET_REQUEST(&front, front.req_prod_pvt), &req, sizeof req);
    front.req_prod_pvt++;
    RING_PUSH_REQUESTS(&front);
    assert_int_equal(pump(m), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(logged, "took over the vm_event ring that monitor pid 4242 left"));
    assert_int_equal(sring->rsp_prod, queued + 1); /* every request answered */
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_FRAG_REJECTED, &v), 0);
    assert_int_equal(v, 1);
    ivmon_close(m);
    assert_null(mark_value());
    free(vm_page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_failure_on_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absurd_values_never_mapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_restart_remaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domain_gone_drains_then_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_ring_full_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_pv_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_takeover, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
