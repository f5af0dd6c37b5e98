/* SPDX-License-Identifier: MIT */
/* Domain lookup, strict XenStore reads and the consumer lock; see xen_common.h. */
#include "xen/xen_common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ivmon__xen_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;

    if (len == 0 || len > 20 || (s[0] == '0' && len > 1))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > max / 10 || max - v * 10 < d)
            return -EINVAL;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

int ivmon__xen_read(struct xs_handle *xs, xs_transaction_t t, const char *path, char *buf,
                    size_t cap)
{
    unsigned int len = 0;
    char *v = ivmon__xen_sys->xs_read(xs, t, path, &len);
    if (!v)
        return -ENOENT;
    /* XenStore values are bytes with a length; a NUL inside would make the C string a lie. */
    int r = len >= cap || memchr(v, '\0', len) ? -EPROTO : (int)len;
    if (r >= 0) {
        memcpy(buf, v, len);
        buf[len] = '\0';
    }
    free(v);
    return r;
}

/* The id of the domain whose name is `name`, from /local/domain/<id>/name. */
static int find_by_name(struct xs_handle *xs, const char *name, uint32_t *ret)
{
    unsigned int n = 0;
    char **ids = ivmon__xen_sys->xs_directory(xs, XBT_NULL, "/local/domain", &n);
    if (!ids)
        return errno == ENOENT || errno == 0 ? -ENODEV : -errno;
    int r = -ENODEV;
    for (unsigned int i = 0; i < n && r == -ENODEV; i++) {
        uint64_t id;
        char path[64], value[256];
        if (ivmon__xen_parse_u64(ids[i], strlen(ids[i]), IVMON_XEN_DOMID_MAX, &id) < 0)
            continue;
        snprintf(path, sizeof path, "/local/domain/%u/name", (unsigned)id);
        if (ivmon__xen_read(xs, XBT_NULL, path, value, sizeof value) >= 0 &&
            strcmp(value, name) == 0) {
            *ret = (uint32_t)id;
            r = 0;
        }
    }
    free(ids);
    return r;
}

int ivmon__xen_domain_info(xc_interface *xch, uint32_t domid, xc_dominfo_t *ret)
{
    /* xc_domain_getinfo answers with the first domains from domid on, so a missing domain shows
     * up as the next one, or -- when no domain follows it -- as a failure with ESRCH (Xen 4.18
     * and later give ESRCH for any missing domain). ESRCH is a fact about the domain, not an
     * error: a session that took it for one would outlive its domain for good (it did, whenever
     * its guest had the highest id and was freed before the session looked). */
    errno = 0;
    int n = ivmon__xen_sys->domain_getinfo(xch, domid, 1, ret);
    if (n < 0 && errno == ESRCH)
        return -ENODEV;
    if (n < 0)
        return errno ? -errno : -EIO;
    if (n == 0 || ret->domid != domid)
        return -ENODEV;
    return 0;
}

int ivmon__xen_domain_gone(xc_interface *xch, uint32_t domid)
{
    xc_dominfo_t info;
    int r = ivmon__xen_domain_info(xch, domid, &info);
    return r == -ENODEV || (r == 0 && info.dying);
}

int ivmon__xen_find_domain(ivmon *m, const char *scheme, struct xs_handle *xs, xc_interface *xch,
                           const char *target, uint32_t *ret_domid)
{
    uint64_t id;
    uint32_t domid = 0;
    int r;

    if (!*target)
        return ivmon__error(m, -EINVAL,
                            "%s: the target must be a domain name or id, e.g. %s:guest1", scheme,
                            scheme);
    if (strlen(target) > 255)
        return ivmon__error(m, -EINVAL, "%s: domain name too long", scheme);
    if (target[0] >= '0' && target[0] <= '9') {
        if (ivmon__xen_parse_u64(target, strlen(target), IVMON_XEN_DOMID_MAX, &id) < 0)
            return ivmon__error(m, -EINVAL, "%s: '%s' is not a domain id (0..%u)", scheme, target,
                                IVMON_XEN_DOMID_MAX);
        domid = (uint32_t)id;
    } else {
        r = find_by_name(xs, target, &domid);
        if (r == -ENODEV)
            return ivmon__error(m, r, "%s: no domain named '%s' (see xl list)", scheme, target);
        if (r < 0)
            return ivmon__error(m, r, "%s: reading /local/domain: %s", scheme, strerror(-r));
    }
    xc_dominfo_t info;
    r = ivmon__xen_domain_info(xch, domid, &info);
    if (r == -ENODEV)
        return ivmon__error(m, r, "%s: there is no domain %u", scheme, (unsigned)domid);
    if (r < 0)
        return ivmon__error(m, r, "%s: domain %u: %s", scheme, (unsigned)domid, strerror(-r));
    if (info.dying)
        return ivmon__error(m, -ENODEV, "%s: domain %u is being destroyed", scheme,
                            (unsigned)domid);
    *ret_domid = domid;
    return 0;
}

int ivmon__xen_lock(ivmon *m, const char *scheme, const char *kind, uint32_t domid)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    /* Abstract name (leading NUL): no file to clean up, gone with the process. */
    int n =
        snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "ivmon-xen-%s-%u", kind, (unsigned)domid);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ivmon__error(m, -errno, "%s: socket: %s", scheme, strerror(errno));
    if (bind(fd, (struct sockaddr *)&a,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return ivmon__error(m, -EBUSY, "%s: another consumer is attached to domain %u", scheme,
                                (unsigned)domid);
        return ivmon__error(m, -e, "%s: lock: %s", scheme, strerror(e));
    }
    return fd;
}

int ivmon__xen_connect(ivmon *m, const char *scheme, const char *kind, const char *target,
                       struct ivmon_xen_conn *c)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    c->lock_fd = -1;
    c->xch = x->xc_open();
    c->xs = x->xs_open();
    if (!c->xch || !c->xs)
        return ivmon__error(m, -ENODEV,
                            "%s: cannot reach %s (run in dom0, with xenstored running and /dev/xen "
                            "mounted): %s",
                            scheme, c->xch ? "XenStore" : "the hypervisor (privcmd)",
                            strerror(errno));
    int r = ivmon__xen_find_domain(m, scheme, c->xs, c->xch, target, &c->domid);
    if (r < 0)
        return r;
    r = ivmon__xen_lock(m, scheme, kind, c->domid);
    if (r < 0)
        return r;
    c->lock_fd = r;
    c->xce = x->evtchn_open();
    if (!c->xce)
        return ivmon__error(m, -ENODEV, "%s: /dev/xen/evtchn: %s (modprobe xen-evtchn)", scheme,
                            strerror(errno));
    return 0;
}

void ivmon__xen_disconnect(struct ivmon_xen_conn *c)
{
    const struct ivmon_xen_sys *x = ivmon__xen_sys;
    if (c->xce)
        x->evtchn_close(c->xce);
    if (c->xs)
        x->xs_close(c->xs);
    if (c->xch)
        x->xc_close(c->xch);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    c->xce = NULL;
    c->xs = NULL;
    c->xch = NULL;
    c->lock_fd = -1;
}

unsigned ivmon__xen_take_events(xenevtchn_handle *xce, int fd, int port)
{
    unsigned n = 0;
    /* xenevtchn_pending reads the device, which blocks when nothing is pending: ask first. */
    for (int i = 0; i < 64; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
            break;
        xenevtchn_port_or_error_t got = ivmon__xen_sys->evtchn_pending(xce);
        if (got < 0)
            break;
        ivmon__xen_sys->evtchn_unmask(xce, (evtchn_port_t)got);
        if (port < 0 || got == port)
            n++;
    }
    return n;
}
