/* SPDX-License-Identifier: MIT */
/*
 * The guest half of the kvm+hcall: transport on x86-64: one fragment (include/ivmon/fragment.h)
 * per `out dx, al`, its words in the registers of the kvm: register profile (docs/PROTOCOL.md,
 * "Register profiles"): header word in rbx, payload words in rcx, rbp, r11, r12, r13, r14, r15,
 * dx the port. The VMM reads them at the exit and hands them to libivmon.
 *
 * Freestanding: <stdint.h> only, GCC or Clang inline assembly, no libc, so the same code serves
 * ivmon-agent (ring 3, with ioperm() permission for the port), a guest kernel module, or a
 * bare-metal payload (ring 0). In ring 3 the process needs I/O permission for the port, or the
 * `out` faults with SIGSEGV.
 */
#ifndef IVMON_GUEST_KVM_TRAP_H
#define IVMON_GUEST_KVM_TRAP_H

#include <stdint.h>

#include "ivmon/fragment.h"

#if !defined(__x86_64__)
#error "kvm_trap.h is the x86-64 trap; other architectures need their own"
#endif

#define IVMON_KVM_TRAP_WORDS        7u
#define IVMON_KVM_TRAP_PORT_DEFAULT 0x4956u

/* Traps once with hdr and the 7 payload words in the profile's registers. rbp is saved and
 * restored around the trap inside the asm (the compiler may not be told it is clobbered when it
 * uses it as the frame pointer), in a slot of the frame addressed through rsi, so nothing is
 * pushed: ring-3 code may keep data in the red zone below rsp. */
static inline void ivmon_kvm_trap(uint16_t port, uint64_t hdr, const uint64_t *payload)
{
    uint64_t frame[IVMON_KVM_TRAP_WORDS + 2] = {hdr};
    for (unsigned i = 0; i < IVMON_KVM_TRAP_WORDS; i++)
        frame[1 + i] = payload[i];
    __asm__ volatile("movq %%rbp, 64(%[f])\n\t"
                     "movq 0(%[f]), %%rbx\n\t"
                     "movq 8(%[f]), %%rcx\n\t"
                     "movq 16(%[f]), %%rbp\n\t"
                     "movq 24(%[f]), %%r11\n\t"
                     "movq 32(%[f]), %%r12\n\t"
                     "movq 40(%[f]), %%r13\n\t"
                     "movq 48(%[f]), %%r14\n\t"
                     "movq 56(%[f]), %%r15\n\t"
                     "outb %%al, %%dx\n\t"
                     "movq 64(%[f]), %%rbp"
                     :
                     : [f] "S"(frame), "d"(port), "a"(0)
                     : "rbx", "rcx", "r11", "r12", "r13", "r14", "r15", "memory");
}

/* Sends the record at rec (len bytes, seq set) as its fragments, back to back. Returns the
 * number of traps, or 0 if len is out of range (nothing sent). */
static inline uint32_t ivmon_kvm_send(uint16_t port, const void *rec, uint32_t len)
{
    struct ivmon_frag_writer w;
    uint64_t hdr, payload[IVMON_KVM_TRAP_WORDS];
    uint32_t n = ivmon_frag_writer_init(&w, rec, len, IVMON_KVM_TRAP_WORDS);
    while (ivmon_frag_writer_next(&w, &hdr, payload))
        ivmon_kvm_trap(port, hdr, payload);
    return n;
}

#endif /* IVMON_GUEST_KVM_TRAP_H */
