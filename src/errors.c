/* SPDX-License-Identifier: MIT */
/* Error strings and the session's error and log channel. The library never prints: messages go
 * to the session's last-error buffer and, if the caller installed one, its log callback. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char open_error[IVMON_ERROR_MAX];

void ivmon__open_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(open_error, sizeof open_error, fmt, ap);
    va_end(ap);
}

const char *ivmon_open_error(void)
{
    return open_error;
}

static void log_message(ivmon *m, int level, const char *msg)
{
    if (m->log_fn)
        m->log_fn(m, level, msg, m->log_userdata);
}

void ivmon__log(ivmon *m, int level, const char *fmt, ...)
{
    char msg[IVMON_ERROR_MAX];
    va_list ap;
    if (!m->log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_message(m, level, msg);
}

/* Errors that a call returns are only recorded: the caller hears of them through the return
 * value and ivmon_get_error(), and logging them too would report them twice. */
int ivmon__error(ivmon *m, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    return err;
}

int ivmon__fail(ivmon *m, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    m->broken = err;
    return err;
}

/* A rejected record is not returned by any call (the session goes on), so it is logged. */
void ivmon__reject(ivmon *m, const char *why)
{
    snprintf(m->error, sizeof m->error, "rejected a record: %s", why);
    log_message(m, IVMON_LOG_WARNING, m->error);
}

const char *ivmon_get_error(const ivmon *m)
{
    return m->error;
}

void ivmon_set_log(ivmon *m, ivmon_log_fn fn, void *userdata)
{
    m->log_fn = fn;
    m->log_userdata = userdata;
}

const char *ivmon_strerror(int err)
{
    /* Checked before negating: -INT_MIN does not exist. */
    if (err >= 0 || err <= -4096)
        return "unknown error";
    switch (-err) {
    case EPROTO:
        return "the peer broke the protocol";
    case EBADMSG:
        return "malformed record";
    case EPROTONOSUPPORT:
        return "transport not built into this libivmon";
    case ENODEV:
        return "no such target";
    case EOPNOTSUPP:
        return "operation not supported by this transport";
    case EINVAL:
        return "invalid argument";
    case ENOBUFS:
        return "no room in the ring";
    default:
        /* strerror's buffer is static and may change under other threads; glibc's table for
         * known values is not, and unknown values fall through to a fixed string. */
        return strerrordesc_np(-err) ? strerrordesc_np(-err) : "unknown error";
    }
}

const char *ivmon_version(void)
{
    return IVMON_VERSION_STRING;
}
