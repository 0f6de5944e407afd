/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: a dummy-variant attestation document (JSON) through its validator. */
#include "atls/atls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t nonce[3] = { 1, 2, 3 };
        atls_validator v = atls_dummy_validator();
        atls_error err = { 0 };
        uint8_t *ud = NULL;
        size_t ud_len = 0;
        if (v.validate(NULL, data, size, nonce, sizeof(nonce), &ud, &ud_len, &err) == 0)
                free(ud);
        return 0;
}
