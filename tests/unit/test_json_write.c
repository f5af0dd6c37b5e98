/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ivmon-watch's JSON encoder (examples/ivmon-watch/json_write.c): strict UTF-8
 * decoding, and strings written so that valid UTF-8 passes, JSON escapes are right, and every
 * byte that is not valid UTF-8 comes out as \udcXX ("surrogateescape"). Links ivmon_watch_json.
 */
#define _GNU_SOURCE /* open_memstream */

#include <setjmp.h> /* cmocka.h needs these first */
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_write.h"

/* ---- Helpers ------------------------------------------------------------------------------- */

/* Encodes n bytes with json_write_string() and returns the text (free it). */
static char *encode(const void *bytes, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    json_write_string(f, bytes, n);
    assert_false(ferror(f));
    assert_int_equal(fclose(f), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len); /* no NUL came out */
    return text;
}

/* Checks that the n bytes encode to exactly `want` (quotes included). */
#define ENC(bytes, n, want)                                                                        \
    do {                                                                                           \
        char *got_ = encode((bytes), (n));                                                         \
        assert_string_equal(got_, (want));                                                         \
        free(got_);                                                                                \
    } while (0)

/* The same for a string literal, its terminating NUL left out. */
#define ENCS(lit, want) ENC((lit), sizeof(lit) - 1, (want))

/* ---- utf8_decode --------------------------------------------------------------------------- */

static void decode_ok(const char *s, size_t n, size_t want_len, uint32_t want_cp)
{
    uint32_t cp = 0xdeadbeef;

    assert_int_equal(utf8_decode((const unsigned char *)s, n, &cp), want_len);
    assert_int_equal(cp, want_cp);
}

static void decode_bad(const char *s, size_t n)
{
    uint32_t cp = 0xdeadbeef;

    assert_int_equal(utf8_decode((const unsigned char *)s, n, &cp), 0);
    assert_int_equal(cp, 0xdeadbeef); /* left alone on failure */
}

static void test_decode_valid(void **state)
{
    (void)state;
    decode_ok("A", 1, 1, 0x41);
    decode_ok("\x00", 1, 1, 0);
    decode_ok("\x7f", 1, 1, 0x7f);
    decode_ok("\xc2\x80", 2, 2, 0x80);             /* smallest 2-byte */
    decode_ok("\xc3\xa9z", 3, 2, 0xe9);            /* only the first sequence is taken */
    decode_ok("\xdf\xbf", 2, 2, 0x7ff);            /* largest 2-byte */
    decode_ok("\xe0\xa0\x80", 3, 3, 0x800);        /* smallest 3-byte */
    decode_ok("\xe2\x82\xac", 3, 3, 0x20ac);       /* euro sign */
    decode_ok("\xed\x9f\xbf", 3, 3, 0xd7ff);       /* just below the surrogates */
    decode_ok("\xee\x80\x80", 3, 3, 0xe000);       /* just above them */
    decode_ok("\xef\xbf\xbf", 3, 3, 0xffff);       /* a noncharacter, but a valid scalar */
    decode_ok("\xf0\x90\x80\x80", 4, 4, 0x10000);  /* smallest 4-byte */
    decode_ok("\xf0\x9f\x98\x80", 4, 4, 0x1f600);  /* emoji */
    decode_ok("\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff); /* largest code point */
}

static void test_decode_invalid(void **state)
{
    (void)state;
    decode_bad("", 0);
    decode_bad("\x80", 1); /* continuation byte first */
    decode_bad("\xbf", 1);
    decode_bad("\xc0\x80", 2);         /* overlong NUL */
    decode_bad("\xc1\xbf", 2);         /* overlong U+007F */
    decode_bad("\xe0\x80\x80", 3);     /* overlong */
    decode_bad("\xe0\x9f\xbf", 3);     /* overlong U+07FF */
    decode_bad("\xf0\x8f\xbf\xbf", 4); /* overlong U+FFFF */
    decode_bad("\xed\xa0\x80", 3);     /* U+D800 */
    decode_bad("\xed\xbf\xbf", 3);     /* U+DFFF */
    decode_bad("\xf4\x90\x80\x80", 4); /* U+110000 */
    decode_bad("\xf5\x80\x80\x80", 4); /* lead byte above F4 */
    decode_bad("\xff", 1);
    decode_bad("\xc3", 1); /* cut short */
    decode_bad("\xe2\x82", 2);
    decode_bad("\xf0\x9f\x98", 3);
    decode_bad("\xe2\x82\xac", 2); /* a valid sequence, but n says it is cut */
    decode_bad("\xc3\x41", 2);     /* not a continuation byte */
    decode_bad("\xe2\xc3\xa9", 3);
}

/* ---- json_write_string: valid input -------------------------------------------------------- */

static void test_ascii(void **state)
{
    (void)state;
    ENCS("", "\"\"");
    ENCS("hello", "\"hello\"");
    ENCS("/tmp/x/a b", "\"/tmp/x/a b\"");
    ENCS("/etc/passwd~", "\"/etc/passwd~\""); /* '/' needs no escape and gets none */
    ENCS(" !#$%&'()*+,-.:;<=>?@[]^_`{|}", "\" !#$%&'()*+,-.:;<=>?@[]^_`{|}\"");
}

static void test_escapes(void **state)
{
    (void)state;
    ENCS("a\"b", "\"a\\\"b\"");
    ENCS("a\\b", "\"a\\\\b\"");
    ENCS("\"\\\"", "\"\\\"\\\\\\\"\"");
    /* Control characters all as \u00xx (no \n-style short forms), lower-case hex. */
    ENCS("\n", "\"\\u000a\"");
    ENCS("a\tb\rc", "\"a\\u0009b\\u000dc\"");
    ENCS("\x01\x1f", "\"\\u0001\\u001f\"");
    ENCS("\x1b[31m", "\"\\u001b[31m\""); /* a terminal escape sequence is defused */
    ENCS("\x7f", "\"\\u007f\"");
    ENC("a\0b", 3, "\"a\\u0000b\""); /* NUL inside, when the length says so */
}

static void test_multibyte(void **state)
{
    (void)state;
    ENCS("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    ENCS("\xe2\x82\xac 5", "\"\xe2\x82\xac 5\"");
    ENCS("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    ENCS("\xe6\x97\xa5\xe6\x9c\xac/\xd0\xb4", "\"\xe6\x97\xa5\xe6\x9c\xac/\xd0\xb4\"");
    ENCS("\xc2\xa0", "\"\xc2\xa0\"");                 /* U+00A0: first after the C1 block */
    ENCS("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");         /* U+D7FF */
    ENCS("\xee\x80\x80", "\"\xee\x80\x80\"");         /* U+E000 */
    ENCS("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");         /* U+FFFF */
    ENCS("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    /* C1 controls are valid UTF-8 but control characters: escaped by code point. */
    ENCS("\xc2\x80", "\"\\u0080\"");
    ENCS("\xc2\x85", "\"\\u0085\"");
    ENCS("\xc2\x9b", "\"\\u009b\"");
    ENCS("\xc2\x9f", "\"\\u009f\"");
}

/* ---- json_write_string: bytes that are not UTF-8 ------------------------------------------- */

static void test_lone_bytes(void **state)
{
    (void)state;
    ENCS("\x80", "\"\\udc80\"");
    ENCS("\xff", "\"\\udcff\"");
    ENCS("a\xfe/z", "\"a\\udcfe/z\"");
    ENCS("\xbf\xbf", "\"\\udcbf\\udcbf\"");
    /* Latin-1 é between valid text. */
    ENCS("caf\xe9.txt", "\"caf\\udce9.txt\"");
}

static void test_overlong(void **state)
{
    (void)state;
    ENCS("\xc0\xaf", "\"\\udcc0\\udcaf\""); /* '/' in 2 bytes: the classic bypass */
    ENCS("\xc0\x80", "\"\\udcc0\\udc80\""); /* NUL in 2 bytes (modified UTF-8) */
    ENCS("\xc1\xbf", "\"\\udcc1\\udcbf\"");
    ENCS("\xe0\x80\xaf", "\"\\udce0\\udc80\\udcaf\"");
    ENCS("\xe0\x9f\xbf", "\"\\udce0\\udc9f\\udcbf\""); /* U+07FF in 3 bytes */
    ENCS("\xf0\x80\x80\xaf", "\"\\udcf0\\udc80\\udc80\\udcaf\"");
    ENCS("\xf0\x8f\xbf\xbf", "\"\\udcf0\\udc8f\\udcbf\\udcbf\""); /* U+FFFF in 4 bytes */
}

static void test_surrogates(void **state)
{
    (void)state;
    ENCS("\xed\xa0\x80", "\"\\udced\\udca0\\udc80\""); /* U+D800 */
    ENCS("\xed\xaf\xbf", "\"\\udced\\udcaf\\udcbf\""); /* U+DBFF */
    ENCS("\xed\xb0\x80", "\"\\udced\\udcb0\\udc80\""); /* U+DC00 */
    ENCS("\xed\xbf\xbf", "\"\\udced\\udcbf\\udcbf\""); /* U+DFFF */
    /* U+DC80 encoded directly must not pass for an escaped 0x80. */
    ENCS("\xed\xb2\x80", "\"\\udced\\udcb2\\udc80\"");
    /* A CESU-8 surrogate pair for U+1F600 is two invalid sequences, not one character. */
    ENCS("\xed\xa0\xbd\xed\xb8\x80", "\"\\udced\\udca0\\udcbd\\udced\\udcb8\\udc80\"");
}

static void test_above_max(void **state)
{
    (void)state;
    ENCS("\xf4\x90\x80\x80", "\"\\udcf4\\udc90\\udc80\\udc80\""); /* U+110000 */
    ENCS("\xf5\x80\x80\x80", "\"\\udcf5\\udc80\\udc80\\udc80\"");
    ENCS("\xf7\xbf\xbf\xbf", "\"\\udcf7\\udcbf\\udcbf\\udcbf\"");
    ENCS("\xf8\x88\x80\x80\x80", "\"\\udcf8\\udc88\\udc80\\udc80\\udc80\""); /* old 5-byte */
    ENCS("\xfc\x84\x80\x80\x80\x80",
         "\"\\udcfc\\udc84\\udc80\\udc80\\udc80\\udc80\""); /* old 6-byte */
}

static void test_truncated(void **state)
{
    (void)state;
    /* Cut by the end of the string. */
    ENCS("\xc3", "\"\\udcc3\"");
    ENCS("\xe2\x82", "\"\\udce2\\udc82\"");
    ENCS("\xf0\x9f\x98", "\"\\udcf0\\udc9f\\udc98\"");
    ENCS("ab\xe2", "\"ab\\udce2\"");
    /* Cut by a byte that is not a continuation: that byte starts afresh. */
    ENCS("\xc3z", "\"\\udcc3z\"");
    ENCS("\xe2\x82z", "\"\\udce2\\udc82z\"");
    ENCS("\xc3\xc3\xa9", "\"\\udcc3\xc3\xa9\"");
    ENCS("\xe2\x82\xe2\x82\xac", "\"\\udce2\\udc82\xe2\x82\xac\"");
    ENCS("\xf0\x9f\x98\xf0\x9f\x98\x80", "\"\\udcf0\\udc9f\\udc98\xf0\x9f\x98\x80\"");
    ENCS("\xe2\x82\"", "\"\\udce2\\udc82\\\"\"");
    ENCS("\xc3\n", "\"\\udcc3\\u000a\"");
}

/* Every byte from 0x80 to 0xFF, on its own, is an invalid sequence and comes out lone. */
static void test_high_bytes_alone(void **state)
{
    (void)state;
    for (unsigned b = 0x80; b <= 0xff; b++) {
        unsigned char byte = (unsigned char)b;
        char want[16];
        snprintf(want, sizeof(want), "\"\\udc%02x\"", b);
        ENC(&byte, 1, want);
    }
}

/* All of 0x80..0xFF in a row: no two neighbours make a valid sequence (C2..F4 are each followed
 * by a lead byte or by a byte outside their allowed range), so all 128 come out lone. */
static void test_high_bytes_in_a_row(void **state)
{
    unsigned char bytes[128];
    char want[2 + 128 * 6 + 1];
    size_t w = 0;

    (void)state;
    want[w++] = '"';
    for (unsigned b = 0x80; b <= 0xff; b++) {
        bytes[b - 0x80] = (unsigned char)b;
        w += (size_t)snprintf(want + w, sizeof(want) - w, "\\udc%02x", b);
    }
    want[w++] = '"';
    want[w] = '\0';
    assert_int_equal(w, 2 + 128 * 6);
    ENC(bytes, sizeof(bytes), want);
}

/* ---- struct json_writer -------------------------------------------------------------------- */

static void test_writer(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct json_writer w;

    (void)state;
    assert_non_null(f);
    json_writer_init(&w, f);
    json_begin_object(&w);
    json_kv_str(&w, "type", "file");
    json_kv_u64(&w, "pid", 123);
    json_kv_u64(&w, "max", UINT64_MAX);
    json_key(&w, "empty");
    json_begin_array(&w);
    json_end_array(&w);
    json_key(&w, "flags");
    json_begin_array(&w);
    json_str(&w, "dir");
    json_str(&w, "no_proc");
    json_end_array(&w);
    json_key(&w, "nested");
    json_begin_object(&w);
    json_kv_str(&w, "k\"", "v\xff");
    json_end_object(&w);
    json_key(&w, "new_path");
    json_null(&w);
    json_key(&w, "missing");
    json_str(&w, NULL);
    json_key(&w, "ok");
    json_bool(&w, true);
    json_key(&w, "n");
    json_strn(&w, "a\0b", 3);
    json_end_object(&w);
    assert_int_equal(fclose(f), 0);

    assert_string_equal(text, "{\"type\":\"file\",\"pid\":123,\"max\":18446744073709551615,"
                              "\"empty\":[],\"flags\":[\"dir\",\"no_proc\"],"
                              "\"nested\":{\"k\\\"\":\"v\\udcff\"},\"new_path\":null,"
                              "\"missing\":null,\"ok\":true,\"n\":\"a\\u0000b\"}");
    free(text);
}

/* Two values written one after the other with the same writer at depth 0 are not separated:
 * the writer is for one value (one line) at a time, and a fresh init starts the next. */
static void test_writer_reuse(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct json_writer w;

    (void)state;
    assert_non_null(f);
    for (int i = 0; i < 2; i++) {
        json_writer_init(&w, f);
        json_begin_object(&w);
        json_kv_u64(&w, "i", (uint64_t)i);
        json_end_object(&w);
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
    assert_string_equal(text, "{\"i\":0}\n{\"i\":1}\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid),
        cmocka_unit_test(test_decode_invalid),
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_multibyte),
        cmocka_unit_test(test_lone_bytes),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_above_max),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_high_bytes_alone),
        cmocka_unit_test(test_high_bytes_in_a_row),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_writer_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
