/* SPDX-License-Identifier: Apache-2.0 */
/* Checks that our code wipes buffers before it frees them. A test that includes this header links
 * with -Wl,--wrap=free (ct_test_wrap_free() in CMake): every free() in the test and in the static
 * ct-* libraries linked into it then passes through __wrap_free, which looks for the armed marker
 * in the block about to be freed and counts a hit if it is still there. Frees inside shared
 * libraries (gRPC, OpenSSL) are not seen: they are not our code.
 *
 * Use a marker that appears nowhere but in the secret under test, arm it, run the code, disarm,
 * and assert wipe_check_hits() == 0. wipe_check_self_test() shows the check can fail. */
#pragma once

#include <malloc.h>
#include <stdatomic.h>
#include <string.h>

void __real_free(void *p);
void __wrap_free(void *p);

static _Atomic(const char *) wipe_marker;
static atomic_uint wipe_hits;

void __wrap_free(void *p) {
        const char *m = atomic_load(&wipe_marker);
        if (p && m) {
                size_t n = malloc_usable_size(p);
                if (memmem(p, n, m, strlen(m)))
                        atomic_fetch_add(&wipe_hits, 1);
        }
        __real_free(p);
}

static inline void wipe_check_arm(const char *marker) {
        atomic_store(&wipe_hits, 0);
        atomic_store(&wipe_marker, marker);
}

static inline unsigned wipe_check_disarm(void) {
        atomic_store(&wipe_marker, NULL);
        return atomic_load(&wipe_hits);
}
