/* SPDX-License-Identifier: MIT */
/* Formatting of event fields shared by the text and the JSON output. */
#ifndef IVMON_WATCH_FORMAT_H
#define IVMON_WATCH_FORMAT_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* "2554-07-21T23:34:33.709551615Z" (the largest uint64_t nanoseconds) is 30 bytes. */
#define FORMAT_TIME_SIZE 40

/* Writes ns (nanoseconds since 1970, UTC) as RFC 3339 with nanoseconds, e.g.
 * "2026-11-25T17:40:01.123456789Z", into buf. The guest's clock is not ours to trust, but any
 * uint64_t value formats; only a libc that cannot convert it (32-bit time_t) gets the raw
 * seconds. */
static inline void format_time(char buf[FORMAT_TIME_SIZE], uint64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000u);
    unsigned frac = (unsigned)(ns % 1000000000u);
    struct tm tm;
    size_t n = 0;

    if (gmtime_r(&sec, &tm))
        n = strftime(buf, FORMAT_TIME_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0)
        snprintf(buf, FORMAT_TIME_SIZE, "%llu.%09u", (unsigned long long)(ns / 1000000000u), frac);
    else
        snprintf(buf + n, FORMAT_TIME_SIZE - n, ".%09uZ", frac);
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" and its NUL. */
#define FORMAT_UUID_SIZE 37

/* Writes a 16-byte id (boot id, instance id) in the usual UUID form, lower case. */
static inline void format_uuid(char buf[FORMAT_UUID_SIZE], const uint8_t id[16])
{
    snprintf(buf, FORMAT_UUID_SIZE,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", id[0], id[1],
             id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12], id[13],
             id[14], id[15]);
}

#endif /* IVMON_WATCH_FORMAT_H */
