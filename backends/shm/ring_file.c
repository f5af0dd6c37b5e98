/* SPDX-License-Identifier: MIT */
/* A ring in a file both sides map; see ring_file.h. */
#include "shm/ring_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void ivmon_ring_file_init(struct ivmon_ring_file *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->scheme = "ring";
}

static int ofd_lock(int fd, short type, off_t byte, int wait)
{
    struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    int r;
    do
        r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &l);
    while (r < 0 && errno == EINTR && wait);
    return r < 0 ? -errno : 0;
}

int ivmon_ring_file_path(ivmon *m, const char *scheme, const char *target, char *buf, size_t cap)
{
    int n;
    if (target[0] == '/') {
        n = snprintf(buf, cap, "%s", target);
    } else {
        if (!*target || strchr(target, '/') || !strcmp(target, ".") || !strcmp(target, ".."))
            return ivmon__error(
                m, -EINVAL, "%s: target must be a NAME in /dev/shm or an absolute path", scheme);
        n = snprintf(buf, cap, "/dev/shm/%s", target);
    }
    if (n < 0 || (size_t)n >= cap)
        return ivmon__error(m, -EINVAL, "%s: path too long", scheme);
    return 0;
}

/* Sizes, maps and attaches (formatting a ring whose magic is still 0). Runs under the format
 * lock, so a producer on the same host starting at the same moment sees one format. */
static int map_ring(ivmon *m, struct ivmon_ring_file *f, const struct ivmon_ring_file_params *p)
{
    struct stat st;
    const char *why = NULL;

    if (fstat(f->fd, &st) < 0)
        return ivmon__error(m, -errno, "%s: stat %s: %s", f->scheme, f->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ivmon__error(m, -EINVAL, "%s: %s is not a regular file", f->scheme, f->path);
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0 && p->create_size) {
        size = p->create_size;
        if (ftruncate(f->fd, (off_t)size) < 0)
            return ivmon__error(m, -errno, "%s: resize %s: %s", f->scheme, f->path,
                                strerror(errno));
    }
    if (size < IVMON_RING_HDR_SIZE + IVMON_RING_MIN_DATA ||
        size > IVMON_RING_HDR_SIZE + (uint64_t)IVMON_RING_MAX_DATA)
        return ivmon__error(m, -EPROTO,
                            "%s: %s has %llu bytes, not a ring size (4 KiB header + 64 KiB .. "
                            "1 GiB)",
                            f->scheme, f->path, (unsigned long long)size);
    if (p->data_size && IVMON_RING_HDR_SIZE + p->data_size > size)
        return ivmon__error(m, -EINVAL,
                            "%s: a ring of %llu data bytes does not fit %s (%llu bytes)", f->scheme,
                            (unsigned long long)p->data_size, f->path, (unsigned long long)size);
    f->map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return ivmon__error(m, -errno, "%s: map %s: %s", f->scheme, f->path, strerror(errno));
    }
    f->map_size = (size_t)size;
    int r = ivmon_ring_attach(&f->ring, f->map, f->map_size, &why);
    if (r == -EAGAIN) {
        size_t region = p->data_size ? (size_t)(IVMON_RING_HDR_SIZE + p->data_size) : f->map_size;
        r = ivmon_ring_format(f->map, region, p->ring_flags);
        if (r == 0)
            r = ivmon_ring_attach(&f->ring, f->map, f->map_size, &why);
    }
    if (r < 0)
        return ivmon__error(m, -EPROTO, "%s: %s: %s", f->scheme, f->path,
                            why ? why : "cannot format a ring there");
    return 0;
}

int ivmon_ring_file_open(ivmon *m, struct ivmon_ring_file *f, const char *path,
                         const struct ivmon_ring_file_params *p)
{
    f->scheme = p->scheme ? p->scheme : "ring";
    int n = snprintf(f->path, sizeof f->path, "%s", path);
    if (n < 0 || (size_t)n >= sizeof f->path)
        return ivmon__error(m, -EINVAL, "%s: path too long", f->scheme);
    f->fd = open(f->path, O_RDWR | O_CLOEXEC | (p->create ? O_CREAT : 0), 0600);
    if (f->fd < 0) {
        if (errno == ENOENT)
            return ivmon__error(m, -ENODEV, "%s: no ring at %s", f->scheme, f->path);
        return ivmon__error(m, -errno, "%s: open %s: %s", f->scheme, f->path, strerror(errno));
    }
    int r = ofd_lock(f->fd, F_WRLCK, IVMON_RING_FILE_LOCK_CONSUMER, 0);
    if (r == -EAGAIN || r == -EACCES)
        return ivmon__error(m, -EBUSY, "%s: another consumer is attached to %s", f->scheme,
                            f->path);
    if (r < 0)
        return ivmon__error(m, r, "%s: lock %s: %s", f->scheme, f->path, strerror(-r));
    r = ofd_lock(f->fd, F_WRLCK, IVMON_RING_FILE_LOCK_FORMAT, 1);
    if (r < 0)
        return ivmon__error(m, r, "%s: lock %s: %s", f->scheme, f->path, strerror(-r));
    r = map_ring(m, f, p);
    ofd_lock(f->fd, F_UNLCK, IVMON_RING_FILE_LOCK_FORMAT, 0);
    if (r < 0)
        return r;
    /* acq_rel: the producer that sees the new generation also sees the header we formatted. */
    f->generation = atomic_fetch_add_explicit((_Atomic uint64_t *)&f->ring.hdr->consumer_gen, 1,
                                              memory_order_acq_rel) +
                    1;
    return 0;
}

int ivmon_ring_file_check(ivmon *m, struct ivmon_ring_file *f)
{
    /* A producer that can write the file can also shrink it, and a read from a mapped page past
     * the end of the file raises SIGBUS. Catch it here before touching the mapping. (A shrink
     * between this check and the reads that follow is not caught; producers that must not be
     * trusted that far should not get write access to the file itself: see README.) */
    struct stat st;
    if (fstat(f->fd, &st) < 0 || (uint64_t)st.st_size < f->map_size)
        return ivmon__fail(m, -EPROTO, "%s: the ring file %s was truncated", f->scheme, f->path);
    /* The header is ours to check, not to trust: we run on private copies, but a rewritten magic
     * means the producer side is not speaking the protocol any more. */
    if (atomic_load_explicit((_Atomic uint64_t *)&f->ring.hdr->magic, memory_order_relaxed) !=
        IVMON_RING_MAGIC)
        return ivmon__fail(m, -EPROTO, "%s: the ring header of %s was overwritten", f->scheme,
                           f->path);
    return 0;
}

void ivmon_ring_file_close(struct ivmon_ring_file *f)
{
    if (f->map)
        munmap(f->map, f->map_size);
    f->map = NULL;
    /* Closing the file drops our OFD locks: the next consumer may attach. */
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}
