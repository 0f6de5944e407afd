/* SPDX-License-Identifier: Apache-2.0 */
/* Memory for secrets: locked (mlock) so it does not reach swap, wiped before it is freed
 * (cryptsetup lib/utils_safe_memory.c). Stack copies are wiped with CLEANUP_ERASE. */
#pragma once

#include "basic/macro.h"

/* A secret byte buffer. `data` is always NUL-terminated one byte past `len` so a secret
 * that is text can be handed to APIs that want a C string without another copy. */
typedef struct secret {
        uint8_t *data;
        size_t len;
} secret_t;

/* Allocates a zeroed, locked buffer of len bytes. NULL on allocation failure. */
secret_t *secret_new(size_t len);
/* Copies len bytes into a new secret. */
secret_t *secret_new_copy(const void *data, size_t len);
/* Wipes, unlocks and frees. Accepts NULL. */
void secret_free(secret_t *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(secret_t *, secret_free);
#define _cleanup_secret_ _cleanup_(secret_freep)

/* Wipes memory in a way the compiler cannot elide (OPENSSL_cleanse). */
void erase_memory(void *p, size_t len);

/* Frees a heap string that held a secret, wiping it first. Accepts NULL. */
void erase_and_free(char *s);
static inline void erase_and_freep(char **s) {
        erase_and_free(*s);
}
#define _cleanup_erase_free_ _cleanup_(erase_and_freep)

/* Wipe a stack object at scope exit: `uint8_t key[32] CLEANUP_ERASE(key);` is not C, so use
 * `uint8_t key[32]; CLEANUP_ERASE(key);` which declares a guard that wipes `key`. */
struct erase_guard {
        void *p;
        size_t len;
};
static inline void erase_guard_run(struct erase_guard *g) {
        erase_memory(g->p, g->len);
}
#define CLEANUP_ERASE_CONCAT2(a, b) a##b
#define CLEANUP_ERASE_CONCAT(a, b) CLEANUP_ERASE_CONCAT2(a, b)
#define CLEANUP_ERASE(var)                                                                       \
        _cleanup_(erase_guard_run) _unused_ struct erase_guard CLEANUP_ERASE_CONCAT(              \
                _erase_guard_, __COUNTER__) = { .p = &(var), .len = sizeof(var) }

/* Constant-time comparison for MACs, digests, tokens and secrets (CRYPTO_memcmp). True if equal.
 * Lengths are public: a length mismatch returns false at once. */
bool ct_memeq(const void *a, size_t alen, const void *b, size_t blen);
