/* SPDX-License-Identifier: MIT */
/* For test programs that run a scenario to its end and report every failed expectation on the
 * way (rather than stopping at the first, as cmocka does): CHECK(cond, fmt, ...) prints the
 * condition and the message and counts it in `failures`; main returns failures ? 1 : 0. */
#ifndef IVMON_TESTS_CHECK_H
#define IVMON_TESTS_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <ivmon/ivmon.h>

static int failures;

static inline __attribute__((format(printf, 4, 5))) void
check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

#define CHECK(cond, ...) ((cond) ? (void)0 : check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__))

/* Session counter s, 0 if there is no such counter. */
static inline uint64_t stat_of(ivmon *m, unsigned s)
{
    uint64_t v = 0;
    ivmon_get_stat(m, s, &v);
    return v;
}

#endif /* IVMON_TESTS_CHECK_H */
