/* SPDX-License-Identifier: Apache-2.0 */
/* Scope-based cleanup and small helpers used across the core (after systemd src/basic/macro.h,
 * alloc-util.h). Every destructor used with _cleanup_ accepts NULL. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _noreturn_ __attribute__((noreturn))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand a pointer over to someone else: returns it and NULLs the local copy so its cleanup
 * does nothing. */
#define TAKE_PTR(p)                          \
        ({                                   \
                typeof(p) _ptr_ = (p);       \
                (p) = NULL;                  \
                _ptr_;                       \
        })

#define TAKE_FD(fd)                          \
        ({                                   \
                int _fd_ = (fd);             \
                (fd) = -EBADF;               \
                _fd_;                        \
        })

/* Defines `name##p(type **p)` that calls func(*p) if non-NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)               \
        static inline void func##p(type *p) {                 \
                if (*p)                                       \
                        func(*p);                             \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)
#define isempty(s) (!(s) || !*(s))

/* Overflow-safe bounds check in the tpm2-tss style: true if [off, off+need) lies within len. */
static inline bool bounds_ok(size_t len, size_t off, size_t need) {
        return off <= len && len - off >= need;
}
