/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers for the TPM tests: test data paths and loading. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "tpm/quote.h"

static inline char *tpm_test_path(const char *rel) {
        const char *src = getenv("CT_SOURCE_DIR");
        char *p = NULL;
        if (asprintf(&p, "%s/test/tpm/data/%s", src ? src : ".", rel) < 0)
                abort();
        return p;
}

/* Reads test/tpm/data/<rel>; aborts the test on failure (the data is part of the checkout). */
static inline uint8_t *tpm_test_read(const char *rel, size_t *ret_len) {
        _cleanup_free_ char *p = tpm_test_path(rel);
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(p, 1024 * 1024, &buf, &len);
        if (r < 0) {
                fprintf(stderr, "cannot read %s: %s\n", p, strerror(-r));
                abort();
        }
        *ret_len = len;
        return buf;
}

static inline void tpm_test_read_bank(const char *rel, uint16_t alg, tpmq_pcr_bank *ret) {
        size_t len;
        _cleanup_free_ uint8_t *t = tpm_test_read(rel, &len);
        unsigned line = 0;
        if (tpmq_pcr_bank_parse_text((const char *) t, len, alg, ret, &line) < 0) {
                fprintf(stderr, "%s: bad line %u\n", rel, line);
                abort();
        }
}

static inline EVP_PKEY *tpm_test_read_ak(const char *rel) {
        size_t len;
        _cleanup_free_ uint8_t *t = tpm_test_read(rel, &len);
        EVP_PKEY *k = NULL;
        if (tpmq_load_ak(t, len, &k, NULL, NULL) < 0) {
                fprintf(stderr, "%s: cannot load AK\n", rel);
                abort();
        }
        return k;
}
