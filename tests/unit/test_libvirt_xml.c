/* SPDX-License-Identifier: MIT */
/* The libvirt backend's reading of domain XML (backends/libvirt/lv_xml.c): which <shmem> device
 * it picks, and what it refuses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "libvirt/lv_xml.h"

/* A domain as libvirt prints it, with the devices spliced in. */
#define DOMAIN(devices)                                                                            \
    "<domain type='qemu' id='3'>\n"                                                                \
    "  <name>vm1</name>\n"                                                                         \
    "  <uuid>4b6bd1d1-5ec8-4c0f-a4a0-0d1b0e3e2f3a</uuid>\n"                                        \
    "  <memory unit='KiB'>524288</memory>\n"                                                       \
    "  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>\n"                          \
    "  <devices>\n"                                                                                \
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n" devices "  </devices>\n"              \
    "</domain>\n"

#define PLAIN(name)                                                                                \
    "    <shmem name='" name "'>\n"                                                                \
    "      <model type='ivshmem-plain'/>\n"                                                        \
    "      <size unit='M'>4</size>\n"                                                              \
    "      <alias name='shmem0'/>\n"                                                               \
    "      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>\n"          \
    "    </shmem>\n"

struct result {
    int r;
    struct ivmon_lv_shmem s;
    char why[512];
};

static struct result find(const char *xml, const char *want)
{
    struct result res;
    memset(&res, 0, sizeof res);
    /* untouched on failure: make that visible */
    memset(&res.s, 0x5a, sizeof res.s);
    res.r = ivmon__lv_find_shmem(xml, strlen(xml), want, &res.s, res.why, sizeof res.why);
    return res;
}

#define EXPECT_FAIL(res, err, text)                                                                \
    do {                                                                                           \
        assert_int_equal((res).r, (err));                                                          \
        if (!strstr((res).why, (text)))                                                            \
            fail_msg("reason \"%s\" lacks \"%s\"", (res).why, (text));                             \
        assert_int_equal((unsigned char)(res).s.name[0], 0x5a);                                    \
    } while (0)

static void test_picks_the_only_device(void **state)
{
    struct result res = find(DOMAIN(PLAIN("ivmon")), NULL);
    assert_int_equal(res.r, 0);
    assert_int_equal(res.s.model, IVMON_LV_SHMEM_PLAIN);
    assert_string_equal(res.s.name, "ivmon");
    assert_string_equal(res.s.server, "");
}

static void test_first_by_default_named_on_request(void **state)
{
    const char *xml = DOMAIN(PLAIN("first") "    <shmem name='ring2'>\n"
                                            "      <model type='ivshmem-doorbell'/>\n"
                                            "      <server path='/run/ivmon/ring2.sock'/>\n"
                                            "      <msi vectors='1' ioeventfd='on'/>\n"
                                            "    </shmem>\n" PLAIN("third"));
    struct result res = find(xml, NULL);
    assert_int_equal(res.r, 0);
    assert_string_equal(res.s.name, "first");

    res = find(xml, "third");
    assert_int_equal(res.r, 0);
    assert_string_equal(res.s.name, "third");
    assert_int_equal(res.s.model, IVMON_LV_SHMEM_PLAIN);

    res = find(xml, "ring2");
    assert_int_equal(res.r, 0);
    assert_int_equal(res.s.model, IVMON_LV_SHMEM_DOORBELL);
    assert_string_equal(res.s.server, "/run/ivmon/ring2.sock");

    /* The names it has, so the fix is obvious. */
    res = find(xml, "nope");
    EXPECT_FAIL(res, -ENODEV, "no <shmem name='nope'>");
    if (!strstr(res.why, "'first', 'ring2', 'third'"))
        fail_msg("reason \"%s\" does not list the devices", res.why);
}

static void test_no_device(void **state)
{
    struct result res = find(DOMAIN("    <memballoon model='none'/>\n"), NULL);
    EXPECT_FAIL(res, -ENODEV, "no <shmem> device");
    res = find(DOMAIN(""), "ivmon");
    EXPECT_FAIL(res, -ENODEV, "no <shmem> device");
}

static void test_only_devices_count(void **state)
{
    /* A <shmem> anywhere but directly in <devices> is not a device. */
    struct result res = find("<domain><metadata><shmem name='x'/></metadata>"
                             "<devices><disk><shmem name='y'/></disk></devices></domain>",
                             NULL);
    EXPECT_FAIL(res, -ENODEV, "no <shmem> device");
}

static void test_legacy_model(void **state)
{
    /* libvirt's old "ivshmem" model (or none): a doorbell exactly when a server is given, and
     * libvirt's default socket path when it names none. */
    struct result res = find(DOMAIN("<shmem name='old'><model type='ivshmem'/></shmem>"), NULL);
    assert_int_equal(res.r, 0);
    assert_int_equal(res.s.model, IVMON_LV_SHMEM_PLAIN);
    res = find(DOMAIN("<shmem name='bare'/>"), NULL);
    assert_int_equal(res.r, 0);
    assert_int_equal(res.s.model, IVMON_LV_SHMEM_PLAIN);
    res = find(DOMAIN("<shmem name='db'><server/></shmem>"), NULL);
    assert_int_equal(res.r, 0);
    assert_int_equal(res.s.model, IVMON_LV_SHMEM_DOORBELL);
    assert_string_equal(res.s.server, "/var/lib/libvirt/shmem-db-sock");
}

static void test_unusable_devices(void **state)
{
    struct result res = find(DOMAIN("<shmem><model type='ivshmem-plain'/></shmem>"), NULL);
    EXPECT_FAIL(res, -EINVAL, "no name");
    /* The name becomes /dev/shm/NAME: one path component, nothing else. */
    static const char *const bad[] = {"<shmem name='../etc/passwd'/>",
                                      "<shmem name='a/b'/>",
                                      "<shmem name='..'/>",
                                      "<shmem name='.'/>",
                                      "<shmem name='a&#10;b'/>",
                                      "<shmem name=''/>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char xml[256];
        snprintf(xml, sizeof xml, "<domain><devices>%s</devices></domain>", bad[i]);
        res = find(xml, NULL);
        if (res.r != -EINVAL)
            fail_msg("%s: returned %d (%s)", bad[i], res.r, res.why);
    }
    char longname[600];
    memset(longname, 'n', 300);
    longname[300] = '\0';
    char xml[800];
    snprintf(xml, sizeof xml, "<domain><devices><shmem name='%s'/></devices></domain>", longname);
    res = find(xml, NULL);
    EXPECT_FAIL(res, -EINVAL, "longer than 255 bytes");

    res = find(DOMAIN("<shmem name='x'><model type='virtio-pmem'/></shmem>"), NULL);
    EXPECT_FAIL(res, -EINVAL, "model 'virtio-pmem'");
    memset(longname, 's', 200);
    longname[200] = '\0';
    snprintf(xml, sizeof xml,
             "<domain><devices><shmem name='d'><model type='ivshmem-doorbell'/>"
             "<server path='/%s'/></shmem></devices></domain>",
             longname);
    res = find(xml, NULL);
    EXPECT_FAIL(res, -EINVAL, "server path is longer");
}

static void test_bad_xml(void **state)
{
    static const char *const bad[] = {
        "",
        "not xml at all",
        "<domain><devices><shmem name='x'></devices></domain>",
        "<domain><devices>",
        "<domain></domain><domain></domain>",
        "<domain><devices><shmem name='a' name='b'/></devices></domain>",
        "<domain>\xff\xfe</domain>",
        "<domain><devices><shmem name='&undefined;'/></devices></domain>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct result res = find(bad[i], NULL);
        if (res.r != -EBADMSG)
            fail_msg("bad XML #%zu: returned %d (%s)", i, res.r, res.why);
    }
    struct result res = find("<network><shmem name='x'/></network>", NULL);
    EXPECT_FAIL(res, -EBADMSG, "root element is <network>");

    /* libvirt never writes a DOCTYPE: entities, external or not, are refused before use. */
    res = find("<?xml version='1.0'?>\n"
               "<!DOCTYPE domain [<!ENTITY n SYSTEM 'file:///etc/hostname'>]>\n"
               "<domain><devices><shmem name='&n;'/></devices></domain>",
               NULL);
    assert_int_equal(res.r, -EBADMSG);
    res = find("<!DOCTYPE domain [<!ENTITY n 'ivmon'>]>\n"
               "<domain><devices><shmem name='&n;'/></devices></domain>",
               NULL);
    EXPECT_FAIL(res, -EBADMSG, "DOCTYPE");
    res = find("<!DOCTYPE domain><domain><devices>" PLAIN("x") "</devices></domain>", NULL);
    EXPECT_FAIL(res, -EBADMSG, "DOCTYPE");

    /* Lengths: an explicit length, not a terminator, bounds the parse. */
    const char *xml = DOMAIN(PLAIN("ivmon"));
    struct ivmon_lv_shmem s;
    char why[128];
    assert_int_equal(ivmon__lv_find_shmem(xml, strlen(xml) - 12, NULL, &s, why, sizeof why),
                     -EBADMSG);
    assert_int_equal(ivmon__lv_find_shmem(NULL, 10, NULL, &s, why, sizeof why), -EBADMSG);
    /* No room for the reason is fine too. */
    assert_int_equal(ivmon__lv_find_shmem("x", 1, NULL, &s, NULL, 0), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_picks_the_only_device),
        cmocka_unit_test(test_first_by_default_named_on_request),
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_only_devices_count),
        cmocka_unit_test(test_legacy_model),
        cmocka_unit_test(test_unusable_devices),
        cmocka_unit_test(test_bad_xml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
