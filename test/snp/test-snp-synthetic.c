/* SPDX-License-Identifier: Apache-2.0 */
/* Rejection paths that real AMD-signed data cannot reach (a correctly signed report whose
 * reported_tcb or chip_id disagrees with its VCEK, malformed VCEK extensions, wrong key types):
 * a synthetic ARK -> ASK -> VCEK PKI built here, trusted through the internal
 * snp_chain_new_with_root(), and reports signed with the synthetic VCEK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "snp/snp-internal.h"

static EVP_PKEY *ark_key, *ask_key, *vcek_key;
static X509 *ark, *ask;
static char *chain_pem;
static size_t chain_pem_len;
static uint8_t ark_sha256[32];
static uint8_t base_report[SNP_REPORT_SIZE];
static const struct snp_options opts = { .time_set = true, .time = 1780272000 };

static void add_ext_der(X509 *cert, const char *oid, const uint8_t *der, size_t len) {
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
        assert_non_null(obj);
        assert_non_null(os);
        assert_int_equal(ASN1_OCTET_STRING_set(os, der, (int) len), 1);
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(cert, ext, -1), 1);
}

static void add_ext_int(X509 *cert, const char *oid, uint8_t v) {
        /* DER INTEGER: 0x02 len value (a 0x00 pad when the top bit is set) */
        uint8_t der[4] = { 0x02, 1, v };
        size_t len = 3;
        if (v & 0x80) {
                der[1] = 2;
                der[2] = 0;
                der[3] = v;
                len = 4;
        }
        add_ext_der(cert, oid, der, len);
}

static void add_ext_string(X509 *cert, const char *oid, uint8_t tag, const char *s) {
        uint8_t der[512] = { tag };
        size_t n = strlen(s), hdr = 2;
        assert_true(n < 256);
        if (n < 0x80)
                der[1] = (uint8_t) n;
        else {
                der[1] = 0x81;
                der[2] = (uint8_t) n;
                hdr = 3;
        }
        memcpy(der + hdr, s, n);
        add_ext_der(cert, oid, der, hdr + n);
}

static void add_ext_ia5(X509 *cert, const char *oid, const char *s) {
        add_ext_string(cert, oid, 0x16, s);
}

static X509 *make_cert(const char *cn, X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key) {
        X509 *c = X509_new();
        assert_non_null(c);
        X509_set_version(c, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(c), 0);
        /* Fixed validity around the test's verification time (2026-06-01). */
        ASN1_TIME_set(X509_getm_notBefore(c), 1700000000);
        ASN1_TIME_set(X509_getm_notAfter(c), 1900000000);
        X509_NAME *name = X509_get_subject_name(c);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
        X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
        X509_set_pubkey(c, subject_key);
        (void) issuer_key;
        return c;
}

static void sign_cert(X509 *c, EVP_PKEY *key) {
        assert_true(X509_sign(c, key, EVP_sha384()) > 0);
}

struct vcek_spec {
        const char *product_name;
        uint8_t bl, tee, snp, ucode;
        const uint8_t *hwid;
        size_t hwid_len;
        bool hwid_wrapped;
        bool duplicate_snp;
        const char *csp_id; /* UTF8String cspID (VLEK), or NULL */
        EVP_PKEY *key;      /* NULL: vcek_key */
};

static uint8_t *make_vcek(const struct vcek_spec *s, size_t *ret_len) {
        _cleanup_(X509_freep) X509 *c = make_cert("SEV-VCEK", ask, ask_key, s->key ? s->key : vcek_key);
        add_ext_int(c, "1.3.6.1.4.1.3704.1.1", 1);
        add_ext_ia5(c, "1.3.6.1.4.1.3704.1.2", s->product_name);
        add_ext_int(c, "1.3.6.1.4.1.3704.1.3.1", s->bl);
        add_ext_int(c, "1.3.6.1.4.1.3704.1.3.2", s->tee);
        add_ext_int(c, "1.3.6.1.4.1.3704.1.3.3", s->snp);
        if (s->duplicate_snp)
                add_ext_int(c, "1.3.6.1.4.1.3704.1.3.3", s->snp);
        add_ext_int(c, "1.3.6.1.4.1.3704.1.3.8", s->ucode);
        if (s->hwid_len) {
                if (s->hwid_wrapped) {
                        uint8_t der[2 + 64] = { 0x04, (uint8_t) s->hwid_len };
                        memcpy(der + 2, s->hwid, s->hwid_len);
                        add_ext_der(c, "1.3.6.1.4.1.3704.1.4", der, 2 + s->hwid_len);
                } else
                        add_ext_der(c, "1.3.6.1.4.1.3704.1.4", s->hwid, s->hwid_len);
        }
        if (s->csp_id)
                add_ext_string(c, "1.3.6.1.4.1.3704.1.5", 0x0c, s->csp_id);
        sign_cert(c, ask_key);
        unsigned char *der = NULL;
        int n = i2d_X509(c, &der);
        assert_true(n > 0);
        uint8_t *out = malloc((size_t) n);
        memcpy(out, der, (size_t) n);
        OPENSSL_free(der);
        *ret_len = (size_t) n;
        return out;
}

static void put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

/* Signs report[0:0x2A0] with key (ECDSA P-384, SHA-384) and stores r, s little-endian. */
static void sign_report(uint8_t *report, EVP_PKEY *key) {
        uint8_t md[48];
        unsigned md_len;
        assert_int_equal(EVP_Digest(report, SNP_SIGNED_SIZE, md, &md_len, EVP_sha384(), NULL), 1);
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
        uint8_t der[160];
        size_t der_len = sizeof(der);
        assert_int_equal(EVP_PKEY_sign(ctx, der, &der_len, md, sizeof(md)), 1);
        const unsigned char *p = der;
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long) der_len);
        assert_non_null(sig);
        memset(report + 0x2A0, 0, 0x200);
        assert_int_equal(BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), report + 0x2A0, 72), 72);
        assert_int_equal(BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), report + 0x2A0 + 72, 72), 72);
}

static const uint8_t hwid[64] = { 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

static int setup(void **state) {
        ark_key = EVP_RSA_gen(2048);
        ask_key = EVP_RSA_gen(2048);
        vcek_key = EVP_EC_gen("P-384");
        assert_non_null(ark_key);
        assert_non_null(ask_key);
        assert_non_null(vcek_key);
        ark = make_cert("ARK-Milan", NULL, ark_key, ark_key);
        sign_cert(ark, ark_key);
        ask = make_cert("SEV-Milan", ark, ark_key, ask_key);
        sign_cert(ask, ark_key);
        unsigned n;
        assert_int_equal(X509_digest(ark, EVP_sha256(), ark_sha256, &n), 1);

        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(bio, ask);
        PEM_write_bio_X509(bio, ark);
        char *mem;
        long len = BIO_get_mem_data(bio, &mem);
        chain_pem = malloc((size_t) len);
        memcpy(chain_pem, mem, (size_t) len);
        chain_pem_len = (size_t) len;

        /* A real Milan v3 report as the template; chip_id and TCBs replaced. */
        const char *src = getenv("CT_SOURCE_DIR");
        assert_non_null(src);
        char path[4096];
        snprintf(path, sizeof(path), "%s/test/snp/data/snp-msft-milan-genoa-turin/milan_attestation_report.bin", src);
        _cleanup_free_ uint8_t *data = NULL;
        size_t data_len;
        assert_int_equal(read_full_file(path, 4096, &data, &data_len), 0);
        assert_int_equal(data_len, SNP_REPORT_SIZE);
        memcpy(base_report, data, SNP_REPORT_SIZE);
        memcpy(base_report + 0x1A0, hwid, sizeof(hwid));
        /* bl 3, tee 0, snp 8, ucode 115 in every TCB field */
        uint64_t tcb = 3 | (uint64_t) 8 << 48 | (uint64_t) 115 << 56;
        put_le64(base_report + 0x038, tcb);
        put_le64(base_report + 0x180, tcb);
        put_le64(base_report + 0x1E0, tcb);
        put_le64(base_report + 0x1F0, tcb);
        sign_report(base_report, vcek_key);
        return 0;
}

static int teardown(void **state) {
        EVP_PKEY_free(ark_key);
        EVP_PKEY_free(ask_key);
        EVP_PKEY_free(vcek_key);
        X509_free(ark);
        X509_free(ask);
        free(chain_pem);
        return 0;
}

static const struct vcek_spec good = {
        .product_name = "Milan-B0", .bl = 3, .tee = 0, .snp = 8, .ucode = 115, .hwid = hwid, .hwid_len = 64,
};

/* Builds the chain and a signer for spec; returns the signer result and verdict. */
static int signer_for(const struct vcek_spec *spec, snp_signer **ret, struct snp_verdict *v) {
        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
        assert_int_equal(snp_chain_new_with_root((const uint8_t *) chain_pem, chain_pem_len, &opts, SNP_PRODUCT_MILAN,
                                                 ark_sha256, &c, v),
                         0);
        size_t len;
        _cleanup_free_ uint8_t *cert = make_vcek(spec, &len);
        return snp_signer_new(c, cert, len, &opts, ret, v);
}

static void expect_report(const struct vcek_spec *spec, const uint8_t *report, enum snp_reason want, const char *detail) {
        struct snp_verdict v = {};
        _cleanup_(snp_signer_freep) snp_signer *s = NULL;
        int r = signer_for(spec, &s, &v);
        if (r < 0)
                fail_msg("signer: %s: %s", snp_reason_to_string(v.reason), v.detail);
        r = snp_signer_verify_report(s, report, SNP_REPORT_SIZE, &opts, NULL, &v);
        if (v.reason != want)
                fail_msg("expected %s, got %s: %s", snp_reason_to_string(want), snp_reason_to_string(v.reason), v.detail);
        assert_int_equal(r == 0, want == SNP_REASON_OK);
        if (detail && !strstr(v.detail, detail))
                fail_msg("detail '%s' lacks '%s'", v.detail, detail);
}

static void expect_signer(const struct vcek_spec *spec, enum snp_reason want, const char *detail) {
        struct snp_verdict v = {};
        _cleanup_(snp_signer_freep) snp_signer *s = NULL;
        int r = signer_for(spec, &s, &v);
        if (v.reason != want)
                fail_msg("expected %s, got %s: %s", snp_reason_to_string(want), snp_reason_to_string(v.reason), v.detail);
        assert_int_equal(r == 0, want == SNP_REASON_OK);
        if (detail && !strstr(v.detail, detail))
                fail_msg("detail '%s' lacks '%s'", v.detail, detail);
}

static void test_synthetic_ok(void **state) {
        expect_report(&good, base_report, SNP_REASON_OK, NULL);
        /* Many signatures: both high-bit and low-bit r/s exercise the DER INTEGER padding. */
        uint8_t r[SNP_REPORT_SIZE];
        memcpy(r, base_report, sizeof(r));
        for (int i = 0; i < 16; i++) {
                r[0x50] = (uint8_t) i;
                sign_report(r, vcek_key);
                expect_report(&good, r, SNP_REASON_OK, NULL);
        }
        /* hwID wrapped in an OCTET STRING (trustee's "new" encoding) is accepted too. */
        struct vcek_spec wrapped = good;
        wrapped.hwid_wrapped = true;
        expect_report(&wrapped, base_report, SNP_REASON_OK, NULL);
}

static void test_synthetic_tcb_mismatch(void **state) {
        struct vcek_spec s = good;
        s.ucode = 116; /* the VCEK certifies ucode 116, the report says 115 */
        expect_report(&s, base_report, SNP_REASON_TCB_MISMATCH, "reported_tcb.microcode: VCEK certificate says 116, report says 115");
        s = good;
        s.snp = 7;
        expect_report(&s, base_report, SNP_REASON_TCB_MISMATCH, "reported_tcb.snp");
        s = good;
        s.bl = 200; /* top-bit INTEGER encoding */
        expect_report(&s, base_report, SNP_REASON_TCB_MISMATCH, "reported_tcb.bootloader: VCEK certificate says 200");
}

static void test_synthetic_chip_id_mismatch(void **state) {
        uint8_t other[64];
        memcpy(other, hwid, sizeof(other));
        other[63] ^= 1;
        struct vcek_spec s = good;
        s.hwid = other;
        expect_report(&s, base_report, SNP_REASON_CHIP_ID_MISMATCH, "chip_id: VCEK hwID is");

        /* MASK_CHIP_ID: the report's chip_id is zero by request and not compared. */
        uint8_t masked[SNP_REPORT_SIZE];
        memcpy(masked, base_report, sizeof(masked));
        masked[0x48] |= 2;
        memset(masked + 0x1A0, 0, 64);
        sign_report(masked, vcek_key);
        expect_report(&good, masked, SNP_REASON_OK, NULL);
        /* Without the flag, a zero chip_id is a mismatch. */
        masked[0x48] &= (uint8_t) ~2u;
        sign_report(masked, vcek_key);
        expect_report(&good, masked, SNP_REASON_CHIP_ID_MISMATCH, NULL);
}

static void test_synthetic_bad_vcek(void **state) {
        struct vcek_spec s = good;
        s.hwid_len = 0;
        expect_signer(&s, SNP_REASON_CERT_MALFORMED, "hwID extension (1.3.6.1.4.1.3704.1.4) missing");
        s = good;
        s.hwid_len = 32;
        expect_signer(&s, SNP_REASON_CERT_MALFORMED, "malformed");
        s = good;
        s.duplicate_snp = true;
        expect_signer(&s, SNP_REASON_CERT_MALFORMED, "appears twice");
        s = good;
        s.product_name = "Genoa";
        expect_signer(&s, SNP_REASON_PRODUCT_MISMATCH, "productName 'Genoa' but the chain is for Milan");
        s = good;
        s.product_name = "Rome";
        expect_signer(&s, SNP_REASON_CERT_MALFORMED, "productName 'Rome'");

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p256 = EVP_EC_gen("P-256");
        s = good;
        s.key = p256;
        expect_signer(&s, SNP_REASON_CERT_MALFORMED, "not ECDSA P-384");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa = EVP_RSA_gen(2048);
        s.key = rsa;
        expect_signer(&s, SNP_REASON_CERT_MALFORMED, "not ECDSA P-384");
}

static void test_synthetic_chain_signature(void **state) {
        struct snp_verdict v = {};
        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
        /* The synthetic root is not an AMD pin. */
        assert_int_equal(snp_chain_new((const uint8_t *) chain_pem, chain_pem_len, &opts, &c, &v), -EKEYREJECTED);
        assert_int_equal(v.reason, SNP_REASON_ARK_NOT_PINNED);

        /* An ASK named correctly but signed by another key. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *rogue = EVP_RSA_gen(2048);
        _cleanup_(X509_freep) X509 *bad_ask = make_cert("SEV-Milan", ark, rogue, ask_key);
        sign_cert(bad_ask, rogue);
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(bio, bad_ask);
        PEM_write_bio_X509(bio, ark);
        char *mem;
        long len = BIO_get_mem_data(bio, &mem);
        assert_int_equal(snp_chain_new_with_root((const uint8_t *) mem, (size_t) len, &opts, SNP_PRODUCT_MILAN, ark_sha256,
                                                 &c, &v),
                         -EKEYREJECTED);
        assert_int_equal(v.reason, SNP_REASON_CHAIN_SIGNATURE);
        assert_non_null(strstr(v.detail, "SEV-Milan: not signed by ARK-Milan"));

        /* A VCEK signed by a key other than the ASK's. */
        assert_int_equal(snp_chain_new_with_root((const uint8_t *) chain_pem, chain_pem_len, &opts, SNP_PRODUCT_MILAN,
                                                 ark_sha256, &c, &v),
                         0);
        _cleanup_(X509_freep) X509 *vcek = make_cert("SEV-VCEK", ask, rogue, vcek_key);
        sign_cert(vcek, rogue);
        unsigned char *der = NULL;
        int n = i2d_X509(vcek, &der);
        snp_signer *s = NULL;
        assert_int_equal(snp_signer_new(c, der, (size_t) n, &opts, &s, &v), -EKEYREJECTED);
        OPENSSL_free(der);
        assert_int_equal(v.reason, SNP_REASON_CHAIN_SIGNATURE);
        assert_non_null(strstr(v.detail, "VCEK: signature by SEV-Milan invalid"));
        assert_null(s);
}

static void test_synthetic_csp_id(void **state) {
        /* A cspID longer than 127 bytes uses the long-form DER length. */
        char long_id[201];
        memset(long_id, 'a', 200);
        long_id[200] = 0;
        memcpy(long_id, "CN=", 3);
        struct vcek_spec s = good;
        s.csp_id = long_id;
        size_t len;
        _cleanup_free_ uint8_t *cert = make_vcek(&s, &len);
        struct snp_cert_info info;
        struct snp_verdict v = {};
        assert_int_equal(snp_cert_info_parse(cert, len, &info, &v), 0);
        assert_true(info.has_csp_id);
        assert_string_equal(info.csp_id, long_id);
        s.csp_id = "CN=short";
        _cleanup_free_ uint8_t *cert2 = make_vcek(&s, &len);
        assert_int_equal(snp_cert_info_parse(cert2, len, &info, &v), 0);
        assert_string_equal(info.csp_id, "CN=short");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_synthetic_ok),
                cmocka_unit_test(test_synthetic_tcb_mismatch),
                cmocka_unit_test(test_synthetic_chip_id_mismatch),
                cmocka_unit_test(test_synthetic_bad_vcek),
                cmocka_unit_test(test_synthetic_chain_signature),
                cmocka_unit_test(test_synthetic_csp_id),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
