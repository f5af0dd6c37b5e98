/* SPDX-License-Identifier: MIT */
/* Human-readable output of ivmon-watch: one line per event, safe to show on a terminal. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include "output.h"

#include <inttypes.h>
#include <string.h>

#include "format.h"
#include "json_write.h"

/* Code points that are valid and printable in the Unicode sense but invisible or change the
 * direction of the text around them, so a name containing them can look like another name on
 * screen ("Trojan Source", CVE-2021-42574). The text output is read by people; they get the
 * bytes escaped instead. */
static const struct {
    uint32_t first, last;
} deceptive[] = {
    {0x00ad, 0x00ad}, /* soft hyphen */
    {0x061c, 0x061c}, /* Arabic letter mark */
    {0x180e, 0x180e}, /* Mongolian vowel separator */
    {0x200b, 0x200f}, /* zero-width space, joiners, LRM, RLM */
    {0x2028, 0x202e}, /* line and paragraph separators, embeddings and overrides */
    {0x2060, 0x206f}, /* word joiner, invisible operators, isolates */
    {0xfeff, 0xfeff}, /* zero-width no-break space */
    {0xfff9, 0xfffb}, /* interlinear annotation */
};

/* Whether a decoded multi-byte code point may be shown as is. */
static bool shown_as_is(uint32_t cp)
{
    if (cp < 0xa0) /* C1 controls: an 8-bit terminal acts on them */
        return false;
    for (size_t i = 0; i < sizeof(deceptive) / sizeof(deceptive[0]); i++)
        if (cp >= deceptive[i].first && cp <= deceptive[i].last)
            return false;
    return true;
}

void output_text_escaped(FILE *f, const char *str, bool utf8)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    size_t i = 0;

    while (i < n) {
        /* Longest run that needs no escaping, written in one call. */
        size_t end = i;
        while (end < n) {
            unsigned char c = s[end];
            if (c >= 0x20 && c < 0x7f && c != '\\') {
                end++;
                continue;
            }
            uint32_t cp;
            size_t len;
            if (utf8 && c >= 0x80 && (len = utf8_decode(s + end, n - end, &cp)) != 0 &&
                shown_as_is(cp)) {
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

        /* One byte at a time from here: a multi-byte sequence that was refused gets each of its
         * bytes escaped, since none of its continuation bytes starts a sequence. '\' itself is
         * doubled so that a literal "\x41" in a name cannot pass for an escaped byte. */
        if (s[i] == '\\')
            fputs("\\\\", f);
        else
            fprintf(f, "\\x%02x", s[i]);
        i++;
    }
}

static void put_field(FILE *f, const char *name, const char *value, bool utf8)
{
    fprintf(f, " %s=", name);
    output_text_escaped(f, value, utf8);
}

static void put_file(FILE *f, const ivmon_event *ev, const struct output_options *opt)
{
    unsigned op = ivmon_event_op(ev);
    const char *op_name = ivmon_op_name(op);

    if (op_name)
        fprintf(f, " %s ", op_name);
    else
        fprintf(f, " op%u ", op);
    output_text_escaped(f, ivmon_event_path(ev), opt->utf8);
    if (op == IVMON_OP_RENAME) {
        fputs(" -> ", f);
        output_text_escaped(f, ivmon_event_new_path(ev), opt->utf8);
    }

    fprintf(f, " pid=%" PRIu32 " uid=%" PRIu32, ivmon_event_pid(ev), ivmon_event_uid(ev));
    put_field(f, "comm", ivmon_event_comm(ev), opt->utf8);
    put_field(f, "exe", ivmon_event_exe(ev), opt->utf8);

    unsigned flags = ivmon_event_file_flags(ev);
    if (flags) {
        static const struct {
            unsigned bit;
            const char *name;
        } names[] = {
            {IVMON_FILE_DIR, "dir"},
            {IVMON_FILE_TRUNCATED, "truncated"},
            {IVMON_FILE_NO_PROC, "no_proc"},
        };
        const char *sep = " flags=";
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (flags & names[i].bit) {
                fprintf(f, "%s%s", sep, names[i].name);
                sep = ",";
            }
        }
    }

    if (opt->verbose)
        fprintf(f, " tid=%" PRIu32 " ppid=%" PRIu32 " gid=%" PRIu32, ivmon_event_tid(ev),
                ivmon_event_ppid(ev), ivmon_event_gid(ev));
}

static void put_lost(FILE *f, const ivmon_event *ev)
{
    uint64_t count = ivmon_event_lost_count(ev);
    unsigned reason = ivmon_event_lost_reason(ev);

    /* A source overflow happened before the events got sequence numbers, so there is no count
     * and no range to show (the wire carries zeros). */
    if (count == 0)
        fputs(" lost records (count unknown): ", f);
    else
        fprintf(f, " lost %" PRIu64 " record%s (seq %" PRIu64 "..%" PRIu64 "): ", count,
                count == 1 ? "" : "s", ivmon_event_lost_first(ev), ivmon_event_lost_last(ev));

    if (reason == IVMON_LOST_RING_FULL)
        fputs("ring full", f);
    else if (reason == IVMON_LOST_SOURCE_OVERFLOW)
        fputs("source overflow", f);
    else
        fprintf(f, "reason %u", reason);
}

static void put_hello(FILE *f, const ivmon_event *ev, const struct output_options *opt)
{
    uint8_t id[16];
    char uuid[FORMAT_UUID_SIZE];
    unsigned proto = ivmon_event_proto_version(ev);

    fputs(" hello", f);
    put_field(f, "host", ivmon_event_hostname(ev), opt->utf8);
    put_field(f, "agent", ivmon_event_agent(ev), opt->utf8);
    fprintf(f, " pid=%" PRIu32, ivmon_event_agent_pid(ev));
    ivmon_event_boot_id(ev, id);
    format_uuid(uuid, id);
    fprintf(f, " boot=%s proto=%u.%u", uuid, proto >> 16, proto & 0xffffu);
    if (opt->verbose) {
        ivmon_event_instance_id(ev, id);
        format_uuid(uuid, id);
        fprintf(f, " instance=%s caps=0x%" PRIx32, uuid, ivmon_event_caps(ev));
    }
}

void output_text_event(FILE *f, const ivmon_event *ev, const struct output_options *opt)
{
    char when[FORMAT_TIME_SIZE];
    unsigned type = ivmon_event_type(ev);

    format_time(when, ivmon_event_time_ns(ev));
    fputs(when, f);
    fputc(' ', f);
    output_text_escaped(f, ivmon_event_source(ev), opt->utf8);

    switch (type) {
    case IVMON_EVENT_FILE:
        put_file(f, ev, opt);
        break;
    case IVMON_EVENT_LOST:
        put_lost(f, ev);
        break;
    case IVMON_EVENT_HELLO:
        put_hello(f, ev, opt);
        break;
    case IVMON_EVENT_HEARTBEAT:
        fprintf(f, " heartbeat produced=%" PRIu64 " dropped=%" PRIu64, ivmon_event_produced(ev),
                ivmon_event_dropped(ev));
        break;
    default:
        fprintf(f, " event type %u", type);
        break;
    }

    if (opt->verbose)
        fprintf(f, " seq=%" PRIu64, ivmon_event_seq(ev));
    fputc('\n', f);
}
