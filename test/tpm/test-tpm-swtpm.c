/* SPDX-License-Identifier: Apache-2.0 */
/* ESYS issuing against a real swtpm: the AK as Constellation makes it (persisted at 0x81008F01 and
 * reused), quotes that our verifier accepts, PCR reads, and PCR 15 extension with a cluster ID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "swtpm-util.h"
#include "tpm/tpm.h"

static swtpm tpm_sim;

static int setup(void **state) {
        (void) state;
        return swtpm_start(&tpm_sim) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        (void) state;
        swtpm_stop(&tpm_sim);
        return 0;
}

static tpm_ctx *open_tpm(void) {
        tpm_ctx *t = NULL;
        char *err = NULL;
        int r = tpm_open(tpm_sim.tcti, &t, &err);
        if (r < 0)
                fprintf(stderr, "%s\n", err ?: "tpm_open failed");
        assert_int_equal(r, 0);
        return t;
}

static void test_ak_create_and_reuse(void **state) {
        (void) state;
        _cleanup_free_ uint8_t *pub1 = NULL, *pub2 = NULL;
        size_t len1, len2;
        bool created = false;
        {
                _cleanup_(tpm_closep) tpm_ctx *t = open_tpm();
                assert_int_equal(tpm_ak_load_or_create(t, &created), 0);
                assert_true(created);
                assert_int_equal(tpm_ak_public(t, &pub1, &len1), 0);
        }
        {
                /* A new context (a reboot of the issuer) finds the key at 0x81008F01. */
                _cleanup_(tpm_closep) tpm_ctx *t = open_tpm();
                assert_int_equal(tpm_ak_load_or_create(t, &created), 0);
                assert_false(created);
                assert_int_equal(tpm_ak_public(t, &pub2, &len2), 0);
        }
        assert_memory_equal(pub1, pub2, len1);
        assert_int_equal(len1, len2);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        tpmq_public_info info;
        assert_int_equal(tpmq_public_parse_info(pub1, len1, &k, &info), 0);
        assert_int_equal(info.type, TPM_ALG_RSA);
        assert_int_equal(info.bits, 2048);
        assert_int_equal(info.name_alg, TPM_ALG_SHA256);
        assert_int_equal(info.scheme, TPM_ALG_RSASSA);
        assert_int_equal(info.scheme_hash, TPM_ALG_SHA256);
        /* FlagSignerDefault: sign|restricted|fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth */
        assert_int_equal(info.attributes, 0x00050072);
        assert_true(tpmq_public_is_restricted_signer(&info));
}

static void test_quote_verifies(void **state) {
        (void) state;
        _cleanup_(tpm_closep) tpm_ctx *t = open_tpm();
        _cleanup_free_ uint8_t *pub = NULL;
        size_t pub_len;
        assert_int_equal(tpm_ak_public(t, &pub, &pub_len), 0);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        assert_int_equal(tpmq_public_parse(pub, pub_len, &ak), 0);

        /* Constellation: tpmNonce = SHA-256(instanceInfo || SHA-256(userData || nonce)). */
        uint8_t nonce[32];
        SHA256((const uint8_t *) "nonce", 5, nonce);
        /* Many quotes in a row: a leaked transient object would exhaust swtpm's slots. */
        for (int i = 0; i < 20; i++) {
                tpm_quote_result q = { 0 };
                assert_int_equal(tpm_quote(t, TPM_ALG_SHA256, 0xffffff, nonce, sizeof nonce, &q), 0);
                tpmq_reason reason;
                char *d = NULL;
                assert_int_equal(tpmq_verify_quote(q.attest, q.attest_len, q.sig, q.sig_len, ak, &q.pcrs, nonce,
                                                   sizeof nonce, &reason, &d), 0);
                assert_int_equal(reason, TPMQ_OK);
                nonce[0] ^= 1;
                assert_int_equal(tpmq_verify_quote(q.attest, q.attest_len, q.sig, q.sig_len, ak, &q.pcrs, nonce,
                                                   sizeof nonce, &reason, &d), -EBADMSG);
                assert_int_equal(reason, TPMQ_NONCE_MISMATCH);
                free(d);
                tpm_quote_result_done(&q);
        }
        /* Bad arguments. */
        tpm_quote_result q = { 0 };
        uint8_t big[65] = { 0 };
        assert_int_equal(tpm_quote(t, TPM_ALG_SHA256, 0xffffff, big, sizeof big, &q), -EINVAL);
        assert_int_equal(tpm_quote(t, TPM_ALG_SHA256, 1u << 24, nonce, sizeof nonce, &q), -EINVAL);
}

static void test_banks_and_pcr_read(void **state) {
        (void) state;
        _cleanup_(tpm_closep) tpm_ctx *t = open_tpm();
        uint16_t banks[TPM_MAX_BANKS];
        size_t n = 0;
        assert_int_equal(tpm_get_banks(t, banks, &n), 0);
        bool sha256 = false;
        for (size_t i = 0; i < n; i++)
                sha256 |= banks[i] == TPM_ALG_SHA256;
        assert_true(sha256);
        for (size_t i = 0; i < n; i++) {
                tpmq_pcr_bank b;
                assert_int_equal(tpm_pcr_read(t, banks[i], 0xffffff, &b), 0);
                for (unsigned k = 0; k < TPMQ_NUM_PCRS; k++)
                        assert_true(b.present[k]);
                /* swtpm after startup: PCR 0 is zero, PCR 17-22 are 0xFF.. (PC Client, locality 4 PCRs). */
                assert_int_equal(b.value[0][0], 0);
                assert_int_equal(b.value[17][0], 0xff);
        }
}

static void test_pcr15_cluster_id(void **state) {
        (void) state;
        _cleanup_(tpm_closep) tpm_ctx *t = open_tpm();
        /* Constellation's cluster-ID test vector (reference §5.4). */
        uint8_t cluster_id[32];
        assert_int_equal(hex_decode_exact("128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6",
                                          cluster_id, sizeof cluster_id), 0);
        tpmq_pcr_bank before, after;
        assert_int_equal(tpm_pcr_read(t, TPM_ALG_SHA256, 1u << 15, &before), 0);
        static const uint8_t zero[32];
        assert_memory_equal(before.value[15], zero, 32);
        assert_int_equal(tpm_mark_bootstrapped(t, cluster_id, sizeof cluster_id), 0);
        assert_int_equal(tpm_pcr_read(t, TPM_ALG_SHA256, 1u << 15, &after), 0);
        /* PCR15 = SHA-256(0^32 || SHA-256(clusterID)) */
        uint8_t in[64], want[32];
        memset(in, 0, 32);
        SHA256(cluster_id, sizeof cluster_id, in + 32);
        SHA256(in, sizeof in, want);
        assert_memory_equal(after.value[15], want, 32);

        /* The quote sees it, and the PCR 15 value compared is the verified one. */
        _cleanup_free_ uint8_t *pub = NULL;
        size_t pub_len;
        assert_int_equal(tpm_ak_public(t, &pub, &pub_len), 0);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        assert_int_equal(tpmq_public_parse(pub, pub_len, &ak), 0);
        tpm_quote_result q = { 0 };
        assert_int_equal(tpm_quote(t, TPM_ALG_SHA256, 0xffffff, NULL, 0, &q), 0);
        assert_memory_equal(q.pcrs.value[15], want, 32);
        tpmq_pcr_bank forged = q.pcrs;
        memset(forged.value[15], 0, 32); /* claim a fresh node */
        tpmq_reason reason;
        char *d = NULL;
        assert_int_equal(tpmq_verify_quote(q.attest, q.attest_len, q.sig, q.sig_len, ak, &forged, NULL, 0, &reason, &d),
                         -EBADMSG);
        assert_int_equal(reason, TPMQ_PCR_DIGEST_MISMATCH);
        free(d);
        tpm_quote_result_done(&q);

        /* TPM2_PCR_Extend of one digest into one bank. */
        assert_int_equal(tpm_pcr_extend(t, 16, TPM_ALG_SHA256, want, 32), 0);
        assert_int_equal(tpm_pcr_extend(t, 16, TPM_ALG_SHA256, want, 20), -EINVAL);
        assert_int_equal(tpm_pcr_event(t, 24, want, 32), -EINVAL);
}

static void test_open_errors(void **state) {
        (void) state;
        tpm_ctx *t = NULL;
        char *err = NULL;
        assert_int_equal(tpm_open("swtpm:host=127.0.0.1,port=1", &t, &err), -EIO);
        assert_non_null(err);
        assert_non_null(strstr(err, "port=1"));
        free(err);
        uint8_t *buf = NULL;
        size_t len = 1;
        assert_int_equal(tpm_read_event_log("/nonexistent/binary_bios_measurements", &buf, &len), 0);
        assert_int_equal(len, 0);
        free(buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ak_create_and_reuse), cmocka_unit_test(test_quote_verifies),
                cmocka_unit_test(test_banks_and_pcr_read),  cmocka_unit_test(test_pcr15_cluster_id),
                cmocka_unit_test(test_open_errors),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
