/* SPDX-License-Identifier: Apache-2.0 */
/* SEV-SNP verification against every real report in test/snp/data (copied from
 * ../shared/testdata with SOURCE.md), and one test per rejection path asserting its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "snp/snp-binding.h"
#include "snp/snp.h"

#define T_2026_06_01 ((time_t) 1780272000) /* inside every VCEK's validity */
#define T_2025_06_15 ((time_t) 1750000000) /* inside the AWS VLEK's validity (2024-12-10..2025-12-10) */
#define T_2025_01_01 ((time_t) 1735689600) /* before the Microsoft VCEKs (2026-02-05) */

struct blob {
        uint8_t *data;
        size_t len;
};

static void blob_free(struct blob *b) {
        free(b->data);
        *b = (struct blob) {};
}
#define _cleanup_blob_ _cleanup_(blob_free)

static struct blob load(const char *rel) {
        const char *src = getenv("CT_SOURCE_DIR");
        assert_non_null(src);
        char path[4096];
        assert_true(snprintf(path, sizeof(path), "%s/test/snp/data/%s", src, rel) < (int) sizeof(path));
        struct blob b = {};
        int r = read_full_file(path, 1u << 20, &b.data, &b.len);
        if (r < 0)
                fail_msg("%s: %s", path, strerror(-r));
        return b;
}

static struct snp_options opts_at(time_t t) {
        return (struct snp_options) { .time_set = true, .time = t };
}

static void assert_hex_prefix(const uint8_t *d, const char *hex) {
        _cleanup_free_ char *h = hex_encode(d, strlen(hex) / 2);
        assert_string_equal(h, hex);
}

/* Verifies and asserts success, printing the verdict on failure. */
static void verify_ok(const char *report, const char *cert, const char *chain, const struct snp_options *o,
                      struct snp_report *ret) {
        _cleanup_blob_ struct blob rb = load(report), cb = load(cert), kb = load(chain);
        struct snp_verdict v = {};
        size_t rlen = rb.len > SNP_REPORT_SIZE ? SNP_REPORT_SIZE : rb.len; /* Azure's 1204-byte blob */
        int r = snp_verify(rb.data, rlen, cb.data, cb.len, kb.data, kb.len, o, ret, &v);
        if (r != 0)
                fail_msg("%s: %s: %s (%d)", report, snp_reason_to_string(v.reason), v.detail, r);
        assert_int_equal(v.reason, SNP_REASON_OK);
}

/* Verifies and asserts the given rejection reason. */
static void verify_fails(const uint8_t *report, size_t len, const char *cert, const char *chain,
                         const struct snp_options *o, enum snp_reason want, const char *detail_substr) {
        _cleanup_blob_ struct blob cb = load(cert), kb = load(chain);
        struct snp_verdict v = {};
        int r = snp_verify(report, len, cb.data, cb.len, kb.data, kb.len, o, NULL, &v);
        assert_true(r < 0);
        if (v.reason != want)
                fail_msg("expected %s, got %s: %s", snp_reason_to_string(want), snp_reason_to_string(v.reason), v.detail);
        if (detail_substr && !strstr(v.detail, detail_substr))
                fail_msg("detail '%s' lacks '%s'", v.detail, detail_substr);
}

/* Positive: every real report. */

static void test_gsg_milan_v2(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        o.allow_debug = true; /* this go-sev-guest test VM was launched with DEBUG in its policy */
        struct snp_report rep;
        verify_ok("snp-milan-gsg/attestation.bin", "snp-milan-gsg/vcek.der", "snp-milan-gsg/ask_ark_milan.pem", &o, &rep);
        assert_int_equal(rep.version, 2);
        assert_int_equal(rep.product, SNP_PRODUCT_MILAN); /* from the certificate: v2 has no CPUID */
        assert_int_equal(rep.reported_tcb_raw, 0x4405000000000002ull);
        assert_int_equal(rep.reported_tcb.bootloader, 2);
        assert_int_equal(rep.reported_tcb.tee, 0);
        assert_int_equal(rep.reported_tcb.snp, 5);
        assert_int_equal(rep.reported_tcb.microcode, 68);
        assert_int_equal(rep.current_major, 1);
        assert_int_equal(rep.current_minor, 49);
        assert_int_equal(rep.current_build, 3);
        assert_hex_prefix(rep.chip_id, "3ac3fe21e13fb099");
        assert_hex_prefix(rep.report_data, "0102030405000000");
        assert_hex_prefix(rep.measurement, "b07af9620f3b839b");
        assert_int_equal(rep.policy, 0xb0000);
}

static void test_azure_constellation_milan_v2(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        struct snp_report rep;
        /* The KDS DER and the THIM PEM of the same VCEK. */
        verify_ok("snp-milan-azure-constellation/attestation_azure.bin", "snp-milan-azure-constellation/vcek.der",
                  "snp-milan-azure-constellation/ask_ark_milan.pem", &o, &rep);
        verify_ok("snp-milan-azure-constellation/attestation_azure.bin", "snp-milan-azure-constellation/vcek_thim.pem",
                  "snp-milan-azure-constellation/ask_ark_milan.pem", &o, &rep);
        assert_int_equal(rep.reported_tcb.snp, 6);
        assert_int_equal(rep.reported_tcb.microcode, 93);
        assert_hex_prefix(rep.id_key_digest, "57e229e0ffe5fa92d0faddff6cae0e61c926fc9ef9afd20a8b8cfcf7129db9338cbe5bf3f6987733a2bf65d06dc38fc1");

        /* Constellation's acceptedKeyDigests ("equal" policy). */
        uint8_t digests[2][48] = {};
        assert_int_equal(hex_decode_exact("57e229e0ffe5fa92d0faddff6cae0e61c926fc9ef9afd20a8b8cfcf7129db9338cbe5bf3f6987733a2bf65d06dc38fc1", digests[1], 48), 0);
        o.accepted_id_key_digests = (const uint8_t(*)[48]) digests;
        o.n_accepted_id_key_digests = 2;
        verify_ok("snp-milan-azure-constellation/attestation_azure.bin", "snp-milan-azure-constellation/vcek.der",
                  "snp-milan-azure-constellation/ask_ark_milan.pem", &o, &rep);
        o.n_accepted_id_key_digests = 1;
        _cleanup_blob_ struct blob ab = load("snp-milan-azure-constellation/attestation_azure.bin");
        verify_fails(ab.data, SNP_REPORT_SIZE, "snp-milan-azure-constellation/vcek.der", "snp-milan-azure-constellation/ask_ark_milan.pem",
                     &o, SNP_REASON_ID_KEY_DIGEST, "id_key_digest: 57e229e0");
        o.n_accepted_id_key_digests = 0;

        _cleanup_blob_ struct blob rt = load("snp-milan-azure-constellation/runtimedata.bin");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        struct snp_verdict v = {};
        assert_int_equal(snp_binding_check_azure(&rep, rt.data, rt.len, SNP_AZURE_HASH_SHA256, &ak, &v), 0);
        assert_non_null(ak);
        assert_int_equal(EVP_PKEY_get_base_id(ak), EVP_PKEY_RSA);
        assert_int_equal(EVP_PKEY_get_bits(ak), 2048);
}

static void test_aws_vlek_milan_v3(void **state) {
        struct snp_options o = opts_at(T_2025_06_15);
        o.allowed_vmpls = 1u << 1; /* the AWS guest runs at VMPL 1 under its SVSM */
        struct snp_report rep;
        verify_ok("snp-milan-aws-vlek/vlek-report.bin", "snp-milan-aws-vlek/vlek.der",
                  "snp-milan-aws-vlek/ask_ark_milan_vlek.pem", &o, &rep);
        assert_int_equal(rep.version, 3);
        assert_int_equal(rep.signer, SNP_SIGNER_VLEK);
        assert_int_equal(rep.vmpl, 1);
        /* The VLEK endorses reported_tcb (ucode 217), not current_tcb (220). */
        assert_int_equal(rep.reported_tcb.microcode, 217);
        assert_int_equal(rep.current_tcb.microcode, 220);
        assert_int_equal(rep.reported_tcb.snp, 24);
        assert_hex_prefix(rep.report_data, "819770b7e6ea6df8");
}

static void test_msft_milan_genoa_turin(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        struct snp_report rep;
        verify_ok("snp-msft-milan-genoa-turin/milan_attestation_report.bin", "snp-msft-milan-genoa-turin/milan_vcek.pem",
                  "snp-msft-milan-genoa-turin/ask_ark_milan.pem", &o, &rep);
        assert_int_equal(rep.product, SNP_PRODUCT_MILAN);
        assert_int_equal(rep.reported_tcb.microcode, 219);

        verify_ok("snp-msft-milan-genoa-turin/genoa_attestation_report.bin", "snp-msft-milan-genoa-turin/genoa_vcek.pem",
                  "snp-msft-milan-genoa-turin/ask_ark_genoa.pem", &o, &rep);
        assert_int_equal(rep.product, SNP_PRODUCT_GENOA);
        assert_int_equal(rep.cpuid_mod_id, 0x11);
        assert_int_equal(rep.reported_tcb.bootloader, 10);
        assert_int_equal(rep.reported_tcb.snp, 23);
        assert_int_equal(rep.reported_tcb.microcode, 84);
        assert_int_equal(rep.current_major, 1);
        assert_int_equal(rep.current_minor, 55);
        assert_int_equal(rep.current_build, 40);

        verify_ok("snp-msft-milan-genoa-turin/turin_attestation_report.bin", "snp-msft-milan-genoa-turin/turin_vcek.pem",
                  "snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem", &o, &rep);
        assert_int_equal(rep.version, 5);
        assert_int_equal(rep.product, SNP_PRODUCT_TURIN);
        assert_true(rep.reported_tcb.has_fmc);
        assert_int_equal(rep.reported_tcb.fmc, 1);
        assert_int_equal(rep.reported_tcb.bootloader, 1);
        assert_int_equal(rep.reported_tcb.tee, 1);
        assert_int_equal(rep.reported_tcb.snp, 4);
        assert_int_equal(rep.reported_tcb.microcode, 81);
        assert_hex_prefix(rep.chip_id, "59790fb1c39f35c10000");
        assert_int_equal(rep.launch_mit_vector, 0x3f);
        char buf[64];
        assert_string_equal(snp_tcb_format(&rep.reported_tcb, buf, sizeof(buf)), "fmc=1 bl=1 tee=1 snp=4 ucode=81");
}

static void test_gcp_v5_cached_signer(void **state) {
        /* One chain and one signer verify all three reports (the cache the benchmark uses). Two of
         * the teekit reports were requested at VMPL 1. */
        struct snp_options o = opts_at(T_2026_06_01);
        o.allowed_vmpls = (1u << 0) | (1u << 1);
        _cleanup_blob_ struct blob chain = load("snp-milan-gcp-v5-teekit/sev-gcp-cert-chain.pem");
        struct snp_verdict v = {};
        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
        assert_int_equal(snp_chain_new(chain.data, chain.len, &o, &c, &v), 0);
        assert_int_equal(snp_chain_product(c), SNP_PRODUCT_MILAN);
        assert_int_equal(snp_chain_signer_kind(c), SNP_SIGNER_VCEK);
        const char *vceks[] = { "snp-milan-gcp-v5-teekit/sev-gcp-vcek.pem", "snp-milan-gcp-v5-teekit/sev-gcp-x25519-vcek.pem" };
        const char *reports[] = { "snp-milan-gcp-v5-teekit/sev-gcp.bin", "snp-milan-gcp-v5-teekit/sev-gcp-reportdata.bin",
                                  "snp-milan-gcp-v5-teekit/sev-gcp-x25519-bound.bin" };
        for (size_t i = 0; i < ELEMENTSOF(vceks); i++) {
                _cleanup_blob_ struct blob cert = load(vceks[i]);
                _cleanup_(snp_signer_freep) snp_signer *s = NULL;
                assert_int_equal(snp_signer_new(c, cert.data, cert.len, &o, &s, &v), 0);
                assert_string_equal(snp_signer_info(s)->product_name, "Milan-B0");
                for (int round = 0; round < 3; round++)
                        for (size_t j = 0; j < ELEMENTSOF(reports); j++) {
                                _cleanup_blob_ struct blob rb = load(reports[j]);
                                struct snp_report rep;
                                int r = snp_signer_verify_report(s, rb.data, rb.len, &o, &rep, &v);
                                if (r != 0)
                                        fail_msg("%s: %s: %s", reports[j], snp_reason_to_string(v.reason), v.detail);
                                assert_int_equal(rep.version, 5);
                                assert_int_equal(rep.reported_tcb.snp, 27);
                                assert_int_equal(rep.reported_tcb.microcode, 222);
                                assert_hex_prefix(rep.measurement, "b747d55452e0b9e9");
                        }
        }
}

static void test_gcp_bindings(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        o.allowed_vmpls = (1u << 0) | (1u << 1);
        struct snp_report rep;
        struct snp_verdict v = {};
        /* teekit: report_data = SHA-512(NONCE || X25519_KEY) from the .txt. */
        verify_ok("snp-milan-gcp-v5-teekit/sev-gcp-x25519-bound.bin", "snp-milan-gcp-v5-teekit/sev-gcp-x25519-vcek.pem",
                  "snp-milan-gcp-v5-teekit/sev-gcp-cert-chain.pem", &o, &rep);
        uint8_t bound[64];
        assert_int_equal(hex_decode_exact("df82306ff38a9da023854af947d02a878cfab1b40a793823ff41dc51213b96aa", bound, 32), 0);
        assert_int_equal(hex_decode_exact("03a8107030fabeac06b0df4ef865763918b5e2a9fa030e20025a4315dab4b2a6", bound + 32, 32), 0);
        assert_int_equal(snp_binding_check_sha512(&rep, bound, sizeof(bound), &v), 0);
        bound[0] ^= 1;
        assert_int_equal(snp_binding_check_sha512(&rep, bound, sizeof(bound), &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);

        /* Constellation GCP: report_data = extra data zero-padded. sev-gcp.bin has all-zero report_data. */
        verify_ok("snp-milan-gcp-v5-teekit/sev-gcp.bin", "snp-milan-gcp-v5-teekit/sev-gcp-vcek.pem",
                  "snp-milan-gcp-v5-teekit/sev-gcp-cert-chain.pem", &o, &rep);
        uint8_t zeros[32] = {};
        assert_int_equal(snp_binding_check_gcp(&rep, zeros, sizeof(zeros), &v), 0);
        uint8_t nonce[32] = { 1 };
        assert_int_equal(snp_binding_check_gcp(&rep, nonce, sizeof(nonce), &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);
        assert_non_null(strstr(v.detail, "report_data[0:64]"));
        uint8_t big[65] = {};
        assert_int_equal(snp_binding_check_gcp(&rep, big, sizeof(big), &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);
}

static void azure_vtpm_case(const char *dir, const char *cert, const char *chain, const char *rd_prefix) {
        char path[256];
        (void) snprintf(path, sizeof(path), "%s/hcl_report.bin", dir);
        _cleanup_blob_ struct blob hcl = load(path);
        (void) snprintf(path, sizeof(path), "%s/%s", dir, cert);
        _cleanup_blob_ struct blob cb = load(path);
        (void) snprintf(path, sizeof(path), "%s/%s", dir, chain);
        _cleanup_blob_ struct blob kb = load(path);
        (void) snprintf(path, sizeof(path), "%s/ak_pub.pem", dir);
        _cleanup_blob_ struct blob akb = load(path);

        struct snp_verdict v = {};
        struct snp_azure_hcl h;
        assert_int_equal(snp_azure_hcl_parse(hcl.data, hcl.len, &h, &v), 0);
        assert_int_equal(h.hash_type, SNP_AZURE_HASH_SHA256);
        struct snp_options o = opts_at(T_2026_06_01);
        struct snp_report rep;
        int r = snp_verify(h.report, SNP_REPORT_SIZE, cb.data, cb.len, kb.data, kb.len, &o, &rep, &v);
        if (r != 0)
                fail_msg("%s: %s: %s", dir, snp_reason_to_string(v.reason), v.detail);
        assert_hex_prefix(rep.report_data, rd_prefix);

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        assert_int_equal(snp_binding_check_azure(&rep, h.runtime_data, h.runtime_data_len, h.hash_type, &ak, &v), 0);
        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(akb.data, (int) akb.len);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *want = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        assert_non_null(want);
        assert_int_equal(EVP_PKEY_eq(ak, want), 1);

        /* The standalone runtime_data.json is the same bytes. */
        (void) snprintf(path, sizeof(path), "%s/runtime_data.json", dir);
        _cleanup_blob_ struct blob rt = load(path);
        assert_int_equal(snp_binding_check_azure(&rep, rt.data, rt.len, 0, NULL, &v), 0);

        /* Binding mismatch: one byte of the runtime data changed. */
        rt.data[10] ^= 0x20;
        assert_int_equal(snp_binding_check_azure(&rep, rt.data, rt.len, 0, NULL, &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);
        assert_non_null(strstr(v.detail, "report_data[0:32]"));
}

static void test_azure_genoa_vtpm(void **state) {
        azure_vtpm_case("azure-genoa-vtpm", "vcek-genoa.pem", "ask_ark_genoa.pem", "b581f12e29a2d7d6");
}

static void test_azure_milan_vtpm_v2(void **state) {
        azure_vtpm_case("azure-milan-vtpm-v2", "vcek.der", "ask_ark_milan.pem", "cf7cc0731c50f648");
}

/* Rejections, each with its reason. */

static void test_reject_flipped_report_byte(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-msft-milan-genoa-turin/milan_attestation_report.bin");
        struct snp_options o = opts_at(T_2026_06_01);
        rb.data[0x90] ^= 0x01; /* measurement */
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/milan_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_milan.pem",
                     &o, SNP_REASON_REPORT_SIGNATURE, "signature");
        rb.data[0x90] ^= 0x01;
        rb.data[0x2A0 + 5] ^= 0x80; /* signature r */
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/milan_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_milan.pem",
                     &o, SNP_REASON_REPORT_SIGNATURE, NULL);
}

static void test_reject_swapped_certificate(void **state) {
        /* A valid Milan VCEK, but of another chip: the signature does not verify. */
        _cleanup_blob_ struct blob rb = load("snp-milan-azure-constellation/attestation_azure.bin");
        struct snp_options o = opts_at(T_2026_06_01);
        verify_fails(rb.data, SNP_REPORT_SIZE, "snp-milan-gsg/vcek.der", "snp-milan-gsg/ask_ark_milan.pem", &o,
                     SNP_REASON_REPORT_SIGNATURE, NULL);
        /* A Genoa VCEK under the Milan chain: not issued by that ASK. */
        verify_fails(rb.data, SNP_REPORT_SIZE, "snp-msft-milan-genoa-turin/genoa_vcek.pem",
                     "snp-milan-gsg/ask_ark_milan.pem", &o, SNP_REASON_CHAIN_SIGNATURE, "SEV-Genoa");
}

static void test_reject_raised_tcb_minimum(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-milan-gsg/attestation.bin");
        struct snp_options o = opts_at(T_2026_06_01);
        o.allow_debug = true;
        o.min_tcb_set = true;
        o.min_tcb = (struct snp_tcb) { .bootloader = 2, .tee = 0, .snp = 5, .microcode = 68 };
        struct snp_verdict v = {};
        _cleanup_blob_ struct blob cb = load("snp-milan-gsg/vcek.der"), kb = load("snp-milan-gsg/ask_ark_milan.pem");
        assert_int_equal(snp_verify(rb.data, rb.len, cb.data, cb.len, kb.data, kb.len, &o, NULL, &v), 0);
        o.min_tcb.microcode = 69;
        verify_fails(rb.data, rb.len, "snp-milan-gsg/vcek.der", "snp-milan-gsg/ask_ark_milan.pem", &o, SNP_REASON_TCB_TOO_LOW,
                     "reported_tcb.microcode: 68 is below the minimum 69");
        o.min_tcb.microcode = 0;
        o.min_tcb.snp = 6;
        verify_fails(rb.data, rb.len, "snp-milan-gsg/vcek.der", "snp-milan-gsg/ask_ark_milan.pem", &o, SNP_REASON_TCB_TOO_LOW,
                     "reported_tcb.snp");
}

static void test_reject_expired_chain(void **state) {
        /* No time override: the AWS VLEK expired on 2025-12-10. */
        _cleanup_blob_ struct blob rb = load("snp-milan-aws-vlek/vlek-report.bin");
        struct snp_options o = { .allowed_vmpls = 1u << 1 };
        verify_fails(rb.data, rb.len, "snp-milan-aws-vlek/vlek.der", "snp-milan-aws-vlek/ask_ark_milan_vlek.pem", &o,
                     SNP_REASON_CERT_EXPIRED, "VLEK: expired 2025-12-10T22:14:21Z");
        /* Too early: the Microsoft VCEKs start on 2026-02-05. */
        _cleanup_blob_ struct blob mb = load("snp-msft-milan-genoa-turin/milan_attestation_report.bin");
        o = opts_at(T_2025_01_01);
        verify_fails(mb.data, mb.len, "snp-msft-milan-genoa-turin/milan_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_milan.pem",
                     &o, SNP_REASON_CERT_NOT_YET_VALID, "VCEK: not valid before 2026-02-05");

        /* A cached signer re-checks validity per report. */
        struct snp_verdict v = {};
        _cleanup_blob_ struct blob cb = load("snp-milan-aws-vlek/vlek.der"), kb = load("snp-milan-aws-vlek/ask_ark_milan_vlek.pem");
        o = opts_at(T_2025_06_15);
        o.allowed_vmpls = 1u << 1;
        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
        _cleanup_(snp_signer_freep) snp_signer *s = NULL;
        assert_int_equal(snp_chain_new(kb.data, kb.len, &o, &c, &v), 0);
        assert_int_equal(snp_chain_signer_kind(c), SNP_SIGNER_VLEK);
        assert_int_equal(snp_signer_new(c, cb.data, cb.len, &o, &s, &v), 0);
        assert_true(snp_signer_info(s)->has_csp_id);
        assert_non_null(strstr(snp_signer_info(s)->csp_id, "cc-us-east-2.amazonaws.com"));
        assert_int_equal(snp_signer_verify_report(s, rb.data, rb.len, &o, NULL, &v), 0);
        o.time_set = false;
        assert_int_equal(snp_signer_verify_report(s, rb.data, rb.len, &o, NULL, &v), -EKEYEXPIRED);
        assert_int_equal(v.reason, SNP_REASON_CERT_EXPIRED);
}

static void test_reject_debug_policy(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-milan-gsg/attestation.bin");
        struct snp_options o = opts_at(T_2026_06_01); /* debug refused by default */
        verify_fails(rb.data, rb.len, "snp-milan-gsg/vcek.der", "snp-milan-gsg/ask_ark_milan.pem", &o, SNP_REASON_POLICY_DEBUG,
                     "DEBUG (bit 19)");
}

static void test_reject_wrong_vmpl(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-milan-aws-vlek/vlek-report.bin");
        struct snp_options o = opts_at(T_2025_06_15); /* VMPL 0 only by default */
        verify_fails(rb.data, rb.len, "snp-milan-aws-vlek/vlek.der", "snp-milan-aws-vlek/ask_ark_milan_vlek.pem", &o,
                     SNP_REASON_VMPL, "vmpl: 1");
        o.allowed_vmpls = (1u << 0) | (1u << 2);
        verify_fails(rb.data, rb.len, "snp-milan-aws-vlek/vlek.der", "snp-milan-aws-vlek/ask_ark_milan_vlek.pem", &o,
                     SNP_REASON_VMPL, NULL);
}

static char *concat_files(const char *a, const char *b, size_t *ret_len) {
        _cleanup_blob_ struct blob x = load(a), y = load(b);
        char *out = malloc(x.len + y.len + 1);
        assert_non_null(out);
        memcpy(out, x.data, x.len);
        memcpy(out + x.len, y.data, y.len);
        *ret_len = x.len + y.len;
        out[*ret_len] = 0;
        return out;
}

static void test_reject_ark_not_pinned(void **state) {
        struct snp_verdict v = {};
        struct snp_options o = opts_at(T_2026_06_01);
        snp_chain *c = NULL;

        /* ASK twice: no pinned root. */
        size_t len;
        _cleanup_free_ char *twice = concat_files("amd-roots/ask_milan.pem", "amd-roots/ask_milan.pem", &len);
        assert_int_equal(snp_chain_new((const uint8_t *) twice, len, &o, &c, &v), -EKEYREJECTED);
        assert_int_equal(v.reason, SNP_REASON_ARK_NOT_PINNED);
        assert_non_null(strstr(v.detail, "67d303bd3905fd38"));

        /* A self-made root named ARK-Milan: the name does not matter, the fingerprint does. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_RSA_gen(2048);
        assert_non_null(key);
        _cleanup_(X509_freep) X509 *fake = X509_new();
        assert_non_null(fake);
        X509_set_version(fake, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(fake), 0x10000);
        X509_gmtime_adj(X509_getm_notBefore(fake), -3600);
        X509_gmtime_adj(X509_getm_notAfter(fake), 3600);
        X509_NAME *name = X509_get_subject_name(fake);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "ARK-Milan", -1, -1, 0);
        X509_set_issuer_name(fake, name);
        X509_set_pubkey(fake, key);
        assert_true(X509_sign(fake, key, EVP_sha384()) > 0);
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        _cleanup_blob_ struct blob ask = load("amd-roots/ask_milan.pem");
        BIO_write(bio, ask.data, (int) ask.len);
        PEM_write_bio_X509(bio, fake);
        char *mem = NULL;
        long n = BIO_get_mem_data(bio, &mem);
        assert_int_equal(snp_chain_new((const uint8_t *) mem, (size_t) n, &o, &c, &v), -EKEYREJECTED);
        assert_int_equal(v.reason, SNP_REASON_ARK_NOT_PINNED);
        assert_null(c);

        /* Pinned ARK but the ASK of another product: its name does not match the root. */
        _cleanup_free_ char *mixed = concat_files("amd-roots/ask_genoa.pem", "amd-roots/ark_milan.pem", &len);
        assert_int_equal(snp_chain_new((const uint8_t *) mixed, len, &o, &c, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_CHAIN_MALFORMED);
        assert_non_null(strstr(v.detail, "SEV-Genoa"));

        /* Either order, single files: ARK first then ASK works. */
        _cleanup_free_ char *rev = concat_files("amd-roots/ark_turin.pem", "amd-roots/ask_turin.pem", &len);
        assert_int_equal(snp_chain_new((const uint8_t *) rev, len, &o, &c, &v), 0);
        assert_int_equal(snp_chain_product(c), SNP_PRODUCT_TURIN);
        c = snp_chain_free(c);

        /* Only one certificate: an ARK alone is not a chain. */
        _cleanup_blob_ struct blob one = load("amd-roots/ark_milan.pem");
        assert_int_equal(snp_chain_new(one.data, one.len, &o, &c, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_CHAIN_MALFORMED);
        /* An ASK alone (Azure THIM) is completed with the built-in ARK. */
        _cleanup_blob_ struct blob ask_only = load("snp-msft-milan-genoa-turin/genoa_ask.pem");
        assert_int_equal(snp_chain_new(ask_only.data, ask_only.len, &o, &c, &v), 0);
        assert_int_equal(snp_chain_product(c), SNP_PRODUCT_GENOA);
        c = snp_chain_free(c);
        /* ASVK alone: the first PEM block of the KDS VLEK chain (read_full_file NUL-terminates). */
        _cleanup_blob_ struct blob vlek_chain = load("amd-roots/ask_ark_turin_vlek.pem");
        char *end = strstr((char *) vlek_chain.data, "-----END CERTIFICATE-----");
        assert_non_null(end);
        end += strlen("-----END CERTIFICATE-----");
        assert_int_equal(snp_chain_new(vlek_chain.data, (size_t) ((uint8_t *) end - vlek_chain.data), &o, &c, &v), 0);
        assert_int_equal(snp_chain_product(c), SNP_PRODUCT_TURIN);
        assert_int_equal(snp_chain_signer_kind(c), SNP_SIGNER_VLEK);
        c = snp_chain_free(c);
}

static void test_reject_truncated_report(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-milan-gsg/attestation.bin");
        struct snp_report rep;
        struct snp_verdict v = {};
        assert_int_equal(snp_report_parse(rb.data, rb.len - 1, &rep, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_SIZE);
        assert_non_null(strstr(v.detail, "1183 bytes"));
        assert_int_equal(snp_report_parse(rb.data, 0, &rep, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_SIZE);
        /* Trailing bytes (the whole 1204-byte Azure blob) are refused too. */
        _cleanup_blob_ struct blob az = load("snp-milan-azure-constellation/attestation_azure.bin");
        assert_int_equal(snp_report_parse(az.data, az.len, &rep, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_SIZE);
        struct snp_options o = opts_at(T_2026_06_01);
        verify_fails(rb.data, 600, "snp-milan-gsg/vcek.der", "snp-milan-gsg/ask_ark_milan.pem", &o, SNP_REASON_REPORT_SIZE, NULL);
}

static void test_reject_unsupported_version(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-msft-milan-genoa-turin/milan_attestation_report.bin");
        struct snp_report rep;
        struct snp_verdict v = {};
        const uint32_t bad[] = { 0, 1, 4, 6, 0x01000003 };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                rb.data[0] = (uint8_t) bad[i];
                rb.data[3] = (uint8_t) (bad[i] >> 24);
                assert_int_equal(snp_report_parse(rb.data, rb.len, &rep, &v), -EPROTONOSUPPORT);
                assert_int_equal(v.reason, SNP_REASON_REPORT_VERSION);
        }
        rb.data[3] = 0;
        rb.data[0] = 1;
        struct snp_options o = opts_at(T_2026_06_01);
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/milan_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_milan.pem",
                     &o, SNP_REASON_REPORT_VERSION, "version: 1");
}

static void test_reject_malformed_report(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-msft-milan-genoa-turin/milan_attestation_report.bin");
        struct snp_report rep;
        struct snp_verdict v = {};
        assert_int_equal(snp_report_parse(rb.data, rb.len, &rep, &v), 0);

        static const struct {
                size_t off;
                uint8_t xor;
                const char *detail;
        } cases[] = {
                { 0x034, 0x03, "signature_algo" },          /* 1 -> 2 */
                { 0x048, 0x08, "signing_key" },             /* SIGNING_KEY = 2 */
                { 0x048, 0x20, "reserved bits" },           /* flags bit 5 */
                { 0x00A, 0x02, "reserved bit 17" },         /* policy bit 17 cleared */
                { 0x04C, 0x01, "offset 0x4c" },             /* reserved */
                { 0x190, 0x01, "offset 0x190" },            /* reserved after CPUID */
                { 0x1EB, 0x01, "offset 0x1eb" },            /* reserved after CURRENT version */
                { 0x1F8, 0x01, "offset 0x1f8" },            /* v3: no mitigation vector */
                { 0x2A0 + 144, 0x01, "offset 0x330" },      /* signature reserved */
                { 0x030, 0x04, "vmpl" },                    /* VMPL 4 */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                rb.data[cases[i].off] ^= cases[i].xor;
                assert_int_equal(snp_report_parse(rb.data, rb.len, &rep, &v), -EBADMSG);
                assert_int_equal(v.reason, SNP_REASON_REPORT_MALFORMED);
                if (!strstr(v.detail, cases[i].detail))
                        fail_msg("case %zu: detail '%s' lacks '%s'", i, v.detail, cases[i].detail);
                rb.data[cases[i].off] ^= cases[i].xor;
        }
        /* v2 reports must have zero CPUID bytes. */
        _cleanup_blob_ struct blob v2 = load("snp-milan-gsg/attestation.bin");
        v2.data[0x188] = 0x19;
        assert_int_equal(snp_report_parse(v2.data, v2.len, &rep, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_MALFORMED);
}

static void test_reject_signer_kind_and_product(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        o.allowed_vmpls = 0xF;
        /* A VLEK-signed report checked against a VCEK. */
        _cleanup_blob_ struct blob vr = load("snp-milan-aws-vlek/vlek-report.bin");
        verify_fails(vr.data, vr.len, "snp-msft-milan-genoa-turin/milan_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_milan.pem",
                     &o, SNP_REASON_SIGNER_KIND, "signed by a VLEK");
        /* A Genoa report (CPUID 19h/11h) checked against a Milan VCEK and chain. */
        _cleanup_blob_ struct blob gr = load("snp-msft-milan-genoa-turin/genoa_attestation_report.bin");
        verify_fails(gr.data, gr.len, "snp-msft-milan-genoa-turin/milan_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_milan.pem",
                     &o, SNP_REASON_PRODUCT_MISMATCH, "Genoa");
        /* A VLEK given with a VCEK chain: not issued by the ASK. */
        verify_fails(vr.data, vr.len, "snp-milan-aws-vlek/vlek.der", "snp-milan-gsg/ask_ark_milan.pem", &o,
                     SNP_REASON_CHAIN_SIGNATURE, "SEV-VLEK-Milan");
}

static void test_reject_expected_values(void **state) {
        _cleanup_blob_ struct blob rb = load("snp-msft-milan-genoa-turin/turin_attestation_report.bin");
        struct snp_options o = opts_at(T_2026_06_01);
        uint8_t rd[64] = {}, meas[48], host[32];
        assert_int_equal(hex_decode_exact("6d6c354511d6f7c6d7504668903dc5bdc066a048b651840d8d03fb85299ebfa142fccf1d1b0baca496841bdf243619d4", meas, 48), 0);
        assert_int_equal(hex_decode_exact("b3452a0ed30f1010bd32740dd1610bc63296ceb0f882f2cac3a3152d651fe7e4", host, 32), 0);
        o.expected_report_data = rd;
        o.expected_measurement = meas;
        o.expected_host_data = host;
        struct snp_verdict v = {};
        _cleanup_blob_ struct blob cb = load("snp-msft-milan-genoa-turin/turin_vcek.pem"),
                                   kb = load("snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem");
        assert_int_equal(snp_verify(rb.data, rb.len, cb.data, cb.len, kb.data, kb.len, &o, NULL, &v), 0);
        rd[63] = 1;
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/turin_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem",
                     &o, SNP_REASON_REPORT_DATA, "report_data: expected");
        rd[63] = 0;
        meas[0] ^= 1;
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/turin_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem",
                     &o, SNP_REASON_MEASUREMENT, "measurement: expected 6c6c");
        meas[0] ^= 1;
        host[31] ^= 1;
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/turin_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem",
                     &o, SNP_REASON_HOST_DATA, NULL);
        /* Turin minimum TCB includes the FMC. */
        host[31] ^= 1;
        o.min_tcb_set = true;
        o.min_tcb = (struct snp_tcb) { .fmc = 2 };
        verify_fails(rb.data, rb.len, "snp-msft-milan-genoa-turin/turin_vcek.pem", "snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem",
                     &o, SNP_REASON_TCB_TOO_LOW, "reported_tcb.fmc: 1 is below the minimum 2");
}

static void test_aws_binding(void **state) {
        /* The AWS AK of this report is not published: check that an unrelated key is refused,
         * and that a report whose report_data is SHA-512(SPKI) is accepted. */
        struct snp_options o = opts_at(T_2025_06_15);
        o.allowed_vmpls = 1u << 1;
        struct snp_report rep;
        verify_ok("snp-milan-aws-vlek/vlek-report.bin", "snp-milan-aws-vlek/vlek.der", "snp-milan-aws-vlek/ask_ark_milan_vlek.pem",
                  &o, &rep);
        _cleanup_blob_ struct blob akb = load("azure-genoa-vtpm/ak_pub.pem");
        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(akb.data, (int) akb.len);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        assert_non_null(ak);
        struct snp_verdict v = {};
        assert_int_equal(snp_binding_check_aws(&rep, ak, &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);
        assert_non_null(strstr(v.detail, "SHA-512"));

        unsigned char *der = NULL;
        int n = i2d_PUBKEY(ak, &der);
        assert_true(n > 0);
        SHA512(der, (size_t) n, rep.report_data);
        OPENSSL_free(der);
        assert_int_equal(snp_binding_check_aws(&rep, ak, &v), 0);
        assert_int_equal(v.reason, SNP_REASON_OK);
}

static void test_azure_hcl_rejects(void **state) {
        _cleanup_blob_ struct blob hcl = load("azure-genoa-vtpm/hcl_report.bin");
        struct snp_azure_hcl h;
        struct snp_verdict v = {};
        assert_int_equal(snp_azure_hcl_parse(hcl.data, 0x4D3, &h, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_SIZE);
        hcl.data[0x4D0] = 0xFF; /* variable_data_size beyond the buffer */
        hcl.data[0x4D1] = 0xFF;
        assert_int_equal(snp_azure_hcl_parse(hcl.data, hcl.len, &h, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_MALFORMED);
        hcl.data[0] = 'X';
        assert_int_equal(snp_azure_hcl_parse(hcl.data, hcl.len, &h, &v), -EBADMSG);
        assert_non_null(strstr(v.detail, "HCLA"));

        /* Runtime data without the AK. */
        EVP_PKEY *ak = NULL;
        const char *no_ak = "{\"keys\":[{\"kid\":\"HCLEkPub\",\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"AA\"}]}";
        assert_int_equal(snp_azure_runtime_ak((const uint8_t *) no_ak, strlen(no_ak), &ak, &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);
        assert_non_null(strstr(v.detail, "HCLAkPub"));
        assert_null(ak);
        const char *not_json = "{\"keys\":";
        assert_int_equal(snp_azure_runtime_ak((const uint8_t *) not_json, strlen(not_json), &ak, &v), -EPERM);
        assert_non_null(strstr(v.detail, "not JSON"));
}

static void test_cert_info(void **state) {
        struct snp_cert_info info;
        struct snp_verdict v = {};
        _cleanup_blob_ struct blob t = load("snp-msft-milan-genoa-turin/turin_vcek.pem");
        assert_int_equal(snp_cert_info_parse(t.data, t.len, &info, &v), 0);
        assert_int_equal(info.product, SNP_PRODUCT_TURIN);
        assert_int_equal(info.hwid_len, 8);
        assert_hex_prefix(info.hwid, "59790fb1c39f35c1");
        assert_true(info.tcb.has_fmc);
        assert_int_equal(info.tcb.fmc, 1);
        assert_int_equal(info.tcb.microcode, 81);

        _cleanup_blob_ struct blob g = load("snp-msft-milan-genoa-turin/genoa_vcek.pem");
        assert_int_equal(snp_cert_info_parse(g.data, g.len, &info, &v), 0);
        assert_string_equal(info.product_name, "Genoa");
        assert_int_equal(info.hwid_len, 64);
        assert_false(info.has_csp_id);

        _cleanup_blob_ struct blob vl = load("snp-milan-aws-vlek/vlek.der");
        assert_int_equal(snp_cert_info_parse(vl.data, vl.len, &info, &v), 0);
        assert_string_equal(info.product_name, "Milan");
        assert_int_equal(info.hwid_len, 0);
        assert_true(info.has_csp_id);
        assert_int_equal(info.tcb.microcode, 217);

        /* Garbage, truncation, two certificates in one PEM. */
        assert_int_equal(snp_cert_info_parse((const uint8_t *) "hello", 5, &info, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_CERT_MALFORMED);
        assert_int_equal(snp_cert_info_parse(vl.data, vl.len - 1, &info, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_CERT_MALFORMED);
        size_t len;
        _cleanup_free_ char *two = concat_files("snp-msft-milan-genoa-turin/turin_vcek.pem",
                                                "snp-msft-milan-genoa-turin/genoa_vcek.pem", &len);
        assert_int_equal(snp_cert_info_parse((const uint8_t *) two, len, &info, &v), -EBADMSG);
        /* An AMD root has no VCEK extensions. */
        _cleanup_blob_ struct blob ark = load("amd-roots/ark_milan.pem");
        assert_int_equal(snp_cert_info_parse(ark.data, ark.len, &info, &v), -EBADMSG);
        assert_non_null(strstr(v.detail, "productName"));
}

static void test_names_and_decode(void **state) {
        for (int r = 0; r < _SNP_REASON_MAX; r++)
                assert_string_not_equal(snp_reason_to_string((enum snp_reason) r), "unknown");
        assert_string_equal(snp_reason_to_string(_SNP_REASON_MAX), "unknown");
        assert_string_equal(snp_reason_to_string(SNP_REASON_REPORT_SIGNATURE), "report-signature");
        assert_int_equal(snp_product_from_cpuid(0x19, 0x01), SNP_PRODUCT_MILAN);
        assert_int_equal(snp_product_from_cpuid(0x19, 0x11), SNP_PRODUCT_GENOA);
        assert_int_equal(snp_product_from_cpuid(0x1A, 0x02), SNP_PRODUCT_TURIN);
        assert_int_equal(snp_product_from_cpuid(0x17, 0x31), SNP_PRODUCT_UNKNOWN);
        struct snp_tcb t;
        snp_tcb_decode(0x5d06000000000002ull, SNP_PRODUCT_MILAN, &t);
        assert_int_equal(t.bootloader, 2);
        assert_int_equal(t.snp, 6);
        assert_int_equal(t.microcode, 93);
        assert_false(t.has_fmc);
        snp_tcb_decode(0x5100000004010101ull, SNP_PRODUCT_TURIN, &t);
        assert_int_equal(t.fmc, 1);
        assert_int_equal(t.snp, 4);
        assert_int_equal(t.microcode, 81);
}

static void test_builtin_chains(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        struct snp_verdict v = {};
        const enum snp_product products[] = { SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA, SNP_PRODUCT_TURIN };
        for (size_t i = 0; i < ELEMENTSOF(products); i++)
                for (int k = SNP_SIGNER_VCEK; k <= SNP_SIGNER_VLEK; k++) {
                        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
                        int r = snp_chain_new_builtin(products[i], (enum snp_signer_kind) k, &o, &c, &v);
                        if (r != 0)
                                fail_msg("%s: %s", snp_reason_to_string(v.reason), v.detail);
                        assert_int_equal(snp_chain_product(c), products[i]);
                        assert_int_equal(snp_chain_signer_kind(c), k);
                }
        snp_chain *c = NULL;
        assert_int_equal(snp_chain_new_builtin(SNP_PRODUCT_UNKNOWN, SNP_SIGNER_VCEK, &o, &c, &v), -EINVAL);
        assert_int_equal(v.reason, SNP_REASON_INVALID_ARGUMENT);

        /* snp_verify without a chain picks the built-in one from productName and SIGNING_KEY. */
        static const struct {
                const char *report, *cert;
        } cases[] = {
                { "snp-msft-milan-genoa-turin/milan_attestation_report.bin", "snp-msft-milan-genoa-turin/milan_vcek.pem" },
                { "snp-msft-milan-genoa-turin/genoa_attestation_report.bin", "snp-msft-milan-genoa-turin/genoa_vcek.pem" },
                { "snp-msft-milan-genoa-turin/turin_attestation_report.bin", "snp-msft-milan-genoa-turin/turin_vcek.pem" },
                { "azure-genoa-vtpm/snp_report.bin", "azure-genoa-vtpm/vcek-genoa.pem" },
                { "azure-milan-vtpm-v2/snp_report.bin", "azure-milan-vtpm-v2/vcek.der" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_blob_ struct blob rb = load(cases[i].report), cb = load(cases[i].cert);
                int r = snp_verify(rb.data, rb.len, cb.data, cb.len, NULL, 0, &o, NULL, &v);
                if (r != 0)
                        fail_msg("%s: %s: %s", cases[i].report, snp_reason_to_string(v.reason), v.detail);
        }
        _cleanup_blob_ struct blob vr = load("snp-milan-aws-vlek/vlek-report.bin"), vc = load("snp-milan-aws-vlek/vlek.der");
        o = opts_at(T_2025_06_15);
        o.allowed_vmpls = 1u << 1;
        assert_int_equal(snp_verify(vr.data, vr.len, vc.data, vc.len, NULL, 0, &o, NULL, &v), 0);
        o.time_set = false;
        assert_int_equal(snp_verify(vr.data, vr.len, vc.data, vc.len, NULL, 0, &o, NULL, &v), -EKEYEXPIRED);
        assert_int_equal(v.reason, SNP_REASON_CERT_EXPIRED);
}

static void test_verifier_cache(void **state) {
        _cleanup_(snp_verifier_freep) snp_verifier *vf = NULL;
        assert_int_equal(snp_verifier_new(&vf), 0);
        struct snp_verdict v = {};
        struct snp_report rep;
        uint64_t hits, misses;

        /* AWS first without a time override: refused and not cached. */
        _cleanup_blob_ struct blob vr = load("snp-milan-aws-vlek/vlek-report.bin"), vc = load("snp-milan-aws-vlek/vlek.der"),
                                   vk = load("snp-milan-aws-vlek/ask_ark_milan_vlek.pem");
        struct snp_options o = { .allowed_vmpls = 1u << 1 };
        assert_int_equal(snp_verifier_verify(vf, vr.data, vr.len, vc.data, vc.len, vk.data, vk.len, &o, NULL, &v), -EKEYEXPIRED);
        assert_int_equal(v.reason, SNP_REASON_CERT_EXPIRED);
        o.time_set = true;
        o.time = T_2025_06_15;
        assert_int_equal(snp_verifier_verify(vf, vr.data, vr.len, vc.data, vc.len, vk.data, vk.len, &o, &rep, &v), 0);
        assert_int_equal(rep.signer, SNP_SIGNER_VLEK);
        assert_int_equal(snp_verifier_verify(vf, vr.data, vr.len, vc.data, vc.len, vk.data, vk.len, &o, NULL, &v), 0);
        /* Cached, yet the expiry is re-checked per report. */
        o.time_set = false;
        assert_int_equal(snp_verifier_verify(vf, vr.data, vr.len, vc.data, vc.len, vk.data, vk.len, &o, NULL, &v), -EKEYEXPIRED);
        snp_verifier_stats(vf, &hits, &misses);
        assert_int_equal(misses, 2);
        assert_int_equal(hits, 2);

        /* Three GCP reports under one VCEK, with the built-in chain: one miss, then hits. */
        o = opts_at(T_2026_06_01);
        o.allowed_vmpls = 3;
        _cleanup_blob_ struct blob gc = load("snp-milan-gcp-v5-teekit/sev-gcp-vcek.pem");
        const char *reports[] = { "snp-milan-gcp-v5-teekit/sev-gcp.bin", "snp-milan-gcp-v5-teekit/sev-gcp-reportdata.bin",
                                  "snp-milan-gcp-v5-teekit/sev-gcp-x25519-bound.bin" };
        for (size_t i = 0; i < ELEMENTSOF(reports); i++) {
                _cleanup_blob_ struct blob rb = load(reports[i]);
                assert_int_equal(snp_verifier_verify(vf, rb.data, rb.len, gc.data, gc.len, NULL, 0, &o, &rep, &v), 0);
                assert_int_equal(rep.version, 5);
                /* A tampered report through the cached signer. */
                rb.data[0x50] ^= 1;
                assert_int_equal(snp_verifier_verify(vf, rb.data, rb.len, gc.data, gc.len, NULL, 0, &o, NULL, &v), -EKEYREJECTED);
                assert_int_equal(v.reason, SNP_REASON_REPORT_SIGNATURE);
        }
        snp_verifier_stats(vf, &hits, &misses);
        assert_int_equal(misses, 3);
        assert_int_equal(hits, 2 + 5);

        /* More distinct entries than slots: eviction keeps everything working. */
        _cleanup_blob_ struct blob mr = load("snp-msft-milan-genoa-turin/milan_attestation_report.bin"),
                                   mc = load("snp-msft-milan-genoa-turin/milan_vcek.pem");
        _cleanup_free_ uint8_t *padded = malloc(mc.len + 40);
        assert_non_null(padded);
        for (size_t i = 0; i < 40; i++) {
                /* Same certificate, different bytes (trailing newlines after the PEM): new keys. */
                memcpy(padded, mc.data, mc.len);
                memset(padded + mc.len, '\n', i);
                assert_int_equal(snp_verifier_verify(vf, mr.data, mr.len, padded, mc.len + i, NULL, 0, &o, NULL, &v), 0);
        }
        assert_int_equal(snp_verifier_verify(vf, mr.data, mr.len, mc.data, mc.len, NULL, 0, &o, NULL, &v), 0);
}

struct thread_arg {
        snp_verifier *vf;
        struct blob report, cert;
        int failures;
};

static void *verify_thread(void *p) {
        struct thread_arg *a = p;
        struct snp_options o = opts_at(T_2026_06_01);
        for (int i = 0; i < 100; i++) {
                struct snp_verdict v;
                if (snp_verifier_verify(a->vf, a->report.data, a->report.len, a->cert.data, a->cert.len, NULL, 0, &o, NULL, &v) != 0)
                        a->failures++;
        }
        return NULL;
}

static void test_verifier_threads(void **state) {
        _cleanup_(snp_verifier_freep) snp_verifier *vf = NULL;
        assert_int_equal(snp_verifier_new(&vf), 0);
        struct thread_arg args[2] = {
                { .vf = vf, .report = load("snp-msft-milan-genoa-turin/genoa_attestation_report.bin"),
                  .cert = load("snp-msft-milan-genoa-turin/genoa_vcek.pem") },
                { .vf = vf, .report = load("snp-msft-milan-genoa-turin/turin_attestation_report.bin"),
                  .cert = load("snp-msft-milan-genoa-turin/turin_vcek.pem") },
        };
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&t[i], NULL, verify_thread, &args[i]), 0);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(args[i].failures, 0);
                blob_free(&args[i].report);
                blob_free(&args[i].cert);
        }
        uint64_t hits, misses;
        snp_verifier_stats(vf, &hits, &misses);
        assert_int_equal(misses, 2);
        assert_int_equal(hits, 198);
}

static void test_kds_urls(void **state) {
        struct snp_options o = opts_at(T_2026_06_01);
        struct snp_report rep;
        verify_ok("snp-msft-milan-genoa-turin/turin_attestation_report.bin", "snp-msft-milan-genoa-turin/turin_vcek.pem",
                  "snp-msft-milan-genoa-turin/ask_ark_turin_vcek.pem", &o, &rep);
        _cleanup_free_ char *turin = NULL;
        assert_int_equal(snp_kds_vcek_url(&rep, &turin), 0);
        assert_string_equal(turin, "https://kdsintf.amd.com/vcek/v1/Turin/59790fb1c39f35c1?blSPL=1&teeSPL=1&snpSPL=4&ucodeSPL=81&fmcSPL=1");

        verify_ok("snp-msft-milan-genoa-turin/milan_attestation_report.bin", "snp-msft-milan-genoa-turin/milan_vcek.pem",
                  "snp-msft-milan-genoa-turin/ask_ark_milan.pem", &o, &rep);
        _cleanup_free_ char *milan = NULL;
        assert_int_equal(snp_kds_vcek_url(&rep, &milan), 0);
        assert_string_equal(milan, "https://kdsintf.amd.com/vcek/v1/Milan/"
                                   "4ffb5cb4fd594f3fee6528fc3fb10370bb38abe89dcd5ba2cf0ab6a11df2ca28"
                                   "2add516bef45a890a8c9f9732bdca68f9f3f16c42e846030a800295dbeb19ba5"
                                   "?blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219");

        /* A v2 report names no product until verified. */
        _cleanup_blob_ struct blob v2 = load("snp-milan-gsg/attestation.bin");
        struct snp_verdict v;
        assert_int_equal(snp_report_parse(v2.data, v2.len, &rep, &v), 0);
        char *url = NULL;
        assert_int_equal(snp_kds_vcek_url(&rep, &url), -EINVAL);
        assert_null(url);

        _cleanup_free_ char *chain = NULL, *vlek = NULL;
        assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_GENOA, SNP_SIGNER_VCEK, &chain), 0);
        assert_string_equal(chain, "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain");
        assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_MILAN, SNP_SIGNER_VLEK, &vlek), 0);
        assert_string_equal(vlek, "https://kdsintf.amd.com/vlek/v1/Milan/cert_chain");
        assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_UNKNOWN, SNP_SIGNER_VCEK, &url), -EINVAL);
}

static void test_instance_info(void **state) {
        /* Constellation's azure-sev-snp instance info, built from the real Azure set. */
        _cleanup_blob_ struct blob rb = load("snp-milan-azure-constellation/attestation_azure.bin"),
                                   vcek = load("snp-milan-azure-constellation/vcek_thim.pem"),
                                   ask = load("amd-roots/ask_milan.pem"),
                                   rt = load("snp-milan-azure-constellation/runtimedata.bin");
        struct snp_instance_info in = {
                .report = rb.data, .report_len = SNP_REPORT_SIZE,
                .report_signer = vcek.data, .report_signer_len = vcek.len,
                .cert_chain = ask.data, .cert_chain_len = ask.len, /* THIM: ASK only */
                .has_azure = true, .azure_runtime_data = rt.data, .azure_runtime_data_len = rt.len,
        };
        _cleanup_free_ char *json = NULL;
        assert_int_equal(snp_instance_info_to_json(&in, &json), 0);
        assert_non_null(strstr(json, "{\"ReportSigner\":\"LS0tLS1CRUdJTi"));
        assert_non_null(strstr(json, "\"Azure\":{\"RuntimeData\":\"eyJrZXlz"));
        assert_non_null(strstr(json, "\"MAAToken\":\"\"},\"GCP\":null}"));

        struct snp_verdict v = {};
        _cleanup_(snp_instance_info_done) struct snp_instance_info ii = {};
        assert_int_equal(snp_instance_info_parse((const uint8_t *) json, strlen(json), &ii, &v), 0);
        assert_int_equal(ii.report_len, SNP_REPORT_SIZE);
        assert_true(ii.has_azure);
        assert_false(ii.has_gcp);
        assert_null(ii.azure_maa_token);
        struct snp_options o = opts_at(T_2026_06_01);
        struct snp_report rep;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        int r = snp_instance_info_verify(&ii, &o, &rep, &ak, &v);
        if (r != 0)
                fail_msg("%s: %s", snp_reason_to_string(v.reason), v.detail);
        assert_non_null(ak);
        assert_int_equal(EVP_PKEY_get_bits(ak), 2048);
        assert_int_equal(rep.reported_tcb.microcode, 93);

        /* Without CertChain: the built-in chain. */
        free(ii.cert_chain);
        ii.cert_chain = NULL;
        ii.cert_chain_len = 0;
        assert_int_equal(snp_instance_info_verify(&ii, &o, NULL, NULL, &v), 0);

        /* Tampered runtime data: binding fails. */
        ii.azure_runtime_data[20] ^= 1;
        EVP_PKEY *none = NULL;
        assert_int_equal(snp_instance_info_verify(&ii, &o, NULL, &none, &v), -EPERM);
        assert_int_equal(v.reason, SNP_REASON_BINDING);
        assert_null(none);
        ii.azure_runtime_data[20] ^= 1;

        /* No ReportSigner. */
        free(ii.report_signer);
        ii.report_signer = NULL;
        ii.report_signer_len = 0;
        assert_int_equal(snp_instance_info_verify(&ii, &o, NULL, NULL, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_EVIDENCE_MALFORMED);
        assert_non_null(strstr(v.detail, "ReportSigner"));

        /* Malformed containers. */
        static const struct {
                const char *json, *detail;
        } bad[] = {
                { "[]", "not a JSON object" },
                { "{\"AttestationReport\":null}", "AttestationReport missing" },
                { "{\"AttestationReport\":\"!!\"}", "AttestationReport is not base64" },
                { "{\"AttestationReport\":\"AAAA\",\"ReportSigner\":5}", "ReportSigner is not base64" },
                { "{\"AttestationReport\":\"AAAA\",\"Azure\":[]}", "Azure is not an object" },
                { "{\"AttestationReport\":\"AAAA\",\"Azure\":{\"MAAToken\":1}}", "MAAToken" },
                { "{\"AttestationReport\":\"AAAA\",\"AttestationReport\":\"AAAA\"}", "not a JSON object" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct snp_instance_info x;
                assert_int_equal(snp_instance_info_parse((const uint8_t *) bad[i].json, strlen(bad[i].json), &x, &v), -EBADMSG);
                assert_int_equal(v.reason, SNP_REASON_EVIDENCE_MALFORMED);
                if (!strstr(v.detail, bad[i].detail))
                        fail_msg("case %zu: '%s' lacks '%s'", i, v.detail, bad[i].detail);
        }
        /* A short report inside a well-formed container fails as a report. */
        const char *short_report = "{\"AttestationReport\":\"AAAA\",\"ReportSigner\":\"AAAA\"}";
        _cleanup_(snp_instance_info_done) struct snp_instance_info sr = {};
        assert_int_equal(snp_instance_info_parse((const uint8_t *) short_report, strlen(short_report), &sr, &v), 0);
        assert_int_equal(snp_instance_info_verify(&sr, &o, NULL, NULL, &v), -EBADMSG);
        assert_int_equal(v.reason, SNP_REASON_REPORT_SIZE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gsg_milan_v2),
                cmocka_unit_test(test_azure_constellation_milan_v2),
                cmocka_unit_test(test_aws_vlek_milan_v3),
                cmocka_unit_test(test_msft_milan_genoa_turin),
                cmocka_unit_test(test_gcp_v5_cached_signer),
                cmocka_unit_test(test_gcp_bindings),
                cmocka_unit_test(test_azure_genoa_vtpm),
                cmocka_unit_test(test_azure_milan_vtpm_v2),
                cmocka_unit_test(test_reject_flipped_report_byte),
                cmocka_unit_test(test_reject_swapped_certificate),
                cmocka_unit_test(test_reject_raised_tcb_minimum),
                cmocka_unit_test(test_reject_expired_chain),
                cmocka_unit_test(test_reject_debug_policy),
                cmocka_unit_test(test_reject_wrong_vmpl),
                cmocka_unit_test(test_reject_ark_not_pinned),
                cmocka_unit_test(test_reject_truncated_report),
                cmocka_unit_test(test_reject_unsupported_version),
                cmocka_unit_test(test_reject_malformed_report),
                cmocka_unit_test(test_reject_signer_kind_and_product),
                cmocka_unit_test(test_reject_expected_values),
                cmocka_unit_test(test_aws_binding),
                cmocka_unit_test(test_azure_hcl_rejects),
                cmocka_unit_test(test_cert_info),
                cmocka_unit_test(test_names_and_decode),
                cmocka_unit_test(test_builtin_chains),
                cmocka_unit_test(test_verifier_cache),
                cmocka_unit_test(test_verifier_threads),
                cmocka_unit_test(test_kds_urls),
                cmocka_unit_test(test_instance_info),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
