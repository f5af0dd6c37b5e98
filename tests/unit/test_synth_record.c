/* SPDX-License-Identifier: MIT */
/* The benches' synthetic FILE records (guest/tools/synth_record.c): each one the size asked for,
 * its path "/ivmon-produce/<i>" padded with 'x', whatever order the numbers come in, and a record
 * the host's decoder accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "synth_record.h"

static struct synth_record synth;
static union ivmon_enc_buf rec;
static struct ivmon_event ev;

/* Encodes record i and checks its size, its path and that the host decodes it. */
static void check(uint64_t i, size_t size)
{
    char want[IVMON_PATH_MAX + 1];
    int n = snprintf(want, sizeof want, "/ivmon-produce/%llu", (unsigned long long)i);
    while ((size_t)n < size - SYNTH_FIXED)
        want[n++] = 'x';
    want[n] = '\0';

    int len = synth_record_encode(&synth, i, &rec);
    assert_true(len > 0);
    assert_int_equal(rec.hdr.len, (size_t)len);
    const char *why = NULL;
    rec.hdr.seq = 1; /* the transport's to set */
    if (ivmon__decode(&rec, (size_t)len, &ev, &why) != 0)
        fail_msg("record %llu of %zu bytes: %s", (unsigned long long)i, size, why);
    assert_string_equal(ivmon_event_path(&ev), want);
    assert_string_equal(ivmon_event_comm(&ev), SYNTH_COMM);
    if (size - SYNTH_FIXED >= strlen("/ivmon-produce/") + 20)
        assert_int_equal(len, size); /* room for any number: exactly the size asked for */
}

static void test_sizes_and_numbers(void **state)
{
    static const uint64_t numbers[] = {1, 9, 10, 12345, 7, UINT64_MAX, 0, 99, 100};
    static const size_t sizes[] = {SYNTH_FIXED + 1, 128, 256, SYNTH_SIZE_MAX};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        synth_record_init(&synth, sizes[s]);
        for (size_t k = 0; k < sizeof numbers / sizeof numbers[0]; k++)
            check(numbers[k], sizes[s]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
