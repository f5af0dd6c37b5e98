/* SPDX-License-Identifier: MIT */
/*
 * xen+vcpu:GUEST[?sync=1] -- records carried in vCPU registers, one vm_event guest request per
 * fragment, for PVH and HVM guests.
 *
 * The agent in the guest (guest/transport_xen_vcpu.c) cuts each record into fragments of the
 * shared register-fragment format (include/ivmon/fragment.h, docs/PROTOCOL.md "Register
 * fragments") with K = 2 payload words, and issues HVMOP_guest_request_vm_event through
 * /dev/xen/privcmd with the header word in rdx and the payload in r10 and r8: the three
 * hypercall argument registers after rdi (the HVMOP) and rsi (NULL) that a guest reaches through
 * privcmd. Xen hands dom0 a vm_event request carrying the vCPU's register snapshot
 * (vm_event_regs_x86), from which this backend takes those three registers.
 *
 *   open     find the domain; refuse a PV one (vm_event guest requests exist for HVM and PVH
 *            only; xc_monitor_enable would say EINVAL); take the one-consumer lock; enable the
 *            monitor ring (xc_monitor_enable: a shared page and an event channel, which we bind),
 *            then guest requests (xc_monitor_guest_request, allow_userspace: the guest kernel
 *            issues them on the agent's behalf). Asynchronous by default: the vCPU does not wait
 *            for us; with sync=1 it is paused until our response (the vm_event default).
 *   process  take requests off the ring (each copied out first, its version checked: an unknown
 *            vm_event interface version fails the session with -EPROTO), feed the fragment to
 *            the core reassembler (src/fragment.c), answer every request (Xen counts a request
 *            slot free only once it is answered, sync or not), notify Xen once per batch.
 *   close    guest requests off, monitor off, ring unmapped.
 *
 * While a session serves the ring it keeps a mark in XenStore, /local/domain/<id>/
 * ivmon-vcpu-monitor (IVMON_XEN_XS_VCPU_MONITOR: its pid; dom0's to write, the guest can only
 * read it), written once guest requests reach us and removed first at close. The agent sends
 * only while the mark is there (without a monitor Xen would drop its requests without a trace).
 * A monitor that dies without closing (SIGKILL, a crash) leaves the vm_event ring enabled with
 * nobody answering it: once it is full, Xen pauses the guest's vCPUs, and xc_monitor_enable
 * answers EBUSY to everyone after. An open that meets EBUSY and the mark, holding the
 * one-consumer lock (so the marker is gone), takes the ring over: with the domain paused, it
 * disables the stale ring (which unpauses the vCPUs) and enables a new one, so that no guest
 * request falls in between. The fragments that were in the stale ring are lost; the record they
 * belonged to never completes (frag_unmatched counts its other fragments). Without the mark the
 * ring belongs to another program (xen-access, a VMI tool), and the open fails with -EBUSY.
 *
 * A full ring is Xen's business: the guest's vCPU waits in the hypervisor for a free slot, so no
 * fragment is lost; each process call takes at most the budget's worth of requests, so a
 * flooding guest cannot hold up a caller's other sessions. The register snapshot is hostile
 * input like any other: only the reassembler interprets it, and it counts everything it refuses.
 * The domain going away (seen at the periodic check) ends the session with -ENODEV.
 *
 * While no session serves the domain Xen returns from the guest's hypercall without a trace;
 * the mark is how the agent knows (docs/XEN.md has the one window that remains: a clean stop).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fragment.h"
#include "internal.h"
#include "ivmon/xen.h"
#include "xen/xen_common.h"

#include <xen/vm_event.h> /* after xenctrl.h (xen_common.h), which it needs */

#define XVCPU_SCHEME          "xen+vcpu"
#define XVCPU_WORDS           2   /* r10, r8 */
#define XVCPU_PERIODIC_MS     500 /* how often to look whether the domain is still there */
#define XVCPU_REQS_PER_RECORD 8   /* requests taken per call: budget records' worth, bounded */

struct xen_vcpu {
    struct ivmon_xen_conn c;
    int evtchn_fd, lport;
    int sync;
    void *page; /* the vm_event ring page */
    vm_event_back_ring_t back;
    int monitoring, requests_on;
    int paused; /* taking a stale ring over: the domain is paused until requests are on */
    int marked; /* our mark is in XenStore */
    char mark[64];
    /* Said through the log at the first process call: at open there is no log sink yet. */
    char stale_pid[32]; /* the pid in the mark of the monitor whose ring we took over */
    struct ivmon_frag *frag;
    uint64_t next_check_ns;
};

/* xc_monitor_enable said EBUSY. If the ring is one an ivmon monitor left behind (its mark is
 * there, and it is gone: we hold the lock it held), takes it over as described at the top, and
 * leaves the domain paused (b->paused) until guest requests are on. Returns 1 taken over (b->page
 * set), 0 the ring is not ours to take, or a negative errno with a message on m. */
static int take_over(ivmon *m, struct xen_vcpu *b, uint32_t *port)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    char pid[32];
    if (ivmon__xen_read(b->c.xs, XBT_NULL, b->mark, pid, sizeof pid) < 0)
        return 0;
    if (x->domain_pause(b->c.xch, b->c.domid) < 0)
        return ivmon__error(m, -errno ? -errno : -EIO, XVCPU_SCHEME ": cannot pause domain %u: %s",
                            (unsigned)b->c.domid, strerror(errno));
    b->paused = 1;
    if (x->monitor_disable(b->c.xch, b->c.domid) < 0)
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": domain %u: cannot disable the vm_event ring monitor "
                                         "pid %s left behind: %s",
                            (unsigned)b->c.domid, pid, strerror(errno));
    b->marked = 1; /* the stale mark is ours to remove, should this open fail from here */
    b->page = x->monitor_enable(b->c.xch, b->c.domid, port);
    if (!b->page)
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": xc_monitor_enable(%u) after disabling the stale ring: "
                                         "%s",
                            (unsigned)b->c.domid, strerror(errno));
    snprintf(b->stale_pid, sizeof b->stale_pid, "%s", pid);
    return 1;
}

static int xvcpu_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct xen_vcpu *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    xc_dominfo_t info;
    uint32_t port = 0;
    int r;

    b->c.lock_fd = b->evtchn_fd = b->lport = -1;
    if (ivmon__uri_get_bool(u, "sync", &b->sync) < 0)
        return ivmon__error(m, -EINVAL, XVCPU_SCHEME ": sync= takes 0 or 1");
    r = ivmon__xen_connect(m, XVCPU_SCHEME, "vcpu", u->target, &b->c);
    if (r < 0)
        return r;
    r = ivmon__xen_domain_info(b->c.xch, b->c.domid, &info);
    if (r < 0)
        return ivmon__error(m, r, XVCPU_SCHEME ": domain %u: %s", (unsigned)b->c.domid,
                            strerror(-r));
    if (!info.hvm)
        return ivmon__error(m, -EOPNOTSUPP,
                            XVCPU_SCHEME ": domain %u is a PV guest, and xen+vcpu: needs PVH or "
                                         "HVM (Xen has no vm_event guest requests for PV; use "
                                         "xen+shm:)",
                            (unsigned)b->c.domid);
    r = ivmon__frag_new(&b->frag, info.max_vcpu_id + 1, XVCPU_WORDS, NULL);
    if (r < 0)
        return ivmon__error(m, r, XVCPU_SCHEME ": reassembler for %u vCPUs: %s",
                            info.max_vcpu_id + 1, strerror(-r));
    snprintf(b->mark, sizeof b->mark, "/local/domain/%u/" IVMON_XEN_XS_VCPU_MONITOR,
             (unsigned)b->c.domid);
    b->page = x->monitor_enable(b->c.xch, b->c.domid, &port);
    if (!b->page) {
        int e = errno;
        r = e == EBUSY ? take_over(m, b, &port) : 0;
        if (r < 0)
            return r;
        if (!b->page && e == EBUSY)
            return ivmon__error(m, -EBUSY,
                                XVCPU_SCHEME ": domain %u already has a vm_event monitor (another "
                                             "program, e.g. xen-access or a VMI tool)",
                                (unsigned)b->c.domid);
        if (!b->page)
            return ivmon__error(m, e ? -e : -EIO, XVCPU_SCHEME ": xc_monitor_enable(%u): %s",
                                (unsigned)b->c.domid, strerror(e));
    }
    b->monitoring = 1;
    xenevtchn_port_or_error_t lp = x->evtchn_bind(b->c.xce, b->c.domid, port);
    if (lp < 0)
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": cannot bind the vm_event channel %u: %s",
                            (unsigned)port, strerror(errno));
    b->lport = lp;
    b->evtchn_fd = x->evtchn_fd(b->c.xce);
    vm_event_sring_t *sring = b->page;
    SHARED_RING_INIT(sring);
    BACK_RING_INIT(&b->back, sring, XC_PAGE_SIZE);
    if (x->monitor_guest_request(b->c.xch, b->c.domid, true, b->sync != 0, true) < 0)
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": xc_monitor_guest_request(%u): %s", (unsigned)b->c.domid,
                            strerror(errno));
    b->requests_on = 1;
    /* Last: the agent sends once it sees the mark, and every request from then on reaches us. */
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (!x->xs_write(b->c.xs, XBT_NULL, b->mark, pid, (unsigned)strlen(pid)))
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": domain %u: cannot write %s (the agent sends only while "
                                         "it is there): %s",
                            (unsigned)b->c.domid, b->mark, strerror(errno));
    b->marked = 1;
    if (b->paused && x->domain_unpause(b->c.xch, b->c.domid) == 0)
        b->paused = 0;
    b->next_check_ns = ivmon__monotonic_ns() + XVCPU_PERIODIC_MS * 1000000ull;
    return 0;
}

static void xvcpu_close(ivmon *m, void *priv)
{
    struct xen_vcpu *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    /* The mark goes first, so that the agent stops sending before requests go nowhere. */
    if (b->marked)
        x->xs_rm(b->c.xs, XBT_NULL, b->mark);
    if (b->requests_on)
        x->monitor_guest_request(b->c.xch, b->c.domid, false, b->sync != 0, true);
    if (b->monitoring)
        x->monitor_disable(b->c.xch, b->c.domid);
    if (b->paused)
        x->domain_unpause(b->c.xch, b->c.domid);
    if (b->page)
        x->unmap_page(b->page);
    if (b->lport >= 0)
        x->evtchn_unbind(b->c.xce, (evtchn_port_t)b->lport);
    ivmon__xen_disconnect(&b->c);
    ivmon__frag_free(b->frag);
}

static int xvcpu_get_fd(const void *priv)
{
    return ((const struct xen_vcpu *)priv)->evtchn_fd;
}

static int xvcpu_get_timeout(const void *priv)
{
    return XVCPU_PERIODIC_MS;
}

/* Answers the request we just took: a paused vCPU (sync=1) is unpaused by it. */
static void respond(struct xen_vcpu *b, const vm_event_request_t *req)
{
    vm_event_response_t rsp;
    memset(&rsp, 0, sizeof rsp);
    rsp.version = VM_EVENT_INTERFACE_VERSION;
    rsp.vcpu_id = req->vcpu_id;
    rsp.reason = req->reason;
    rsp.flags = req->flags & VM_EVENT_FLAG_VCPU_PAUSED;
    memcpy(RING_GET_RESPONSE(&b->back, b->back.rsp_prod_pvt), &rsp, sizeof rsp);
    b->back.rsp_prod_pvt++;
}

static int xvcpu_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct xen_vcpu *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    int n = 0, answered = 0, r = 0;
    unsigned taken = 0, limit = budget * XVCPU_REQS_PER_RECORD;

    *ret_more = 0;
    if (b->stale_pid[0]) {
        ivmon__log(m, IVMON_LOG_WARNING,
                   XVCPU_SCHEME ": domain %u: took over the vm_event ring that monitor pid %s "
                                "left behind; the fragments in it are lost",
                   (unsigned)b->c.domid, b->stale_pid);
        b->stale_pid[0] = '\0';
    }
    ivmon__stat_add(m, IVMON_STAT_WAKEUPS, ivmon__xen_take_events(b->c.xce, b->evtchn_fd, -1));
    uint64_t now = ivmon__monotonic_ns();
    if (now >= b->next_check_ns) {
        b->next_check_ns = now + XVCPU_PERIODIC_MS * 1000000ull;
        if (ivmon__xen_domain_gone(b->c.xch, b->c.domid))
            return ivmon__fail(m, -ENODEV, XVCPU_SCHEME ": domain %u went away",
                               (unsigned)b->c.domid);
    }

    vm_event_sring_t *sring = b->back.sring;
    RING_IDX prod = *(volatile RING_IDX *)&sring->req_prod;
    xen_rmb(); /* the requests before their index: pairs with Xen's write barrier */
    if (prod - b->back.req_cons > RING_SIZE(&b->back))
        return ivmon__fail(m, -EPROTO, XVCPU_SCHEME ": vm_event ring indices out of range");
    while (b->back.req_cons != prod) {
        if ((unsigned)n >= budget || taken >= limit) {
            *ret_more = 1;
            break;
        }
        vm_event_request_t req;
        /* Copied out before looking at it: the slot is reused once answered. */
        memcpy(&req, RING_GET_REQUEST(&b->back, b->back.req_cons), sizeof req);
        b->back.req_cons++;
        taken++;
        if (req.version != VM_EVENT_INTERFACE_VERSION) {
            r = ivmon__fail(m, -EPROTO,
                            XVCPU_SCHEME ": vm_event interface version %u, this libivmon was "
                                         "built for %u",
                            req.version, VM_EVENT_INTERFACE_VERSION);
            respond(b, &req);
            answered++;
            break;
        }
        if (req.vcpu_id < ivmon__frag_vcpus(b->frag) &&
            req.reason != VM_EVENT_REASON_GUEST_REQUEST) {
            /* Nothing else was asked for; counted, so that nothing passes unseen. */
            ivmon__frag_feed_invalid(b->frag, req.vcpu_id, now);
        } else if (req.vcpu_id < ivmon__frag_vcpus(b->frag)) {
            const struct vm_event_regs_x86 *regs = &req.data.regs.x86;
            const uint64_t payload[XVCPU_WORDS] = {regs->r10, regs->r8};
            int d = ivmon__frag_feed_ingest(m, b->frag, req.vcpu_id, regs->rdx, payload, now);
            if (d > 0)
                n++;
            else if (d < 0 && d != -EINVAL)
                r = d; /* a handler's error: answer this request, stop */
        }
        respond(b, &req);
        answered++;
        if (r < 0)
            break;
    }
    if (answered) {
        /* Responses visible before Xen is told: RING_PUSH_RESPONSES has the barrier. */
        RING_PUSH_RESPONSES(&b->back);
        sring->req_event = b->back.req_cons + 1;
        x->evtchn_notify(b->c.xce, (evtchn_port_t)b->lport);
    }
    ivmon__frag_fold_stats(b->frag, m->stats);
    return r < 0 ? r : n;
}

static const char *const xvcpu_options[] = {"sync", NULL};

const struct ivmon_backend_ops ivmon__backend_xen_vcpu = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "Xen vm_event guest requests (register fragments)",
    .scheme = XVCPU_SCHEME,
    .priv_size = sizeof(struct xen_vcpu),
    .options = xvcpu_options,
    .open = xvcpu_open,
    .close = xvcpu_close,
    .get_fd = xvcpu_get_fd,
    .get_timeout = xvcpu_get_timeout,
    .process = xvcpu_process,
};
