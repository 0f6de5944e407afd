/* SPDX-License-Identifier: Apache-2.0 */
/* An AK from outside: TPMT_PUBLIC (TCG Part 2 §12.2.4) or PEM, as tpmq_load_ak takes it. */
#include "basic/cleanup-openssl.h"
#include "tpm/quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL, *k2 = NULL;
        tpmq_public_info info;
        bool has_info;
        if (tpmq_public_parse_info(data, size, &k, &info) == 0) {
                if (info.name_len > sizeof info.name)
                        abort();
                (void) tpmq_public_is_restricted_signer(&info);
        }
        (void) tpmq_load_ak(data, size, &k2, &info, &has_info);
        return 0;
}
