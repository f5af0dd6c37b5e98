/* SPDX-License-Identifier: MIT */
/*
 * JSON lines output of ivmon-watch: one object per event, schema in README.md. Every object has
 * "type" first and ends with the fields common to all types: "seq", "time", "time_ns",
 * "source". Fields are always present for their type (null when not applicable), so consumers
 * can rely on the schema without checking for keys.
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include "output.h"

#include "format.h"
#include "json_write.h"

static void put_common(struct json_writer *w, const ivmon_event *ev)
{
    char when[FORMAT_TIME_SIZE];
    uint64_t ns = ivmon_event_time_ns(ev);

    format_time(when, ns);
    json_kv_u64(w, "seq", ivmon_event_seq(ev));
    json_kv_str(w, "time", when);
    json_kv_u64(w, "time_ns", ns);
    json_kv_str(w, "source", ivmon_event_source(ev));
}

static void put_file(struct json_writer *w, const ivmon_event *ev)
{
    unsigned op = ivmon_event_op(ev);
    unsigned flags = ivmon_event_file_flags(ev);

    json_kv_str(w, "type", "file");
    json_key(w, "op");
    /* NULL (an operation this library build has no name for) becomes null. */
    json_str(w, ivmon_op_name(op));
    json_kv_str(w, "path", ivmon_event_path(ev));
    json_key(w, "new_path");
    if (op == IVMON_OP_RENAME)
        json_str(w, ivmon_event_new_path(ev));
    else
        json_null(w);
    json_kv_u64(w, "pid", ivmon_event_pid(ev));
    json_kv_u64(w, "tid", ivmon_event_tid(ev));
    json_kv_u64(w, "ppid", ivmon_event_ppid(ev));
    json_kv_u64(w, "uid", ivmon_event_uid(ev));
    json_kv_u64(w, "gid", ivmon_event_gid(ev));
    json_kv_str(w, "comm", ivmon_event_comm(ev));
    json_kv_str(w, "exe", ivmon_event_exe(ev));

    json_key(w, "flags");
    json_begin_array(w);
    if (flags & IVMON_FILE_DIR)
        json_str(w, "dir");
    if (flags & IVMON_FILE_TRUNCATED)
        json_str(w, "truncated");
    if (flags & IVMON_FILE_NO_PROC)
        json_str(w, "no_proc");
    json_end_array(w);
}

static void put_lost(struct json_writer *w, const ivmon_event *ev)
{
    unsigned reason = ivmon_event_lost_reason(ev);

    json_kv_str(w, "type", "lost");
    json_key(w, "reason");
    if (reason == IVMON_LOST_RING_FULL)
        json_str(w, "ring_full");
    else if (reason == IVMON_LOST_SOURCE_OVERFLOW)
        json_str(w, "source_overflow");
    else
        json_null(w);
    /* For source_overflow these are 0: the events were dropped before they got numbers. */
    json_kv_u64(w, "count", ivmon_event_lost_count(ev));
    json_kv_u64(w, "first_seq", ivmon_event_lost_first(ev));
    json_kv_u64(w, "last_seq", ivmon_event_lost_last(ev));
}

static void put_hello(struct json_writer *w, const ivmon_event *ev)
{
    uint8_t id[16];
    char uuid[FORMAT_UUID_SIZE];
    char proto_str[24];
    unsigned proto = ivmon_event_proto_version(ev);

    json_kv_str(w, "type", "hello");
    json_kv_str(w, "hostname", ivmon_event_hostname(ev));
    json_kv_str(w, "agent", ivmon_event_agent(ev));
    json_kv_u64(w, "agent_pid", ivmon_event_agent_pid(ev));
    ivmon_event_boot_id(ev, id);
    format_uuid(uuid, id);
    json_kv_str(w, "boot_id", uuid);
    ivmon_event_instance_id(ev, id);
    format_uuid(uuid, id);
    json_kv_str(w, "instance_id", uuid);
    snprintf(proto_str, sizeof(proto_str), "%u.%u", proto >> 16, proto & 0xffffu);
    json_kv_str(w, "proto", proto_str);
    json_kv_u64(w, "caps", ivmon_event_caps(ev));
}

static void put_heartbeat(struct json_writer *w, const ivmon_event *ev)
{
    json_kv_str(w, "type", "heartbeat");
    json_kv_u64(w, "produced", ivmon_event_produced(ev));
    json_kv_u64(w, "dropped", ivmon_event_dropped(ev));
}

void output_json_event(FILE *f, const ivmon_event *ev, const struct output_options *opt)
{
    struct json_writer w;
    unsigned type = ivmon_event_type(ev);

    (void)opt; /* JSON is always complete; --verbose only decides which events come here */
    json_writer_init(&w, f);
    json_begin_object(&w);
    switch (type) {
    case IVMON_EVENT_FILE:
        put_file(&w, ev);
        break;
    case IVMON_EVENT_LOST:
        put_lost(&w, ev);
        break;
    case IVMON_EVENT_HELLO:
        put_hello(&w, ev);
        break;
    case IVMON_EVENT_HEARTBEAT:
        put_heartbeat(&w, ev);
        break;
    default:
        /* A type newer than this program: say so rather than drop it silently. */
        json_kv_str(&w, "type", "unknown");
        json_kv_u64(&w, "event_type", type);
        break;
    }
    put_common(&w, ev);
    json_end_object(&w);
    fputc('\n', f);
}

void output_json_stats(FILE *f, const ivmon *m, const char *error)
{
    struct json_writer w;

    json_writer_init(&w, f);
    json_begin_object(&w);
    json_kv_str(&w, "type", "stats");
    json_kv_str(&w, "source", ivmon_get_uri(m));
    for (unsigned i = 0; i <= IVMON_STAT_MAX; i++) {
        const char *name = ivmon_stat_name(i);
        uint64_t v;
        /* Skip a counter the library cannot name or read rather than invent a value. */
        if (name && ivmon_get_stat(m, i, &v) == 0)
            json_kv_u64(&w, name, v);
    }
    json_key(&w, "error");
    json_str(&w, error); /* NULL: null */
    json_end_object(&w);
    fputc('\n', f);
}
