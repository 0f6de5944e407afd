/* SPDX-License-Identifier: Apache-2.0 */
/* Constellation's SNP instance info JSON (internal/attestation/snp/snp.go InstanceInfo; reference
 * constellation.md §4.3): parse, build and verify. */
#include <jansson.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "snp/snp-binding.h"
#include "snp/snp-internal.h"

void snp_instance_info_done(struct snp_instance_info *ii) {
        if (!ii)
                return;
        free(ii->report);
        free(ii->report_signer);
        free(ii->cert_chain);
        free(ii->azure_runtime_data);
        free(ii->azure_maa_token);
        *ii = (struct snp_instance_info) {};
}

/* A Go []byte field: base64 string, null or absent (-> NULL, 0). */
static int get_bytes(json_t *obj, const char *key, uint8_t **ret, size_t *ret_len) {
        json_t *f = json_object_get(obj, key);
        if (!f || json_is_null(f)) {
                *ret = NULL;
                *ret_len = 0;
                return 0;
        }
        const char *s = json_string_value(f);
        if (!s)
                return -EBADMSG;
        return base64_decode(s, json_string_length(f), BASE64_STD, ret, ret_len);
}

int snp_instance_info_parse(const uint8_t *data, size_t len, struct snp_instance_info *ret, struct snp_verdict *v) {
        if (!data || !ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no instance info");
        if (len > SNP_INSTANCE_INFO_MAX_SIZE)
                return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: %zu bytes, at most %u", len,
                                SNP_INSTANCE_INFO_MAX_SIZE);
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *root = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_object(root))
                return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: not a JSON object (line %d: %s)",
                                root ? 0 : jerr.line, root ? "not an object" : jerr.text);

        _cleanup_(snp_instance_info_done) struct snp_instance_info ii = {};
        static const struct {
                const char *key;
                size_t report, report_len;
        } fields[] = {
                { "AttestationReport", offsetof(struct snp_instance_info, report),
                  offsetof(struct snp_instance_info, report_len) },
                { "ReportSigner", offsetof(struct snp_instance_info, report_signer),
                  offsetof(struct snp_instance_info, report_signer_len) },
                { "CertChain", offsetof(struct snp_instance_info, cert_chain),
                  offsetof(struct snp_instance_info, cert_chain_len) },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                uint8_t **buf = (uint8_t **) ((char *) &ii + fields[i].report);
                size_t *buf_len = (size_t *) ((char *) &ii + fields[i].report_len);
                if (get_bytes(root, fields[i].key, buf, buf_len) < 0)
                        return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: %s is not base64 or null",
                                        fields[i].key);
        }
        if (!ii.report)
                return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: AttestationReport missing");

        json_t *azure = json_object_get(root, "Azure");
        if (azure && !json_is_null(azure)) {
                if (!json_is_object(azure))
                        return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: Azure is not an object");
                ii.has_azure = true;
                if (get_bytes(azure, "RuntimeData", &ii.azure_runtime_data, &ii.azure_runtime_data_len) < 0)
                        return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: Azure.RuntimeData is not base64");
                json_t *maa = json_object_get(azure, "MAAToken");
                if (maa && !json_is_null(maa) && !json_is_string(maa))
                        return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: Azure.MAAToken is not a string");
                if (json_string_length(maa) > 0) {
                        ii.azure_maa_token = strdup(json_string_value(maa));
                        if (!ii.azure_maa_token)
                                return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
                }
        }
        json_t *gcp = json_object_get(root, "GCP");
        if (gcp && !json_is_null(gcp)) {
                if (!json_is_object(gcp))
                        return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED, "instance info: GCP is not an object");
                ii.has_gcp = true;
        }
        *ret = ii;
        ii = (struct snp_instance_info) {};
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

static json_t *bytes_or_null(const uint8_t *d, size_t n) {
        if (!d)
                return json_null();
        _cleanup_free_ char *b = base64_encode(d, n, BASE64_STD);
        return b ? json_string(b) : NULL;
}

int snp_instance_info_to_json(const struct snp_instance_info *ii, char **ret) {
        if (!ii || !ret)
                return -EINVAL;
        _cleanup_(json_decrefp) json_t *root = json_object();
        if (!root || json_object_set_new(root, "ReportSigner", bytes_or_null(ii->report_signer, ii->report_signer_len)) < 0 ||
            json_object_set_new(root, "CertChain", bytes_or_null(ii->cert_chain, ii->cert_chain_len)) < 0 ||
            json_object_set_new(root, "AttestationReport", bytes_or_null(ii->report, ii->report_len)) < 0)
                return -ENOMEM;
        json_t *azure = json_null();
        if (ii->has_azure) {
                json_decref(azure);
                azure = json_object();
                if (!azure ||
                    json_object_set_new(azure, "RuntimeData",
                                        bytes_or_null(ii->azure_runtime_data, ii->azure_runtime_data_len)) < 0 ||
                    json_object_set_new(azure, "MAAToken", json_string(ii->azure_maa_token ? ii->azure_maa_token : "")) < 0) {
                        json_decref(azure);
                        return -ENOMEM;
                }
        }
        if (json_object_set_new(root, "Azure", azure) < 0 || json_object_set_new(root, "GCP", json_null()) < 0)
                return -ENOMEM;
        char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int snp_instance_info_verify(const struct snp_instance_info *ii, const struct snp_options *opts,
                             struct snp_report *ret_report, EVP_PKEY **ret_azure_ak, struct snp_verdict *v) {
        if (!ii || !ii->report)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no instance info");
        if (!ii->report_signer || ii->report_signer_len == 0)
                return snp_fail(v, SNP_REASON_EVIDENCE_MALFORMED,
                                "instance info: ReportSigner is empty (fetch the VCEK from AMD KDS: snp_kds_vcek_url())");
        if (ret_azure_ak && !ii->has_azure)
                return snp_fail(v, SNP_REASON_BINDING, "instance info: no Azure runtime data to take the attestation key from");

        /* A chain of only whitespace counts as absent (Constellation trims it). */
        bool chain = false;
        for (size_t i = 0; i < ii->cert_chain_len && !chain; i++)
                chain = ii->cert_chain[i] > ' ';
        struct snp_report r;
        int ret = snp_verify(ii->report, ii->report_len, ii->report_signer, ii->report_signer_len,
                             chain ? ii->cert_chain : NULL, chain ? ii->cert_chain_len : 0, opts, &r, v);
        if (ret < 0)
                return ret;

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        if (ii->has_azure) {
                if (!ii->azure_runtime_data)
                        return snp_fail(v, SNP_REASON_BINDING, "instance info: Azure.RuntimeData missing");
                ret = snp_binding_check_azure(&r, ii->azure_runtime_data, ii->azure_runtime_data_len, SNP_AZURE_HASH_SHA256,
                                              ret_azure_ak ? &ak : NULL, v);
                if (ret < 0)
                        return ret;
        }
        if (ret_report)
                *ret_report = r;
        if (ret_azure_ak)
                *ret_azure_ak = TAKE_PTR(ak);
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}
