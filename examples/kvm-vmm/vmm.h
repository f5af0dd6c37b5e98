/* SPDX-License-Identifier: MIT */
/*
 * A minimal KVM VMM that embeds libivmon, as a Firecracker or kvmtool would: a VM on /dev/kvm,
 * several vCPUs in 64-bit long mode running the payload of payload/ (one thread each), and on
 * every KVM_EXIT_IO the one call into libivmon (ivmon_kvm_handle_exit). The caller owns the
 * kvm: session and consumes it from its own thread with the normal API while the vCPUs run.
 * Used by ivmon-kvm-vmm (main.c), by tests/kvm and by bench/.
 */
#ifndef IVMON_EXAMPLE_VMM_H
#define IVMON_EXAMPLE_VMM_H

#include <stddef.h>
#include <stdint.h>

#include <ivmon/ivmon.h>

#include "payload_abi.h"

struct vmm_config {
    unsigned vcpus;    /* 1..VMM_VCPUS_MAX */
    uint32_t mode;     /* VMM_MODE_* */
    uint32_t count;    /* bench modes: file records after the HELLO */
    uint32_t path_len; /* bench modes: their path length */
    ivmon *kvm;        /* the kvm: session to hand exits to (its port), or NULL */
    /* Ring mode: the shm: ring file to map into the guest at VMM_RING_GPA, and the eventfd to
     * write when the guest rings VMM_PORT_DOORBELL (or -1). */
    const char *ring_path;
    int doorbell_fd;
    int get_regs; /* read registers with KVM_GET_REGS even when KVM can sync them into kvm_run */
};

struct vmm_stats {
    uint64_t exits;      /* KVM_RUN returns, every vCPU */
    uint64_t kvm_exits;  /* of them, exits libivmon took (the kvm: port) */
    uint64_t doorbells;  /* of them, VMM_PORT_DOORBELL */
    uint64_t unassigned; /* of them, accesses to ports nobody serves */
    int sync_regs;       /* registers came from kvm_run (KVM_CAP_SYNC_REGS) */
};

struct vmm;

/* Creates the VM, loads the payload, starts the vCPU threads. Returns 0, or a negative errno
 * with a reason in err (-ENOENT/-EACCES: no usable /dev/kvm). */
int vmm_start(struct vmm **ret, const struct vmm_config *c, char *err, size_t errlen);

/* The instance id the payload's HELLO carries (new for every VM). */
void vmm_instance_id(const struct vmm *v, uint8_t ret[16]);

/* The number of vCPUs still running. */
unsigned vmm_running(const struct vmm *v);

/* Waits for every vCPU to finish and fills *ret. Returns 0 if each reported status 0, else -EIO
 * with the reason in err (a vCPU's failure status, an unexpected exit, a KVM error). */
int vmm_wait(struct vmm *v, struct vmm_stats *ret, char *err, size_t errlen);

/* Frees everything (after vmm_wait); accepts NULL. */
void vmm_free(struct vmm *v);

#endif /* IVMON_EXAMPLE_VMM_H */
