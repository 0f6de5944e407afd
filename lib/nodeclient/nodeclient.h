/* SPDX-License-Identifier: Apache-2.0 */
/* The client of a node's bootstrapper: /init.API/Init over aTLS (reference constellation.md §2,
 * cli/internal/cmd/init.go + internal/grpc/dialer), as Constellation's CLI and its Terraform
 * provider call it.
 *
 *   nodeclient_policy_from_measurements()   measurements.json -> the qemu-vtpm validator's policy
 *   nodeclient_init()                       dial aTLS (the node must attest against the policy:
 *                                           nothing is sent otherwise), send the InitRequest,
 *                                           read the stream: the first message is init_success or
 *                                           init_failure, log chunks follow
 *
 * The request carries the master secret (inside kms_uri) or a ready kms:// URI the caller gives
 * (e.g. kms://kmip?…, which may carry a KMIP client key), the init secret and the measurement
 * salt: it is built and packed in wiped memory; the kubeconfig that comes back holds the admin
 * client key and is returned in a secret_t. Nothing here prints; errors come back as a negative
 * errno with a ct_error (layer "nodeclient") whose reason says which step failed:
 *
 *   reason               errno          what
 *   measurements         -EINVAL        a measurement is not a 32-byte SHA-256 PCR, or none given
 *   request              -EINVAL        a parameter is missing or too short (names it); both or
 *                                       neither of master_secret+salt and kms_uri
 *   atls-refused         -EPERM         the node did not attest (the detail has the aTLS reason,
 *                                       e.g. "evidence-measurements: PCR 9: expected …, got …")
 *   unreachable          -ECONNREFUSED  no aTLS connection (connect, timeout, TLS below aTLS)
 *   rpc-status           -EREMOTEIO     the node ended the call with a gRPC status (code in
 *                                       ret->status, message in the detail): e.g.
 *                                       PERMISSION_DENIED "init: wrong-init-secret: …",
 *                                       FAILED_PRECONDITION "node is already being activated"
 *   init-failure         -EREMOTEIO     the node answered init_failure (its error in the detail,
 *                                       the log in ret->log)
 *   protocol             -EBADMSG       a message that does not unpack, a second verdict, none
 */
#pragma once

#include <grpc/status.h>
#include <stdint.h>

#include "atls/qemu-vtpm.h"
#include "basic/error.h"
#include "basic/secret.h"
#include "measurements/measurements.h"

#define NODECLIENT_INIT_METHOD "/init.API/Init"
#define NODECLIENT_CLUSTER_ID_LEN 32
#define NODECLIENT_MAX_LOG (16u * 1024 * 1024) /* log chunks beyond this are dropped (counted) */
#define NODECLIENT_MAX_MESSAGE (64u * 1024 * 1024)

#define NODECLIENT_REASON_MEASUREMENTS "measurements"
#define NODECLIENT_REASON_REQUEST "request"
#define NODECLIENT_REASON_ATLS_REFUSED "atls-refused"
#define NODECLIENT_REASON_UNREACHABLE "unreachable"
#define NODECLIENT_REASON_RPC_STATUS "rpc-status"
#define NODECLIENT_REASON_INIT_FAILURE "init-failure"
#define NODECLIENT_REASON_PROTOCOL "protocol"

/* The validator's policy, owning its measurement array (the validator points into it, so keep the
 * policy alive and unmoved while the validator is used). */
typedef struct nodeclient_policy {
        attdoc_measurement items[MEASUREMENTS_MAX_INDEX + 1];
        atls_qemu_vtpm_policy policy;
        atls_validator validator;
} nodeclient_policy;

/* Every measurement must be a 32-byte value (qemu-vtpm PCRs are SHA-256); warn-only ones stay
 * warn-only. *ret is filled in place (it is self-referencing: do not copy it afterwards). */
int nodeclient_policy_from_measurements(const measurements *m, nodeclient_policy *ret, ct_error *err);

typedef struct nodeclient_component {
        const char *url, *hash, *install_path;
        bool extract;
} nodeclient_component;

#define NODECLIENT_MAX_KMS_URI 4096 /* lib/kms KMS_MAX_URI: the node refuses longer ones */

/* The KMS comes from exactly one of: master_secret + salt (sent as kms://cluster-kms?key=…&salt=…),
 * or kms_uri (sent as it is). */
typedef struct nodeclient_init_params {
        const secret_t *master_secret;    /* >= 16 bytes (KMS_MASTER_SECRET_MIN); NULL with kms_uri */
        const secret_t *salt;             /* master secret salt, >= 32 bytes; NULL with kms_uri */
        const secret_t *measurement_salt; /* exactly 32 bytes */
        const secret_t *init_secret;      /* the secret whose bcrypt hash the node's metadata has */
        const char *cluster_name;         /* default "constell" */
        const char *kubernetes_version;   /* default "v1.30.4" */
        const char *service_cidr;         /* default "10.96.0.0/12" */
        const char *const *apiserver_cert_sans;
        size_t n_apiserver_cert_sans;
        const nodeclient_component *components;
        size_t n_components;
        bool conformance_mode;
        int64_t handshake_timeout_ms; /* 0: 60 s */
        int64_t call_timeout_ms;      /* whole Init call; 0: 30 min (kubeadm init takes minutes) */
        const secret_t *kms_uri;      /* a ready kms:// URI (kms://kmip?… from `constellation-attest kmip
                                       * wrap-master-secret`), instead of master_secret + salt: "kms://",
                                       * no NUL, at most NODECLIENT_MAX_KMS_URI bytes; the node parses it */
} nodeclient_init_params;

typedef struct nodeclient_init_result {
        secret_t *kubeconfig; /* the admin kubeconfig (holds the admin client key) */
        uint8_t cluster_id[NODECLIENT_CLUSTER_ID_LEN];
        uint8_t *owner_id; /* Constellation leaves it empty; kept if a node sends one */
        size_t owner_id_len;
        char *log;  /* the node's log chunks, concatenated (NUL-terminated; may be NULL) */
        size_t log_len;
        size_t log_dropped;        /* bytes beyond NODECLIENT_MAX_LOG */
        bool connected;            /* the node attested and the request may have left: a failure from
                                    * here on must not be retried (Init is not resumable); false: nothing
                                    * was sent, an "unreachable" may be retried (the node still boots) */
        grpc_status_code status;   /* the call's final gRPC status */
        char *status_message;      /* its message (may be NULL) */
} nodeclient_init_result;

/* kms://cluster-kms?key=<b64url>&salt=<b64url> (Constellation uri.MasterSecret.EncodeToURI,
 * padded URL-safe base64). In a secret_t (NUL-terminated inside, len without the NUL). */
int nodeclient_kms_uri(const secret_t *master_secret, const secret_t *salt, secret_t **ret);

/* Init one node at endpoint ("host:port"). On success (the node answered init_success) returns 0
 * and fills *ret. On an init_failure, an rpc status or a protocol error also fills *ret with what
 * arrived (status, log) so the caller can show the node's log; free it with
 * nodeclient_init_result_done() either way. */
int nodeclient_init(const char *endpoint, const atls_validator *validator, const nodeclient_init_params *params,
                    nodeclient_init_result *ret, ct_error *err);
void nodeclient_init_result_done(nodeclient_init_result *r);
