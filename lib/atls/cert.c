/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS certificates: creation with embedded evidence and verification of a peer's certificate
 * (Constellation internal/atls/atls.go getCertificate / processCertificate /
 * verifyEmbeddedReport; reference constellation.md §3). */
#include <openssl/err.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>

#include "atls/atls.h"
#include "basic/cleanup-openssl.h"
#include "basic/log.h"
#include "basic/secret.h"
#include "basic/encoding.h"
#include "x509/x509.h"

static const char *const reason_names[_ATLS_REASON_MAX] = {
        [ATLS_REASON_OK] = "ok",
        [ATLS_REASON_INVALID_ARGUMENT] = "invalid-argument",
        [ATLS_REASON_INTERNAL] = "internal",
        [ATLS_REASON_CONNECT] = "connect",
        [ATLS_REASON_TIMEOUT] = "timeout",
        [ATLS_REASON_HANDSHAKE] = "handshake",
        [ATLS_REASON_NONCE_TRANSPORT] = "nonce-transport",
        [ATLS_REASON_NO_CERTIFICATE] = "no-certificate",
        [ATLS_REASON_CERTIFICATE] = "certificate",
        [ATLS_REASON_NO_EVIDENCE] = "no-evidence",
        [ATLS_REASON_KEY_MISMATCH] = "key-mismatch",
        [ATLS_REASON_EVIDENCE_MALFORMED] = "evidence-malformed",
        [ATLS_REASON_EVIDENCE_NONCE] = "evidence-nonce",
        [ATLS_REASON_EVIDENCE_SIGNATURE] = "evidence-signature",
        [ATLS_REASON_EVIDENCE_MEASUREMENTS] = "evidence-measurements",
        [ATLS_REASON_EVIDENCE_POLICY] = "evidence-policy",
        [ATLS_REASON_ISSUE] = "issue",
        [ATLS_REASON_TOO_MANY_CONNECTIONS] = "too-many-connections",
        [ATLS_REASON_MESSAGE_TOO_LARGE] = "message-too-large",
        [ATLS_REASON_PROTOCOL] = "protocol",
};

const char *atls_reason_to_string(atls_reason reason) {
        if ((unsigned) reason >= _ATLS_REASON_MAX || !reason_names[reason])
                return "unknown";
        return reason_names[reason];
}

static int reason_to_errno(atls_reason reason) {
        switch (reason) {
        case ATLS_REASON_OK:
                return 0;
        case ATLS_REASON_INVALID_ARGUMENT:
                return -EINVAL;
        case ATLS_REASON_INTERNAL:
        case ATLS_REASON_ISSUE:
                return -EIO;
        case ATLS_REASON_CONNECT:
                return -ECONNREFUSED;
        case ATLS_REASON_TIMEOUT:
                return -ETIMEDOUT;
        case ATLS_REASON_HANDSHAKE:
                return -ECONNABORTED;
        case ATLS_REASON_TOO_MANY_CONNECTIONS:
                return -EBUSY;
        case ATLS_REASON_MESSAGE_TOO_LARGE:
                return -EMSGSIZE;
        case ATLS_REASON_PROTOCOL:
                return -EPROTO;
        default:
                return -EPERM;
        }
}

int atls_error_set(atls_error *err, atls_reason reason, const char *fmt, ...) {
        if (err && err->reason == ATLS_REASON_OK) {
                err->reason = reason;
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
                va_end(ap);
        }
        return reason_to_errno(err && err->reason != ATLS_REASON_OK ? err->reason : reason);
}

int atls_spki_hash(X509 *cert, uint8_t ret[ATLS_USER_DATA_SIZE]) {
        if (!cert)
                return -EINVAL;
        X509_PUBKEY *pub = X509_get_X509_PUBKEY(cert);
        unsigned char *der = NULL;
        int len = pub ? i2d_X509_PUBKEY(pub, &der) : -1;
        if (len <= 0)
                return -EINVAL;
        SHA256(der, (size_t) len, ret);
        OPENSSL_free(der);
        return 0;
}

static int key_spki_hash(EVP_PKEY *key, uint8_t ret[ATLS_USER_DATA_SIZE]) {
        unsigned char *der = NULL;
        int len = i2d_PUBKEY(key, &der); /* DER SubjectPublicKeyInfo, as Go's MarshalPKIXPublicKey */
        if (len <= 0)
                return -EINVAL;
        SHA256(der, (size_t) len, ret);
        OPENSSL_free(der);
        return 0;
}

int atls_certificate_new(const atls_issuer *issuer, const uint8_t *nonce, size_t nonce_len, EVP_PKEY **ret_key,
                         X509 **ret_cert, atls_error *err) {
        _cleanup_free_ uint8_t *doc = NULL;
        size_t doc_len = 0;
        int r;

        if (!ret_key || !ret_cert || (issuer && (!issuer->issue || !issuer->oid)))
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "aTLS certificate: incomplete issuer");
        if (issuer) {
                /* Dotted numeric form only, as the variant OIDs are (ATLS_OID_*). */
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(issuer->oid, 1);
                if (!obj)
                        return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "aTLS certificate: bad OID %s",
                                              issuer->oid);
        }

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        if (!key)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS certificate: creating P-256 key");

        if (issuer) {
                /* The document binds the key of the certificate it travels in (userData). */
                uint8_t user_data[ATLS_USER_DATA_SIZE];
                if (key_spki_hash(key, user_data) < 0)
                        return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS certificate: hashing public key");
                r = issuer->issue(issuer->userdata, user_data, sizeof(user_data), nonce, nonce_len, &doc, &doc_len,
                                  err);
                if (r < 0)
                        return atls_error_set(err, ATLS_REASON_ISSUE, "%s issuer failed: %s",
                                              issuer->name ?: issuer->oid, strerror(-r));
                if (!doc || doc_len == 0 || doc_len > ATLS_MAX_DOCUMENT_SIZE)
                        return atls_error_set(err, ATLS_REASON_ISSUE,
                                              "%s issuer: document size %zu out of range (1..%d)",
                                              issuer->name ?: issuer->oid, doc_len, ATLS_MAX_DOCUMENT_SIZE);
        }

        /* Go's x509.CreateCertificate in atls.go getCertificate: random 128-bit serial, subject
         * and issuer CN "Constellation", NotBefore now-2h, NotAfter now+2h, no EKU, no SAN, the
         * evidence as one non-critical extension; self-signed with the key made above. */
        x509_params params = {
                .common_name = "Constellation",
                .not_before_offset_s = -2 * 3600,
                .lifetime_s = 2 * 3600,
                .subject_key = key,
                .extra_oid = issuer ? issuer->oid : NULL,
                .extra_value = doc,
                .extra_value_len = doc_len,
        };
        _cleanup_(X509_freep) X509 *cert = NULL;
        r = x509_issue(&params, NULL, &cert, NULL, NULL);
        if (r < 0)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS certificate: building: %s", strerror(-r));

        *ret_key = TAKE_PTR(key);
        *ret_cert = TAKE_PTR(cert);
        return 0;
}

static bool cert_self_signed_and_current(X509 *cert, atls_error *err, int *ret) {
        EVP_PKEY *pub = X509_get0_pubkey(cert);
        if (!pub) {
                *ret = atls_error_set(err, ATLS_REASON_CERTIFICATE, "peer certificate: unreadable public key");
                return false;
        }
        /* Constellation verifies with the certificate as its only root: validity window, and (in
         * our reading, stricter than Go which trusts a root without checking its signature) the
         * self-signature. Both are cheap and true for every genuine aTLS certificate. */
        /* Go's x509 Verify refuses unhandled critical extensions and unparsable ones; so do we
         * (OpenSSL flags both while caching extensions). */
        uint32_t flags = X509_get_extension_flags(cert);
        if (flags & (EXFLAG_INVALID | EXFLAG_CRITICAL)) {
                *ret = atls_error_set(err, ATLS_REASON_CERTIFICATE, "peer certificate: %s",
                                      flags & EXFLAG_INVALID ? "invalid extensions" : "unhandled critical extension");
                return false;
        }
        if (X509_verify(cert, pub) != 1) {
                ERR_clear_error();
                *ret = atls_error_set(err, ATLS_REASON_CERTIFICATE, "peer certificate: not validly self-signed");
                return false;
        }
        if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
                *ret = atls_error_set(err, ATLS_REASON_CERTIFICATE, "peer certificate: not yet valid");
                return false;
        }
        if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
                *ret = atls_error_set(err, ATLS_REASON_CERTIFICATE, "peer certificate: expired");
                return false;
        }
        return true;
}

int atls_certificate_verify(X509 *cert, const atls_validator *validators, size_t n_validators, const uint8_t *nonce,
                            size_t nonce_len, int *ret_validator, atls_error *err) {
        int r;

        if (!cert)
                return atls_error_set(err, ATLS_REASON_NO_CERTIFICATE, "peer presented no certificate");
        if (n_validators > 0 && !validators)
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "validators missing");
        if (!cert_self_signed_and_current(cert, err, &r))
                return r;
        if (n_validators == 0) {
                if (ret_validator)
                        *ret_validator = -1;
                return 0;
        }

        uint8_t spki_hash[ATLS_USER_DATA_SIZE];
        if (atls_spki_hash(cert, spki_hash) < 0)
                return atls_error_set(err, ATLS_REASON_CERTIFICATE, "peer certificate: unreadable public key");

        /* verifyEmbeddedReport: the first extension whose OID is one we can validate decides. */
        int n_ext = X509_get_ext_count(cert);
        for (int i = 0; i < n_ext; i++) {
                X509_EXTENSION *ext = X509_get_ext(cert, i);
                char oid[128];
                int oid_len = OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
                if (oid_len <= 0 || (size_t) oid_len >= sizeof(oid))
                        continue;
                for (size_t v = 0; v < n_validators; v++) {
                        const atls_validator *val = &validators[v];
                        if (!val->oid || !val->validate || !streq(val->oid, oid))
                                continue;
                        const char *name = val->name ?: val->oid;
                        ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(ext);
                        int doc_len = ASN1_STRING_length(data);
                        if (doc_len <= 0 || doc_len > ATLS_MAX_DOCUMENT_SIZE)
                                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED,
                                                      "%s document: size %d out of range (1..%d)", name, doc_len,
                                                      ATLS_MAX_DOCUMENT_SIZE);
                        _cleanup_free_ uint8_t *user_data = NULL;
                        size_t user_data_len = 0;
                        r = val->validate(val->userdata, ASN1_STRING_get0_data(data), (size_t) doc_len, nonce,
                                          nonce_len, &user_data, &user_data_len, err);
                        if (r < 0)
                                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED, "%s document refused: %s",
                                                      name, strerror(-r));
                        /* The document must vouch for exactly this certificate's key: otherwise a
                         * relay could present a genuine node's document with its own key. */
                        if (!ct_memeq(user_data, user_data_len, spki_hash, sizeof(spki_hash))) {
                                _cleanup_free_ char *want = hex_encode(spki_hash, sizeof(spki_hash));
                                _cleanup_free_ char *got = hex_encode(user_data, user_data_len > 64 ? 64 : user_data_len);
                                return atls_error_set(err, ATLS_REASON_KEY_MISMATCH,
                                                      "%s document binds key hash %s, but the certificate's key hash is %s",
                                                      name, got ?: "?", want ?: "?");
                        }
                        if (ret_validator)
                                *ret_validator = (int) v;
                        return 0;
                }
        }
        /* Same words as Constellation's error so operators find it. */
        char names[256] = "";
        for (size_t v = 0; v < n_validators; v++) {
                size_t used = strlen(names);
                snprintf(names + used, sizeof(names) - used, "%s%s (%s)", v ? ", " : "",
                         validators[v].name ?: "?", validators[v].oid ?: "?");
        }
        return atls_error_set(err, ATLS_REASON_NO_EVIDENCE,
                              "certificate does not contain compatible attestation documents (expected %s)", names);
}
