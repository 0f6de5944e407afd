/* SPDX-License-Identifier: Apache-2.0 */
/* TPMS_ATTEST, TPMT_SIGNATURE and TPMT_PUBLIC from outside: byte 0 selects the parser; for a quote
 * the rest is split in half into attest and signature and verified against a fixed key and bank. */
#include <stdlib.h>

#include "tpm/quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        const uint8_t *p = data + 1;
        size_t n = size - 1;
        switch (data[0] % 4) {
        case 0: {
                tpmq_attest a;
                (void) tpmq_attest_parse(p, n, &a);
                break;
        }
        case 1: {
                tpmq_signature s;
                (void) tpmq_signature_parse(p, n, &s);
                break;
        }
        case 2: {
                EVP_PKEY *k = NULL;
                if (tpmq_public_parse(p, n, &k) == 0)
                        EVP_PKEY_free(k);
                break;
        }
        default: {
                static EVP_PKEY *key;
                if (!key)
                        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
                tpmq_pcr_bank bank = { .alg = TPM_ALG_SHA256 };
                for (int i = 0; i < TPMQ_NUM_PCRS; i++)
                        bank.present[i] = true;
                tpmq_reason r;
                char *detail = NULL;
                (void) tpmq_verify_quote(p, n / 2, p + n / 2, n - n / 2, key, &bank, (const uint8_t *) "\x90\x09", 2, &r,
                                         &detail);
                free(detail);
        }
        }
        return 0;
}
