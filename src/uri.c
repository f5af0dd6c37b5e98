/* SPDX-License-Identifier: MIT */
/* URI parsing: "scheme:target?key=value&key=value". Strict: the URI is often typed by a user or
 * read from a configuration, and a silently ignored typo ("lossles=1") is worse than an error. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static int valid_scheme(const char *s)
{
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' ||
                 *p == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

int ivmon__uri_parse(ivmon_uri *u, const char *uri, const char **ret_why)
{
    memset(u, 0, sizeof *u);
    if (!uri || !*uri) {
        *ret_why = "empty URI";
        return -EINVAL;
    }
    size_t len = strnlen(uri, IVMON_URI_MAX + 1);
    if (len > IVMON_URI_MAX) {
        *ret_why = "URI longer than 4096 bytes";
        return -EINVAL;
    }
    u->buf = strdup(uri);
    if (!u->buf)
        return -ENOMEM;

    char *colon = strchr(u->buf, ':');
    if (!colon) {
        *ret_why = "URI has no scheme (expected scheme:target)";
        goto fail;
    }
    *colon = '\0';
    u->scheme = u->buf;
    if (!valid_scheme(u->scheme)) {
        *ret_why = "URI scheme must be lower-case letters, digits, '+', '-' or '.'";
        goto fail;
    }
    u->target = colon + 1;
    char *query = strchr(u->target, '?');
    if (!query)
        return 0;
    *query++ = '\0';
    /* Every option is key=value: an empty one ("x?", "a=1&", "a=1&&b=2") is a typo too. */
    for (;;) {
        char *amp = strchr(query, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(query, '=');
        if (!eq || eq == query) {
            *ret_why = "URI option is not key=value";
            goto fail;
        }
        *eq = '\0';
        for (unsigned i = 0; i < u->n_params; i++)
            if (!strcmp(u->params[i].key, query)) {
                *ret_why = "URI option given twice";
                goto fail;
            }
        if (u->n_params == IVMON_URI_PARAMS_MAX) {
            *ret_why = "too many URI options";
            goto fail;
        }
        u->params[u->n_params].key = query;
        u->params[u->n_params].value = eq + 1;
        u->n_params++;
        if (!amp)
            break;
        query = amp + 1;
    }
    return 0;
fail:
    ivmon__uri_free(u);
    return -EINVAL;
}

void ivmon__uri_free(ivmon_uri *u)
{
    free(u->buf);
    memset(u, 0, sizeof *u);
}

const char *ivmon__uri_get(ivmon_uri *u, const char *key)
{
    for (unsigned i = 0; i < u->n_params; i++)
        if (!strcmp(u->params[i].key, key))
            return u->params[i].value;
    return NULL;
}

int ivmon__uri_get_size(ivmon_uri *u, const char *key, uint64_t *ret)
{
    const char *v = ivmon__uri_get(u, key);
    if (!v)
        return 0;
    if (*v < '0' || *v > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return -EINVAL;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || n > (UINT64_MAX >> shift))
        return -EINVAL;
    *ret = (uint64_t)n << shift;
    return 0;
}

int ivmon__uri_get_bool(ivmon_uri *u, const char *key, int *ret)
{
    const char *v = ivmon__uri_get(u, key);
    if (!v)
        return 0;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
        *ret = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
        *ret = 0;
    else
        return -EINVAL;
    return 0;
}

static int listed(const char *const *keys, const char *key)
{
    for (; keys && *keys; keys++)
        if (!strcmp(*keys, key))
            return 1;
    return 0;
}

const char *ivmon__uri_unknown(const ivmon_uri *u, const char *const *known,
                               const char *const *also)
{
    for (unsigned i = 0; i < u->n_params; i++)
        if (!listed(known, u->params[i].key) && !listed(also, u->params[i].key))
            return u->params[i].key;
    return NULL;
}
