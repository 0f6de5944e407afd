/* SPDX-License-Identifier: Apache-2.0 */
/* The fixed chain and VCEK both SNP fuzz targets verify against (Microsoft Milan test set). */
#pragma once

#include <stdlib.h>

#include "fuzz-snp-data.h"
#include "snp/snp.h"

/* 2026-06-01T00:00:00Z: inside the VCEK's validity, so the fuzzer reaches the report checks. */
#define FUZZ_SNP_TIME ((time_t) 1780272000)

static const struct snp_options fuzz_snp_options = {
        .time_set = true,
        .time = FUZZ_SNP_TIME,
        .allowed_vmpls = 0x3,
};

/* Built once and kept for the process lifetime (reachable, so not a leak). */
_unused_ static snp_chain *fuzz_snp_chain(void) {
        static snp_chain *chain;
        if (!chain) {
                struct snp_verdict v;
                if (snp_chain_new(fuzz_snp_chain_bytes, sizeof(fuzz_snp_chain_bytes), &fuzz_snp_options, &chain, &v) < 0)
                        abort();
        }
        return chain;
}

_unused_ static snp_signer *fuzz_snp_signer(void) {
        static snp_signer *signer;
        if (!signer) {
                struct snp_verdict v;
                if (snp_signer_new(fuzz_snp_chain(), fuzz_snp_vcek_bytes, sizeof(fuzz_snp_vcek_bytes), &fuzz_snp_options,
                                   &signer, &v) < 0)
                        abort();
        }
        return signer;
}
