/* SPDX-License-Identifier: Apache-2.0 */
/* Sigstore bundles and Rekor REST entries from outside: parse, then run the full offline
 * verification (logID, SET, inclusion proof, checkpoint, body) against a fixed key. */
#include <openssl/evp.h>
#include <stdlib.h>

#include "rekor/rekor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fixed_key(void) {
        static EVP_PKEY *k;
        if (!k)
                k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        rekor_entry e;
        uint8_t digest[32] = { 0 };
        for (int api = 0; api < 2; api++) {
                char *err = NULL;
                int r = api ? rekor_api_entry_parse(data, size, &e, &err) : rekor_bundle_parse(data, size, &e, &err);
                free(err);
                if (r < 0)
                        continue;
                rekor_reason reason;
                char *detail = NULL;
                (void) rekor_verify_entry(&e, fixed_key(), &reason, &detail);
                free(detail);
                (void) rekor_verify_body(&e, digest, fixed_key(), "x", &reason);
                rekor_entry_done(&e);
        }
        return 0;
}
