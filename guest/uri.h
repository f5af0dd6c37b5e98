/* SPDX-License-Identifier: MIT */
/*
 * Guest-side transport URIs. The guest shares only proto.h and the ring with the host library,
 * so it parses its own small URI dialect:
 *
 *   shm:NAME[?opts]            region file /dev/shm/NAME
 *   shm:/absolute/path[?opts]  region file at that path
 *   ivshmem:[?opts]            the first QEMU ivshmem PCI device (1af4:1110) in sysfs
 *   ivshmem:PCI[?opts]         the ivshmem device at PCI address DDDD:BB:DD.F (or BB:DD.F)
 *   xen+shm:[?opts]            pages granted to dom0 (or backend=), event channel, XenStore
 *   xen+vcpu:[?opts]           register fragments through HVMOP_guest_request_vm_event
 *   virtio-serial:NAME[?opts]  the virtio-serial port QEMU named NAME (-device virtserialport,
 *                              name=NAME): /dev/virtio-ports/NAME, or without udev the
 *                              /dev/vportNpM whose /sys/class/virtio-ports/vportNpM/name is NAME
 *   virtio-serial:/dev/PATH[?opts]  that port device
 *   kvm+hcall:[?opts]          register fragments, one `out` per fragment, to a KVM VMM that
 *                              embeds libivmon (x86-64 builds; the host URI is kvm:NAME)
 *
 * shm opts: `size=N` ring data bytes, a power of two, optional K/M/G suffix (1024-based), default
 * 4M; `lossless=0|1`. ivshmem opts: `lossless=0|1`; `wait=SECONDS`, how long to wait for the host
 * to format the ring (default: as long as it takes; 0: not at all). The host formats an ivshmem
 * ring and picks its size, so size= is refused there. virtio-serial opts: `lossless=0|1` (a
 * stream has no ring, so no size=). kvm+hcall opts: `port=P`, the I/O port the VMM gives the
 * kvm: session, 1..65535 in decimal or 0x hex, default 0x4956; there is no ring and nothing is
 * ever dropped, so size= and lossless= are refused. xen+shm opts: `pages=N` data pages, a
 * power of two from 16 to 16384 (default 64: a 256 KiB ring; the guest's gntalloc grants 1024
 * pages at most unless loaded with a higher limit=), `backend=DOMID` the domain the pages and
 * the event channel are for (default 0), `lossless=0|1`. xen+vcpu takes no target and no
 * options. Options are separated by '&'; no percent-decoding is done.
 */
#ifndef IVMON_GUEST_URI_H
#define IVMON_GUEST_URI_H

#include <stdint.h>

#define IVMON_GUEST_URI_SHM           1 /* shared-memory file + UNIX-socket doorbell rendezvous */
#define IVMON_GUEST_URI_IVSHMEM       2 /* QEMU ivshmem PCI device: BAR2 ring, BAR0 doorbell */
#define IVMON_GUEST_URI_XEN_SHM       3 /* Xen grant pages + event channel, published in XenStore */
#define IVMON_GUEST_URI_XEN_VCPU      4 /* Xen vm_event guest requests carrying register fragments */
#define IVMON_GUEST_URI_VIRTIO_SERIAL 5 /* a virtio-serial port: a byte stream, no ring */
#define IVMON_GUEST_URI_KVM_HCALL     6 /* register fragments through port-I/O traps to a KVM VMM */

#define IVMON_GUEST_PCI_ADDR_MAX 16u /* "DDDD:BB:DD.F" and its NUL */

#define IVMON_GUEST_URI_PATH_MAX      4096u
#define IVMON_GUEST_DEFAULT_RING_SIZE (4u << 20)

struct ivmon_guest_uri {
    int kind; /* IVMON_GUEST_URI_* */
    /* shm: the region file; virtio-serial: the port's name, or its device path if it starts
     * with '/'. NUL-terminated. */
    char path[IVMON_GUEST_URI_PATH_MAX];
    uint64_t size;                      /* ring data bytes, valid power of two */
    int lossless;                       /* 1 if lossless=1 was given */
    char pci[IVMON_GUEST_PCI_ADDR_MAX]; /* ivshmem: "DDDD:BB:DD.F", or "" for the first device */
    int wait_s;                         /* ivshmem: wait= seconds, -1 (default) without limit */
    uint16_t port;                      /* kvm+hcall: the I/O port */
    uint32_t xen_pages;                 /* xen+shm: data pages, valid power of two */
    uint32_t xen_backend;               /* xen+shm: backend domain id */
};

/* Parses uri into *ret. Returns 0; -EINVAL with *ret_why set for a malformed URI or option;
 * -EPROTONOSUPPORT with *ret_why set for a known scheme this build does not have. *ret is
 * written only on success. */
int ivmon_guest_uri_parse(const char *uri, struct ivmon_guest_uri *ret, const char **ret_why);

/* Parses a byte count with an optional K/M/G suffix (1024-based). Returns 0 or -EINVAL
 * (empty, junk, overflow). Shared with the tools' --size options. */
int ivmon_guest_parse_bytes(const char *s, uint64_t *ret);

#endif /* IVMON_GUEST_URI_H */
