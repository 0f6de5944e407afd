/* SPDX-License-Identifier: Apache-2.0 */
/* Real TPM quotes: GCE Shielded VM vTPM (SHA-1, SHA-256, SHA-384 banks, with and without nonce) and
 * Azure CVM vTPMs (Milan, Genoa) verify; every rejection path fails with its own reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "tpm/quote.h"

static const char *datadir;

static uint8_t *load(const char *name, size_t *len) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", datadir, name);
        uint8_t *buf;
        if (read_full_file(path, 1 << 20, &buf, len) < 0)
                fail_msg("cannot read %s", path);
        return buf;
}

static void load_pcrs(const char *name, uint16_t alg, tpmq_pcr_bank *bank) {
        size_t len;
        _cleanup_free_ uint8_t *txt = load(name, &len);
        *bank = (tpmq_pcr_bank){ .alg = alg };
        char *save = NULL;
        for (char *line = strtok_r((char *) txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned idx;
                char hex[256];
                assert_int_equal(sscanf(line, "%u %255s", &idx, hex), 2);
                assert_true(idx < TPMQ_NUM_PCRS);
                assert_int_equal(hex_decode_exact(hex, bank->value[idx], tpmq_digest_size(alg)), 0);
                bank->present[idx] = true;
        }
}

static EVP_PKEY *ak_from_tpmt(const char *name) {
        size_t len;
        _cleanup_free_ uint8_t *buf = load(name, &len);
        EVP_PKEY *k = NULL;
        assert_int_equal(tpmq_public_parse(buf, len, &k), 0);
        return k;
}

static EVP_PKEY *ak_from_pem(const char *name) {
        size_t len;
        _cleanup_free_ uint8_t *buf = load(name, &len);
        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(buf, (int) len);
        EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        assert_non_null(k);
        return k;
}

static tpmq_reason verify(const char *attest_name, const char *sig_name, EVP_PKEY *ak, const tpmq_pcr_bank *bank,
                          const uint8_t *nonce, size_t nonce_len, char **ret_detail) {
        size_t al, sl;
        _cleanup_free_ uint8_t *attest = load(attest_name, &al);
        _cleanup_free_ uint8_t *sig = load(sig_name, &sl);
        tpmq_reason reason = -1;
        int r = tpmq_verify_quote(attest, al, sig, sl, ak, bank, nonce, nonce_len, &reason, ret_detail);
        assert_int_equal(r, reason == TPMQ_OK ? 0 : -EBADMSG);
        return reason;
}

static const struct {
        const char *name;
        uint16_t alg;
} banks[] = { { "sha1", TPM_ALG_SHA1 }, { "sha256", TPM_ALG_SHA256 }, { "sha384", TPM_ALG_SHA384 } };

static void test_gce_quotes(void **state) {
        static const uint8_t nonce9009[] = { 0x90, 0x09 };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = ak_from_tpmt("tpm-gce-vtpm/nonce9009.ak_pub.tpmt_public.bin");
        /* The TPMT_PUBLIC and the PEM give the same key. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pem = ak_from_pem("tpm-gce-vtpm/nonce9009.ak_pub.pem");
        assert_int_equal(EVP_PKEY_eq(ak, pem), 1);
        for (size_t i = 0; i < ELEMENTSOF(banks); i++)
                for (int with_nonce = 0; with_nonce < 2; with_nonce++) {
                        const char *prefix = with_nonce ? "nonce9009" : "no-nonce";
                        char a[128], s[128], p[128];
                        snprintf(a, sizeof(a), "tpm-gce-vtpm/%s.quote_%s.tpms_attest.bin", prefix, banks[i].name);
                        snprintf(s, sizeof(s), "tpm-gce-vtpm/%s.quote_%s.tpmt_signature.bin", prefix, banks[i].name);
                        snprintf(p, sizeof(p), "tpm-gce-vtpm/%s.pcrs_%s.txt", prefix, banks[i].name);
                        tpmq_pcr_bank bank;
                        load_pcrs(p, banks[i].alg, &bank);
                        _cleanup_free_ char *detail = NULL;
                        tpmq_reason r = verify(a, s, ak, &bank, with_nonce ? nonce9009 : NULL, with_nonce ? 2 : 0, &detail);
                        if (r != TPMQ_OK)
                                fail_msg("%s: %s", a, detail ?: "?");
                }
        /* The parsed quote carries the fields SOURCE.md lists. */
        size_t al;
        _cleanup_free_ uint8_t *attest = load("tpm-gce-vtpm/nonce9009.quote_sha256.tpms_attest.bin", &al);
        tpmq_attest q;
        assert_int_equal(tpmq_attest_parse(attest, al, &q), 0);
        assert_int_equal(q.firmware_version, 0x2016051100162800ULL);
        assert_int_equal(q.clock, 8219159552ULL);
        assert_int_equal(q.reset_count, 10);
        assert_int_equal(q.selections[0].mask, 0xffffff);
}

static void test_azure_quotes(void **state) {
        static const struct {
                const char *dir, *nonce_hex;
        } vms[] = {
                { "azure-milan-vtpm-v2",
                  "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef" },
                { "azure-genoa-vtpm",
                  "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f" },
        };
        for (size_t i = 0; i < ELEMENTSOF(vms); i++) {
                char a[256], s[256], p[256], k[256];
                snprintf(a, sizeof(a), "%s/quote_msg.tpms_attest.bin", vms[i].dir);
                snprintf(s, sizeof(s), "%s/quote_sig.rsassa.bin", vms[i].dir);
                snprintf(p, sizeof(p), "%s/pcrs_sha256.txt", vms[i].dir);
                snprintf(k, sizeof(k), "%s/ak_pub.pem", vms[i].dir);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = ak_from_pem(k);
                tpmq_pcr_bank bank;
                load_pcrs(p, TPM_ALG_SHA256, &bank);
                uint8_t nonce[48];
                assert_int_equal(hex_decode_exact(vms[i].nonce_hex, nonce, 48), 0);
                /* Azure's quote_sig is a bare RSASSA signature: wrap it as a TPMT_SIGNATURE. */
                size_t sl;
                _cleanup_free_ uint8_t *raw = load(s, &sl);
                uint8_t tpmt[6 + 512] = { 0x00, 0x14, 0x00, 0x0b, (uint8_t) (sl >> 8), (uint8_t) sl };
                assert_true(sl <= 512);
                memcpy(tpmt + 6, raw, sl);
                size_t al;
                _cleanup_free_ uint8_t *attest = load(a, &al);
                tpmq_reason reason;
                _cleanup_free_ char *detail = NULL;
                if (tpmq_verify_quote(attest, al, tpmt, 6 + sl, ak, &bank, nonce, 48, &reason, &detail) < 0)
                        fail_msg("%s: %s", vms[i].dir, detail);
        }
}

static void test_rejections(void **state) {
        static const uint8_t nonce9009[] = { 0x90, 0x09 };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = ak_from_tpmt("tpm-gce-vtpm/nonce9009.ak_pub.tpmt_public.bin");
        tpmq_pcr_bank sha256, sha1;
        load_pcrs("tpm-gce-vtpm/nonce9009.pcrs_sha256.txt", TPM_ALG_SHA256, &sha256);
        load_pcrs("tpm-gce-vtpm/nonce9009.pcrs_sha1.txt", TPM_ALG_SHA1, &sha1);
        const char *A = "tpm-gce-vtpm/nonce9009.quote_sha256.tpms_attest.bin", *S = "tpm-gce-vtpm/nonce9009.quote_sha256.tpmt_signature.bin";

        /* Wrong nonce (replay of an old quote). */
        static const uint8_t other[] = { 0x90, 0x0a };
        assert_int_equal(verify(A, S, ak, &sha256, other, 2, NULL), TPMQ_NONCE_MISMATCH);
        /* Quote-bank confusion: a valid SHA-1 quote offered for SHA-256 PCR values is refused. */
        _cleanup_free_ char *d1 = NULL;
        assert_int_equal(verify("tpm-gce-vtpm/nonce9009.quote_sha1.tpms_attest.bin", "tpm-gce-vtpm/nonce9009.quote_sha1.tpmt_signature.bin", ak,
                                &sha256, nonce9009, 2, &d1),
                         TPMQ_BANK_MISMATCH);
        assert_string_equal(d1, "quote covers a different PCR bank than the PCR values compared: quote selects sha1, "
                                "PCR values given are sha256");
        /* A changed PCR value. */
        tpmq_pcr_bank changed = sha256;
        changed.value[4][0] ^= 1;
        _cleanup_free_ char *d2 = NULL;
        assert_int_equal(verify(A, S, ak, &changed, nonce9009, 2, &d2), TPMQ_PCR_DIGEST_MISMATCH);
        assert_non_null(strstr(d2, "quoted 048937cbaaf28af85a5b0c0997e725097a0d94e05fcda104a82ee3fb6b2e1808"));
        /* A missing PCR value. */
        changed = sha256;
        changed.present[7] = false;
        _cleanup_free_ char *d3 = NULL;
        assert_int_equal(verify(A, S, ak, &changed, nonce9009, 2, &d3), TPMQ_PCR_MISSING);
        assert_string_equal(d3, "quote selects a PCR whose value was not provided: PCR 7 (sha256)");
        /* Wrong attestation key. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *azure_ak = ak_from_pem("azure-milan-vtpm-v2/ak_pub.pem");
        assert_int_equal(verify(A, S, azure_ak, &sha256, nonce9009, 2, NULL), TPMQ_SIGNATURE_INVALID);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_int_equal(verify(A, S, ec, &sha256, nonce9009, 2, NULL), TPMQ_BAD_KEY);

        size_t al, sl;
        _cleanup_free_ uint8_t *attest = load(A, &al);
        _cleanup_free_ uint8_t *sig = load(S, &sl);
        tpmq_reason reason;
        /* A flipped byte in the signed quote (clock). */
        attest[30] ^= 0x01;
        assert_int_equal(tpmq_verify_quote(attest, al, sig, sl, ak, &sha256, nonce9009, 2, &reason, NULL), -EBADMSG);
        assert_int_equal(reason, TPMQ_SIGNATURE_INVALID);
        attest[30] ^= 0x01;
        /* Not made by a TPM (magic), not a quote (type). */
        attest[0] ^= 0xff;
        assert_int_equal(tpmq_verify_quote(attest, al, sig, sl, ak, &sha256, nonce9009, 2, &reason, NULL), -EBADMSG);
        assert_int_equal(reason, TPMQ_NOT_GENERATED);
        attest[0] ^= 0xff;
        attest[5] = 0x17; /* TPM_ST_ATTEST_CERTIFY */
        assert_int_equal(tpmq_verify_quote(attest, al, sig, sl, ak, &sha256, nonce9009, 2, &reason, NULL), -EBADMSG);
        assert_int_equal(reason, TPMQ_NOT_A_QUOTE);
        attest[5] = 0x18;
        /* Truncated structures, at every length. */
        for (size_t n = 0; n < al; n++) {
                assert_int_equal(tpmq_verify_quote(attest, n, sig, sl, ak, &sha256, nonce9009, 2, &reason, NULL), -EBADMSG);
                assert_int_equal(reason, TPMQ_MALFORMED_ATTEST);
        }
        for (size_t n = 0; n < sl; n++) {
                assert_int_equal(tpmq_verify_quote(attest, al, sig, n, ak, &sha256, nonce9009, 2, &reason, NULL), -EBADMSG);
                assert_int_equal(reason, TPMQ_MALFORMED_SIGNATURE);
        }
        size_t pl;
        _cleanup_free_ uint8_t *pub = load("tpm-gce-vtpm/nonce9009.ak_pub.tpmt_public.bin", &pl);
        for (size_t n = 0; n < pl; n++) {
                EVP_PKEY *k = NULL;
                assert_int_equal(tpmq_public_parse(pub, n, &k), -EBADMSG);
        }
        assert_int_equal(verify(A, S, ak, &sha1, nonce9009, 2, NULL), TPMQ_BANK_MISMATCH);
}

/* An ECDSA-signed quote: built here with a P-256 key over the real GCE TPMS_ATTEST bytes, to cover
 * the ECDSA TPMT_SIGNATURE form (r and s as TPM2B). */
static void test_ecdsa_signature_form(void **state) {
        static const uint8_t nonce9009[] = { 0x90, 0x09 };
        size_t al;
        _cleanup_free_ uint8_t *attest = load("tpm-gce-vtpm/nonce9009.quote_sha256.tpms_attest.bin", &al);
        tpmq_pcr_bank bank;
        load_pcrs("tpm-gce-vtpm/nonce9009.pcrs_sha256.txt", TPM_ALG_SHA256, &bank);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t der[128];
        size_t dl = sizeof(der);
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &dl, attest, al), 1);
        const unsigned char *p = der;
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long) dl);
        uint8_t tpmt[4 + 2 + 32 + 2 + 32] = { 0x00, 0x18, 0x00, 0x0b, 0x00, 0x20 };
        BN_bn2binpad(ECDSA_SIG_get0_r(es), tpmt + 6, 32);
        tpmt[38] = 0x00;
        tpmt[39] = 0x20;
        BN_bn2binpad(ECDSA_SIG_get0_s(es), tpmt + 40, 32);
        tpmq_reason reason;
        assert_int_equal(tpmq_verify_quote(attest, al, tpmt, sizeof(tpmt), key, &bank, nonce9009, 2, &reason, NULL), 0);
        tpmt[50] ^= 1;
        assert_int_equal(tpmq_verify_quote(attest, al, tpmt, sizeof(tpmt), key, &bank, nonce9009, 2, &reason, NULL),
                         -EBADMSG);
        assert_int_equal(reason, TPMQ_SIGNATURE_INVALID);
}

int main(int argc, char **argv) {
        datadir = argc > 1 ? argv[1] : "data";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gce_quotes),
                cmocka_unit_test(test_azure_quotes),
                cmocka_unit_test(test_rejections),
                cmocka_unit_test(test_ecdsa_signature_form),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
