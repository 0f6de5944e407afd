/* SPDX-License-Identifier: Apache-2.0 */
/* Quote verification against real quotes (GCE vTPM: 3 banks x 2 nonces; Azure Genoa and Milan
 * vTPM) and every rejection path with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "tpm-test-util.h"

static const uint8_t nonce9009[] = { 0x90, 0x09 };

struct quote_case {
        uint8_t *attest, *sig;
        size_t attest_len, sig_len;
        EVP_PKEY *ak;
        tpmq_pcr_bank bank;
};

static void quote_case_done(struct quote_case *c) {
        free(c->attest);
        free(c->sig);
        EVP_PKEY_free(c->ak);
}

/* The GCE quote of `bank` ("sha1", "sha256", "sha384") for `which` ("nonce9009", "no-nonce"). */
static void load_gce(struct quote_case *c, const char *which, const char *bank) {
        char p[256];
        snprintf(p, sizeof p, "tpm-gce-vtpm/%s.quote_%s.tpms_attest.bin", which, bank);
        c->attest = tpm_test_read(p, &c->attest_len);
        snprintf(p, sizeof p, "tpm-gce-vtpm/%s.quote_%s.tpmt_signature.bin", which, bank);
        c->sig = tpm_test_read(p, &c->sig_len);
        snprintf(p, sizeof p, "tpm-gce-vtpm/%s.ak_pub.tpmt_public.bin", which);
        c->ak = tpm_test_read_ak(p);
        snprintf(p, sizeof p, "tpm-gce-vtpm/%s.pcrs_%s.txt", which, bank);
        tpm_test_read_bank(p, tpmq_alg_from_name(bank), &c->bank);
}

/* Azure ships the raw RSASSA signature: wrap it in a TPMT_SIGNATURE (Part 2 §11.3.4). */
static void load_azure(struct quote_case *c, const char *dir) {
        char p[256];
        snprintf(p, sizeof p, "%s/quote_msg.tpms_attest.bin", dir);
        c->attest = tpm_test_read(p, &c->attest_len);
        size_t raw_len;
        snprintf(p, sizeof p, "%s/quote_sig.rsassa.bin", dir);
        _cleanup_free_ uint8_t *raw = tpm_test_read(p, &raw_len);
        assert_int_equal(raw_len, 256);
        c->sig_len = 6 + raw_len;
        c->sig = malloc(c->sig_len);
        assert_non_null(c->sig);
        memcpy(c->sig, (const uint8_t[]){ 0x00, 0x14, 0x00, 0x0b, 0x01, 0x00 }, 6);
        memcpy(c->sig + 6, raw, raw_len);
        snprintf(p, sizeof p, "%s/ak_pub.pem", dir);
        c->ak = tpm_test_read_ak(p);
        snprintf(p, sizeof p, "%s/pcrs_sha256.txt", dir);
        tpm_test_read_bank(p, TPM_ALG_SHA256, &c->bank);
}

static tpmq_reason verify(const struct quote_case *c, const tpmq_pcr_bank *bank, const uint8_t *nonce,
                          size_t nonce_len, char **ret_detail) {
        tpmq_reason reason = (tpmq_reason) -1;
        char *d = NULL;
        int r = tpmq_verify_quote(c->attest, c->attest_len, c->sig, c->sig_len, c->ak, bank ?: &c->bank, nonce,
                                  nonce_len, &reason, &d);
        assert_int_equal(r, reason == TPMQ_OK ? 0 : -EBADMSG);
        if (reason == TPMQ_OK)
                assert_null(d);
        else
                assert_non_null(d);
        if (ret_detail)
                *ret_detail = d;
        else
                free(d);
        return reason;
}

static void test_gce_all_banks_verify(void **state) {
        (void) state;
        const char *banks[] = { "sha1", "sha256", "sha384" };
        for (size_t i = 0; i < ELEMENTSOF(banks); i++) {
                _cleanup_(quote_case_done) struct quote_case a = { 0 }, b = { 0 };
                load_gce(&a, "nonce9009", banks[i]);
                assert_int_equal(verify(&a, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_OK);
                load_gce(&b, "no-nonce", banks[i]);
                assert_int_equal(verify(&b, NULL, NULL, 0, NULL), TPMQ_OK);
        }
}

static void test_gce_parse_fields(void **state) {
        (void) state;
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        load_gce(&c, "nonce9009", "sha256");
        tpmq_attest a;
        assert_int_equal(tpmq_attest_parse(c.attest, c.attest_len, &a), 0);
        assert_int_equal(a.magic, TPM_GENERATED_VALUE);
        assert_int_equal(a.type, TPM_ST_ATTEST_QUOTE);
        assert_int_equal(a.firmware_version, 0x2016051100162800ull);
        assert_int_equal(a.clock, 8219159552ull);
        assert_int_equal(a.reset_count, 10);
        assert_int_equal(a.n_selections, 1);
        assert_int_equal(a.selections[0].hash, TPM_ALG_SHA256);
        assert_int_equal(a.selections[0].mask, 0xffffff);
        _cleanup_free_ char *dig = hex_encode(a.pcr_digest, a.pcr_digest_len);
        assert_string_equal(dig, "048937cbaaf28af85a5b0c0997e725097a0d94e05fcda104a82ee3fb6b2e1808");

        size_t len;
        _cleanup_free_ uint8_t *pub = tpm_test_read("tpm-gce-vtpm/nonce9009.ak_pub.tpmt_public.bin", &len);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        tpmq_public_info info;
        assert_int_equal(tpmq_public_parse_info(pub, len, &k, &info), 0);
        assert_int_equal(info.type, TPM_ALG_RSA);
        assert_int_equal(info.bits, 2048);
        assert_int_equal(info.attributes, 0x00050072);
        assert_int_equal(info.scheme, TPM_ALG_RSASSA);
        assert_int_equal(info.scheme_hash, TPM_ALG_SHA256);
        assert_true(tpmq_public_is_restricted_signer(&info));
        _cleanup_free_ char *name = hex_encode(info.name, info.name_len);
        assert_string_equal(name, "000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4");

        /* The TPMT_PUBLIC and the PEM of the same key are the same key. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pem = tpm_test_read_ak("tpm-gce-vtpm/nonce9009.ak_pub.pem");
        assert_int_equal(EVP_PKEY_eq(k, pem), 1);
}

static void test_azure_verify(void **state) {
        (void) state;
        struct {
                const char *dir, *nonce;
        } t[] = {
                { "azure-genoa-vtpm", "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f" },
                { "azure-milan-vtpm-v2", "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(quote_case_done) struct quote_case c = { 0 };
                load_azure(&c, t[i].dir);
                uint8_t nonce[48];
                assert_int_equal(hex_decode_exact(t[i].nonce, nonce, sizeof nonce), 0);
                assert_int_equal(verify(&c, NULL, nonce, sizeof nonce, NULL), TPMQ_OK);
                nonce[47] ^= 1;
                assert_int_equal(verify(&c, NULL, nonce, sizeof nonce, NULL), TPMQ_NONCE_MISMATCH);
        }
}

static void test_reject_flipped_quote_byte(void **state) {
        (void) state;
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        load_gce(&c, "nonce9009", "sha256");
        /* A byte of clock info: still parses, signature no longer matches. */
        c.attest[c.attest_len - 40] ^= 0x01;
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_SIGNATURE_INVALID);
        c.attest[c.attest_len - 40] ^= 0x01;
        /* The magic. */
        c.attest[0] ^= 0x01;
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_NOT_GENERATED);
        c.attest[0] ^= 0x01;
        /* The type. */
        c.attest[5] = 0x17; /* TPM_ST_ATTEST_CERTIFY */
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_NOT_A_QUOTE);
        c.attest[5] = 0x18;
        /* The signature. */
        c.sig[100] ^= 0x80;
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_SIGNATURE_INVALID);
        c.sig[100] ^= 0x80;
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_OK);
}

static void test_reject_wrong_nonce(void **state) {
        (void) state;
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        load_gce(&c, "nonce9009", "sha256");
        char *d = NULL;
        assert_int_equal(verify(&c, NULL, (const uint8_t[]){ 0x90, 0x08 }, 2, &d), TPMQ_NONCE_MISMATCH);
        assert_non_null(strstr(d, "contents differ"));
        free(d);
        assert_int_equal(verify(&c, NULL, NULL, 0, NULL), TPMQ_NONCE_MISMATCH);
        /* The nonce-less quote must not pass for a nonce. */
        _cleanup_(quote_case_done) struct quote_case n = { 0 };
        load_gce(&n, "no-nonce", "sha256");
        assert_int_equal(verify(&n, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_NONCE_MISMATCH);
}

static void test_reject_wrong_pcr(void **state) {
        (void) state;
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        load_gce(&c, "nonce9009", "sha256");
        tpmq_pcr_bank b = c.bank;
        b.value[7][31] ^= 1;
        char *d = NULL;
        assert_int_equal(verify(&c, &b, nonce9009, sizeof nonce9009, &d), TPMQ_PCR_DIGEST_MISMATCH);
        assert_non_null(strstr(d, "sha256 bank"));
        assert_non_null(strstr(d, "048937cbaaf28af85a5b0c0997e725097a0d94e05fcda104a82ee3fb6b2e1808"));
        free(d);
        b = c.bank;
        b.present[11] = false;
        assert_int_equal(verify(&c, &b, nonce9009, sizeof nonce9009, &d), TPMQ_PCR_MISSING);
        assert_non_null(strstr(d, "PCR 11"));
        free(d);
}


/* A TPMS_ATTEST quote (Part 2 §10.12.12) over `mask` of the SHA-256 bank, signed RSASSA-SHA256 by a
 * software key: lets the selection rules be tested with selections real quotes do not have. */
static void make_quote(struct quote_case *c, uint32_t mask, const tpmq_pcr_bank *bank, const uint8_t *nonce,
                       size_t nonce_len) {
        uint8_t a[256];
        size_t o = 0;
#define BE(v, n) do { for (int _i = (n) - 1; _i >= 0; _i--) a[o++] = (uint8_t) ((uint64_t) (v) >> (8 * _i)); } while (0)
        BE(TPM_GENERATED_VALUE, 4);
        BE(TPM_ST_ATTEST_QUOTE, 2);
        BE(0, 2); /* qualifiedSigner */
        BE(nonce_len, 2);
        memcpy(a + o, nonce, nonce_len);
        o += nonce_len;
        BE(1234, 8); /* clockInfo: clock, resetCount, restartCount, safe */
        BE(1, 4);
        BE(0, 4);
        a[o++] = 1;
        BE(0x20160511ull, 8);                        /* firmwareVersion */
        BE(1, 4); /* TPML_PCR_SELECTION: one TPMS_PCR_SELECTION of 3 bytes */
        BE(TPM_ALG_SHA256, 2);
        a[o++] = 3;
        a[o++] = (uint8_t) mask, a[o++] = (uint8_t) (mask >> 8), a[o++] = (uint8_t) (mask >> 16);
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *h = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestInit_ex(h, EVP_sha256(), NULL), 1);
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++)
                if (mask & (1u << i))
                        EVP_DigestUpdate(h, bank->value[i], 32);
        BE(32, 2);
        assert_int_equal(EVP_DigestFinal_ex(h, a + o, NULL), 1);
        o += 32;
        c->attest = malloc(o);
        assert_non_null(c->attest);
        memcpy(c->attest, a, o);
        c->attest_len = o;
        c->ak = EVP_RSA_gen(2048);
        assert_non_null(c->ak);
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *s = EVP_MD_CTX_new();
        size_t sl = 256;
        c->sig = malloc(6 + sl);
        assert_non_null(c->sig);
        assert_int_equal(EVP_DigestSignInit(s, NULL, EVP_sha256(), NULL, c->ak), 1);
        assert_int_equal(EVP_DigestSign(s, c->sig + 6, &sl, c->attest, c->attest_len), 1);
        assert_int_equal(sl, 256);
        memcpy(c->sig, (const uint8_t[]){ 0x00, 0x14, 0x00, 0x0b, 0x01, 0x00 }, 6);
        c->sig_len = 6 + sl;
#undef BE
}

/* The PCR values given must be exactly the quote's selection (go-tpm-tools: "given PCRs and quote do
 * not have the same PCR selection"): a genuine quote over PCR 0 alone must not vouch for made-up
 * values of PCRs 4, 9, 11 and 15; an empty selection vouches for nothing. */
static void test_reject_selection_mismatch(void **state) {
        (void) state;
        tpmq_pcr_bank b = { .alg = TPM_ALG_SHA256 };
        b.present[0] = true;
        memset(b.value[0], 0x00, 32);
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        make_quote(&c, 1u << 0, &b, nonce9009, sizeof nonce9009);
        assert_int_equal(verify(&c, &b, nonce9009, sizeof nonce9009, NULL), TPMQ_OK);
        tpmq_pcr_bank forged = b;
        const unsigned fake[] = { 4, 9, 11, 15 };
        for (size_t i = 0; i < ELEMENTSOF(fake); i++) {
                forged.present[fake[i]] = true;
                memset(forged.value[fake[i]], 0x42, 32);
        }
        char *d = NULL;
        assert_int_equal(verify(&c, &forged, nonce9009, sizeof nonce9009, &d), TPMQ_PCR_NOT_QUOTED);
        assert_non_null(strstr(d, "do not have the same PCR selection"));
        assert_non_null(strstr(d, "PCR 4 (sha256) and others"));
        assert_non_null(strstr(d, "the quote selects 1 PCRs, 5 values were given"));
        free(d);
        /* One extra PCR is enough. */
        tpmq_pcr_bank one = b;
        one.present[23] = true;
        assert_int_equal(verify(&c, &one, nonce9009, sizeof nonce9009, &d), TPMQ_PCR_NOT_QUOTED);
        assert_non_null(strstr(d, "PCR 23 (sha256);"));
        free(d);

        _cleanup_(quote_case_done) struct quote_case e = { 0 };
        make_quote(&e, 0, &b, nonce9009, sizeof nonce9009);
        assert_int_equal(verify(&e, &b, nonce9009, sizeof nonce9009, &d), TPMQ_PCR_SELECTION_EMPTY);
        assert_non_null(strstr(d, "quote selects no PCRs"));
        free(d);
        tpmq_pcr_bank none = { .alg = TPM_ALG_SHA256 };
        assert_int_equal(verify(&e, &none, nonce9009, sizeof nonce9009, NULL), TPMQ_PCR_SELECTION_EMPTY);
}

static void test_reject_wrong_ak(void **state) {
        (void) state;
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        load_gce(&c, "nonce9009", "sha256");
        EVP_PKEY_free(c.ak);
        c.ak = tpm_test_read_ak("azure-genoa-vtpm/ak_pub.pem");
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_SIGNATURE_INVALID);
        /* An EC key cannot verify an RSASSA signature. */
        EVP_PKEY_free(c.ak);
        c.ak = EVP_EC_gen("P-256");
        assert_non_null(c.ak);
        assert_int_equal(verify(&c, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_BAD_KEY);
}

static void test_reject_bank_confusion(void **state) {
        (void) state;
        /* A valid SHA-384 quote must not vouch for SHA-256 PCR values, even genuine ones. */
        _cleanup_(quote_case_done) struct quote_case q384 = { 0 }, q256 = { 0 };
        load_gce(&q384, "nonce9009", "sha384");
        load_gce(&q256, "nonce9009", "sha256");
        char *d = NULL;
        assert_int_equal(verify(&q384, &q256.bank, nonce9009, sizeof nonce9009, &d), TPMQ_BANK_MISMATCH);
        assert_non_null(strstr(d, "quote selects sha384"));
        assert_non_null(strstr(d, "PCR values given are sha256"));
        free(d);
        /* A bank relabelled as the quoted one does not hash to the quoted digest. */
        tpmq_pcr_bank relabelled = q256.bank;
        relabelled.alg = TPM_ALG_SHA384;
        assert_int_equal(verify(&q384, &relabelled, nonce9009, sizeof nonce9009, NULL), TPMQ_PCR_DIGEST_MISMATCH);
}

static void test_reject_truncated(void **state) {
        (void) state;
        _cleanup_(quote_case_done) struct quote_case c = { 0 };
        load_gce(&c, "nonce9009", "sha256");
        tpmq_attest a;
        tpmq_signature s;
        EVP_PKEY *k = NULL;
        size_t pub_len;
        _cleanup_free_ uint8_t *pub = tpm_test_read("tpm-gce-vtpm/nonce9009.ak_pub.tpmt_public.bin", &pub_len);
        for (size_t n = 0; n < c.attest_len; n++) {
                assert_int_equal(tpmq_attest_parse(c.attest, n, &a), -EBADMSG);
                struct quote_case t = c;
                t.attest_len = n;
                tpmq_reason want = TPMQ_MALFORMED_ATTEST;
                assert_int_equal(verify(&t, NULL, nonce9009, sizeof nonce9009, NULL), want);
        }
        for (size_t n = 0; n < c.sig_len; n++) {
                assert_int_equal(tpmq_signature_parse(c.sig, n, &s), -EBADMSG);
                struct quote_case t = c;
                t.sig_len = n;
                assert_int_equal(verify(&t, NULL, nonce9009, sizeof nonce9009, NULL), TPMQ_MALFORMED_SIGNATURE);
        }
        for (size_t n = 0; n < pub_len; n++)
                assert_int_equal(tpmq_public_parse(pub, n, &k), -EBADMSG);
        /* Trailing bytes are refused too. */
        uint8_t big[512];
        memcpy(big, c.attest, c.attest_len);
        big[c.attest_len] = 0;
        assert_int_equal(tpmq_attest_parse(big, c.attest_len + 1, &a), -EBADMSG);
        /* A TPM2B size larger than its maximum. */
        memcpy(big, c.attest, c.attest_len);
        big[6] = 0xff;
        assert_int_equal(tpmq_attest_parse(big, c.attest_len, &a), -EBADMSG);
        /* An unsupported signature scheme. */
        memcpy(big, c.sig, c.sig_len);
        big[1] = 0x1c; /* TPM_ALG_SM2 */
        assert_int_equal(tpmq_signature_parse(big, c.sig_len, &s), -EOPNOTSUPP);
}

static void test_pcr_text(void **state) {
        (void) state;
        tpmq_pcr_bank b;
        unsigned line = 0;
        const char ok[] = "0 0000000000000000000000000000000000000000\n\n5 ffffffffffffffffffffffffffffffffffffffff\n";
        assert_int_equal(tpmq_pcr_bank_parse_text(ok, strlen(ok), TPM_ALG_SHA1, &b, &line), 0);
        assert_true(b.present[0] && b.present[5] && !b.present[1]);
        const char dup[] = "0 0000000000000000000000000000000000000000\n0 0000000000000000000000000000000000000000\n";
        assert_int_equal(tpmq_pcr_bank_parse_text(dup, strlen(dup), TPM_ALG_SHA1, &b, &line), -EBADMSG);
        assert_int_equal(line, 2);
        const char shortv[] = "1 00\n";
        assert_int_equal(tpmq_pcr_bank_parse_text(shortv, strlen(shortv), TPM_ALG_SHA1, &b, &line), -EBADMSG);
        assert_int_equal(line, 1);
        const char idx[] = "24 0000000000000000000000000000000000000000\n";
        assert_int_equal(tpmq_pcr_bank_parse_text(idx, strlen(idx), TPM_ALG_SHA1, &b, &line), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gce_all_banks_verify), cmocka_unit_test(test_gce_parse_fields),
                cmocka_unit_test(test_azure_verify),         cmocka_unit_test(test_reject_flipped_quote_byte),
                cmocka_unit_test(test_reject_wrong_nonce),   cmocka_unit_test(test_reject_wrong_pcr),
                cmocka_unit_test(test_reject_wrong_ak),      cmocka_unit_test(test_reject_bank_confusion),
                cmocka_unit_test(test_reject_truncated),     cmocka_unit_test(test_pcr_text),
                cmocka_unit_test(test_reject_selection_mismatch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
