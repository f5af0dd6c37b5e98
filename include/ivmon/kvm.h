/* SPDX-License-Identifier: MIT */
/*
 * libivmon inside a KVM VMM: the kvm: transport, register fragments through port-I/O exits.
 *
 * The guest agent (transport kvm+hcall:) puts each fragment of a record in registers and writes
 * one byte to an I/O port; the VMM that owns the vCPU sees the KVM_EXIT_IO, and hands the
 * guest's registers to ivmon_kvm_handle_io(). No memory is shared with the guest. The session
 * is opened and consumed like any other (ivmon.h):
 *
 *     ivmon_open(&m, "kvm:vm1?vcpus=4", 0);          // before the vCPUs run
 *     // each vCPU thread, on KVM_EXIT_IO:
 *     if (run->io.port == ivmon_kvm_port(m)) { read the registers; ivmon_kvm_handle_io(...); }
 *     // any one thread: poll(ivmon_get_fd(m)), ivmon_process(m, 0), handlers get the events
 *
 * URI: kvm:NAME[?options]. NAME labels the VM (events carry the URI as their source) and may be
 * empty. Options: vcpus=N, the VM's vCPU count, 1..1024, required; port=P, the I/O port, 1..65535
 * in decimal or 0x hex, default 0x4956 (IVMON_KVM_PORT_DEFAULT); queue=SIZE, bytes of completed
 * records each vCPU can hold for the consumer, a power of two from 32K to 64M, default 64K;
 * expire_ms=T, a record in progress that has not advanced for T ms is given up when its vCPU
 * traps again, default 2000, 0 never. docs/KVM.md shows where the calls go in a VMM.
 *
 * Concurrency: ivmon_kvm_handle_io() is called from the vCPU threads, concurrently, with one
 * rule: calls for the same vCPU index never overlap (one thread per vCPU gives that for free).
 * Each vCPU has its own reassembly state and its own single-producer single-consumer queue of
 * completed records, so a call takes no lock, never waits for another vCPU or for the consumer,
 * never allocates, never calls a handler or the log function, and does bounded work: at most one
 * record of 16 KiB checked and copied and one eventfd write. Every other call on the session
 * (ivmon_process and the rest of ivmon.h) belongs to one thread at a time, which may be none of
 * the vCPU threads; it merges the queues in the order the records completed, then validates,
 * accounts and dispatches them there. The fd is an eventfd that a vCPU thread signals after a
 * record completes, only when the consumer said it is going to sleep. When a queue is full the
 * record is dropped and counted (IVMON_STAT_OVERRUNS, and its sequence number as missed): the
 * vCPU never waits. ivmon_kvm_port() may be called from any thread. ivmon_close() only once
 * no vCPU thread can call ivmon_kvm_handle_io() any more.
 */
#ifndef IVMON_KVM_H
#define IVMON_KVM_H

#include <stdint.h>

#include "ivmon/ivmon.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IVMON_KVM_PORT_DEFAULT 0x4956u /* "IV"; not used by QEMU, Firecracker or kvmtool */
#define IVMON_KVM_VCPUS_MAX    1024u
#define IVMON_KVM_WORDS        7u /* payload words per fragment: the register profile's K */

/* The guest's general-purpose registers at the exit, field for field in the order of Linux's
 * struct kvm_regs (and of kvm_bindings::kvm_regs in Rust VMMs), so a VMM fills it by copying.
 * Like the wire headers, this layout is a contract and never changes. The kvm: profile reads
 * rbx (the fragment's header word) and rcx, rbp, r11, r12, r13, r14, r15 (its payload); the
 * rest are there so that the struct is the register file, whatever a future profile reads. */
struct ivmon_kvm_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};

/* The I/O port the kvm: session m listens on (1..65535), or -EINVAL if m is not a kvm: session.
 * Any thread. Cheap: compare it with the exit's port before reading any register. */
IVMON_EXPORT int ivmon_kvm_port(const ivmon *m);

/*
 * Hands one port-I/O exit of vCPU `vcpu` (0..vcpus-1, the index the VMM gives its vCPUs) to the
 * session: port, size (bytes per access), count (accesses: 1 unless the guest used a string
 * instruction) and direction as KVM_EXIT_IO reported them, and the guest's registers at the exit,
 * which the library reads once each and does not keep. flags must be 0. Returns:
 *   1  the exit was for this session's port, whatever the guest put in it: resume the vCPU.
 *      An access that cannot carry a fragment (not a one-byte OUT) is counted as a refused
 *      fragment; for an IN, give the guest what an unassigned port gives (0xff), as
 *      ivmon_kvm_handle_exit() does.
 *   0  not this session's port: handle the exit as without libivmon.
 *  -EINVAL  m is not a kvm: session, vcpu is out of range, regs is NULL or flags is not 0.
 * Called from the vCPU's thread; see the concurrency rules above.
 */
IVMON_EXPORT int ivmon_kvm_handle_io(ivmon *m, unsigned vcpu, unsigned port, unsigned size,
                                     unsigned count, int is_out, const struct ivmon_kvm_regs *regs,
                                     unsigned flags);

#if defined(__linux__) && defined(KVM_EXIT_IO) && defined(KVM_GET_REGS)
#include <errno.h>
#include <sys/ioctl.h>

/*
 * For C VMMs on Linux that included <linux/kvm.h> before this header: the
 * whole job for one exit of the vCPU whose fd is vcpu_fd and whose kvm_run is run. It reads the
 * registers only for an exit on the session's port: from run->s.regs when the VMM asked KVM to
 * sync them (run->kvm_valid_regs has KVM_SYNC_X86_REGS, which saves an ioctl per exit), else with
 * KVM_GET_REGS. Returns 1 handled (resume the vCPU), 0 not this session's exit, or a negative
 * errno (KVM_GET_REGS failed, or ivmon_kvm_handle_io's -EINVAL).
 */
static inline int ivmon_kvm_handle_exit(ivmon *m, unsigned vcpu, int vcpu_fd, struct kvm_run *run)
{
    struct kvm_regs k;
    const struct kvm_regs *src = &k;

    if (run->exit_reason != KVM_EXIT_IO || (int)run->io.port != ivmon_kvm_port(m))
        return 0;
#ifdef KVM_SYNC_X86_REGS
    if (run->kvm_valid_regs & KVM_SYNC_X86_REGS)
        src = &run->s.regs.regs;
    else
#endif
        if (ioctl(vcpu_fd, KVM_GET_REGS, &k) < 0)
        return -errno;
    struct ivmon_kvm_regs r = {src->rax, src->rbx, src->rcx, src->rdx, src->rsi, src->rdi,
                               src->rsp, src->rbp, src->r8,  src->r9,  src->r10, src->r11,
                               src->r12, src->r13, src->r14, src->r15, src->rip, src->rflags};
    if (run->io.direction == KVM_EXIT_IO_IN) {
        unsigned char *data = (unsigned char *)run + run->io.data_offset;
        for (unsigned i = 0; i < (unsigned)run->io.size * run->io.count; i++)
            data[i] = 0xff;
    }
    return ivmon_kvm_handle_io(m, vcpu, run->io.port, run->io.size, run->io.count,
                               run->io.direction == KVM_EXIT_IO_OUT, &r, 0);
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* IVMON_KVM_H */
