/* SPDX-License-Identifier: Apache-2.0 */
/* The client of a node's verification service (reference constellation.md §5.4; Constellation's
 * `constellation verify`): a fresh 32-byte nonce to /verify.API/GetAttestation (plain gRPC, :30081;
 * the attestation is in the payload), then the qemu-vtpm document is validated: the quote over the
 * nonce and user data "VerifyService", the expected measurements, and PCR 15 =
 * SHA-256(0^32 || SHA-256(cluster ID)) added as an enforced measurement (replacing any PCR 15 entry
 * of the caller's measurements).
 *
 * Nothing here prints. Errors come back as a negative errno with a ct_error (layer "verifyclient"):
 *
 *   reason                errno        what
 *   measurements          -EINVAL      a measurement is not a 32-byte SHA-256 PCR
 *   unreachable           -EIO         no answer: connect, timeout, UNAVAILABLE, DEADLINE_EXCEEDED
 *   rpc-status            -EREMOTEIO   the service ended the call with another gRPC status
 *   protocol              -EBADMSG     the response does not unpack or has no attestation
 *   <attdoc token>        -EPERM       the document was refused: document-malformed, ak-invalid,
 *                                      ak-not-restricted, no-sha256-quote, quote-invalid,
 *                                      eventlog-invalid, eventlog-mismatch, measurement-missing,
 *                                      measurement-mismatch (the detail names the PCR: see
 *                                      verifyclient_refused_pcr()), user-data-mismatch, refused */
#pragma once

#include <stdint.h>

#include "basic/error.h"
#include "measurements/measurements.h"

#define VERIFYCLIENT_PORT "30081"
#define VERIFYCLIENT_METHOD "/verify.API/GetAttestation"
#define VERIFYCLIENT_USER_DATA "VerifyService"
#define VERIFYCLIENT_NONCE_SIZE 32
#define VERIFYCLIENT_PCR_CLUSTER_ID 15 /* constellation.md §5.4 */
#define VERIFYCLIENT_MAX_RESPONSE (16 * 1024 * 1024)

#define VERIFYCLIENT_REASON_MEASUREMENTS "measurements"
#define VERIFYCLIENT_REASON_UNREACHABLE "unreachable"
#define VERIFYCLIENT_REASON_RPC_STATUS "rpc-status"
#define VERIFYCLIENT_REASON_PROTOCOL "protocol"

/* Asks the verification service at endpoint ("host:port") for its attestation and validates it
 * against m plus PCR 15 = cluster_id. 0 when the node verifies; *ret_warnings (if non-NULL) then
 * gets the warn-only mismatches, one line each (malloc'd, NULL if none). The whole call, connect
 * included, is bounded by timeout_ms. */
int verifyclient_verify(const char *endpoint, const measurements *m, const uint8_t cluster_id[32], int64_t timeout_ms,
                        char **ret_warnings, ct_error *err);

/* The PCR index a measurement-mismatch or measurement-missing refusal names, or -1. */
int verifyclient_refused_pcr(const ct_error *err);
