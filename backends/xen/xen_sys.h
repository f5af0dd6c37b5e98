/* SPDX-License-Identifier: MIT */
/*
 * The Xen library calls the xen+shm: and xen+vcpu: backends make, behind one table.
 *
 * Why a table: the unit tests (tests/unit/test_xen.c) must produce failures a real Xen rarely
 * gives on demand -- a grant map that fails, an event channel that cannot be bound, a full
 * vm_event ring, a vm_event request of an unknown interface version -- without a hypervisor.
 * They point ivmon__xen_sys at a table of their own; everyone else uses ivmon__xen_sys_real,
 * which calls libxenctrl, libxenstore, libxengnttab and libxenevtchn directly. A table is plain
 * C that works the same in the shared library, the static test library and under sanitizers,
 * where the linker's --wrap would have to be threaded through every link line.
 *
 * Every slot has the signature of the library function it stands for (see the Xen headers).
 */
#ifndef IVMON_XEN_SYS_H
#define IVMON_XEN_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define __XEN_TOOLS__ 1 /* xenctrl.h and the vm_event interface are tools-only headers */
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

struct ivmon_xen_sys {
    /* libxenctrl */
    xc_interface *(*xc_open)(void);
    int (*xc_close)(xc_interface *xch);
    /* xc_domain_getinfo: read through ivmon__xen_domain_info (xen_common.h), which knows how
     * it answers for a domain that is missing. */
    int (*domain_getinfo)(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
                          xc_dominfo_t *info);
    int (*domain_pause)(xc_interface *xch, uint32_t domid);
    int (*domain_unpause)(xc_interface *xch, uint32_t domid);
    void *(*monitor_enable)(xc_interface *xch, uint32_t domid, uint32_t *port);
    int (*monitor_disable)(xc_interface *xch, uint32_t domid);
    int (*monitor_guest_request)(xc_interface *xch, uint32_t domid, bool enable, bool sync,
                                 bool allow_userspace);
    /* Unmaps the vm_event ring page monitor_enable returned. */
    void (*unmap_page)(void *page);

    /* libxenstore */
    struct xs_handle *(*xs_open)(void);
    void (*xs_close)(struct xs_handle *xs);
    void *(*xs_read)(struct xs_handle *xs, xs_transaction_t t, const char *path, unsigned int *len);
    char **(*xs_directory)(struct xs_handle *xs, xs_transaction_t t, const char *path,
                           unsigned int *num);
    bool (*xs_write)(struct xs_handle *xs, xs_transaction_t t, const char *path, const void *data,
                     unsigned int len);
    bool (*xs_rm)(struct xs_handle *xs, xs_transaction_t t, const char *path);
    bool (*xs_watch)(struct xs_handle *xs, const char *path, const char *token);
    bool (*xs_unwatch)(struct xs_handle *xs, const char *path, const char *token);
    int (*xs_fileno)(struct xs_handle *xs);
    char **(*xs_check_watch)(struct xs_handle *xs);
    xs_transaction_t (*xs_transaction_start)(struct xs_handle *xs);
    bool (*xs_transaction_end)(struct xs_handle *xs, xs_transaction_t t, bool abort);

    /* libxengnttab */
    xengnttab_handle *(*gnttab_open)(void);
    int (*gnttab_close)(xengnttab_handle *xgt);
    void *(*gnttab_map)(xengnttab_handle *xgt, uint32_t count, uint32_t domid, uint32_t *refs,
                        int prot);
    int (*gnttab_unmap)(xengnttab_handle *xgt, void *start, uint32_t count);

    /* libxenevtchn */
    xenevtchn_handle *(*evtchn_open)(void);
    int (*evtchn_close)(xenevtchn_handle *xce);
    int (*evtchn_fd)(xenevtchn_handle *xce);
    xenevtchn_port_or_error_t (*evtchn_bind)(xenevtchn_handle *xce, uint32_t domid,
                                             evtchn_port_t remote_port);
    int (*evtchn_unbind)(xenevtchn_handle *xce, evtchn_port_t port);
    xenevtchn_port_or_error_t (*evtchn_pending)(xenevtchn_handle *xce);
    int (*evtchn_unmask)(xenevtchn_handle *xce, evtchn_port_t port);
    int (*evtchn_notify)(xenevtchn_handle *xce, evtchn_port_t port);
};

/* The real libraries. */
extern const struct ivmon_xen_sys ivmon__xen_sys_real;
/* What the backends call: &ivmon__xen_sys_real unless a unit test installed its own. */
extern const struct ivmon_xen_sys *ivmon__xen_sys;

#endif /* IVMON_XEN_SYS_H */
