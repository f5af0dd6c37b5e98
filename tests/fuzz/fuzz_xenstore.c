/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the strict parsing of what a Xen guest writes in XenStore for xen+shm: -- the first
 * thing dom0 reads from an untrusted guest. A fake Xen (tests/unit/fake_xen.c) serves the input
 * as the keys under /local/domain/1/data/ivmon, and ivmon_open("xen+shm:1") reads them through
 * the backend's real path (one transaction, each key parsed and bounded, the grant refs, then
 * the mapping, the ring header, the event channel). Properties checked:
 *   - the open attaches (0), or fails with -EPROTO and a message naming the domain, or -ENOMEM;
 *   - a grant map is only ever asked for a page count the layout allows (17..16385, 1 + a power
 *     of two) with that many refs, so absurd values never reach the mapper;
 *   - every value the backend's number parser accepts is a canonical decimal: printed back, it
 *     is the same bytes;
 *   - an attached session processes and closes cleanly.
 * The pages the fake hands out hold a formatted ring when `pages` is a small valid count, so the
 * fuzzer can reach a session that attaches.
 *
 * Input: entries of [key][length, 2 bytes little-endian][value]; the key byte picks one of
 * KEYS (modulo), a length past the end takes what is left. Values may hold any byte, NUL too.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_xen.h"
#include "internal.h"
#include "ivmon/xen.h"
#include "xen/xen_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOMID        1
#define REGION_PAGES (1u + 256u) /* largest ring the harness formats: 1 MiB */
#define DIR          "/local/domain/1/" IVMON_XEN_XS_DIR "/"
#define PAGES_MAX    (1u + IVMON_XEN_DATA_PAGES_MAX)

static const char *const KEYS[] = {
    IVMON_XEN_XS_STATE,         IVMON_XEN_XS_LAYOUT,        IVMON_XEN_XS_PROTO,
    IVMON_XEN_XS_BACKEND,       IVMON_XEN_XS_PAGES,         IVMON_XEN_XS_EVTCHN,
    IVMON_XEN_XS_GENERATION,    IVMON_XEN_XS_GREF_DIR "/0", IVMON_XEN_XS_GREF_DIR "/1",
    IVMON_XEN_XS_GREF_DIR "/2",
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

static struct ivmon_xen_sys table;

/* The mapper must never see a count the layout does not allow. */
static void *checking_map(xengnttab_handle *x, uint32_t count, uint32_t domid, uint32_t *refs,
                          int prot)
{
    assert(count >= 1 + IVMON_XEN_DATA_PAGES_MIN && count <= PAGES_MAX);
    assert(((count - 1) & (count - 2)) == 0);
    for (uint32_t i = 0; i < count; i++)
        (void)refs[i]; /* all of them were filled in: ASan sees a short array */
    return fake_xen_sys.gnttab_map(x, count, domid, refs, prot);
}

/* A number the parser accepts is canonical: the same bytes printed back. */
static void check_canonical(const char *v, size_t len)
{
    uint64_t n;
    if (ivmon__xen_parse_u64(v, len, UINT64_MAX, &n) == 0) {
        char back[32];
        int w = snprintf(back, sizeof back, "%" PRIu64, n);
        assert(w > 0 && (size_t)w == len && memcmp(back, v, len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fake_xen_init() < 0)
        return 0;
    table = fake_xen_sys;
    table.gnttab_map = checking_map;
    ivmon__xen_sys = &table;
    struct fake_dom *d = fake_xen_add_dom(0, DOMID, "g");

    size_t pos = 0;
    while (pos + 3 <= size) {
        const char *key = KEYS[data[pos] % NKEYS];
        size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        char path[96];
        snprintf(path, sizeof path, DIR "%s", key);
        fake_xen_set_bytes(path, data + pos, len);
        check_canonical((const char *)data + pos, len);
        pos += len;
    }

    /* Pages to map when the count is one the harness can afford, with a ring in them. */
    unsigned vlen = 0;
    char *pages = fake_xen_get(DIR IVMON_XEN_XS_PAGES, &vlen);
    uint64_t n = 0;
    if (pages && ivmon__xen_parse_u64(pages, vlen, REGION_PAGES, &n) == 0 &&
        n >= 1 + IVMON_XEN_DATA_PAGES_MIN && ((n - 1) & (n - 2)) == 0) {
        void *region = fake_xen_new_region(d, (uint32_t)n);
        if (region)
            ivmon_ring_format(region, (size_t)n * IVMON_XEN_PAGE_SIZE, 0);
    }
    free(pages);

    ivmon *m = NULL;
    int r = ivmon_open(&m, "xen+shm:1", 0);
    assert(r == 0 || r == -EPROTO || r == -ENOMEM);
    if (r == -EPROTO)
        assert(strstr(ivmon_open_error(), "domain 1") != NULL);
    if (r == 0) {
        for (int i = 0; i < 4; i++) {
            int p = ivmon_process(m, 0);
            assert(p >= 0 || p == -EPROTO);
        }
        ivmon_close(m);
    }
    fake_xen_fini();
    return 0;
}
