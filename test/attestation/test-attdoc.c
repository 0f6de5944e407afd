/* SPDX-License-Identifier: Apache-2.0 */
/* Constellation's qemu-vtpm attestation document issued from a real swtpm and validated, with a
 * test per refusal: replayed nonce, wrong user data, tampered PCR, bank confusion, wrong or
 * unrestricted AK, event log mismatch, measurements (enforced and warnOnly), malformed JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "attestation/issue.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "swtpm-util.h"
#include "tpm/eventlog.h"
#include "tpm/tpm.h"

static swtpm tpm_sim;
static const attdoc_policy allow_empty = { .allow_empty_policy = true };
static const uint8_t user_data[] = "sha256 of the aTLS public key...";
static const uint8_t nonce[] = "client nonce 0123456789abcdef";

static int setup(void **state) {
        (void) state;
        return swtpm_start(&tpm_sim) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        (void) state;
        swtpm_stop(&tpm_sim);
        return 0;
}

static char *issue(void) {
        char *json = NULL, *err = NULL;
        size_t len = 0;
        int r = attdoc_issue_qemu_vtpm(tpm_sim.tcti, user_data, sizeof user_data, nonce, sizeof nonce, &json, &len, &err);
        if (r < 0)
                fprintf(stderr, "issue: %s\n", err ?: strerror(-r));
        assert_int_equal(r, 0);
        assert_int_equal(strlen(json), len);
        return json;
}

static attdoc_reason validate_full(const char *json, const uint8_t *n, size_t nl, const attdoc_measurement *m,
                                   size_t nm, attdoc_verdict *ret) {
        /* No measurements here means the test checks the document's other parts: opt in. */
        attdoc_policy p = { m, nm, nm == 0 };
        int r = attdoc_validate_qemu_vtpm(json, strlen(json), n, nl, user_data, sizeof user_data, &p, ret);
        if (ret->reason == ATTDOC_OK) {
                assert_int_equal(r, 0);
                assert_null(ret->detail);
        } else {
                assert_true(r == -EBADMSG || r == -EPERM);
                assert_non_null(ret->detail);
        }
        return ret->reason;
}

static attdoc_reason validate(const char *json, attdoc_verdict *ret) {
        return validate_full(json, nonce, sizeof nonce, NULL, 0, ret);
}

static json_t *load(const char *json) {
        json_t *j = json_loads(json, 0, NULL);
        assert_non_null(j);
        return j;
}

static char *dump(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        assert_non_null(s);
        return s;
}

static json_t *sha256_quote(json_t *doc) {
        json_t *quotes = json_object_get(json_object_get(doc, "Attestation"), "quotes"), *q;
        size_t i;
        json_array_foreach(quotes, i, q) if (json_integer_value(json_object_get(json_object_get(q, "pcrs"), "hash")) == 11) return q;
        fail();
        return NULL;
}

static void test_issue_and_validate(void **state) {
        (void) state;
        _cleanup_free_ char *json = issue();
        /* Constellation's shape (reference §4.1). */
        _cleanup_(json_decrefp) json_t *doc = load(json);
        json_t *att = json_object_get(doc, "Attestation");
        assert_true(json_is_string(json_object_get(att, "ak_pub")));
        assert_true(json_is_array(json_object_get(att, "quotes")));
        assert_true(json_is_null(json_object_get(doc, "InstanceInfo")));
        assert_true(json_is_string(json_object_get(doc, "UserData")));
        assert_null(json_object_get(att, "event_log")); /* swtpm: none, omitted as Go's omitempty does */
        json_t *q = sha256_quote(doc);
        assert_int_equal(json_object_size(json_object_get(json_object_get(q, "pcrs"), "pcrs")), 24);
        /* Go encoding/json sorts map keys as strings: "0","1","10",... */
        assert_non_null(strstr(json, "{\"0\":"));
        assert_non_null(strstr(json, "\"1\":\"") < strstr(json, "\"10\":\"") ? json : NULL);

        attdoc_verdict v;
        assert_int_equal(validate(json, &v), ATTDOC_OK);
        assert_int_equal(v.user_data_len, sizeof user_data);
        assert_memory_equal(v.user_data, user_data, sizeof user_data);
        attdoc_verdict_done(&v);
        /* Without an expected user data the caller gets it back. */
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, NULL, 0, &allow_empty, &v), 0);
        assert_memory_equal(v.user_data, user_data, sizeof user_data);
        attdoc_verdict_done(&v);
}

static void test_replayed_nonce_and_user_data(void **state) {
        (void) state;
        _cleanup_free_ char *json = issue();
        attdoc_verdict v;
        static const uint8_t other[] = "another client's nonce";
        assert_int_equal(validate_full(json, other, sizeof other, NULL, 0, &v), ATTDOC_QUOTE_INVALID);
        assert_int_equal(v.quote_reason, TPMQ_NONCE_MISMATCH);
        assert_non_null(strstr(v.detail, "replayed"));
        attdoc_verdict_done(&v);

        /* The caller expects other user data (a relay presenting another key). */
        static const uint8_t other_ud[] = "sha256 of the relay's key.......";
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, other_ud, sizeof other_ud,
                                                   &allow_empty, &v), -EPERM);
        assert_int_equal(v.reason, ATTDOC_USER_DATA_MISMATCH);
        attdoc_verdict_done(&v);

        /* UserData swapped inside the document: no longer bound by the quote's nonce. */
        _cleanup_(json_decrefp) json_t *doc = load(json);
        _cleanup_free_ char *b64 = base64_encode(other_ud, sizeof other_ud, BASE64_STD);
        json_object_set_new(doc, "UserData", json_string(b64));
        _cleanup_free_ char *swapped = dump(doc);
        assert_int_equal(attdoc_validate_qemu_vtpm(swapped, strlen(swapped), nonce, sizeof nonce, NULL, 0, &allow_empty, &v),
                         -EBADMSG);
        assert_int_equal(v.reason, ATTDOC_QUOTE_INVALID);
        assert_int_equal(v.quote_reason, TPMQ_NONCE_MISMATCH);
        attdoc_verdict_done(&v);
}

static void test_measurements(void **state) {
        (void) state;
        /* Mark the node bootstrapped first: PCR 15 becomes non-zero. */
        {
                tpm_ctx *t = NULL;
                assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
                assert_int_equal(tpm_mark_bootstrapped(t, (const uint8_t *) "cluster-id", 10), 0);
                tpm_close(t);
        }
        _cleanup_free_ char *json = issue();
        attdoc_measurement m[3] = {
                { .index = 0, .expected_len = 32 },                    /* PCR 0 is zero on swtpm */
                { .index = 15, .expected_len = 32 },                   /* Constellation: 0 = fresh node */
                { .index = 4, .expected_len = 32, .warn_only = true }, /* warn only */
        };
        m[2].expected[0] = 0x51;
        attdoc_verdict v;
        assert_int_equal(validate_full(json, nonce, sizeof nonce, m, 1, &v), ATTDOC_OK);
        assert_int_equal(v.warn_mask, 0);
        attdoc_verdict_done(&v);
        assert_int_equal(validate_full(json, nonce, sizeof nonce, m, 2, &v), ATTDOC_MEASUREMENT_MISMATCH);
        assert_non_null(strstr(v.detail, "at index 15"));
        attdoc_verdict_done(&v);
        m[1].warn_only = true;
        assert_int_equal(validate_full(json, nonce, sizeof nonce, m, 3, &v), ATTDOC_OK);
        assert_int_equal(v.warn_mask, (1u << 15) | (1u << 4));
        assert_non_null(strstr(v.warnings, "PCR 4"));
        attdoc_verdict_done(&v);
        attdoc_measurement missing = { .index = 30, .expected_len = 32 };
        assert_int_equal(validate_full(json, nonce, sizeof nonce, &missing, 1, &v), ATTDOC_MEASUREMENT_MISSING);
        attdoc_verdict_done(&v);
}

static void test_tampered_pcr_and_bank_confusion(void **state) {
        (void) state;
        _cleanup_free_ char *json = issue();
        attdoc_verdict v;
        /* A PCR value in the SHA-256 map changed. */
        {
                _cleanup_(json_decrefp) json_t *doc = load(json);
                json_t *pcrs = json_object_get(json_object_get(sha256_quote(doc), "pcrs"), "pcrs");
                static const uint8_t zero[32] = { 1 };
                _cleanup_free_ char *b64 = base64_encode(zero, 32, BASE64_STD);
                json_object_set_new(pcrs, "4", json_string(b64));
                _cleanup_free_ char *s = dump(doc);
                assert_int_equal(validate(s, &v), ATTDOC_QUOTE_INVALID);
                assert_int_equal(v.quote_reason, TPMQ_PCR_DIGEST_MISMATCH);
                attdoc_verdict_done(&v);
        }
        /* No SHA-256 quote at all: other banks do not vouch for SHA-256 measurements. */
        {
                _cleanup_(json_decrefp) json_t *doc = load(json);
                json_t *quotes = json_object_get(json_object_get(doc, "Attestation"), "quotes"), *q;
                size_t i;
                json_array_foreach(quotes, i, q) if (json_integer_value(json_object_get(json_object_get(q, "pcrs"), "hash")) == 11) {
                        json_array_remove(quotes, i);
                        break;
                }
                _cleanup_free_ char *s = dump(doc);
                assert_int_equal(validate(s, &v), ATTDOC_NO_SHA256_QUOTE);
                attdoc_verdict_done(&v);
        }
        /* Bank confusion: a genuine quote of another bank relabelled as the SHA-256 entry, with
         * SHA-256 PCR values the attacker chose. */
        {
                tpm_ctx *t = NULL;
                assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
                uint16_t banks[TPM_MAX_BANKS];
                size_t n = 0;
                assert_int_equal(tpm_get_banks(t, banks, &n), 0);
                uint16_t other = 0;
                for (size_t i = 0; i < n; i++)
                        if (banks[i] != TPM_ALG_SHA256)
                                other = banks[i];
                if (other == 0) {
                        tpm_close(t);
                        fprintf(stderr, "swtpm has only the SHA-256 bank: bank confusion checked in test-tpm-quote\n");
                        return;
                }
                uint8_t extra[32], tn[32];
                assert_int_equal(attdoc_make_extra_data(user_data, sizeof user_data, nonce, sizeof nonce, extra), 0);
                assert_int_equal(attdoc_make_tpm_nonce(NULL, 0, extra, tn), 0);
                tpm_quote_result q = { 0 };
                assert_int_equal(tpm_quote(t, other, 0xffffff, tn, sizeof tn, &q), 0);
                tpm_close(t);
                _cleanup_(json_decrefp) json_t *doc = load(json);
                json_t *sq = sha256_quote(doc);
                _cleanup_free_ char *qb = base64_encode(q.attest, q.attest_len, BASE64_STD);
                _cleanup_free_ char *sb = base64_encode(q.sig, q.sig_len, BASE64_STD);
                json_object_set_new(sq, "quote", json_string(qb));
                json_object_set_new(sq, "raw_sig", json_string(sb));
                tpm_quote_result_done(&q);
                _cleanup_free_ char *s = dump(doc);
                assert_int_equal(validate(s, &v), ATTDOC_QUOTE_INVALID);
                assert_int_equal(v.quote_reason, TPMQ_BANK_MISMATCH);
                assert_non_null(strstr(v.detail, "PCR values given are sha256"));
                attdoc_verdict_done(&v);
        }
}


/* A genuine SHA-256 quote over PCRs 0 and 1 only (as `tpm2_quote -l sha256:0,1` makes), sent with
 * made-up values for PCRs 4, 9, 11 and 15 that the policy expects: the quote does not vouch for
 * them, so the document is refused before the measurements are compared. */
static void test_pcrs_not_quoted(void **state) {
        (void) state;
        _cleanup_free_ char *json = issue();
        uint8_t extra[32], tn[32];
        assert_int_equal(attdoc_make_extra_data(user_data, sizeof user_data, nonce, sizeof nonce, extra), 0);
        assert_int_equal(attdoc_make_tpm_nonce(NULL, 0, extra, tn), 0);
        tpm_ctx *t = NULL;
        assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
        tpm_quote_result q = { 0 };
        assert_int_equal(tpm_quote(t, TPM_ALG_SHA256, 0x3, tn, sizeof tn, &q), 0);
        tpm_close(t);

        attdoc_measurement m[4] = { { .index = 4 }, { .index = 9 }, { .index = 11 }, { .index = 15 } };
        _cleanup_(json_decrefp) json_t *doc = load(json);
        json_t *sq = sha256_quote(doc);
        _cleanup_free_ char *qb = base64_encode(q.attest, q.attest_len, BASE64_STD);
        _cleanup_free_ char *sb = base64_encode(q.sig, q.sig_len, BASE64_STD);
        json_object_set_new(sq, "quote", json_string(qb));
        json_object_set_new(sq, "raw_sig", json_string(sb));
        json_t *map = json_object();
        for (unsigned i = 0; i < 2; i++) {
                char k[4];
                snprintf(k, sizeof k, "%u", i);
                _cleanup_free_ char *b = base64_encode(q.pcrs.value[i], 32, BASE64_STD);
                json_object_set_new(map, k, json_string(b));
        }
        for (size_t i = 0; i < ELEMENTSOF(m); i++) {
                m[i].expected_len = 32;
                memset(m[i].expected, 0xa0 + (int) i, 32);
                char k[4];
                snprintf(k, sizeof k, "%u", m[i].index);
                _cleanup_free_ char *b = base64_encode(m[i].expected, 32, BASE64_STD);
                json_object_set_new(map, k, json_string(b));
        }
        json_object_set_new(json_object_get(sq, "pcrs"), "pcrs", map);
        tpm_quote_result_done(&q);
        _cleanup_free_ char *forged = dump(doc);
        attdoc_verdict v;
        assert_int_equal(validate_full(forged, nonce, sizeof nonce, m, ELEMENTSOF(m), &v), ATTDOC_QUOTE_INVALID);
        assert_int_equal(v.quote_reason, TPMQ_PCR_NOT_QUOTED);
        assert_non_null(strstr(v.detail, "do not have the same PCR selection"));
        assert_non_null(strstr(v.detail, "PCR 4 (sha256) and others"));
        attdoc_verdict_done(&v);

        /* The same quote with exactly its own PCRs is genuine, but it says nothing about PCR 4..15:
         * the policy's PCRs are missing. */
        json_t *map2 = json_object_get(json_object_get(sq, "pcrs"), "pcrs");
        for (size_t i = 0; i < ELEMENTSOF(m); i++) {
                char k[4];
                snprintf(k, sizeof k, "%u", m[i].index);
                json_object_del(map2, k);
        }
        _cleanup_free_ char *honest = dump(doc);
        assert_int_equal(validate_full(honest, nonce, sizeof nonce, m, ELEMENTSOF(m), &v), ATTDOC_MEASUREMENT_MISSING);
        assert_non_null(strstr(v.detail, "PCR 4"));
        attdoc_verdict_done(&v);
}

/* No enforced measurement: refused unless the caller opts in. */
static void test_empty_policy(void **state) {
        (void) state;
        _cleanup_free_ char *json = issue();
        attdoc_verdict v;
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, NULL, 0, NULL, &v), -EPERM);
        assert_int_equal(v.reason, ATTDOC_POLICY_EMPTY);
        assert_non_null(strstr(v.detail, "measurement policy is empty"));
        assert_null(v.user_data);
        attdoc_verdict_done(&v);
        attdoc_policy empty = { 0 };
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, NULL, 0, &empty, &v), -EPERM);
        assert_int_equal(v.reason, ATTDOC_POLICY_EMPTY);
        assert_non_null(strstr(v.detail, "0 measurements, none enforced"));
        attdoc_verdict_done(&v);
        /* Only warnOnly entries enforce nothing either. */
        attdoc_measurement warn = { .index = 0, .expected_len = 32, .warn_only = true };
        attdoc_policy warn_only = { &warn, 1, false };
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, NULL, 0, &warn_only, &v),
                         -EPERM);
        assert_int_equal(v.reason, ATTDOC_POLICY_EMPTY);
        assert_non_null(strstr(v.detail, "1 measurements, none enforced"));
        attdoc_verdict_done(&v);
        warn_only.allow_empty_policy = true;
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, NULL, 0, &warn_only, &v), 0);
        assert_int_equal(v.reason, ATTDOC_OK);
        attdoc_verdict_done(&v);
        assert_int_equal(attdoc_validate_qemu_vtpm(json, strlen(json), nonce, sizeof nonce, NULL, 0, &allow_empty, &v), 0);
        attdoc_verdict_done(&v);
}

static void test_wrong_ak(void **state) {
        (void) state;
        _cleanup_free_ char *json = issue();
        attdoc_verdict v;
        _cleanup_(json_decrefp) json_t *doc = load(json);
        json_t *att = json_object_get(doc, "Attestation");
        uint8_t *ak = NULL;
        size_t ak_len = 0;
        assert_int_equal(base64_decode(json_string_value(json_object_get(att, "ak_pub")),
                                       strlen(json_string_value(json_object_get(att, "ak_pub"))), BASE64_STD, &ak, &ak_len), 0);
        /* Clear `restricted` (TPMA_OBJECT bit 16, byte 5 of TPMT_PUBLIC). */
        ak[5] &= (uint8_t) ~0x01;
        _cleanup_free_ char *b64 = base64_encode(ak, ak_len, BASE64_STD);
        json_object_set_new(att, "ak_pub", json_string(b64));
        _cleanup_free_ char *s = dump(doc);
        assert_int_equal(validate(s, &v), ATTDOC_AK_NOT_RESTRICTED);
        attdoc_verdict_done(&v);
        ak[5] |= 0x01;
        /* Another restricted key (a different modulus): the signature no longer verifies. */
        ak[ak_len - 1] ^= 0x02;
        free(b64);
        b64 = base64_encode(ak, ak_len, BASE64_STD);
        json_object_set_new(att, "ak_pub", json_string(b64));
        _cleanup_free_ char *s2 = dump(doc);
        assert_int_equal(validate(s2, &v), ATTDOC_QUOTE_INVALID);
        assert_int_equal(v.quote_reason, TPMQ_SIGNATURE_INVALID);
        attdoc_verdict_done(&v);
        /* Truncated. */
        json_object_set_new(att, "ak_pub", json_string("AAEACw=="));
        _cleanup_free_ char *s3 = dump(doc);
        assert_int_equal(validate(s3, &v), ATTDOC_AK_INVALID);
        attdoc_verdict_done(&v);
        free(ak);
}

/* A crypto-agile log (PFP §10.4.5.1) with SHA-256 only and one EV_IPL event into `pcr`. */
static size_t make_log(uint8_t *out, unsigned pcr, const uint8_t digest[32]) {
        size_t o = 0;
#define PUT32(v) do { uint32_t _v = (v); for (int _i = 0; _i < 4; _i++) out[o++] = (uint8_t) (_v >> (8 * _i)); } while (0)
#define PUT16(v) do { uint16_t _v = (v); out[o++] = (uint8_t) _v; out[o++] = (uint8_t) (_v >> 8); } while (0)
        PUT32(0);
        PUT32(EV_NO_ACTION);
        memset(out + o, 0, 20);
        o += 20;
        PUT32(16 + 4 + 4 + 4 + 4 + 1);
        memcpy(out + o, "Spec ID Event03", 16);
        o += 16;
        PUT32(0);                           /* platformClass */
        out[o++] = 0, out[o++] = 2, out[o++] = 0, out[o++] = 2; /* 2.0 errata 0, uintnSize 2 */
        PUT32(1);
        PUT16(TPM_ALG_SHA256);
        PUT16(32);
        out[o++] = 0; /* vendorInfoSize */
        PUT32(pcr);
        PUT32(0x0000000d); /* EV_IPL */
        PUT32(1);
        PUT16(TPM_ALG_SHA256);
        memcpy(out + o, digest, 32);
        o += 32;
        PUT32(0);
        return o;
}

static void test_event_log(void **state) {
        (void) state;
        uint8_t digest[32];
        memset(digest, 0x5a, sizeof digest);
        char dir[] = "/tmp/ct-attdoc-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[64];
        snprintf(path, sizeof path, "%s/log", dir);
        uint8_t log[256];
        size_t n = make_log(log, 16, digest);
        assert_int_equal(write_file_atomic(path, log, n, 0600), 0);

        tpm_ctx *t = NULL;
        assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
        assert_int_equal(tpm_pcr_extend(t, 16, TPM_ALG_SHA256, digest, 32), 0);
        char *json = NULL;
        assert_int_equal(attdoc_issue_qemu_vtpm_tpm(t, path, user_data, sizeof user_data, nonce, sizeof nonce, &json,
                                                    NULL, NULL), 0);
        attdoc_verdict v;
        assert_int_equal(validate(json, &v), ATTDOC_OK);
        attdoc_verdict_done(&v);
        free(json);

        /* The log claims another digest for PCR 16. */
        digest[0] ^= 1;
        n = make_log(log, 16, digest);
        assert_int_equal(write_file_atomic(path, log, n, 0600), 0);
        assert_int_equal(attdoc_issue_qemu_vtpm_tpm(t, path, user_data, sizeof user_data, nonce, sizeof nonce, &json,
                                                    NULL, NULL), 0);
        assert_int_equal(validate(json, &v), ATTDOC_EVENTLOG_MISMATCH);
        assert_non_null(strstr(v.detail, "PCR 16"));
        attdoc_verdict_done(&v);
        free(json);

        /* A truncated log. */
        assert_int_equal(write_file_atomic(path, log, n - 3, 0600), 0);
        assert_int_equal(attdoc_issue_qemu_vtpm_tpm(t, path, user_data, sizeof user_data, nonce, sizeof nonce, &json,
                                                    NULL, NULL), 0);
        assert_int_equal(validate(json, &v), ATTDOC_EVENTLOG_INVALID);
        assert_non_null(strstr(v.detail, "truncated"));
        attdoc_verdict_done(&v);
        free(json);
        tpm_close(t);
        unlink(path);
        rmdir(dir);
}

static void test_malformed(void **state) {
        (void) state;
        attdoc_verdict v;
        const char *bad[] = {
                "",
                "[]",
                "{}",
                "{\"Attestation\":{}}",
                "{\"Attestation\":{\"ak_pub\":\"!!\",\"quotes\":[]}}",
                "{\"Attestation\":{\"ak_pub\":\"AAEACw==\",\"quotes\":{}}}",
                "{\"Attestation\":{\"ak_pub\":\"AAEACw==\",\"quotes\":[]},\"UserData\":5}",
                "{\"Attestation\":{\"ak_pub\":\"AAEACw==\",\"quotes\":[]},\"Attestation\":{}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(attdoc_validate_qemu_vtpm(bad[i], strlen(bad[i]), nonce, sizeof nonce, NULL, 0,
                                                           &allow_empty, &v), -EBADMSG);
                assert_int_equal(v.reason, ATTDOC_MALFORMED);
                assert_non_null(v.detail);
                attdoc_verdict_done(&v);
        }
        /* A PCR map with a bad key. */
        _cleanup_free_ char *json = issue();
        _cleanup_(json_decrefp) json_t *doc = load(json);
        json_t *pcrs = json_object_get(json_object_get(sha256_quote(doc), "pcrs"), "pcrs");
        json_object_set_new(pcrs, "24", json_string("AAAA"));
        _cleanup_free_ char *s = dump(doc);
        assert_int_equal(validate(s, &v), ATTDOC_MALFORMED);
        assert_non_null(strstr(v.detail, "\"24\""));
        attdoc_verdict_done(&v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_issue_and_validate),
                cmocka_unit_test(test_replayed_nonce_and_user_data),
                cmocka_unit_test(test_measurements),
                cmocka_unit_test(test_tampered_pcr_and_bank_confusion),
                cmocka_unit_test(test_wrong_ak),
                cmocka_unit_test(test_event_log),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_pcrs_not_quoted),
                cmocka_unit_test(test_empty_policy),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
