/* SPDX-License-Identifier: Apache-2.0 */
/* qemu-vtpm issuer/validator adapters (Constellation internal/attestation/qemu; reference
 * constellation.md §4.1-4.2). The document format, nonce scheme and checks are lib/attestation's;
 * this file only maps them onto aTLS's interface and reasons. */
#include <pthread.h>
#include <stdio.h>

#include "atls/qemu-vtpm.h"
#include "basic/log.h"

static pthread_mutex_t tpm_lock = PTHREAD_MUTEX_INITIALIZER;

static int vtpm_issue(void *userdata, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                      size_t nonce_len, uint8_t **ret_doc, size_t *ret_doc_len, atls_error *err) {
        const char *tcti = userdata;
        char *json = NULL, *why = NULL;
        size_t len = 0;
        pthread_mutex_lock(&tpm_lock);
        int r = attdoc_issue_qemu_vtpm(tcti, user_data, user_data_len, nonce, nonce_len, &json, &len, &why);
        pthread_mutex_unlock(&tpm_lock);
        if (r < 0) {
                r = atls_error_set(err, ATLS_REASON_ISSUE, "qemu-vtpm: issuing the attestation document: %s",
                                   why ?: strerror(-r));
                free(why);
                return r;
        }
        free(why);
        *ret_doc = (uint8_t *) json;
        *ret_doc_len = len;
        return 0;
}

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
                return ATLS_REASON_EVIDENCE_POLICY;
        default:
                return ATLS_REASON_EVIDENCE_MALFORMED;
        }
}

static int vtpm_validate(void *userdata, const uint8_t *doc, size_t doc_len, const uint8_t *nonce, size_t nonce_len,
                         uint8_t **ret_user_data, size_t *ret_user_data_len, atls_error *err) {
        const atls_qemu_vtpm_policy *policy = userdata;
        attdoc_verdict v = { 0 };
        int r = attdoc_validate_qemu_vtpm((const char *) doc, doc_len, nonce, nonce_len, NULL, 0,
                                          policy ? policy->measurements : NULL, policy ? policy->n_measurements : 0,
                                          &v);
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

atls_issuer atls_qemu_vtpm_issuer(const char *tcti_conf) {
        return (atls_issuer) { .oid = ATLS_OID_QEMU_VTPM, .name = "qemu-vtpm", .issue = vtpm_issue,
                               .userdata = (void *) tcti_conf };
}

atls_validator atls_qemu_vtpm_validator(const atls_qemu_vtpm_policy *policy) {
        return (atls_validator) { .oid = ATLS_OID_QEMU_VTPM, .name = "qemu-vtpm", .validate = vtpm_validate,
                                  .userdata = (void *) policy };
}
