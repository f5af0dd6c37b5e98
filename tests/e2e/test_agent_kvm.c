/* SPDX-License-Identifier: MIT */
/*
 * The real ivmon-agent over kvm+hcall:, with this test as its "VMM". The agent is meant for a
 * Linux guest of a KVM VMM that embeds libivmon, and this machine's /dev/kvm cannot boot Linux
 * (docs/KVM.md), so the test gives the agent the same trap another way: it runs the agent on the
 * host under ptrace, without I/O permission. Its `out dx, al` then faults, exactly where a VM
 * would exit; the tracer (this test's vCPU thread) reads the registers at the fault, hands them
 * to ivmon_kvm_handle_io() with the CPU the agent ran on as the vCPU index, steps over the
 * instruction and lets the agent go on, as a VMM resumes a vCPU. The agent's ioperm() is
 * answered "done" by a seccomp filter, so that it goes ahead as in a guest.
 *
 * What runs is the agent as shipped: its URI, its producer lock, its pinning to one CPU per
 * record, HELLO first, heartbeats and the final flush, the trap sequence of guest/kvm_trap.h.
 * The main thread is the monitor: it makes file events in a watched directory and checks that
 * each arrives with its operation, path and process, and that nothing was damaged or missed.
 *
 *   test_agent_kvm PATH_TO_IVMON_AGENT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivmon/ivmon.h>
#include <ivmon/kvm.h>
#include <ivmon/proto.h>

#include "check.h"

#define PORT        0x4956u
#define OUT_DX_AL   0xeeu /* the opcode of out dx, al */
#define MAX_EVENTS  256
#define DEEP_LEVELS 64 /* nested directories of 57 bytes: a path of about 3.7 KiB */

static ivmon *m;
static const char *agent_path;
static char dir[PATH_MAX], ready[PATH_MAX + 16];

struct seen {
    unsigned type, op;
    uint32_t pid;
    uint64_t seq, produced;
    char comm[IVMON_COMM_MAX + 1];
    char path[IVMON_PATH_MAX + 1], new_path[IVMON_PATH_MAX + 1];
};
static struct seen events[MAX_EVENTS];
static unsigned nevents;

static _Atomic int agent_pid, agent_done, agent_status;
static unsigned ncpus;
static _Atomic uint64_t traps, traps_on_cpu[64];

static int on_event(ivmon *mon, const ivmon_event *ev, void *userdata)
{
    if (nevents == MAX_EVENTS)
        return 0;
    struct seen *s = &events[nevents++];
    s->type = ivmon_event_type(ev);
    s->op = ivmon_event_op(ev);
    s->pid = ivmon_event_pid(ev);
    s->seq = ivmon_event_seq(ev);
    s->produced = ivmon_event_produced(ev);
    snprintf(s->comm, sizeof s->comm, "%s", ivmon_event_comm(ev));
    snprintf(s->path, sizeof s->path, "%s", ivmon_event_path(ev));
    snprintf(s->new_path, sizeof s->new_path, "%s", ivmon_event_new_path(ev));
    return 0;
}

/* ---- the agent's "VMM": ptrace as the trap ----------------------------------------------------
 */

/* ioperm() and iopl() succeed without doing anything; everything else is allowed. */
static int install_seccomp(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioperm, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_iopl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0), /* errno 0: returns 0 */
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* The CPU the (stopped) task last ran on: field 39 of /proc/PID/stat. */
static unsigned cpu_of(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces; it ends at the last ')' */
    unsigned field = 2, cpu = 0;
    for (; p && *p; p++)
        if (*p == ' ' && ++field == 39) {
            cpu = (unsigned)strtoul(p + 1, NULL, 10);
            break;
        }
    return cpu;
}

/* A fault at an `out dx, al` to our port: the trap. Returns 1 if it was one and is handled. */
static int take_trap(int pid)
{
    struct user_regs_struct u;
    if (ptrace(PTRACE_GETREGS, pid, NULL, &u) < 0)
        return 0;
    errno = 0;
    long text = ptrace(PTRACE_PEEKTEXT, pid, (void *)u.rip, NULL);
    if (errno || (text & 0xff) != OUT_DX_AL || (u.rdx & 0xffff) != PORT)
        return 0;
    struct ivmon_kvm_regs r = {u.rax, u.rbx, u.rcx, u.rdx, u.rsi, u.rdi, u.rsp, u.rbp, u.r8,
                               u.r9,  u.r10, u.r11, u.r12, u.r13, u.r14, u.r15, u.rip, u.eflags};
    unsigned cpu = cpu_of(pid) % ncpus; /* the session has a vCPU for every CPU */
    if (ivmon_kvm_handle_io(m, cpu, PORT, 1, 1, 1, &r, 0) != 1)
        return 0;
    traps++;
    traps_on_cpu[cpu % 64]++;
    u.rip += 1; /* the instruction is done: resume after it, as a VMM does */
    return ptrace(PTRACE_SETREGS, pid, NULL, &u) == 0;
}

static void *vcpu_thread(void *arg)
{
    char watch[PATH_MAX];
    snprintf(watch, sizeof watch, "%s", dir);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {(char *)"ivmon-agent",
                        (char *)"--uri",
                        (char *)"kvm+hcall:?port=0x4956",
                        (char *)"--watch",
                        watch,
                        (char *)"--heartbeat",
                        (char *)"1",
                        (char *)"--ready-file",
                        ready,
                        (char *)"--verbose",
                        NULL};
        /* In sanitizer builds: LeakSanitizer cannot run under ptrace and would fail the
         * agent's exit; the agent's leaks are checked by agent_watch, without ptrace. */
        char asan[512];
        const char *old = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", old ? old : "", old ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
        if (install_seccomp() < 0 || ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
            _exit(126);
        execv(agent_path, argv);
        _exit(127);
    }
    agent_pid = pid;
    for (;;) {
        int st;
        if (waitpid(pid, &st, __WALL) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            agent_status = st;
            break;
        }
        int sig = WSTOPSIG(st);
        if (sig == SIGTRAP) { /* the stop after execv: the agent starts now */
            ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)PTRACE_O_EXITKILL);
            sig = 0;
        } else if (sig == SIGSEGV && take_trap(pid)) {
            sig = 0;
        }
        ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig);
    }
    agent_done = 1;
    return NULL;
}

/* ---- the monitor ---------------------------------------------------------------------------- */

static void pump(int ms)
{
    struct pollfd p = {.fd = ivmon_get_fd(m), .events = (short)ivmon_get_events(m)};
    int t = ivmon_get_timeout(m);
    poll(&p, 1, t < ms ? t : ms);
    int r = ivmon_process(m, 0);
    CHECK(r >= 0, "ivmon_process: %s", ivmon_get_error(m));
}

static const struct seen *find(unsigned op, const char *path, const char *new_path)
{
    for (unsigned i = 0; i < nevents; i++)
        if (events[i].type == IVMON_EVENT_FILE && events[i].op == op &&
            !strcmp(events[i].path, path) && (!new_path || !strcmp(events[i].new_path, new_path)))
            return &events[i];
    return NULL;
}

/* Waits up to 20 s for the event; checks it came from this process. */
static void expect_event(unsigned op, const char *path, const char *new_path, int ours)
{
    const struct seen *s = NULL;
    for (int i = 0; i < 2000 && !(s = find(op, path, new_path)); i++)
        pump(10);
    CHECK(s, "no %s event for %.80s%s", ivmon_op_name(op), path, strlen(path) > 80 ? "..." : "");
    if (s && ours) {
        CHECK(s->pid == (uint32_t)getpid(), "%s %.60s: pid %u", ivmon_op_name(op), path, s->pid);
        CHECK(!strcmp(s->comm, "test_agent_kvm"), "%s: comm %s", ivmon_op_name(op), s->comm);
    }
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    if (fd < 0)
        return;
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s", path);
    close(fd);
}

static void workload(void)
{
    char a[PATH_MAX + 64], b[PATH_MAX + 64], deep[PATH_MAX], exe[PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/report draft.txt", dir);
    snprintf(b, sizeof b, "%s/report \xc3\xa9t\xc3\xa9 final.txt", dir);
    write_file(a, "hello");
    expect_event(IVMON_OP_CREATE, a, NULL, 1);
    expect_event(IVMON_OP_CLOSE_WRITE, a, NULL, 1);
    CHECK(rename(a, b) == 0, "rename");
    expect_event(IVMON_OP_RENAME, a, b, 1);
    CHECK(chmod(b, 0600) == 0, "chmod");
    expect_event(IVMON_OP_ATTRIB, b, NULL, 1);
    CHECK(unlink(b) == 0, "unlink");
    expect_event(IVMON_OP_DELETE, b, NULL, 1);

    /* a path of about 3.7 KiB: a record of some seventy fragments */
    size_t n = (size_t)snprintf(deep, sizeof deep, "%s", dir);
    for (int i = 0; i < DEEP_LEVELS && n + 57 < sizeof deep - 32; i++) {
        n += (size_t)snprintf(deep + n, sizeof deep - n, "/%02d-%s", i,
                              "directory-name-of-fifty-three-bytes-in-a-long-path-xy");
        CHECK(mkdir(deep, 0755) == 0, "mkdir %zu bytes: %s", n, strerror(errno));
    }
    snprintf(deep + n, sizeof deep - n, "/leaf");
    write_file(deep, "deep");
    expect_event(IVMON_OP_CLOSE_WRITE, deep, NULL, 1);
    CHECK(strlen(deep) > 3500, "the long path is only %zu bytes", strlen(deep));

    /* an exec inside the watched directory */
    snprintf(exe, sizeof exe, "%s/true", dir);
    int in = open("/bin/true", O_RDONLY | O_CLOEXEC), out = open(exe, O_WRONLY | O_CREAT, 0755);
    char buf[65536];
    ssize_t got;
    while (in >= 0 && out >= 0 && (got = read(in, buf, sizeof buf)) > 0)
        CHECK(write(out, buf, (size_t)got) == got, "copy /bin/true");
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    pid_t pid = fork();
    if (pid == 0) {
        execl(exe, "true", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s did not run", exe);
    expect_event(IVMON_OP_EXEC, exe, NULL, 0);
}

static void remove_tree(const char *path)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_agent_kvm PATH_TO_IVMON_AGENT\n");
        return 2;
    }
    agent_path = argv[1];
    snprintf(dir, sizeof dir, "/tmp/ivmon-e2e-kvm-%d", (int)getpid());
    snprintf(ready, sizeof ready, "%s.ready", dir);
    remove_tree(dir);
    unlink(ready);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    ncpus = conf < 1 ? 1 : conf > IVMON_KVM_VCPUS_MAX ? IVMON_KVM_VCPUS_MAX : (unsigned)conf;
    char uri[64];
    snprintf(uri, sizeof uri, "kvm:agent?vcpus=%u", ncpus);
    CHECK(ivmon_open(&m, uri, 0) == 0, "ivmon_open: %s", ivmon_open_error());
    if (failures)
        return 1;
    ivmon_set_handler(m, IVMON_EVENT_ANY, on_event, NULL);

    pthread_t t;
    CHECK(pthread_create(&t, NULL, vcpu_thread, NULL) == 0, "pthread_create");
    for (int i = 0; i < 2000 && access(ready, F_OK) != 0 && !agent_done; i++)
        pump(10);
    CHECK(access(ready, F_OK) == 0, "the agent did not start (status 0x%x)", agent_status);
    for (int i = 0; i < 500 && nevents == 0; i++)
        pump(10);
    CHECK(nevents > 0 && events[0].type == IVMON_EVENT_HELLO && events[0].seq == 1,
          "the first record is not a HELLO with sequence number 1");
    if (!failures)
        workload();
    /* a heartbeat comes every second; the workload's last events may still come before it */
    unsigned before = nevents;
    int heartbeat = 0;
    for (int i = 0; i < 300 && !heartbeat; i++) {
        pump(10);
        for (unsigned k = before; k < nevents; k++)
            heartbeat |= events[k].type == IVMON_EVENT_HEARTBEAT;
    }
    CHECK(heartbeat, "no heartbeat within 3 s");

    if (agent_pid > 0)
        kill(agent_pid, SIGTERM);
    for (int i = 0; i < 1000 && !agent_done; i++)
        pump(10);
    pthread_join(t, NULL);
    for (int i = 0; i < 20; i++)
        pump(5);
    CHECK(WIFEXITED(agent_status) && WEXITSTATUS(agent_status) == 0,
          "the agent ended with status 0x%x", agent_status);
    const struct seen *last = &events[nevents - 1];
    CHECK(last->type == IVMON_EVENT_HEARTBEAT && last->produced == last->seq,
          "the last record is not the final heartbeat naming its own sequence number");
    for (unsigned i = 0; i < nevents; i++)
        CHECK(events[i].type != IVMON_EVENT_FILE || events[i].pid != (uint32_t)agent_pid,
              "an event of the agent itself: %s", events[i].path);

    uint64_t delivered = stat_of(m, IVMON_STAT_DELIVERED);
    CHECK(delivered == nevents, "delivered %" PRIu64 ", handled %u", delivered, nevents);
    CHECK(delivered == stat_of(m, IVMON_STAT_SEQ_SPAN) && stat_of(m, IVMON_STAT_FIRST_SEQ) == 1,
          "delivered %" PRIu64 " of %" PRIu64, delivered, stat_of(m, IVMON_STAT_SEQ_SPAN));
    for (unsigned s = IVMON_STAT_FRAG_REJECTED; s <= IVMON_STAT_OVERRUNS; s++)
        CHECK(stat_of(m, s) == 0, "%s = %" PRIu64, ivmon_stat_name(s), stat_of(m, s));
    CHECK(stat_of(m, IVMON_STAT_MISSED) == 0 && stat_of(m, IVMON_STAT_MALFORMED) == 0,
          "missed %" PRIu64 ", malformed %" PRIu64, stat_of(m, IVMON_STAT_MISSED),
          stat_of(m, IVMON_STAT_MALFORMED));
    CHECK(stat_of(m, IVMON_STAT_FRAGMENTS) == traps, "fragments %" PRIu64 ", traps %" PRIu64,
          stat_of(m, IVMON_STAT_FRAGMENTS), (uint64_t)traps);
    unsigned used = 0;
    for (unsigned i = 0; i < 64; i++)
        used += traps_on_cpu[i] != 0;
    printf("agent over kvm+hcall: %u records, %" PRIu64 " traps on %u of %u CPUs, no record "
           "damaged\n",
           nevents, (uint64_t)traps, used, ncpus);
    ivmon_close(m);
    remove_tree(dir);
    unlink(ready);
    return failures ? 1 : 0;
}
