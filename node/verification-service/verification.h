/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-verification-service's parts apart from main (tests and fuzz/node-services use
 * them): Constellation's verify API (reference constellation.md §2.5, verify/server/server.go).
 *
 *   gRPC /verify.API/GetAttestation  GetAttestationRequest { bytes nonce = 2; }
 *                                    -> GetAttestationResponse { bytes attestation = 1; }
 *   HTTP GET /?nonce=<base64url, '=' padded>  -> 200 {"data":"<base64 attestation document>"}
 *
 * The user data is fixed: the bytes "VerifyService" (constants.ConstellationVerifyServiceUserData);
 * the document is the qemu-vtpm one (lib/attestation), issued from the TPM at --tpm. The verifier's
 * nonce must have VERIFICATION_NONCE_MIN..VERIFICATION_NONCE_MAX bytes: Constellation only refuses
 * an empty one; a nonce shorter than 128 bits proves no freshness, so we say so instead of
 * attesting to it (Constellation's CLI sends 32 bytes).
 *
 * HTTP (libmicrohttpd): GET on "/" only (others 405/404), the nonce parameter exactly once
 * (Go's r.URL.Query()["nonce"]), no request body, request headers bounded by the connection
 * memory limit, a bounded number of connections and a timeout. Errors are 400 with a text body
 * "verify: <reason>: <detail>". */
#pragma once

#include "basic/error.h"
#include "basic/macro.h"

#define VERIFICATION_METHOD "/verify.API/GetAttestation"
#define VERIFICATION_USER_DATA "VerifyService"
#define VERIFICATION_NONCE_MIN 16
#define VERIFICATION_NONCE_MAX 1024 /* ATTDOC_MAX_NONCE */
#define VERIFICATION_MAX_REQUEST 4096 /* gRPC request: a nonce and little else */
#define VERIFICATION_HTTP_MAX_CONNECTIONS 64
#define VERIFICATION_HTTP_TIMEOUT_S 10
#define VERIFICATION_HTTP_MEMORY_LIMIT (16 * 1024) /* per connection: request line + headers */

/* Reasons (layer "verify"): "nonce-missing", "nonce-length", "nonce-encoding", "nonce-repeated",
 * "request-malformed", "issue-failed". */

/* The nonce of a GetAttestationRequest (malloc'd). */
int verification_grpc_nonce(const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len, ct_error *err);
/* The nonce from the value of the HTTP query parameter (already %-unescaped): padded base64url. */
int verification_http_nonce(const char *value, uint8_t **ret, size_t *ret_len, ct_error *err);
/* GetAttestationResponse for a document (malloc'd). */
int verification_grpc_response(const char *doc, size_t doc_len, uint8_t **ret, size_t *ret_len);
/* {"data":"<base64 doc>"} + "\n", as Go's json.Encoder writes it (malloc'd, NUL-terminated). */
char *verification_http_body(const char *doc, size_t doc_len);

typedef struct verification verification;
/* tcti: the TPM; event_log: the TCG event log to put into documents (NULL: the kernel's). Both
 * must outlive v. */
int verification_new(const char *tcti, const char *event_log, verification **ret);
void verification_free(verification *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(verification *, verification_free);
/* Issues the document for nonce (one TPM, one quote at a time). -EIO, "issue-failed". */
int verification_issue(verification *v, const uint8_t *nonce, size_t nonce_len, char **ret_doc, size_t *ret_len,
                       ct_error *err);

/* The HTTP endpoint on "host:port" (port 0 picks one; *ret_port gets the bound port). */
typedef struct verification_http verification_http;
int verification_http_start(verification *v, const char *address, verification_http **ret, int *ret_port,
                            ct_error *err);
void verification_http_stop(verification_http *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(verification_http *, verification_http_stop);
