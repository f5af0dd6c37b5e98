/* SPDX-License-Identifier: MIT */
/* Directory handle -> path cache; see dircache.h. */
#include "dircache.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS    256 /* power of two */
#define PATH_CAP 8192

struct slot {
    struct dirkey key; /* key.len == 0: empty */
    char *path;        /* PATH_CAP bytes, allocated on first use */
    size_t len;
};

struct dircache {
    struct slot s[SLOTS];
};

static uint32_t hash(const struct dirkey *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < k->len; i++)
        h = (h ^ k->b[i]) * 16777619u;
    return h & (SLOTS - 1);
}

struct dircache *dircache_new(void)
{
    return calloc(1, sizeof(struct dircache));
}

void dircache_free(struct dircache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        free(c->s[i].path);
    free(c);
}

void dircache_put(struct dircache *c, const struct dirkey *key, const char *path, size_t len)
{
    if (key->len == 0 || key->len > DIRKEY_MAX || len >= PATH_CAP)
        return;
    struct slot *s = &c->s[hash(key)];
    if (!s->path && !(s->path = malloc(PATH_CAP)))
        return;
    s->key.len = key->len;
    memcpy(s->key.b, key->b, key->len);
    memcpy(s->path, path, len);
    s->path[len] = '\0';
    s->len = len;
}

const char *dircache_get(const struct dircache *c, const struct dirkey *key, size_t *ret_len)
{
    if (key->len == 0 || key->len > DIRKEY_MAX)
        return NULL;
    const struct slot *s = &c->s[hash(key)];
    if (s->key.len != key->len || memcmp(s->key.b, key->b, key->len) != 0)
        return NULL;
    *ret_len = s->len;
    return s->path;
}
