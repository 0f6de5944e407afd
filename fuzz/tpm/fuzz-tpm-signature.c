/* SPDX-License-Identifier: Apache-2.0 */
/* TPMT_SIGNATURE from outside (TCG Part 2 §11.3.4), including ECDSA r/s -> DER conversion. */
#include "tpm/quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        tpmq_signature s;
        if (tpmq_signature_parse(data, size, &s) == 0 && s.sig_len > sizeof s.sig)
                abort();
        return 0;
}
