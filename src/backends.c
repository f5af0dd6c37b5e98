/* SPDX-License-Identifier: MIT */
/* The backend registry: which URI schemes this build serves. Known schemes whose backend was
 * compiled out answer -EPROTONOSUPPORT rather than "unknown scheme", so a user learns to
 * rebuild rather than to fix a typo. */
#include <string.h>

#include "internal.h"

extern const struct ivmon_backend_ops ivmon__backend_shm;
#ifdef IVMON_HAVE_BACKEND_IVSHMEM
extern const struct ivmon_backend_ops ivmon__backend_ivshmem; /* backends/ivshmem/plain.c */
extern const struct ivmon_backend_ops ivmon__backend_ivshmem_doorbell; /* ivshmem/doorbell.c */
#endif
#ifdef IVMON_HAVE_BACKEND_LIBVIRT
extern const struct ivmon_backend_ops ivmon__backend_libvirt;
#endif
#ifdef IVMON_HAVE_BACKEND_KVM
extern const struct ivmon_backend_ops ivmon__backend_kvm; /* backends/kvm/kvm.c */
#endif
#ifdef IVMON_HAVE_BACKEND_XEN
extern const struct ivmon_backend_ops ivmon__backend_xen_shm;  /* backends/xen/xen_shm.c */
extern const struct ivmon_backend_ops ivmon__backend_xen_vcpu; /* backends/xen/xen_vcpu.c */
#endif

static const struct ivmon_backend_ops *const backends[] = {
    &ivmon__backend_shm,
#ifdef IVMON_HAVE_BACKEND_IVSHMEM
    &ivmon__backend_ivshmem,
    &ivmon__backend_ivshmem_doorbell,
#endif
#ifdef IVMON_HAVE_BACKEND_LIBVIRT
    &ivmon__backend_libvirt,
#endif
#ifdef IVMON_HAVE_BACKEND_KVM
    /* VMMs hand it their exits: include/ivmon/kvm.h */
    &ivmon__backend_kvm,
#endif
#ifdef IVMON_HAVE_BACKEND_XEN
    &ivmon__backend_xen_shm,
    &ivmon__backend_xen_vcpu,
#endif
};

/* Schemes that exist in libivmon but may be missing from a given build. */
static const char *const known_schemes[] = {
    "shm", "ivshmem", "ivshmem+doorbell", "libvirt", "kvm", "xen+shm", "xen+vcpu",
};

const struct ivmon_backend_ops *ivmon__backend_find(const char *scheme, int *ret_compiled_out)
{
    *ret_compiled_out = 0;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const struct ivmon_backend_ops *b = backends[i];
        /* A backend built against another table layout is not used rather than misread. */
        if (b->abi == IVMON_BACKEND_ABI && b->size >= sizeof *b && !strcmp(b->scheme, scheme))
            return b;
    }
    for (size_t i = 0; i < sizeof known_schemes / sizeof known_schemes[0]; i++)
        if (!strcmp(known_schemes[i], scheme))
            *ret_compiled_out = 1;
    return NULL;
}
