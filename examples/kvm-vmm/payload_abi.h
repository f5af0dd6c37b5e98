/* SPDX-License-Identifier: MIT */
/*
 * The contract between the example VMM (vmm.c) and its guest payload (payload/): where things
 * are in guest memory, which I/O ports do what, and the parameters the VMM leaves for the guest.
 * Freestanding (stdint.h only): the payload is built with -ffreestanding -nostdlib.
 *
 * Guest physical memory, identity-mapped in long mode with 2 MiB pages:
 *   0x1000  PML4, 0x2000 PDPT, 0x3000 page directory for 0..VMM_RAM, 0x4000 one for the ring
 *   0x5000  struct vmm_params (written by the VMM before the vCPUs start)
 *   0x10000 the payload image (code, data, bss), at most to VMM_STACKS
 *   VMM_STACKS.. VMM_RAM: one VMM_STACK-byte stack per vCPU, vCPU i's top at VMM_RAM - i *
 * VMM_STACK VMM_RING_GPA: in ring mode, the shm: ring file, mapped as a second memory slot At
 * entry: rip = VMM_PAYLOAD_GPA, rdi = the vCPU index, rsi = VMM_PARAMS_GPA.
 */
#ifndef IVMON_EXAMPLE_PAYLOAD_ABI_H
#define IVMON_EXAMPLE_PAYLOAD_ABI_H

#include <stdint.h>

#define VMM_PAYLOAD_GPA 0x10000u
#define VMM_PARAMS_GPA  0x5000u
#define VMM_STACKS      0x200000u
#define VMM_RAM         0x400000u
#define VMM_STACK       0x10000u
#define VMM_VCPUS_MAX   ((VMM_RAM - VMM_STACKS) / VMM_STACK) /* 32 */
#define VMM_RING_GPA    0x40000000u
#define VMM_RING_MAX    (64u << 20)

/* Ports of the VMM's own devices (the kvm: session's port, default 0x4956, is separate). */
#define VMM_PORT_CONSOLE  0x00e9u /* OUT: one character to the VMM's stderr */
#define VMM_PORT_DONE     0x00f4u /* OUT: this vCPU is finished; al is its status, 0 = good */
#define VMM_PORT_DOORBELL 0x4958u /* OUT: ring mode: wake the ring's consumer */
#define VMM_PORT_SLEEP    0x4959u /* OUT: the VMM sleeps al milliseconds before resuming */

/* Payload modes */
#define VMM_MODE_SCRIPTED   1u /* the scripted records of script.h, shared by all vCPUs */
#define VMM_MODE_HOSTILE    2u /* the hostile steps of hostile.h, then good records */
#define VMM_MODE_BENCH_KVM  3u /* HELLO, then `count` file records through kvm: fragments */
#define VMM_MODE_BENCH_RING 4u /* the same records through the shm: ring at VMM_RING_GPA */

struct vmm_params {
    uint32_t mode;     /* VMM_MODE_* */
    uint32_t vcpus;    /* vCPUs running the payload */
    uint32_t count;    /* bench: file records after the HELLO */
    uint32_t path_len; /* bench: bytes of each record's path */
    uint32_t kvm_port; /* the kvm: session's port */
    uint32_t reserved;
    uint64_t ring_gpa, ring_size; /* ring mode */
    uint64_t time_ns;             /* CLOCK_REALTIME at start: record times count up from it */
    uint8_t instance_id[16];      /* the HELLO's, new for every run */
};

_Static_assert(sizeof(struct vmm_params) == 64, "vmm_params layout");

/* The file records of the hostile and bench modes: comm "payload", exe "/bin/payload", and a
 * path whose byte k is vmm_path_byte(seq, k), so the host can check every byte it gets. */
#define VMM_FILE_COMM      "payload"
#define VMM_FILE_EXE       "/bin/payload"
#define VMM_FILE_LEN(path) (24u + 40u + 7u + 12u + (path))
#define VMM_FILE_PID       4242u

static inline char vmm_path_byte(unsigned long long seq, unsigned k)
{
    return k == 0 ? '/' : (char)('a' + (k * 7 + seq) % 26);
}

#endif /* IVMON_EXAMPLE_PAYLOAD_ABI_H */
