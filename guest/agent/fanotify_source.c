/* SPDX-License-Identifier: MIT */
/*
 * fanotify event source; see fanotify_source.h.
 *
 * Paths are resolved when the agent reads an event, not when it happened: an object renamed or
 * removed in between shows its current name, or (removed) the last name the agent knew for its
 * directory (dircache.h, plus the directory's own DELETE/RENAME event in the same batch).
 *
 * Kernels without FAN_RENAME (before 5.17): the FID group takes FAN_MOVED_FROM|FAN_MOVED_TO
 * instead. The kernel queues the two halves of one rename back to back, so a MOVED_FROM directly
 * followed by a MOVED_TO of the same thread is reported as one RENAME with both names. A half
 * that finds no partner is reported alone: MOVED_FROM as a RENAME with no new_path (the
 * destination is unknown), MOVED_TO as a CREATE (a name appeared). HELLO then lacks
 * IVMON_CAP_RENAME_PAIR.
 */
#define _GNU_SOURCE
#include "fanotify_source.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "dircache.h"
#include "pathutil.h"
#include "procinfo.h"

/* Older userspace headers: the values are kernel ABI. */
#ifndef FAN_REPORT_TID
#define FAN_REPORT_TID 0x00000100
#endif
#ifndef FAN_RENAME
#define FAN_RENAME 0x10000000
#endif
#ifndef FAN_REPORT_TARGET_FID
#define FAN_REPORT_TARGET_FID 0x00001000
#endif
#ifndef FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
#define FAN_EVENT_INFO_TYPE_OLD_DFID_NAME 10
#define FAN_EVENT_INFO_TYPE_NEW_DFID_NAME 12
#endif

#define MAX_FS  32
#define PATHBUF 8192 /* a directory path (<= PATH_MAX) + '/' + a name (<= NAME_MAX) */
/* fd mode: every event read opens an fd in this process; 4 KiB holds at most 170 events, so a
 * read cannot run the process out of descriptors (the kernel would drop the event). */
#define NOTIF_BUF 4096
#define FID_BUF   65536
#define MAX_BATCH (FID_BUF / FAN_EVENT_METADATA_LEN)
#define MAX_READS 16 /* reads per fan_source_process call: fairness to the other fds */
#define MAX_DEPTH 32 /* nesting of removed directories resolved from one batch */

/* A file handle inside an event buffer; pointers into that buffer. */
struct fid_ref {
    int valid;
    const uint8_t *fsid; /* 8 bytes */
    const uint8_t *fh;   /* the handle bytes */
    uint32_t fh_bytes;
    int32_t fh_type;
    const char *name; /* NUL-terminated within the event, or NULL */
    size_t name_len;
};

struct fid_event {
    uint64_t mask;
    int32_t pid;
    int parsed;             /* 0: the info records did not parse */
    struct fid_ref dir;     /* DFID_NAME: parent directory + name (or the directory + ".") */
    struct fid_ref child;   /* FID: the object itself (with FAN_REPORT_FID) */
    struct fid_ref old, nw; /* FAN_RENAME: old and new parent + name */
};

struct marked_fs {
    uint8_t fsid[8]; /* statfs f_fsid: what FID events carry */
    dev_t dev;       /* st_dev: what an fd-mode event's fd has */
    int mount_fd;    /* O_RDONLY fd inside it for open_by_handle_at (O_PATH gives EBADF) */
    int whole;       /* --filesystem: no path filter on it */
};

/* A MOVED_FROM waiting for its MOVED_TO (no FAN_RENAME). */
struct stash {
    int valid;
    int32_t pid;
    uint32_t flags;
    int whole;
    size_t len;
    char path[PATHBUF];
};

struct fan_source {
    const struct agent_config *cfg;
    struct agent_sink sink;
    pid_t self;
    int notif_fd, fid_fd;
    struct fan_source_info info;
    int any_whole, all_whole;
    struct marked_fs fs[MAX_FS];
    size_t nfs;
    struct procinfo_cache *pc;
    struct procinfo exec_pi; /* scratch for exec_image() */
    struct dircache *dc;
    struct stash mv;
    struct fan_source_stats st;
    size_t nb;
    struct fid_event batch[MAX_BATCH];
    char path_a[PATHBUF], path_b[PATHBUF];
    union {
        uint64_t align;
        uint8_t b[FID_BUF];
    } buf;
};

/* ---- setup ---------------------------------------------------------------------------------- */

/* Creates a group with flags plus the first set of optional flags the kernel accepts (an older
 * kernel rejects an unknown flag with EINVAL); tries[] ends with 0 (no optional flags). */
static int init_group(unsigned flags, const unsigned *tries, int *ret_fd, unsigned *ret_got)
{
    for (size_t i = 0;; i++) {
        int fd = fanotify_init(flags | tries[i], O_RDONLY | O_LARGEFILE | O_CLOEXEC);
        if (fd >= 0) {
            *ret_fd = fd;
            *ret_got = tries[i];
            return 0;
        }
        if (errno != EINVAL || tries[i] == 0)
            return -errno;
    }
}

static const char *init_error(int e)
{
    if (e == -EPERM)
        return "fanotify_init: needs root (CAP_SYS_ADMIN)";
    if (e == -ENOSYS)
        return "fanotify_init: kernel built without fanotify (CONFIG_FANOTIFY)";
    if (e == -EINVAL)
        return "fanotify_init: kernel too old (FID reporting needs Linux 5.9)";
    if (e == -EMFILE)
        return "fanotify_init: too many fanotify groups (fs.fanotify.max_user_groups)";
    return NULL;
}

static const char *mark_error(int e)
{
    switch (e) {
    case -EPERM:
        return "needs root (CAP_SYS_ADMIN)";
    case -ENODEV:
        return "the filesystem has no fsid, fanotify cannot report on it";
    case -EXDEV:
        return "a subvolume with its own fsid; mark a path on it directly";
    case -EOPNOTSUPP:
        return "the filesystem does not support file handles";
    case -ENOSPC:
        return "too many marks (fs.fanotify.max_user_marks)";
    default:
        return strerror(-e);
    }
}

static uint64_t notif_mask_for(uint32_t ops)
{
    uint64_t m = 0;
    if (ops & AGENT_OP_BIT(IVMON_OP_OPEN))
        m |= FAN_OPEN;
    if (ops & AGENT_OP_BIT(IVMON_OP_EXEC))
        m |= FAN_OPEN_EXEC;
    if (ops & AGENT_OP_BIT(IVMON_OP_MODIFY))
        m |= FAN_MODIFY;
    if (ops & AGENT_OP_BIT(IVMON_OP_CLOSE_WRITE))
        m |= FAN_CLOSE_WRITE;
    return m;
}

static uint64_t fid_mask_for(uint32_t ops)
{
    uint64_t m = 0;
    if (ops & AGENT_OP_BIT(IVMON_OP_CREATE))
        m |= FAN_CREATE;
    if (ops & AGENT_OP_BIT(IVMON_OP_DELETE))
        m |= FAN_DELETE;
    if (ops & AGENT_OP_BIT(IVMON_OP_ATTRIB))
        m |= FAN_ATTRIB;
    if (ops & AGENT_OP_BIT(IVMON_OP_RENAME))
        m |= FAN_RENAME;
    return m ? m | FAN_ONDIR : 0; /* directories too, flagged IVMON_FILE_DIR */
}

/* Opens a descriptor usable as open_by_handle_at's mount_fd: the path itself if it is a
 * directory, else its parent (opening a device or FIFO could have side effects or block). */
static int open_mount_fd(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 || errno != ENOTDIR)
        return fd;
    char parent[PATHBUF];
    size_t n = strlen(path);
    if (n >= sizeof parent)
        return -1;
    memcpy(parent, path, n + 1);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return -1;
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    return open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Marks the filesystem holding path in both groups (once per filesystem). */
static int add_fs(struct fan_source *s, const char *path, int whole, uint64_t notif_mask,
                  uint64_t *fid_mask, char *err, size_t errlen)
{
    struct statfs sf;
    struct stat st;

    if (statfs(path, &sf) < 0 || stat(path, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    uint8_t fsid[8];
    memcpy(fsid, &sf.f_fsid, sizeof fsid);
    for (size_t i = 0; i < s->nfs; i++) {
        if (s->fs[i].dev == st.st_dev && !memcmp(s->fs[i].fsid, fsid, sizeof fsid)) {
            s->fs[i].whole |= whole; /* already marked */
            return 0;
        }
    }
    if (s->nfs == MAX_FS) {
        snprintf(err, errlen, "%s: more than %d filesystems", path, MAX_FS);
        return -E2BIG;
    }
    struct marked_fs *f = &s->fs[s->nfs];
    f->mount_fd = open_mount_fd(path);
    if (f->mount_fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    memcpy(f->fsid, fsid, sizeof fsid);
    f->dev = st.st_dev;
    f->whole = whole;
    s->nfs++;

    if (s->notif_fd >= 0 && fanotify_mark(s->notif_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                                          notif_mask, AT_FDCWD, path) < 0) {
        /* A filesystem mark sees every mount of it; a mount mark is the next best thing where
         * the kernel refuses the former. */
        int e = errno;
        if (e == EPERM || fanotify_mark(s->notif_fd, FAN_MARK_ADD | FAN_MARK_MOUNT, notif_mask,
                                        AT_FDCWD, path) < 0) {
            snprintf(err, errlen, "fanotify_mark %s: %s", path, mark_error(-e));
            return -e;
        }
        s->info.mount_marks = 1;
    }
    if (s->fid_fd >= 0) {
        for (;;) {
            if (fanotify_mark(s->fid_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, *fid_mask, AT_FDCWD,
                              path) == 0)
                break;
            int e = errno;
            if (e == EINVAL && (*fid_mask & FAN_RENAME)) {
                /* Before Linux 5.17: pair MOVED_FROM/MOVED_TO ourselves (see top of file). */
                *fid_mask = (*fid_mask & ~(uint64_t)FAN_RENAME) | FAN_MOVED_FROM | FAN_MOVED_TO;
                s->info.rename_pairs = 0;
                continue;
            }
            snprintf(err, errlen, "fanotify_mark %s: %s", path, mark_error(-e));
            return -e;
        }
    }
    return 0;
}

int fan_source_open(struct fan_source **ret, const struct agent_config *cfg,
                    const struct agent_sink *sink, char *err, size_t errlen)
{
    struct fan_source *s = calloc(1, sizeof *s);
    int r = -ENOMEM;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->notif_fd = s->fid_fd = -1;
    s->cfg = cfg;
    s->sink = *sink;
    s->self = getpid();
    s->pc = procinfo_cache_new();
    s->dc = dircache_new();
    if (!s->pc || !s->dc) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    uint64_t notif_mask = notif_mask_for(cfg->ops), fid_mask = fid_mask_for(cfg->ops);
    unsigned got = 0;
    const char *why;
    if (notif_mask) {
        static const unsigned tries[] = {FAN_REPORT_TID, 0};
        r = init_group(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, tries, &s->notif_fd, &got);
        if (r < 0) {
            why = init_error(r);
            snprintf(err, errlen, "%s", why ? why : strerror(-r));
            goto fail;
        }
        s->info.notif_tid = (got & FAN_REPORT_TID) != 0;
    }
    if (fid_mask) {
        /* TARGET_FID (5.17) adds the handle of the created/deleted/renamed object itself, which
         * lets a directory removed before its children's events are read still be named. */
        static const unsigned tries[] = {FAN_REPORT_TID | FAN_REPORT_FID | FAN_REPORT_TARGET_FID,
                                         FAN_REPORT_TID, 0};
        r = init_group(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME, tries,
                       &s->fid_fd, &got);
        if (r < 0) {
            why = init_error(r);
            snprintf(err, errlen, "%s%s", why ? why : strerror(-r),
                     r == -EINVAL ? "; drop create,delete,rename,attrib from --ops" : "");
            goto fail;
        }
        s->info.fid_tid = (got & FAN_REPORT_TID) != 0;
        s->info.fid_child = (got & FAN_REPORT_TARGET_FID) != 0;
        s->info.rename_pairs = (fid_mask & FAN_RENAME) != 0;
    }
    for (size_t i = 0; i < cfg->nfilesystem; i++)
        if ((r = add_fs(s, cfg->filesystem[i], 1, notif_mask, &fid_mask, err, errlen)) < 0)
            goto fail;
    for (size_t i = 0; i < cfg->nwatch; i++)
        if ((r = add_fs(s, cfg->watch[i], 0, notif_mask, &fid_mask, err, errlen)) < 0)
            goto fail;
    s->info.nfs = s->nfs;
    s->all_whole = 1;
    for (size_t i = 0; i < s->nfs; i++) {
        s->any_whole |= s->fs[i].whole;
        s->all_whole &= s->fs[i].whole;
    }
    *ret = s;
    return 0;
fail:
    fan_source_close(s);
    return r;
}

void fan_source_new_round(struct fan_source *s)
{
    procinfo_cache_reset(s->pc);
}

int fan_source_notif_fd(const struct fan_source *s)
{
    return s->notif_fd;
}

int fan_source_fid_fd(const struct fan_source *s)
{
    return s->fid_fd;
}

uint32_t fan_source_caps(const struct fan_source *s)
{
    uint32_t caps = 0;
    const struct agent_config *c = s->cfg;
    if (s->info.rename_pairs)
        caps |= IVMON_CAP_RENAME_PAIR;
    if (c->ops & AGENT_OP_BIT(IVMON_OP_EXEC))
        caps |= IVMON_CAP_EXEC;
    /* The stream is a filtered view: not every event of the guest is in it. */
    if (c->nwatch || c->nexclude || c->ops != AGENT_OPS_ALL)
        caps |= IVMON_CAP_GUEST_FILTER;
    return caps;
}

void fan_source_get_info(const struct fan_source *s, struct fan_source_info *ret)
{
    *ret = s->info;
}

void fan_source_get_stats(const struct fan_source *s, struct fan_source_stats *ret)
{
    *ret = s->st;
}

void fan_source_close(struct fan_source *s)
{
    if (!s)
        return;
    if (s->notif_fd >= 0)
        close(s->notif_fd);
    if (s->fid_fd >= 0)
        close(s->fid_fd);
    for (size_t i = 0; i < s->nfs; i++)
        if (s->fs[i].mount_fd >= 0)
            close(s->fs[i].mount_fd);
    procinfo_cache_free(s->pc);
    dircache_free(s->dc);
    free(s);
}

/* ---- filtering and emission ----------------------------------------------------------------- */

static int excluded(const struct agent_config *c, const char *path)
{
    for (size_t i = 0; i < c->nexclude; i++)
        if (fnmatch(c->exclude[i], path, 0) == 0)
            return 1;
    return 0;
}

static int watched(const struct agent_config *c, const char *path, size_t len)
{
    for (size_t i = 0; i < c->nwatch; i++)
        if (path_is_under(path, len, c->watch[i], strlen(c->watch[i])))
            return 1;
    return 0;
}

/* Whether an event with path (and new_path for renames, else NULL) is reported. whole: its
 * filesystem was given with --filesystem. A rename is reported if either name is watched, and
 * excluded only if both names are: a file moved out of or into a watched tree is news. */
static int wanted(const struct fan_source *s, int whole, const char *path, size_t len,
                  const char *new_path, size_t new_len)
{
    const struct agent_config *c = s->cfg;
    if (!whole && !watched(c, path, len) && !(new_path && watched(c, new_path, new_len)))
        return 0;
    return !(excluded(c, path) && (!new_path || excluded(c, new_path)));
}

static void emit(struct fan_source *s, uint32_t op, uint32_t flags, const struct procinfo *pi,
                 const char *path, size_t len, const char *new_path, size_t new_len)
{
    struct ivmon_enc_file f = {
        .op = op,
        .flags = flags | pi->flags,
        .pid = pi->pid,
        .tid = pi->tid,
        .ppid = pi->ppid,
        .uid = pi->uid,
        .gid = pi->gid,
        .comm = pi->comm,
        .comm_len = pi->comm_len,
        .exe = pi->exe,
        .exe_len = pi->exe_len,
        .path = path,
        .path_len = len,
        .new_path = new_path,
        .new_path_len = new_len,
    };
    s->st.records++;
    s->sink.file(s->sink.arg, &f);
}

static int op_on(const struct fan_source *s, uint32_t op)
{
    return (s->cfg->ops & AGENT_OP_BIT(op)) != 0;
}

/* ---- fd-mode group -------------------------------------------------------------------------- */

static int fs_whole_by_dev(const struct fan_source *s, int fd)
{
    struct stat st;
    if (s->all_whole)
        return 1;
    if (!s->any_whole || fstat(fd, &st) < 0)
        return 0;
    for (size_t i = 0; i < s->nfs; i++)
        if (s->fs[i].dev == st.st_dev)
            return s->fs[i].whole;
    return 0;
}

/* An exec event describes the image being executed. fanotify reports it from inside execve, so
 * /proc may still show the old image (the shell or interpreter that called exec) or already the
 * new one, depending on when the agent runs. To make the record deterministic, its executable is
 * always the file executed, and its name the one the kernel gives the new image (the file's base
 * name cut to 15 bytes) unless /proc already shows the exec done, whose name is then exact (it
 * differs when the program was started through a symlink of another name). */
static const struct procinfo *exec_image(struct fan_source *s, const struct procinfo *pi,
                                         const char *path, size_t len)
{
    if (pi->exe_len == len && !memcmp(pi->exe, path, len))
        return pi;
    struct procinfo *x = &s->exec_pi;
    *x = *pi;
    const char *base = memrchr(path, '/', len);
    base = base ? base + 1 : path;
    x->comm_len = len - (size_t)(base - path);
    if (x->comm_len > IVMON_COMM_MAX - 1)
        x->comm_len = IVMON_COMM_MAX - 1; /* TASK_COMM_LEN 16 includes the NUL */
    memcpy(x->comm, base, x->comm_len);
    x->comm[x->comm_len] = '\0';
    /* Longer than the wire allows still stays longer, so the encoder cuts it and flags it. */
    x->exe_len = len < sizeof x->exe ? len : sizeof x->exe;
    memcpy(x->exe, path, x->exe_len);
    return x;
}

static void notif_event(struct fan_source *s, const struct fanotify_event_metadata *m)
{
    /* Fixed order for a merged mask; exec is an open too, so OPEN comes first. */
    static const struct {
        uint64_t bit;
        uint32_t op;
    } order[] = {{FAN_OPEN, IVMON_OP_OPEN},
                 {FAN_OPEN_EXEC, IVMON_OP_EXEC},
                 {FAN_MODIFY, IVMON_OP_MODIFY},
                 {FAN_CLOSE_WRITE, IVMON_OP_CLOSE_WRITE}};

    s->st.events++;
    if (m->pid == s->self) {
        s->st.skipped_self++;
        return;
    }
    ssize_t n = path_of_fd(m->fd, s->path_a, sizeof s->path_a);
    if (n <= 0) {
        s->st.unresolved++;
        return;
    }
    if (!wanted(s, fs_whole_by_dev(s, m->fd), s->path_a, (size_t)n, NULL, 0)) {
        s->st.filtered++;
        return;
    }
    const struct procinfo *pi = procinfo_lookup(s->pc, m->pid, s->info.notif_tid);
    uint32_t flags = (m->mask & FAN_ONDIR) ? IVMON_FILE_DIR : 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if ((m->mask & order[i].bit) && op_on(s, order[i].op))
            emit(s, order[i].op, flags,
                 order[i].op == IVMON_OP_EXEC ? exec_image(s, pi, s->path_a, (size_t)n) : pi,
                 s->path_a, (size_t)n, NULL, 0);
}

/* Copies the metadata of the event at off in the read buffer (len bytes) into *md. Events are
 * packed back to back and FID events are only 4-byte aligned, so the struct cannot be read in
 * place. Returns 1 if a whole event is there, 0 at the end (or on a length the kernel would not
 * produce). */
static int next_event(const struct fan_source *s, size_t len, size_t off,
                      struct fanotify_event_metadata *md)
{
    if (off > len || len - off < FAN_EVENT_METADATA_LEN)
        return 0;
    memcpy(md, s->buf.b + off, sizeof *md);
    return md->event_len >= FAN_EVENT_METADATA_LEN && md->event_len <= len - off;
}

/* Reads /proc for pid now, before the batch's paths are resolved: the process is the part of an
 * event that vanishes first (a short-lived process is reaped microseconds after it exits), so
 * every distinct process of a batch is looked up as soon as the batch is read. */
static void prefetch(struct fan_source *s, int32_t pid, int tid_mode)
{
    if (pid > 0 && pid != s->self)
        procinfo_lookup(s->pc, pid, tid_mode);
}

static int notif_batch(struct fan_source *s, size_t len)
{
    struct fanotify_event_metadata md;

    for (size_t off = 0; next_event(s, len, off, &md); off += md.event_len)
        if (md.vers == FANOTIFY_METADATA_VERSION && !(md.mask & FAN_Q_OVERFLOW))
            prefetch(s, md.pid, s->info.notif_tid);
    for (size_t off = 0; next_event(s, len, off, &md); off += md.event_len) {
        if (md.vers != FANOTIFY_METADATA_VERSION)
            return -EPROTO; /* the layout is unknown: fds in the rest of the buffer leak */
        if (md.mask & FAN_Q_OVERFLOW) {
            s->st.overflows++;
            s->sink.overflow(s->sink.arg);
        } else if (md.fd >= 0) {
            notif_event(s, &md);
        }
        if (md.fd >= 0)
            close(md.fd); /* every event fd, reported or not */
    }
    return 0;
}

/* ---- FID group ------------------------------------------------------------------------------ */

/* Parses one fanotify_event_info_fid of ilen bytes at p; with_name: a NUL-terminated name
 * follows the handle. Every offset is checked against ilen. */
static int parse_fid(const uint8_t *p, size_t ilen, int with_name, struct fid_ref *ref)
{
    const size_t fh_off = offsetof(struct fanotify_event_info_fid, handle);
    struct file_handle fh;

    if (ilen < fh_off + sizeof fh)
        return -EBADMSG;
    memcpy(&fh, p + fh_off, sizeof fh);
    if (fh.handle_bytes == 0 || fh.handle_bytes > MAX_HANDLE_SZ ||
        fh.handle_bytes > ilen - fh_off - sizeof fh)
        return -EBADMSG;
    ref->fsid = p + offsetof(struct fanotify_event_info_fid, fsid);
    ref->fh = p + fh_off + sizeof fh;
    ref->fh_bytes = fh.handle_bytes;
    ref->fh_type = fh.handle_type;
    ref->name = NULL;
    ref->name_len = 0;
    if (with_name) {
        size_t off = fh_off + sizeof fh + fh.handle_bytes, room = ilen - off;
        const char *name = (const char *)p + off;
        size_t nl = strnlen(name, room);
        if (nl == 0 || nl == room)
            return -EBADMSG; /* empty, or no NUL inside the record */
        ref->name = name;
        ref->name_len = nl;
    }
    ref->valid = 1;
    return 0;
}

/* Parses the info records of the event whose metadata is *m and whose bytes start at base. */
static int parse_fid_event(const uint8_t *base, const struct fanotify_event_metadata *m,
                           struct fid_event *e)
{
    size_t off = m->metadata_len;

    memset(e, 0, sizeof *e);
    e->mask = m->mask;
    e->pid = m->pid;
    if (off < FAN_EVENT_METADATA_LEN || off > m->event_len)
        return -EBADMSG;
    while (off < m->event_len) {
        struct fanotify_event_info_header ih;
        if (m->event_len - off < sizeof ih)
            return -EBADMSG;
        memcpy(&ih, base + off, sizeof ih);
        if (ih.len < sizeof ih || ih.len > m->event_len - off)
            return -EBADMSG;
        struct fid_ref *ref = NULL;
        int with_name = 1;
        switch (ih.info_type) {
        case FAN_EVENT_INFO_TYPE_FID:
            ref = &e->child;
            with_name = 0;
            break;
        case FAN_EVENT_INFO_TYPE_DFID:
            ref = &e->dir;
            with_name = 0;
            break;
        case FAN_EVENT_INFO_TYPE_DFID_NAME:
            ref = &e->dir;
            break;
        case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
            ref = &e->old;
            break;
        case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
            ref = &e->nw;
            break;
        default:
            break; /* pidfd, error, future types: not ours */
        }
        if (ref && parse_fid(base + off, ih.len, with_name, ref) < 0)
            return -EBADMSG;
        off += ih.len;
    }
    e->parsed = 1;
    return 0;
}

static void make_key(const struct fid_ref *r, struct dirkey *k)
{
    uint32_t hb = r->fh_bytes;
    memcpy(k->b, r->fsid, 8);
    memcpy(k->b + 8, &r->fh_type, 4);
    memcpy(k->b + 12, &hb, 4);
    memcpy(k->b + 16, r->fh, hb); /* hb <= MAX_HANDLE_SZ, checked by parse_fid */
    k->len = 16 + hb;
}

static int same_object(const struct fid_ref *a, const struct fid_ref *b)
{
    return a->fh_bytes == b->fh_bytes && a->fh_type == b->fh_type && !memcmp(a->fsid, b->fsid, 8) &&
           !memcmp(a->fh, b->fh, a->fh_bytes);
}

static const struct marked_fs *fs_by_fsid(const struct fan_source *s, const uint8_t *fsid)
{
    for (size_t i = 0; i < s->nfs; i++)
        if (!memcmp(s->fs[i].fsid, fsid, 8))
            return &s->fs[i];
    return NULL;
}

/* Appends "/name" to the directory path in out (n bytes); "." names the directory itself. */
static ssize_t append_name(char *out, size_t cap, size_t n, const char *name, size_t name_len)
{
    if (!name || (name_len == 1 && name[0] == '.'))
        return (ssize_t)n;
    if (n == 1 && out[0] == '/')
        n = 0; /* the root: "/name", not "//name" */
    if (n + 1 + name_len + 1 > cap)
        return -ENAMETOOLONG;
    out[n] = '/';
    memcpy(out + n + 1, name, name_len);
    n += 1 + name_len;
    out[n] = '\0';
    return (ssize_t)n;
}

/* The path of the directory r names, into out. Order of attempts: open the handle (the current
 * path); the directory's own event in this batch naming its parent (it was removed or moved
 * after the event); the last path seen for it. Recursive through a moved directory's parents,
 * at most MAX_DEPTH deep. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded by depth < MAX_DEPTH */
static ssize_t resolve_dir(struct fan_source *s, const struct fid_ref *r, char *out, size_t cap,
                           int depth)
{
    union {
        struct file_handle fh;
        uint8_t b[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    } h;
    struct dirkey key;

    make_key(r, &key);
    h.fh.handle_bytes = r->fh_bytes;
    h.fh.handle_type = r->fh_type;
    memcpy(h.fh.f_handle, r->fh, r->fh_bytes);

    const struct marked_fs *f = fs_by_fsid(s, r->fsid);
    for (size_t i = 0; i < s->nfs; i++) {
        const struct marked_fs *c = f ? f : &s->fs[i];
        int fd = open_by_handle_at(c->mount_fd, &h.fh, O_PATH | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = path_of_fd(fd, out, cap);
            close(fd);
            if (n > 0) {
                dircache_put(s->dc, &key, out, (size_t)n);
                return n;
            }
        }
        if (f)
            break; /* only an unknown fsid tries every filesystem */
    }

    if (depth < MAX_DEPTH) {
        /* Latest first: a directory's last DELETE or RENAME names where it was last. */
        for (size_t j = s->nb; j-- > 0;) {
            const struct fid_event *e = &s->batch[j];
            if (!e->parsed || !(e->mask & FAN_ONDIR) || !e->child.valid ||
                !same_object(&e->child, r))
                continue;
            const struct fid_ref *parent = (e->mask & FAN_RENAME) ? &e->nw : &e->dir;
            if (!parent->valid || !parent->name ||
                (parent->name_len == 1 && parent->name[0] == '.'))
                continue;
            ssize_t n = resolve_dir(s, parent, out, cap, depth + 1);
            if (n > 0)
                n = append_name(out, cap, (size_t)n, parent->name, parent->name_len);
            if (n > 0) {
                dircache_put(s->dc, &key, out, (size_t)n);
                return n;
            }
            break;
        }
    }

    size_t len;
    const char *cached = dircache_get(s->dc, &key, &len);
    if (!cached || len >= cap)
        return -ESTALE;
    memcpy(out, cached, len + 1);
    return (ssize_t)len;
}

/* The full path of the object a DFID_NAME reference names. */
static ssize_t resolve_path(struct fan_source *s, const struct fid_ref *r, char *out, size_t cap)
{
    ssize_t n = resolve_dir(s, r, out, cap, 0);
    if (n <= 0)
        return n < 0 ? n : -ESTALE;
    return append_name(out, cap, (size_t)n, r->name, r->name_len);
}

static int fs_whole_by_fsid(const struct fan_source *s, const uint8_t *fsid)
{
    if (s->all_whole)
        return 1;
    const struct marked_fs *f = s->any_whole ? fs_by_fsid(s, fsid) : NULL;
    return f ? f->whole : 0;
}

/* Reports a stashed MOVED_FROM that found no MOVED_TO. */
static void flush_stash(struct fan_source *s)
{
    if (!s->mv.valid)
        return;
    s->mv.valid = 0;
    if (!wanted(s, s->mv.whole, s->mv.path, s->mv.len, NULL, 0)) {
        s->st.filtered++;
        return;
    }
    const struct procinfo *pi = procinfo_lookup(s->pc, s->mv.pid, s->info.fid_tid);
    emit(s, IVMON_OP_RENAME, s->mv.flags, pi, s->mv.path, s->mv.len, NULL, 0);
}

static void fid_rename(struct fan_source *s, const struct fid_event *e, uint32_t flags)
{
    ssize_t n_old = resolve_path(s, &e->old, s->path_a, sizeof s->path_a);
    ssize_t n_new = resolve_path(s, &e->nw, s->path_b, sizeof s->path_b);
    if (n_old <= 0 || n_new <= 0) {
        s->st.unresolved++;
        return;
    }
    if ((e->mask & FAN_ONDIR) && e->child.valid) {
        struct dirkey key; /* the directory lives at its new name now */
        make_key(&e->child, &key);
        dircache_put(s->dc, &key, s->path_b, (size_t)n_new);
    }
    if (!wanted(s, fs_whole_by_fsid(s, e->old.fsid), s->path_a, (size_t)n_old, s->path_b,
                (size_t)n_new)) {
        s->st.filtered++;
        return;
    }
    const struct procinfo *pi = procinfo_lookup(s->pc, e->pid, s->info.fid_tid);
    emit(s, IVMON_OP_RENAME, flags, pi, s->path_a, (size_t)n_old, s->path_b, (size_t)n_new);
}

/* MOVED_FROM / MOVED_TO halves, for kernels without FAN_RENAME. path is in s->path_a. */
static void fid_moved(struct fan_source *s, const struct fid_event *e, uint32_t flags, int whole,
                      size_t n)
{
    if (e->mask & FAN_MOVED_TO) {
        if (s->mv.valid && s->mv.pid == e->pid) {
            s->mv.valid = 0;
            if (wanted(s, whole || s->mv.whole, s->mv.path, s->mv.len, s->path_a, n)) {
                const struct procinfo *pi = procinfo_lookup(s->pc, e->pid, s->info.fid_tid);
                emit(s, IVMON_OP_RENAME, flags, pi, s->mv.path, s->mv.len, s->path_a, n);
            } else {
                s->st.filtered++;
            }
        } else {
            flush_stash(s);
            if (wanted(s, whole, s->path_a, n, NULL, 0)) {
                const struct procinfo *pi = procinfo_lookup(s->pc, e->pid, s->info.fid_tid);
                emit(s, IVMON_OP_CREATE, flags, pi, s->path_a, n, NULL, 0);
            } else {
                s->st.filtered++;
            }
        }
    }
    if (e->mask & FAN_MOVED_FROM) {
        flush_stash(s);
        s->mv.valid = 1;
        s->mv.pid = e->pid;
        s->mv.flags = flags;
        s->mv.whole = whole;
        s->mv.len = n;
        memcpy(s->mv.path, s->path_a, n + 1);
    }
}

static void fid_event(struct fan_source *s, const struct fid_event *e)
{
    if (!(e->mask & FAN_MOVED_TO))
        flush_stash(s); /* a MOVED_TO must follow its MOVED_FROM directly */
    if (!e->parsed) {
        s->st.malformed++;
        return;
    }
    s->st.events++;
    if (e->pid == s->self) {
        s->st.skipped_self++;
        return;
    }
    uint32_t flags = (e->mask & FAN_ONDIR) ? IVMON_FILE_DIR : 0;
    if (e->mask & FAN_RENAME) {
        if (!e->old.valid || !e->nw.valid) {
            s->st.malformed++;
            return;
        }
        fid_rename(s, e, flags);
        return;
    }
    if (!e->dir.valid) {
        /* No directory named: a "self" event on a non-directory, i.e. the link-count ATTRIB
         * the kernel sends on unlink/link (the DELETE/CREATE is reported with its name). */
        s->st.unnamed++;
        return;
    }
    ssize_t n = resolve_path(s, &e->dir, s->path_a, sizeof s->path_a);
    if (n <= 0) {
        s->st.unresolved++;
        return;
    }
    if ((e->mask & FAN_ONDIR) && e->child.valid && e->dir.name &&
        !(e->dir.name_len == 1 && e->dir.name[0] == '.')) {
        struct dirkey key; /* a directory named here may be removed before its children's
                            * events are read: remember where it was */
        make_key(&e->child, &key);
        dircache_put(s->dc, &key, s->path_a, (size_t)n);
    }
    int whole = fs_whole_by_fsid(s, e->dir.fsid);
    if (e->mask & (FAN_MOVED_FROM | FAN_MOVED_TO))
        fid_moved(s, e, flags, whole, (size_t)n);
    if (!(e->mask & (FAN_CREATE | FAN_ATTRIB | FAN_DELETE)))
        return;
    if (!wanted(s, whole, s->path_a, (size_t)n, NULL, 0)) {
        s->st.filtered++;
        return;
    }
    const struct procinfo *pi = procinfo_lookup(s->pc, e->pid, s->info.fid_tid);
    /* Fixed order for a merged mask: create, attrib, (rename), delete. */
    if ((e->mask & FAN_CREATE) && op_on(s, IVMON_OP_CREATE))
        emit(s, IVMON_OP_CREATE, flags, pi, s->path_a, (size_t)n, NULL, 0);
    if ((e->mask & FAN_ATTRIB) && op_on(s, IVMON_OP_ATTRIB))
        emit(s, IVMON_OP_ATTRIB, flags, pi, s->path_a, (size_t)n, NULL, 0);
    if ((e->mask & FAN_DELETE) && op_on(s, IVMON_OP_DELETE))
        emit(s, IVMON_OP_DELETE, flags, pi, s->path_a, (size_t)n, NULL, 0);
}

static int fid_batch(struct fan_source *s, size_t len)
{
    struct fanotify_event_metadata md;

    /* Parse the whole batch first: resolving a removed directory looks at later events. */
    s->nb = 0;
    for (size_t off = 0; s->nb < MAX_BATCH && next_event(s, len, off, &md); off += md.event_len) {
        if (md.vers != FANOTIFY_METADATA_VERSION)
            return -EPROTO;
        struct fid_event *e = &s->batch[s->nb++];
        if (parse_fid_event(s->buf.b + off, &md, e) < 0)
            e->parsed = 0;
    }
    for (size_t i = 0; i < s->nb; i++)
        if (!(s->batch[i].mask & FAN_Q_OVERFLOW))
            prefetch(s, s->batch[i].pid, s->info.fid_tid);
    for (size_t i = 0; i < s->nb; i++) {
        const struct fid_event *e = &s->batch[i];
        if (e->mask & FAN_Q_OVERFLOW) {
            flush_stash(s);
            s->st.overflows++;
            s->sink.overflow(s->sink.arg);
            continue;
        }
        fid_event(s, e);
    }
    s->nb = 0;
    return 0;
}

int fan_source_process(struct fan_source *s, int fd)
{
    int fid = fd == s->fid_fd;
    size_t cap = fid ? FID_BUF : NOTIF_BUF;
    int r = 0;

    for (int i = 0; i < MAX_READS && r == 0; i++) {
        ssize_t n = read(fd, s->buf.b, cap);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            /* The kernel dequeued an event it could not hand over (for instance it could not
             * open the file for an fd-mode event): that event is lost, so say so. */
            s->st.overflows++;
            s->sink.overflow(s->sink.arg);
            break;
        }
        if (n == 0)
            break;
        r = fid ? fid_batch(s, (size_t)n) : notif_batch(s, (size_t)n);
    }
    if (fid)
        flush_stash(s); /* unpaired at the end of what was queued */
    return r;
}
