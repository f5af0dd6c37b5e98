/* SPDX-License-Identifier: MIT */
/*
 * ivshmem+doorbell:/path/to/server.sock -- a QEMU/KVM guest with an ivshmem-doorbell device:
 *
 *   -chardev socket,path=/path/to/server.sock,id=ivsh
 *   -device ivshmem-doorbell,chardev=ivsh,vectors=1
 *
 * The library is the ivshmem server (doorbell_server.c) and also its peer 0: it creates the ring
 * file (shm/ring_file.c, shared with shm: and ivshmem:), listens on the socket, hands QEMU the ring
 * and its own eventfd, and the guest agent rings BAR0's Doorbell with (0 << 16 | 0) when the ring's
 * consumer asked to be woken. The caller polls one epoll fd holding that eventfd, the listening
 * socket and the client connections; records are drained exactly as for shm:.
 *
 * Restarts. QEMU takes the server's messages once, while it creates the device, and cannot be
 * served again: without the chardev's reconnect= option a lost server is never reconnected;
 * with it, QEMU 7.2 spins in the device's setup at start-up, and even a hot-plugged device that
 * gets past that corrupts its heap when a new server re-announces peer 0 (measured; see
 * README.md). So a restarted monitor gets no doorbell from a VM that is already running. It finds
 * the ring again by name, drains what the guest wrote meanwhile (what did not fit was counted by
 * the agent and arrives as a loss report), and polls the ring until a QEMU connects: every 1 ms
 * while records keep coming, every 20 ms when idle. While polling it keeps cons_waiting at 0,
 * so the guest does not pay for doorbells nobody hears.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ivshmem/doorbell_server.h"
#include "shm/ring_file.h"

#define IVDB_PERIODIC_MS  1000 /* a doorbell is connected: a check now and then all the same */
#define IVDB_POLL_BUSY_MS 1    /* no doorbell, the last look found records */
#define IVDB_POLL_IDLE_MS 20   /* no doorbell, the ring was empty */
/* A doorbell missing this long after the producer took the flag went elsewhere. Far above any
 * delay between the flag and the doorbell write, even of a descheduled vCPU on a loaded host:
 * a wrong verdict means polling until another client connects. */
#define IVDB_DEAF_AFTER_MS 500
#define IVDB_EPOLL_BATCH   16
#define IVDB_SHM_DIR       "/dev/shm/"
#define IVDB_STEM_MAX      48
/* The region is a PCI BAR, so a power of two; the ring's data area, also a power of two, gets
 * what follows the 4 KiB header: half of it. */
#define IVDB_REGION_MIN     ((uint64_t)2 * IVMON_RING_MIN_DATA)
#define IVDB_REGION_MAX     (1u << 30)
#define IVDB_REGION_DEFAULT (4u << 20)

struct ivdb_backend {
    int epoll_fd, host_efd;
    int qemu_fd; /* the ring file, opened again for QEMU: see open_ring */
    struct ivmon_ring_file rf;
    struct ivmon_ivdb_server server;
    int first_pass;          /* drain what is already there before the first sleep */
    int busy;                /* polling: the last look found records */
    int slept;               /* the last call left cons_waiting set: the producer will ring */
    int suspect;             /* the producer took cons_waiting (so it rang), yet no doorbell came */
    uint64_t suspect_since;  /* since when (CLOCK_MONOTONIC ms) */
    int deaf;                /* doorbells do not reach us: poll until another client connects */
    uint64_t deaf_connected; /* server.connected when deaf was set */
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* The default ring file of a socket: "ivmon-db-" + the socket's file name without ".sock" +
 * "-" + a hash of the whole path, in /dev/shm. Stable, so a restarted monitor finds the same
 * file; the hash keeps two VMs whose sockets share a file name apart. */
static void default_shm_path(char *out, size_t out_size, const char *sock)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (const char *p = sock; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    const char *base = strrchr(sock, '/');
    base = base ? base + 1 : sock;
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".sock"))
        len -= 5;
    char stem[IVDB_STEM_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < len && n < IVDB_STEM_MAX; i++) {
        char c = base[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
        if (!plain)
            c = '_';
        stem[n++] = c;
    }
    stem[n] = '\0';
    snprintf(out, out_size, IVDB_SHM_DIR "ivmon-db-%s-%016llx", stem, (unsigned long long)h);
}

/* The socket path, and the ring file's path into shm_path (cap bytes). */
static int resolve_paths(ivmon *m, struct ivdb_backend *b, const char *target, const char *shm,
                         char *shm_path, size_t cap)
{
    size_t len = strlen(target);
    if (target[0] != '/')
        return ivmon__error(m, -EINVAL,
                            "ivshmem+doorbell: the target must be the absolute path of the "
                            "server socket");
    if (len >= sizeof b->sock_path)
        return ivmon__error(m, -EINVAL,
                            "ivshmem+doorbell: socket path too long (%zu bytes at most)",
                            sizeof b->sock_path - 1);
    memcpy(b->sock_path, target, len + 1);
    if (shm)
        return ivmon_ring_file_path(m, "ivshmem+doorbell", shm, shm_path, cap);
    default_shm_path(shm_path, cap, b->sock_path);
    return 0;
}

/* The ring file is handed to QEMU, so it must not be someone else's: a file planted under the
 * (predictable) name in world-writable /dev/shm, or a symlink there, would let its owner read and
 * rewrite every event. And QEMU maps the whole file as BAR2 and refuses anything but a power of
 * two, so an existing file of another size (a shm: ring, say) is refused before it is touched. */
static int check_existing(ivmon *m, const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0
                               : ivmon__error(m, -errno, "ivshmem+doorbell: stat %s: %s", path,
                                              strerror(errno));
    if (S_ISLNK(st.st_mode))
        return ivmon__error(m, -EPERM, "ivshmem+doorbell: %s is a symbolic link", path);
    uint64_t size = (uint64_t)st.st_size;
    if (S_ISREG(st.st_mode) && size && (size < IVDB_REGION_MIN || (size & (size - 1))))
        return ivmon__error(m, -EPROTO,
                            "ivshmem+doorbell: %s has %llu bytes: QEMU needs a power of two "
                            "(remove the file, or choose another shm=)",
                            path, (unsigned long long)size);
    return 0;
}

static int open_ring(ivmon *m, struct ivdb_backend *b, const char *path, uint64_t size,
                     int lossless)
{
    const struct ivmon_ring_file_params params = {
        .scheme = "ivshmem+doorbell",
        .create = 1,
        .create_size = size,
        .data_size = 0, /* the largest that fits: half the region */
        .ring_flags = lossless ? IVMON_RING_LOSSLESS : 0,
    };
    int r = check_existing(m, path);
    if (r == 0)
        r = ivmon_ring_file_open(m, &b->rf, path, &params);
    if (r < 0)
        return r;
    /* The file we opened, whatever happened since the check above, must be ours. */
    struct stat st;
    if (fstat(b->rf.fd, &st) < 0)
        return ivmon__error(m, -errno, "ivshmem+doorbell: stat %s: %s", path, strerror(errno));
    if (st.st_uid != geteuid())
        return ivmon__error(m, -EPERM,
                            "ivshmem+doorbell: %s belongs to uid %u, not to this process: remove "
                            "it or choose another shm=",
                            path, (unsigned)st.st_uid);
    size_t have = b->rf.map_size;
    if (have < IVDB_REGION_MIN || (have & (have - 1)))
        return ivmon__error(m, -EPROTO,
                            "ivshmem+doorbell: %s has %zu bytes: QEMU needs a power "
                            "of two",
                            path, have);
    /* QEMU keeps the fd it is sent for as long as it runs. OFD locks belong to the open file
     * description, so sending our own fd would leave our consumer lock with QEMU, and a restarted
     * monitor would find the ring "busy" for the rest of the VM's life. QEMU gets a description
     * of its own, of the same file (through /proc, not the path, which may have changed). */
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", b->rf.fd);
    b->qemu_fd = open(self, O_RDWR | O_CLOEXEC);
    if (b->qemu_fd < 0)
        return ivmon__error(m, -errno, "ivshmem+doorbell: reopen %s: %s", path, strerror(errno));
    struct stat again;
    if (fstat(b->qemu_fd, &again) < 0 || again.st_ino != st.st_ino || again.st_dev != st.st_dev)
        return ivmon__error(m, -EIO, "ivshmem+doorbell: cannot reopen %s", path);
    return 0;
}

static int epoll_add_in(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int ivdb_open(ivmon *m, void *priv, ivmon_uri *u)
{
    struct ivdb_backend *b = priv;
    uint64_t size = IVDB_REGION_DEFAULT;
    int lossless = 0;
    const char *why = NULL;
    char shm_path[PATH_MAX];

    b->epoll_fd = b->host_efd = b->qemu_fd = -1;
    ivmon_ring_file_init(&b->rf);
    ivmon_ivdb_server_init(&b->server, m, -1, -1, -1);
    if (ivmon__uri_get_size(u, "size", &size) < 0 || size < IVDB_REGION_MIN ||
        size > IVDB_REGION_MAX || (size & (size - 1)))
        return ivmon__error(m, -EINVAL,
                            "ivshmem+doorbell: size= is the ivshmem region: a power of two from "
                            "128K to 1G (the ring gets half)");
    if (ivmon__uri_get_bool(u, "lossless", &lossless) < 0)
        return ivmon__error(m, -EINVAL, "ivshmem+doorbell: lossless= takes 0 or 1");
    int r = resolve_paths(m, b, u->target, ivmon__uri_get(u, "shm"), shm_path, sizeof shm_path);
    if (r < 0)
        return r;
    r = open_ring(m, b, shm_path, size, lossless);
    if (r < 0)
        return r;
    b->host_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->host_efd < 0)
        return ivmon__error(m, -errno, "ivshmem+doorbell: eventfd: %s", strerror(errno));
    b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epoll_fd < 0)
        return ivmon__error(m, -errno, "ivshmem+doorbell: epoll: %s", strerror(errno));
    r = epoll_add_in(b->epoll_fd, b->host_efd);
    if (r < 0)
        return ivmon__error(m, r, "ivshmem+doorbell: epoll_ctl: %s", strerror(-r));
    /* Listening comes after the ring exists and is ours, so a QEMU that connects at once is
     * handed a formatted ring. */
    ivmon_ivdb_server_init(&b->server, m, b->epoll_fd, b->qemu_fd, b->host_efd);
    r = ivmon_ivdb_server_listen(&b->server, b->sock_path, &why);
    if (r < 0)
        return ivmon__error(m, r, "ivshmem+doorbell: %s: %s (%s)", b->sock_path, why, strerror(-r));
    b->first_pass = 1;
    return 0;
}

static void ivdb_close(ivmon *m, void *priv)
{
    struct ivdb_backend *b = priv;
    ivmon_ivdb_server_close(&b->server);
    if (b->host_efd >= 0)
        close(b->host_efd);
    if (b->epoll_fd >= 0)
        close(b->epoll_fd);
    if (b->qemu_fd >= 0)
        close(b->qemu_fd);
    ivmon_ring_file_close(&b->rf);
}

static int ivdb_get_fd(const void *priv)
{
    return ((const struct ivdb_backend *)priv)->epoll_fd;
}

static int ivdb_get_timeout(const void *priv)
{
    const struct ivdb_backend *b = priv;
    if (b->first_pass)
        return 0;
    if (b->suspect)
        return IVDB_POLL_IDLE_MS;
    if (b->server.n_clients > 0 && !b->deaf)
        return IVDB_PERIODIC_MS;
    return b->busy ? IVDB_POLL_BUSY_MS : IVDB_POLL_IDLE_MS;
}

/* Takes what epoll reports. Returns 1 if the doorbell rang. */
static int take_events(ivmon *m, struct ivdb_backend *b)
{
    struct epoll_event evs[IVDB_EPOLL_BATCH];
    int woke = 0;
    int n = epoll_wait(b->epoll_fd, evs, IVDB_EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == b->host_efd) {
            uint64_t count;
            if (read(b->host_efd, &count, sizeof count) == sizeof count) {
                ivmon__stat_add(m, IVMON_STAT_WAKEUPS, 1);
                woke = 1;
            }
        } else if (fd == b->server.listen_fd) {
            ivmon_ivdb_server_accept(&b->server);
        } else {
            /* Not a client any more (dropped earlier in this batch): nothing to do. */
            ivmon_ivdb_server_handle(&b->server, fd);
        }
    }
    return woke;
}

/* Whether the guest's doorbell reaches us. Connected clients are no proof: the VM producing into
 * the ring may be one whose QEMU was served by an earlier monitor (it never reconnects) while
 * some other client is connected to us. A producer that takes cons_waiting rings, but the
 * doorbell may be behind the flag by more than one look (the caller may call ivmon_process
 * twice in a row, and a vCPU can be descheduled between the two writes). So a missing doorbell
 * only starts a suspicion, during which the ring is looked at every IVDB_POLL_IDLE_MS; a doorbell
 * clears it; IVDB_DEAF_AFTER_MS without one means it went elsewhere, and only polling will do
 * until a new client connects. */
static void check_doorbell(ivmon *m, struct ivdb_backend *b, int woke)
{
    if (b->deaf && b->server.connected != b->deaf_connected)
        b->deaf = 0; /* a new client: perhaps the VM's QEMU; trust the doorbell again */
    if (woke) {
        b->suspect = 0;
    } else if (b->suspect) {
        if (ivmon__monotonic_ms() - b->suspect_since >= IVDB_DEAF_AFTER_MS) {
            b->suspect = 0;
            b->deaf = 1;
            b->deaf_connected = b->server.connected;
            ivmon__log(m, IVMON_LOG_WARNING,
                       "ivshmem+doorbell: the guest's doorbell does not reach this monitor "
                       "(its QEMU was served by an earlier one?): polling the ring");
        }
    } else if (b->slept && !atomic_load_explicit((_Atomic uint32_t *)&b->rf.ring.hdr->cons_waiting,
                                                 memory_order_relaxed)) {
        b->suspect = 1;
        b->suspect_since = ivmon__monotonic_ms();
    }
    b->slept = 0;
}

static int ivdb_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct ivdb_backend *b = priv;

    int woke = take_events(m, b);
    b->first_pass = 0;
    int r = ivmon_ring_file_check(m, &b->rf);
    if (r < 0)
        return r;
    check_doorbell(m, b, woke);
    struct ivmon_ring *ring = &b->rf.ring;
    ivmon_ring_consumer_awake(ring);
    int n = ivmon__ring_drain(m, ring, budget, ret_more);
    if (n < 0 || *ret_more)
        return n;
    /* As for shm:: a producer in full flow publishes again within microseconds, and waiting that
     * long saves both sides a doorbell and a wakeup per batch. */
    if (ivmon_ring_consumer_linger(ring, IVMON_RING_LINGER_SPINS)) {
        *ret_more = 1;
        return n;
    }
    if (b->server.n_clients == 0 || b->deaf) {
        /* Nobody can ring: stay "awake" (cons_waiting 0) and look again after the timeout. */
        b->busy = n > 0;
        return n;
    }
    b->busy = 0;
    if (ivmon_ring_consumer_prepare_sleep(ring))
        b->slept = 1;
    else
        *ret_more = 1;
    return n;
}

static const char *const ivdb_options[] = {"shm", "size", "lossless", NULL};

const struct ivmon_backend_ops ivmon__backend_ivshmem_doorbell = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "QEMU ivshmem-doorbell (the library serves the ivshmem protocol)",
    .scheme = "ivshmem+doorbell",
    .priv_size = sizeof(struct ivdb_backend),
    .options = ivdb_options,
    .open = ivdb_open,
    .close = ivdb_close,
    .get_fd = ivdb_get_fd,
    .get_timeout = ivdb_get_timeout,
    .process = ivdb_process,
};
