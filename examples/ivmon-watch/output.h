/* SPDX-License-Identifier: MIT */
/*
 * The two output formats of ivmon-watch. Each call writes one complete line to f; stdio errors
 * are left in f's error indicator for the caller (one ferror() per line).
 */
#ifndef IVMON_WATCH_OUTPUT_H
#define IVMON_WATCH_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include <ivmon/ivmon.h>

struct output_options {
    bool verbose; /* text: add seq, tid, ppid, gid and the instance id */
    bool utf8;    /* text: the user's locale is UTF-8, so printable UTF-8 may pass unescaped */
};

/* Human-readable line, e.g.
 * "2026-11-25T17:40:01.123456789Z shm:demo create /tmp/x/a pid=123 uid=0 comm=touch exe=...". */
void output_text_event(FILE *f, const ivmon_event *ev, const struct output_options *opt);

/* Writes s with every byte a terminal could act on (controls, invalid UTF-8, bidirectional
 * overrides, or any byte >= 0x80 unless opt->utf8) as \xNN, and '\' as "\\". */
void output_text_escaped(FILE *f, const char *s, bool utf8);

/* One JSON object per line; the schema is in main.c's --help and README. */
void output_json_event(FILE *f, const ivmon_event *ev, const struct output_options *opt);

/* {"type":"stats","source":...,<every counter>...,"error":null or the session's error}. */
void output_json_stats(FILE *f, const ivmon *m, const char *error);

#endif /* IVMON_WATCH_OUTPUT_H */
