/* SPDX-License-Identifier: Apache-2.0 */
/* Memory for secrets: locked (mlock) so it does not reach swap, wiped before it is freed
 * (cryptsetup lib/utils_safe_memory.c). Stack copies are wiped with CLEANUP_ERASE.
 *
 * Each secret_t buffer starts on a page boundary and owns whole pages: mlock/munlock work on
 * pages, so if two secrets shared a page, freeing (munlock) one would unlock the other. The pages
 * are also excluded from core dumps (MADV_DONTDUMP) while they hold the secret. Processes that
 * hold secrets call process_harden_secrets() (basic/process-util.h) as well. */
#pragma once

#include "basic/macro.h"

/* A secret byte buffer. `data` is always NUL-terminated one byte past `len` so a secret
 * that is text can be handed to APIs that want a C string without another copy. */
typedef struct secret {
        uint8_t *data;
        size_t len;
} secret_t;

/* Allocates a zeroed, locked, page-aligned buffer of len bytes (rounded up to whole pages).
 * NULL on allocation failure. */
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
/* Frees a heap buffer of len bytes that held (or may have held) a secret, wiping it first: gRPC
 * messages, TLS plaintext, protocol buffers with secrets. Accepts NULL. */
void erase_and_free_sized(void *p, size_t len);
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

/* Decodes hex (upper or lower case; trailing ASCII whitespace ignored, e.g. the newline of a file)
 * into a new secret; the input is not modified. -EINVAL on an odd length or a non-hex character. */
int secret_from_hex(const char *hex, size_t hex_len, secret_t **ret);
/* Reads a file of at most max_size bytes into a new secret ("-": standard input). -EFBIG beyond
 * max_size; the partial data read is wiped. O_CLOEXEC. */
int secret_read_file(const char *path, size_t max_size, secret_t **ret);
