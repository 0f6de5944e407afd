/* SPDX-License-Identifier: Apache-2.0 */
/* qemu-vtpm issuer adapter: lib/attestation's issuing over a TPM behind atls_issuer. Its own
 * library (ct-atls-vtpm-issue) because it links tpm2-tss, which validators must not. */
#include <pthread.h>
#include <stdio.h>

#include "atls/qemu-vtpm.h"
#include "attestation/issue.h"

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

atls_issuer atls_qemu_vtpm_issuer(const char *tcti_conf) {
        return (atls_issuer) { .oid = ATLS_OID_QEMU_VTPM, .name = "qemu-vtpm", .issue = vtpm_issue,
                               .userdata = (void *) tcti_conf };
}

