/* SPDX-License-Identifier: MIT */
/*
 * kvm+hcall: backend, the guest side of the kvm: transport: each record goes to the VMM as
 * register fragments, one `out dx, al` each (kvm_trap.h), while the VMM hands the registers to
 * libivmon. No memory is shared; nothing waits for the host, so nothing is ever full or dropped.
 *
 *  1. One producer per guest and port: an abstract UNIX socket "ivmon-kvm-hcall-PORT" is bound
 *     for the producer's life (the kernel frees the name when the process dies, however it
 *     dies); a second agent gets -EBUSY. Two producers would interleave their fragments on one
 *     vCPU and destroy each other's records.
 *  2. ioperm(port, 1, 1): the permission for the one port (root or CAP_SYS_RAWIO).
 *  3. Each record is sent whole from one CPU: the thread is pinned to the CPU it is on for the
 *     length of the record (sched_setaffinity), then given its own CPU set back. The host keeps
 *     one record in progress per vCPU, so a record whose fragments moved to another vCPU half-way
 *     would arrive damaged (counted, never misassembled). Pinning costs two system calls per
 *     record beside the record's traps, each a VM exit of several microseconds; a thread that is
 *     already bound to one CPU is not pinned again. If pinning is refused (a cpuset that forbids
 *     it), the record is sent anyway: should it move, the host counts it as damaged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kvm_trap.h"
#include "transport_backend.h"

struct kvm_state {
    uint16_t port;
    int lock_fd;       /* the bound abstract socket: the producer lock */
    int pin;           /* 1: the thread may run on several CPUs, pin it per record */
    cpu_set_t allowed; /* the thread's own CPU set, given back after each record */
};

static int kvm_open(void *priv, const struct ivmon_guest_uri *u, char *err, size_t errlen)
{
    struct kvm_state *s = priv;
    struct sockaddr_un a = {.sun_family = AF_UNIX};

    s->port = u->port;
    s->lock_fd = -1;
    s->lock_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s->lock_fd < 0) {
        int e = errno;
        snprintf(err, errlen, "kvm+hcall: socket: %s", strerror(e));
        return -e;
    }
    /* Abstract name: sun_path[0] is NUL, the name follows, and its length is given exactly. */
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "ivmon-kvm-hcall-%u", s->port);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    if (bind(s->lock_fd, (struct sockaddr *)&a, len) < 0) {
        int e = errno;
        snprintf(err, errlen,
                 e == EADDRINUSE ? "kvm+hcall: another producer is attached (port 0x%x)"
                                 : "kvm+hcall: cannot take the producer lock for port 0x%x: %s",
                 s->port, strerror(e));
        return e == EADDRINUSE ? -EBUSY : -e;
    }
    if (ioperm(s->port, 1, 1) < 0) {
        int e = errno;
        snprintf(err, errlen,
                 "kvm+hcall: ioperm(0x%x): %s (the agent needs root or CAP_SYS_RAWIO, and an "
                 "x86-64 guest)",
                 s->port, strerror(e));
        return -e;
    }
    if (sched_getaffinity(0, sizeof s->allowed, &s->allowed) == 0)
        s->pin = CPU_COUNT(&s->allowed) > 1;
    return 0;
}

static int kvm_send(void *priv, const struct ivmon_rec_hdr *rec)
{
    struct kvm_state *s = priv;
    int pinned = 0;

    if (s->pin) {
        cpu_set_t one;
        int cpu = sched_getcpu();
        CPU_ZERO(&one);
        if (cpu >= 0 && cpu < CPU_SETSIZE) {
            CPU_SET(cpu, &one);
            /* If the thread moves between sched_getcpu and here, this moves it back: either way
             * it runs on `cpu` when the call returns, before the first fragment. */
            pinned = sched_setaffinity(0, sizeof one, &one) == 0;
        }
    }
    uint32_t traps = ivmon_kvm_send(s->port, rec, rec->len);
    if (pinned)
        sched_setaffinity(0, sizeof s->allowed, &s->allowed);
    return traps ? (int)traps : -EINVAL;
}

static void kvm_close(void *priv)
{
    struct kvm_state *s = priv;
    if (s->lock_fd >= 0)
        close(s->lock_fd);
}

const struct ivmon_guest_backend ivmon_guest_backend_kvm_hcall = {
    .abi = IVMON_GUEST_BACKEND_ABI,
    .size = sizeof(struct ivmon_guest_backend),
    .name = "kvm+hcall",
    .uri_kind = IVMON_GUEST_URI_KVM_HCALL,
    .priv_size = sizeof(struct kvm_state),
    .close = kvm_close,
    .open_record = kvm_open,
    .send = kvm_send,
};
