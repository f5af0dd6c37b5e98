/* SPDX-License-Identifier: MIT */
/* The Xen backends' error paths that a real Xen does not produce on demand, through the fake
 * Xen of fake_xen.c (backends/xen/xen_sys.h's table): grant refs that do not map, an event channel
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_xen.h"
#include "internal.h"
#include "ivmon/fragment.h"
#include "ivmon/xen.h"
#include "unit_records.h"
#include "xen/xen_sys.h"

#include <xen/vm_event.h>

#define PAGES 17 /* header + 16 data pages: the smallest ring */

/* ---- a fake guest agent --------------------------------------------------------------------- */

struct guest {
    struct fake_dom *d;
    struct ivmon_producer p;
    struct rec_buf rb;
};

static void queue_watch(const char *path, const char *token)
{
    assert_int_equal(fake_xen_queue_watch(path, token), 0);
}

/* Formats a fresh ring in the guest's pages and publishes the keys as the agent does. */
static void guest_start(struct guest *g, uint32_t domid, uint64_t generation)
{
    char dir[64], key[96], v[512];
    const char *why = NULL;
    struct ivmon_ring ring;

    assert_non_null(fake_xen_new_region(g->d, PAGES));
    assert_int_equal(ivmon_ring_format(g->d->region, PAGES * IVMON_XEN_PAGE_SIZE, 0), 0);
    assert_int_equal(ivmon_ring_attach(&ring, g->d->region, PAGES * IVMON_XEN_PAGE_SIZE, &why), 0);
    ivmon_producer_init(&g->p, &ring, 0);
    snprintf(dir, sizeof dir, "/local/domain/%u/" IVMON_XEN_XS_DIR, (unsigned)domid);
#define SET(k, ...)                                                                                \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s/%s", dir, k);                                                \
        snprintf(v, sizeof v, __VA_ARGS__);                                                        \
        fake_xen_set(key, v);                                                                      \
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
    fake_xen_set(path, value);
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

static int setup(void **state)
{
    assert_int_equal(fake_xen_init(), 0);
    delivered = 0;
    return 0;
}

static int teardown(void **state)
{
    fake_xen_fini();
    return 0;
}

/* A healthy session on domain 11 ("good"), used beside each failing one. */
static ivmon *open_good(struct guest *g, unsigned *count)
{
    ivmon *m = NULL;
    g->d = fake_xen_dom(11);
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
    fake_xen_add_dom(0, 11, "good");
    fake_xen_add_dom(1, 12, "g");
    ivmon *m = open_good(good, ngood);
    g->d = fake_xen_dom(12);
    guest_start(g, 12, 1);
    assert_int_equal(ivmon_open(ret, uri, 0), 0);
    ivmon_set_handler(*ret, IVMON_EVENT_ANY, on_event, n);
    return m;
}

/* With *fault set, an agent on domain 12 is refused at open with -EPROTO and why. */
static void open_refused(struct guest *g, const char *uri, int *fault, const char *why)
{
    ivmon *b = NULL;
    g->d = fake_xen_dom(12);
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
    fake_xen_add_dom(0, 11, "good");
    fake_xen_add_dom(1, 12, "bad");
    ivmon *m = open_good(&good, &ngood);

    open_refused(&bad, "xen+shm:12", &fx.map_fails, "cannot map its 17 granted pages");

    eventfd_write(fx.evfd, 1);
    good_still_serves(m, &good, &ngood, 5);
}

static void test_bind_failure(void **state)
{
    struct guest g = {0};
    fake_xen_add_dom(0, 12, "bad");
    open_refused(&g, "xen+shm:bad", &fx.bind_fails, "cannot bind its event channel 5");
    assert_int_equal(fx.unmaps, 1); /* what was mapped before the bind failed is given back */
}

static void test_bind_failure_on_restart(void **state)
{
    struct guest good = {0}, g = {0};
    unsigned ngood = 0, n = 0;
    ivmon *b = NULL, *m = open_pair(&good, &ngood, &g, &n, "xen+shm:g", &b);

    /* the agent restarts, and its new port cannot be bound: this session fails, for good */
    guest_start(&g, 12, 2);
    fx.bind_fails = 1;
    queue_watch("/local/domain/12/data/ivmon/state", "ivmon-shm-dir");
    assert_int_equal(pump(b), -EPROTO);
    assert_non_null(strstr(ivmon_get_error(b), "cannot bind"));
    assert_int_equal(ivmon_process(b, 0), -EPROTO);
    fx.bind_fails = 0;

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
    fake_xen_add_dom(0, 12, "bad");
    g.d = fake_xen_dom(12);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        guest_start(&g, 12, 1);
        guest_set(12, cases[i].key, cases[i].value);
        fx.maps = 0;
        ivmon *b = NULL;
        int r = ivmon_open(&b, "xen+shm:12", 0);
        if (r != -EPROTO || !strstr(ivmon_open_error(), cases[i].why))
            fail_msg("%s=%s: got %d \"%s\", expected -EPROTO \"%s\"", cases[i].key, cases[i].value,
                     r, ivmon_open_error(), cases[i].why);
        assert_int_equal(fx.maps, 0); /* refused before anything was mapped */
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
    fake_xen_add_dom(0, 12, "g");
    g.d = fake_xen_dom(12);
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
    assert_int_equal(fx.maps, 1);

    guest_start(&g, 12, 99); /* a new agent: new pages, a new ring */
    guest_emit(&g, 1, 4);
    queue_watch("/local/domain/12/data/ivmon/state", "ivmon-shm-dir");
    assert_int_equal(pump(m), 0);
    assert_int_equal(n, 8);
    assert_int_equal(fx.maps, 2);
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_REATTACHES, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_RESTARTS, &v), 0);
    assert_int_equal(v, 1);

    /* the agent stops cleanly: the session stays, unmapped, waiting for the next one */
    guest_set(12, "state", IVMON_XEN_STATE_CLOSING);
    queue_watch("/local/domain/12/data/ivmon/state", "ivmon-shm-dir");
    assert_int_equal(pump(m), 0);
    assert_int_equal(fx.unmaps, 2);
    ivmon_close(m);
}

static void test_domain_gone_drains_then_ends(void **state)
{
    struct guest good = {0}, g = {0};
    unsigned ngood = 0, n = 0;
    ivmon *b = NULL, *m = open_pair(&good, &ngood, &g, &n, "xen+shm:12?budget=2", &b);

    guest_emit(&g, 1, 6); /* 7 records, a budget of 2: the final drain takes several calls */
    fake_xen_dom(12)->dying = 1;
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

/* No @releaseDomain event at all: the session still ends, by its periodic look at the domain,
 * and its timeout makes a poll loop come back for that look. */
static void test_domain_gone_without_watch(void **state)
{
    struct guest good = {0}, g = {0};
    unsigned ngood = 0, n = 0;
    ivmon *b = NULL, *m = open_pair(&good, &ngood, &g, &n, "xen+shm:12", &b);

    guest_emit(&g, 1, 2);
    fake_xen_dom(12)->dying = 1;
    int r = 0;
    for (int i = 0; i < 100 && r >= 0; i++) { /* 5 s at most; the look is due within 1 s */
        int timeout = ivmon_get_timeout(b);
        assert_true(timeout >= 0 && timeout <= 1000);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        r = ivmon_process(b, 0);
    }
    assert_int_equal(r, -ENODEV);
    assert_int_equal(n, 3); /* drained first */
    assert_non_null(strstr(ivmon_get_error(b), "went away"));

    good_still_serves(m, &good, &ngood, 1);
    ivmon_close(b);
}

/* `xl destroy` as libxl does it: the guest's XenStore directory goes first, while the domain is
 * merely paused, so the session unmaps (the agent seems to have stopped); nothing holds the
 * domain's pages any more, and Xen frees it outright. Domain 12 has the highest id, so the next
 * look finds no domain from 12 on at all (ESRCH), which must still end the session. */
static void test_domain_freed_after_its_directory(void **state)
{
    struct guest good = {0}, g = {0};
    unsigned ngood = 0, n = 0;
    ivmon *b = NULL, *m = open_pair(&good, &ngood, &g, &n, "xen+shm:12", &b);

    guest_emit(&g, 1, 2);
    assert_int_equal(pump(b), 0);
    assert_int_equal(n, 3);
    fake_xen_rm("/local/domain/12/data/ivmon/state");
    queue_watch("/local/domain/12/data/ivmon", "ivmon-shm-dir");
    assert_int_equal(pump(b), 0);
    assert_int_equal(fx.unmaps, 1); /* detached, waiting for an agent */

    fake_xen_dom(12)->exists = 0;
    queue_watch("@releaseDomain", "ivmon-shm-release");
    assert_int_equal(ivmon_process(b, 0), -ENODEV);
    assert_non_null(strstr(ivmon_get_error(b), "went away"));

    /* and a domain that never existed past the highest id is "no domain", not an errno */
    ivmon *none = NULL;
    assert_int_equal(ivmon_open(&none, "xen+shm:4000", 0), -ENODEV);
    assert_non_null(strstr(ivmon_open_error(), "there is no domain 4000"));

    good_still_serves(m, &good, &ngood, 1);
    ivmon_close(b);
}

static void test_open_errors(void **state)
{
    ivmon *m = NULL;
    fake_xen_add_dom(0, 12, "g");
    assert_int_equal(ivmon_open(&m, "xen+shm:nosuch", 0), -ENODEV);
    assert_non_null(strstr(ivmon_open_error(), "no domain named 'nosuch'"));
    assert_int_equal(ivmon_open(&m, "xen+shm:13", 0), -ENODEV);
    assert_int_equal(ivmon_open(&m, "xen+shm:99999", 0), -EINVAL);
    assert_int_equal(ivmon_open(&m, "xen+shm:", 0), -EINVAL);
    assert_int_equal(ivmon_open(&m, "xen+shm:g?pages=4", 0), -EINVAL); /* host takes no pages= */
    fake_xen_dom(12)->dying = 1;
    assert_int_equal(ivmon_open(&m, "xen+shm:12", 0), -ENODEV);
    fake_xen_dom(12)->dying = 0;

    /* no agent yet: the session opens and waits; a second consumer is refused */
    assert_int_equal(ivmon_open(&m, "xen+shm:g", 0), 0);
    ivmon *m2 = NULL;
    assert_int_equal(ivmon_open(&m2, "xen+shm:12", 0), -EBUSY);
    assert_int_equal(pump(m), 0);
    ivmon_close(m);
}

/* One guest request carrying one fragment (K = 2), as Xen queues it. */
static void put_request(vm_event_front_ring_t *front, uint32_t version, uint32_t flags,
                        uint64_t hdr, const uint64_t pl[2])
{
    vm_event_request_t req = {0};
    req.version = version;
    req.reason = VM_EVENT_REASON_GUEST_REQUEST;
    req.flags = flags;
    req.data.regs.x86.rdx = hdr;
    req.data.regs.x86.r10 = pl[0];
    req.data.regs.x86.r8 = pl[1];
    memcpy(RING_GET_REQUEST(front, front->req_prod_pvt), &req, sizeof req);
    front->req_prod_pvt++;
}

/* Xen's side of the vm_event ring: n guest requests carrying one record's fragments (K = 2),
 * of the given interface version, all at once (they must fit). Returns how many requests it
 * queued. */
static unsigned xen_put_requests(unsigned records, uint32_t version)
{
    vm_event_sring_t *sring = fx.vm_page;
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
            put_request(&front, version, 0, hdr, pl);
            n++;
        }
    }
    RING_PUSH_REQUESTS(&front);
    return n;
}

/* A guest sending records 1..last (1 a HELLO, the rest FILE records), one guest request per
 * fragment, through Xen, which queues a request only while the ring has a free slot (it pauses
 * the vCPU on a full ring until the monitor answers). */
struct xen_guest {
    uint64_t next_seq, last_seq;
    uint32_t flags; /* of every request: VM_EVENT_FLAG_VCPU_PAUSED for sync=1 */
    int sending;    /* next_seq is partly in the ring */
    struct ivmon_frag_writer w;
    struct rec_buf rb;
    unsigned queued; /* requests queued in all */
    unsigned full;   /* feeds that left the ring full */
};

/* Queues what fits. Returns 1 while the guest has more to send. */
static int xen_guest_feed(struct xen_guest *g)
{
    vm_event_sring_t *sring = fx.vm_page;
    vm_event_front_ring_t front;
    FRONT_RING_ATTACH(&front, sring, sring->req_prod, 4096);
    front.rsp_cons = sring->rsp_prod; /* the answered slots are the free ones */
    while (!RING_FULL(&front)) {
        uint64_t hdr, pl[2];
        if (!g->sending) {
            if (g->next_seq > g->last_seq)
                break;
            size_t len = g->next_seq == 1
                             ? rec_hello(&g->rb, 1)
                             : rec_file(&g->rb, g->next_seq, IVMON_OP_OPEN, "/x", NULL);
            ivmon_frag_writer_init(&g->w, g->rb.bytes, (uint32_t)len, 2);
            g->sending = 1;
        }
        if (!ivmon_frag_writer_next(&g->w, &hdr, pl)) {
            g->sending = 0;
            g->next_seq++;
            continue;
        }
        put_request(&front, VM_EVENT_INTERFACE_VERSION, g->flags, hdr, pl);
        g->queued++;
    }
    RING_PUSH_REQUESTS(&front);
    if (RING_FULL(&front))
        g->full++;
    return g->sending || g->next_seq <= g->last_seq;
}

/* Runs the guest against session m until every record was sent and answered. Returns the
 * number of ivmon_process calls. */
static int xen_guest_run(struct xen_guest *g, ivmon *m)
{
    int calls = 0, r;
    while (xen_guest_feed(g)) {
        assert_true(ivmon_process(m, 0) >= 0);
        assert_true(++calls < 100000);
    }
    while ((r = ivmon_process(m, 0)) > 0)
        calls++;
    assert_int_equal(r, 0);
    return calls;
}

/* Domain 12 ("g"), an HVM guest, and a zeroed page for its vm_event ring (fx.vm_page; the test
 * frees it). */
static void vcpu_domain(void)
{
    fake_xen_add_dom(0, 12, "g");
    assert_int_equal(posix_memalign(&fx.vm_page, 4096, 4096), 0);
    memset(fx.vm_page, 0, 4096);
}

/* The same for xen+vcpu:, whose only look at the domain is the periodic one. */
static void test_vcpu_domain_freed(void **state)
{
    vcpu_domain();
    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), 0);
    assert_int_equal(pump(m), 0);
    fake_xen_dom(12)->exists = 0;
    int r = 0;
    for (int i = 0; i < 60 && r >= 0; i++) { /* 3 s at most; the look is due within 1 s */
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        r = ivmon_process(m, 0);
    }
    assert_int_equal(r, -ENODEV);
    assert_non_null(strstr(ivmon_get_error(m), "went away"));
    ivmon_close(m);
    free(fx.vm_page);
}

static void test_vcpu_ring_full_and_version(void **state)
{
    unsigned n = 0;
    uint64_t v;
    vcpu_domain();
    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g?budget=1", 0), 0);
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &n);
    /* more records than the 8 slots hold, and a budget of one record per call: the ring is
     * full again and again, and every request is answered */
    static struct xen_guest g = {.next_seq = 1, .last_seq = 40};
    int calls = xen_guest_run(&g, m);
    assert_int_equal(n, 40);
    assert_true(g.full >= 10);
    assert_true(calls >= 40); /* one record per call: the budget held */
    vm_event_sring_t *sring = fx.vm_page;
    assert_int_equal(sring->rsp_prod, g.queued); /* every request answered */
    unsigned queued = g.queued;
    /* an unknown vm_event version: the session fails, clearly */
    xen_put_requests(1, VM_EVENT_INTERFACE_VERSION + 1);
    assert_int_equal(ivmon_process(m, 0), -EPROTO);
    assert_non_null(strstr(ivmon_get_error(m), "vm_event interface version"));
    assert_int_equal(ivmon_get_stat(m, IVMON_STAT_FRAGMENTS, &v), 0);
    assert_true(v >= queued);
    ivmon_close(m);
    free(fx.vm_page);
}

/* sync=1 asks Xen for synchronous guest requests, and every answer carries the paused flag
 * back, which is what unpauses the vCPU; the default is asynchronous. */
static void test_vcpu_sync_option(void **state)
{
    unsigned n = 0;
    vcpu_domain();
    ivmon *m = NULL;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g?sync=2", 0), -EINVAL);
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), 0);
    assert_true(fx.gr_on);
    assert_false(fx.gr_sync);
    ivmon_close(m);
    assert_false(fx.gr_on);

    memset(fx.vm_page, 0, 4096);
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g?sync=1", 0), 0);
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &n);
    assert_true(fx.gr_on);
    assert_true(fx.gr_sync);
    static struct xen_guest g = {.next_seq = 1, .last_seq = 3, .flags = VM_EVENT_FLAG_VCPU_PAUSED};
    xen_guest_run(&g, m);
    unsigned queued = g.queued;
    assert_int_equal(n, 3);
    vm_event_sring_t *sring = fx.vm_page;
    assert_int_equal(sring->rsp_prod, queued);
    for (unsigned i = queued - 8; i < queued; i++) { /* the slots' last answers */
        const vm_event_response_t *rsp = &sring->ring[i % 8].rsp;
        assert_true(rsp->flags & VM_EVENT_FLAG_VCPU_PAUSED);
        assert_int_equal(rsp->version, VM_EVENT_INTERFACE_VERSION);
        assert_int_equal(rsp->reason, VM_EVENT_REASON_GUEST_REQUEST);
    }
    ivmon_close(m);
    free(fx.vm_page);
}

static void test_vcpu_pv_refused(void **state)
{
    ivmon *m = NULL;
    fake_xen_add_dom(0, 12, "pv")->pv = 1;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:pv", 0), -EOPNOTSUPP);
    assert_non_null(strstr(ivmon_open_error(), "needs PVH or HVM"));
    assert_null(m);
    assert_int_equal(fx.monitor_on, 0); /* refused before any ring was enabled */
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
    return fake_xen_get("/local/domain/12/ivmon-vcpu-monitor", &len);
}

static void test_vcpu_takeover(void **state)
{
    char want[32], logged[256] = "";
    unsigned n = 0;
    uint64_t v;
    vcpu_domain();

    /* the agent sends only while the mark is there: a session that cannot write it does not
     * open, and gives the ring back */
    ivmon *m = NULL;
    fx.write_fails = 1;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), -EACCES);
    assert_non_null(strstr(ivmon_open_error(), "cannot write /local/domain/12/ivmon-vcpu-monitor"));
    assert_int_equal(fx.monitor_on, 0);
    fx.write_fails = 0;
    unsigned disables = fx.disables;

    /* a serving session marks the domain with its pid, and takes the mark away when it closes */
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), 0);
    char *mark = mark_value();
    snprintf(want, sizeof want, "%ld", (long)getpid());
    assert_non_null(mark);
    assert_string_equal(mark, want);
    free(mark);
    ivmon_close(m);
    assert_int_equal(fx.monitor_on, 0);
    assert_null(mark_value());

    /* a ring someone else enabled (no mark) is not ours to take */
    fx.monitor_on = 1;
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g", 0), -EBUSY);
    assert_non_null(strstr(ivmon_open_error(), "already has a vm_event monitor"));
    assert_int_equal(fx.disables, disables + 1); /* the close above only */
    assert_int_equal(fx.pauses, 0);

    /* the ring of an ivmon monitor that died (its mark is left): taken over, the domain paused
     * from before the old ring goes until guest requests are on again */
    fake_xen_set("/local/domain/12/ivmon-vcpu-monitor", "4242");
    assert_int_equal(ivmon_open(&m, "xen+vcpu:g?budget=4", 0), 0);
    assert_int_equal(fx.disables, disables + 2);
    assert_int_equal(fx.pauses, 1);
    assert_int_equal(fx.unpauses, 1);
    mark = mark_value();
    assert_string_equal(mark, want); /* ours now */
    free(mark);
    ivmon_set_log(m, on_log, logged);
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, &n);

    /* it serves; a request of another kind is counted, never taken for a fragment */
    unsigned queued = xen_put_requests(1, VM_EVENT_INTERFACE_VERSION);
    assert_true(queued < 8); /* the hello and one more request fit in the ring */
    vm_event_sring_t *sring = fx.vm_page;
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
    free(fx.vm_page);
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
        cmocka_unit_test_setup_teardown(test_domain_gone_without_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domain_freed_after_its_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_domain_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_ring_full_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_sync_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_pv_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vcpu_takeover, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
