/* SPDX-License-Identifier: MIT */
/*
 * The internal contract between the core and the backends. Not installed.
 *
 * Division of labour (SQLite VFS style): the core owns all protocol logic -- validation,
 * sequence accounting, dispatch, statistics. A backend only maps memory or moves bytes and tells
 * the core when to look; it hands records to ivmon__ring_drain() or ivmon__ingest().
 */
#ifndef IVMON_INTERNAL_H
#define IVMON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ivmon/ivmon.h"
#include "ivmon/proto.h"
#include "ring.h"

#define IVMON_URI_MAX        4096u
#define IVMON_URI_PARAMS_MAX 16u
#define IVMON_ERROR_MAX      512u
#define IVMON_BUDGET_DEFAULT 256u
#define IVMON_BUDGET_MAX     65536u

/* The backends' clock for timeouts and periodic checks: CLOCK_MONOTONIC, which wall-clock
 * changes do not move. */
static inline uint64_t ivmon__monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ivmon__monotonic_ms(void)
{
    return ivmon__monotonic_ns() / 1000000u;
}

/* ---- URIs ---------------------------------------------------------------------------------- */

struct ivmon_uri_param {
    char *key;
    char *value;
};

/* "scheme:target?k=v&k=v". All strings point into one private copy. */
typedef struct ivmon_uri {
    char *buf;
    char *scheme;
    char *target; /* may be "" */
    struct ivmon_uri_param params[IVMON_URI_PARAMS_MAX];
    unsigned n_params;
} ivmon_uri;

/* Parses uri into u. Returns 0, or -EINVAL with *ret_why set; -ENOMEM. */
int ivmon__uri_parse(ivmon_uri *u, const char *uri, const char **ret_why);
void ivmon__uri_free(ivmon_uri *u);
/* The value of key or NULL, marking it used. */
const char *ivmon__uri_get(ivmon_uri *u, const char *key);
/* Parses key as an unsigned size with optional K/M/G suffix. Returns 0 (leaving *ret alone if
 * the key is absent), or -EINVAL. */
int ivmon__uri_get_size(ivmon_uri *u, const char *key, uint64_t *ret);
/* Parses key as a boolean (0/1/true/false/yes/no). */
int ivmon__uri_get_bool(ivmon_uri *u, const char *key, int *ret);
/* The first key that is neither in known (NULL-terminated) nor in also (likewise; may be NULL),
 * or NULL if there is none. */
const char *ivmon__uri_unknown(const ivmon_uri *u, const char *const *known,
                               const char *const *also);

/* ---- Backends ------------------------------------------------------------------------------ */

#define IVMON_BACKEND_ABI 1u

struct ivmon_backend_ops {
    uint32_t abi;  /* IVMON_BACKEND_ABI */
    uint32_t size; /* sizeof(struct ivmon_backend_ops) the backend was built with */
    const char *name;
    const char *scheme; /* URI scheme it serves */
    size_t priv_size;   /* bytes the core allocates (zeroed) for the backend's state */
    /* URI option keys the backend understands, NULL-terminated. The core rejects any other key
     * before open runs, so a typo never has side effects such as creating a ring file. */
    const char *const *options;

    /* Attach to u->target. Errors per ivmon_open; -ENXIO means "not for me". On failure the
     * core calls close, which must cope with a half-opened backend. */
    int (*open)(ivmon *m, void *priv, ivmon_uri *u);
    void (*close)(ivmon *m, void *priv);
    int (*get_fd)(const void *priv);
    /* Milliseconds until the backend wants process called without a wakeup; -1: never. */
    int (*get_timeout)(const void *priv);
    /* Takes wakeups and dispatches at most budget records through the core. Returns the number
     * dispatched, or a negative errno; sets *ret_more when it stopped at the budget. */
    int (*process)(ivmon *m, void *priv, unsigned budget, int *ret_more);
};

/* The backend for scheme, or NULL. *ret_compiled_out is set when the scheme is known but its
 * backend was not built. */
const struct ivmon_backend_ops *ivmon__backend_find(const char *scheme, int *ret_compiled_out);

/* ---- Events -------------------------------------------------------------------------------- */

/* A decoded record. Strings are stored NUL-terminated in strbuf and referenced by offset, so the
 * struct can be copied with memcpy. */
struct ivmon_event {
    unsigned type;
    uint64_t seq;
    uint64_t time_ns;
    const char *source; /* borrowed (session URI) or owned (copies: source_owned) */
    char *source_owned;

    /* file */
    uint32_t op, flags, pid, tid, ppid, uid, gid;
    uint16_t off_comm, off_exe, off_path, off_new_path;
    /* hello */
    uint16_t off_hostname, off_agent;
    uint32_t caps, agent_pid, proto_version;
    uint8_t boot_id[16], instance_id[16];
    /* lost */
    uint32_t lost_reason;
    uint64_t lost_count, lost_first, lost_last;
    /* heartbeat */
    uint64_t produced, dropped;

    uint32_t strbuf_used;
    /* offset 0 always holds "", the value of every absent string */
    char strbuf[IVMON_COMM_MAX + 3 * IVMON_PATH_MAX + 8];
};

/* Validates the record in rec (len bytes, private memory) and decodes it into ev (type, seq,
 * time and type fields; source untouched). Pure function: no session state. Returns 0, or
 * -EBADMSG with *ret_why set. */
int ivmon__decode(const void *rec, size_t len, struct ivmon_event *ev, const char **ret_why);

/* ---- Sessions ------------------------------------------------------------------------------ */

struct ivmon_handler_slot {
    ivmon_handler fn;
    void *userdata;
};

struct ivmon {
    const struct ivmon_backend_ops *ops;
    void *priv;
    char *uri_string;
    unsigned budget;
    int pending; /* the last process stopped at the budget */
    int broken;  /* negative errno once the peer broke the protocol */

    struct ivmon_handler_slot handlers[IVMON_EVENT_MAX + 1];
    ivmon_log_fn log_fn;
    void *log_userdata;

    uint64_t stats[IVMON_STAT_MAX + 1];
    /* sequence accounting for the current producer instance */
    int have_seq;
    uint64_t next_seq;
    uint64_t span_closed; /* seq_span of the instances before the current one */
    uint8_t instance_id[16];

    char error[IVMON_ERROR_MAX];
    uint8_t recbuf[IVMON_REC_MAX] __attribute__((aligned(8))); /* private copy of one record */
    struct ivmon_event event;
};

/* Hands one record, already copied into private memory, to the core: validation, accounting,
 * dispatch. Returns 1 if dispatched, 0 if rejected (counted as malformed, the session goes on),
 * or the negative errno a handler returned. */
int ivmon__ingest(ivmon *m, const void *rec, size_t len);

/* Drains up to budget records from a ring into ivmon__ingest. Returns the number taken, or
 * -EPROTO after marking the session broken. Sets *ret_more if the budget ran out first.
 * Leaves the consumer awake; the caller decides when to prepare for sleep. */
int ivmon__ring_drain(ivmon *m, struct ivmon_ring *r, unsigned budget, int *ret_more);

/* Records a message as the session's last error and logs it. Returns err. */
int ivmon__error(ivmon *m, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Marks the session broken (all later process calls fail with err). Returns err. */
int ivmon__fail(ivmon *m, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records and logs (at warning level) a record rejected as malformed. */
void ivmon__reject(ivmon *m, const char *why);
void ivmon__log(ivmon *m, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets the thread's ivmon_open_error() text. */
void ivmon__open_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void ivmon__stat_add(ivmon *m, unsigned stat, uint64_t n);

#endif /* IVMON_INTERNAL_H */
