/* SPDX-License-Identifier: MIT */
/*
 * The example VMM's guest: a freestanding 64-bit program (no libc, no OS) that every vCPU runs,
 * and that plays the guest agent with the same encoders the real agent uses (guest/kvm_trap.h
 * over include/ivmon/fragment.h, guest/record_encode.c, src/ring.c). payload_abi.h says how
 * the VMM starts it; each mode ends with an OUT to VMM_PORT_DONE carrying the vCPU's status.
 *
 *   scripted  the records of script.h, every vCPU taking the next one under a spinlock: one
 *             producer whose records complete on whichever vCPU holds the lock
 *   hostile   the steps of hostile.h on vCPUs 0 and 1, taking turns, then good records
 *   bench-kvm / bench-ring  HELLO and `count` file records, through kvm: fragments or through
 *             the shm: ring mapped at VMM_RING_GPA with a doorbell on VMM_PORT_DOORBELL
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "hostile.h"
#include "kvm_trap.h"
#include "payload_abi.h"
#include "record_encode.h"
#include "ring.h"
#include "script.h"

void payload_main(uint64_t vcpu, const struct vmm_params *params);

/* The VMM starts every vCPU here with rdi = its index, rsi = the parameters, rsp = its stack, in
 * ring 3 with IOPL 3 (so in and out work, and hlt would fault: the VMM stops a vCPU when it
 * reports on VMM_PORT_DONE). */
__asm__(".section .text.entry, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        "    call payload_main\n"
        "1:  pause\n"
        "    jmp 1b\n"
        ".previous\n");

static const struct vmm_params *P;
static uint16_t port;

static void outb(uint16_t p, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(p));
}

static void outw(uint16_t p, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(p));
}

static uint8_t inb(uint16_t p)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p));
    return v;
}

static void say(const char *s)
{
    while (*s)
        outb(VMM_PORT_CONSOLE, (uint8_t)*s++);
}

static __attribute__((noreturn)) void done(uint8_t status)
{
    outb(VMM_PORT_DONE, status);
    for (;;) /* never resumed */
        __builtin_ia32_pause();
}

static __attribute__((noreturn)) void fail(const char *why)
{
    say("payload: ");
    say(why);
    say("\n");
    done(1);
}

static uint64_t rec_time(uint64_t seq)
{
    return P->time_ns + seq * 1000;
}

static void set_seq(void *rec, uint64_t seq)
{
    ((struct ivmon_rec_hdr *)rec)->seq = seq;
}

static uint32_t hello(void *buf, const char *host, const char *agent)
{
    struct ivmon_enc_hello h = {
        .caps = SCRIPT_CAPS,
        .agent_pid = SCRIPT_AGENT_PID,
        .hostname = host,
        .hostname_len = script_strlen(host),
        .agent = agent,
        .agent_len = script_strlen(agent),
    };
    for (unsigned i = 0; i < 16; i++)
        h.instance_id[i] = P->instance_id[i];
    int n = ivmon_enc_hello(buf, IVMON_REC_MAX, rec_time(1), &h);
    if (n <= 0)
        fail("cannot encode the HELLO");
    set_seq(buf, 1);
    return (uint32_t)n;
}

/* A file record of payload_abi.h with a path of path_len bytes. */
static uint32_t vmm_file(void *buf, uint64_t seq, uint32_t path_len)
{
    static char path[IVMON_PATH_MAX];
    for (uint32_t k = 0; k < path_len; k++)
        path[k] = vmm_path_byte(seq, k);
    struct ivmon_enc_file f = {
        .op = IVMON_OP_MODIFY,
        .pid = VMM_FILE_PID,
        .tid = VMM_FILE_PID,
        .ppid = 1,
        .comm = VMM_FILE_COMM,
        .comm_len = script_strlen(VMM_FILE_COMM),
        .exe = VMM_FILE_EXE,
        .exe_len = script_strlen(VMM_FILE_EXE),
        .path = path,
        .path_len = path_len,
    };
    int n = ivmon_enc_file(buf, IVMON_REC_MAX, rec_time(seq), &f);
    if (n <= 0)
        fail("cannot encode a file record");
    set_seq(buf, seq);
    return (uint32_t)n;
}

static uint32_t heartbeat(void *buf, uint64_t seq)
{
    int n = ivmon_enc_heartbeat(buf, IVMON_REC_MAX, rec_time(seq), seq, 0);
    if (n <= 0)
        fail("cannot encode a heartbeat");
    set_seq(buf, seq);
    return (uint32_t)n;
}

/* ---- scripted ------------------------------------------------------------------------------- */

static uint32_t script_record(uint32_t i, void *buf)
{
    static char a[IVMON_PATH_MAX], b[IVMON_PATH_MAX];
    struct script_event e;
    uint64_t seq = i + 1;
    int n;

    script_event(i, &e, a, b);
    switch (e.type) {
    case IVMON_REC_HELLO:
        return hello(buf, SCRIPT_HOSTNAME, SCRIPT_AGENT);
    case IVMON_REC_HEARTBEAT:
        return heartbeat(buf, seq);
    case IVMON_REC_LOST:
        n = ivmon_enc_lost(buf, IVMON_REC_MAX, rec_time(seq), IVMON_LOST_SOURCE_OVERFLOW, 0, 0, 0);
        break;
    default: {
        struct ivmon_enc_file f = {
            .op = e.op,
            .flags = e.flags,
            .pid = e.pid,
            .tid = e.tid,
            .ppid = e.ppid,
            .uid = e.uid,
            .gid = e.gid,
            .comm = e.comm,
            .comm_len = e.comm_len,
            .exe = e.exe,
            .exe_len = e.exe_len,
            .path = e.path,
            .path_len = e.path_len,
            .new_path = e.new_path,
            .new_path_len = e.new_path_len,
        };
        n = ivmon_enc_file(buf, IVMON_REC_MAX, rec_time(seq), &f);
    }
    }
    if (n <= 0)
        fail("cannot encode a scripted record");
    set_seq(buf, seq);
    return (uint32_t)n;
}

static uint32_t script_lock, script_next;
static union ivmon_enc_buf script_buf;

static void lock(uint32_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(l, __ATOMIC_RELAXED))
            __builtin_ia32_pause();
}

static void unlock(uint32_t *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* One producer on every vCPU: whoever holds the lock takes the next sequence number and sends
 * the whole record before letting go, as an agent that may run on any CPU does. */
static void scripted(void)
{
    for (;;) {
        lock(&script_lock);
        uint32_t i = script_next++;
        if (i >= SCRIPT_EVENTS) {
            unlock(&script_lock);
            return;
        }
        uint32_t len = script_record(i, &script_buf);
        ivmon_kvm_send(port, &script_buf, len);
        unlock(&script_lock);
    }
}

/* ---- hostile -------------------------------------------------------------------------------- */

/* The fragments of one record, made with the guest encoder, to send in any order. */
struct cut {
    uint32_t n, len;
    uint64_t hdr[IVMON_FRAG_COUNT_MAX];
    uint64_t w[IVMON_FRAG_COUNT_MAX][IVMON_KVM_TRAP_WORDS];
};

static struct cut A, B, C, D, E, G;
#define ALL UINT32_MAX /* to the last fragment */
static union ivmon_enc_buf hbuf;

static void cut(struct cut *c, const void *rec, uint32_t len)
{
    struct ivmon_frag_writer w;
    c->n = 0;
    c->len = len;
    if (!ivmon_frag_writer_init(&w, rec, len, IVMON_KVM_TRAP_WORDS))
        fail("cannot cut a record");
    while (ivmon_frag_writer_next(&w, &c->hdr[c->n], c->w[c->n]))
        c->n++;
}

static void cut_file(struct cut *c, uint64_t seq, uint32_t path_len)
{
    cut(c, &hbuf, vmm_file(&hbuf, seq, path_len));
}

static void send(const struct cut *c, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to && i < c->n; i++)
        ivmon_kvm_trap(port, c->hdr[i], c->w[i]);
}

/* Fragment i of c again with its header rebuilt for another len or K. */
static uint64_t reheader(const struct cut *c, uint32_t i, uint32_t words, uint32_t len)
{
    return ivmon_frag_header(words, len, IVMON_FRAG_FIELD(c->hdr[i], TAG), i, c->w[i]);
}

/* vCPU 1 sends fragments [from, to) of a cut while vCPU 0 waits: the two take turns through
 * these words in guest memory, so the host sees exactly the order written here. */
static const struct cut *turn_cut;
static uint32_t turn_from, turn_to, turn; /* turn: 0 vCPU 0's, 1 vCPU 1's, 2 stop */

static void on_vcpu1(const struct cut *c, uint32_t from, uint32_t to)
{
    turn_cut = c;
    turn_from = from;
    turn_to = to;
    __atomic_store_n(&turn, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 0)
        __builtin_ia32_pause();
}

static void vcpu1_loop(void)
{
    for (;;) {
        uint32_t t;
        while ((t = __atomic_load_n(&turn, __ATOMIC_ACQUIRE)) == 0)
            __builtin_ia32_pause();
        if (t == 2)
            return;
        send(turn_cut, turn_from, turn_to);
        __atomic_store_n(&turn, 0, __ATOMIC_RELEASE);
    }
}

static void hostile(void)
{
    /* 1: HELLO */
    cut(&A, &hbuf, hello(&hbuf, SCRIPT_HOSTNAME, SCRIPT_AGENT));
    send(&A, 0, A.n);
    /* 2: out of order */
    cut_file(&A, 2, HOSTILE_PATH);
    send(&A, 0, 1);
    send(&A, 2, 3);
    send(&A, 1, 2);
    send(&A, 3, A.n);
    /* 3: every fragment claims 16385 bytes (with a check that matches the claim) */
    cut_file(&A, 3, HOSTILE_PATH);
    for (uint32_t i = 0; i < A.n; i++)
        ivmon_kvm_trap(port, reheader(&A, i, IVMON_KVM_TRAP_WORDS, IVMON_REC_MAX + 1), A.w[i]);
    /* 4: the record's own header lies about its length; the fragments tell the truth */
    uint32_t len = vmm_file(&hbuf, 4, HOSTILE_PATH);
    hbuf.hdr.len += 8;
    cut(&A, &hbuf, len);
    send(&A, 0, A.n);
    /* 5: a payload bit flipped after the check was made */
    cut_file(&A, 5, HOSTILE_PATH);
    A.w[1][3] ^= 1ull << 17;
    send(&A, 0, A.n);
    /* 6: a record CRC that is wrong under fragments that are right: flip the trailer's first
     * byte and make that fragment's check again */
    cut_file(&A, 6, HOSTILE_PATH);
    uint32_t pos = A.len, per = 8 * IVMON_KVM_TRAP_WORDS;
    A.w[pos / per][pos % per / 8] ^= 0x5aull << (8 * (pos % 8));
    A.hdr[pos / per] = reheader(&A, pos / per, IVMON_KVM_TRAP_WORDS, A.len);
    send(&A, 0, A.n);
    /* 7: a record that never finishes: fragment 1 over and over */
    cut_file(&A, 7, HOSTILE_PATH_LONG);
    send(&A, 0, 2);
    for (uint32_t i = 0; i < HOSTILE_REPEATS; i++)
        send(&A, 1, 2);
    /* 8: a record that stops for longer than the host waits */
    cut_file(&A, 8, HOSTILE_PATH);
    send(&A, 0, 2);
    for (uint32_t i = 0; i < HOSTILE_SLEEPS; i++)
        outb(VMM_PORT_SLEEP, HOSTILE_SLEEP_MS);
    send(&A, 2, A.n);
    /* 9 to 13: who sends which fragments of which record, in this order */
    cut_file(&A, 9, HOSTILE_PATH);
    cut_file(&B, 10, HOSTILE_PATH);
    cut_file(&C, 11, HOSTILE_PATH);
    cut_file(&D, 12, HOSTILE_PATH_SHORT);
    cut_file(&E, 13, HOSTILE_PATH);
    cut_file(&G, 200, HOSTILE_PATH);
    static const struct play {
        const struct cut *c;
        uint32_t vcpu, from, to;
    } plays[] = {
        /* 9 and 10 interleaved on two vCPUs, each in order on its own */
        {&A, 0, 0, 4},
        {&B, 1, 0, 4},
        {&A, 0, 4, ALL},
        {&B, 1, 4, ALL},
        /* 11 moves to vCPU 1 half-way; then 12 begins on vCPU 0 */
        {&C, 0, 0, 3},
        {&C, 1, 3, ALL},
        {&D, 0, 0, ALL},
        /* 13 with a fragment of another record (seq 200) in the middle */
        {&E, 0, 0, 3},
        {&G, 0, 1, 2},
        {&E, 0, 3, ALL},
    };
    for (size_t i = 0; i < sizeof plays / sizeof plays[0]; i++) {
        const struct play *p = &plays[i];
        if (p->vcpu)
            on_vcpu1(p->c, p->from, p->to);
        else
            send(p->c, p->from, p->to);
    }
    /* garbage: words that are not fragments (any magic but 0xf1), accesses that are not a
     * one-byte OUT, a fragment made for K = 2 */
    uint64_t x = 0x9e3779b97f4a7c15ull, w[IVMON_KVM_TRAP_WORDS];
    for (uint32_t i = 0; i < HOSTILE_GARBAGE; i++) {
        for (uint32_t j = 0; j < IVMON_KVM_TRAP_WORDS; j++)
            w[j] = x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t hdr = x * 2862933555777941757ull;
        hdr = (hdr & ~(0xffull << 56)) | (uint64_t)((hdr >> 56) % IVMON_FRAG_MAGIC) << 56;
        ivmon_kvm_trap(port, hdr, w);
    }
    outw(port, 0x4956);
    if (inb(port) != 0xff)
        fail("an IN on the kvm: port did not read as an unassigned port");
    ivmon_kvm_trap(port, reheader(&G, 0, 2, G.len), G.w[0]);
    /* 14: a one-fragment record, its trap replayed */
    cut(&A, &hbuf, heartbeat(&hbuf, 14));
    send(&A, 0, 1);
    send(&A, 0, 1);
    /* good records, vCPUs taking turns, and the closing heartbeat */
    for (uint32_t i = 0; i < HOSTILE_GOOD; i++) {
        cut_file(&A, 15 + i, hostile_good_path(i));
        if (i % 2)
            on_vcpu1(&A, 0, A.n);
        else
            send(&A, 0, A.n);
    }
    cut(&A, &hbuf, heartbeat(&hbuf, HOSTILE_LAST_SEQ));
    send(&A, 0, A.n);
    __atomic_store_n(&turn, 2, __ATOMIC_RELEASE);
}

/* ---- bench ---------------------------------------------------------------------------------- */

static union ivmon_enc_buf bench_buf;

static void bench_kvm(void)
{
    uint32_t len = hello(&bench_buf, SCRIPT_HOSTNAME, "ivmon-kvm-payload bench");
    ivmon_kvm_send(port, &bench_buf, len);
    for (uint64_t seq = 2; seq <= (uint64_t)P->count + 1; seq++) {
        len = vmm_file(&bench_buf, seq, P->path_len);
        ivmon_kvm_send(port, &bench_buf, len);
    }
}

/* The ring producer, lossless: a full ring waits for the consumer. Each record is published on
 * its own and the doorbell rung only when the consumer asked for it (ivmon_producer_emit's 1). */
static void ring_emit(struct ivmon_producer *p, struct ivmon_rec_hdr *rec)
{
    for (;;) {
        int r = ivmon_producer_emit(p, rec);
        if (r >= 0) {
            if (r == 1)
                outb(VMM_PORT_DOORBELL, 0);
            return;
        }
        if (r != -EAGAIN)
            fail("the ring refused a record");
        if (ivmon_producer_publish(p))
            outb(VMM_PORT_DOORBELL, 0);
        __builtin_ia32_pause();
    }
}

static void bench_ring(void)
{
    struct ivmon_ring r;
    struct ivmon_producer p;
    const char *why = "bad ring";
    if (ivmon_ring_attach(&r, (void *)(uintptr_t)P->ring_gpa, P->ring_size, &why) < 0)
        fail(why);
    ivmon_producer_init(&p, &r, 1);
    hello(&bench_buf, SCRIPT_HOSTNAME, "ivmon-kvm-payload bench");
    ring_emit(&p, &bench_buf.hdr);
    for (uint64_t seq = 2; seq <= (uint64_t)P->count + 1; seq++) {
        vmm_file(&bench_buf, seq, P->path_len);
        ring_emit(&p, &bench_buf.hdr);
    }
}

void payload_main(uint64_t vcpu, const struct vmm_params *params)
{
    P = params;
    port = (uint16_t)P->kvm_port;
    switch (P->mode) {
    case VMM_MODE_SCRIPTED:
        scripted();
        break;
    case VMM_MODE_HOSTILE:
        if (P->vcpus < 2)
            fail("the hostile mode needs two vCPUs");
        if (vcpu == 0)
            hostile();
        else if (vcpu == 1)
            vcpu1_loop();
        break;
    case VMM_MODE_BENCH_KVM:
        if (vcpu == 0)
            bench_kvm();
        break;
    case VMM_MODE_BENCH_RING:
        if (vcpu == 0)
            bench_ring();
        break;
    default:
        fail("unknown mode");
    }
    done(0);
}
