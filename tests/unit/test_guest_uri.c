/* SPDX-License-Identifier: MIT */
/* The guest's URI parser (guest/uri.c) for kvm+hcall:, the register transport: its one option,
 * port=, and everything it refuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "uri.h"

static void parses(const char *uri, unsigned port)
{
    struct ivmon_guest_uri u;
    const char *why = NULL;
    int r = ivmon_guest_uri_parse(uri, &u, &why);
    if (r != 0)
        fail_msg("%s: %d (%s)", uri, r, why ? why : "?");
    assert_int_equal(u.kind, IVMON_GUEST_URI_KVM_HCALL);
    assert_int_equal(u.port, port);
}

static void refused(const char *uri, const char *reason)
{
    struct ivmon_guest_uri u;
    const char *why = NULL;
    memset(&u, 0x5a, sizeof u);
    assert_int_equal(ivmon_guest_uri_parse(uri, &u, &why), -EINVAL);
    if (!why || !strstr(why, reason))
        fail_msg("%s refused because \"%s\", expected \"%s\"", uri, why ? why : "?", reason);
    assert_int_equal(u.kind, 0x5a5a5a5a); /* written on success only */
}

static void test_kvm_hcall(void **state)
{
    parses("kvm+hcall:", 0x4956);
    parses("kvm+hcall:?port=0x4956", 0x4956);
    parses("kvm+hcall:?port=80", 80);
    parses("kvm+hcall:?port=0xFFFF", 65535);
    parses("kvm+hcall:?port=65535", 65535);
    parses("kvm+hcall:?port=1", 1);
    static const struct {
        const char *uri, *reason;
    } bad[] = {
        {"kvm+hcall:?port=0", "port="},
        {"kvm+hcall:?port=65536", "port="},
        {"kvm+hcall:?port=0x10000", "port="},
        {"kvm+hcall:?port=0x", "port="},
        {"kvm+hcall:?port=-1", "port="},
        {"kvm+hcall:?port=+1", "port="},
        {"kvm+hcall:?port=010", "port="}, /* no octal */
        {"kvm+hcall:?port=1 ", "port="},
        {"kvm+hcall:?port=0x1g", "port="},
        {"kvm+hcall:?port=9999999999999999999", "port="},
        {"kvm+hcall:?port=0x0", "port="},
        {"kvm+hcall:?port=", "empty"},
        {"kvm+hcall:vm1", "no target"},
        {"kvm+hcall:?size=4M", "no ring"},
        {"kvm+hcall:?lossless=1", "no ring"},
        {"kvm+hcall:?wait=5", "known: port"},
        {"kvm+hcall:?port=80&bogus=1", "known: port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(bad[i].uri, bad[i].reason);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kvm_hcall)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
