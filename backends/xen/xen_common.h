/* SPDX-License-Identifier: MIT */
/*
 * What xen+shm: and xen+vcpu: share: finding the guest domain, reading hostile XenStore values
 * strictly, and the one-consumer-per-domain lock.
 *
 * Targets: "xen+shm:GUEST", GUEST a domain id (decimal, 1..32751) or a domain name as in
 * /local/domain/<id>/name (what `xl list` shows). A name is looked up once, at open.
 */
#ifndef IVMON_XEN_COMMON_H
#define IVMON_XEN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "xen/xen_sys.h"

#define IVMON_XEN_DOMID_MAX 0x7fefu /* DOMID_FIRST_RESERVED - 1 */

/* Parses s (exactly len bytes, no NUL needed) as a decimal number: digits only, no sign, no
 * blanks, no leading zero (except "0" itself), at most max. Returns 0 or -EINVAL. */
int ivmon__xen_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret);

/* One domain's info. Returns 0, -ENODEV if there is no domain domid (never created, or destroyed
 * and freed), or another negative errno. */
int ivmon__xen_domain_info(xc_interface *xch, uint32_t domid, xc_dominfo_t *ret);

/* Whether domain domid is gone: destroyed, or dying. A failed look (another errno) is not
 * taken for gone; the sessions look again a second later. */
int ivmon__xen_domain_gone(xc_interface *xch, uint32_t domid);

/* Finds the domain named by target (an id or a name) and checks it exists. Returns 0 with
 * *ret_domid set, -ENODEV (no such domain), -EINVAL (bad target) or another negative errno, each
 * with a message on m prefixed by scheme. */
int ivmon__xen_find_domain(ivmon *m, const char *scheme, struct xs_handle *xs, xc_interface *xch,
                           const char *target, uint32_t *ret_domid);

/* What a session of either backend holds to reach its domain. */
struct ivmon_xen_conn {
    uint32_t domid;
    int lock_fd; /* the one-consumer lock (ivmon__xen_lock), or -1 */
    xc_interface *xch;
    struct xs_handle *xs;
    xenevtchn_handle *xce;
};

/* Opens libxenctrl and libxenstore, finds the domain named by target (ivmon__xen_find_domain),
 * takes the one-consumer lock of `kind` for it (ivmon__xen_lock) and opens libxenevtchn, filling
 * c as it goes. c is left for ivmon__xen_disconnect, also on failure. Returns 0 or a negative
 * errno with a message on m: -ENODEV when the hypervisor, XenStore or the event channel device
 * cannot be reached (not dom0, xenstored not running, xen-evtchn not loaded) or there is no such
 * domain, -EINVAL for a bad target, -EBUSY for another consumer. */
int ivmon__xen_connect(ivmon *m, const char *scheme, const char *kind, const char *target,
                       struct ivmon_xen_conn *c);

/* Releases what ivmon__xen_connect acquired. c may be zeroed with lock_fd -1, or half filled. */
void ivmon__xen_disconnect(struct ivmon_xen_conn *c);

/* Takes what is pending on an event channel handle without blocking (at most a batch), unmasks
 * each port, and returns how many notifications came for `port` (-1: any port). */
unsigned ivmon__xen_take_events(xenevtchn_handle *xce, int fd, int port);

/* Reads path into buf (cap bytes, NUL-terminated on success). Returns the value's length, or
 * -ENOENT if the key is missing, or -EPROTO if the value is longer than cap - 1 or holds a NUL. */
int ivmon__xen_read(struct xs_handle *xs, xs_transaction_t t, const char *path, char *buf,
                    size_t cap);

/* Takes the lock that admits one consumer of `kind` ("shm", "vcpu") per domain in this dom0: an
 * abstract UNIX socket, released by the kernel when the process dies. Returns the fd holding it,
 * or -EBUSY (another consumer) with a message on m, or another negative errno. */
int ivmon__xen_lock(ivmon *m, const char *scheme, const char *kind, uint32_t domid);

#endif /* IVMON_XEN_COMMON_H */
