/* SPDX-License-Identifier: MIT */
/*
 * The server side of QEMU's ivshmem client-server protocol (QEMU docs/specs/ivshmem-spec.rst,
 * "The ivshmem Client-Server Protocol"), served by libivmon itself: Debian ships no
 * ivshmem-server, and the library has to be a peer anyway to be woken by the guest's doorbell.
 *
 * Wire format. The connection is one-way, server to client. Each message is one little-endian
 * int64, optionally with one file descriptor (SCM_RIGHTS). To a client that connects:
 *   1. 0, the protocol version, no fd;
 *   2. the client's id (1..65535), no fd;
 *   3. -1 with the shared memory fd;
 *   4. for every other peer, its id with the eventfd that interrupts its vector 0: the host
 *      library first (id 0, IVMON_IVDB_HOST_ID), then the other clients;
 *   5. the client's own id with its own vector 0 eventfd (where peers interrupt it).
 * Then, to every other client, the new id with the new client's eventfd; and when a client goes,
 * its id without an fd to everyone left. One vector per peer: the guest rings
 * (IVMON_IVDB_HOST_ID << 16 | 0) in BAR0's Doorbell register to wake the library.
 *
 * The server runs inside the caller's poll loop and never blocks: every socket is non-blocking,
 * a client that does not take its messages at once, or that says anything at all (QEMU never
 * does), is dropped, and the number of clients is bounded.
 */
#ifndef IVMON_IVSHMEM_DOORBELL_SERVER_H
#define IVMON_IVSHMEM_DOORBELL_SERVER_H

#include <stdint.h>
#include <sys/un.h>

#include "internal.h"

#define IVMON_IVDB_PROTOCOL_VERSION 0
#define IVMON_IVDB_HOST_ID          0u
#define IVMON_IVDB_MAX_ID           65535u /* ids go into the Doorbell register's 16 high bits */
/* One ring has one producer, so one VM per server is the real use; the rest of the slots are for
 * protocol tools (QEMU's contrib/ivshmem-client) and for a restarted QEMU that connects before
 * the old connection's end has been seen. */
#define IVMON_IVDB_MAX_CLIENTS 8u
/* Connections taken per call, so a connect flood cannot hold up the caller's loop. */
#define IVMON_IVDB_ACCEPT_BATCH 16u

struct ivmon_ivdb_client {
    int sock; /* -1: free slot */
    int efd;  /* its vector 0 eventfd: peers write it to interrupt the client */
    uint16_t id;
    int doomed; /* to be dropped once the current pass over the clients ends */
};

struct ivmon_ivdb_server {
    ivmon *m; /* for log messages only */
    int listen_fd;
    int epoll_fd;   /* borrowed: the listening socket and every client socket are added to it */
    int shm_fd;     /* borrowed: sent to each client */
    int host_efd;   /* borrowed: peer 0's vector 0, sent to each client */
    int own_socket; /* listen_fd is bound to path: unlink it on close */
    struct ivmon_ivdb_client clients[IVMON_IVDB_MAX_CLIENTS];
    unsigned n_clients;
    uint32_t last_id;   /* the id handed out last */
    uint64_t connected; /* clients served since listen */
    uint64_t refused;   /* connections closed at once: no free slot */
    uint64_t dropped;   /* clients dropped for talking, not reading, or a failed send */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Prepares s (no system calls). m is used for logging only; the fds are borrowed and must outlive
 * the server. */
void ivmon_ivdb_server_init(struct ivmon_ivdb_server *s, ivmon *m, int epoll_fd, int shm_fd,
                            int host_efd);

/* Listens on the UNIX socket path and adds the listening socket to the epoll set. A socket file
 * left there by a server that died is replaced; a live one is not. Returns 0; -ENAMETOOLONG;
 * -EBUSY if a server answers on path; -EEXIST if path exists and is not a socket; or another
 * negative errno. On failure *ret_why says which step failed (static string). */
int ivmon_ivdb_server_listen(struct ivmon_ivdb_server *s, const char *path, const char **ret_why);

/* The listening socket is readable: accepts up to IVMON_IVDB_ACCEPT_BATCH connections and serves
 * each the setup messages. Returns the number of clients admitted. */
unsigned ivmon_ivdb_server_accept(struct ivmon_ivdb_server *s);

/* epoll reported fd. Returns 0 if fd is not a client socket; otherwise handles it (a client that
 * closed, or that sent anything, is dropped and the others told) and returns 1. */
int ivmon_ivdb_server_handle(struct ivmon_ivdb_server *s, int fd);

/* Closes every client (QEMU sees the server go) and the listening socket, and unlinks the socket
 * file if this server bound it. Safe on a server that was only initialised. */
void ivmon_ivdb_server_close(struct ivmon_ivdb_server *s);

/* Sends one protocol message: value (little-endian) and, if fd >= 0, fd. Never blocks. Returns 0,
 * or a negative errno (-EAGAIN: the client's socket buffer is full; -EIO: a partial send). */
int ivmon_ivdb_send(int sock, int64_t value, int fd);

#endif /* IVMON_IVSHMEM_DOORBELL_SERVER_H */
