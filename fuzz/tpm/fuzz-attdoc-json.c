/* SPDX-License-Identifier: Apache-2.0 */
/* A Constellation attestation document from outside (what aTLS reads from a peer's certificate):
 * validate against a fixed nonce and measurements. */
#include "attestation/attdoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t nonce[] = "fuzz nonce";
        attdoc_measurement m[2] = { { .index = 15, .expected_len = 32 }, { .index = 4, .expected_len = 32, .warn_only = true } };
        attdoc_policy pol = { m, 2, false };
        attdoc_verdict v;
        (void) attdoc_validate_qemu_vtpm((const char *) data, size, nonce, sizeof nonce, NULL, 0, &pol, &v);
        attdoc_verdict_done(&v);
        return 0;
}
