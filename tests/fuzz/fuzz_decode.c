/* SPDX-License-Identifier: MIT */
/* libFuzzer: the record decoder. The input is a mode byte and one record as a guest would write
 * it. Whatever it holds, the decoder either rejects it or yields an event whose strings are
 * NUL-terminated, inside the event's buffer and within their protocol bounds.
 *
 * The mode byte lets the fuzzer skip the length bookkeeping a random mutation rarely gets right
 * all at once: bit 0 sets the header's len to the record size, bit 1 makes a file record's
 * path_len take up whatever the other strings leave. The string bounds, the interesting part,
 * stay entirely in the fuzzer's hands. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ivmon_event ev;

static void check_string(const char *s, size_t bound)
{
    /* Inside strbuf, terminated within it, and no longer than the protocol allows. */
    assert(s >= ev.strbuf && s < ev.strbuf + sizeof ev.strbuf);
    size_t room = (size_t)(ev.strbuf + sizeof ev.strbuf - s);
    size_t len = strnlen(s, room);
    assert(len < room);
    assert(len <= bound);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    /* A private, exactly sized copy: reading one byte past the record is an ASan report. */
    uint8_t *rec = malloc(size ? size : 1);
    memcpy(rec, data, size);
    struct ivmon_rec_hdr h = {0};
    struct ivmon_rec_file f;
    if (size >= sizeof h)
        memcpy(&h, rec, sizeof h);
    if ((mode & 1) && size >= sizeof h) {
        h.len = (uint32_t)size;
        memcpy(rec, &h, sizeof h);
    }
    if ((mode & 2) && size >= sizeof h + sizeof f && h.type == IVMON_REC_FILE) {
        memcpy(&f, rec + sizeof h, sizeof f);
        size_t others = (size_t)f.comm_len + f.exe_len + f.new_path_len;
        size_t body = size - sizeof h - sizeof f;
        if (others <= body && body - others <= UINT16_MAX) {
            f.path_len = (uint16_t)(body - others);
            memcpy(rec + sizeof h, &f, sizeof f);
        }
    }
    int r = ivmon__decode(rec, size, &ev, &why);
    if (r == 0) {
        check_string(ivmon_event_comm(&ev), IVMON_COMM_MAX);
        check_string(ivmon_event_exe(&ev), IVMON_PATH_MAX);
        check_string(ivmon_event_path(&ev), IVMON_PATH_MAX);
        check_string(ivmon_event_new_path(&ev), IVMON_PATH_MAX);
        check_string(ivmon_event_hostname(&ev), IVMON_HOSTNAME_MAX);
        check_string(ivmon_event_agent(&ev), IVMON_AGENT_MAX);
        if (ev.type == IVMON_EVENT_FILE)
            assert(ev.op >= 1 && ev.op <= IVMON_OP_MAX && ivmon_event_path(&ev)[0]);
    } else {
        assert(r == -EBADMSG && why && *why);
    }
    free(rec);
    return 0;
}
