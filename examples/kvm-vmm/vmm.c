/* SPDX-License-Identifier: MIT */
/*
 * The example VMM; see vmm.h. Long mode is set up directly through KVM_SET_SREGS (page tables
 * built here, no firmware, no real-mode start), which is what this project's "PVM" /dev/kvm
 * runs. The run loop is the part a real VMM has too: KVM_RUN, then for KVM_EXIT_IO first ask
 * libivmon whether the exit is its own, and only if not, serve the VMM's own ports.
 *
 * The payload runs in guest ring 3 with IOPL 3, as ivmon-agent runs in a Linux guest (user mode
 * with I/O permission for its port). That is also what makes it fast here: this PVM KVM runs
 * guest user-mode code natively but guest ring-0 code about 600 times slower (measured: 10000
 * iterations of a three-instruction loop take 30 us in ring 3, 19 ms in ring 0), which would
 * make the guest's own work, not the exits, the cost of every record.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ivmon/kvm.h>

#include "payload_blob.h"

#define PML4_GPA     0x1000u
#define PDPT_GPA     0x2000u
#define PD_GPA       0x3000u
#define PD_RING_GPA  0x4000u
#define PAGE_2M      (2u << 20)
#define PTE_P        0x1u
#define PTE_RW       0x2u
#define PTE_US       0x4u  /* reachable from ring 3 */
#define PTE_PS       0x80u /* a 2 MiB page */
#define PTE_TABLE    (PTE_P | PTE_RW | PTE_US)
#define PTE_PAGE_2M  (PTE_P | PTE_RW | PTE_US | PTE_PS)
#define RFLAGS_IOPL3 0x3000u /* in and out allowed in ring 3 */

#define CR0_PE   0x1u
#define CR0_ET   0x10u
#define CR0_NE   0x20u
#define CR0_PG   0x80000000u
#define CR4_PAE  0x20u
#define EFER_LME 0x100u
#define EFER_LMA 0x400u

#define MSR_MTRR_DEF_TYPE 0x2ffu
#define MTRR_ENABLE       0x800u
#define MTRR_WB           0x6u

struct vcpu {
    struct vmm *v;
    unsigned index;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    int started;
    int status;      /* what the payload reported on VMM_PORT_DONE, -1 before */
    char error[200]; /* why the vCPU stopped otherwise */
    char line[200];  /* console output not yet printed */
    size_t line_len;
    uint64_t exits, kvm_exits, doorbells, unassigned;
};

struct vmm {
    struct vmm_config c;
    int kvm, vm;
    uint8_t *mem;
    void *ring;
    size_t ring_size, run_size;
    int sync_regs;
    _Atomic unsigned running;
    struct vcpu cpu[VMM_VCPUS_MAX];
};

static int sys_fail(char *err, size_t errlen, const char *what)
{
    int e = errno;
    snprintf(err, errlen, "%s: %s", what, strerror(e));
    return -e;
}

static void console(struct vcpu *c, uint8_t ch)
{
    if (ch != '\n' && c->line_len < sizeof c->line - 1) {
        c->line[c->line_len++] = (char)ch;
        return;
    }
    fprintf(stderr, "guest vCPU %u: %.*s\n", c->index, (int)c->line_len, c->line);
    c->line_len = 0;
}

/* The VMM's own devices. Returns 1 when this vCPU is finished. */
static int own_port(struct vcpu *c, struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    if (run->io.direction == KVM_EXIT_IO_OUT && run->io.size == 1 && run->io.count == 1) {
        switch (run->io.port) {
        case VMM_PORT_DONE:
            c->status = data[0];
            return 1;
        case VMM_PORT_CONSOLE:
            console(c, data[0]);
            return 0;
        case VMM_PORT_DOORBELL:
            c->doorbells++;
            if (c->v->c.doorbell_fd >= 0) {
                uint64_t one = 1;
                ssize_t w = write(c->v->c.doorbell_fd, &one, sizeof one);
                (void)w; /* a full counter is a wakeup already */
            }
            return 0;
        case VMM_PORT_SLEEP: {
            struct timespec ts = {data[0] / 1000, (long)(data[0] % 1000) * 1000000};
            nanosleep(&ts, NULL);
            return 0;
        }
        default:
            break;
        }
    }
    /* A port nobody serves: writes vanish, reads see all ones. */
    if (run->io.direction == KVM_EXIT_IO_IN)
        memset(data, 0xff, (size_t)run->io.size * run->io.count);
    c->unassigned++;
    return 0;
}

static void stopped(struct vcpu *c, struct kvm_run *run)
{
    struct kvm_regs r = {0};
    ioctl(c->fd, KVM_GET_REGS, &r);
    switch (run->exit_reason) {
    case KVM_EXIT_HLT:
        snprintf(c->error, sizeof c->error, "halted at rip 0x%llx without reporting",
                 (unsigned long long)r.rip);
        break;
    case KVM_EXIT_MMIO:
        snprintf(c->error, sizeof c->error, "MMIO at 0x%llx (rip 0x%llx): no such memory",
                 (unsigned long long)run->mmio.phys_addr, (unsigned long long)r.rip);
        break;
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(c->error, sizeof c->error, "entry failed, reason 0x%llx",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        snprintf(c->error, sizeof c->error, "KVM internal error %u at rip 0x%llx",
                 run->internal.suberror, (unsigned long long)r.rip);
        break;
    default:
        snprintf(c->error, sizeof c->error, "exit reason %u at rip 0x%llx", run->exit_reason,
                 (unsigned long long)r.rip);
    }
}

/* One vCPU's run loop, as in any VMM: the exit goes to libivmon first, which takes the
 * exits on its port (and reads the registers only for those), then to the VMM's own devices. */
static void *vcpu_main(void *arg)
{
    struct vcpu *c = arg;
    struct kvm_run *run = c->run;
    for (;;) {
        if (ioctl(c->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            snprintf(c->error, sizeof c->error, "KVM_RUN: %s", strerror(errno));
            break;
        }
        c->exits++;
        if (run->exit_reason != KVM_EXIT_IO) {
            stopped(c, run);
            break;
        }
        if (c->v->c.kvm) {
            int r = ivmon_kvm_handle_exit(c->v->c.kvm, c->index, c->fd, run);
            if (r < 0) {
                snprintf(c->error, sizeof c->error, "ivmon_kvm_handle_exit: %s", ivmon_strerror(r));
                break;
            }
            if (r == 1) {
                c->kvm_exits++;
                continue;
            }
        }
        if (own_port(c, run))
            break;
    }
    if (c->line_len)
        console(c, '\n');
    atomic_fetch_sub(&c->v->running, 1);
    return NULL;
}

/* 64-bit mode from the first instruction, in ring 3 with IOPL 3: flat code and data segments,
 * paging on with the identity map of build_page_tables. */
static int setup_vcpu(struct vmm *v, struct vcpu *c, char *err, size_t errlen)
{
    struct kvm_sregs s;
    if (ioctl(c->fd, KVM_GET_SREGS, &s) < 0)
        return sys_fail(err, errlen, "KVM_GET_SREGS");
    struct kvm_segment code = {.base = 0,
                               .limit = 0xffffffff,
                               .selector = 8 | 3,
                               .present = 1,
                               .type = 11,
                               .dpl = 3,
                               .s = 1,
                               .l = 1,
                               .g = 1};
    struct kvm_segment data = code;
    data.type = 3;
    data.selector = 16 | 3;
    data.l = 0;
    data.db = 1;
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.cr3 = PML4_GPA;
    s.cr4 = CR4_PAE;
    s.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    s.efer = EFER_LME | EFER_LMA;
    if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0)
        return sys_fail(err, errlen, "KVM_SET_SREGS");
    struct kvm_regs r = {
        .rip = VMM_PAYLOAD_GPA,
        .rflags = 0x2 | RFLAGS_IOPL3,
        .rsp = VMM_RAM - (uint64_t)c->index * VMM_STACK,
        .rdi = c->index,
        .rsi = VMM_PARAMS_GPA,
    };
    if (ioctl(c->fd, KVM_SET_REGS, &r) < 0)
        return sys_fail(err, errlen, "KVM_SET_REGS");
    /* Memory write-back cacheable, as firmware would leave it: a vCPU starts with the MTRRs
     * disabled, which means uncacheable to a KVM that honours the guest's MTRRs. */
    union {
        struct kvm_msrs m;
        uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } msrs = {.m.nmsrs = 1};
    msrs.m.entries[0].index = MSR_MTRR_DEF_TYPE;
    msrs.m.entries[0].data = MTRR_ENABLE | MTRR_WB;
    if (ioctl(c->fd, KVM_SET_MSRS, &msrs) != 1)
        return sys_fail(err, errlen, "KVM_SET_MSRS (MTRR default type)");
    if (v->sync_regs)
        c->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    return 0;
}

static void build_page_tables(struct vmm *v)
{
    uint64_t *pml4 = (uint64_t *)(v->mem + PML4_GPA), *pdpt = (uint64_t *)(v->mem + PDPT_GPA);
    uint64_t *pd = (uint64_t *)(v->mem + PD_GPA), *pd_ring = (uint64_t *)(v->mem + PD_RING_GPA);
    pml4[0] = PDPT_GPA | PTE_TABLE;
    pdpt[0] = PD_GPA | PTE_TABLE;
    for (uint64_t a = 0; a < VMM_RAM; a += PAGE_2M)
        pd[a / PAGE_2M] = a | PTE_PAGE_2M;
    pdpt[VMM_RING_GPA >> 30] = PD_RING_GPA | PTE_TABLE;
    for (uint64_t a = 0; a < v->ring_size; a += PAGE_2M)
        pd_ring[a / PAGE_2M] = (VMM_RING_GPA + a) | PTE_PAGE_2M;
}

static int map_slot(struct vmm *v, unsigned slot, uint64_t gpa, void *host, size_t size, char *err,
                    size_t errlen)
{
    struct kvm_userspace_memory_region r = {.slot = slot,
                                            .guest_phys_addr = gpa,
                                            .memory_size = size,
                                            .userspace_addr = (uintptr_t)host};
    if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        return sys_fail(err, errlen, "KVM_SET_USER_MEMORY_REGION");
    return 0;
}

static int map_ring(struct vmm *v, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(v->c.ring_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return sys_fail(err, errlen, v->c.ring_path);
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > VMM_RING_MAX || st.st_size % 4096) {
        close(fd);
        snprintf(err, errlen, "%s: not a ring file of up to %u MiB", v->c.ring_path,
                 VMM_RING_MAX >> 20);
        return -EINVAL;
    }
    v->ring_size = (size_t)st.st_size;
    v->ring = mmap(NULL, v->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (v->ring == MAP_FAILED) {
        v->ring = NULL;
        return sys_fail(err, errlen, "mmap of the ring");
    }
    return map_slot(v, 1, VMM_RING_GPA, v->ring, v->ring_size, err, errlen);
}

static int setup_vm(struct vmm *v, char *err, size_t errlen)
{
    v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (v->kvm < 0)
        return sys_fail(err, errlen, "open /dev/kvm");
    int api = ioctl(v->kvm, KVM_GET_API_VERSION, 0);
    if (api < 0)
        return sys_fail(err, errlen, "/dev/kvm: KVM_GET_API_VERSION");
    if (api != KVM_API_VERSION) {
        snprintf(err, errlen, "/dev/kvm speaks API version %d, not %d", api, KVM_API_VERSION);
        return -ENOTSUP;
    }
    v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
    if (v->vm < 0)
        return sys_fail(err, errlen, "KVM_CREATE_VM");
    v->mem = mmap(NULL, VMM_RAM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (v->mem == MAP_FAILED) {
        v->mem = NULL;
        return sys_fail(err, errlen, "mmap of guest memory");
    }
    int r = map_slot(v, 0, 0, v->mem, VMM_RAM, err, errlen);
    if (r == 0 && v->c.ring_path)
        r = map_ring(v, err, errlen);
    if (r < 0)
        return r;
    build_page_tables(v);

    struct vmm_params *p = (struct vmm_params *)(v->mem + VMM_PARAMS_GPA);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *p = (struct vmm_params){
        .mode = v->c.mode,
        .vcpus = v->c.vcpus,
        .count = v->c.count,
        .path_len = v->c.path_len,
        .kvm_port = v->c.kvm ? (uint32_t)ivmon_kvm_port(v->c.kvm) : IVMON_KVM_PORT_DEFAULT,
        .ring_gpa = v->ring ? VMM_RING_GPA : 0,
        .ring_size = v->ring_size,
        .time_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec,
    };
    if (getrandom(p->instance_id, sizeof p->instance_id, 0) != (ssize_t)sizeof p->instance_id)
        return sys_fail(err, errlen, "getrandom");
    memcpy(v->mem + VMM_PAYLOAD_GPA, vmm_payload, vmm_payload_size);

    int sync = ioctl(v->kvm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
    v->sync_regs = !v->c.get_regs && sync > 0 && (sync & KVM_SYNC_X86_REGS);
    int size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run))
        return sys_fail(err, errlen, "KVM_GET_VCPU_MMAP_SIZE");
    v->run_size = (size_t)size;
    for (unsigned i = 0; i < v->c.vcpus; i++) {
        struct vcpu *c = &v->cpu[i];
        c->fd = ioctl(v->vm, KVM_CREATE_VCPU, i);
        if (c->fd < 0)
            return sys_fail(err, errlen, "KVM_CREATE_VCPU");
        c->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
        if (c->run == MAP_FAILED) {
            c->run = NULL;
            return sys_fail(err, errlen, "mmap of kvm_run");
        }
        if ((r = setup_vcpu(v, c, err, errlen)) < 0)
            return r;
    }
    return 0;
}

int vmm_start(struct vmm **ret, const struct vmm_config *c, char *err, size_t errlen)
{
    if (c->vcpus < 1 || c->vcpus > VMM_VCPUS_MAX) {
        snprintf(err, errlen, "vcpus must be 1..%u", (unsigned)VMM_VCPUS_MAX);
        return -EINVAL;
    }
    if (vmm_payload_size > VMM_STACKS - VMM_PAYLOAD_GPA) {
        snprintf(err, errlen, "the payload (%zu bytes) does not fit", vmm_payload_size);
        return -EINVAL;
    }
    struct vmm *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    v->c = *c;
    v->kvm = v->vm = -1;
    for (unsigned i = 0; i < VMM_VCPUS_MAX; i++) {
        v->cpu[i] = (struct vcpu){.v = v, .index = i, .fd = -1, .status = -1};
    }
    int r = setup_vm(v, err, errlen);
    if (r < 0) {
        vmm_free(v);
        return r;
    }
    atomic_store(&v->running, c->vcpus);
    for (unsigned i = 0; i < c->vcpus; i++) {
        r = pthread_create(&v->cpu[i].thread, NULL, vcpu_main, &v->cpu[i]);
        if (r) {
            /* The ones started run to their end; vmm_wait joins them. */
            atomic_fetch_sub(&v->running, c->vcpus - i);
            snprintf(err, errlen, "pthread_create: %s", strerror(r));
            struct vmm_stats st;
            char e2[16];
            vmm_wait(v, &st, e2, sizeof e2);
            vmm_free(v);
            return -r;
        }
        v->cpu[i].started = 1;
    }
    *ret = v;
    return 0;
}

void vmm_instance_id(const struct vmm *v, uint8_t ret[16])
{
    memcpy(ret, ((const struct vmm_params *)(v->mem + VMM_PARAMS_GPA))->instance_id, 16);
}

unsigned vmm_running(const struct vmm *v)
{
    return atomic_load(&v->running);
}

int vmm_wait(struct vmm *v, struct vmm_stats *ret, char *err, size_t errlen)
{
    int r = 0;
    memset(ret, 0, sizeof *ret);
    ret->sync_regs = v->sync_regs;
    for (unsigned i = 0; i < v->c.vcpus; i++) {
        struct vcpu *c = &v->cpu[i];
        if (!c->started)
            continue;
        pthread_join(c->thread, NULL);
        c->started = 0;
        ret->exits += c->exits;
        ret->kvm_exits += c->kvm_exits;
        ret->doorbells += c->doorbells;
        ret->unassigned += c->unassigned;
        if (r == 0 && (c->error[0] || c->status != 0)) {
            if (c->error[0])
                snprintf(err, errlen, "vCPU %u: %s", i, c->error);
            else
                snprintf(err, errlen, "vCPU %u: the payload reported status %d", i, c->status);
            r = -EIO;
        }
    }
    return r;
}

void vmm_free(struct vmm *v)
{
    if (!v)
        return;
    for (unsigned i = 0; i < v->c.vcpus; i++) {
        if (v->cpu[i].run)
            munmap(v->cpu[i].run, v->run_size);
        if (v->cpu[i].fd >= 0)
            close(v->cpu[i].fd);
    }
    if (v->ring)
        munmap(v->ring, v->ring_size);
    if (v->mem)
        munmap(v->mem, VMM_RAM);
    if (v->vm >= 0)
        close(v->vm);
    if (v->kvm >= 0)
        close(v->kvm);
    free(v);
}
