/* SPDX-License-Identifier: MIT */
/*
 * xen+vcpu: backend, producer side: records leave the guest in vCPU registers, one
 * HVMOP_guest_request_vm_event hypercall per fragment (include/ivmon/fragment.h, K = 2). The host
 * half is backends/xen/xen_vcpu.c (host URI xen+vcpu:GUEST), which reads the registers from the
 * vm_event request's snapshot. PVH and HVM guests only: Xen has no guest requests for PV.
 *
 * The hypercall goes through /dev/xen/privcmd (IOCTL_PRIVCMD_HYPERCALL): the guest kernel loads
 * rdi, rsi, rdx, r10, r8 with the five arguments and traps. rdi is the HVMOP
 * (HVMOP_guest_request_vm_event), rsi must be NULL, so the fragment rides in the other three:
 * header word in rdx, payload words in r10 and r8. Debian's 6.1 kernel lets an unprivileged
 * guest's privcmd make no hypercall at all unless xen-privcmd is loaded with unrestricted=1
 * (docs/XEN.md); a small kernel module could instead load every general-purpose register and
 * carry up to 15 payload words per trap (the fragment format allows K up to 15).
 *
 * How it fits the ring-based transport (transport.c): the "region" is private memory holding an
 * ordinary ring, so sequence numbers, loss accounting, batching and flush work unchanged. Its
 * consumer is this backend: cons_waiting is kept at 1, so every publish asks for the doorbell,
 * and the doorbell drains the private ring into hypercalls. With sync=0 on the host (the default)
 * a hypercall returns at once; when Xen's vm_event ring is full, the vCPU waits in Xen for a
 * slot, so nothing is dropped in transit. A hypercall that fails (privcmd refusing, say) keeps
 * its record and fragment for the next doorbell, and the failure goes back to transport.c,
 * which retries and counts it; the agent reports it on its console.
 *
 * What Xen cannot tell us: with no monitor serving the domain, the hypercall succeeds and the
 * request goes nowhere. So the doorbell sends only while the monitor's mark is in XenStore
 * (IVMON_XEN_XS_VCPU_MONITOR under our home, which the monitor writes once our requests reach it
 * and removes first when it stops), looked at through /dev/xen/xenbus at most every
 * MARK_RECHECK_MS. Without it the doorbell stays pending (-EAGAIN) and the records wait in the
 * private ring, which in drop mode drops and counts what does not fit, as any ring does while
 * its consumer is away; the loss report goes out once a monitor is there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "identity.h"
#include "ivmon/fragment.h"
#include "ivmon/xen.h"
#include "transport_backend.h"
#include "xenbus.h"

#define PRIVCMD_DEV            "/dev/xen/privcmd"
#define HYPERVISOR_xen_version 17
#define HYPERVISOR_hvm_op      34
#define HVMOP_guest_request    24 /* HVMOP_guest_request_vm_event */
#define XENVER_version         0
#define FRAG_WORDS             2 /* r10, r8 */
#define LOCAL_RING_DATA        (64u << 10)
#define MARK_RECHECK_MS        100 /* how old our knowledge of the monitor's mark may be */

/* From Linux's <xen/privcmd.h> (uapi), which includes kernel-only Xen headers: the hypercall
 * ioctl's argument, a stable kernel ABI. */
struct privcmd_hypercall_arg {
    uint64_t op;
    uint64_t arg[5];
};
#define PRIVCMD_HYPERCALL _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall_arg))

struct xen_vcpu_state {
    int fd;
    struct ivmon_xenbus xb; /* to look at the monitor's mark */
    int monitor;            /* the mark was there when last looked at, mark_ns */
    uint64_t mark_ns;
    void *region;
    struct ivmon_ring ring; /* our own consumer view of the private ring */
    /* The record being sent, taken off the private ring: a hypercall that fails leaves it here
     * with the fragment that did not go out, and the next doorbell resumes there. */
    int sending;
    struct ivmon_frag_writer w;
    uint64_t hdr, payload[FRAG_WORDS]; /* the next fragment to send */
    int have_frag;
    uint8_t rec[IVMON_REC_MAX] __attribute__((aligned(8)));
};

static long hypercall(int fd, uint64_t op, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                      uint64_t a4)
{
    struct privcmd_hypercall_arg h = {.op = op, .arg = {a0, a1, a2, a3, a4}};
    return ioctl(fd, PRIVCMD_HYPERCALL, &h);
}

/* "PV" in /sys/hypervisor/guest_type (Linux 4.x on) means no guest requests. */
static int is_pv_guest(void)
{
    char t[16] = "";
    int fd = open("/sys/hypervisor/guest_type", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, t, sizeof t - 1);
    close(fd);
    return n >= 2 && !strncmp(t, "PV\n", 3);
}

static int xen_vcpu_open(void *priv, const struct ivmon_guest_uri *u, int lossless,
                         struct ivmon_ring *ret_ring, char *err, size_t errlen)
{
    struct xen_vcpu_state *s = priv;
    const char *why = "invalid ring";

    s->fd = -1;
    s->xb.fd = -1;
    if (is_pv_guest()) {
        snprintf(err, errlen,
                 "xen+vcpu: this is a PV guest, and xen+vcpu needs PVH or HVM (Xen has no "
                 "vm_event guest requests for PV): use xen+shm:");
        return -EOPNOTSUPP;
    }
    s->fd = open(PRIVCMD_DEV, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "xen+vcpu: %s: %s (not a Xen guest, or xen-privcmd is not loaded)",
                 PRIVCMD_DEV, strerror(e));
        return -e;
    }
    /* A harmless hypercall first: a privcmd that refuses every hypercall says so here, not as a
     * silent doorbell failure later. */
    if (hypercall(s->fd, HYPERVISOR_xen_version, XENVER_version, 0, 0, 0, 0) < 0) {
        int e = errno;
        snprintf(err, errlen,
                 "xen+vcpu: %s refuses hypercalls (%s): load xen-privcmd with unrestricted=1 "
                 "(modprobe xen-privcmd unrestricted=1)",
                 PRIVCMD_DEV, strerror(e));
        return -e;
    }
    int r = ivmon_xenbus_open(&s->xb);
    if (r < 0) {
        snprintf(err, errlen, "xen+vcpu: /dev/xen/xenbus: %s (mount xenfs or load xenfs?)",
                 strerror(-r));
        return r;
    }
    size_t region = IVMON_RING_HDR_SIZE + LOCAL_RING_DATA;
    s->region = aligned_alloc(IVMON_RING_HDR_SIZE, region);
    if (!s->region) {
        snprintf(err, errlen, "xen+vcpu: out of memory");
        return -ENOMEM;
    }
    memset(s->region, 0, region);
    r = ivmon_ring_format(s->region, region, lossless ? IVMON_RING_LOSSLESS : 0);
    if (r == 0)
        r = ivmon_ring_attach(&s->ring, s->region, region, &why);
    if (r == 0)
        r = ivmon_ring_attach(ret_ring, s->region, region, &why);
    if (r < 0) {
        snprintf(err, errlen, "xen+vcpu: %s", why);
        return r;
    }
    /* The consumer (our doorbell) always wants to be rung. */
    atomic_store_explicit((_Atomic uint32_t *)&s->ring.hdr->cons_waiting, 1, memory_order_relaxed);
    return 0;
}

/* Sends what is left of the record in s->rec, one hypercall per fragment. Returns 0 once it
 * is all out, or the hypercall's negative errno with the failed fragment kept for the retry. */
static int send_record(struct xen_vcpu_state *s)
{
    for (;;) {
        if (!s->have_frag && !ivmon_frag_writer_next(&s->w, &s->hdr, s->payload)) {
            s->sending = 0;
            return 0;
        }
        s->have_frag = 1;
        if (hypercall(s->fd, HYPERVISOR_hvm_op, HVMOP_guest_request, 0, s->hdr, s->payload[0],
                      s->payload[1]) < 0)
            return errno ? -errno : -EIO;
        s->have_frag = 0;
    }
}

/* Whether a monitor serves us: its mark, looked at again once MARK_RECHECK_MS have passed. */
static int monitor_there(struct xen_vcpu_state *s)
{
    uint64_t now = ivmon_guest_monotonic_ns();
    if (s->mark_ns && now - s->mark_ns < MARK_RECHECK_MS * 1000000ull)
        return s->monitor;
    char pid[32];
    s->monitor = ivmon_xenbus_read(&s->xb, IVMON_XEN_XS_VCPU_MONITOR, pid, sizeof pid) > 0;
    s->mark_ns = now;
    return s->monitor;
}

static int xen_vcpu_doorbell(void *priv, const struct ivmon_ring_hdr *hdr)
{
    struct xen_vcpu_state *s = priv;
    const char *why = NULL;
    int r = 0;
    (void)hdr;
    while (r == 0) {
        if (!s->sending) {
            int len = ivmon_ring_read(&s->ring, s->rec, sizeof s->rec, &why);
            if (len <= 0)
                break; /* empty; a record we wrote ourselves cannot be invalid */
            ivmon_frag_writer_init(&s->w, s->rec, (uint32_t)len, FRAG_WORDS);
            s->sending = 1;
        }
        if (!monitor_there(s))
            r = -EAGAIN; /* the record waits here, the rest in the ring; the transport retries */
        else
            r = send_record(s);
    }
    /* The record in progress was copied out: its ring space can go to the producer. */
    ivmon_ring_consumer_commit(&s->ring);
    atomic_store_explicit((_Atomic uint32_t *)&s->ring.hdr->cons_waiting, 1, memory_order_relaxed);
    /* A failed hypercall is reported as it is (transport.c keeps the doorbell pending and
     * counts it; the agent says so on its console); the rest goes with the retry. */
    return r;
}

static void xen_vcpu_close(void *priv)
{
    struct xen_vcpu_state *s = priv;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    ivmon_xenbus_close(&s->xb);
    free(s->region);
    s->region = NULL;
}

const struct ivmon_guest_backend ivmon_guest_backend_xen_vcpu = {
    .abi = IVMON_GUEST_BACKEND_ABI,
    .size = sizeof(struct ivmon_guest_backend),
    .name = "xen+vcpu",
    .uri_kind = IVMON_GUEST_URI_XEN_VCPU,
    .priv_size = sizeof(struct xen_vcpu_state),
    .open = xen_vcpu_open,
    .doorbell = xen_vcpu_doorbell,
    .close = xen_vcpu_close,
};
