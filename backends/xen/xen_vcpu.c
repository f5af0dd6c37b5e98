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
 * A full ring is Xen's business: the guest's vCPU waits in the hypervisor for a free slot, so no
 * fragment is lost; each process call takes at most the budget's worth of requests, so a
 * flooding guest cannot hold up a caller's other sessions. The register snapshot is hostile
 * input like any other: only the reassembler interprets it, and it counts everything it refuses.
 * The domain going away (seen at the periodic check) ends the session with -ENODEV.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fragment.h"
#include "internal.h"
#include "xen/xen_common.h"

#include <xen/vm_event.h> /* after xenctrl.h (xen_common.h), which it needs */

#define XVCPU_SCHEME          "xen+vcpu"
#define XVCPU_WORDS           2   /* r10, r8 */
#define XVCPU_PERIODIC_MS     500 /* how often to look whether the domain is still there */
#define XVCPU_REQS_PER_RECORD 8   /* requests taken per call: budget records' worth, bounded */

struct xen_vcpu {
    uint32_t domid;
    int lock_fd, evtchn_fd, lport;
    int sync;
    xc_interface *xch;
    struct xs_handle *xs;
    xenevtchn_handle *xce;
    void *page; /* the vm_event ring page */
    vm_event_back_ring_t back;
    int monitoring, requests_on;
    struct ivmon_frag *frag;
    uint64_t next_check_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int xvcpu_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct xen_vcpu *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    xc_dominfo_t info;
    uint32_t port = 0;
    int r;

    b->lock_fd = b->evtchn_fd = b->lport = -1;
    if (ivmon__uri_get_bool(u, "sync", &b->sync) < 0)
        return ivmon__error(m, -EINVAL, XVCPU_SCHEME ": sync= takes 0 or 1");
    r = ivmon__xen_connect(m, XVCPU_SCHEME, u->target, &b->xch, &b->xs, &b->domid);
    if (r < 0)
        return r;
    r = x->domain_info(b->xch, b->domid, &info);
    if (r < 0)
        return ivmon__error(m, r, XVCPU_SCHEME ": domain %u: %s", (unsigned)b->domid, strerror(-r));
    if (!info.hvm)
        return ivmon__error(m, -EOPNOTSUPP,
                            XVCPU_SCHEME ": domain %u is a PV guest, and xen+vcpu: needs PVH or "
                                         "HVM (Xen has no vm_event guest requests for PV; use "
                                         "xen+shm:)",
                            (unsigned)b->domid);
    r = ivmon__frag_new(&b->frag, info.max_vcpu_id + 1, XVCPU_WORDS, NULL);
    if (r < 0)
        return ivmon__error(m, r, XVCPU_SCHEME ": reassembler for %u vCPUs: %s",
                            info.max_vcpu_id + 1, strerror(-r));
    r = ivmon__xen_lock(m, XVCPU_SCHEME, "vcpu", b->domid);
    if (r < 0)
        return r;
    b->lock_fd = r;
    b->xce = x->evtchn_open();
    if (!b->xce)
        return ivmon__error(m, -ENODEV, XVCPU_SCHEME ": /dev/xen/evtchn: %s (modprobe xen-evtchn)",
                            strerror(errno));
    b->page = x->monitor_enable(b->xch, b->domid, &port);
    if (!b->page) {
        int e = errno;
        if (e == EBUSY)
            return ivmon__error(m, -EBUSY,
                                XVCPU_SCHEME ": domain %u already has a vm_event monitor (another "
                                             "program, e.g. xen-access or a VMI tool)",
                                (unsigned)b->domid);
        return ivmon__error(m, e ? -e : -EIO, XVCPU_SCHEME ": xc_monitor_enable(%u): %s",
                            (unsigned)b->domid, strerror(e));
    }
    b->monitoring = 1;
    xenevtchn_port_or_error_t lp = x->evtchn_bind(b->xce, b->domid, port);
    if (lp < 0)
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": cannot bind the vm_event channel %u: %s",
                            (unsigned)port, strerror(errno));
    b->lport = lp;
    b->evtchn_fd = x->evtchn_fd(b->xce);
    vm_event_sring_t *sring = b->page;
    SHARED_RING_INIT(sring);
    BACK_RING_INIT(&b->back, sring, XC_PAGE_SIZE);
    if (x->monitor_guest_request(b->xch, b->domid, true, b->sync != 0, true) < 0)
        return ivmon__error(m, -errno ? -errno : -EIO,
                            XVCPU_SCHEME ": xc_monitor_guest_request(%u): %s", (unsigned)b->domid,
                            strerror(errno));
    b->requests_on = 1;
    b->next_check_ns = now_ns() + XVCPU_PERIODIC_MS * 1000000ull;
    return 0;
}

static void xvcpu_close(ivmon *m, void *priv)
{
    struct xen_vcpu *b = priv;
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    if (b->requests_on)
        x->monitor_guest_request(b->xch, b->domid, false, b->sync != 0, true);
    if (b->monitoring)
        x->monitor_disable(b->xch, b->domid);
    if (b->page)
        x->unmap_page(b->page);
    if (b->lport >= 0)
        x->evtchn_unbind(b->xce, (evtchn_port_t)b->lport);
    if (b->xce)
        x->evtchn_close(b->xce);
    if (b->xs)
        x->xs_close(b->xs);
    if (b->xch)
        x->xc_close(b->xch);
    if (b->lock_fd >= 0)
        close(b->lock_fd);
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
    ivmon__stat_add(m, IVMON_STAT_WAKEUPS, ivmon__xen_take_events(b->xce, b->evtchn_fd, -1));
    uint64_t now = now_ns();
    if (now >= b->next_check_ns) {
        xc_dominfo_t info;
        b->next_check_ns = now + XVCPU_PERIODIC_MS * 1000000ull;
        int d = x->domain_info(b->xch, b->domid, &info);
        if (d == -ENODEV || (d == 0 && info.dying))
            return ivmon__fail(m, -ENODEV, XVCPU_SCHEME ": domain %u went away",
                               (unsigned)b->domid);
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
        if (req.reason == VM_EVENT_REASON_GUEST_REQUEST &&
            req.vcpu_id < ivmon__frag_vcpus(b->frag)) {
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
        x->evtchn_notify(b->xce, (evtchn_port_t)b->lport);
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
