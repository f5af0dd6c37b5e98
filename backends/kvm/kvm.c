/* SPDX-License-Identifier: MIT */
/*
 * kvm: register fragments through the port-I/O exits of a VMM that embeds libivmon (the public
 * side is include/ivmon/kvm.h, the wire format docs/PROTOCOL.md "Register fragments").
 *
 * Two kinds of thread meet here. The VMM's vCPU threads call ivmon_kvm_handle_io(): each feeds
 * its own vCPU's state in the core reassembler (src/fragment.c) and queues the records that
 * complete in its own vCPU's queue (kvm_queue.c). The session's thread (ivmon_process) takes
 * them off the queues in completion order and hands them to the core, which validates, accounts
 * and dispatches them. The session's fd is an eventfd that a vCPU thread writes when it queued
 * a record and the consumer had said it would sleep: once per sleep, not once per record.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fragment.h"
#include "internal.h"
#include "ivmon/kvm.h"
#include "kvm/kvm_queue.h"

extern const struct ivmon_backend_ops ivmon__backend_kvm;

#define KVM_QUEUE_DEFAULT (64u << 10)
#define KVM_EXPIRE_MS     2000u
#define KVM_EXPIRE_MS_MAX 3600000u
/* How soon to look again when the next record's ticket is missing (kvm_queue.h). */
#define KVM_TICKET_RETRY_MS 1

/* The same register file as struct kvm_regs, so a VMM's copy is a plain field-for-field copy. */
#define SAME_FIELD(f)                                                                              \
    _Static_assert(offsetof(struct ivmon_kvm_regs, f) == offsetof(struct kvm_regs, f), #f)
SAME_FIELD(rax);
SAME_FIELD(rbx);
SAME_FIELD(rcx);
SAME_FIELD(rbp);
SAME_FIELD(r11);
SAME_FIELD(r15);
SAME_FIELD(rip);
SAME_FIELD(rflags);
_Static_assert(sizeof(struct ivmon_kvm_regs) == sizeof(struct kvm_regs), "register file size");
_Static_assert(IVMON_KVM_VCPUS_MAX <= IVMON_FRAG_VCPUS_MAX, "the reassembler holds every vCPU");

struct kvm_backend {
    /* Written at open, read by every thread. */
    unsigned vcpus;
    unsigned port;
    struct ivmon_frag *frag;
    struct ivmon_kvm_queues *queues;
    int efd;
    /* The session thread's. */
    int ticket_wait;                   /* the last process call stopped at a missing ticket */
    uint64_t logged[IVMON_FRAG_C_MAX]; /* the detail counters as last logged */
};

/* ---- the vCPU threads ----------------------------------------------------------------------- */

/* Queues a record that vCPU i completed, or drops and counts it when the queue has no room: a
 * vCPU never waits for the consumer. */
static void queue_record(struct kvm_backend *b, unsigned i, const void *rec, size_t len)
{
    struct ivmon_kvm_slot slot;
    if (ivmon_kvm_queues_reserve(b->queues, i, len, &slot) < 0) {
        ivmon__frag_note_overrun(b->frag, i);
        return;
    }
    if (ivmon_kvm_queues_publish(b->queues, i, &slot, rec)) {
        uint64_t one = 1;
        /* Non-blocking: a counter that cannot take more is a wakeup already. */
        ssize_t w = write(b->efd, &one, sizeof one);
        (void)w;
    }
}

int ivmon_kvm_port(const ivmon *m)
{
    if (!m || m->ops != &ivmon__backend_kvm)
        return -EINVAL;
    return (int)((const struct kvm_backend *)m->priv)->port;
}

int ivmon_kvm_handle_io(ivmon *m, unsigned vcpu, unsigned port, unsigned size, unsigned count,
                        int is_out, const struct ivmon_kvm_regs *regs, unsigned flags)
{
    if (!m || m->ops != &ivmon__backend_kvm || !regs || flags)
        return -EINVAL;
    struct kvm_backend *b = m->priv;
    if (vcpu >= b->vcpus)
        return -EINVAL;
    if (port != b->port)
        return 0;
    uint64_t t = ivmon__monotonic_ns();
    if (!is_out || size != 1 || count != 1) {
        ivmon__frag_feed_invalid(b->frag, vcpu, t);
        return 1;
    }
    /* The profile: header word in rbx, payload in rcx, rbp, r11..r15. Each read once, here. */
    uint64_t hdr = regs->rbx;
    uint64_t words[IVMON_KVM_WORDS] = {regs->rcx, regs->rbp, regs->r11, regs->r12,
                                       regs->r13, regs->r14, regs->r15};
    const void *rec = NULL;
    size_t len = 0;
    if (ivmon__frag_feed(b->frag, vcpu, hdr, words, t, &rec, &len) == IVMON_FRAG_RECORD)
        queue_record(b, vcpu, rec, len);
    return 1;
}

/* ---- the session thread --------------------------------------------------------------------- */

/* Hands up to budget records to the core, in completion order. */
static int drain(ivmon *m, struct kvm_backend *b, unsigned budget, int *ret_more)
{
    int n = 0;
    *ret_more = 0;
    b->ticket_wait = 0;
    while ((unsigned)n < budget) {
        int len = ivmon_kvm_queues_pop(b->queues, m->recbuf, ivmon__monotonic_ns());
        if (len == -EAGAIN)
            b->ticket_wait = 1;
        if (len <= 0)
            break;
        int r = ivmon__ingest(m, m->recbuf, (size_t)len);
        n++;
        if (r < 0) {
            ivmon_kvm_queues_commit(b->queues);
            return r;
        }
    }
    ivmon_kvm_queues_commit(b->queues);
    if ((unsigned)n == budget)
        *ret_more = 1;
    return n;
}

/* Says in the log what went wrong with fragments since the last call, one line per kind. */
static void fold_and_log(ivmon *m, struct kvm_backend *b)
{
    uint64_t c[IVMON_FRAG_C_MAX];
    ivmon__frag_fold_stats(b->frag, m->stats);
    m->stats[IVMON_STAT_OVERRUNS] += ivmon_kvm_queues_late(b->queues);
    ivmon__frag_counters(b->frag, c);
    for (unsigned i = IVMON_FRAG_C_BAD_MAGIC; i < IVMON_FRAG_C_MAX; i++) {
        if (i == IVMON_FRAG_C_TAKEN || i == IVMON_FRAG_C_STARTED || i == IVMON_FRAG_C_COMPLETE)
            continue;
        if (c[i] != b->logged[i])
            ivmon__log(m, IVMON_LOG_WARNING, "kvm: %llu %s (%llu in all)",
                       (unsigned long long)(c[i] - b->logged[i]), ivmon__frag_counter_name(i),
                       (unsigned long long)c[i]);
        b->logged[i] = c[i];
    }
}

static int kvm_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct kvm_backend *b = priv;
    uint64_t count;

    if (read(b->efd, &count, sizeof count) == (ssize_t)sizeof count)
        ivmon__stat_add(m, IVMON_STAT_WAKEUPS, 1);
    /* Awake: vCPUs need not ring until the next sleep. */
    ivmon_kvm_queues_awake(b->queues);
    int n = drain(m, b, budget, ret_more);
    fold_and_log(m, b);
    if (n < 0 || *ret_more || b->ticket_wait)
        return n;
    if (!ivmon_kvm_queues_prepare_sleep(b->queues))
        *ret_more = 1;
    return n;
}

static int kvm_get_fd(const void *priv)
{
    return ((const struct kvm_backend *)priv)->efd;
}

static int kvm_get_timeout(const void *priv)
{
    return ((const struct kvm_backend *)priv)->ticket_wait ? KVM_TICKET_RETRY_MS : -1;
}

/* port=: 1..65535, decimal or 0x hex (no octal, signs or spaces). */
static int parse_port(const char *v, unsigned *ret)
{
    char *end;
    if (!v)
        return 0;
    if (!(v[0] >= '1' && v[0] <= '9') && !(v[0] == '0' && v[1] == 'x'))
        return -EINVAL;
    errno = 0;
    unsigned long p = strtoul(v, &end, 0);
    if (errno || *end || p < 1 || p > 0xffff)
        return -EINVAL;
    *ret = (unsigned)p;
    return 0;
}

static int kvm_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct kvm_backend *b = priv;
    uint64_t vcpus = 0, queue = KVM_QUEUE_DEFAULT, expire_ms = KVM_EXPIRE_MS;

    b->efd = -1;
    b->port = IVMON_KVM_PORT_DEFAULT;
    if (!ivmon__uri_get(u, "vcpus"))
        return ivmon__error(m, -EINVAL, "kvm: vcpus= is required (the VM's vCPU count, 1..%u)",
                            IVMON_KVM_VCPUS_MAX);
    if (ivmon__uri_get_size(u, "vcpus", &vcpus) < 0 || vcpus < 1 || vcpus > IVMON_KVM_VCPUS_MAX)
        return ivmon__error(m, -EINVAL, "kvm: vcpus= must be 1..%u", IVMON_KVM_VCPUS_MAX);
    if (parse_port(ivmon__uri_get(u, "port"), &b->port) < 0)
        return ivmon__error(m, -EINVAL, "kvm: port= must be 1..65535 (decimal or 0x hex)");
    if (ivmon__uri_get_size(u, "queue", &queue) < 0 || queue < IVMON_KVM_QUEUE_MIN ||
        queue > IVMON_KVM_QUEUE_MAX || (queue & (queue - 1)))
        return ivmon__error(m, -EINVAL, "kvm: queue= must be a power of two from 32K to 64M");
    if (ivmon__uri_get_size(u, "expire_ms", &expire_ms) < 0 || expire_ms > KVM_EXPIRE_MS_MAX)
        return ivmon__error(m, -EINVAL, "kvm: expire_ms= must be 0..%u", KVM_EXPIRE_MS_MAX);

    b->vcpus = (unsigned)vcpus;
    struct ivmon_frag_limits lim = {.expire_ns = expire_ms * 1000000u};
    int r = ivmon__frag_new(&b->frag, b->vcpus, IVMON_KVM_WORDS, &lim);
    if (r == 0)
        r = ivmon_kvm_queues_new(&b->queues, b->vcpus, queue);
    if (r < 0)
        return ivmon__error(m, r, "kvm: out of memory for %u vCPUs with queues of %llu bytes",
                            b->vcpus, (unsigned long long)queue);
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0)
        return ivmon__error(m, -errno, "kvm: eventfd: %s", strerror(errno));
    return 0;
}

static void kvm_close(ivmon *m, void *priv)
{
    struct kvm_backend *b = priv;
    ivmon_kvm_queues_free(b->queues);
    ivmon__frag_free(b->frag);
    if (b->efd >= 0)
        close(b->efd);
}

static const char *const kvm_options[] = {"vcpus", "port", "queue", "expire_ms", NULL};

const struct ivmon_backend_ops ivmon__backend_kvm = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "KVM register fragments",
    .scheme = "kvm",
    .priv_size = sizeof(struct kvm_backend),
    .options = kvm_options,
    .open = kvm_open,
    .close = kvm_close,
    .get_fd = kvm_get_fd,
    .get_timeout = kvm_get_timeout,
    .process = kvm_process,
};
