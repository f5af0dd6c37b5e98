/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the ring consumer and everything behind it, with the fuzzer owning the whole shared
 * region -- header, indices, record bytes -- as a hostile guest does. The region sits between
 * PROT_NONE guard pages, so any read outside it is a crash. Records go through the session's
 * real path (ivmon__ring_drain -> decode -> sequence accounting -> dispatch), and each drain call
 * must do bounded work.
 *
 * Input layout: byte 0 is a mode; bit 0 set means "repair the header's static fields" (magic,
 * version, offset, size) so the fuzzer spends its time on indices and records rather than on
 * guessing the magic; the rest is copied over the region from offset 0.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_session.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATA_SIZE IVMON_RING_MIN_DATA
#define REGION    (IVMON_RING_HDR_SIZE + DATA_SIZE)

static uint8_t *region;
static ivmon *session;

static void setup(void)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *all = mmap(NULL, REGION + 2 * (size_t)page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert(all != MAP_FAILED);
    mprotect(all, (size_t)page, PROT_NONE);
    mprotect(all + page + REGION, (size_t)page, PROT_NONE);
    region = all + page;
    session = calloc(1, sizeof *session);
    session->budget = IVMON_BUDGET_DEFAULT;
    session->event.source = "fuzz:";
    session->handlers[IVMON_EVENT_ANY].fn = count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!region)
        setup();
    if (size < 1)
        return 0;
    memset(region, 0, REGION);
    memcpy(region, data + 1, size - 1 > REGION ? REGION : size - 1);
    if (data[0] & 1) {
        struct ivmon_ring_hdr *h = (struct ivmon_ring_hdr *)region;
        h->magic = IVMON_RING_MAGIC;
        h->proto_major = IVMON_PROTO_MAJOR;
        h->hdr_size = IVMON_RING_HDR_SIZE;
        h->data_offset = IVMON_RING_HDR_SIZE;
        h->data_size = DATA_SIZE;
    }
    /* A fresh session each time: no state carried between inputs. */
    memset(session->stats, 0, sizeof session->stats);
    session->broken = 0;
    session->have_seq = 0;
    session->span_closed = 0;
    delivered = 0;

    struct ivmon_ring ring;
    const char *why = NULL;
    if (ivmon_ring_attach(&ring, region, REGION, &why) < 0)
        return 0;
    /* Each drain is bounded by the budget; the ring holds at most DATA_SIZE / 24 records, so a
     * bounded number of calls must empty it or break the session. */
    for (int calls = 0; calls < (int)(DATA_SIZE / 24 / IVMON_BUDGET_DEFAULT) + 2; calls++) {
        int more = 0;
        int n = ivmon__ring_drain(session, &ring, session->budget, &more);
        assert(n <= (int)session->budget);
        if (n < 0) {
            assert(n == -EPROTO && session->broken == -EPROTO && session->error[0]);
            break;
        }
        if (!more)
            break;
    }
    uint64_t *st = session->stats;
    assert(st[IVMON_STAT_DELIVERED] == delivered);
    assert(st[IVMON_STAT_DELIVERED] + st[IVMON_STAT_MALFORMED] == st[IVMON_STAT_RECORDS]);
    return 0;
}
