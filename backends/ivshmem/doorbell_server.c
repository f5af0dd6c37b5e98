/* SPDX-License-Identifier: MIT */
/* The ivshmem server protocol; see doorbell_server.h for the wire format. */
#include "ivshmem/doorbell_server.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Room for a burst of connections (QEMU instances starting together, or a flood) between two
 * accepts; the surplus beyond IVMON_IVDB_MAX_CLIENTS is accepted and closed, not left to block. */
#define LISTEN_BACKLOG 64

int ivmon_ivdb_send(int sock, int64_t value, int fd)
{
    uint64_t le = htole64((uint64_t)value);
    struct iovec iov = {.iov_base = &le, .iov_len = sizeof le};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(control.buf, 0, sizeof control.buf);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    /* MSG_DONTWAIT: a client that does not read must not stall the caller's loop; it is dropped
     * instead. MSG_NOSIGNAL: a client that vanished must not kill the monitor with SIGPIPE. */
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    /* Half a message cannot be finished later without tracking it per client, and QEMU, which
     * reads everything as it comes, never leaves so little room: treat it as a failed send. */
    return n == sizeof le ? 0 : -EIO;
}

void ivmon_ivdb_server_init(struct ivmon_ivdb_server *s, ivmon *m, int epoll_fd, int shm_fd,
                            int host_efd)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->listen_fd = -1;
    s->epoll_fd = epoll_fd;
    s->shm_fd = shm_fd;
    s->host_efd = host_efd;
    for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS; i++)
        s->clients[i].sock = s->clients[i].efd = -1;
}

/* A socket file is left behind by a server that was killed. Connecting tells a dead one (refused)
 * from a live one, whose path we must not steal: its QEMU would lose nothing, but the next QEMU
 * would connect to us and the other monitor would never hear of it. */
static int probe_existing(const char *path, const struct sockaddr_un *a, const char **ret_why)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        *ret_why = "the path exists and is not a socket";
        return -EEXIST;
    }
    int p = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p < 0)
        return -errno;
    int r = connect(p, (const struct sockaddr *)a, sizeof *a) == 0 ? 0 : -errno;
    close(p);
    if (r == -ECONNREFUSED) {
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
        return 0;
    }
    /* Connected, or a full backlog (-EAGAIN): somebody is serving there. */
    *ret_why = "another server is listening on the socket";
    return r == 0 || r == -EAGAIN ? -EBUSY : r;
}

static int epoll_add(int epfd, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int ivmon_ivdb_server_listen(struct ivmon_ivdb_server *s, const char *path, const char **ret_why)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(path);

    *ret_why = "socket path too long";
    _Static_assert(sizeof s->path <= sizeof a.sun_path, "a path that fits s->path fits sun_path");
    if (len >= sizeof s->path)
        return -ENAMETOOLONG;
    memcpy(a.sun_path, path, len + 1);
    memcpy(s->path, path, len + 1);

    *ret_why = "cannot check the socket path";
    int r = probe_existing(path, &a, ret_why);
    if (r < 0)
        return r;
    *ret_why = "cannot create the socket";
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return -errno;
    if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) < 0) {
        r = -errno;
        /* Another server bound the path between our probe and our bind. */
        *ret_why = r == -EADDRINUSE ? "another server is listening on the socket"
                                    : "cannot bind the socket";
        return r == -EADDRINUSE ? -EBUSY : r;
    }
    s->own_socket = 1;
    *ret_why = "cannot listen on the socket";
    if (listen(s->listen_fd, LISTEN_BACKLOG) < 0)
        return -errno;
    *ret_why = "cannot watch the socket";
    return epoll_add(s->epoll_fd, s->listen_fd, EPOLLIN);
}

/* The next id, never IVMON_IVDB_HOST_ID, not in use. Ids are handed out in increasing order and
 * reused only after 65535 more connections: QEMU 7.2 frees a departed peer's eventfd array and
 * writes into it when a connect message for the same id arrives, so a QEMU that saw an id leave
 * must not see it come back soon. */
static uint16_t next_id(struct ivmon_ivdb_server *s)
{
    for (;;) {
        s->last_id = s->last_id >= IVMON_IVDB_MAX_ID ? 1 : s->last_id + 1;
        int used = 0;
        for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS; i++)
            if (s->clients[i].sock >= 0 && s->clients[i].id == s->last_id)
                used = 1;
        /* At most IVMON_IVDB_MAX_CLIENTS ids are in use, so this ends within that many steps. */
        if (!used)
            return (uint16_t)s->last_id;
    }
}

/* Steps 1-5 of the setup, to a client that is not in the table yet. */
static int send_setup(const struct ivmon_ivdb_server *s, int sock, uint16_t id, int efd)
{
    int r = ivmon_ivdb_send(sock, IVMON_IVDB_PROTOCOL_VERSION, -1);
    if (r == 0)
        r = ivmon_ivdb_send(sock, id, -1);
    if (r == 0)
        r = ivmon_ivdb_send(sock, -1, s->shm_fd);
    if (r == 0)
        r = ivmon_ivdb_send(sock, IVMON_IVDB_HOST_ID, s->host_efd);
    for (unsigned i = 0; r == 0 && i < IVMON_IVDB_MAX_CLIENTS; i++)
        if (s->clients[i].sock >= 0)
            r = ivmon_ivdb_send(sock, s->clients[i].id, s->clients[i].efd);
    if (r == 0)
        r = ivmon_ivdb_send(sock, id, efd);
    return r;
}

/* Removes every doomed client and tells the others, which may doom more of them (a failed send):
 * repeat until a pass dooms nobody. Each pass removes at least one client, so this ends. */
static void reap(struct ivmon_ivdb_server *s)
{
    unsigned removed = 0;
    int again = 1;
    while (again) {
        again = 0;
        for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS; i++) {
            struct ivmon_ivdb_client *c = &s->clients[i];
            if (c->sock < 0 || !c->doomed)
                continue;
            /* Closing the socket also takes it out of the epoll set (we never dup it). */
            close(c->sock);
            close(c->efd);
            c->sock = c->efd = -1;
            c->doomed = 0;
            s->n_clients--;
            removed++;
            for (unsigned j = 0; j < IVMON_IVDB_MAX_CLIENTS; j++) {
                struct ivmon_ivdb_client *o = &s->clients[j];
                if (o->sock >= 0 && !o->doomed && ivmon_ivdb_send(o->sock, c->id, -1) < 0) {
                    o->doomed = 1;
                    s->dropped++;
                    again = 1;
                }
            }
        }
    }
    if (removed && s->n_clients == 0)
        ivmon__log(s->m, IVMON_LOG_INFO,
                   "ivshmem+doorbell: no client left on %s: polling the ring instead of waiting "
                   "for doorbells",
                   s->path);
}

/* Serves one new connection. Returns 1 if the client was admitted. */
static int admit(struct ivmon_ivdb_server *s, int sock)
{
    unsigned slot = IVMON_IVDB_MAX_CLIENTS;
    for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS && slot == IVMON_IVDB_MAX_CLIENTS; i++)
        if (s->clients[i].sock < 0)
            slot = i;
    if (slot == IVMON_IVDB_MAX_CLIENTS) {
        /* Refuse rather than evict: the client to give up could be the VM whose doorbell this
         * session lives on, and QEMU never reconnects. */
        s->refused++;
        ivmon__log(s->m, IVMON_LOG_WARNING,
                   "ivshmem+doorbell: %u clients already on %s: refused a connection",
                   IVMON_IVDB_MAX_CLIENTS, s->path);
        close(sock);
        return 0;
    }
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
        ivmon__log(s->m, IVMON_LOG_WARNING, "ivshmem+doorbell: eventfd: %s", strerror(errno));
        close(sock);
        return 0;
    }
    uint16_t id = next_id(s);
    /* EPOLLRDHUP: the client's end closing is the only thing we wait for on its socket. */
    int r = send_setup(s, sock, id, efd);
    if (r == 0)
        r = epoll_add(s->epoll_fd, sock, EPOLLIN | EPOLLRDHUP);
    if (r < 0) {
        s->dropped++;
        ivmon__log(s->m, IVMON_LOG_WARNING, "ivshmem+doorbell: could not serve client %u on %s: %s",
                   (unsigned)id, s->path, strerror(-r));
        close(sock);
        close(efd);
        return 0;
    }
    /* The others learn of it only now that it is set up, so no one is told of a client that
     * then failed. */
    for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS; i++) {
        struct ivmon_ivdb_client *o = &s->clients[i];
        if (o->sock >= 0 && ivmon_ivdb_send(o->sock, id, efd) < 0) {
            o->doomed = 1;
            s->dropped++;
        }
    }
    s->clients[slot] = (struct ivmon_ivdb_client){.sock = sock, .efd = efd, .id = id};
    s->n_clients++;
    s->connected++;
    ivmon__log(s->m, IVMON_LOG_INFO,
               "ivshmem+doorbell: client %u connected on %s (%u connected): waiting for its "
               "doorbell",
               (unsigned)id, s->path, s->n_clients);
    reap(s);
    return 1;
}

unsigned ivmon_ivdb_server_accept(struct ivmon_ivdb_server *s)
{
    unsigned admitted = 0;
    for (unsigned i = 0; i < IVMON_IVDB_ACCEPT_BATCH; i++) {
        int c = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            /* EAGAIN: done. EMFILE and the like: the connection stays in the backlog and the
             * listening socket stays readable, so the next call tries again. */
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ivmon__log(s->m, IVMON_LOG_WARNING, "ivshmem+doorbell: accept on %s: %s", s->path,
                           strerror(errno));
            break;
        }
        admitted += (unsigned)admit(s, c);
    }
    return admitted;
}

int ivmon_ivdb_server_handle(struct ivmon_ivdb_server *s, int fd)
{
    struct ivmon_ivdb_client *c = NULL;
    for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS && !c; i++)
        if (s->clients[i].sock == fd && fd >= 0)
            c = &s->clients[i];
    if (!c)
        return 0;
    /* The protocol is one-way, so a read either sees the end of the connection or a client that
     * is not QEMU; one bounded read tells which. Any fds it sent are discarded with the data
     * (no control buffer: the kernel closes them). */
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 1; /* nothing after all (a stale readiness report) */
    if (n > 0) {
        s->dropped++;
        ivmon__log(s->m, IVMON_LOG_WARNING,
                   "ivshmem+doorbell: client %u on %s sent data on a one-way protocol: dropped",
                   (unsigned)c->id, s->path);
    } else {
        ivmon__log(s->m, IVMON_LOG_INFO, "ivshmem+doorbell: client %u on %s disconnected",
                   (unsigned)c->id, s->path);
    }
    c->doomed = 1;
    reap(s);
    return 1;
}

void ivmon_ivdb_server_close(struct ivmon_ivdb_server *s)
{
    for (unsigned i = 0; i < IVMON_IVDB_MAX_CLIENTS; i++) {
        struct ivmon_ivdb_client *c = &s->clients[i];
        if (c->sock >= 0)
            close(c->sock);
        if (c->efd >= 0)
            close(c->efd);
        c->sock = c->efd = -1;
    }
    s->n_clients = 0;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    if (s->own_socket)
        unlink(s->path);
    s->own_socket = 0;
}
