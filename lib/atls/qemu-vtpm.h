/* SPDX-License-Identifier: Apache-2.0 */
/* The qemu-vtpm variant (OID 1.3.9900.5.1) for aTLS: lib/attestation's Constellation vTPM
 * document behind the atls_issuer / atls_validator interfaces. A separate library (ct-atls-vtpm)
 * so that programs that only verify other variants do not link tpm2-tss. */
#pragma once

#include "atls/atls.h"
#include "attestation/attdoc.h"

/* Issues from the TPM at tcti_conf (NULL: /dev/tpmrm0; the string must outlive the issuer).
 * Issuing is serialised process-wide: one TPM, one quote at a time. */
atls_issuer atls_qemu_vtpm_issuer(const char *tcti_conf);

typedef struct atls_qemu_vtpm_policy {
        const attdoc_measurement *measurements; /* expected PCRs (Enforce or WarnOnly) */
        size_t n_measurements;
} atls_qemu_vtpm_policy;

/* Validates against policy (which must outlive the validator). Refusals map to
 * ATLS_REASON_EVIDENCE_NONCE (quote over another nonce: replay), _MEASUREMENTS (an enforced PCR
 * differs or is missing), _SIGNATURE (quote/AK), _MALFORMED, _POLICY (event log disagrees). */
atls_validator atls_qemu_vtpm_validator(const atls_qemu_vtpm_policy *policy);
