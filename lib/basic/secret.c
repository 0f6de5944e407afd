/* SPDX-License-Identifier: Apache-2.0 */
#include "basic/secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>

secret_t *secret_new(size_t len) {
        secret_t *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        /* +1 for the NUL terminator documented in secret.h. */
        s->data = calloc(1, len + 1);
        if (!s->data)
                return mfree(s);
        /* Best effort: without CAP_IPC_LOCK or above RLIMIT_MEMLOCK the buffer is still wiped. */
        (void) mlock(s->data, len + 1);
        s->len = len;
        return s;
}

secret_t *secret_new_copy(const void *data, size_t len) {
        secret_t *s = secret_new(len);
        if (s && len > 0)
                memcpy(s->data, data, len);
        return s;
}

void secret_free(secret_t *s) {
        if (!s)
                return;
        if (s->data) {
                OPENSSL_cleanse(s->data, s->len + 1);
                (void) munlock(s->data, s->len + 1);
                free(s->data);
        }
        free(s);
}

void erase_memory(void *p, size_t len) {
        if (p && len > 0)
                OPENSSL_cleanse(p, len);
}

void erase_and_free(char *s) {
        if (!s)
                return;
        erase_memory(s, strlen(s));
        free(s);
}

bool ct_memeq(const void *a, size_t alen, const void *b, size_t blen) {
        if (alen != blen)
                return false;
        if (alen == 0)
                return true;
        return CRYPTO_memcmp(a, b, alen) == 0;
}
