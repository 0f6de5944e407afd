/* SPDX-License-Identifier: Apache-2.0 */
/* qemu-vtpm validator adapter (Constellation internal/attestation/qemu; reference
 * constellation.md §4.1-4.2). The document format, nonce scheme and checks are lib/attestation's;
 * this file only maps them onto aTLS's interface and reasons. No tpm2-tss here: the issuer is in
 * qemu-vtpm-issue.c (ct-atls-vtpm-issue). */
#include <stdio.h>

#include "atls/qemu-vtpm.h"
#include "basic/log.h"

static atls_reason map_reason(const attdoc_verdict *v) {
        switch (v->reason) {
        case ATTDOC_QUOTE_INVALID:
                return v->quote_reason == TPMQ_NONCE_MISMATCH ? ATLS_REASON_EVIDENCE_NONCE
                                                              : ATLS_REASON_EVIDENCE_SIGNATURE;
        case ATTDOC_AK_NOT_RESTRICTED:
        case ATTDOC_NO_SHA256_QUOTE:
                return ATLS_REASON_EVIDENCE_SIGNATURE;
        case ATTDOC_MEASUREMENT_MISSING:
        case ATTDOC_MEASUREMENT_MISMATCH:
                return ATLS_REASON_EVIDENCE_MEASUREMENTS;
        case ATTDOC_EVENTLOG_MISMATCH:
        case ATTDOC_USER_DATA_MISMATCH:
        case ATTDOC_POLICY_EMPTY:
                return ATLS_REASON_EVIDENCE_POLICY;
        default:
                return ATLS_REASON_EVIDENCE_MALFORMED;
        }
}

static int vtpm_validate(void *userdata, const uint8_t *doc, size_t doc_len, const uint8_t *nonce, size_t nonce_len,
                         uint8_t **ret_user_data, size_t *ret_user_data_len, atls_error *err) {
        const atls_qemu_vtpm_policy *policy = userdata;
        attdoc_verdict v = { 0 };
        attdoc_policy p = { 0 }; /* NULL policy: empty, refused by lib/attestation */
        if (policy)
                p = (attdoc_policy){ .measurements = policy->measurements, .n_measurements = policy->n_measurements,
                                     .allow_empty_policy = policy->allow_empty_policy };
        int r = attdoc_validate_qemu_vtpm((const char *) doc, doc_len, nonce, nonce_len, NULL, 0, &p, &v);
        if (r < 0 || v.reason != ATTDOC_OK) {
                r = atls_error_set(err, map_reason(&v), "qemu-vtpm: %s: %s", attdoc_reason_to_string(v.reason),
                                   v.detail ?: "refused");
                attdoc_verdict_done(&v);
                return r;
        }
        if (v.warnings)
                log_debug("qemu-vtpm: accepted with warnings: %s", v.warnings);
        *ret_user_data = TAKE_PTR(v.user_data);
        *ret_user_data_len = v.user_data_len;
        attdoc_verdict_done(&v);
        return 0;
}

atls_validator atls_qemu_vtpm_validator(const atls_qemu_vtpm_policy *policy) {
        return (atls_validator) { .oid = ATLS_OID_QEMU_VTPM, .name = "qemu-vtpm", .validate = vtpm_validate,
                                  .userdata = (void *) policy };
}
