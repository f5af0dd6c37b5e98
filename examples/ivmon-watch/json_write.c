/* SPDX-License-Identifier: MIT */
/* The JSON writer of ivmon-watch. See json_write.h for the string encoding. */
#include "json_write.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp)
{
    if (n == 0)
        return 0;

    unsigned char c = s[0];
    if (c < 0x80) {
        *ret_cp = c;
        return 1;
    }

    /* The lead byte gives the length and the range allowed for the second byte; the narrower
     * ranges after E0, ED, F0 and F4 are what excludes overlong forms, surrogates and code
     * points above U+10FFFF (Unicode table 3-7). C0, C1 and F5..FF never start a sequence. */
    size_t len;
    uint32_t cp;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0fu;
        if (c == 0xe0)
            lo = 0xa0; /* E0 80..9F would be overlong */
        else if (c == 0xed)
            hi = 0x9f; /* ED A0..BF would be U+D800..U+DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07u;
        if (c == 0xf0)
            lo = 0x90; /* F0 80..8F would be overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* F4 90.. would be above U+10FFFF */
    } else {
        return 0;
    }

    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char b = s[i];
        if (b < lo || b > hi)
            return 0;
        lo = 0x80;
        hi = 0xbf;
        cp = (cp << 6) | (b & 0x3fu);
    }
    *ret_cp = cp;
    return len;
}

/* Writes "\u" and four lower-case hex digits. */
static void write_u_escape(FILE *f, unsigned v)
{
    static const char hex[] = "0123456789abcdef";
    char buf[6];

    buf[0] = '\\';
    buf[1] = 'u';
    for (int i = 0; i < 4; i++)
        buf[2 + i] = hex[(v >> (12 - 4 * i)) & 0xfu];
    fwrite(buf, 1, sizeof(buf), f);
}

/* Whether the code point is a C0 or C1 control, or DEL: written as \u00xx, see json_write.h. */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

void json_write_string(FILE *f, const void *data, size_t n)
{
    const unsigned char *s = data;
    size_t i = 0;

    putc('"', f);
    while (i < n) {
        /* Find the longest run that goes out unchanged and write it in one call: file names
         * are mostly plain, so this keeps the common case to a few stdio calls per string. */
        size_t end = i;
        while (end < n) {
            unsigned char c = s[end];
            if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
                end++;
                continue;
            }
            uint32_t cp;
            size_t len;
            if (c >= 0x80 && (len = utf8_decode(s + end, n - end, &cp)) != 0 && !is_control(cp)) {
                end += len;
                continue;
            }
            break;
        }
        if (end > i)
            fwrite(s + i, 1, end - i, f);
        i = end;
        if (i == n)
            break;

        unsigned char c = s[i];
        uint32_t cp;
        size_t len;
        if (c == '"' || c == '\\') {
            putc('\\', f);
            putc(c, f);
            i++;
        } else if ((len = utf8_decode(s + i, n - i, &cp)) != 0) {
            /* A valid sequence that stopped the run: a control character. */
            write_u_escape(f, cp);
            i += len;
        } else {
            /* Not valid UTF-8: escape this byte alone and resynchronise on the next one, as
             * Python's decoder does, so that both agree byte for byte. */
            write_u_escape(f, 0xdc00u | c);
            i++;
        }
    }
    putc('"', f);
}

void json_writer_init(struct json_writer *w, FILE *f)
{
    w->f = f;
    w->depth = 0;
    w->has_member = 0;
    w->after_key = false;
}

/* Writes the comma that separates this value from the previous member, if there is one. */
static void before_value(struct json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth == 0)
        return;
    uint32_t bit = UINT32_C(1) << w->depth;
    if (w->has_member & bit)
        putc(',', w->f);
    w->has_member |= bit;
}

static void open_container(struct json_writer *w, char open)
{
    before_value(w);
    /* The writer only serves fixed, shallow schemas; nesting this deep is a bug in the caller,
     * and the comma bookkeeping has no room for it. */
    if (w->depth >= JSON_MAX_DEPTH)
        abort();
    w->depth++;
    w->has_member &= ~(UINT32_C(1) << w->depth);
    putc(open, w->f);
}

static void close_container(struct json_writer *w, char close)
{
    if (w->depth == 0)
        abort();
    w->depth--;
    putc(close, w->f);
}

void json_begin_object(struct json_writer *w)
{
    open_container(w, '{');
}

void json_end_object(struct json_writer *w)
{
    close_container(w, '}');
}

void json_begin_array(struct json_writer *w)
{
    open_container(w, '[');
}

void json_end_array(struct json_writer *w)
{
    close_container(w, ']');
}

void json_key(struct json_writer *w, const char *key)
{
    before_value(w);
    json_write_string(w->f, key, strlen(key));
    putc(':', w->f);
    w->after_key = true;
}

void json_str(struct json_writer *w, const char *s)
{
    if (!s) {
        json_null(w);
        return;
    }
    json_strn(w, s, strlen(s));
}

void json_strn(struct json_writer *w, const void *s, size_t n)
{
    before_value(w);
    json_write_string(w->f, s, n);
}

void json_u64(struct json_writer *w, uint64_t v)
{
    before_value(w);
    fprintf(w->f, "%" PRIu64, v);
}

void json_bool(struct json_writer *w, bool v)
{
    before_value(w);
    fputs(v ? "true" : "false", w->f);
}

void json_null(struct json_writer *w)
{
    before_value(w);
    fputs("null", w->f);
}

void json_kv_str(struct json_writer *w, const char *key, const char *s)
{
    json_key(w, key);
    json_str(w, s);
}

void json_kv_u64(struct json_writer *w, const char *key, uint64_t v)
{
    json_key(w, key);
    json_u64(w, v);
}
