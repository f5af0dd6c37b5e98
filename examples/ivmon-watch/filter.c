/* SPDX-License-Identifier: MIT */
/* Host-side filters of ivmon-watch. See filter.h. */
#include "filter.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

void filter_init(struct filter *f)
{
    memset(f, 0, sizeof(*f));
}

void filter_free(struct filter *f)
{
    free(f->paths);
    free(f->comms);
    filter_init(f);
}

/* Copies at most n bytes of s, cut to fit and NUL terminated, to dst (size bytes). */
static void copy_cut(char *dst, size_t size, const char *s, size_t n)
{
    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int filter_add_ops(struct filter *f, const char *list, char *ret_bad, size_t bad_size)
{
    uint32_t ops = 0;
    const char *p = list;

    for (;;) {
        size_t len = strcspn(p, ",");
        /* Operation names are short words; anything that does not fit this buffer is not one
         * of them, so it can be rejected without being looked up. */
        char name[32];
        int op = -EINVAL;
        if (len > 0 && len < sizeof(name)) {
            memcpy(name, p, len);
            name[len] = '\0';
            op = ivmon_op_from_name(name);
        }
        /* The mask has a bit per operation; a library that knew operations beyond it would
         * need a wider mask here, so refuse rather than filter wrongly. */
        if (op < 0 || op >= 32) {
            copy_cut(ret_bad, bad_size, p, len);
            return -EINVAL;
        }
        ops |= UINT32_C(1) << op;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }

    /* Only now, so that a list with a bad name changes nothing. */
    f->ops |= ops;
    return 0;
}

static int add_glob(const char ***arr, size_t *n, const char *glob)
{
    /* One element more each time: the patterns come from the command line, a handful at
     * most, and argc bounds their number. */
    const char **grown = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!grown)
        return -ENOMEM;
    grown[*n] = glob;
    *arr = grown;
    (*n)++;
    return 0;
}

int filter_add_path(struct filter *f, const char *glob)
{
    return add_glob(&f->paths, &f->n_paths, glob);
}

int filter_add_comm(struct filter *f, const char *glob)
{
    return add_glob(&f->comms, &f->n_comms, glob);
}

static bool any_match(const char *const *globs, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], s, 0) == 0)
            return true;
    return false;
}

bool filter_match(const struct filter *f, const ivmon_event *ev)
{
    if (f->ops) {
        unsigned op = ivmon_event_op(ev);
        if (op >= 32 || !(f->ops & (UINT32_C(1) << op)))
            return false;
    }

    if (f->n_paths) {
        /* A rename matters to whoever watches either of its names. new_path is "" for every
         * other operation; it is not tested then, or an empty pattern would pass them all. */
        const char *new_path = ivmon_event_new_path(ev);
        if (!any_match(f->paths, f->n_paths, ivmon_event_path(ev)) &&
            !(new_path[0] && any_match(f->paths, f->n_paths, new_path)))
            return false;
    }

    if (f->n_comms && !any_match(f->comms, f->n_comms, ivmon_event_comm(ev)))
        return false;

    return true;
}
