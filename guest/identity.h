/* SPDX-License-Identifier: MIT */
/* Who the producer is: the values a HELLO record carries, and the clocks records use. */
#ifndef IVMON_GUEST_IDENTITY_H
#define IVMON_GUEST_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_REALTIME in nanoseconds since 1970: the wire's time_ns. */
uint64_t ivmon_guest_realtime_ns(void);

/* CLOCK_MONOTONIC in nanoseconds: for timeouts and rate limits. */
uint64_t ivmon_guest_monotonic_ns(void);

/* This process's CPU time (user + system, CLOCK_PROCESS_CPUTIME_ID) in nanoseconds: for the
 * tools' CPU per record. */
uint64_t ivmon_guest_cpu_ns(void);

/* Reads the kernel's boot id (/proc/sys/kernel/random/boot_id, a UUID) as 16 bytes.
 * Returns 0, or a negative errno (-EBADMSG if the file does not hold a UUID). */
int ivmon_guest_boot_id(uint8_t ret[16]);

/* 16 random bytes from getrandom(). Returns 0 or a negative errno. */
int ivmon_guest_random_id(uint8_t ret[16]);

/* Encodes this process's HELLO record into buf (cap bytes, 8-byte aligned): boot id, a fresh
 * random instance id, getpid(), the uname host name, and the agent string
 * "<program> <version> linux". Returns the record length or a negative errno. A missing boot id
 * is not fatal (zeros are sent) because the HELLO matters more than that field. */
int ivmon_guest_hello_encode(void *buf, size_t cap, uint32_t caps, const char *program);

#endif /* IVMON_GUEST_IDENTITY_H */
