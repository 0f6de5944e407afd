/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the VCEK/VLEK extension parser, signer set-up under a fixed Milan chain, and the
 * ASK/ARK chain parser. */
#include "fuzz-snp-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct snp_cert_info info;
        struct snp_verdict v;
        (void) snp_cert_info_parse(data, size, &info, &v);

        snp_signer *signer = NULL;
        if (snp_signer_new(fuzz_snp_chain(), data, size, &fuzz_snp_options, &signer, &v) == 0)
                snp_signer_free(signer);

        snp_chain *chain = NULL;
        if (snp_chain_new(data, size, &fuzz_snp_options, &chain, &v) == 0)
                snp_chain_free(chain);
        return 0;
}
