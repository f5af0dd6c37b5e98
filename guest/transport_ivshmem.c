/* SPDX-License-Identifier: MIT */
/*
 * ivshmem: backend, producer side: the agent inside a QEMU guest with an ivshmem PCI device
 * (vendor 1af4, device 1110; ivshmem-plain or ivshmem-doorbell). The host maps the same memory
 * through the file behind QEMU's memory-backend-file (host URI ivshmem:NAME, or ivshmem+doorbell:
 * with the library serving the ivshmem protocol).
 *
 *  1. Device: the PCI address from the URI, or the first 1af4:1110 device in
 *     /sys/bus/pci/devices (in name order). Write "1" to its `enable`.
 *  2. Region: mmap `resource2` (BAR2, the shared memory; its size is the BAR's). An OFD write lock
 *     on byte 1 of that sysfs file keeps a second producer in the same guest out (-EBUSY).
 *  3. Format: the host formats the ring, never the guest (the guest cannot take the host's file
 *     locks, so it could not format safely). While the magic is 0 the backend polls every 50 ms,
 *     says so once on stderr, and gives up after wait= seconds (-ETIMEDOUT) or when SIGINT or
 *     SIGTERM is pending (-EINTR; the agent blocks them and reads a signalfd, so they would
 *     otherwise wait unseen).
 *  4. Doorbell: if `resource0` (BAR0, the registers) exists and is 256 bytes and IVPosition
 *     (offset 8) holds a guest peer id, 1..65535 (ivshmem-doorbell connected to the library's
 *     server; ivshmem-plain reads 0, an unconnected device -1), a doorbell writes (0 << 16) | 0
 *     to Doorbell (offset 12): vector 0 of peer 0, the host library, which serves the ivshmem
 *     protocol as peer 0 and hands guests ids from 1 (docs/PROTOCOL.md, "ivshmem"). With
 *     ivshmem-plain there is no doorbell: the host polls, and keeps the ring's cons_waiting at 0,
 *     so this backend is not asked to ring; if it is, it answers -ENOTCONN (a doorbell miss).
 *
 * The message in step 3 is the one thing this transport prints itself: an agent that waits for
 * a host that is not there must say why it is not ready.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "identity.h"
#include "transport_backend.h"

#define SYSFS_PCI      "/sys/bus/pci/devices"
#define IVSHMEM_VENDOR 0x1af4u
#define IVSHMEM_DEVICE 0x1110u
#define REGS_SIZE      256u /* BAR0 of ivshmem: IntrMask, IntrStatus, IVPosition, Doorbell */
#define REG_IVPOSITION 2    /* 32-bit register index: offset 8 */
#define REG_DOORBELL   3    /* offset 12 */
#define HOST_PEER_ID   0u   /* the host library is peer 0 */
#define HOST_VECTOR    0u
#define FORMAT_POLL_NS 50000000u                /* 50 ms */
#define DEV_PATH_MAX   (sizeof SYSFS_PCI + 256) /* + a d_name */

struct ivshmem_state {
    int fd; /* resource2: the mapping's file; holds the producer lock */
    void *base;
    size_t region;
    void *regs_map; /* BAR0 page(s) when the device has a doorbell, else NULL */
    size_t regs_map_len;
    volatile uint32_t *regs; /* the registers inside regs_map */
    uint32_t ivposition;
    char dev[DEV_PATH_MAX]; /* /sys/bus/pci/devices/DDDD:BB:DD.F */
};

/* Reads a sysfs file holding one hexadecimal number ("0x1af4\n"). */
static int read_hex(const char *dir, const char *name, unsigned long long *ret)
{
    char path[DEV_PATH_MAX + 32], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -EIO;
    buf[n] = '\0';
    char *end;
    errno = 0;
    *ret = strtoull(buf, &end, 16);
    return errno || end == buf ? -EIO : 0;
}

static int is_ivshmem(const char *dev)
{
    unsigned long long v = 0, d = 0;
    return read_hex(dev, "vendor", &v) == 0 && read_hex(dev, "device", &d) == 0 &&
           v == IVSHMEM_VENDOR && d == IVSHMEM_DEVICE;
}

static int find_device(struct ivshmem_state *s, const struct ivmon_guest_uri *u, char *err,
                       size_t errlen)
{
    if (u->pci[0]) {
        snprintf(s->dev, sizeof s->dev, SYSFS_PCI "/%s", u->pci);
        if (access(s->dev, F_OK) < 0) {
            snprintf(err, errlen, "ivshmem: no PCI device %s (%s)", u->pci, SYSFS_PCI);
            return -ENODEV;
        }
        if (!is_ivshmem(s->dev)) {
            snprintf(err, errlen, "ivshmem: PCI device %s is not an ivshmem device (1af4:1110)",
                     u->pci);
            return -ENODEV;
        }
        return 0;
    }
    struct dirent **names;
    int n = scandir(SYSFS_PCI, &names, NULL, alphasort);
    if (n < 0) {
        int e = errno;
        snprintf(err, errlen, "ivshmem: %s: %s (is sysfs mounted?)", SYSFS_PCI, strerror(e));
        return -e;
    }
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (!found && names[i]->d_name[0] != '.' &&
            strlen(names[i]->d_name) < IVMON_GUEST_PCI_ADDR_MAX) {
            snprintf(s->dev, sizeof s->dev, SYSFS_PCI "/%s", names[i]->d_name);
            found = is_ivshmem(s->dev);
        }
        free(names[i]);
    }
    free(names);
    if (!found) {
        snprintf(err, errlen,
                 "ivshmem: no ivshmem PCI device (1af4:1110) in this guest: give the VM "
                 "-device ivshmem-plain or ivshmem-doorbell (or a libvirt <shmem>)");
        return -ENODEV;
    }
    return 0;
}

/* The device's BAR addresses are only reachable once it is enabled. Writing "1" again to an
 * enabled device is harmless, so no state is checked. */
static void enable_device(const struct ivshmem_state *s)
{
    char path[DEV_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/enable", s->dev);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* mmap below reports what matters */
    if (write(fd, "1", 1) < 0) {
        /* same: a device that cannot be enabled fails to map */
    }
    close(fd);
}

static int map_bar2(struct ivshmem_state *s, char *err, size_t errlen)
{
    char path[DEV_PATH_MAX + 16];
    struct stat st;

    snprintf(path, sizeof path, "%s/resource2", s->dev);
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "ivshmem: open %s: %s", path, strerror(e));
        return -e;
    }
    if (fstat(s->fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "ivshmem: stat %s: %s", path, strerror(e));
        return -e;
    }
    if ((uint64_t)st.st_size < IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA ||
        (uint64_t)st.st_size > SIZE_MAX) {
        snprintf(err, errlen, "ivshmem: %s: BAR2 has %lld bytes, too small for a ring", path,
                 (long long)st.st_size);
        return -EPROTO;
    }
    /* One producer per ring: a second agent in the same guest must not interleave records.
     * sysfs files take OFD locks like any other; if a kernel ever refuses, go on without. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
    if (fcntl(s->fd, F_OFD_SETLK, &fl) < 0 && (errno == EAGAIN || errno == EACCES)) {
        snprintf(err, errlen, "ivshmem: %s: another producer is attached in this guest", s->dev);
        return -EBUSY;
    }
    s->region = (size_t)st.st_size;
    s->base = mmap(NULL, s->region, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->base == MAP_FAILED) {
        int e = errno;
        s->base = NULL;
        snprintf(err, errlen, "ivshmem: mmap %s (%zu bytes): %s", path, s->region, strerror(e));
        return -e;
    }
    return 0;
}

/* Maps BAR0 if the device has a usable doorbell; leaves s->regs NULL otherwise. */
static void map_doorbell(struct ivshmem_state *s)
{
    char path[DEV_PATH_MAX + 16], line[128];
    struct stat st;
    unsigned long long start = 0;

    snprintf(path, sizeof path, "%s/resource0", s->dev);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0 || st.st_size != REGS_SIZE) {
        close(fd);
        return;
    }
    /* A 256-byte BAR need not start on a page boundary: mmap gives the page that holds it, so
     * the registers sit at the BAR address's offset in that page (the "resource" file's first
     * line is "start end flags"). */
    snprintf(path, sizeof path, "%s/resource", s->dev);
    FILE *f = fopen(path, "re");
    if (f) {
        if (fgets(line, sizeof line, f))
            start = strtoull(line, NULL, 16);
        fclose(f);
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t off = (size_t)(start & (page - 1));
    size_t len = (off + REGS_SIZE + page - 1) & ~(page - 1);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return;
    volatile uint32_t *regs = (volatile uint32_t *)((uint8_t *)m + off);
    /* ivshmem-plain reads 0 here (QEMU 7.2); a doorbell device reads the id its server gave it,
     * and the library's server keeps 0 for itself (the host), so guests get 1..65535. */
    uint32_t pos = regs[REG_IVPOSITION];
    if (pos == 0 || pos > 0xffffu) {
        munmap(m, len);
        return;
    }
    s->regs_map = m;
    s->regs_map_len = len;
    s->regs = regs;
    s->ivposition = pos;
}

/* SIGINT or SIGTERM pending: the caller blocks them (the agent reads a signalfd) and wants to
 * stop. */
static int stop_requested(void)
{
    sigset_t set;
    return sigpending(&set) == 0 &&
           (sigismember(&set, SIGINT) == 1 || sigismember(&set, SIGTERM) == 1);
}

static int wait_for_format(struct ivshmem_state *s, const struct ivmon_guest_uri *u,
                           struct ivmon_ring *ring, char *err, size_t errlen)
{
    const char *why = "invalid ring";
    uint64_t start = ivmon_guest_monotonic_ns();
    int said = 0;

    for (;;) {
        int r = ivmon_ring_attach(ring, s->base, s->region, &why);
        if (r == 0) {
            if (said)
                fprintf(stderr, "ivshmem %s: the host formatted the ring; attached\n",
                        s->dev + sizeof SYSFS_PCI);
            return 0;
        }
        if (r != -EAGAIN) {
            snprintf(err, errlen, "ivshmem %s: %s", s->dev + sizeof SYSFS_PCI, why);
            return r;
        }
        uint64_t waited = ivmon_guest_monotonic_ns() - start;
        if (u->wait_s >= 0 && waited >= (uint64_t)u->wait_s * 1000000000u) {
            snprintf(err, errlen,
                     "ivshmem %s: the host did not format the ring within %d s (is a monitor "
                     "attached to the file behind the device?)",
                     s->dev + sizeof SYSFS_PCI, u->wait_s);
            return -ETIMEDOUT;
        }
        if (stop_requested()) {
            snprintf(err, errlen, "ivshmem %s: stopped while waiting for the host",
                     s->dev + sizeof SYSFS_PCI);
            return -EINTR;
        }
        if (!said) {
            said = 1;
            fprintf(stderr,
                    "ivshmem %s: waiting for the host to format the ring (%zu bytes; start the "
                    "monitor on the file behind the device, e.g. ivmon-watch ivshmem:NAME)\n",
                    s->dev + sizeof SYSFS_PCI, s->region);
        }
        struct timespec ts = {0, FORMAT_POLL_NS};
        nanosleep(&ts, NULL);
    }
}

static int ivshmem_open_region(void *priv, const struct ivmon_guest_uri *u, int lossless,
                               struct ivmon_ring *ret_ring, char *err, size_t errlen)
{
    struct ivshmem_state *s = priv;
    (void)lossless; /* the host's format decides the ring's flag; the producer's own choice is
                     * applied by transport.c */

    s->fd = -1;
    int r = find_device(s, u, err, errlen);
    if (r < 0)
        return r;
    enable_device(s);
    r = map_bar2(s, err, errlen);
    if (r < 0)
        return r;
    map_doorbell(s);
    return wait_for_format(s, u, ret_ring, err, errlen);
}

static int ivshmem_doorbell(void *priv, const struct ivmon_ring_hdr *hdr)
{
    struct ivshmem_state *s = priv;
    (void)hdr;
    if (!s->regs)
        return -ENOTCONN; /* ivshmem-plain: the host polls */
    /* The records were published with release order and a full fence (ivmon_producer_emit);
     * this fence keeps the compiler from sinking those stores below the MMIO write. */
    atomic_thread_fence(memory_order_seq_cst);
    s->regs[REG_DOORBELL] = (HOST_PEER_ID << 16) | HOST_VECTOR;
    return 0;
}

static void ivshmem_close(void *priv)
{
    struct ivshmem_state *s = priv;
    if (s->regs_map)
        munmap(s->regs_map, s->regs_map_len);
    s->regs_map = NULL;
    s->regs = NULL;
    if (s->base)
        munmap(s->base, s->region);
    s->base = NULL;
    if (s->fd >= 0)
        close(s->fd); /* drops the producer lock */
    s->fd = -1;
}

const struct ivmon_guest_backend ivmon_guest_backend_ivshmem = {
    .abi = IVMON_GUEST_BACKEND_ABI,
    .size = sizeof(struct ivmon_guest_backend),
    .name = "ivshmem",
    .uri_kind = IVMON_GUEST_URI_IVSHMEM,
    .priv_size = sizeof(struct ivshmem_state),
    .open = ivshmem_open_region,
    .doorbell = ivshmem_doorbell,
    .close = ivshmem_close,
};
