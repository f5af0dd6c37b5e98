/* SPDX-License-Identifier: MIT */
/* libFuzzer: the URI parser and its option getters. (ivmon_open itself is not fuzzed: a random
 * shm: URI names random files, and opening them would create or format files on the machine.) */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    ivmon_uri u;
    const char *why = NULL;
    int r = ivmon__uri_parse(&u, s, &why);
    if (r == 0) {
        assert(u.scheme && u.target && u.n_params <= IVMON_URI_PARAMS_MAX);
        uint64_t v = 0;
        int b = 0;
        for (unsigned i = 0; i < u.n_params; i++) {
            assert(ivmon__uri_get(&u, u.params[i].key) != NULL);
            (void)ivmon__uri_get_size(&u, u.params[i].key, &v);
            (void)ivmon__uri_get_bool(&u, u.params[i].key, &b);
        }
        static const char *const known[] = {"size", "lossless", "create", "budget", NULL};
        (void)ivmon__uri_unknown(&u, known, NULL);
        ivmon__uri_free(&u);
    } else {
        assert(r == -EINVAL || r == -ENOMEM);
    }
    free(s);
    return 0;
}
