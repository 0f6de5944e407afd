/* SPDX-License-Identifier: Apache-2.0 */
#include "rpc/wipe-alloc.h"

#include <stdint.h>
#include <stdlib.h>

#include "basic/secret.h"

typedef struct wipe_hdr {
        size_t size;
        size_t pad; /* keeps the block 16-byte aligned, as malloc's */
} wipe_hdr;

static void *wipe_alloc(void *data, size_t size) {
        (void) data;
        if (size > SIZE_MAX - sizeof(wipe_hdr))
                return NULL;
        wipe_hdr *h = malloc(sizeof(wipe_hdr) + size);
        if (!h)
                return NULL;
        h->size = size;
        return h + 1;
}

static void wipe_free(void *data, void *p) {
        (void) data;
        if (!p)
                return;
        wipe_hdr *h = (wipe_hdr *) p - 1;
        erase_and_free_sized(h, sizeof(wipe_hdr) + h->size);
}

ProtobufCAllocator rpc_wiping_allocator = { .alloc = wipe_alloc, .free = wipe_free };
