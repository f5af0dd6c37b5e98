/* SPDX-License-Identifier: MIT */
/*
 * ivmon-step: performs one file operation as a process with a chosen name that stays alive a
 * little while afterwards. The guest workloads (guest/image/workloads/) use it so that every event
 * they cause has a predictable process name.
 *
 *   ivmon-step [--name COMM] [--linger MS] OP ARGS...
 *
 *   create PATH          open(O_CREAT|O_EXCL|O_WRONLY) and close: create, open, close_write
 *   write PATH TEXT      append TEXT and a newline (O_APPEND, no O_CREAT): open, modify,
 *                        close_write
 *   read PATH            open, read everything, close: open
 *   chmod PATH MODE      chmod (octal MODE): attrib
 *   rename OLD NEW       rename: rename
 *   delete PATH          unlink: delete
 *   mkdir PATH           mkdir 0755: create (directory)
 *   rmdir PATH           rmdir: delete (directory)
 *   copy SRC DST         copy SRC to a new DST with SRC's mode: create, open, modify, close_write
 *   steady DIR SECONDS RATE
 *                        for SECONDS, RATE times a second, rewrite one of 8 files DIR/f0..f7
 *                        (O_TRUNC, one line): open, modify, close_write (create the first time);
 *                        prints "ivmon-step steady: N writes in S s" on stderr at the end
 *
 * Why a helper and not busybox commands: busybox sh runs its applets in forked children that are
 * never exec'd, so they carry the shell's name, and they exit (and are reaped) within
 * microseconds, usually before the agent has read /proc for them. Here the operation runs in a
 * child whose name is set with PR_SET_NAME before it acts; the parent exits as soon as the
 * operation is done (so a workload proceeds at once), while the child lingers --linger MS
 * (default 300) so that the agent finds it alive. `steady` runs in the foreground.
 *
 * Exit status: 0; 1 the operation failed (message on stderr); 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROGRAM "ivmon-step"

static void usage(void)
{
    fprintf(stderr, "usage: " PROGRAM " [--name COMM] [--linger MS] OP ARGS...\n"
                    "  OP: create PATH | write PATH TEXT | read PATH | chmod PATH MODE |\n"
                    "      rename OLD NEW | delete PATH | mkdir PATH | rmdir PATH |\n"
                    "      copy SRC DST | steady DIR SECONDS RATE\n");
    exit(2);
}

static int fail(const char *what, const char *path)
{
    fprintf(stderr, PROGRAM ": %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int op_copy(const char *src, const char *dst)
{
    static char buf[1 << 20]; /* large reads: a few modify events per copy, not one per 64 KiB */
    struct stat st;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0 || fstat(in, &st) < 0)
        return fail("open", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
    if (out < 0) {
        close(in);
        return fail("create", dst);
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n > 0 && write_all(out, buf, (size_t)n) < 0)) {
            close(in);
            close(out);
            return fail("copy to", dst);
        }
        if (n == 0)
            break;
    }
    close(in);
    return close(out) < 0 ? fail("close", dst) : 0;
}

static int op_steady(const char *dir, double seconds, double rate)
{
    char path[4096], line[64];
    uint64_t n = 0;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fail("mkdir", dir);
    double start = now_s(), next = start;
    while (now_s() - start < seconds) {
        snprintf(path, sizeof path, "%s/f%u", dir, (unsigned)(n % 8));
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("open", path);
        int len = snprintf(line, sizeof line, "write %llu\n", (unsigned long long)n);
        if (write_all(fd, line, (size_t)len) < 0 || close(fd) < 0)
            return fail("write", path);
        n++;
        next += 1.0 / rate;
        sleep_s(next - now_s());
    }
    fprintf(stderr, PROGRAM " steady: %llu writes in %.1f s\n", (unsigned long long)n,
            now_s() - start);
    return 0;
}

/* Runs the operation; returns the exit status. */
static int run_op(const char *op, int argc, char **argv)
{
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (argc != (n))                                                                           \
            usage();                                                                               \
    } while (0)
    if (!strcmp(op, "create")) {
        NEED(1);
        int fd = open(argv[0], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("create", argv[0]);
        return close(fd) < 0 ? fail("close", argv[0]) : 0;
    }
    if (!strcmp(op, "write")) {
        NEED(2);
        int fd = open(argv[0], O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0)
            return fail("open", argv[0]);
        if (write_all(fd, argv[1], strlen(argv[1])) < 0 || write_all(fd, "\n", 1) < 0) {
            close(fd);
            return fail("write", argv[0]);
        }
        return close(fd) < 0 ? fail("close", argv[0]) : 0;
    }
    if (!strcmp(op, "read")) {
        NEED(1);
        char buf[4096];
        ssize_t n;
        int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fail("open", argv[0]);
        while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
            ;
        close(fd);
        return n < 0 ? fail("read", argv[0]) : 0;
    }
    if (!strcmp(op, "chmod")) {
        NEED(2);
        char *end;
        unsigned long mode = strtoul(argv[1], &end, 8);
        if (*end || end == argv[1] || mode > 07777)
            usage();
        return chmod(argv[0], (mode_t)mode) < 0 ? fail("chmod", argv[0]) : 0;
    }
    if (!strcmp(op, "rename")) {
        NEED(2);
        return rename(argv[0], argv[1]) < 0 ? fail("rename", argv[0]) : 0;
    }
    if (!strcmp(op, "delete")) {
        NEED(1);
        return unlink(argv[0]) < 0 ? fail("unlink", argv[0]) : 0;
    }
    if (!strcmp(op, "mkdir")) {
        NEED(1);
        return mkdir(argv[0], 0755) < 0 ? fail("mkdir", argv[0]) : 0;
    }
    if (!strcmp(op, "rmdir")) {
        NEED(1);
        return rmdir(argv[0]) < 0 ? fail("rmdir", argv[0]) : 0;
    }
    if (!strcmp(op, "copy")) {
        NEED(2);
        return op_copy(argv[0], argv[1]);
    }
    if (!strcmp(op, "steady")) {
        NEED(3);
        double secs = strtod(argv[1], NULL), rate = strtod(argv[2], NULL);
        if (!(secs > 0) || !(rate > 0) || rate > 1e6)
            usage();
        return op_steady(argv[0], secs, rate);
    }
    usage();
    return 2;
#undef NEED
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    long linger_ms = 300;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--name")) {
            name = argv[i + 1];
        } else if (!strcmp(argv[i], "--linger")) {
            char *end;
            linger_ms = strtol(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || linger_ms < 0 || linger_ms > 600000)
                usage();
        } else {
            usage();
        }
    }
    if (i >= argc)
        usage();
    const char *op = argv[i];
    if (name && prctl(PR_SET_NAME, name) < 0)
        return fail("prctl PR_SET_NAME", name);
    if (!strcmp(op, "steady"))
        return run_op(op, argc - i - 1, argv + i + 1);

    /* The child acts and lingers; the parent reports the result as soon as it is known. */
    int pfd[2];
    if (pipe(pfd) < 0)
        return fail("pipe", "");
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork", "");
    if (pid == 0) {
        close(pfd[0]);
        unsigned char rc = (unsigned char)run_op(op, argc - i - 1, argv + i + 1);
        if (write(pfd[1], &rc, 1) != 1)
            _exit(1);
        close(pfd[1]);
        sleep_s((double)linger_ms / 1000.0);
        _exit(rc);
    }
    close(pfd[1]);
    unsigned char rc = 1;
    ssize_t n;
    while ((n = read(pfd[0], &rc, 1)) < 0 && errno == EINTR)
        ;
    if (n != 1) {
        /* The child died without a word: report how. */
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    return rc;
}
