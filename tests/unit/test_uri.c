/* SPDX-License-Identifier: MIT */
/* URI parsing (src/uri.c): "scheme:target?key=value&key=value", strict. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "unit_records.h"

#define PARSE_OK(u, s)                                                                             \
    do {                                                                                           \
        const char *why_ = NULL;                                                                   \
        int r_ = ivmon__uri_parse((u), (s), &why_);                                                \
        if (r_ != 0)                                                                               \
            fail_msg("parse of \"%s\" returned %d: %s", (s), r_, why_ ? why_ : "?");               \
    } while (0)

#define PARSE_FAILS(s, reason)                                                                     \
    do {                                                                                           \
        ivmon_uri u_;                                                                              \
        const char *why_ = NULL;                                                                   \
        memset(&u_, 0x5a, sizeof u_);                                                              \
        assert_int_equal(ivmon__uri_parse(&u_, (s), &why_), -EINVAL);                              \
        assert_non_null(why_);                                                                     \
        if (!strstr(why_, (reason)))                                                               \
            fail_msg("\"%s\" rejected because \"%s\", expected \"%s\"", or_null(s), why_,          \
                     (reason));                                                                    \
        /* nothing left to free, and freeing again is harmless */                                  \
        assert_null(u_.buf);                                                                       \
        assert_int_equal(u_.n_params, 0);                                                          \
        ivmon__uri_free(&u_);                                                                      \
    } while (0)

static void test_schemes_and_targets(void **state)
{
    ivmon_uri u;
    PARSE_OK(&u, "shm:demo");
    assert_string_equal(u.scheme, "shm");
    assert_string_equal(u.target, "demo");
    assert_int_equal(u.n_params, 0);
    assert_null(ivmon__uri_unknown(&u, NULL, NULL));
    ivmon__uri_free(&u);
    assert_null(u.buf);

    PARSE_OK(&u, "shm:");
    assert_string_equal(u.scheme, "shm");
    assert_string_equal(u.target, "");
    ivmon__uri_free(&u);

    PARSE_OK(&u, "xen+shm:domain-7");
    assert_string_equal(u.scheme, "xen+shm");
    assert_string_equal(u.target, "domain-7");
    ivmon__uri_free(&u);

    PARSE_OK(&u, "ivshmem+doorbell:/dev/shm/a.b");
    assert_string_equal(u.scheme, "ivshmem+doorbell");
    assert_string_equal(u.target, "/dev/shm/a.b");
    ivmon__uri_free(&u);

    PARSE_OK(&u, "a-1.b+c:x");
    assert_string_equal(u.scheme, "a-1.b+c");
    ivmon__uri_free(&u);

    /* the first colon ends the scheme; later ones belong to the target */
    PARSE_OK(&u, "libvirt:qemu:///system/vm1");
    assert_string_equal(u.scheme, "libvirt");
    assert_string_equal(u.target, "qemu:///system/vm1");
    ivmon__uri_free(&u);
}

static void test_options(void **state)
{
    ivmon_uri u;
    PARSE_OK(&u, "shm:/dev/shm/ring?size=4M&lossless=1&budget=16");
    assert_string_equal(u.scheme, "shm");
    assert_string_equal(u.target, "/dev/shm/ring");
    assert_int_equal(u.n_params, 3);
    assert_string_equal(u.params[0].key, "size");
    assert_string_equal(u.params[0].value, "4M");
    assert_string_equal(u.params[1].key, "lossless");
    assert_string_equal(u.params[1].value, "1");
    assert_string_equal(u.params[2].key, "budget");
    assert_string_equal(u.params[2].value, "16");
    ivmon__uri_free(&u);

    /* an empty target with options; an empty value; '=' and ':' inside a value */
    PARSE_OK(&u, "shm:?a=&b=x=y&c=d:e");
    assert_string_equal(u.target, "");
    assert_int_equal(u.n_params, 3);
    assert_string_equal(u.params[0].value, "");
    assert_string_equal(u.params[1].key, "b");
    assert_string_equal(u.params[1].value, "x=y");
    assert_string_equal(u.params[2].value, "d:e");
    ivmon__uri_free(&u);

    /* exactly the maximum number of options */
    char buf[256] = "shm:x?";
    for (unsigned i = 0; i < IVMON_URI_PARAMS_MAX; i++) {
        char kv[16];
        snprintf(kv, sizeof kv, "%sk%u=%u", i ? "&" : "", i, i);
        strcat(buf, kv);
    }
    PARSE_OK(&u, buf);
    assert_int_equal(u.n_params, IVMON_URI_PARAMS_MAX);
    assert_string_equal(u.params[IVMON_URI_PARAMS_MAX - 1].key, "k15");
    assert_string_equal(u.params[IVMON_URI_PARAMS_MAX - 1].value, "15");
    ivmon__uri_free(&u);

    /* one more is too many */
    strcat(buf, "&k16=16");
    PARSE_FAILS(buf, "too many URI options");
}

static void test_bad_options(void **state)
{
    PARSE_FAILS("shm:x?a=1&a=2", "URI option given twice");
    PARSE_FAILS("shm:x?a=1&b=2&a=1", "URI option given twice");
    PARSE_FAILS("shm:x?a", "not key=value");
    PARSE_FAILS("shm:x?a=1&b", "not key=value");
    PARSE_FAILS("shm:x?=1", "not key=value");
    PARSE_FAILS("shm:x?a=1&=2", "not key=value");
    /* empty options: a strict parser accepts none of them */
    PARSE_FAILS("shm:x?", "not key=value");
    PARSE_FAILS("shm:x?&", "not key=value");
    PARSE_FAILS("shm:x?a=1&", "not key=value");
    PARSE_FAILS("shm:x?&a=1", "not key=value");
    PARSE_FAILS("shm:x?a=1&&b=2", "not key=value");
}

static void test_bad_uris(void **state)
{
    PARSE_FAILS(NULL, "empty URI");
    PARSE_FAILS("", "empty URI");
    PARSE_FAILS("shm", "no scheme");
    PARSE_FAILS("/dev/shm/ring", "no scheme");
    PARSE_FAILS(":x", "URI scheme must be");
    PARSE_FAILS("SHM:x", "URI scheme must be");
    PARSE_FAILS("Shm:x", "URI scheme must be");
    PARSE_FAILS("s_m:x", "URI scheme must be");
    PARSE_FAILS("s m:x", "URI scheme must be");
    PARSE_FAILS("sh/m:x", "URI scheme must be");
    PARSE_FAILS("sh?m:x", "URI scheme must be");
    PARSE_FAILS("\xc3\xa9:x", "URI scheme must be");
}

static void test_length_limit(void **state)
{
    static char s[IVMON_URI_MAX + 2];
    ivmon_uri u;
    memcpy(s, "shm:", 4);
    memset(s + 4, 'a', IVMON_URI_MAX - 4);
    s[IVMON_URI_MAX] = '\0';
    assert_int_equal(strlen(s), 4096);
    PARSE_OK(&u, s);
    assert_int_equal(strlen(u.target), 4092);
    ivmon__uri_free(&u);

    s[IVMON_URI_MAX] = 'a';
    s[IVMON_URI_MAX + 1] = '\0';
    assert_int_equal(strlen(s), 4097);
    PARSE_FAILS(s, "longer than 4096");
}

static void test_get_and_unused(void **state)
{
    ivmon_uri u;
    PARSE_OK(&u, "shm:x?size=1M&lossles=1&create=0");
    static const char *const core[] = {"budget", NULL};
    static const char *const shm[] = {"size", "lossless", "create", NULL};
    static const char *const typo[] = {"lossles", NULL};
    assert_string_equal(ivmon__uri_unknown(&u, NULL, NULL), "size");
    assert_string_equal(ivmon__uri_unknown(&u, core, NULL), "size");
    assert_string_equal(ivmon__uri_unknown(&u, core, shm), "lossles"); /* a typo is caught */
    assert_null(ivmon__uri_unknown(&u, typo, shm));
    assert_null(ivmon__uri_get(&u, "lossless")); /* a typo is not the option */
    assert_null(ivmon__uri_get(&u, "siz"));
    assert_null(ivmon__uri_get(&u, "size=1M"));
    assert_string_equal(ivmon__uri_get(&u, "size"), "1M");
    assert_string_equal(ivmon__uri_get(&u, "create"), "0");
    assert_string_equal(ivmon__uri_get(&u, "lossles"), "1");
    /* asking twice is fine */
    assert_string_equal(ivmon__uri_get(&u, "size"), "1M");
    ivmon__uri_free(&u);
}

static void test_get_size(void **state)
{
    static const struct {
        const char *v;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"4096", 4096},
        {"4K", 4096},
        {"4k", 4096},
        {"2M", 2u << 20},
        {"2m", 2u << 20},
        {"1G", 1u << 30},
        {"3g", 3ull << 30},
        {"007", 7},
        {"18446744073709551615", UINT64_MAX},
        {"18014398509481983K", UINT64_MAX >> 10 << 10},
        {"17592186044415M", UINT64_MAX >> 20 << 20},
        {"17179869183G", UINT64_MAX >> 30 << 30},
    };
    static const char *const bad[] = {
        "",
        "-1",
        " 1",
        "+1",
        "1 ",
        "K",
        "1KB",
        "1T",
        "1.5M",
        "0x10",
        "1e3",
        "4KK",
        "abc",
        "1M\t",
        "18446744073709551616",
        "99999999999999999999999",
        "18014398509481984K",
        "17592186044416M",
        "17179869184G",
        "18446744073709551615K",
    };
    char uri[128];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ivmon_uri u;
        uint64_t v = 12345;
        snprintf(uri, sizeof uri, "shm:x?size=%s", ok[i].v);
        PARSE_OK(&u, uri);
        if (ivmon__uri_get_size(&u, "size", &v) != 0)
            fail_msg("size=%s refused", ok[i].v);
        if (v != ok[i].want)
            fail_msg("size=%s gave %llu, expected %llu", ok[i].v, (unsigned long long)v,
                     (unsigned long long)ok[i].want);
        assert_null(ivmon__uri_unknown(&u, (const char *const[]){"size", NULL}, NULL));
        ivmon__uri_free(&u);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ivmon_uri u;
        uint64_t v = 12345;
        snprintf(uri, sizeof uri, "shm:x?size=%s", bad[i]);
        PARSE_OK(&u, uri);
        if (ivmon__uri_get_size(&u, "size", &v) != -EINVAL)
            fail_msg("size=%s accepted as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 12345); /* untouched on failure */
        ivmon__uri_free(&u);
    }
    /* absent: 0, and the default stays */
    ivmon_uri u;
    uint64_t v = 777;
    PARSE_OK(&u, "shm:x");
    assert_int_equal(ivmon__uri_get_size(&u, "size", &v), 0);
    assert_int_equal(v, 777);
    ivmon__uri_free(&u);
}

static void test_get_bool(void **state)
{
    static const struct {
        const char *v;
        int want;
    } ok[] = {{"1", 1},  {"0", 0},    {"true", 1},  {"false", 0}, {"yes", 1},
              {"no", 0}, {"TRUE", 1}, {"False", 0}, {"YES", 1},   {"No", 0}};
    static const char *const bad[] = {"", "2", "01", "on", "off", "truee", "y", "n", " 1", "-1"};
    char uri[64];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ivmon_uri u;
        int v = 42;
        snprintf(uri, sizeof uri, "shm:x?lossless=%s", ok[i].v);
        PARSE_OK(&u, uri);
        assert_int_equal(ivmon__uri_get_bool(&u, "lossless", &v), 0);
        if (v != ok[i].want)
            fail_msg("lossless=%s gave %d", ok[i].v, v);
        ivmon__uri_free(&u);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ivmon_uri u;
        int v = 42;
        snprintf(uri, sizeof uri, "shm:x?lossless=%s", bad[i]);
        PARSE_OK(&u, uri);
        if (ivmon__uri_get_bool(&u, "lossless", &v) != -EINVAL)
            fail_msg("lossless=%s accepted as %d", bad[i], v);
        assert_int_equal(v, 42);
        ivmon__uri_free(&u);
    }
    ivmon_uri u;
    int v = 42;
    PARSE_OK(&u, "shm:x?other=1");
    assert_int_equal(ivmon__uri_get_bool(&u, "lossless", &v), 0);
    assert_int_equal(v, 42);
    assert_string_equal(ivmon__uri_unknown(&u, (const char *const[]){"lossless", NULL}, NULL),
                        "other");
    ivmon__uri_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemes_and_targets),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_bad_uris),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_get_and_unused),
        cmocka_unit_test(test_get_size),
        cmocka_unit_test(test_get_bool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
