/* SPDX-License-Identifier: MIT */
/*
 * Last known path of directories, by file handle. fanotify names a directory by handle, and a
 * handle of a directory that is already gone (rm -rf) no longer opens (ESTALE). The agent then
 * falls back to the path it saw for that handle most recently. A fixed number of slots,
 * direct-mapped by hash: an entry may be evicted, never wrong for its handle at the time seen.
 */
#ifndef IVMON_AGENT_DIRCACHE_H
#define IVMON_AGENT_DIRCACHE_H

#include <stddef.h>
#include <stdint.h>

/* fsid (8) + handle_type (4) + handle_bytes (4) + up to MAX_HANDLE_SZ (128) handle bytes. */
#define DIRKEY_MAX 144

struct dirkey {
    size_t len;
    uint8_t b[DIRKEY_MAX];
};

struct dircache;

struct dircache *dircache_new(void);
void dircache_free(struct dircache *c);

/* Remembers path (len bytes, len <= 8191) for key. Out of memory only loses the entry. */
void dircache_put(struct dircache *c, const struct dirkey *key, const char *path, size_t len);

/* The path remembered for key, NUL-terminated, valid until the next put; NULL if none. */
const char *dircache_get(const struct dircache *c, const struct dirkey *key, size_t *ret_len);

#endif /* IVMON_AGENT_DIRCACHE_H */
