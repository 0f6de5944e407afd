/* SPDX-License-Identifier: Apache-2.0 */
/* TPMS_ATTEST from outside (TCG Part 2 §10.12.12): parse, and verify against a fixed key/bank. */
#include <stdlib.h>

#include "tpm/quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        tpmq_attest a;
        if (tpmq_attest_parse(data, size, &a) == 0) {
                /* Invariants the verifier relies on. */
                if (a.extra_data_len > sizeof a.extra_data || a.pcr_digest_len > sizeof a.pcr_digest ||
                    a.n_selections > ELEMENTSOF(a.selections))
                        abort();
        }
        /* The whole verify path with a signature that cannot match: exercises the ordering of checks. */
        static const uint8_t sig[] = { 0x00, 0x14, 0x00, 0x0b, 0x00, 0x01, 0x00 };
        static EVP_PKEY *key;
        if (!key)
                key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        tpmq_pcr_bank bank = { .alg = TPM_ALG_SHA256 };
        tpmq_reason r;
        char *detail = NULL;
        (void) tpmq_verify_quote(data, size, sig, sizeof sig, key, &bank, NULL, 0, &r, &detail);
        free(detail);
        return 0;
}
