/* SPDX-License-Identifier: MIT */
/*
 * libivmon: real-time file access monitoring of virtual machines.
 *
 * One `ivmon` handle is one session: one guest agent, reached over one transport picked by URI.
 * The library runs inside the caller's event loop: poll ivmon_get_fd() for ivmon_get_events()
 * with ivmon_get_timeout(), then call ivmon_process(), which dispatches what is ready to the
 * handlers and returns. It starts no threads and never logs except through ivmon_set_log().
 *
 * Threads: a handle and the events it hands out belong to one thread at a time. Different
 * handles may be used from different threads concurrently.
 *
 * Errors: every call that can fail returns a negative errno value; ivmon_strerror() names it
 * and ivmon_get_error() says what went wrong on a session in words.
 */
#ifndef IVMON_IVMON_H
#define IVMON_IVMON_H

#include <stddef.h>
#include <stdint.h>

#include "ivmon/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IVMON_BUILDING_LIBRARY) && defined(__GNUC__)
#define IVMON_EXPORT __attribute__((visibility("default")))
#else
#define IVMON_EXPORT
#endif

typedef struct ivmon ivmon;
typedef struct ivmon_event ivmon_event;

/* ---- Sessions ------------------------------------------------------------------------------ */

/*
 * Opens a session on the transport named by uri (see README.md for the URI table), e.g.
 * "shm:demo" or "shm:/dev/shm/demo?size=4M". flags must be 0.
 * On success stores a new handle in *ret (free it with ivmon_close) and returns 0.
 * Returns -EINVAL for a malformed URI, an unknown scheme or option, or non-zero flags;
 * -EPROTONOSUPPORT for a scheme whose backend was not compiled in; -ENODEV if the target does
 * not exist; -EPROTO if the target exists but breaks the protocol; -ENOMEM; or another negative
 * errno from the system. On failure *ret is untouched and ivmon_open_error() explains.
 */
IVMON_EXPORT int ivmon_open(ivmon **ret, const char *uri, unsigned flags);

/* The reason the calling thread's last failed ivmon_open() gave, or "" if none. The string is
 * valid until the thread's next ivmon_open(). */
IVMON_EXPORT const char *ivmon_open_error(void);

/* Closes the session and frees the handle. Accepts NULL. Events handed out are invalid after
 * this; copies made with ivmon_event_copy() stay valid. */
IVMON_EXPORT void ivmon_close(ivmon *m);

/* The URI the session was opened with (owned by the handle). */
IVMON_EXPORT const char *ivmon_get_uri(const ivmon *m);

/* ---- The caller's event loop --------------------------------------------------------------- */

/* The file descriptor to poll, owned by the handle; it never changes during the session. */
IVMON_EXPORT int ivmon_get_fd(const ivmon *m);

/* The poll(2) events to wait for on that fd (POLLIN). */
IVMON_EXPORT int ivmon_get_events(const ivmon *m);

/* Longest time in milliseconds to wait before calling ivmon_process() even if the fd stays
 * quiet: 0 when work is already pending (the previous call stopped at its budget), otherwise a
 * periodic check of the transport. Never negative. */
IVMON_EXPORT int ivmon_get_timeout(const ivmon *m);

/* Dispatches what is ready, at most a bounded number of records per call (URI option budget=,
 * default 256) so that one busy session cannot starve the others of a shared loop. It never
 * blocks and may be called whether or not the fd is readable (it returns 0 when nothing is ready;
 * it never returns -EAGAIN or -EINTR). flags must be 0. Returns the number of records taken off
 * the transport (>= 0; dispatched or rejected as malformed); -EINVAL for non-zero flags; a
 * handler's negative return; -EPROTO once the session is broken (the peer violated the
 * protocol); or -ENODEV once the target is gone (xen+shm:, xen+vcpu: a destroyed domain, after
 * the records it left were dispatched). After -EPROTO or -ENODEV every later call returns the
 * same and ivmon_get_error() says why; close the session. Other sessions are never affected.
 * Malformed records do not make the call fail: they are counted (IVMON_STAT_MALFORMED) and
 * logged at warning level. */
IVMON_EXPORT int ivmon_process(ivmon *m, unsigned flags);

/* The last error recorded on the session in words, or "" if none. Owned by the handle. */
IVMON_EXPORT const char *ivmon_get_error(const ivmon *m);

/* ---- Events -------------------------------------------------------------------------------- */

/* Event types. The numbers are those of the wire record types. */
#define IVMON_EVENT_ANY       0u /* handler for every type without its own handler */
#define IVMON_EVENT_HELLO     1u /* an agent (re)started: identity, boot id, host name */
#define IVMON_EVENT_FILE      2u /* a file access */
#define IVMON_EVENT_LOST      3u /* records the producer had to drop */
#define IVMON_EVENT_HEARTBEAT 4u /* the producer is alive */
#define IVMON_EVENT_MAX       4u

/* A handler gets a borrowed event, valid only during the call. Returning a negative errno
 * stops ivmon_process(), which returns that value; the event counts as delivered and the session
 * stays usable. The library itself never returns -ECANCELED, so a handler that wants to stop the
 * caller's loop can return it and recognise it. */
typedef int (*ivmon_handler)(ivmon *m, const ivmon_event *ev, void *userdata);

/* Sets (or with fn NULL clears) the handler for one event type (IVMON_EVENT_*), replacing any
 * earlier one. Returns 0 or -EINVAL for an unknown type. */
IVMON_EXPORT int ivmon_set_handler(ivmon *m, unsigned type, ivmon_handler fn, void *userdata);

/* File operations, as on the wire. */
#define IVMON_OP_OPEN        1u
#define IVMON_OP_MODIFY      2u
#define IVMON_OP_CLOSE_WRITE 3u
#define IVMON_OP_CREATE      4u
#define IVMON_OP_DELETE      5u
#define IVMON_OP_RENAME      6u
#define IVMON_OP_ATTRIB      7u
#define IVMON_OP_EXEC        8u
#define IVMON_OP_MAX         8u

/* Lower-case operation name ("open", "modify", "close_write", "create", "delete", "rename",
 * "attrib", "exec"), or NULL for an unknown value. */
IVMON_EXPORT const char *ivmon_op_name(unsigned op);
/* The operation with that name, or -EINVAL. */
IVMON_EXPORT int ivmon_op_from_name(const char *name);

/* Accessors. Every accessor accepts every event type and returns 0 or "" for fields the type
 * does not have. Strings are NUL-terminated bytes with no NUL inside (file names need not be
 * UTF-8), owned by the event. */
IVMON_EXPORT unsigned ivmon_event_type(const ivmon_event *ev);
IVMON_EXPORT uint64_t ivmon_event_seq(const ivmon_event *ev);
IVMON_EXPORT uint64_t ivmon_event_time_ns(const ivmon_event *ev);   /* guest CLOCK_REALTIME */
IVMON_EXPORT const char *ivmon_event_source(const ivmon_event *ev); /* the session's URI */

/* IVMON_EVENT_FILE */
IVMON_EXPORT unsigned ivmon_event_op(const ivmon_event *ev);
#define IVMON_FILE_DIR       0x1u /* the object is a directory */
#define IVMON_FILE_TRUNCATED 0x2u /* a path was cut at 4096 bytes */
#define IVMON_FILE_NO_PROC                                                                         \
    0x4u /* the process had exited before the agent saw it: pid and tid                            \
          * are right, ppid is 0, uid and gid are 0xffffffff (unknown),                            \
          * comm and exe are what could still be read, maybe "" */
IVMON_EXPORT unsigned ivmon_event_file_flags(const ivmon_event *ev);
IVMON_EXPORT uint32_t ivmon_event_pid(const ivmon_event *ev);
IVMON_EXPORT uint32_t ivmon_event_tid(const ivmon_event *ev);
IVMON_EXPORT uint32_t ivmon_event_ppid(const ivmon_event *ev);
IVMON_EXPORT uint32_t ivmon_event_uid(const ivmon_event *ev);
IVMON_EXPORT uint32_t ivmon_event_gid(const ivmon_event *ev);
IVMON_EXPORT const char *ivmon_event_comm(const ivmon_event *ev);
IVMON_EXPORT const char *ivmon_event_exe(const ivmon_event *ev);
IVMON_EXPORT const char *ivmon_event_path(const ivmon_event *ev);
IVMON_EXPORT const char *ivmon_event_new_path(const ivmon_event *ev); /* renames only */

/* IVMON_EVENT_LOST */
#define IVMON_LOST_RING_FULL       1u
#define IVMON_LOST_SOURCE_OVERFLOW 2u
IVMON_EXPORT unsigned ivmon_event_lost_reason(const ivmon_event *ev);
IVMON_EXPORT uint64_t ivmon_event_lost_count(const ivmon_event *ev);
IVMON_EXPORT uint64_t ivmon_event_lost_first(const ivmon_event *ev);
IVMON_EXPORT uint64_t ivmon_event_lost_last(const ivmon_event *ev);

/* IVMON_EVENT_HELLO */
IVMON_EXPORT const char *ivmon_event_hostname(const ivmon_event *ev);
IVMON_EXPORT const char *ivmon_event_agent(const ivmon_event *ev);
IVMON_EXPORT uint32_t ivmon_event_agent_pid(const ivmon_event *ev);
#define IVMON_CAP_RENAME_PAIR  0x1u /* renames carry both names */
#define IVMON_CAP_EXEC         0x2u /* exec events */
#define IVMON_CAP_GUEST_FILTER 0x4u /* the agent filters before sending */
IVMON_EXPORT uint32_t ivmon_event_caps(const ivmon_event *ev);
IVMON_EXPORT unsigned ivmon_event_proto_version(const ivmon_event *ev); /* major << 16 | minor */
/* Copies the 16-byte boot id or instance id into ret. */
IVMON_EXPORT void ivmon_event_boot_id(const ivmon_event *ev, uint8_t ret[16]);
IVMON_EXPORT void ivmon_event_instance_id(const ivmon_event *ev, uint8_t ret[16]);

/* IVMON_EVENT_HEARTBEAT */
IVMON_EXPORT uint64_t ivmon_event_produced(const ivmon_event *ev);
IVMON_EXPORT uint64_t ivmon_event_dropped(const ivmon_event *ev);

/* Copies a borrowed event so it outlives the handler and the session. Returns 0 and stores the
 * copy in *ret, or -ENOMEM. Free with ivmon_event_free(), which accepts NULL. */
IVMON_EXPORT int ivmon_event_copy(const ivmon_event *ev, ivmon_event **ret);
IVMON_EXPORT void ivmon_event_free(ivmon_event *ev);

/* ---- Statistics ---------------------------------------------------------------------------- */

/* Per-session counters, over the session's life. Sequence accounting, exact at any moment:
 *   delivered + lost + malformed + missed == seq_span
 * where seq_span counts the sequence numbers covered by every producer instance seen (for a
 * single instance: last_seq - first_seq + 1), plus one for each malformed record that came
 * before any record whose number could be trusted. */
#define IVMON_STAT_RECORDS          0u  /* records taken off the transport, valid or not */
#define IVMON_STAT_BYTES            1u  /* their bytes */
#define IVMON_STAT_DELIVERED        2u  /* records decoded and dispatched (every type) */
#define IVMON_STAT_LOST             3u  /* records the producer reported dropped */
#define IVMON_STAT_MALFORMED        4u  /* records rejected as invalid */
#define IVMON_STAT_MISSED           5u  /* sequence numbers that vanished without a loss report */
#define IVMON_STAT_WAKEUPS          6u  /* doorbells received */
#define IVMON_STAT_SOURCE_OVERFLOWS 7u  /* guest kernel queue overflows reported */
#define IVMON_STAT_RESTARTS         8u  /* producer restarts seen (hello with a new instance id) */
#define IVMON_STAT_FIRST_SEQ        9u  /* first sequence number seen from the current instance */
#define IVMON_STAT_LAST_SEQ         10u /* last sequence number seen from the current instance */
#define IVMON_STAT_SEQ_SPAN         11u /* sequence numbers covered, summed over producer instances */
#define IVMON_STAT_REATTACHES       12u /* re-attached to a restarted target (libvirt: domain) */
/* Register transports (kvm:, xen+vcpu:), fragments as in docs/PROTOCOL.md. A record destroyed
 * in transit never reaches the counters above: its sequence number counts as missed once a later
 * record arrives, so the identity holds, and these say what happened. Given up ("damaged"): a
 * fragment went missing, a new record began before the end, or the record CRC or padding was
 * wrong. */
#define IVMON_STAT_FRAGMENTS       13u /* traps handed to the library */
#define IVMON_STAT_FRAG_REJECTED   14u /* refused alone: no magic, bad check, field out of range */
#define IVMON_STAT_FRAG_UNMATCHED  15u /* continuations of no record begun, or of another one */
#define IVMON_STAT_FRAG_DUPLICATES 16u /* fragments already received */
#define IVMON_STAT_FRAG_DAMAGED    17u /* records given up as damaged (see above) */
#define IVMON_STAT_FRAG_EXPIRED    18u /* records given up as stalled (time or fragment count) */
#define IVMON_STAT_OVERRUNS        19u /* complete records dropped: the consumer fell behind */
#define IVMON_STAT_MAX             19u

/* Stores counter `stat` in *ret and returns 0, or returns -EINVAL for an unknown counter. */
IVMON_EXPORT int ivmon_get_stat(const ivmon *m, unsigned stat, uint64_t *ret);
/* Short snake_case name of a counter ("records", "bytes", ...), or NULL. */
IVMON_EXPORT const char *ivmon_stat_name(unsigned stat);

/* ---- Errors and logging -------------------------------------------------------------------- */

/* A short description of a negative errno as libivmon uses it (e.g. -EPROTO: "the peer broke
 * the protocol"); falls back to strerror's text. Never NULL; static storage. */
IVMON_EXPORT const char *ivmon_strerror(int err);

#define IVMON_LOG_ERR     3
#define IVMON_LOG_WARNING 4
#define IVMON_LOG_INFO    6
#define IVMON_LOG_DEBUG   7
typedef void (*ivmon_log_fn)(ivmon *m, int level, const char *msg, void *userdata);
/* Installs a log sink for this session (NULL: none, the default). Messages are complete
 * sentences without a trailing newline, valid during the call only. */
IVMON_EXPORT void ivmon_set_log(ivmon *m, ivmon_log_fn fn, void *userdata);

/* The library version, e.g. "0.1.0". */
IVMON_EXPORT const char *ivmon_version(void);

#ifdef __cplusplus
}
#endif

#endif /* IVMON_IVMON_H */
