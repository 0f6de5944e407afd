/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of the join service (Constellation bootstrapper/internal/joinclient and
 * disk-mapper/internal/rejoinclient, reference constellation.md §2.3, §7): the joining node dials
 * a join service endpoint over aTLS and attests with its issuer (the join service is not verified:
 * the node has no secret to lose and the ticket only works for an attested node; Constellation does
 * the same), then asks for a ticket.
 *
 *   joinclient_csr_new()       a fresh P-256 key and the kubelet CSR (O=system:nodes,
 *                              CN=system:node:<name>, IP SANs)
 *   joinclient_issue_join()    IssueJoinTicket on one endpoint
 *   joinclient_rejoin()        IssueRejoinTicket on each endpoint in turn; the first answer wins
 *   joinclient_rejoin_loop()   ... again with backoff (joinclient_backoff_ms) until it
 *                              succeeds or *stop is set
 *
 * Everything that carries a key (the responses) is unpacked with rpc_wiping_allocator
 * (lib/rpc/wipe-alloc.h) and returned in secret_t. Errors: ct_error layer "joinclient", reasons: request (bad argument),
 * unreachable (no aTLS connection: the detail has the aTLS reason), rpc-status (the service
 * answered with a status: code and message in the detail), protocol (the answer does not unpack or
 * lacks a key), no-endpoints, stopped. */
#pragma once

#include <grpc/status.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>

#include "atls/atls.h"
#include "basic/error.h"
#include "basic/secret.h"
#include "rpc/wipe-alloc.h"

#define JOINCLIENT_JOIN_METHOD "/join.API/IssueJoinTicket"
#define JOINCLIENT_REJOIN_METHOD "/join.API/IssueRejoinTicket"
#define JOINCLIENT_DEFAULT_PORT 30090
#define JOINCLIENT_MAX_RESPONSE (4 * 1024 * 1024)
#define JOINCLIENT_CALL_TIMEOUT_MS 30000 /* Constellation's rejoin client: 30 s per attempt */


/* A fresh ECDSA P-256 key and a DER CSR for the kubelet: subject O=system:nodes,
 * CN=system:node:<node_name>, subjectAltName with the IP addresses given (may be 0). */
int joinclient_csr_new(const char *node_name, const char *const *ips, size_t n_ips, EVP_PKEY **ret_key,
                       uint8_t **ret_der, size_t *ret_der_len, ct_error *err);

typedef struct joinclient_options {
        const atls_issuer *issuer;    /* we attest with this (qemu-vtpm from the node's TPM) */
        int64_t handshake_timeout_ms; /* 0: 30 s */
        int64_t call_timeout_ms;      /* 0: JOINCLIENT_CALL_TIMEOUT_MS */
} joinclient_options;

typedef struct joinclient_rejoin_ticket {
        secret_t *state_disk_key;
        secret_t *measurement_secret;
} joinclient_rejoin_ticket;
void joinclient_rejoin_ticket_done(joinclient_rejoin_ticket *t);

/* One IssueRejoinTicket call on each endpoint in order until one answers with a ticket. */
int joinclient_rejoin(const char *const *endpoints, size_t n_endpoints, const joinclient_options *opt,
                      const char *disk_uuid, joinclient_rejoin_ticket *ret, ct_error *err);

/* Retry delays: base_ms * 2^attempt, capped at max_ms, then scaled by a random 80..100 % so that
 * many nodes that failed together (a control plane restarting) do not come back in lockstep.
 * base_ms == max_ms gives Constellation's fixed interval (30 s) with the jitter. */
typedef struct joinclient_retry {
        int64_t base_ms; /* 0: 1 s */
        int64_t max_ms;  /* 0: 30 s */
} joinclient_retry;
int64_t joinclient_backoff_ms(const joinclient_retry *retry, unsigned attempt);

/* joinclient_rejoin, then again after joinclient_backoff_ms(retry, attempt) until it succeeds or
 * *stop becomes true (checked at least every 100 ms): -ECANCELED "stopped"; no endpoints at all is
 * -ENOENT at once. on_attempt_failed (may be NULL) is told each failed round. */
int joinclient_rejoin_loop(const char *const *endpoints, size_t n_endpoints, const joinclient_options *opt,
                           const char *disk_uuid, const joinclient_retry *retry, atomic_bool *stop,
                           void (*on_attempt_failed)(void *userdata, const ct_error *err), void *userdata,
                           joinclient_rejoin_ticket *ret, ct_error *err);

/* IssueJoinTicket: the request is packed from the parts, the packed response (which holds the disk
 * key, the measurement secret and, for a control plane, the CA keys) comes back in a secret; unpack
 * it with join__issue_join_ticket_response__unpack(&rpc_wiping_allocator, ...). */
typedef struct joinclient_join_request {
        const char *disk_uuid;
        const uint8_t *csr;
        size_t csr_len;
        bool control_plane;
} joinclient_join_request;
int joinclient_issue_join(const char *endpoint, const joinclient_options *opt, const joinclient_join_request *req,
                          secret_t **ret_response, grpc_status_code *ret_status, ct_error *err);
