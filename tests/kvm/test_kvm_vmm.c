/* SPDX-License-Identifier: MIT */
/*
 * The kvm: transport on the real /dev/kvm: the example VMM (examples/kvm-vmm) runs its guest
 * payload on N vCPU threads, every fragment goes through a real KVM_EXIT_IO and the registers
 * KVM hands back, and this thread is the monitor, consuming the session with the public API.
 *
 *   test_kvm_vmm scripted VCPUS [get-regs]   every record of script.h arrives exactly: every
 *                                            field of every event, in sequence, nothing else
 *   test_kvm_vmm hostile                     the steps of hostile.h: each counted exactly,
 *                                            no crash, and every good record still arrives
 *
 * Without a usable /dev/kvm the test fails and says why: the project's machines and CI have
 * one, so its absence is a broken machine, not a reason to skip.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivmon/fragment.h>
#include <ivmon/ivmon.h>
#include <ivmon/kvm.h>

#include "check.h"
#include "hostile.h"
#include "script.h"
#include "vmm.h"

/* A string of the event equals the expected bytes exactly. */
static int same(const char *got, const char *want, uint32_t want_len)
{
    return strlen(got) == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0);
}

struct run {
    uint32_t mode;
    uint8_t instance_id[16];
    uint64_t first_time, events, last_seq;
    uint64_t seqs[64]; /* hostile: the sequence numbers delivered */
};

static void check_hello(struct run *r, const ivmon_event *ev)
{
    uint8_t id[16];
    ivmon_event_instance_id(ev, id);
    CHECK(!memcmp(id, r->instance_id, 16), "HELLO instance id");
    CHECK(!strcmp(ivmon_event_hostname(ev), SCRIPT_HOSTNAME), "hostname %s",
          ivmon_event_hostname(ev));
    CHECK(!strcmp(ivmon_event_agent(ev), SCRIPT_AGENT), "agent %s", ivmon_event_agent(ev));
    CHECK(ivmon_event_caps(ev) == SCRIPT_CAPS, "caps %u", ivmon_event_caps(ev));
    CHECK(ivmon_event_agent_pid(ev) == SCRIPT_AGENT_PID, "agent pid");
    CHECK(ivmon_event_proto_version(ev) == (IVMON_PROTO_MAJOR << 16 | IVMON_PROTO_MINOR),
          "protocol version");
}

/* Event seq against script event seq - 1, field by field. */
static void check_scripted(struct run *r, const ivmon_event *ev, uint64_t seq)
{
    static char a[IVMON_PATH_MAX], b[IVMON_PATH_MAX];
    struct script_event e;
    script_event((uint32_t)(seq - 1), &e, a, b);
    CHECK(ivmon_event_type(ev) == e.type, "seq %" PRIu64 ": type %u, expected %u", seq,
          ivmon_event_type(ev), e.type);
    switch (e.type) {
    case IVMON_REC_HELLO:
        check_hello(r, ev);
        break;
    case IVMON_REC_HEARTBEAT:
        CHECK(ivmon_event_produced(ev) == seq && ivmon_event_dropped(ev) == 0, "heartbeat %" PRIu64,
              seq);
        break;
    case IVMON_REC_LOST:
        CHECK(ivmon_event_lost_reason(ev) == IVMON_LOST_SOURCE_OVERFLOW &&
                  ivmon_event_lost_count(ev) == 0,
              "lost %" PRIu64, seq);
        break;
    default:
        CHECK(ivmon_event_op(ev) == e.op, "seq %" PRIu64 ": op %u, expected %u", seq,
              ivmon_event_op(ev), e.op);
        CHECK(ivmon_event_file_flags(ev) == e.flags, "seq %" PRIu64 ": flags 0x%x", seq,
              ivmon_event_file_flags(ev));
        CHECK(ivmon_event_pid(ev) == e.pid && ivmon_event_tid(ev) == e.tid &&
                  ivmon_event_ppid(ev) == e.ppid && ivmon_event_uid(ev) == e.uid &&
                  ivmon_event_gid(ev) == e.gid,
              "seq %" PRIu64 ": process ids", seq);
        CHECK(same(ivmon_event_comm(ev), e.comm, e.comm_len), "seq %" PRIu64 ": comm %s", seq,
              ivmon_event_comm(ev));
        CHECK(same(ivmon_event_exe(ev), e.exe, e.exe_len), "seq %" PRIu64 ": exe (%zu bytes)", seq,
              strlen(ivmon_event_exe(ev)));
        CHECK(same(ivmon_event_path(ev), e.path, e.path_len), "seq %" PRIu64 ": path (%zu bytes)",
              seq, strlen(ivmon_event_path(ev)));
        CHECK(same(ivmon_event_new_path(ev), e.new_path ? e.new_path : "", e.new_path_len),
              "seq %" PRIu64 ": new_path (%zu bytes)", seq, strlen(ivmon_event_new_path(ev)));
    }
}

/* A file record of payload_abi.h, path_len bytes of vmm_path_byte. */
static void check_vmm_file(const ivmon_event *ev, uint64_t seq, uint32_t path_len)
{
    const char *p = ivmon_event_path(ev);
    int ok = ivmon_event_type(ev) == IVMON_EVENT_FILE && strlen(p) == path_len &&
             ivmon_event_op(ev) == IVMON_OP_MODIFY && ivmon_event_pid(ev) == VMM_FILE_PID &&
             !strcmp(ivmon_event_comm(ev), VMM_FILE_COMM) &&
             !strcmp(ivmon_event_exe(ev), VMM_FILE_EXE);
    for (uint32_t k = 0; ok && k < path_len; k++)
        ok = p[k] == vmm_path_byte(seq, k);
    CHECK(ok, "seq %" PRIu64 ": not the file record with a path of %u bytes", seq, path_len);
}

static void check_hostile(struct run *r, const ivmon_event *ev, uint64_t seq)
{
    if (seq == 1) {
        check_hello(r, ev);
    } else if (seq == 14 || seq == HOSTILE_LAST_SEQ) {
        CHECK(ivmon_event_type(ev) == IVMON_EVENT_HEARTBEAT && ivmon_event_produced(ev) == seq,
              "seq %" PRIu64 ": the heartbeat", seq);
    } else if (seq >= 15 && seq < HOSTILE_LAST_SEQ) {
        check_vmm_file(ev, seq, hostile_good_path((unsigned)(seq - 15)));
    } else {
        check_vmm_file(ev, seq, seq == 12 ? HOSTILE_PATH_SHORT : HOSTILE_PATH);
    }
    if (r->events < sizeof r->seqs / sizeof r->seqs[0])
        r->seqs[r->events] = seq;
}

static int on_event(ivmon *m, const ivmon_event *ev, void *userdata)
{
    struct run *r = userdata;
    uint64_t seq = ivmon_event_seq(ev);
    CHECK(seq > r->last_seq, "seq %" PRIu64 " after %" PRIu64, seq, r->last_seq);
    if (seq == 1)
        r->first_time = ivmon_event_time_ns(ev);
    /* the payload stamps record n with its start time + n microseconds */
    CHECK(ivmon_event_time_ns(ev) - r->first_time == (seq - 1) * 1000, "seq %" PRIu64 ": time",
          seq);
    if (r->mode == VMM_MODE_SCRIPTED)
        check_scripted(r, ev, seq);
    else
        check_hostile(r, ev, seq);
    r->last_seq = seq;
    r->events++;
    return 0;
}

static uint32_t frags(uint32_t len)
{
    return ivmon_frag_count(len, IVMON_KVM_WORDS);
}

/* The record lengths of the script, and so the fragments the guest sends. */
static uint64_t scripted_fragments(void)
{
    static char a[IVMON_PATH_MAX], b[IVMON_PATH_MAX];
    uint64_t n = 0;
    for (uint32_t i = 0; i < SCRIPT_EVENTS; i++) {
        struct script_event e;
        uint32_t len;
        script_event(i, &e, a, b);
        if (e.type == IVMON_REC_HELLO)
            len = 24 + 48 + script_strlen(SCRIPT_HOSTNAME) + script_strlen(SCRIPT_AGENT);
        else if (e.type == IVMON_REC_HEARTBEAT)
            len = 24 + 16;
        else if (e.type == IVMON_REC_LOST)
            len = 24 + 32;
        else
            len = 24 + 40 + e.comm_len + e.exe_len + e.path_len + e.new_path_len;
        n += frags(len);
    }
    return n;
}

/* Runs the VMM with the session until every vCPU is done and the session is drained. */
static int run_vm(struct vmm_config *c, struct run *r, struct vmm_stats *st)
{
    char err[256];
    struct vmm *v = NULL;
    int e = vmm_start(&v, c, err, sizeof err);
    if (e < 0) {
        fprintf(stderr,
                "FAIL: cannot run a VM: %s. The kvm tests need a usable /dev/kvm (root, "
                "KVM or kvm_pvm loaded); this is a failure, not a skip.\n",
                err);
        return -1;
    }
    vmm_instance_id(v, r->instance_id);
    for (int last = 0; !last;) {
        last = vmm_running(v) == 0;
        struct pollfd p = {.fd = ivmon_get_fd(c->kvm), .events = (short)ivmon_get_events(c->kvm)};
        int t = ivmon_get_timeout(c->kvm);
        poll(&p, 1, last ? 0 : t < 20 ? t : 20); /* a short nap at most, to notice the end */
        int n;
        do
            n = ivmon_process(c->kvm, 0);
        while (n > 0 || (n == 0 && ivmon_get_timeout(c->kvm) == 0));
        CHECK(n >= 0, "ivmon_process: %s", ivmon_get_error(c->kvm));
        if (n < 0)
            break;
    }
    e = vmm_wait(v, st, err, sizeof err);
    CHECK(e == 0, "the guest: %s", err);
    vmm_free(v);
    return 0;
}

static void expect(ivmon *m, unsigned s, uint64_t want)
{
    uint64_t got = stat_of(m, s);
    CHECK(got == want, "%s = %" PRIu64 ", expected %" PRIu64, ivmon_stat_name(s), got, want);
}

static void check_identity(ivmon *m)
{
    CHECK(stat_of(m, IVMON_STAT_DELIVERED) + stat_of(m, IVMON_STAT_LOST) +
                  stat_of(m, IVMON_STAT_MALFORMED) + stat_of(m, IVMON_STAT_MISSED) ==
              stat_of(m, IVMON_STAT_SEQ_SPAN),
          "delivered + lost + malformed + missed != seq_span");
}

static unsigned log_warnings;

static void on_log(ivmon *m, int level, const char *msg, void *userdata)
{
    if (level == IVMON_LOG_WARNING)
        log_warnings++;
}

/* Opens the kvm: session uri for c, runs the VM to its end and drains the session. Returns 0,
 * or -1 (said why) if the session or the VM could not be set up. */
static int session_run(struct vmm_config *c, const char *uri, struct run *r, struct vmm_stats *st)
{
    if (ivmon_open(&c->kvm, uri, 0) < 0) {
        fprintf(stderr, "FAIL: %s: %s\n", uri, ivmon_open_error());
        return -1;
    }
    ivmon_set_handler(c->kvm, IVMON_EVENT_ANY, on_event, r);
    ivmon_set_log(c->kvm, on_log, NULL);
    if (run_vm(c, r, st) < 0) {
        ivmon_close(c->kvm);
        return -1;
    }
    return 0;
}

static int scripted(unsigned vcpus, int get_regs)
{
    char uri[128];
    struct run r = {.mode = VMM_MODE_SCRIPTED};
    struct vmm_config c = {
        .vcpus = vcpus, .mode = VMM_MODE_SCRIPTED, .doorbell_fd = -1, .get_regs = get_regs};
    struct vmm_stats st;
    snprintf(uri, sizeof uri, "kvm:scripted?vcpus=%u", vcpus);
    if (session_run(&c, uri, &r, &st) < 0)
        return 1;
    uint64_t fragments = scripted_fragments();
    CHECK(r.events == SCRIPT_EVENTS, "%" PRIu64 " events, expected %u", r.events, SCRIPT_EVENTS);
    expect(c.kvm, IVMON_STAT_DELIVERED, SCRIPT_EVENTS);
    expect(c.kvm, IVMON_STAT_RECORDS, SCRIPT_EVENTS);
    expect(c.kvm, IVMON_STAT_SEQ_SPAN, SCRIPT_EVENTS);
    expect(c.kvm, IVMON_STAT_MISSED, 0);
    expect(c.kvm, IVMON_STAT_MALFORMED, 0);
    expect(c.kvm, IVMON_STAT_RESTARTS, 0);
    expect(c.kvm, IVMON_STAT_SOURCE_OVERFLOWS, 1);
    expect(c.kvm, IVMON_STAT_FRAGMENTS, fragments);
    for (unsigned s = IVMON_STAT_FRAG_REJECTED; s <= IVMON_STAT_OVERRUNS; s++)
        expect(c.kvm, s, 0);
    check_identity(c.kvm);
    CHECK(st.kvm_exits == fragments, "%" PRIu64 " exits on the kvm: port, %" PRIu64 " fragments",
          st.kvm_exits, fragments);
    CHECK(st.sync_regs == !get_regs, "registers read %s", st.sync_regs ? "synced" : "by ioctl");
    CHECK(log_warnings == 0, "%u warnings logged", log_warnings);
    printf("scripted, %u vCPUs: %" PRIu64 " records, %" PRIu64 " fragments, %" PRIu64
           " exits, %" PRIu64 " wakeups, registers %s\n",
           vcpus, r.events, fragments, st.exits, stat_of(c.kvm, IVMON_STAT_WAKEUPS),
           st.sync_regs ? "synced in kvm_run" : "by KVM_GET_REGS");
    ivmon_close(c.kvm);
    return failures ? 1 : 0;
}

static int hostile(void)
{
    char uri[128];
    struct run r = {.mode = VMM_MODE_HOSTILE};
    struct vmm_config c = {.vcpus = 2, .mode = VMM_MODE_HOSTILE, .doorbell_fd = -1};
    struct vmm_stats st;
    snprintf(uri, sizeof uri, "kvm:hostile?vcpus=2&expire_ms=%u", HOSTILE_EXPIRE_MS);
    if (session_run(&c, uri, &r, &st) < 0)
        return 1;

    /* Delivered: the HELLO, 9 and 10 (interleaved on two vCPUs), 12 (after 11 moved away),
     * 13 (around a stray), the heartbeat 14 once, the good records, the last heartbeat. */
    static const uint64_t want[] = {1, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};
    _Static_assert(HOSTILE_LAST_SEQ == 23, "the list above follows hostile.h");
    CHECK(r.events == sizeof want / sizeof want[0], "%" PRIu64 " events delivered", r.events);
    for (size_t i = 0; i < sizeof want / sizeof want[0] && i < r.events; i++)
        CHECK(r.seqs[i] == want[i], "event %zu is seq %" PRIu64 ", expected %" PRIu64, i, r.seqs[i],
              want[i]);

    uint32_t f = frags(VMM_FILE_LEN(HOSTILE_PATH)); /* 7 */
    uint32_t hello = frags(24 + 48 + script_strlen(SCRIPT_HOSTNAME) + script_strlen(SCRIPT_AGENT));
    uint64_t good = 0;
    for (unsigned i = 0; i < HOSTILE_GOOD; i++)
        good += frags(VMM_FILE_LEN(hostile_good_path(i)));
    uint64_t fragments = hello + 5 * f                             /* steps 2 to 6 */
                         + 2 + HOSTILE_REPEATS                     /* 7 */
                         + f + 2 * f + f                           /* 8, 9 and 10, 11 */
                         + frags(VMM_FILE_LEN(HOSTILE_PATH_SHORT)) /* 12 */
                         + f + 1                                   /* 13 and its stray */
                         + HOSTILE_GARBAGE + 2 + 1 /* garbage, two accesses, K = 2 */
                         + 2                       /* 14 and its replay */
                         + good + 1;               /* the good records, the heartbeat */
    /* The stall limit is 64 fragments (docs/PROTOCOL.md): step 7's repeats past it find no
     * record in progress any more. */
    uint64_t stall = 64;
    expect(c.kvm, IVMON_STAT_FRAGMENTS, fragments);
    expect(c.kvm, IVMON_STAT_FRAG_REJECTED, f + 1 + HOSTILE_GARBAGE + 2 + 1); /* 3, 5, garbage */
    expect(c.kvm, IVMON_STAT_FRAG_UNMATCHED,
           (f - 1) + (f - 2) + (HOSTILE_REPEATS - stall) + (f - 2) + (f - 3) + 1);
    expect(c.kvm, IVMON_STAT_FRAG_DUPLICATES, stall + 1);
    expect(c.kvm, IVMON_STAT_FRAG_DAMAGED, 4); /* 2 (gap), 5 (gap), 6 (CRC), 11 (superseded) */
    expect(c.kvm, IVMON_STAT_FRAG_EXPIRED, 2); /* 7 (stalled), 8 (time) */
    expect(c.kvm, IVMON_STAT_OVERRUNS, 0);
    expect(c.kvm, IVMON_STAT_RECORDS, 16);
    expect(c.kvm, IVMON_STAT_DELIVERED, 15);
    expect(c.kvm, IVMON_STAT_MALFORMED, 1); /* 4 */
    expect(c.kvm, IVMON_STAT_MISSED, 7);    /* 2, 3, 5, 6, 7, 8, 11 */
    expect(c.kvm, IVMON_STAT_SEQ_SPAN, HOSTILE_LAST_SEQ);
    expect(c.kvm, IVMON_STAT_LOST, 0);
    expect(c.kvm, IVMON_STAT_RESTARTS, 0);
    check_identity(c.kvm);
    CHECK(st.kvm_exits == fragments, "%" PRIu64 " exits on the kvm: port", st.kvm_exits);
    CHECK(log_warnings > 0, "the damage was not logged");
    CHECK(ivmon_process(c.kvm, 0) == 0, "the session still works");
    printf("hostile: %" PRIu64 " fragments; refused %" PRIu64 ", unmatched %" PRIu64
           ", duplicates %" PRIu64 ", damaged %" PRIu64 ", expired %" PRIu64 "; records: %" PRIu64
           " delivered, %" PRIu64 " malformed, %" PRIu64 " missed of %" PRIu64 "\n",
           stat_of(c.kvm, IVMON_STAT_FRAGMENTS), stat_of(c.kvm, IVMON_STAT_FRAG_REJECTED),
           stat_of(c.kvm, IVMON_STAT_FRAG_UNMATCHED), stat_of(c.kvm, IVMON_STAT_FRAG_DUPLICATES),
           stat_of(c.kvm, IVMON_STAT_FRAG_DAMAGED), stat_of(c.kvm, IVMON_STAT_FRAG_EXPIRED),
           stat_of(c.kvm, IVMON_STAT_DELIVERED), stat_of(c.kvm, IVMON_STAT_MALFORMED),
           stat_of(c.kvm, IVMON_STAT_MISSED), stat_of(c.kvm, IVMON_STAT_SEQ_SPAN));
    ivmon_close(c.kvm);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "scripted"))
        return scripted((unsigned)atoi(argv[2]), argc > 3 && !strcmp(argv[3], "get-regs"));
    if (argc == 2 && !strcmp(argv[1], "hostile"))
        return hostile();
    fprintf(stderr, "usage: test_kvm_vmm scripted VCPUS [get-regs] | hostile\n");
    return 2;
}
