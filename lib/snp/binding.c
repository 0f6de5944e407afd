/* SPDX-License-Identifier: Apache-2.0 */
/* REPORT_DATA bindings of the cloud variants (constellation.md §4.3 step 5, §4.4). */
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "snp/snp-binding.h"
#include "snp/snp-internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free);

enum {
        HCL_HEADER_SIZE = 0x20,
        HCL_IGVM_OFFSET = HCL_HEADER_SIZE + SNP_REPORT_SIZE, /* 0x4C0 */
        HCL_IGVM_SIZE = 20,
        HCL_RUNTIME_OFFSET = HCL_IGVM_OFFSET + HCL_IGVM_SIZE, /* 0x4D4 */
        IGVM_REPORT_TYPE_SNP = 2,
};

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

int snp_azure_hcl_parse(const uint8_t *hcl, size_t len, struct snp_azure_hcl *ret, struct snp_verdict *v) {
        if (!hcl || !ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no HCL report");
        if (!bounds_ok(len, 0, HCL_RUNTIME_OFFSET))
                return snp_fail(v, SNP_REASON_REPORT_SIZE, "HCL report: %zu bytes, at least %u needed", len,
                                (unsigned) HCL_RUNTIME_OFFSET);
        if (memcmp(hcl, "HCLA", 4) != 0)
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "HCL report: magic is not 'HCLA'");
        const uint8_t *igvm = hcl + HCL_IGVM_OFFSET;
        uint32_t data_size = le32(igvm), report_type = le32(igvm + 8), hash_type = le32(igvm + 12),
                 var_size = le32(igvm + 16);
        if (report_type != IGVM_REPORT_TYPE_SNP)
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "HCL report: report_type %" PRIu32 " is not SNP (2)",
                                report_type);
        if (hash_type < SNP_AZURE_HASH_SHA256 || hash_type > SNP_AZURE_HASH_SHA512)
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "HCL report: report_data_hash_type %" PRIu32 " unknown",
                                hash_type);
        if (var_size > SNP_AZURE_RUNTIME_MAX_SIZE || !bounds_ok(len, HCL_RUNTIME_OFFSET, var_size) ||
            data_size < HCL_IGVM_SIZE || data_size - HCL_IGVM_SIZE != var_size)
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED,
                                "HCL report: runtime data size %" PRIu32 " (data_size %" PRIu32 ") does not fit %zu bytes",
                                var_size, data_size, len);
        *ret = (struct snp_azure_hcl) {
                .report = hcl + HCL_HEADER_SIZE,
                .runtime_data = hcl + HCL_RUNTIME_OFFSET,
                .runtime_data_len = var_size,
                .hash_type = (enum snp_azure_hash) hash_type,
        };
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

static void hex_of(const uint8_t *d, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[d[i] >> 4];
                out[2 * i + 1] = digits[d[i] & 15];
        }
        out[2 * n] = 0;
}

static int compare_report_data(const struct snp_report *r, const uint8_t *want, size_t n, const char *what,
                               struct snp_verdict *v) {
        if (ct_memeq(r->report_data, n, want, n))
                return 0;
        char w[129], g[129];
        hex_of(want, n, w);
        hex_of(r->report_data, n, g);
        return snp_fail(v, SNP_REASON_BINDING, "report_data[0:%zu]: %s is %s, report says %s", n, what, w, g);
}

static int b64url_field(json_t *obj, const char *name, uint8_t **ret, size_t *ret_len) {
        const char *s = json_string_value(json_object_get(obj, name));
        if (!s)
                return -EBADMSG;
        size_t n = strlen(s);
        /* JWK uses unpadded base64url (RFC 7518 §6.3.1); accept padded for robustness. */
        int r = base64_decode(s, n, BASE64_URL_RAW, ret, ret_len);
        if (r < 0)
                r = base64_decode(s, n, BASE64_URL, ret, ret_len);
        return r;
}

int snp_azure_runtime_ak(const uint8_t *data, size_t len, EVP_PKEY **ret, struct snp_verdict *v) {
        if (!data || !ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no runtime data");
        if (len > SNP_AZURE_RUNTIME_MAX_SIZE)
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: %zu bytes, at most %u", len,
                                SNP_AZURE_RUNTIME_MAX_SIZE);
        /* The HCL may NUL-pad the JSON. */
        while (len > 0 && data[len - 1] == 0)
                len--;
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *root = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: not JSON (line %d: %s)", jerr.line, jerr.text);
        json_t *keys = json_object_get(root, "keys");
        if (!json_is_array(keys))
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: no \"keys\" array");
        json_t *jwk = NULL;
        for (size_t i = 0; i < json_array_size(keys); i++) {
                json_t *k = json_array_get(keys, i);
                if (streq_ptr(json_string_value(json_object_get(k, "kid")), "HCLAkPub")) {
                        jwk = k;
                        break;
                }
        }
        if (!jwk)
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: keys has no kid \"HCLAkPub\"");
        if (!streq_ptr(json_string_value(json_object_get(jwk, "kty")), "RSA"))
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: HCLAkPub.kty is not \"RSA\"");

        _cleanup_free_ uint8_t *n = NULL, *e = NULL;
        size_t n_len = 0, e_len = 0;
        if (b64url_field(jwk, "n", &n, &n_len) < 0 || b64url_field(jwk, "e", &e, &e_len) < 0)
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: HCLAkPub n/e not base64url");
        /* 2048..4096-bit modulus, exponent of at most 4 bytes (TPM RSA keys). */
        if (n_len < 256 || n_len > 512 || e_len == 0 || e_len > 4)
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: HCLAkPub size n=%zu e=%zu bytes unsupported",
                                n_len, e_len);

        _cleanup_(BN_freep) BIGNUM *bn_n = BN_bin2bn(n, (int) n_len, NULL);
        _cleanup_(BN_freep) BIGNUM *bn_e = BN_bin2bn(e, (int) e_len, NULL);
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (!bn_n || !bn_e || !bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1)
                return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        EVP_PKEY *pkey = NULL;
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: HCLAkPub is not a usable RSA key");
        }
        *ret = pkey;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

int snp_binding_check_azure(const struct snp_report *r, const uint8_t *runtime, size_t len,
                            enum snp_azure_hash hash_type, EVP_PKEY **ret_ak, struct snp_verdict *v) {
        if (!r || !runtime)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no report or runtime data");
        if (len > SNP_AZURE_RUNTIME_MAX_SIZE)
                return snp_fail(v, SNP_REASON_BINDING, "runtime data: %zu bytes, at most %u", len,
                                SNP_AZURE_RUNTIME_MAX_SIZE);
        uint8_t md[64];
        size_t md_len;
        switch ((int) hash_type) {
        case 0:
        case SNP_AZURE_HASH_SHA256:
                SHA256(runtime, len, md);
                md_len = 32;
                break;
        case SNP_AZURE_HASH_SHA384:
                SHA384(runtime, len, md);
                md_len = 48;
                break;
        case SNP_AZURE_HASH_SHA512:
                SHA512(runtime, len, md);
                md_len = 64;
                break;
        default:
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "hash type %d unknown", (int) hash_type);
        }
        int ret = compare_report_data(r, md, md_len, "hash of the runtime data", v);
        if (ret < 0)
                return ret;
        if (ret_ak)
                return snp_azure_runtime_ak(runtime, len, ret_ak, v);
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

int snp_binding_check_sha512(const struct snp_report *r, const uint8_t *data, size_t len, struct snp_verdict *v) {
        if (!r || (!data && len > 0))
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no report or data");
        uint8_t md[64];
        SHA512(data, len, md);
        int ret = compare_report_data(r, md, sizeof(md), "SHA-512 of the bound data", v);
        if (ret < 0)
                return ret;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

int snp_binding_check_aws(const struct snp_report *r, EVP_PKEY *ak, struct snp_verdict *v) {
        if (!r || !ak)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no report or key");
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(ak, &der);
        if (n <= 0) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_INTERNAL, "cannot encode the attestation key");
        }
        uint8_t md[64];
        SHA512(der, (size_t) n, md);
        OPENSSL_free(der);
        int ret = compare_report_data(r, md, sizeof(md), "SHA-512 of the attestation key's SubjectPublicKeyInfo", v);
        if (ret < 0)
                return ret;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

int snp_binding_check_gcp(const struct snp_report *r, const uint8_t *extra, size_t len, struct snp_verdict *v) {
        if (!r || (!extra && len > 0))
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no report or extra data");
        if (len > sizeof(r->report_data))
                return snp_fail(v, SNP_REASON_BINDING, "extra data: %zu bytes, at most 64 fit REPORT_DATA", len);
        uint8_t want[64] = {};
        if (len > 0)
                memcpy(want, extra, len);
        int ret = compare_report_data(r, want, sizeof(want), "the zero-padded extra data", v);
        if (ret < 0)
                return ret;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}
