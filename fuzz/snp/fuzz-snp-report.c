/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the report parser, the full verification against a fixed Milan chain and VCEK, the
 * Constellation instance info JSON, and the Azure HCL container with its runtime-data JSON. */
#include "basic/cleanup-openssl.h"
#include "fuzz-snp-common.h"
#include "snp/snp-binding.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct snp_report r;
        struct snp_verdict v;
        (void) snp_report_parse(data, size, &r, &v);
        (void) snp_signer_verify_report(fuzz_snp_signer(), data, size, &fuzz_snp_options, &r, &v);

        /* The built-in chain path: product from the VCEK, kind from the report. */
        (void) snp_verify(data, size, fuzz_snp_vcek_bytes, sizeof(fuzz_snp_vcek_bytes), NULL, 0, &fuzz_snp_options, &r, &v);

        /* Constellation instance info JSON around a report. */
        struct snp_instance_info ii;
        if (snp_instance_info_parse(data, size, &ii, &v) == 0) {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
                (void) snp_instance_info_verify(&ii, &fuzz_snp_options, &r, ii.has_azure ? &ak : NULL, &v);
                snp_instance_info_done(&ii);
        }

        struct snp_azure_hcl hcl;
        if (snp_azure_hcl_parse(data, size, &hcl, &v) == 0) {
                (void) snp_signer_verify_report(fuzz_snp_signer(), hcl.report, SNP_REPORT_SIZE, &fuzz_snp_options, &r, &v);
                if (snp_report_parse(hcl.report, SNP_REPORT_SIZE, &r, &v) == 0) {
                        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
                        (void) snp_binding_check_azure(&r, hcl.runtime_data, hcl.runtime_data_len, hcl.hash_type, &ak, &v);
                }
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
                (void) snp_azure_runtime_ak(hcl.runtime_data, hcl.runtime_data_len, &ak, &v);
        }
        return 0;
}
