/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

#include "attestation/attdoc.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/secret.h"
#include "tpm/eventlog.h"

const char *attdoc_reason_to_string(attdoc_reason r) {
        static const char *const s[] = {
                [ATTDOC_OK] = "attestation document valid",
                [ATTDOC_MALFORMED] = "attestation document malformed",
                [ATTDOC_AK_INVALID] = "attestation key (ak_pub) is not a usable TPMT_PUBLIC",
                [ATTDOC_AK_NOT_RESTRICTED] = "attestation key is not a restricted signing key",
                [ATTDOC_NO_SHA256_QUOTE] = "no quote over the SHA-256 PCR bank",
                [ATTDOC_QUOTE_INVALID] = "SHA-256 quote invalid",
                [ATTDOC_EVENTLOG_INVALID] = "event log malformed",
                [ATTDOC_EVENTLOG_MISMATCH] = "event log replay does not match the quoted PCRs",
                [ATTDOC_MEASUREMENT_MISSING] = "missing measurement value",
                [ATTDOC_MEASUREMENT_MISMATCH] = "untrusted measurement value",
                [ATTDOC_USER_DATA_MISMATCH] = "user data does not match",
                [ATTDOC_POLICY_EMPTY] = "measurement policy is empty (no enforced PCR)",
        };
        return (unsigned) r < ELEMENTSOF(s) && s[r] ? s[r] : "unknown reason";
}

void attdoc_verdict_done(attdoc_verdict *v) {
        if (!v)
                return;
        free(v->detail);
        free(v->warnings);
        free(v->user_data);
        *v = (attdoc_verdict){ 0 };
}

/* SHA-256(a || b). */
static int sha256_two(const uint8_t *a, size_t al, const uint8_t *b, size_t bl, uint8_t ret[32]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || (al && EVP_DigestUpdate(c, a, al) != 1) ||
            (bl && EVP_DigestUpdate(c, b, bl) != 1) || EVP_DigestFinal_ex(c, ret, NULL) != 1)
                return -ENOMEM;
        return 0;
}

int attdoc_make_extra_data(const uint8_t *user_data, size_t ud_len, const uint8_t *nonce, size_t nonce_len,
                            uint8_t ret[32]) {
        return sha256_two(user_data, ud_len, nonce, nonce_len, ret);
}

int attdoc_make_tpm_nonce(const uint8_t *instance_info, size_t ii_len, const uint8_t extra_data[32], uint8_t ret[32]) {
        return sha256_two(instance_info, ii_len, extra_data, 32, ret);
}

/* ---- validation ---- */

_printf_(3, 4) static int refuse(attdoc_verdict *v, attdoc_reason reason, const char *fmt, ...) {
        v->reason = reason;
        free(v->detail);
        v->detail = NULL;
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (asprintf(&v->detail, "%s: %s", attdoc_reason_to_string(reason), msg ?: "?") < 0)
                v->detail = NULL;
        return reason == ATTDOC_MEASUREMENT_MISMATCH || reason == ATTDOC_MEASUREMENT_MISSING ||
                               reason == ATTDOC_USER_DATA_MISMATCH || reason == ATTDOC_POLICY_EMPTY ?
                       -EPERM :
                       -EBADMSG;
}

/* A base64 string field of at most max decoded bytes; null/absent allowed when `optional`. */
static int get_b64(json_t *obj, const char *key, size_t max, bool optional, uint8_t **ret, size_t *ret_len) {
        json_t *v = json_object_get(obj, key);
        if (!v || json_is_null(v)) {
                if (!optional)
                        return -ENOENT;
                *ret = NULL;
                *ret_len = 0;
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        size_t sl = json_string_length(v);
        if (sl / 4 * 3 > max + 3)
                return -E2BIG;
        uint8_t *b = NULL;
        size_t bl = 0;
        int r = base64_decode(json_string_value(v), sl, BASE64_STD, &b, &bl);
        if (r < 0)
                return r;
        if (bl > max) {
                free(b);
                return -E2BIG;
        }
        *ret = b;
        *ret_len = bl;
        return 0;
}

static int parse_pcr_map(json_t *pcrs, uint16_t alg, tpmq_pcr_bank *ret, char *err, size_t err_len) {
        tpmq_pcr_bank b = { .alg = alg };
        size_t dlen = tpmq_digest_size(alg);
        json_t *map = json_object_get(pcrs, "pcrs");
        const char *key;
        json_t *val;
        if (!json_is_object(map)) {
                snprintf(err, err_len, "pcrs.pcrs is not an object");
                return -EINVAL;
        }
        json_object_foreach(map, key, val) {
                char *end = NULL;
                errno = 0;
                unsigned long idx = strtoul(key, &end, 10);
                if (errno || !end || *end || end == key || key[0] == '-' || key[0] == '+' || idx >= TPMQ_NUM_PCRS ||
                    b.present[idx]) {
                        snprintf(err, err_len, "PCR key \"%.16s\" is not an index 0-23", key);
                        return -EINVAL;
                }
                _cleanup_free_ uint8_t *v = NULL;
                size_t vl = 0;
                if (!json_is_string(val) ||
                    base64_decode(json_string_value(val), json_string_length(val), BASE64_STD, &v, &vl) < 0 ||
                    vl != dlen) {
                        snprintf(err, err_len, "PCR %lu is not %zu bytes of base64", idx, dlen);
                        return -EINVAL;
                }
                memcpy(b.value[idx], v, dlen);
                b.present[idx] = true;
        }
        *ret = b;
        return 0;
}

int attdoc_validate_qemu_vtpm(const char *json, size_t json_len, const uint8_t *nonce, size_t nonce_len,
                              const uint8_t *expected_user_data, size_t expected_ud_len,
                              const attdoc_policy *policy, attdoc_verdict *ret) {
        attdoc_verdict *v = ret;
        json_error_t jerr;
        int r;

        /* Not OK until the end: a -ENOMEM on the way must not leave an OK verdict behind. */
        *v = (attdoc_verdict){ .reason = ATTDOC_MALFORMED };
        if (json_len > ATTDOC_MAX_SIZE)
                return refuse(v, ATTDOC_MALFORMED, "document is %zu bytes, at most %u allowed", json_len, ATTDOC_MAX_SIZE);
        if (nonce_len > ATTDOC_MAX_NONCE)
                return refuse(v, ATTDOC_MALFORMED, "nonce is %zu bytes, at most %u allowed", nonce_len, ATTDOC_MAX_NONCE);

        /* Stage 0: a policy that can refuse something. Without an enforced measurement any quote of
         * any TPM would do (the AK is not vouched for by anything else for qemu-vtpm). */
        size_t n_enforced = 0;
        for (size_t m = 0; policy && m < policy->n_measurements; m++)
                n_enforced += !policy->measurements[m].warn_only;
        if (!policy || (n_enforced == 0 && !policy->allow_empty_policy))
                return refuse(v, ATTDOC_POLICY_EMPTY, "%zu measurements, none enforced: every document would pass; "
                              "give the expected PCR values (or set allow_empty_policy where the caller compares "
                              "them itself)", policy ? policy->n_measurements : 0);

        /* Stage 1: shape. */
        _cleanup_(json_decrefp) json_t *doc = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc || !json_is_object(doc))
                return refuse(v, ATTDOC_MALFORMED, "not a JSON object (%s at offset %d)", doc ? "wrong type" : jerr.text,
                              doc ? 0 : jerr.position);
        json_t *att = json_object_get(doc, "Attestation");
        if (!json_is_object(att))
                return refuse(v, ATTDOC_MALFORMED, "Attestation is missing or not an object");
        _cleanup_free_ uint8_t *user_data = NULL, *instance_info = NULL, *ak_pub = NULL, *log = NULL;
        size_t ud_len, ii_len, ak_len, log_len;
        if (get_b64(doc, "UserData", ATTDOC_MAX_USER_DATA, true, &user_data, &ud_len) < 0)
                return refuse(v, ATTDOC_MALFORMED, "UserData is not base64 of at most %u bytes", ATTDOC_MAX_USER_DATA);
        if (get_b64(doc, "InstanceInfo", ATTDOC_MAX_USER_DATA, true, &instance_info, &ii_len) < 0)
                return refuse(v, ATTDOC_MALFORMED, "InstanceInfo is not null or base64");
        if (get_b64(att, "ak_pub", 1024, false, &ak_pub, &ak_len) < 0)
                return refuse(v, ATTDOC_MALFORMED, "Attestation.ak_pub is missing or not base64");
        if (get_b64(att, "event_log", EVENTLOG_MAX_SIZE, true, &log, &log_len) < 0)
                return refuse(v, ATTDOC_MALFORMED, "Attestation.event_log is not base64 of at most %u bytes",
                              EVENTLOG_MAX_SIZE);
        json_t *quotes = json_object_get(att, "quotes");
        if (!json_is_array(quotes) || json_array_size(quotes) > 8)
                return refuse(v, ATTDOC_MALFORMED, "Attestation.quotes is missing or not an array of at most 8");

        /* Stage 2: the AK, trusted unconditionally for qemu-vtpm, but it must be a TPM-restricted signer. */
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        tpmq_public_info info;
        r = tpmq_public_parse_info(ak_pub, ak_len, &ak, &info);
        if (r < 0)
                return refuse(v, ATTDOC_AK_INVALID, "%s", r == -EOPNOTSUPP ? "unsupported key type or curve" :
                                                                             "truncated or malformed TPMT_PUBLIC");
        if (!tpmq_public_is_restricted_signer(&info))
                return refuse(v, ATTDOC_AK_NOT_RESTRICTED, "objectAttributes 0x%08x", info.attributes);

        /* Stage 3: the SHA-256 quote, with its own PCR values. */
        size_t i;
        json_t *q = NULL;
        json_array_foreach(quotes, i, q) {
                json_t *pcrs = json_object_get(q, "pcrs");
                json_t *hash = pcrs ? json_object_get(pcrs, "hash") : NULL;
                if (!json_is_object(q) || !json_is_object(pcrs) || !json_is_integer(hash))
                        return refuse(v, ATTDOC_MALFORMED, "Attestation.quotes[%zu] lacks pcrs.hash", i);
                if (json_integer_value(hash) == TPM_ALG_SHA256)
                        break;
        }
        if (i == json_array_size(quotes))
                return refuse(v, ATTDOC_NO_SHA256_QUOTE, "%zu quotes, none with pcrs.hash 11", json_array_size(quotes));
        size_t qi = i;
        _cleanup_free_ uint8_t *quote = NULL, *sig = NULL;
        size_t quote_len, sig_len;
        if (get_b64(q, "quote", 4096, false, &quote, &quote_len) < 0 ||
            get_b64(q, "raw_sig", 4096, false, &sig, &sig_len) < 0)
                return refuse(v, ATTDOC_MALFORMED, "Attestation.quotes[%zu]: quote or raw_sig missing or not base64", qi);
        tpmq_pcr_bank bank;
        char err[128];
        if (parse_pcr_map(json_object_get(q, "pcrs"), TPM_ALG_SHA256, &bank, err, sizeof err) < 0)
                return refuse(v, ATTDOC_MALFORMED, "Attestation.quotes[%zu].pcrs: %s", qi, err);

        uint8_t extra[32], tpm_nonce[32];
        if (attdoc_make_extra_data(user_data, ud_len, nonce, nonce_len, extra) < 0 ||
            attdoc_make_tpm_nonce(instance_info, ii_len, extra, tpm_nonce) < 0)
                return -ENOMEM;
        _cleanup_free_ char *qdetail = NULL;
        tpmq_reason qr;
        r = tpmq_verify_quote(quote, quote_len, sig, sig_len, ak, &bank, tpm_nonce, sizeof tpm_nonce, &qr, &qdetail);
        if (r < 0) {
                v->quote_reason = qr;
                return refuse(v, ATTDOC_QUOTE_INVALID, "%s%s", qdetail ?: tpmq_reason_to_string(qr),
                              qr == TPMQ_NONCE_MISMATCH ? " (wrong nonce, user data or instance info: replayed document?)" : "");
        }

        /* Stage 4: the event log, if any, must explain every PCR it has events for. */
        if (log_len > 0) {
                _cleanup_(eventlog_freep) eventlog *el = NULL;
                _cleanup_free_ char *lerr = NULL;
                r = eventlog_parse(log, log_len, &el, &lerr);
                if (r < 0)
                        return refuse(v, ATTDOC_EVENTLOG_INVALID, "%s", lerr ?: strerror(-r));
                uint32_t mismatch = 0;
                r = eventlog_compare(el, &bank, NULL, &mismatch);
                if (r == -EOPNOTSUPP)
                        return refuse(v, ATTDOC_EVENTLOG_INVALID, "the log has no SHA-256 digests");
                if (r < 0) {
                        unsigned first = (unsigned) __builtin_ctz(mismatch);
                        return refuse(v, ATTDOC_EVENTLOG_MISMATCH, "PCR %u (sha256)%s", first,
                                      mismatch & (mismatch - 1) ? " and others" : "");
                }
        }

        /* Stage 5: expected measurements against the verified SHA-256 PCRs. */
        for (size_t m = 0; m < policy->n_measurements; m++) {
                const attdoc_measurement *e = &policy->measurements[m];
                bool missing = e->index >= TPMQ_NUM_PCRS || !bank.present[e->index];
                bool bad = missing || !ct_memeq(bank.value[e->index], 32, e->expected, e->expected_len);
                if (!bad)
                        continue;
                _cleanup_free_ char *want = hex_encode(e->expected, e->expected_len);
                _cleanup_free_ char *got = missing ? NULL : hex_encode(bank.value[e->index], 32);
                if (!e->warn_only) {
                        if (missing)
                                return refuse(v, ATTDOC_MEASUREMENT_MISSING, "PCR %u (expected %s)", e->index, want ?: "?");
                        return refuse(v, ATTDOC_MEASUREMENT_MISMATCH, "%s at index %u (expected %s)", got ?: "?",
                                      e->index, want ?: "?");
                }
                if (e->index < 32)
                        v->warn_mask |= 1u << e->index;
                _cleanup_free_ char *line = NULL;
                if (asprintf(&line, "%s%sPCR %u: %s (expected %s, warnOnly)", v->warnings ?: "", v->warnings ? "\n" : "",
                             e->index, missing ? "missing" : got ?: "?", want ?: "?") < 0)
                        return -ENOMEM;
                free(v->warnings);
                v->warnings = TAKE_PTR(line);
        }

        if (expected_user_data && !ct_memeq(user_data, ud_len, expected_user_data, expected_ud_len))
                return refuse(v, ATTDOC_USER_DATA_MISMATCH, "UserData has %zu bytes, expected %zu%s", ud_len,
                              expected_ud_len, ud_len == expected_ud_len ? " (contents differ)" : "");
        v->reason = ATTDOC_OK;
        v->user_data = user_data ? TAKE_PTR(user_data) : calloc(1, 1);
        v->user_data_len = ud_len;
        if (!v->user_data)
                return -ENOMEM;
        return 0;
}
