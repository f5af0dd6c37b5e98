/* SPDX-License-Identifier: MIT */
/*
 * The Xen transports' rendezvous: the XenStore keys a guest agent publishes for xen+shm: and the
 * limits the host enforces on them, and the key a xen+vcpu: monitor keeps while it serves.
 * Shared verbatim by the host library (backends/xen/) and the guest agent
 * (guest/transport_xen_shm.c, guest/transport_xen_vcpu.c), like proto.h; docs/PROTOCOL.md
 * ("Xen") describes every key. Macros only, no dependencies, so a kernel module or another agent
 * can use it.
 *
 * Everything here is written by the guest and read by dom0: the host treats every value as
 * hostile text and parses it strictly (decimal, no sign, no spaces, no leading zeros, bounded).
 */
#ifndef IVMON_XEN_H
#define IVMON_XEN_H

/* The directory, relative to the guest's home /local/domain/<domid> (a relative XenStore path
 * from inside the guest). libxl creates <home>/data writable by the guest itself. */
#define IVMON_XEN_XS_DIR "data/ivmon"

/* Keys inside IVMON_XEN_XS_DIR. */
#define IVMON_XEN_XS_LAYOUT     "layout"        /* this layout's version: IVMON_XEN_LAYOUT */
#define IVMON_XEN_XS_PROTO      "proto"         /* "MAJOR.MINOR" of the ring protocol */
#define IVMON_XEN_XS_BACKEND    "backend-id"    /* the domain the pages are granted to */
#define IVMON_XEN_XS_PAGES      "pages"         /* granted pages: 1 header page + data pages */
#define IVMON_XEN_XS_GREF_DIR   "gref"          /* gref/0, gref/1, ...: the pages' grant refs */
#define IVMON_XEN_XS_EVTCHN     "event-channel" /* unbound port for the backend domain */
#define IVMON_XEN_XS_GENERATION "generation"    /* non-zero, new for every agent start */
#define IVMON_XEN_XS_STATE      "state"         /* IVMON_XEN_STATE_*; written last */

#define IVMON_XEN_LAYOUT        1
#define IVMON_XEN_STATE_READY   "ready"  /* every other key is in place */
#define IVMON_XEN_STATE_CLOSING "closed" /* the agent stopped; the ring holds its last records */

/* gref/K holds refs K*IVMON_XEN_GREFS_PER_KEY .. in page order, as decimal numbers separated by
 * one space: 128 refs of at most 10 digits stay far below XenStore's 4096-byte values. */
#define IVMON_XEN_GREFS_PER_KEY 128

/* Pages: one ring header page (IVMON_RING_HDR_SIZE) and a power-of-two number of data pages.
 * The guest's gntalloc grants at most 1024 pages by default (its `limit` parameter), so agents
 * default to far less; the host accepts up to IVMON_XEN_DATA_PAGES_MAX. */
#define IVMON_XEN_PAGE_SIZE          4096u
#define IVMON_XEN_DATA_PAGES_MIN     16u   /* 64 KiB, IVMON_RING_MIN_DATA */
#define IVMON_XEN_DATA_PAGES_DEFAULT 64u   /* 256 KiB */
#define IVMON_XEN_DATA_PAGES_MAX     16384 /* 64 MiB */

/* Longest value the host reads for any key (a gref/K list, the longest, needs 128 * 11). */
#define IVMON_XEN_XS_VALUE_MAX 2048u

/* xen+vcpu: relative to the guest's home, written by the monitor in dom0 (the guest may read it,
 * not write it): the monitor's pid, present from the moment guest requests reach it until it
 * stops serving. A monitor that dies leaves it, and the next one takes the ring over. The agent
 * sends only while it is there: without a monitor Xen drops guest requests without a trace. */
#define IVMON_XEN_XS_VCPU_MONITOR "ivmon-vcpu-monitor"

#endif /* IVMON_XEN_H */
