/* SPDX-License-Identifier: Apache-2.0 */
#include "basic/secret.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/mman.h>

#include "basic/encoding.h"

static size_t page_size(void) {
        long p = sysconf(_SC_PAGESIZE);
        return p > 0 ? (size_t) p : 4096;
}

/* Bytes reserved for a secret of len bytes: len + the NUL, rounded up to whole pages. */
static size_t secret_capacity(size_t len) {
        size_t ps = page_size();
        if (len > SIZE_MAX - ps)
                return 0;
        return (len + 1 + ps - 1) / ps * ps;
}

secret_t *secret_new(size_t len) {
        size_t cap = secret_capacity(len);
        if (cap == 0)
                return NULL;
        secret_t *s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        void *p = NULL;
        /* Own pages (see secret.h): aligned to and sized in whole pages. */
        if (posix_memalign(&p, page_size(), cap) != 0)
                return mfree(s);
        memset(p, 0, cap);
        /* Best effort: without CAP_IPC_LOCK or above RLIMIT_MEMLOCK the buffer is still wiped. */
        (void) mlock(p, cap);
        (void) madvise(p, cap, MADV_DONTDUMP);
        s->data = p;
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
                size_t cap = secret_capacity(s->len);
                OPENSSL_cleanse(s->data, cap);
                (void) munlock(s->data, cap);
                /* The pages go back to malloc: let them be dumped again like any other memory. */
                (void) madvise(s->data, cap, MADV_DODUMP);
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

void erase_and_free_sized(void *p, size_t len) {
        if (!p)
                return;
        erase_memory(p, len);
        free(p);
}

bool ct_memeq(const void *a, size_t alen, const void *b, size_t blen) {
        if (alen != blen)
                return false;
        if (alen == 0)
                return true;
        return CRYPTO_memcmp(a, b, alen) == 0;
}

int secret_from_hex(const char *hex, size_t hex_len, secret_t **ret) {
        if (!hex || !ret)
                return -EINVAL;
        while (hex_len > 0 && (hex[hex_len - 1] == ' ' || hex[hex_len - 1] == '\t' || hex[hex_len - 1] == '\r' ||
                               hex[hex_len - 1] == '\n'))
                hex_len--;
        if (hex_len % 2 != 0)
                return -EINVAL;
        _cleanup_secret_ secret_t *s = secret_new(hex_len / 2);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < hex_len; i += 2) {
                char pair[3] = { hex[i], hex[i + 1], 0 };
                CLEANUP_ERASE(pair);
                /* hex_decode_exact checks the digits; one byte at a time so no copy of the whole
                 * secret lands outside locked memory. */
                if (hex_decode_exact(pair, s->data + i / 2, 1) < 0)
                        return -EINVAL;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int secret_read_file(const char *path, size_t max_size, secret_t **ret) {
        if (!path || !ret || max_size == 0 || max_size == SIZE_MAX)
                return -EINVAL;
        _cleanup_close_ int owned = -1;
        int fd = STDIN_FILENO;
        if (!streq(path, "-")) {
                owned = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (owned < 0)
                        return -errno;
                fd = owned;
        }
        /* Read into a locked buffer one byte larger than allowed, to see an oversize file. */
        _cleanup_secret_ secret_t *buf = secret_new(max_size + 1);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf->data + len, max_size + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max_size)
                        return -EFBIG;
        }
        secret_t *s = secret_new_copy(buf->data, len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
