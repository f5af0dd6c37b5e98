/* SPDX-License-Identifier: MIT */
/*
 * ivshmem: the host side of QEMU's ivshmem-plain device. QEMU maps a file into the guest as the
 * device's BAR2:
 *
 *   qemu-system-x86_64 ... \
 *     -object memory-backend-file,id=ivmem,share=on,mem-path=/dev/shm/NAME,size=4M \
 *     -device ivshmem-plain,memdev=ivmem
 *
 * and the library maps the same file: ivshmem:NAME (/dev/shm/NAME) or ivshmem:/absolute/path.
 * The agent in the guest finds the PCI device and produces into it (guest/transport_ivshmem.c).
 *
 * Who formats: the guest cannot take the host's file locks, so the host is the only formatter.
 * A file whose magic is still 0 (QEMU's fresh backing file) is formatted here, with a data area of
 * size= bytes or, by default, the largest power of two that fits (2 MiB in a 4 MiB file); the
 * agent waits until the magic appears. An already formatted file is attached as it is, so a
 * monitor restart continues where the previous one stopped.
 *
 * Waking: ivshmem-plain has no doorbell, so the library polls. ivmon_get_fd() is a timerfd that
 * fires every poll_ms milliseconds (default 10): honest, in that the caller's poll wakes when
 * it is time to look, and ivmon_get_timeout() says the same. The ring's cons_waiting flag is kept
 * at 0, so the producer never tries to ring. Idle cost: 1000 / poll_ms wakeups per second.
 *
 * URI options: poll_ms=1..1000 (default 10); size= (data area of a ring formatted here, a power
 * of two from 64K, fitting the file); lossless=0|1 (flag of a ring formatted here); create=0|1
 * (default 0: the file is QEMU's; 1 creates a missing file of region= bytes, default 4M, so the
 * monitor may start before QEMU, which then maps the existing file); region= (see create).
 *
 * The ivshmem+doorbell: scheme (ivshmem-doorbell, with the library serving the ivshmem protocol
 * and waking on the guest's doorbell) lives beside this file and shares ring_file.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"
#include "shm/ring_file.h"

#define IVSHMEM_POLL_MS_DEFAULT 10
#define IVSHMEM_POLL_MS_MAX     1000
#define IVSHMEM_REGION_DEFAULT  (4u << 20)

struct ivshmem_plain {
    struct ivmon_ring_file rf;
    int timer_fd;
    int poll_ms;
    int first_pass; /* drain what is already there at once */
};

static int parse_options(ivmon *m, ivmon_uri *u, int *ret_poll_ms, struct ivmon_ring_file_params *p)
{
    uint64_t poll_ms = IVSHMEM_POLL_MS_DEFAULT, data_size = 0, region = IVSHMEM_REGION_DEFAULT;
    int lossless = 0, create = 0;

    if (ivmon__uri_get_size(u, "poll_ms", &poll_ms) < 0 || poll_ms < 1 ||
        poll_ms > IVSHMEM_POLL_MS_MAX)
        return ivmon__error(m, -EINVAL, "ivshmem: poll_ms= must be 1..%d milliseconds",
                            IVSHMEM_POLL_MS_MAX);
    if (ivmon__uri_get_size(u, "size", &data_size) < 0 ||
        (data_size && (data_size < IVMON_RING_MIN_DATA || data_size > IVMON_RING_MAX_DATA ||
                       (data_size & (data_size - 1)))))
        return ivmon__error(m, -EINVAL, "ivshmem: size= must be a power of two from 64K to 1G");
    if (ivmon__uri_get_size(u, "region", &region) < 0 ||
        region < IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA ||
        region > IVMON_RING_HDR_SIZE + (uint64_t)IVMON_RING_MAX_DATA || (region & (region - 1)))
        return ivmon__error(m, -EINVAL,
                            "ivshmem: region= must be a power of two from 128K to 1G (QEMU maps "
                            "it as a PCI BAR)");
    if (ivmon__uri_get_bool(u, "lossless", &lossless) < 0 ||
        ivmon__uri_get_bool(u, "create", &create) < 0)
        return ivmon__error(m, -EINVAL, "ivshmem: lossless= and create= take 0 or 1");
    *ret_poll_ms = (int)poll_ms;
    *p = (struct ivmon_ring_file_params){
        .scheme = "ivshmem",
        .create = create,
        .create_size = create ? region : 0,
        .data_size = data_size,
        .ring_flags = lossless ? IVMON_RING_LOSSLESS : 0,
    };
    return 0;
}

static int ivshmem_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct ivshmem_plain *b = priv;
    struct ivmon_ring_file_params params;
    char path[PATH_MAX];

    ivmon_ring_file_init(&b->rf);
    b->timer_fd = -1;
    int r = parse_options(m, u, &b->poll_ms, &params);
    if (r < 0)
        return r;
    r = ivmon_ring_file_path(m, "ivshmem", u->target, path, sizeof path);
    if (r < 0)
        return r;
    r = ivmon_ring_file_open(m, &b->rf, path, &params);
    if (r == -ENODEV)
        return ivmon__error(m, r,
                            "ivshmem: %s does not exist: start the VM first (QEMU creates it for "
                            "-object memory-backend-file,mem-path=%s,share=on) or add create=1",
                            path, path);
    if (r < 0)
        return r;
    /* No doorbell here: keep the producer from asking for one (a previous consumer of another
     * kind may have left the flag set). */
    ivmon_ring_consumer_awake(&b->rf.ring);

    b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (b->timer_fd < 0)
        return ivmon__error(m, -errno, "ivshmem: timerfd: %s", strerror(errno));
    struct timespec period = {b->poll_ms / 1000, (long)(b->poll_ms % 1000) * 1000000L};
    struct itimerspec its = {.it_interval = period, .it_value = period};
    if (timerfd_settime(b->timer_fd, 0, &its, NULL) < 0)
        return ivmon__error(m, -errno, "ivshmem: timerfd_settime: %s", strerror(errno));
    b->first_pass = 1;
    return 0;
}

static void ivshmem_close(ivmon *m, void *priv)
{
    struct ivshmem_plain *b = priv;
    if (b->timer_fd >= 0)
        close(b->timer_fd);
    b->timer_fd = -1;
    ivmon_ring_file_close(&b->rf);
}

static int ivshmem_get_fd(const void *priv)
{
    return ((const struct ivshmem_plain *)priv)->timer_fd;
}

static int ivshmem_get_timeout(const void *priv)
{
    const struct ivshmem_plain *b = priv;
    return b->first_pass ? 0 : b->poll_ms;
}

static int ivshmem_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct ivshmem_plain *b = priv;
    uint64_t ticks;

    /* Timer expirations are not doorbells: they are not counted as wakeups. */
    if (read(b->timer_fd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
        return ivmon__error(m, -errno, "ivshmem: timerfd read: %s", strerror(errno));
    b->first_pass = 0;
    int r = ivmon_ring_file_check(m, &b->rf);
    if (r < 0)
        return r;
    return ivmon__ring_drain(m, &b->rf.ring, budget, ret_more);
}

static const char *const ivshmem_options[] = {"poll_ms", "size",   "lossless",
                                              "create",  "region", NULL};

const struct ivmon_backend_ops ivmon__backend_ivshmem = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "QEMU ivshmem-plain (polled)",
    .scheme = "ivshmem",
    .priv_size = sizeof(struct ivshmem_plain),
    .options = ivshmem_options,
    .open = ivshmem_open,
    .close = ivshmem_close,
    .get_fd = ivshmem_get_fd,
    .get_timeout = ivshmem_get_timeout,
    .process = ivshmem_process,
};
