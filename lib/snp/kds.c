/* SPDX-License-Identifier: Apache-2.0 */
/* AMD Key Distribution Service URLs (KDS interface spec, pub. 57230, "VCEK Certificate" and
 * "Certificate Chain" requests), in the form go-sev-guest's kds.VCEKCertURL produces (which
 * Constellation uses): hwID in lower-case hex (Turin: the first 8 bytes of CHIP_ID), SPLs of
 * REPORTED_TCB in decimal, fmcSPL last and only on Turin. Fetching is the caller's (lib/http). */
#include <stdio.h>

#include "basic/encoding.h"
#include "snp/snp-internal.h"

#define KDS_BASE "https://kdsintf.amd.com"

int snp_kds_vcek_url(const struct snp_report *r, char **ret) {
        if (!r || !ret || r->product == SNP_PRODUCT_UNKNOWN)
                return -EINVAL; /* v2 reports: set the product from the certificate first */
        size_t hwid_len = r->product == SNP_PRODUCT_TURIN ? 8 : 64;
        _cleanup_free_ char *hwid = hex_encode(r->chip_id, hwid_len);
        if (!hwid)
                return -ENOMEM;
        const struct snp_tcb *t = &r->reported_tcb;
        char fmc[16] = "";
        if (r->product == SNP_PRODUCT_TURIN)
                (void) snprintf(fmc, sizeof(fmc), "&fmcSPL=%u", t->fmc);
        char *url;
        if (asprintf(&url, KDS_BASE "/vcek/v1/%s/%s?blSPL=%u&teeSPL=%u&snpSPL=%u&ucodeSPL=%u%s",
                     snp_product_to_string(r->product), hwid, t->bootloader, t->tee, t->snp, t->microcode, fmc) < 0)
                return -ENOMEM;
        *ret = url;
        return 0;
}

int snp_kds_chain_url(enum snp_product product, enum snp_signer_kind kind, char **ret) {
        if (!ret || product <= SNP_PRODUCT_UNKNOWN || product >= _SNP_PRODUCT_MAX)
                return -EINVAL;
        char *url;
        if (asprintf(&url, KDS_BASE "/%s/v1/%s/cert_chain", kind == SNP_SIGNER_VLEK ? "vlek" : "vcek",
                     snp_product_to_string(product)) < 0)
                return -ENOMEM;
        *ret = url;
        return 0;
}
