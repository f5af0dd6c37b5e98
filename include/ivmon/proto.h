/* SPDX-License-Identifier: MIT */
/*
 * libivmon wire protocol: the byte layouts shared verbatim by the host library and the guest agent.
 *
 * This header is a contract between two programs that do not trust each other, built by different
 * compilers, possibly for different operating systems. Rules, checked by the _Static_asserts below:
 * fixed-width little-endian fields, explicit padding, no enums, bools, bit-fields or pointers.
 * It needs only <stdint.h>, so a kernel module or a bare-metal payload can include it too.
 *
 * docs/PROTOCOL.md describes every field; the two must change together.
 */
#ifndef IVMON_PROTO_H
#define IVMON_PROTO_H

#include <stdint.h>

/* Protocol version: carried in the ring header and in every hello record. A consumer refuses a
 * different major version. Minor versions are reserved for compatible additions; a 1.0 consumer
 * accepts exactly what 1.0 defines and counts anything else as malformed. */
#define IVMON_PROTO_MAJOR 1
#define IVMON_PROTO_MINOR 0

/* ---- Records ------------------------------------------------------------------------------ */

/* Record types. Values are wire constants, never reused. */
#define IVMON_REC_HELLO     1u /* agent identity; first record after an agent (re)start */
#define IVMON_REC_FILE      2u /* one file access */
#define IVMON_REC_LOST      3u /* records the producer had to drop */
#define IVMON_REC_HEARTBEAT 4u /* the producer is alive; its counters */

/* Upper bounds. A record that exceeds them is malformed. */
#define IVMON_COMM_MAX     16u    /* process name, as Linux's TASK_COMM_LEN without the NUL */
#define IVMON_PATH_MAX     4096u  /* any path field, bytes, no NUL inside */
#define IVMON_HOSTNAME_MAX 255u   /* hello host name */
#define IVMON_AGENT_MAX    64u    /* hello agent identity string */
#define IVMON_REC_MAX      16384u /* whole record including its header */
#define IVMON_REC_ALIGN    8u     /* records start on this boundary inside a ring */

/* Every record starts with this header. `len` counts the header and the body, not the padding
 * that rounds the record up to IVMON_REC_ALIGN inside a ring. */
struct ivmon_rec_hdr {
    uint16_t type;    /* IVMON_REC_* */
    uint16_t flags;   /* per type; none defined yet, must be zero */
    uint32_t len;     /* header + body bytes, 24..IVMON_REC_MAX */
    uint64_t seq;     /* 1, 2, 3, ... per producer instance; every record takes the next one */
    uint64_t time_ns; /* guest CLOCK_REALTIME when the record was made, nanoseconds since 1970 */
};

/* File operations (ivmon_rec_file.op). */
#define IVMON_OP_OPEN        1u
#define IVMON_OP_MODIFY      2u /* data written */
#define IVMON_OP_CLOSE_WRITE 3u /* a file opened for writing was closed */
#define IVMON_OP_CREATE      4u
#define IVMON_OP_DELETE      5u
#define IVMON_OP_RENAME      6u /* path -> new_path */
#define IVMON_OP_ATTRIB      7u /* mode, owner, times or xattrs changed */
#define IVMON_OP_EXEC        8u
#define IVMON_OP_MAX         8u

/* ivmon_rec_file.flags */
#define IVMON_FILE_DIR       0x1u /* the object is a directory */
#define IVMON_FILE_TRUNCATED 0x2u /* a path was longer than IVMON_PATH_MAX and was cut */
#define IVMON_FILE_NO_PROC                                                                         \
    0x4u /* the process was gone before the agent could read it: ppid 0,                           \
          * uid and gid 0xffffffff, comm and exe possibly empty */
#define IVMON_FILE_FLAGS_ALL 0x7u

/* Body of IVMON_REC_FILE, followed by comm, exe, path and new_path bytes in that order,
 * each exactly *_len bytes, no NUL terminator, no NUL inside. new_path_len is non-zero only
 * for IVMON_OP_RENAME, path_len is never zero. */
struct ivmon_rec_file {
    uint32_t op;
    uint32_t flags;
    uint32_t pid; /* thread group id */
    uint32_t tid;
    uint32_t ppid;
    uint32_t uid;
    uint32_t gid;
    uint32_t reserved0; /* zero */
    uint16_t comm_len;
    uint16_t exe_len;
    uint16_t path_len;
    uint16_t new_path_len;
};

/* Capability bits in ivmon_rec_hello.caps. */
#define IVMON_CAP_RENAME_PAIR  0x1u /* renames carry both names */
#define IVMON_CAP_EXEC         0x2u /* exec events */
#define IVMON_CAP_GUEST_FILTER 0x4u

/* Body of IVMON_REC_HELLO, followed by hostname and agent bytes. */
struct ivmon_rec_hello {
    uint16_t proto_major;
    uint16_t proto_minor;
    uint32_t caps;
    uint8_t boot_id[16];     /* the guest kernel's boot id: a new value means the guest rebooted */
    uint8_t instance_id[16]; /* random per agent start: a new value means the agent restarted */
    uint32_t agent_pid;
    uint16_t hostname_len;
    uint16_t agent_len; /* e.g. "ivmon-agent 0.1.0 linux" */
};

/* Why records were lost (ivmon_rec_lost.reason). */
#define IVMON_LOST_RING_FULL       1u /* the transport had no room; first..last name them */
#define IVMON_LOST_SOURCE_OVERFLOW 2u /* the guest kernel's own queue overflowed; count unknown */

/* Body of IVMON_REC_LOST. For IVMON_LOST_RING_FULL, the producer dropped every record with
 * first_seq <= seq <= last_seq and count == last_seq - first_seq + 1. For
 * IVMON_LOST_SOURCE_OVERFLOW the events never got sequence numbers: count, first and last are 0. */
struct ivmon_rec_lost {
    uint64_t count;
    uint64_t first_seq;
    uint64_t last_seq;
    uint32_t reason;
    uint32_t reserved0;
};

/* Body of IVMON_REC_HEARTBEAT. */
struct ivmon_rec_heartbeat {
    uint64_t produced; /* highest sequence number taken so far, this record included */
    uint64_t dropped;  /* records dropped so far by this producer instance */
};

/* ---- Shared-memory ring ------------------------------------------------------------------- */

/* The region starts with this header; the data area follows at data_offset. Indices are
 * free-running byte counts (never wrapped), masked by data_size - 1 to address the data area.
 * Producer and consumer fields live on separate 64-byte cache lines so that neither side's
 * writes bounce the other's line. */
#define IVMON_RING_MAGIC    0x31474e524d564949ull /* "IIVMRNG1" little-endian */
#define IVMON_RING_HDR_SIZE 4096u
#define IVMON_RING_MIN_DATA 65536u
#define IVMON_RING_MAX_DATA (1u << 30)

/* ivmon_ring_hdr.flags */
#define IVMON_RING_LOSSLESS 0x1u /* the producer waits for room instead of dropping */

struct ivmon_ring_hdr {
    /* line 0: written once at format time; magic last */
    uint64_t magic;
    uint16_t proto_major;
    uint16_t proto_minor;
    uint32_t hdr_size;    /* IVMON_RING_HDR_SIZE */
    uint64_t data_offset; /* IVMON_RING_HDR_SIZE */
    uint64_t data_size;   /* power of two, IVMON_RING_MIN_DATA..IVMON_RING_MAX_DATA */
    uint32_t flags;       /* IVMON_RING_* */
    uint32_t reserved0;
    uint64_t
        consumer_gen; /* bumped by each consumer attach, so a producer knows to re-rendezvous */
    uint8_t pad0[16];
    /* line 1: producer */
    uint64_t prod;         /* bytes published */
    uint64_t prod_dropped; /* records dropped (informational; the lost records are the truth) */
    uint8_t pad1[48];
    /* line 2: consumer */
    uint64_t cons;         /* bytes consumed */
    uint32_t cons_waiting; /* 1: the consumer sleeps; the producer must ring the doorbell */
    uint32_t reserved1;
    uint8_t pad2[48];
    uint8_t pad3[IVMON_RING_HDR_SIZE - 192];
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct ivmon_rec_hdr) == 24, "record header layout");
_Static_assert(sizeof(struct ivmon_rec_file) == 40, "file record layout");
_Static_assert(sizeof(struct ivmon_rec_hello) == 48, "hello record layout");
_Static_assert(sizeof(struct ivmon_rec_lost) == 32, "lost record layout");
_Static_assert(sizeof(struct ivmon_rec_heartbeat) == 16, "heartbeat record layout");
_Static_assert(sizeof(struct ivmon_ring_hdr) == IVMON_RING_HDR_SIZE, "ring header layout");
_Static_assert(__builtin_offsetof(struct ivmon_ring_hdr, prod) == 64, "producer line");
_Static_assert(__builtin_offsetof(struct ivmon_ring_hdr, cons) == 128, "consumer line");
_Static_assert(IVMON_REC_MAX <= IVMON_RING_MIN_DATA / 2, "a record fits the smallest ring");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the wire is little-endian; big-endian hosts need byte swapping");
#endif

#endif /* IVMON_PROTO_H */
