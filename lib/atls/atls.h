/* SPDX-License-Identifier: Apache-2.0 */
/* Attested TLS (aTLS), wire-compatible with Constellation's internal/atls (reference
 * constellation.md §3):
 *
 *  - The attesting side presents a fresh self-signed ECDSA P-256 certificate (CN "Constellation",
 *    valid now-2h..now+2h, no EKU, no SAN) with one non-critical extension whose OID names the
 *    attestation variant and whose value is the attestation document. The document binds
 *    userData = SHA-256(DER SubjectPublicKeyInfo) and the verifier's fresh 32-byte nonce.
 *  - The client's nonce travels as SNI = base64.StdEncoding(nonce) (44 characters, not a host
 *    name). A server that wants the client to attest requests a client certificate and lists one
 *    acceptable CA whose subject CN = base64.StdEncoding(server nonce).
 *
 * gRPC C core's TLS credentials can neither read SNI before choosing a certificate nor put a
 * nonce into the CertificateRequest, so this module terminates TLS itself with OpenSSL and
 * hands gRPC the plaintext byte stream over a socketpair (rpc_server_add_fd /
 * rpc_channel_new_from_fd). One relay thread per connection copies between the TLS socket and
 * gRPC's end of the socketpair; the scheme is not weakened.
 *
 * Variants plug in through atls_issuer / atls_validator (function pointers + userdata, the
 * Issuer/Validator interfaces of Constellation's attestation package). This module ships the
 * "dummy" variant (OID 1.3.9900.1.1); TPM and SNP variants live in their own libraries. */
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "basic/macro.h"
#include "rpc/rpc.h"

#define ATLS_NONCE_SIZE 32
#define ATLS_USER_DATA_SIZE 32 /* SHA-256 of the certificate's SubjectPublicKeyInfo */
/* Largest attestation document we put into or accept from a certificate. TPM documents with an
 * event log are ~30-100 KiB; Azure SNP documents with a certificate chain a few more. */
#define ATLS_MAX_DOCUMENT_SIZE (1024 * 1024)

/* Constellation's variant OIDs (internal/attestation/variant/variant.go). */
#define ATLS_OID_DUMMY "1.3.9900.1.1"
#define ATLS_OID_AWS_NITRO_TPM "1.3.9900.2.1"
#define ATLS_OID_AWS_SEV_SNP "1.3.9900.2.2"
#define ATLS_OID_GCP_SEV_ES "1.3.9900.3.1"
#define ATLS_OID_GCP_SEV_SNP "1.3.9900.3.2"
#define ATLS_OID_AZURE_SEV_SNP "1.3.9900.4.1"
#define ATLS_OID_AZURE_TRUSTED_LAUNCH "1.3.9900.4.2"
#define ATLS_OID_AZURE_TDX "1.3.9900.4.3"
#define ATLS_OID_QEMU_VTPM "1.3.9900.5.1"
#define ATLS_OID_QEMU_TDX "1.3.9900.5.99"

/* Why a connection or a certificate was refused. Validators pick the ATLS_REASON_EVIDENCE_* that
 * fits; the rest are set by this module. */
typedef enum atls_reason {
        ATLS_REASON_OK = 0,
        ATLS_REASON_INVALID_ARGUMENT,    /* caller error (bad config, bad address) */
        ATLS_REASON_INTERNAL,            /* allocation, OpenSSL or system failure */
        ATLS_REASON_CONNECT,             /* TCP connect failed */
        ATLS_REASON_TIMEOUT,             /* handshake did not finish in time */
        ATLS_REASON_HANDSHAKE,           /* TLS failed below aTLS (alert from the peer, protocol) */
        ATLS_REASON_NONCE_TRANSPORT,     /* SNI / CA-name nonce missing or malformed */
        ATLS_REASON_NO_CERTIFICATE,      /* the peer presented no certificate */
        ATLS_REASON_CERTIFICATE,         /* not a valid self-signed certificate (signature, validity) */
        ATLS_REASON_NO_EVIDENCE,         /* no extension with the OID of a configured validator */
        ATLS_REASON_KEY_MISMATCH,        /* document's userData != SHA-256(SPKI): relay / other key */
        ATLS_REASON_EVIDENCE_MALFORMED,  /* document cannot be parsed */
        ATLS_REASON_EVIDENCE_NONCE,      /* document bound to another nonce: replay */
        ATLS_REASON_EVIDENCE_SIGNATURE,  /* quote/report signature or key trust failed */
        ATLS_REASON_EVIDENCE_MEASUREMENTS, /* PCR/measurement values not as expected */
        ATLS_REASON_EVIDENCE_POLICY,     /* other variant-specific policy (TCB, VMPL, ...) */
        ATLS_REASON_ISSUE,               /* our own issuer failed to produce evidence */
        ATLS_REASON_TOO_MANY_CONNECTIONS, /* server: connection limit reached, closed at accept */
        ATLS_REASON_MESSAGE_TOO_LARGE,   /* the peer announced a gRPC message over the limit: closed */
        ATLS_REASON_PROTOCOL,            /* the peer's plaintext is not HTTP/2 framing: closed */
        _ATLS_REASON_MAX,
} atls_reason;

/* "key-mismatch", "evidence-nonce", ... (stable, for messages and tests). */
const char *atls_reason_to_string(atls_reason reason);

/* An error with its reason and a message for the edge ("which certificate, which field, what was
 * expected"). Never contains secrets. */
typedef struct atls_error {
        atls_reason reason;
        char detail[512];
} atls_error;

/* Sets *err (if err is non-NULL) and returns -EPERM for verification refusals, -ETIMEDOUT,
 * -ECONNREFUSED, -ENOMEM, -EINVAL, -EIO for the others. Appends nothing if err already holds a
 * reason (the first, innermost reason wins). */
int atls_error_set(atls_error *err, atls_reason reason, const char *fmt, ...) _printf_(3, 4);

/* Issuer (Constellation attestation.Issuer): produces a document binding user_data and nonce.
 * Returns 0 and a malloc'd document, or a negative errno with err filled (ATLS_REASON_ISSUE). */
typedef struct atls_issuer {
        const char *oid;  /* dotted OID of the variant, e.g. ATLS_OID_QEMU_VTPM */
        const char *name; /* variant name for messages, e.g. "qemu-vtpm" */
        int (*issue)(void *userdata, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                     size_t nonce_len, uint8_t **ret_doc, size_t *ret_doc_len, atls_error *err);
        void *userdata;
} atls_issuer;

/* Validator (Constellation attestation.Validator): checks a document against the verifier's
 * nonce and returns the user data it binds (malloc'd), or a negative errno with err filled
 * (one of ATLS_REASON_EVIDENCE_*). Must be safe to call from several threads at once. */
typedef struct atls_validator {
        const char *oid;
        const char *name;
        int (*validate)(void *userdata, const uint8_t *doc, size_t doc_len, const uint8_t *nonce, size_t nonce_len,
                        uint8_t **ret_user_data, size_t *ret_user_data_len, atls_error *err);
        void *userdata;
} atls_validator;

/* The "dummy" variant (Constellation variant.Dummy, FakeIssuer/FakeValidator): document
 * {"UserData":b64,"Nonce":b64}; the validator checks the nonce and nothing else. Tests only. */
atls_issuer atls_dummy_issuer(void);
atls_validator atls_dummy_validator(void);

/* --- certificates (atls.go: getCertificate, processCertificate) --- */

/* SHA-256 of the DER SubjectPublicKeyInfo of cert's key: the aTLS userData. */
int atls_spki_hash(X509 *cert, uint8_t ret[ATLS_USER_DATA_SIZE]);

/* Creates an aTLS certificate: fresh P-256 key, self-signed, and, if issuer is non-NULL, the
 * issuer's document for (SHA-256(SPKI), nonce) in a non-critical extension under issuer->oid. */
int atls_certificate_new(const atls_issuer *issuer, const uint8_t *nonce, size_t nonce_len, EVP_PKEY **ret_key,
                         X509 **ret_cert, atls_error *err);

/* Verifies a peer's aTLS certificate: valid self-signature and validity window (the certificate
 * is its own only root), then, if validators are given, the first extension whose OID matches a
 * validator must validate against `nonce` and bind SHA-256 of the certificate's SPKI. With no
 * validators only the self-signed check runs (as Constellation does). On success, the
 * matching validator's index is stored in *ret_validator if non-NULL (-1 if none). */
int atls_certificate_verify(X509 *cert, const atls_validator *validators, size_t n_validators, const uint8_t *nonce,
                            size_t nonce_len, int *ret_validator, atls_error *err);

/* --- connections --- */

/* The issuer, validators and on_reject are used by reference: they must outlive every listener
 * and connection made with the config. Issuers and validators are called on connection threads,
 * several at once. */
typedef struct atls_config {
        /* We attest with this issuer (server: per connection with the client's SNI nonce; client:
         * when the server asks, with its CA-name nonce). NULL: we do not attest. */
        const atls_issuer *issuer;
        /* The peer must attest with one of these. Server: none -> no client certificate is
         * requested. Client: none -> only the self-signed check (Constellation semantics). */
        const atls_validator *validators;
        size_t n_validators;
        /* Handshake (including issuing and validating) must finish within this; 0: 30 s. */
        int64_t handshake_timeout_ms;
        /* Server: most connections at once (handshaking or relaying); 0: ATLS_MAX_CONNECTIONS. */
        unsigned max_connections;
        /* Server: called (on a connection thread) for every refused or failed connection, so the
         * program at the edge can log it. May be NULL. */
        void (*on_reject)(void *userdata, const char *peer_address, const atls_error *err);
        void *on_reject_userdata;
} atls_config;

/* Runs the aTLS handshake on a connected socket (made non-blocking). On success *ret is the
 * established SSL (owning nothing but fd's use; the caller closes fd after SSL_free). */
int atls_handshake_server(int fd, const atls_config *config, SSL **ret, atls_error *err);
int atls_handshake_client(int fd, const atls_config *config, SSL **ret, atls_error *err);

/* Server: listens on "host:port" ("127.0.0.1:0" picks a port; "[::1]:0", ":9000") and serves
 * every aTLS connection through `server` (which must be started and outlive the listener).
 * Each connection gets one thread for its handshake and then its relay. At most
 * config->max_connections (default ATLS_MAX_CONNECTIONS) at once; more are closed at accept and
 * reported with ATLS_REASON_TOO_MANY_CONNECTIONS. */
#define ATLS_MAX_CONNECTIONS 256
typedef struct atls_listener atls_listener;
int atls_listen(rpc_server *server, const char *address, const atls_config *config, int *ret_port,
                atls_listener **ret, atls_error *err);
/* Stops accepting, closes every connection, joins all threads. Accepts NULL. Call before
 * rpc_server_free(), and after rpc_server_request_shutdown() + rpc_server_wait() if answers
 * already given must still arrive: each connection first forwards what gRPC has written and sends
 * close_notify, for at most ATLS_DRAIN_TIMEOUT_MS (atls_conn_free likewise). */
#define ATLS_DRAIN_TIMEOUT_MS 2000
void atls_listener_free(atls_listener *listener);
DEFINE_TRIVIAL_CLEANUP_FUNC(atls_listener *, atls_listener_free);
/* Counts for tests and status: connections accepted, established, refused. */
void atls_listener_stats(atls_listener *listener, unsigned *ret_accepted, unsigned *ret_established,
                         unsigned *ret_refused);

/* Client: connects to "host:port", runs the handshake (refusals come back in err) and returns a
 * gRPC channel over it. The channel serves one connection: when it breaks, dial again. */
typedef struct atls_conn atls_conn;
int atls_dial(const char *address, const atls_config *config, const rpc_channel_options *options, atls_conn **ret,
              atls_error *err);
rpc_channel *atls_conn_channel(atls_conn *conn);
/* True if the relay closed the connection on its own (the peer announced a gRPC message over
 * options->max_receive_message_length, or sent no HTTP/2): then the channel's calls fail with
 * UNAVAILABLE and *ret (if not NULL) says why. */
bool atls_conn_error(atls_conn *conn, atls_error *ret);
/* Frees the channel, closes the TLS connection and joins its relay thread. Accepts NULL. */
void atls_conn_free(atls_conn *conn);
DEFINE_TRIVIAL_CLEANUP_FUNC(atls_conn *, atls_conn_free);
