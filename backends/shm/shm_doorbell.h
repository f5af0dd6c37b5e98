/* SPDX-License-Identifier: MIT */
/* The shm: doorbell rendezvous, host side. Wire format (docs/PROTOCOL.md): on a UNIX stream
 * socket at RINGPATH.sock, the consumer sends each producer that connects one 8-byte
 * little-endian consumer generation with the doorbell eventfd attached (SCM_RIGHTS). */
#ifndef IVMON_SHM_DOORBELL_H
#define IVMON_SHM_DOORBELL_H

#include <stdint.h>

#define IVMON_SHM_SOCKET_SUFFIX ".sock"

/* Sends generation and fd on socket sock. Returns 0 or a negative errno. */
int ivmon_shm_send_doorbell(int sock, uint64_t generation, int fd);

#endif
