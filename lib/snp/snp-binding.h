/* SPDX-License-Identifier: Apache-2.0 */
/* What a report's REPORT_DATA binds, per cloud (reference: constellation.md §4.3, §4.4):
 *  - Azure: the HCL report (vTPM NV index 0x01400001) holds the SNP report and the "runtime data"
 *    JSON; REPORT_DATA[0:32] = SHA-256(runtime data) and the runtime data names the vTPM
 *    attestation key (JWK kid "HCLAkPub").
 *  - AWS: REPORT_DATA = SHA-512(DER SubjectPublicKeyInfo of the attestation key).
 *  - GCP (Constellation): REPORT_DATA = the caller's extra data, zero-padded to 64 bytes.
 *  - Generic: REPORT_DATA = SHA-512(data), e.g. teekit's SHA-512(nonce || X25519 key).
 * The checks use a report that snp_signer_verify_report() has already verified. */
#pragma once

#include <openssl/evp.h>

#include "snp/snp.h"

#define SNP_AZURE_RUNTIME_MAX_SIZE (64u * 1024)

/* IGVM request data "report_data_hash_type" values. */
enum snp_azure_hash {
        SNP_AZURE_HASH_SHA256 = 1,
        SNP_AZURE_HASH_SHA384 = 2,
        SNP_AZURE_HASH_SHA512 = 3,
};

/* Pointers into an Azure HCL report (outside input): 32-byte "HCLA" header, the 1184-byte SNP
 * report at 0x20, the IGVM request data at 0x4C0 (data_size, version, report_type 2 = SNP,
 * report_data_hash_type, variable_data_size), the runtime data at 0x4D4. */
struct snp_azure_hcl {
        const uint8_t *report; /* SNP_REPORT_SIZE bytes */
        const uint8_t *runtime_data;
        size_t runtime_data_len;
        enum snp_azure_hash hash_type;
};
int snp_azure_hcl_parse(const uint8_t *hcl, size_t len, struct snp_azure_hcl *ret, struct snp_verdict *verdict);

/* Checks REPORT_DATA[0:digest size] == hash(runtime data) and returns the attestation key
 * (RSA, from the JWK with kid "HCLAkPub") if ret_ak is not NULL. hash_type 0 means SHA-256. */
int snp_binding_check_azure(const struct snp_report *report, const uint8_t *runtime_data, size_t len,
                            enum snp_azure_hash hash_type, EVP_PKEY **ret_ak, struct snp_verdict *verdict);
/* The RSA attestation key from Azure runtime data JSON (kid "HCLAkPub"). */
int snp_azure_runtime_ak(const uint8_t *runtime_data, size_t len, EVP_PKEY **ret, struct snp_verdict *verdict);

/* AWS: REPORT_DATA == SHA-512(i2d_PUBKEY(ak)). */
int snp_binding_check_aws(const struct snp_report *report, EVP_PKEY *ak, struct snp_verdict *verdict);
/* GCP: REPORT_DATA == extra_data || zeros (len <= 64). */
int snp_binding_check_gcp(const struct snp_report *report, const uint8_t *extra_data, size_t len,
                          struct snp_verdict *verdict);
/* REPORT_DATA == SHA-512(data). */
int snp_binding_check_sha512(const struct snp_report *report, const uint8_t *data, size_t len,
                             struct snp_verdict *verdict);

/* Constellation's SNP instance info (internal/attestation/snp InstanceInfo), the JSON an SNP
 * issuer puts into its attestation document: {"ReportSigner": b64(PEM VCEK/VLEK), "CertChain":
 * b64(PEM ASK[+ARK]), "AttestationReport": b64(1184-byte report), "Azure": {"RuntimeData": b64,
 * "MAAToken": "..."} | null, "GCP": {...} | null}; Go []byte fields are standard base64, nil is
 * null. Only the ASK of CertChain is used with the built-in ARK, as Constellation does. */
#define SNP_INSTANCE_INFO_MAX_SIZE (256u * 1024)

struct snp_instance_info {
        uint8_t *report;
        size_t report_len;
        uint8_t *report_signer; /* NULL if absent */
        size_t report_signer_len;
        uint8_t *cert_chain;    /* NULL if absent */
        size_t cert_chain_len;
        bool has_azure;
        uint8_t *azure_runtime_data;
        size_t azure_runtime_data_len;
        char *azure_maa_token; /* NULL if absent or empty */
        bool has_gcp;
};

/* Parses the JSON (outside input, at most SNP_INSTANCE_INFO_MAX_SIZE). -EBADMSG with reason
 * SNP_REASON_EVIDENCE_MALFORMED naming the field. Free with snp_instance_info_done(). */
int snp_instance_info_parse(const uint8_t *json, size_t len, struct snp_instance_info *ret,
                            struct snp_verdict *verdict);
void snp_instance_info_done(struct snp_instance_info *info);
/* Serialises in Go's field order (issuer side). Absent buffers become null. */
int snp_instance_info_to_json(const struct snp_instance_info *info, char **ret);
/* Verifies the report with ReportSigner (required: fetching from KDS is the caller's) and the
 * ASK of CertChain (or the built-in chain), then, if the info has Azure runtime data, the Azure
 * binding, returning the HCL attestation key in *ret_azure_ak (may be NULL). Asking for an AK
 * when there is no Azure data fails with SNP_REASON_BINDING. */
int snp_instance_info_verify(const struct snp_instance_info *info, const struct snp_options *opts,
                             struct snp_report *ret_report, EVP_PKEY **ret_azure_ak, struct snp_verdict *verdict);
