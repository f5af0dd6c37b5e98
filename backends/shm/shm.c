/* SPDX-License-Identifier: MIT */
/*
 * shm: the local shared-memory transport. The ring lives in a file (shm:NAME is /dev/shm/NAME,
 * shm:/absolute/path any file), so any process that maps the same file can produce: an agent on
 * the host, a container, or QEMU's ivshmem-plain backed by the same file.
 *
 * Doorbell: the consumer listens on a UNIX socket at PATH.sock and hands each producer that
 * connects an eventfd (SCM_RIGHTS) together with its generation number; the producer writes the
 * eventfd when the ring asks for a wakeup. The caller polls one epoll fd holding the eventfd,
 * the listening socket and the producers' connections.
 *
 * Restarts: the ring file outlives both sides. File locks (OFD, so they belong to the open file
 * and vanish with the process) serialise formatting (byte 0) and admit one consumer (byte 2);
 * the producer takes byte 1. A new consumer bumps consumer_gen so producers re-rendezvous.
 * Opening, locking, mapping and formatting the file is ring_file.c's, shared with ivshmem:.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "shm/ring_file.h"
#include "shm/shm_doorbell.h"

#define SHM_DEFAULT_DATA       (4u << 20)
#define SHM_MAX_PRODUCER_CONNS 4
#define SHM_PERIODIC_MS        1000

struct shm_backend {
    struct ivmon_ring_file rf; /* the ring file: open, locks, map, format, attach */
    int epoll_fd, event_fd, listen_fd;
    int conns[SHM_MAX_PRODUCER_CONNS];
    unsigned next_evict; /* when every slot is taken, the one to give up next (oldest) */
    int first_pass;      /* drain what is already there before the first sleep */
    int own_socket;      /* we bound sock_path and unlink it on close */
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static int resolve_path(ivmon *m, struct shm_backend *b, const char *target, char *path, size_t cap)
{
    int r = ivmon_ring_file_path(m, "shm", target, path, cap);
    if (r < 0)
        return r;
    int n = snprintf(b->sock_path, sizeof b->sock_path, "%s%s", path, IVMON_SHM_SOCKET_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof b->sock_path)
        return ivmon__error(m, -EINVAL,
                            "shm: path too long for its doorbell socket (%zu bytes "
                            "at most)",
                            sizeof b->sock_path - 1 - strlen(IVMON_SHM_SOCKET_SUFFIX));
    return 0;
}

static int epoll_add(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int listen_doorbell(ivmon *m, struct shm_backend *b)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, b->sock_path, strlen(b->sock_path) + 1);

    b->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (b->listen_fd < 0)
        return ivmon__error(m, -errno, "shm: socket: %s", strerror(errno));
    /* We hold the consumer lock, so a socket file left here belongs to a dead consumer. */
    unlink(b->sock_path);
    if (bind(b->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(b->listen_fd, 8) < 0)
        return ivmon__error(m, -errno, "shm: listen on %s: %s", b->sock_path, strerror(errno));
    b->own_socket = 1;
    b->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->event_fd < 0)
        return ivmon__error(m, -errno, "shm: eventfd: %s", strerror(errno));
    b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epoll_fd < 0)
        return ivmon__error(m, -errno, "shm: epoll: %s", strerror(errno));
    int r = epoll_add(b->epoll_fd, b->event_fd);
    if (r == 0)
        r = epoll_add(b->epoll_fd, b->listen_fd);
    if (r < 0)
        return ivmon__error(m, r, "shm: epoll_ctl: %s", strerror(-r));
    return 0;
}

static int shm_open_backend(ivmon *m, void *priv, ivmon_uri *u)
{
    struct shm_backend *b = priv;
    uint64_t data_size = SHM_DEFAULT_DATA;
    int lossless = 0, create = 1, r;
    char path[PATH_MAX];

    ivmon_ring_file_init(&b->rf);
    b->epoll_fd = b->event_fd = b->listen_fd = -1;
    for (int i = 0; i < SHM_MAX_PRODUCER_CONNS; i++)
        b->conns[i] = -1;
    if (ivmon__uri_get_size(u, "size", &data_size) < 0 || data_size < IVMON_RING_MIN_DATA ||
        data_size > IVMON_RING_MAX_DATA || (data_size & (data_size - 1)))
        return ivmon__error(m, -EINVAL, "shm: size= must be a power of two from 64K to 1G");
    if (ivmon__uri_get_bool(u, "lossless", &lossless) < 0 ||
        ivmon__uri_get_bool(u, "create", &create) < 0)
        return ivmon__error(m, -EINVAL, "shm: lossless= and create= take 0 or 1");
    r = resolve_path(m, b, u->target, path, sizeof path);
    if (r < 0)
        return r;
    /* A new (or empty) file gets exactly a header and size= bytes of data; an existing ring keeps
     * its own size. */
    struct ivmon_ring_file_params params = {
        .scheme = "shm",
        .create = create,
        .create_size = IVMON_RING_HDR_SIZE + data_size,
        .data_size = 0,
        .ring_flags = lossless ? IVMON_RING_LOSSLESS : 0,
    };
    r = ivmon_ring_file_open(m, &b->rf, path, &params);
    if (r < 0)
        return r;
    r = listen_doorbell(m, b);
    if (r < 0)
        return r;
    b->first_pass = 1;
    return 0;
}

static void shm_close(ivmon *m, void *priv)
{
    struct shm_backend *b = priv;
    for (int i = 0; i < SHM_MAX_PRODUCER_CONNS; i++)
        if (b->conns[i] >= 0)
            close(b->conns[i]);
    if (b->listen_fd >= 0)
        close(b->listen_fd);
    if (b->own_socket)
        unlink(b->sock_path);
    if (b->event_fd >= 0)
        close(b->event_fd);
    if (b->epoll_fd >= 0)
        close(b->epoll_fd);
    ivmon_ring_file_close(&b->rf);
}

static int shm_get_fd(const void *priv)
{
    return ((const struct shm_backend *)priv)->epoll_fd;
}

static int shm_get_timeout(const void *priv)
{
    return ((const struct shm_backend *)priv)->first_pass ? 0 : SHM_PERIODIC_MS;
}

/* A producer connected: give it the doorbell. The connection stays open only so that we notice
 * when the producer goes away; a producer has nothing to say on it. */
static void accept_producers(ivmon *m, struct shm_backend *b)
{
    for (;;) {
        int c = accept4(b->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        if (ivmon_shm_send_doorbell(c, b->rf.generation, b->event_fd) < 0) {
            ivmon__log(m, IVMON_LOG_WARNING, "shm: could not hand a producer its doorbell");
            close(c);
            continue;
        }
        /* Bounded: with every slot taken, the oldest connection goes (slots are taken in turn
         * once full, so next_evict always names the oldest). A producer that reconnects in a
         * loop only evicts connections, never grows memory. */
        int slot = -1;
        for (int i = 0; i < SHM_MAX_PRODUCER_CONNS && slot < 0; i++)
            if (b->conns[i] < 0)
                slot = i;
        if (slot < 0) {
            slot = (int)(b->next_evict++ % SHM_MAX_PRODUCER_CONNS);
            close(b->conns[slot]);
        }
        b->conns[slot] = c;
        if (epoll_add(b->epoll_fd, c) < 0) {
            close(c);
            b->conns[slot] = -1;
        }
    }
}

static void drop_connection(struct shm_backend *b, int fd)
{
    for (int i = 0; i < SHM_MAX_PRODUCER_CONNS; i++)
        if (b->conns[i] == fd) {
            close(fd); /* also removes it from the epoll set */
            b->conns[i] = -1;
        }
}

static void take_wakeups(ivmon *m, struct shm_backend *b)
{
    struct epoll_event evs[8];
    int n = epoll_wait(b->epoll_fd, evs, 8, 0);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == b->event_fd) {
            uint64_t count;
            if (read(b->event_fd, &count, sizeof count) == sizeof count)
                ivmon__stat_add(m, IVMON_STAT_WAKEUPS, 1);
        } else if (fd == b->listen_fd) {
            accept_producers(m, b);
        } else {
            drop_connection(b, fd);
        }
    }
}

static int shm_process(ivmon *m, void *priv, unsigned budget, int *ret_more)
{
    struct shm_backend *b = priv;

    take_wakeups(m, b);
    b->first_pass = 0;
    int r = ivmon_ring_file_check(m, &b->rf);
    if (r < 0)
        return r;
    ivmon_ring_consumer_awake(&b->rf.ring);
    int n = ivmon__ring_drain(m, &b->rf.ring, budget, ret_more);
    if (n < 0 || *ret_more)
        return n;
    /* A producer in full flow publishes again within microseconds: waiting that long here
     * saves both sides a system call per batch (doorbell and eventfd read). Records that
     * arrive now, or that race with going to sleep, are taken on the next call, at once. */
    if (ivmon_ring_consumer_linger(&b->rf.ring, IVMON_RING_LINGER_SPINS) ||
        !ivmon_ring_consumer_prepare_sleep(&b->rf.ring))
        *ret_more = 1;
    return n;
}

static const char *const shm_options[] = {"size", "lossless", "create", NULL};

const struct ivmon_backend_ops ivmon__backend_shm = {
    .abi = IVMON_BACKEND_ABI,
    .size = sizeof(struct ivmon_backend_ops),
    .name = "local shared memory",
    .scheme = "shm",
    .priv_size = sizeof(struct shm_backend),
    .options = shm_options,
    .open = shm_open_backend,
    .close = shm_close,
    .get_fd = shm_get_fd,
    .get_timeout = shm_get_timeout,
    .process = shm_process,
};
