/* SPDX-License-Identifier: Apache-2.0 */
/* The "dummy" attestation variant (Constellation internal/attestation/variant: FakeIssuer /
 * FakeValidator, OID 1.3.9900.1.1): the document is Go encoding/json of
 * struct{UserData, Nonce []byte}, i.e. {"UserData":"<std b64>","Nonce":"<std b64>"}. It proves
 * nothing; tests use it to exercise the aTLS plumbing. */
#include <jansson.h>
#include <stdio.h>

#include "atls/atls.h"
#include "basic/encoding.h"
#include "basic/secret.h"

static int dummy_issue(void *userdata, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                       size_t nonce_len, uint8_t **ret_doc, size_t *ret_doc_len, atls_error *err) {
        (void) userdata;
        _cleanup_free_ char *ud = base64_encode(user_data, user_data_len, BASE64_STD);
        _cleanup_free_ char *n = base64_encode(nonce, nonce_len, BASE64_STD);
        if (!ud || !n)
                return atls_error_set(err, ATLS_REASON_ISSUE, "dummy issuer: out of memory");
        json_auto_t *doc = json_pack("{s:s, s:s}", "UserData", ud, "Nonce", n);
        char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (!s)
                return atls_error_set(err, ATLS_REASON_ISSUE, "dummy issuer: out of memory");
        *ret_doc_len = strlen(s);
        *ret_doc = (uint8_t *) s;
        return 0;
}

/* Go decodes a JSON null or missing []byte as empty; a string must be standard base64. */
static int get_bytes(json_t *obj, const char *field, uint8_t **ret, size_t *ret_len, atls_error *err) {
        json_t *v = json_object_get(obj, field);
        if (!v || json_is_null(v)) {
                *ret = calloc(1, 1);
                *ret_len = 0;
                return *ret ? 0 : atls_error_set(err, ATLS_REASON_INTERNAL, "out of memory");
        }
        if (!json_is_string(v))
                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED, "dummy document: %s is not a string", field);
        if (base64_decode(json_string_value(v), json_string_length(v), BASE64_STD, ret, ret_len) < 0)
                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED, "dummy document: %s is not base64", field);
        return 0;
}

static int dummy_validate(void *userdata, const uint8_t *doc, size_t doc_len, const uint8_t *nonce, size_t nonce_len,
                          uint8_t **ret_user_data, size_t *ret_user_data_len, atls_error *err) {
        (void) userdata;
        int r;
        if (doc_len > ATLS_MAX_DOCUMENT_SIZE)
                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED, "dummy document too large");
        json_error_t jerr;
        json_auto_t *root = json_loadb((const char *) doc, doc_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_object(root))
                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED, "dummy document: not a JSON object (%s)",
                                      root ? "wrong type" : jerr.text);
        _cleanup_free_ uint8_t *ud = NULL, *n = NULL;
        size_t ud_len = 0, n_len = 0;
        if ((r = get_bytes(root, "UserData", &ud, &ud_len, err)) < 0 || (r = get_bytes(root, "Nonce", &n, &n_len, err)) < 0)
                return r;
        /* FakeValidator: "invalid nonce: expected %x, got %x". */
        if (!ct_memeq(n, n_len, nonce, nonce_len)) {
                _cleanup_free_ char *want = hex_encode(nonce, nonce_len);
                _cleanup_free_ char *got = hex_encode(n, n_len > 64 ? 64 : n_len);
                return atls_error_set(err, ATLS_REASON_EVIDENCE_NONCE, "dummy document: invalid nonce: expected %s, got %s",
                                      want ?: "?", got ?: "?");
        }
        *ret_user_data = TAKE_PTR(ud);
        *ret_user_data_len = ud_len;
        return 0;
}

atls_issuer atls_dummy_issuer(void) {
        return (atls_issuer) { .oid = ATLS_OID_DUMMY, .name = "dummy", .issue = dummy_issue };
}

atls_validator atls_dummy_validator(void) {
        return (atls_validator) { .oid = ATLS_OID_DUMMY, .name = "dummy", .validate = dummy_validate };
}
