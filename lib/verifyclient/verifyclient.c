/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "attestation/attdoc.h"
#include "crypto/hkdf.h"
#include "rpc/rpc.h"
#include "verify.pb-c.h"
#include "verifyclient/verifyclient.h"

#define LAYER "verifyclient"

/* Stable tokens (attdoc_reason_to_string is a sentence). */
static const char *reason_token(attdoc_reason r) {
        switch (r) {
        case ATTDOC_MALFORMED: return "document-malformed";
        case ATTDOC_AK_INVALID: return "ak-invalid";
        case ATTDOC_AK_NOT_RESTRICTED: return "ak-not-restricted";
        case ATTDOC_NO_SHA256_QUOTE: return "no-sha256-quote";
        case ATTDOC_QUOTE_INVALID: return "quote-invalid";
        case ATTDOC_EVENTLOG_INVALID: return "eventlog-invalid";
        case ATTDOC_EVENTLOG_MISMATCH: return "eventlog-mismatch";
        case ATTDOC_MEASUREMENT_MISSING: return "measurement-missing";
        case ATTDOC_MEASUREMENT_MISMATCH: return "measurement-mismatch";
        case ATTDOC_USER_DATA_MISMATCH: return "user-data-mismatch";
        default: return "refused";
        }
}

/* GetAttestation with nonce; the document (NUL-terminated) in *ret_doc. */
static int get_attestation(const char *endpoint, const uint8_t nonce[VERIFYCLIENT_NONCE_SIZE], int64_t timeout_ms,
                           uint8_t **ret_doc, size_t *ret_len, ct_error *err) {
        Verify__GetAttestationRequest req = VERIFY__GET_ATTESTATION_REQUEST__INIT;
        req.nonce.data = (uint8_t *) nonce;
        req.nonce.len = VERIFYCLIENT_NONCE_SIZE;
        uint8_t reqbuf[64];
        size_t reqlen = verify__get_attestation_request__pack(&req, reqbuf);

        rpc_channel_options opts = { .max_receive_message_length = VERIFYCLIENT_MAX_RESPONSE };
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        int r = rpc_channel_new(endpoint, NULL, &opts, &ch);
        if (r < 0)
                return ct_error_set(err, r, LAYER, VERIFYCLIENT_REASON_UNREACHABLE, "%s: cannot create a gRPC channel: %s",
                                    endpoint, strerror(-r));
        _cleanup_free_ uint8_t *resp = NULL;
        size_t resp_len = 0;
        rpc_status st = { 0 };
        r = rpc_unary(ch, VERIFYCLIENT_METHOD, reqbuf, reqlen, timeout_ms, &resp, &resp_len, &st);
        if (r < 0 || st.code != GRPC_STATUS_OK) {
                bool unreachable = r < 0 || st.code == GRPC_STATUS_UNAVAILABLE || st.code == GRPC_STATUS_DEADLINE_EXCEEDED;
                int code = unreachable ? -EIO : -EREMOTEIO;
                ct_error_set(err, code, LAYER,
                             unreachable ? VERIFYCLIENT_REASON_UNREACHABLE : VERIFYCLIENT_REASON_RPC_STATUS,
                             "%s %s: %s%s%s", endpoint, VERIFYCLIENT_METHOD,
                             r < 0 ? strerror(-r) : rpc_status_code_to_string(st.code), st.message ? ": " : "",
                             st.message ?: "");
                rpc_status_done(&st);
                return code;
        }
        rpc_status_done(&st);
        Verify__GetAttestationResponse *m = verify__get_attestation_response__unpack(NULL, resp_len, resp);
        if (!m || m->attestation.len == 0) {
                if (m)
                        verify__get_attestation_response__free_unpacked(m, NULL);
                return ct_error_set(err, -EBADMSG, LAYER, VERIFYCLIENT_REASON_PROTOCOL,
                                    "%s: GetAttestationResponse is malformed or empty", endpoint);
        }
        uint8_t *doc = malloc(m->attestation.len + 1);
        if (doc) {
                memcpy(doc, m->attestation.data, m->attestation.len);
                doc[m->attestation.len] = '\0';
                *ret_len = m->attestation.len;
        }
        verify__get_attestation_response__free_unpacked(m, NULL);
        if (!doc)
                return -ENOMEM;
        *ret_doc = doc;
        return 0;
}

int verifyclient_verify(const char *endpoint, const measurements *m, const uint8_t cluster_id[32], int64_t timeout_ms,
                        char **ret_warnings, ct_error *err) {
        if (!endpoint || !m || !cluster_id)
                return -EINVAL;
        /* m plus PCR 15 = the cluster ID, enforced (constellation verify does the same). */
        measurements want = *m;
        for (size_t i = 0; i < want.n; i++)
                if (want.items[i].len != 32)
                        return ct_error_set(err, -EINVAL, LAYER, VERIFYCLIENT_REASON_MEASUREMENTS,
                                            "PCR %u: %zu-byte value, qemu-vtpm PCRs are 32-byte SHA-256",
                                            want.items[i].index, want.items[i].len);
        uint8_t pcr15[32];
        kdf_expected_pcr15(cluster_id, pcr15);
        if (measurements_set(&want, VERIFYCLIENT_PCR_CLUSTER_ID, pcr15, sizeof pcr15, false) < 0)
                return ct_error_set(err, -EINVAL, LAYER, VERIFYCLIENT_REASON_MEASUREMENTS,
                                    "PCR 15 cannot be added to the measurements");
        attdoc_measurement am[MEASUREMENTS_MAX_INDEX + 1];
        for (size_t i = 0; i < want.n; i++) {
                am[i] = (attdoc_measurement){ .index = want.items[i].index, .expected_len = want.items[i].len,
                                              .warn_only = want.items[i].warn_only };
                memcpy(am[i].expected, want.items[i].expected, want.items[i].len);
        }

        uint8_t nonce[VERIFYCLIENT_NONCE_SIZE];
        if (RAND_bytes(nonce, sizeof nonce) != 1)
                return ct_error_set(err, -EIO, LAYER, VERIFYCLIENT_REASON_PROTOCOL,
                                    "no random nonce (OpenSSL RAND_bytes)");
        _cleanup_free_ uint8_t *doc = NULL;
        size_t doc_len = 0;
        int r = get_attestation(endpoint, nonce, timeout_ms, &doc, &doc_len, err);
        if (r < 0)
                return r;

        attdoc_policy policy = { .measurements = am, .n_measurements = want.n };
        attdoc_verdict v = { 0 };
        r = attdoc_validate_qemu_vtpm((const char *) doc, doc_len, nonce, sizeof nonce,
                                      (const uint8_t *) VERIFYCLIENT_USER_DATA, strlen(VERIFYCLIENT_USER_DATA), &policy,
                                      &v);
        if (r < 0) {
                ct_error_set(err, -EPERM, LAYER, reason_token(v.reason), "%s", v.detail ?: "refused");
                attdoc_verdict_done(&v);
                return -EPERM;
        }
        if (ret_warnings) {
                *ret_warnings = v.warnings;
                v.warnings = NULL;
        }
        attdoc_verdict_done(&v);
        return 0;
}

int verifyclient_refused_pcr(const ct_error *err) {
        if (!ct_error_is_set(err) || !err->reason ||
            (strcmp(err->reason, "measurement-mismatch") != 0 && strcmp(err->reason, "measurement-missing") != 0))
                return -1;
        /* attdoc: "<got> at index N (expected …)" or "PCR N (expected …)" */
        const char *s = strstr(err->detail, "at index ");
        size_t skip = strlen("at index ");
        if (!s) {
                s = strstr(err->detail, "PCR ");
                skip = strlen("PCR ");
        }
        if (!s)
                return -1;
        char *end;
        unsigned long idx = strtoul(s + skip, &end, 10);
        return end == s + skip || idx > MEASUREMENTS_MAX_INDEX ? -1 : (int) idx;
}
