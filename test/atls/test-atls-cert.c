/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS certificates and the dummy variant: the certificate shape Constellation produces, and
 * every refusal of processCertificate/verifyEmbeddedReport with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "atls/atls.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "x509/x509.h"

static uint8_t nonce[ATLS_NONCE_SIZE], other_nonce[ATLS_NONCE_SIZE];

static int setup(void **state) {
        (void) state;
        RAND_bytes(nonce, sizeof(nonce));
        RAND_bytes(other_nonce, sizeof(other_nonce));
        return 0;
}

static X509 *make_cert(const atls_issuer *issuer, const uint8_t *n, EVP_PKEY **ret_key) {
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_certificate_new(issuer, n, ATLS_NONCE_SIZE, &key, &cert, &err), 0);
        assert_int_equal(err.reason, ATLS_REASON_OK);
        if (ret_key)
                *ret_key = key;
        else
                EVP_PKEY_free(key);
        return cert;
}

static void expect_refusal(X509 *cert, const atls_validator *v, size_t n, const uint8_t *want_nonce,
                           atls_reason reason, const char *detail_part) {
        atls_error err = { 0 };
        int r = atls_certificate_verify(cert, v, n, want_nonce, ATLS_NONCE_SIZE, NULL, &err);
        if (r != -EPERM || err.reason != reason || !strstr(err.detail, detail_part))
                fail_msg("expected %s (\"%s\"), got r=%d %s: %s", atls_reason_to_string(reason), detail_part, r,
                         atls_reason_to_string(err.reason), err.detail);
}

/* Constellation's getCertificate: CN Constellation, self-issued, ±2 h, P-256, no EKU/SAN, one
 * non-critical extension under the variant OID holding the document. */
static void test_certificate_shape(void **state) {
        (void) state;
        atls_issuer iss = atls_dummy_issuer();
        _cleanup_(X509_freep) X509 *cert = make_cert(&iss, nonce, NULL);

        char cn[64];
        assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0);
        assert_string_equal(cn, "Constellation");
        assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
        EVP_PKEY *pub = X509_get0_pubkey(cert);
        char group[32];
        size_t glen;
        assert_true(EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen));
        assert_string_equal(group, "prime256v1");
        int diff_day, diff_sec;
        assert_true(ASN1_TIME_diff(&diff_day, &diff_sec, X509_get0_notBefore(cert), X509_get0_notAfter(cert)));
        assert_int_equal(diff_day * 86400 + diff_sec, 4 * 3600);
        assert_int_equal(X509_get_ext_by_NID(cert, NID_ext_key_usage, -1), -1);
        assert_int_equal(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1), -1);
        assert_int_equal(X509_get_ext_count(cert), 1);
        X509_EXTENSION *ext = X509_get_ext(cert, 0);
        assert_int_equal(X509_EXTENSION_get_critical(ext), 0);
        char oid[64];
        OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
        assert_string_equal(oid, "1.3.9900.1.1");

        /* The document is FakeAttestationDoc JSON binding SHA-256(SPKI) and the nonce. */
        uint8_t spki[ATLS_USER_DATA_SIZE];
        assert_int_equal(atls_spki_hash(cert, spki), 0);
        _cleanup_free_ char *ud = base64_encode(spki, sizeof(spki), BASE64_STD);
        _cleanup_free_ char *nb = base64_encode(nonce, sizeof(nonce), BASE64_STD);
        char want[256];
        snprintf(want, sizeof(want), "{\"UserData\":\"%s\",\"Nonce\":\"%s\"}", ud, nb);
        ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(ext);
        assert_int_equal(ASN1_STRING_length(data), strlen(want));
        assert_memory_equal(ASN1_STRING_get0_data(data), want, strlen(want));

        /* Each certificate has its own key. */
        _cleanup_(X509_freep) X509 *second = make_cert(&iss, nonce, NULL);
        uint8_t spki2[ATLS_USER_DATA_SIZE];
        assert_int_equal(atls_spki_hash(second, spki2), 0);
        assert_memory_not_equal(spki, spki2, sizeof(spki));
}

static void test_verify_accepts(void **state) {
        (void) state;
        atls_issuer iss = atls_dummy_issuer();
        atls_validator vals[2] = { { .oid = ATLS_OID_QEMU_VTPM, .name = "other" }, atls_dummy_validator() };
        vals[0].validate = vals[1].validate; /* never reached: OID differs */
        _cleanup_(X509_freep) X509 *cert = make_cert(&iss, nonce, NULL);
        atls_error err = { 0 };
        int idx = -2;
        assert_int_equal(atls_certificate_verify(cert, vals, 2, nonce, sizeof(nonce), &idx, &err), 0);
        assert_int_equal(idx, 1);
        /* No validators: only the self-signed check (Constellation's verifier without validators). */
        _cleanup_(X509_freep) X509 *plain = make_cert(NULL, NULL, NULL);
        assert_int_equal(atls_certificate_verify(plain, NULL, 0, NULL, 0, &idx, &err), 0);
        assert_int_equal(idx, -1);
        assert_int_equal(X509_get_ext_count(plain), 0);
}

static void test_missing_extension(void **state) {
        (void) state;
        atls_validator v = atls_dummy_validator();
        _cleanup_(X509_freep) X509 *plain = make_cert(NULL, NULL, NULL);
        expect_refusal(plain, &v, 1, nonce, ATLS_REASON_NO_EVIDENCE,
                       "certificate does not contain compatible attestation documents (expected dummy (1.3.9900.1.1))");
        /* Evidence of another variant counts as missing too. */
        atls_issuer iss = atls_dummy_issuer();
        iss.oid = ATLS_OID_QEMU_VTPM;
        _cleanup_(X509_freep) X509 *other = make_cert(&iss, nonce, NULL);
        expect_refusal(other, &v, 1, nonce, ATLS_REASON_NO_EVIDENCE, "compatible attestation documents");
}

static void test_replayed_document(void **state) {
        (void) state;
        atls_issuer iss = atls_dummy_issuer();
        atls_validator v = atls_dummy_validator();
        _cleanup_(X509_freep) X509 *cert = make_cert(&iss, other_nonce, NULL);
        expect_refusal(cert, &v, 1, nonce, ATLS_REASON_EVIDENCE_NONCE, "invalid nonce: expected ");
}

/* A relay presents its own key with a genuine document that binds the real node's key. */
static void test_relay_other_key(void **state) {
        (void) state;
        atls_issuer iss = atls_dummy_issuer();
        atls_validator v = atls_dummy_validator();
        _cleanup_(X509_freep) X509 *genuine = make_cert(&iss, nonce, NULL);
        ASN1_OCTET_STRING *doc = X509_EXTENSION_get_data(X509_get_ext(genuine, 0));

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *relay_key = NULL;
        _cleanup_(X509_freep) X509 *relay = NULL;
        x509_params p = { .common_name = "Constellation", .not_before_offset_s = -60, .lifetime_s = 3600,
                          .extra_oid = ATLS_OID_DUMMY, .extra_value = ASN1_STRING_get0_data(doc),
                          .extra_value_len = (size_t) ASN1_STRING_length(doc) };
        assert_int_equal(x509_issue(&p, &relay_key, &relay, NULL, NULL), 0);
        expect_refusal(relay, &v, 1, nonce, ATLS_REASON_KEY_MISMATCH, "but the certificate's key hash is");
}

static void test_bad_certificates(void **state) {
        (void) state;
        atls_issuer iss = atls_dummy_issuer();
        atls_validator v = atls_dummy_validator();
        atls_error err = { 0 };

        assert_int_equal(atls_certificate_verify(NULL, &v, 1, nonce, sizeof(nonce), NULL, &err), -EPERM);
        assert_int_equal(err.reason, ATLS_REASON_NO_CERTIFICATE);

        /* Expired: re-signed by its own key so only the validity window is wrong. */
        EVP_PKEY *key;
        _cleanup_(X509_freep) X509 *cert = make_cert(&iss, nonce, &key);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = key;
        X509_gmtime_adj(X509_getm_notAfter(cert), -60);
        assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
        expect_refusal(cert, &v, 1, nonce, ATLS_REASON_CERTIFICATE, "expired");
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_gmtime_adj(X509_getm_notBefore(cert), 600);
        assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
        expect_refusal(cert, &v, 1, nonce, ATLS_REASON_CERTIFICATE, "not yet valid");

        /* Signed by another key (a CA-issued or tampered certificate is not self-signed). */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *other = EVP_EC_gen("P-256");
        X509_gmtime_adj(X509_getm_notBefore(cert), -60);
        assert_true(X509_sign(cert, other, EVP_sha256()) > 0);
        expect_refusal(cert, &v, 1, nonce, ATLS_REASON_CERTIFICATE, "not validly self-signed");

        /* The evidence extension marked critical: Go's Verify refuses unhandled critical ones. */
        EVP_PKEY *key2;
        _cleanup_(X509_freep) X509 *crit = make_cert(&iss, nonce, &key2);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k2 = key2;
        X509_EXTENSION_set_critical(X509_get_ext(crit, 0), 1);
        assert_true(X509_sign(crit, key2, EVP_sha256()) > 0);
        _cleanup_(X509_freep) X509 *reparsed = NULL;
        {
                unsigned char *der = NULL;
                int n = i2d_X509(crit, &der);
                const unsigned char *p = der;
                reparsed = d2i_X509(NULL, &p, n);
                OPENSSL_free(der);
        }
        expect_refusal(reparsed, &v, 1, nonce, ATLS_REASON_CERTIFICATE, "unhandled critical extension");
}

static void test_dummy_documents(void **state) {
        (void) state;
        atls_validator v = atls_dummy_validator();
        atls_error err;
        uint8_t *ud = NULL;
        size_t ud_len;
        static const uint8_t n3[3] = { 1, 2, 3 };
        const char *ok = "{\"UserData\":\"aGVsbG8=\",\"Nonce\":\"AQID\"}";
        err = (atls_error) { 0 };
        assert_int_equal(v.validate(NULL, (const uint8_t *) ok, strlen(ok), n3, 3, &ud, &ud_len, &err), 0);
        assert_int_equal(ud_len, 5);
        assert_memory_equal(ud, "hello", 5);
        free(ud);

        static const struct {
                const char *doc;
                atls_reason reason;
                const char *detail;
        } bad[] = {
                { "", ATLS_REASON_EVIDENCE_MALFORMED, "not a JSON object" },
                { "[1]", ATLS_REASON_EVIDENCE_MALFORMED, "not a JSON object" },
                { "{\"UserData\":5,\"Nonce\":\"AQID\"}", ATLS_REASON_EVIDENCE_MALFORMED, "UserData is not a string" },
                { "{\"UserData\":\"!!\",\"Nonce\":\"AQID\"}", ATLS_REASON_EVIDENCE_MALFORMED, "UserData is not base64" },
                { "{\"UserData\":\"aGVsbG8=\",\"Nonce\":\"AQIE\"}", ATLS_REASON_EVIDENCE_NONCE,
                  "invalid nonce: expected 010203, got 010204" },
                { "{\"UserData\":\"aGVsbG8=\"}", ATLS_REASON_EVIDENCE_NONCE, "invalid nonce" },
                { "{\"Nonce\":\"AQID\",\"Nonce\":\"AQID\"}", ATLS_REASON_EVIDENCE_MALFORMED, "not a JSON object" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                err = (atls_error) { 0 };
                ud = NULL;
                int r = v.validate(NULL, (const uint8_t *) bad[i].doc, strlen(bad[i].doc), n3, 3, &ud, &ud_len, &err);
                if (r != -EPERM || err.reason != bad[i].reason || !strstr(err.detail, bad[i].detail))
                        fail_msg("doc %zu: r=%d %s: %s", i, r, atls_reason_to_string(err.reason), err.detail);
                assert_null(ud);
        }
}

static void test_reason_names(void **state) {
        (void) state;
        for (int r = 0; r < _ATLS_REASON_MAX; r++)
                assert_string_not_equal(atls_reason_to_string((atls_reason) r), "unknown");
        assert_string_equal(atls_reason_to_string(_ATLS_REASON_MAX), "unknown");
        assert_string_equal(atls_reason_to_string(ATLS_REASON_KEY_MISMATCH), "key-mismatch");
        /* The first reason set wins, so an inner validator's reason is not overwritten. */
        atls_error e = { 0 };
        assert_int_equal(atls_error_set(&e, ATLS_REASON_EVIDENCE_NONCE, "inner"), -EPERM);
        assert_int_equal(atls_error_set(&e, ATLS_REASON_EVIDENCE_MALFORMED, "outer"), -EPERM);
        assert_int_equal(e.reason, ATLS_REASON_EVIDENCE_NONCE);
        assert_string_equal(e.detail, "inner");
        assert_int_equal(atls_error_set(NULL, ATLS_REASON_TIMEOUT, "x"), -ETIMEDOUT);
}

/* An issuer that fails, and one that returns an oversized document. */
static int failing_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd, size_t *rl,
                         atls_error *err) {
        return atls_error_set(err, ATLS_REASON_ISSUE, "TPM unavailable");
}
static int huge_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd, size_t *rl,
                      atls_error *err) {
        *rd = calloc(1, ATLS_MAX_DOCUMENT_SIZE + 1);
        *rl = ATLS_MAX_DOCUMENT_SIZE + 1;
        return 0;
}

static void test_issuer_failures(void **state) {
        (void) state;
        atls_issuer iss = { .oid = ATLS_OID_DUMMY, .name = "broken", .issue = failing_issue };
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_certificate_new(&iss, nonce, sizeof(nonce), &key, &cert, &err), -EIO);
        assert_int_equal(err.reason, ATLS_REASON_ISSUE);
        assert_string_equal(err.detail, "TPM unavailable");
        assert_null(key);
        iss.issue = huge_issue;
        err = (atls_error) { 0 };
        assert_int_equal(atls_certificate_new(&iss, nonce, sizeof(nonce), &key, &cert, &err), -EIO);
        assert_non_null(strstr(err.detail, "out of range"));
        iss.issue = atls_dummy_issuer().issue;
        iss.oid = "not-an-oid";
        err = (atls_error) { 0 };
        assert_int_equal(atls_certificate_new(&iss, nonce, sizeof(nonce), &key, &cert, &err), -EINVAL);
        assert_int_equal(err.reason, ATLS_REASON_INVALID_ARGUMENT);
        assert_string_equal(err.detail, "aTLS certificate: bad OID not-an-oid");
        assert_null(key);
        iss.oid = NULL;
        err = (atls_error) { 0 };
        assert_int_equal(atls_certificate_new(&iss, nonce, sizeof(nonce), &key, &cert, &err), -EINVAL);
        assert_int_equal(err.reason, ATLS_REASON_INVALID_ARGUMENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_certificate_shape),   cmocka_unit_test(test_verify_accepts),
                cmocka_unit_test(test_missing_extension),   cmocka_unit_test(test_replayed_document),
                cmocka_unit_test(test_relay_other_key),     cmocka_unit_test(test_bad_certificates),
                cmocka_unit_test(test_dummy_documents),     cmocka_unit_test(test_reason_names),
                cmocka_unit_test(test_issuer_failures),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
