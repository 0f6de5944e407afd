/* SPDX-License-Identifier: Apache-2.0 */
/* Constellation's vTPM attestation document (reference §4.1) for the qemu-vtpm variant (§4.2):
 * issue it from a TPM and validate it against expected measurements.
 *
 * Document (Go encoding/json of vtpm.AttestationDocument; []byte = standard base64 with padding):
 *   {"Attestation":{"ak_pub":b64(TPMT_PUBLIC),
 *                   "quotes":[{"quote":b64(TPMS_ATTEST),"raw_sig":b64(TPMT_SIGNATURE),
 *                              "pcrs":{"hash":11,"pcrs":{"0":b64,...,"23":b64}}}, ...one per bank],
 *                   "event_log":b64 (omitted when empty)},
 *    "InstanceInfo":null, "UserData":b64}
 *
 * Nonce scheme (internal/attestation/attestation.go MakeExtraData, vtpm/attestation.go):
 *   extraData = SHA-256(userData || nonce); tpmNonce = SHA-256(instanceInfo || extraData)
 * and tpmNonce is TPM2_Quote's qualifyingData. For qemu-vtpm instanceInfo is empty.
 *
 * Validation differs from Constellation on purpose: the SHA-256 quote itself is verified and its
 * own PCR values are the ones compared (Constellation accepts the first bank whose quote verifies,
 * then compares the SHA-256 PCR map, which a SHA-384 quote does not cover); the AK must be a
 * restricted signing key; an empty event log is allowed (swtpm has none), a present one must replay
 * to the quoted values for every PCR it has events for. Trust in the AK itself is, as in
 * Constellation's qemu-vtpm, unconditional: only the measurements make the document trustworthy,
 * so a policy without an enforced measurement is refused unless the caller opts in.
 *
 * This header and ct-attestation are the verifier side (OpenSSL, jansson, ct-tpm); issuing from a
 * TPM is attestation/issue.h in ct-attestation-issue, the only part that links tpm2-tss. */
#pragma once

#include "basic/macro.h"
#include "tpm/quote.h"

#define ATTDOC_MAX_SIZE (16u * 1024 * 1024)
#define ATTDOC_MAX_USER_DATA 4096u
#define ATTDOC_MAX_NONCE 1024u
#define ATTDOC_MAX_MEASUREMENT 48u

typedef struct attdoc_measurement {
        uint32_t index;
        uint8_t expected[ATTDOC_MAX_MEASUREMENT];
        size_t expected_len; /* 32 for SHA-256 PCRs */
        bool warn_only;
} attdoc_measurement;

typedef enum attdoc_reason {
        ATTDOC_OK = 0,
        ATTDOC_MALFORMED,            /* not JSON, or a field missing / of the wrong type / bad base64 */
        ATTDOC_AK_INVALID,           /* ak_pub is not a usable TPMT_PUBLIC */
        ATTDOC_AK_NOT_RESTRICTED,    /* ak_pub is not a restricted signing key */
        ATTDOC_NO_SHA256_QUOTE,      /* no quote over the SHA-256 bank */
        ATTDOC_QUOTE_INVALID,        /* the SHA-256 quote failed (quote_reason says how) */
        ATTDOC_EVENTLOG_INVALID,     /* event_log does not parse */
        ATTDOC_EVENTLOG_MISMATCH,    /* event_log replay disagrees with a quoted PCR */
        ATTDOC_MEASUREMENT_MISSING,  /* an enforced expected PCR is not in the quote */
        ATTDOC_MEASUREMENT_MISMATCH, /* an enforced PCR has another value than expected */
        ATTDOC_USER_DATA_MISMATCH,   /* UserData is not the expected one */
        ATTDOC_POLICY_EMPTY,         /* no enforced measurement to compare, and the caller did not allow that */
} attdoc_reason;

const char *attdoc_reason_to_string(attdoc_reason r);

typedef struct attdoc_verdict {
        attdoc_reason reason;
        tpmq_reason quote_reason; /* for ATTDOC_QUOTE_INVALID */
        char *detail;             /* sentence naming the field / PCR (malloc'd; NULL on success) */
        uint32_t warn_mask;       /* warnOnly PCRs that mismatched or were missing */
        char *warnings;           /* one line per warning, NULL if none */
        uint8_t *user_data;       /* the document's UserData (on success) */
        size_t user_data_len;
} attdoc_verdict;

void attdoc_verdict_done(attdoc_verdict *v);

/* extraData = SHA-256(userData || nonce); tpmNonce = SHA-256(instanceInfo || extraData). -ENOMEM
 * only if OpenSSL cannot hash. */
int attdoc_make_extra_data(const uint8_t *user_data, size_t ud_len, const uint8_t *nonce, size_t nonce_len,
                           uint8_t ret[32]);
int attdoc_make_tpm_nonce(const uint8_t *instance_info, size_t ii_len, const uint8_t extra_data[32], uint8_t ret[32]);

/* What a document must show. With no enforced (non-warnOnly) measurement the quote proves only
 * that some TPM quoted some state: every document of a well-formed TPM would pass. That is
 * refused (ATTDOC_POLICY_EMPTY) unless allow_empty_policy says the caller knows: a tool that
 * compares verdict PCRs itself, or a test of the document's other checks. */
typedef struct attdoc_policy {
        const attdoc_measurement *measurements;
        size_t n_measurements;
        bool allow_empty_policy;
} attdoc_policy;

/* Validates a document for `nonce` against policy (NULL: an empty policy, refused).
 * expected_user_data may be NULL (then the caller compares verdict.user_data itself). Returns 0 with ret->reason == ATTDOC_OK (warnings possible), or
 * -EBADMSG / -EPERM (measurement or user data refused) with reason and detail. *ret is always
 * filled; free it with attdoc_verdict_done(). */
int attdoc_validate_qemu_vtpm(const char *json, size_t json_len, const uint8_t *nonce, size_t nonce_len,
                              const uint8_t *expected_user_data, size_t expected_ud_len,
                              const attdoc_policy *policy, attdoc_verdict *ret);
