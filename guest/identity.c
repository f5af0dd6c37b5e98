/* SPDX-License-Identifier: MIT */
/* Producer identity and clocks; see identity.h. */
#define _GNU_SOURCE
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "record_encode.h"

#ifndef IVMON_GUEST_VERSION
#error "IVMON_GUEST_VERSION must come from the build (project() version)"
#endif

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    /* clock_gettime cannot fail for these clocks with a valid pointer. */
    if (clock_gettime(id, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ivmon_guest_realtime_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

uint64_t ivmon_guest_monotonic_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t ivmon_guest_cpu_ns(void)
{
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ivmon_guest_boot_id(uint8_t ret[16])
{
    char text[64];
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do
        n = read(fd, text, sizeof text - 1);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    text[n] = '\0';

    /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\n": 32 hex digits, dashes ignored. */
    uint8_t id[16];
    size_t nib = 0;
    for (const char *p = text; *p && *p != '\n'; p++) {
        if (*p == '-')
            continue;
        int v = hexval(*p);
        if (v < 0 || nib >= 32)
            return -EBADMSG;
        if (nib % 2 == 0)
            id[nib / 2] = (uint8_t)(v << 4);
        else
            id[nib / 2] |= (uint8_t)v;
        nib++;
    }
    if (nib != 32)
        return -EBADMSG;
    memcpy(ret, id, sizeof id);
    return 0;
}

int ivmon_guest_random_id(uint8_t ret[16])
{
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(ret + got, 16 - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    return 0;
}

int ivmon_guest_hello_encode(void *buf, size_t cap, uint32_t caps, const char *program)
{
    struct ivmon_enc_hello h = {.caps = caps, .agent_pid = (uint32_t)getpid()};
    struct utsname u;
    char agent[IVMON_AGENT_MAX + 1];

    if (ivmon_guest_boot_id(h.boot_id) < 0)
        memset(h.boot_id, 0, sizeof h.boot_id);
    int r = ivmon_guest_random_id(h.instance_id);
    if (r < 0)
        return r; /* without it the host cannot tell restarts apart: refuse */
    if (uname(&u) == 0) {
        h.hostname = u.nodename;
        h.hostname_len = strnlen(u.nodename, sizeof u.nodename);
    }
    int n = snprintf(agent, sizeof agent, "%s %s linux", program, IVMON_GUEST_VERSION);
    if (n < 0)
        return -EINVAL;
    h.agent = agent;
    h.agent_len = strnlen(agent, sizeof agent); /* snprintf may have cut it: use what is there */
    return ivmon_enc_hello(buf, cap, ivmon_guest_realtime_ns(), &h);
}
