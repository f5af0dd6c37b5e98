/* SPDX-License-Identifier: MIT */
/* The real Xen library calls behind struct ivmon_xen_sys; see xen_sys.h. */
#include "xen/xen_sys.h"

#include <stdarg.h>
#include <sys/mman.h>

/* The Xen libraries log to stderr unless given a logger, and library code never logs by itself
 * (the caller installs a sink with ivmon_set_log): what they would say comes back as errno. */
static void quiet_vmessage(struct xentoollog_logger *logger, xentoollog_level level, int errnoval,
                           const char *context, const char *format, va_list al)
{
}

static void quiet_destroy(struct xentoollog_logger *logger)
{
}

static struct xentoollog_logger quiet_logger = {
    .vmessage = quiet_vmessage,
    .progress = NULL,
    .destroy = quiet_destroy,
};

static xc_interface *real_xc_open(void)
{
    return xc_interface_open(&quiet_logger, &quiet_logger, 0);
}

static void real_unmap_page(void *page)
{
    munmap(page, XC_PAGE_SIZE);
}

static struct xs_handle *real_xs_open(void)
{
    return xs_open(0);
}

static xengnttab_handle *real_gnttab_open(void)
{
    return xengnttab_open(&quiet_logger, 0);
}

static xenevtchn_handle *real_evtchn_open(void)
{
    return xenevtchn_open(&quiet_logger, 0);
}

const struct ivmon_xen_sys ivmon__xen_sys_real = {
    .xc_open = real_xc_open,
    .xc_close = xc_interface_close,
    .domain_getinfo = xc_domain_getinfo,
    .domain_pause = xc_domain_pause,
    .domain_unpause = xc_domain_unpause,
    .monitor_enable = xc_monitor_enable,
    .monitor_disable = xc_monitor_disable,
    .monitor_guest_request = xc_monitor_guest_request,
    .unmap_page = real_unmap_page,
    .xs_open = real_xs_open,
    .xs_close = xs_close,
    .xs_read = xs_read,
    .xs_directory = xs_directory,
    .xs_write = xs_write,
    .xs_rm = xs_rm,
    .xs_watch = xs_watch,
    .xs_unwatch = xs_unwatch,
    .xs_fileno = xs_fileno,
    .xs_check_watch = xs_check_watch,
    .xs_transaction_start = xs_transaction_start,
    .xs_transaction_end = xs_transaction_end,
    .gnttab_open = real_gnttab_open,
    .gnttab_close = xengnttab_close,
    .gnttab_map = xengnttab_map_domain_grant_refs,
    .gnttab_unmap = xengnttab_unmap,
    .evtchn_open = real_evtchn_open,
    .evtchn_close = xenevtchn_close,
    .evtchn_fd = xenevtchn_fd,
    .evtchn_bind = xenevtchn_bind_interdomain,
    .evtchn_unbind = xenevtchn_unbind,
    .evtchn_pending = xenevtchn_pending,
    .evtchn_unmask = xenevtchn_unmask,
    .evtchn_notify = xenevtchn_notify,
};

const struct ivmon_xen_sys *ivmon__xen_sys = &ivmon__xen_sys_real;
