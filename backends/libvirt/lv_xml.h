/* SPDX-License-Identifier: MIT */
/* The libvirt backend's reading of a domain's XML: which <shmem> device carries the ring. Kept
 * apart from the libvirt calls so that a unit test can feed it documents directly. */
#ifndef IVMON_LV_XML_H
#define IVMON_LV_XML_H

#include <stddef.h>

#define IVMON_LV_SHMEM_PLAIN    1u /* ivshmem-plain: QEMU maps /dev/shm/NAME */
#define IVMON_LV_SHMEM_DOORBELL 2u /* ivshmem-doorbell: memory and doorbells from a server */

/* libvirt's own bounds: a shmem name becomes a file name in /dev/shm, a server path a
 * sockaddr_un path. */
#define IVMON_LV_NAME_MAX   255u
#define IVMON_LV_SERVER_MAX 107u

struct ivmon_lv_shmem {
    unsigned model;                       /* IVMON_LV_SHMEM_* */
    char name[IVMON_LV_NAME_MAX + 1];     /* the <shmem name=...>, a plain file name */
    char server[IVMON_LV_SERVER_MAX + 1]; /* doorbell: the <server path=...> socket */
};

/* Finds the <shmem> device of a domain XML document (len bytes at xml, as virDomainGetXMLDesc
 * returns it): the one named want, or with want NULL the first one. Returns 0 and fills *ret;
 * -ENODEV if the domain has no <shmem> device, or none named want; -EBADMSG if the text is not
 * a libvirt domain document (not well-formed XML, another root element, a DOCTYPE); -EINVAL if
 * the device cannot be used (no name, a name that is not a plain file name, a model this
 * library does not know). On failure, why (why_size bytes) says so in a sentence that names
 * the devices it did find; *ret is untouched. Thread-safe; needs no libvirt connection. */
int ivmon__lv_find_shmem(const char *xml, size_t len, const char *want, struct ivmon_lv_shmem *ret,
                         char *why, size_t why_size);

#endif /* IVMON_LV_XML_H */
