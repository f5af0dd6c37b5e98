/* SPDX-License-Identifier: MIT */
/* Event accessors and copies. Every accessor accepts every type: fields a type does not carry
 * were zeroed by the decoder, and absent strings point at strbuf[0], which is "". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define STR(ev, field) ((ev)->strbuf + (ev)->field)

unsigned ivmon_event_type(const ivmon_event *ev)
{
    return ev->type;
}
uint64_t ivmon_event_seq(const ivmon_event *ev)
{
    return ev->seq;
}
uint64_t ivmon_event_time_ns(const ivmon_event *ev)
{
    return ev->time_ns;
}
const char *ivmon_event_source(const ivmon_event *ev)
{
    return ev->source ? ev->source : "";
}

unsigned ivmon_event_op(const ivmon_event *ev)
{
    return ev->op;
}
unsigned ivmon_event_file_flags(const ivmon_event *ev)
{
    return ev->flags;
}
uint32_t ivmon_event_pid(const ivmon_event *ev)
{
    return ev->pid;
}
uint32_t ivmon_event_tid(const ivmon_event *ev)
{
    return ev->tid;
}
uint32_t ivmon_event_ppid(const ivmon_event *ev)
{
    return ev->ppid;
}
uint32_t ivmon_event_uid(const ivmon_event *ev)
{
    return ev->uid;
}
uint32_t ivmon_event_gid(const ivmon_event *ev)
{
    return ev->gid;
}
const char *ivmon_event_comm(const ivmon_event *ev)
{
    return STR(ev, off_comm);
}
const char *ivmon_event_exe(const ivmon_event *ev)
{
    return STR(ev, off_exe);
}
const char *ivmon_event_path(const ivmon_event *ev)
{
    return STR(ev, off_path);
}
const char *ivmon_event_new_path(const ivmon_event *ev)
{
    return STR(ev, off_new_path);
}

unsigned ivmon_event_lost_reason(const ivmon_event *ev)
{
    return ev->lost_reason;
}
uint64_t ivmon_event_lost_count(const ivmon_event *ev)
{
    return ev->lost_count;
}
uint64_t ivmon_event_lost_first(const ivmon_event *ev)
{
    return ev->lost_first;
}
uint64_t ivmon_event_lost_last(const ivmon_event *ev)
{
    return ev->lost_last;
}

const char *ivmon_event_hostname(const ivmon_event *ev)
{
    return STR(ev, off_hostname);
}
const char *ivmon_event_agent(const ivmon_event *ev)
{
    return STR(ev, off_agent);
}
uint32_t ivmon_event_agent_pid(const ivmon_event *ev)
{
    return ev->agent_pid;
}
uint32_t ivmon_event_caps(const ivmon_event *ev)
{
    return ev->caps;
}
unsigned ivmon_event_proto_version(const ivmon_event *ev)
{
    return ev->proto_version;
}
void ivmon_event_boot_id(const ivmon_event *ev, uint8_t ret[16])
{
    memcpy(ret, ev->boot_id, sizeof ev->boot_id);
}
void ivmon_event_instance_id(const ivmon_event *ev, uint8_t ret[16])
{
    memcpy(ret, ev->instance_id, sizeof ev->instance_id);
}

uint64_t ivmon_event_produced(const ivmon_event *ev)
{
    return ev->produced;
}
uint64_t ivmon_event_dropped(const ivmon_event *ev)
{
    return ev->dropped;
}

int ivmon_event_copy(const ivmon_event *ev, ivmon_event **ret)
{
    /* Only the used part of the string buffer is copied: most events are far below the
     * 12 KiB worst case. */
    size_t size = offsetof(struct ivmon_event, strbuf) + ev->strbuf_used;
    ivmon_event *c = malloc(size);
    if (!c)
        return -ENOMEM;
    memcpy(c, ev, size);
    c->source_owned = strdup(ivmon_event_source(ev));
    if (!c->source_owned) {
        free(c);
        return -ENOMEM;
    }
    c->source = c->source_owned;
    *ret = c;
    return 0;
}

void ivmon_event_free(ivmon_event *ev)
{
    if (!ev)
        return;
    free(ev->source_owned);
    free(ev);
}

static const char *const op_names[] = {
    [IVMON_OP_OPEN] = "open",
    [IVMON_OP_MODIFY] = "modify",
    [IVMON_OP_CLOSE_WRITE] = "close_write",
    [IVMON_OP_CREATE] = "create",
    [IVMON_OP_DELETE] = "delete",
    [IVMON_OP_RENAME] = "rename",
    [IVMON_OP_ATTRIB] = "attrib",
    [IVMON_OP_EXEC] = "exec",
};

const char *ivmon_op_name(unsigned op)
{
    return op >= 1 && op <= IVMON_OP_MAX ? op_names[op] : NULL;
}

int ivmon_op_from_name(const char *name)
{
    for (unsigned op = 1; op <= IVMON_OP_MAX; op++)
        if (name && !strcmp(name, op_names[op]))
            return (int)op;
    return -EINVAL;
}
