/* SPDX-License-Identifier: MIT */
/*
 * A fake Xen behind the backends' table of library calls (backends/xen/xen_sys.h), for the
 * unit tests (test_xen.c) and the XenStore fuzz harness (tests/fuzz/fuzz_xenstore.c): a
 * XenStore of byte values, a few domains whose granted pages are plain memory, an event channel
 * that is an eventfd, a vm_event ring page, and counters of what the backends called. Nothing
 * here talks to a hypervisor; the Xen integration test (tests/xen) covers the real one.
 *
 *   fake_xen_init();                        reset everything, install the table
 *   fake_xen_add_dom(0, 12, "g");           domain 12 named "g" (an HVM/PVH guest; ->pv = 1: PV)
 *   fake_xen_set("/local/domain/12/...", "v");
 *   ... ivmon_open(&m, "xen+shm:g", 0) ...
 *   fake_xen_fini();                        free everything, the real table back
 *
 * Single-threaded, like the sessions it serves.
 */
#ifndef IVMON_TEST_FAKE_XEN_H
#define IVMON_TEST_FAKE_XEN_H

#include <stddef.h>
#include <stdint.h>

#include "xen/xen_sys.h"

#define FAKE_XEN_KEYS    64
#define FAKE_XEN_DOMS    4
#define FAKE_XEN_WATCHES 16
#define FAKE_XEN_EVTCHN  7 /* the local port every bind returns */
#define FAKE_XEN_REGIONS 32

struct fake_dom {
    uint32_t domid;
    const char *name;
    int exists, dying, pv;
    void *region;                    /* the guest's granted pages, as the mapper hands them out */
    uint32_t region_pages;           /* how many; a map of any other count fails */
    void *regions[FAKE_XEN_REGIONS]; /* owned: every region ever set, freed by fake_xen_fini */
    unsigned nregions;
};

struct fake_xen {
    char *keys[FAKE_XEN_KEYS], *values[FAKE_XEN_KEYS];
    unsigned lens[FAKE_XEN_KEYS];
    struct fake_dom doms[FAKE_XEN_DOMS];
    const char *watches[FAKE_XEN_WATCHES][2]; /* queued watch events: path, token */
    unsigned nwatch;
    int map_fails, bind_fails;           /* make every grant map / event channel bind fail */
    int write_fails;                     /* make every XenStore write fail (EACCES) */
    unsigned maps, unmaps, binds;        /* calls seen */
    int monitor_on;                      /* a vm_event ring is enabled (one domain at a time) */
    unsigned disables, pauses, unpauses; /* monitor_disable, domain_pause, domain_unpause */
    void *vm_page;                       /* what monitor_enable returns; the caller's memory */
    int gr_on, gr_sync;                  /* the last monitor_guest_request's enable and sync */
    int evfd, pipefd[2];                 /* the event channel fd, the XenStore watch fd */
    char handle;                         /* what the opaque handles point to */
};

extern struct fake_xen fx;
extern const struct ivmon_xen_sys fake_xen_sys;

/* Resets fx, opens its fds and installs fake_xen_sys. Returns 0 or a negative errno. */
int fake_xen_init(void);
/* Frees the store and the regions, closes the fds, puts the real table back. */
void fake_xen_fini(void);

/* Domain `domid` named `name` in slot 0..FAKE_XEN_DOMS-1 (an HVM guest, alive); its name goes
 * to /local/domain/<id>/name. */
struct fake_dom *fake_xen_add_dom(int slot, uint32_t domid, const char *name);
/* The live domain domid, or NULL. */
struct fake_dom *fake_xen_dom(uint32_t domid);
/* Gives d a new zeroed region of `pages` pages (page-aligned) as its granted pages. Returns it
 * (owned by d), or NULL if out of memory or out of slots. */
void *fake_xen_new_region(struct fake_dom *d, uint32_t pages);

/* The store: path = value (len bytes, any bytes), path = value (a string), removal, and a copy
 * of a value (malloc'd, NUL-terminated, *ret_len bytes before the NUL; NULL if missing). */
void fake_xen_set_bytes(const char *path, const void *value, size_t len);
void fake_xen_set(const char *path, const char *value);
void fake_xen_rm(const char *path);
char *fake_xen_get(const char *path, unsigned *ret_len);

/* Queues a XenStore watch event (path and token must outlive it). Returns 0, or -ENOSPC. */
int fake_xen_queue_watch(const char *path, const char *token);

#endif /* IVMON_TEST_FAKE_XEN_H */
