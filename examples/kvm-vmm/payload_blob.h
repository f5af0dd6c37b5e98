/* SPDX-License-Identifier: MIT */
/* The guest payload's flat image (payload/ built freestanding, then objcopy -O binary), embedded
 * by embed.cmake into a generated source file in the build directory. */
#ifndef IVMON_EXAMPLE_PAYLOAD_BLOB_H
#define IVMON_EXAMPLE_PAYLOAD_BLOB_H

#include <stddef.h>

extern const unsigned char vmm_payload[];
extern const size_t vmm_payload_size;

#endif /* IVMON_EXAMPLE_PAYLOAD_BLOB_H */
