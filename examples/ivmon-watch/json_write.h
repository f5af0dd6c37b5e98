/* SPDX-License-Identifier: MIT */
/*
 * A small streaming JSON writer for ivmon-watch, and the strict UTF-8 decoder it is built on.
 *
 * File names are arbitrary bytes, JSON strings are Unicode. To keep the output both valid and
 * lossless, json_write_string() uses Python's "surrogateescape" convention:
 *   - a valid UTF-8 sequence is written as is, except that '"' and '\' get their two-character
 *     escapes and the control characters (U+0000..U+001F, U+007F, U+0080..U+009F) are written
 *     as \u00xx, so that neither a JSON parser nor a terminal showing the line trips on them;
 *   - every byte that is not part of a valid UTF-8 sequence is written as the lone low surrogate
 *     \udcXX, XX being the byte (always 80..ff: bytes below 0x80 are valid UTF-8).
 * In Python, json.loads(line)["path"].encode("utf-8", "surrogateescape") gives the original
 * bytes back. Strict parsers that refuse lone surrogates (or replace them with U+FFFD) still
 * parse the line; only the invalid bytes are lost to them.
 *
 * The writer streams into a stdio FILE and keeps no buffer of its own; write errors are left in
 * the FILE's error indicator for the caller to check once per line with ferror().
 */
#ifndef IVMON_WATCH_JSON_WRITE_H
#define IVMON_WATCH_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Decodes one UTF-8 sequence at the start of s (n bytes available). Strict, as RFC 3629 and
 * Unicode table 3-7: no overlong forms, no encoded surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no sequence cut short by the end of the buffer. Returns the sequence length (1..4)
 * and stores the code point in *ret_cp, or returns 0 (and leaves *ret_cp alone) if the bytes at
 * s do not start a valid sequence or n is 0.
 */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp);

/* Writes the n bytes at s (NUL bytes included) as one quoted JSON string, encoded as described
 * at the top of this file. */
void json_write_string(FILE *f, const void *s, size_t n);

/* Nesting limit of struct json_writer; deeper nesting is a programming error and aborts. */
#define JSON_MAX_DEPTH 31u

/* Tracks where the writer is inside one JSON value so that commas come out right. */
struct json_writer {
    FILE *f;
    unsigned depth;      /* open objects and arrays */
    uint32_t has_member; /* bit d: the container at depth d already has a member */
    bool after_key;      /* a key was written: the next value completes the member */
};

void json_writer_init(struct json_writer *w, FILE *f);

void json_begin_object(struct json_writer *w);
void json_end_object(struct json_writer *w);
void json_begin_array(struct json_writer *w);
void json_end_array(struct json_writer *w);

/* Inside an object: writes the member name; the next call must write its value. */
void json_key(struct json_writer *w, const char *key);

/* Values. json_str() takes a NUL-terminated byte string; NULL is written as null. */
void json_str(struct json_writer *w, const char *s);
void json_strn(struct json_writer *w, const void *s, size_t n);
void json_u64(struct json_writer *w, uint64_t v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);

/* Shorthands for a member: key and value. */
void json_kv_str(struct json_writer *w, const char *key, const char *s);
void json_kv_u64(struct json_writer *w, const char *key, uint64_t v);

#endif /* IVMON_WATCH_JSON_WRITE_H */
