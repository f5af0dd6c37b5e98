/* SPDX-License-Identifier: MIT */
/*
 * shm: backend, producer side. The region is a file (usually on /dev/shm); the consumer is
 * woken through an eventfd it hands out over a UNIX socket next to the file. The host library
 * implements the mirror image, so the steps below are the protocol:
 *
 *  1. open(path, O_RDWR|O_CREAT, 0600). Under an OFD write lock on byte 0 (F_OFD_SETLKW): a file
 *     of size 0 is sized to 4096 + ring size and formatted; otherwise the existing size is mapped
 *     and attached. The lock is released.
 *  2. An OFD write lock on byte 1 (F_OFD_SETLK, not waiting) is held for the producer's life:
 *     a second producer fails with "another producer is attached".
 *  3. Doorbell: the consumer listens on path + ".sock" (SOCK_STREAM). On accept it sends 8 bytes,
 *     the little-endian consumer generation, with an eventfd attached (SCM_RIGHTS). The producer
 *     writes the uint64 1 to that eventfd. It connects lazily, only when a doorbell is wanted and
 *     it has no eventfd for hdr->consumer_gen, at most once per 100 ms, without blocking.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "identity.h"
#include "transport_backend.h"

#define RECONNECT_INTERVAL_NS 100000000u /* 100 ms between connection attempts */
#define SOCK_SUFFIX           ".sock"

struct shm_state {
    int fd; /* the region file; holds the byte-1 OFD lock */
    void *base;
    size_t region;
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int sock;         /* connection to the consumer, or -1 */
    int evfd;         /* the consumer's eventfd once its message arrived, or -1 */
    uint64_t gen;     /* the consumer generation evfd belongs to */
    uint8_t msg[8];   /* the consumer's message, as far as it arrived */
    size_t msg_got;   /* bytes of msg received */
    uint64_t last_ns; /* monotonic time of the last connection attempt */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void disconnect(struct shm_state *s)
{
    close_fd(&s->evfd);
    close_fd(&s->sock);
    s->msg_got = 0;
}

/* OFD lock on one byte; cmd F_OFD_SETLK or F_OFD_SETLKW, type F_WRLCK or F_UNLCK. */
static int ofd_lock(int fd, off_t byte, int cmd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    int r;
    do
        r = fcntl(fd, cmd, &fl);
    while (r < 0 && errno == EINTR && cmd == F_OFD_SETLKW);
    return r < 0 ? -errno : 0;
}

/* Maps and formats or attaches the region. Called with the byte-0 lock held, so no other
 * producer or consumer is half-way through formatting the same file. */
static int setup_region(struct shm_state *s, const struct ivmon_guest_uri *u, int lossless,
                        struct ivmon_ring *ring, char *err, size_t errlen)
{
    struct stat st;
    int fresh = 0;

    if (fstat(s->fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "fstat %s: %s", u->path, strerror(e));
        return -e;
    }
    if (st.st_size == 0) {
        off_t want = (off_t)(IVMON_RING_HDR_SIZE + u->size);
        if (ftruncate(s->fd, want) < 0) {
            int e = errno;
            snprintf(err, errlen, "ftruncate %s to %lld bytes: %s", u->path, (long long)want,
                     strerror(e));
            return -e;
        }
        fresh = 1;
        st.st_size = want;
    }
    if ((uint64_t)st.st_size > SIZE_MAX ||
        (uint64_t)st.st_size < IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA) {
        snprintf(err, errlen, "%s: existing file of %lld bytes is too small for a ring", u->path,
                 (long long)st.st_size);
        return -EPROTO;
    }
    s->region = (size_t)st.st_size;
    s->base = mmap(NULL, s->region, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->base == MAP_FAILED) {
        int e = errno;
        s->base = NULL;
        snprintf(err, errlen, "mmap %s (%zu bytes): %s", u->path, s->region, strerror(e));
        return -e;
    }

    const char *why = "invalid ring";
    uint32_t flags = lossless ? IVMON_RING_LOSSLESS : 0;
    int r = fresh ? -EAGAIN : ivmon_ring_attach(ring, s->base, s->region, &why);
    if (r == -EAGAIN) {
        /* New, or sized but never formatted (a creator died between ftruncate and format, or
         * a VMM created the backing file): the lock makes us the one to format it. */
        r = ivmon_ring_format(s->base, s->region, flags);
        if (r == 0)
            r = ivmon_ring_attach(ring, s->base, s->region, &why);
    }
    if (r < 0) {
        snprintf(err, errlen, "%s: %s", u->path, why);
        return r == -EAGAIN ? -EPROTO : r;
    }
    return 0;
}

static int shm_open_region(void *priv, const struct ivmon_guest_uri *u, int lossless,
                           struct ivmon_ring *ret_ring, char *err, size_t errlen)
{
    struct shm_state *s = priv;
    struct stat st;

    s->fd = s->sock = s->evfd = -1;
    size_t plen = strlen(u->path);
    if (plen + sizeof SOCK_SUFFIX > sizeof s->sock_path) {
        snprintf(err, errlen, "%s: path too long for its doorbell socket (%zu bytes max)", u->path,
                 sizeof s->sock_path - sizeof SOCK_SUFFIX);
        return -ENAMETOOLONG;
    }
    memcpy(s->sock_path, u->path, plen);
    memcpy(s->sock_path + plen, SOCK_SUFFIX, sizeof SOCK_SUFFIX);

    /* O_NOFOLLOW: /dev/shm is world-writable, and a root agent must not be steered into sizing
     * and formatting some other file through a planted symlink. */
    s->fd = open(u->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "open %s: %s", u->path, strerror(e));
        return -e;
    }
    if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", u->path);
        return -EINVAL;
    }
    int r = ofd_lock(s->fd, 0, F_OFD_SETLKW, F_WRLCK);
    if (r < 0) {
        snprintf(err, errlen, "lock %s: %s", u->path, strerror(-r));
        return r;
    }
    r = setup_region(s, u, lossless, ret_ring, err, errlen);
    int u_r = ofd_lock(s->fd, 0, F_OFD_SETLK, F_UNLCK);
    if (r < 0)
        return r;
    if (u_r < 0) {
        snprintf(err, errlen, "unlock %s: %s", u->path, strerror(-u_r));
        return u_r;
    }
    r = ofd_lock(s->fd, 1, F_OFD_SETLK, F_WRLCK);
    if (r == -EAGAIN || r == -EACCES) {
        snprintf(err, errlen, "%s: another producer is attached", u->path);
        return -EBUSY;
    }
    if (r < 0) {
        snprintf(err, errlen, "lock %s: %s", u->path, strerror(-r));
        return r;
    }
    return 0;
}

/* Checks that fd is an eventfd: a consumer (or whoever bound the socket first) could hand us a
 * pipe or socket, whose write might block or mean something else. */
static int is_eventfd(int fd)
{
    char link[64], target[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return 0;
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* Reads what has arrived of the consumer's message. Returns 0 complete (evfd and gen set),
 * -EAGAIN not complete yet, another negative errno if the connection is unusable. */
static int recv_hello(struct shm_state *s)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))]; /* room to see (and close) extra fds */
    } ctl;
    struct iovec iov = {s->msg + s->msg_got, sizeof s->msg - s->msg_got};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};

    ssize_t n;
    do
        n = recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == 0)
        return -ECONNRESET;

    int bad = (mh.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            if (s->evfd < 0 && !bad && is_eventfd(fd))
                s->evfd = fd;
            else
                close(fd);
        }
    }
    if (bad)
        return -EPROTO;
    s->msg_got += (size_t)n;
    if (s->msg_got < sizeof s->msg)
        return -EAGAIN;
    if (s->evfd < 0)
        return -EPROTO; /* 8 bytes but no eventfd with them */
    uint64_t g = 0;
    for (int i = 7; i >= 0; i--)
        g = g << 8 | s->msg[i];
    s->gen = g;
    return 0;
}

/* Starts a connection to the consumer's socket. Returns 0 connected (message maybe not yet
 * there), -EAGAIN try later, -ENOTCONN nobody listens. */
static int connect_consumer(struct shm_state *s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->sock_path, sizeof sa.sun_path);

    s->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->sock < 0)
        return -EAGAIN;
    if (connect(s->sock, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EINPROGRESS)
        return 0;
    int e = errno;
    close_fd(&s->sock);
    /* EAGAIN: the listener's backlog is full; it is alive, so try again later. */
    return e == EAGAIN || e == EINTR ? -EAGAIN : -ENOTCONN;
}

/* Writes 1 to the eventfd without ever blocking: a counter that is already non-zero wakes the
 * consumer anyway, and only a counter at its maximum would block. */
static int ring_eventfd(struct shm_state *s)
{
    struct pollfd pfd = {.fd = s->evfd, .events = POLLOUT};
    int n = poll(&pfd, 1, 0);
    if (n < 0)
        return -errno;
    if (pfd.revents & (POLLERR | POLLNVAL))
        return -EPIPE;
    if (!(pfd.revents & POLLOUT))
        return 0; /* counter full: the consumer has a wakeup pending already */
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(s->evfd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)sizeof one || (w < 0 && errno == EAGAIN))
        return 0;
    return -EPIPE;
}

static int shm_doorbell(void *priv, const struct ivmon_ring_hdr *hdr)
{
    struct shm_state *s = priv;
    /* Relaxed is enough: a stale value costs one extra doorbell or reconnection, and the
     * consumer wakes on the new connection anyway. */
    uint64_t gen =
        atomic_load_explicit((_Atomic uint64_t *)&hdr->consumer_gen, memory_order_relaxed);

    if (s->evfd >= 0 && s->gen != gen)
        disconnect(s); /* a new consumer attached: our eventfd is the old one's */
    if (s->evfd < 0 && s->sock >= 0) {
        int r = recv_hello(s);
        if (r == -EAGAIN)
            return -EAGAIN;
        if (r < 0)
            disconnect(s);
    }
    if (s->evfd < 0) {
        uint64_t now = ivmon_guest_monotonic_ns();
        if (s->last_ns && now - s->last_ns < RECONNECT_INTERVAL_NS)
            return -EAGAIN;
        s->last_ns = now;
        int r = connect_consumer(s);
        if (r < 0)
            return r;
        /* A consumer that accepts promptly has already sent its message. Otherwise the
         * connection itself wakes it (its listening socket polls readable), and the message is
         * picked up on the next attempt. */
        r = recv_hello(s);
        if (r == -EAGAIN)
            return -EAGAIN;
        if (r < 0) {
            disconnect(s);
            return -EAGAIN;
        }
    }
    int r = ring_eventfd(s);
    if (r < 0) {
        disconnect(s);
        return -EAGAIN;
    }
    return 0;
}

static void shm_close(void *priv)
{
    struct shm_state *s = priv;
    disconnect(s);
    if (s->base)
        munmap(s->base, s->region);
    s->base = NULL;
    close_fd(&s->fd); /* drops the OFD locks */
}

const struct ivmon_guest_backend ivmon_guest_backend_shm = {
    .abi = IVMON_GUEST_BACKEND_ABI,
    .size = sizeof(struct ivmon_guest_backend),
    .name = "shm",
    .uri_kind = IVMON_GUEST_URI_SHM,
    .priv_size = sizeof(struct shm_state),
    .open = shm_open_region,
    .doorbell = shm_doorbell,
    .close = shm_close,
};
