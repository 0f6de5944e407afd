/* SPDX-License-Identifier: Apache-2.0 */
/* The qemu-vtpm variant (OID 1.3.9900.5.1) for aTLS: lib/attestation's Constellation vTPM
 * document behind the atls_issuer / atls_validator interfaces. Two libraries, so that a program
 * that only validates (the provider, a joining client) does not link tpm2-tss:
 *   ct-atls-vtpm        validator (qemu-vtpm.c): ct-atls + ct-attestation (OpenSSL, no TSS)
 *   ct-atls-vtpm-issue  issuer (qemu-vtpm-issue.c): + ct-attestation-issue (tpm2-tss ESYS) */
#pragma once

#include "atls/atls.h"
#include "attestation/attdoc.h"

/* Issues from the TPM at tcti_conf (NULL: /dev/tpmrm0; the string must outlive the issuer).
 * Issuing is serialised process-wide: one TPM, one quote at a time. In ct-atls-vtpm-issue. */
atls_issuer atls_qemu_vtpm_issuer(const char *tcti_conf);

typedef struct atls_qemu_vtpm_policy {
        const attdoc_measurement *measurements; /* expected PCRs (Enforce or WarnOnly) */
        size_t n_measurements;
        /* Accept documents although no measurement is enforced (every TPM's document would pass).
         * Off by default: a validator with an empty policy refuses every document with
         * ATLS_REASON_EVIDENCE_POLICY. */
        bool allow_empty_policy;
} atls_qemu_vtpm_policy;

/* Validates against policy (which must outlive the validator; NULL = empty, refused). Refusals map
 * to ATLS_REASON_EVIDENCE_NONCE (quote over another nonce: replay), _MEASUREMENTS (an enforced PCR
 * differs or is missing), _SIGNATURE (quote/AK, or PCR values the quote does not cover),
 * _MALFORMED, _POLICY (event log disagrees, or the policy is empty). */
atls_validator atls_qemu_vtpm_validator(const atls_qemu_vtpm_policy *policy);
