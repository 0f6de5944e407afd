/* SPDX-License-Identifier: Apache-2.0 */
/* Issuing Constellation's qemu-vtpm attestation document (attdoc.h describes it) from a TPM.
 * ct-attestation-issue: links ct-tpm-esys (tpm2-tss); verifiers use attdoc.h / ct-attestation only. */
#pragma once

#include "attestation/attdoc.h"

typedef struct tpm_ctx tpm_ctx;

/* Issues a document from the TPM at tcti_conf (NULL: /dev/tpmrm0): the AK of TPM_AK_HANDLE (created
 * if needed), one quote over PCRs 0-23 per allocated bank, the event log at event_log_path (NULL:
 * the kernel's securityfs path; a missing file is an empty log). *ret_json is NUL-terminated,
 * malloc'd. -EIO on TPM failures with *ret_error (optional, malloc'd) saying which call failed. */
int attdoc_issue_qemu_vtpm(const char *tcti_conf, const uint8_t *user_data, size_t ud_len, const uint8_t *nonce,
                           size_t nonce_len, char **ret_json, size_t *ret_len, char **ret_error);
/* Same on an open TPM (the aTLS server keeps one open). */
int attdoc_issue_qemu_vtpm_tpm(tpm_ctx *t, const char *event_log_path, const uint8_t *user_data, size_t ud_len,
                               const uint8_t *nonce, size_t nonce_len, char **ret_json, size_t *ret_len,
                               char **ret_error);
