/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-joinservice's parts (Constellation joinservice/internal/server, reference
 * constellation.md §2.3), in ct-joinservice so tests, fuzzers and the bench reach them.
 *
 * A joining node dials :30090 over aTLS and attests (qemu-vtpm); the service validates the document
 * against the cluster's attestation configuration (lib/joinconfig: the measurements the cluster was
 * initialised with, PCR 15 = 0 always enforced) before any call reaches a handler. Then:
 *
 *   /join.API/IssueJoinTicket     disk_uuid (the joiner's LUKS2 UUID, 8-4-4-4-12 hex) and a kubelet
 *                                 CSR (ECDSA P-256, O=system:nodes, CN=system:node:<name>, IP SANs)
 *                                 -> state disk key `key-<lower-case uuid>`, measurement salt and
 *                                 secret, kubelet certificate (cluster CA, lib/pki), API server
 *                                 endpoint, bootstrap token, CA hash "sha256:<hex of SPKI>", and for
 *                                 control planes the control-plane files (§2.3 names)
 *   /join.API/IssueRejoinTicket   disk_uuid -> state disk key, measurement secret
 *   /joinconfig.API/UpdateAttestationConfig   (plain gRPC listener, the update carries its own
 *                                 authentication) a signed attestation config update
 *
 * Keys come from the key service (/kms.API/GetDataKey, plain gRPC to 127.0.0.1:9000) or, for tests,
 * from a lib/kms URI. Every refusal is logged once with its reason (which field, which PCR: the
 * aTLS refusals by lib/service's on_reject) and never with a secret.
 *
 * Errors: ct_error layer "join", reasons: request-malformed, uuid-invalid, busy, keys-unavailable,
 * ca-unavailable, token-failed, plus lib/pki's csr-* and lib/joinconfig's reasons. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "atls/qemu-vtpm.h"
#include "basic/error.h"
#include "basic/secret.h"
#include "joinconfig/joinconfig.h"
#include "etcd/etcd.h"
#include "kms/kms.h"
#include "metadata/metadata.h"
#include "pki/pki.h"
#include "rpc/rpc.h"

#define JOIN_ISSUE_JOIN_TICKET_METHOD "/join.API/IssueJoinTicket"
#define JOIN_ISSUE_REJOIN_TICKET_METHOD "/join.API/IssueRejoinTicket"
#define JOIN_UPDATE_CONFIG_METHOD "/joinconfig.API/UpdateAttestationConfig"
#define JOIN_LISTEN "0.0.0.0:30090"        /* constants.go JoinServiceNodePort */
#define JOIN_UPDATE_LISTEN "0.0.0.0:30091" /* ours: attestation config updates */
#define JOIN_KEYSERVICE "127.0.0.1:9000"
#define JOIN_MAX_REQUEST (64 * 1024)
#define JOIN_KEY_LENGTH 32
#define JOIN_UUID_LEN 36
#define JOIN_MAX_INFLIGHT 32                     /* tickets being issued at once; more: UNAVAILABLE busy */
#define JOIN_KEY_TIMEOUT_MS 5000                 /* one GetDataKey call */
#define JOIN_TOKEN_TTL "15m0s"                   /* Constellation's bootstrap token TTL */
#define JOIN_MAX_CONNECTIONS 128
#define JOIN_HANDSHAKE_TIMEOUT_MS 20000

/* Where data keys come from. */
typedef struct join_keys {
        kms *kms;          /* a lib/kms URI (tests, or a KMS reachable from the node) */
        rpc_channel *chan; /* else the key service */
        int64_t timeout_ms;
} join_keys;
int join_keys_open(const char *uri, const char *keyservice, join_keys *ret, ct_error *err);
void join_keys_done(join_keys *k);
/* The data key `id` (without "key-") of `length` bytes. Reason keys-unavailable (-EAGAIN) when the
 * key service does not answer in time. */
int join_keys_get(join_keys *k, const char *id, size_t length, secret_t **ret, ct_error *err);

/* The attestation policy in force, swapped atomically on an accepted update: validations that
 * started with the old one finish with it (reference counted). */
typedef struct join_policy {
        atomic_int refs;
        uint64_t version;
        attdoc_measurement items[MEASUREMENTS_MAX_INDEX + 1];
        atls_qemu_vtpm_policy policy;
        atls_validator validator;
} join_policy;

typedef struct join_options {
        const char *pki_dir;         /* kubeadm's /etc/kubernetes/pki */
        const char *api_endpoint;    /* "host:6443" */
        const char *kubeadm;         /* NULL: the token is made but not registered (host tests) */
        const char *kubeconfig;      /* for kubeadm token create */
        const joinconfig_store *store;
        join_keys *keys;             /* borrowed */
        /* Control-plane joiners (docs/node.md "A control plane joins"): only a joiner whose kubelet
         * CSR carries exactly one IP address, one of the infrastructure's control planes
         * (metadata control_plane_ips), gets the control-plane files ("not-control-plane" else). */
        const metadata *infra;       /* NULL or no control_plane_ips: every control-plane request refused */
        etcd_client *etcd;           /* the shared store: the joiner is added as a learner (NULL: no etcd) */
        int etcd_peer_port;          /* the joiners' etcd peer port (ETCD_DEFAULT_PEER_PORT) */
        int64_t learner_timeout_ms;  /* a learner not promotable for this long is removed */
} join_options;

/* The extra control-plane file with the joiner's ETCD_INITIAL_CLUSTER (the members after it was
 * added as a learner, its own entry under its node name). */
#define JOIN_CP_FILE_INITIAL_CLUSTER "etcd/initial-cluster"
#define JOIN_LEARNER_TIMEOUT_MS (10 * 60 * 1000)

typedef struct joinservice {
        join_options opt;
        pki_ca ca;
        char ca_hash[7 + 64 + 1]; /* sha256:<hex> */
        pthread_mutex_t lock;     /* config, policy: held only to read or swap them, never across I/O */
        pthread_mutex_t update_lock; /* serialises updates and refreshes (store I/O): a slow store
                                      * never holds `lock`, which every aTLS validation takes */
        joinconfig config;
        join_policy *policy;
        secret_t *signing_key;    /* key-attestationConfigSigning */
        atomic_uint inflight;
        atomic_uint issued, rejoined, refused;
        pthread_mutex_t members_lock; /* learners */
        etcd_learners learners;
} joinservice;

/* One round of promoting the learners control-plane joiners became and removing the ones that never
 * caught up (etcd_tend_learners; the refresh thread calls it). Returns the learners pending. */
int joinservice_tend_members(joinservice *js, ct_error *err);

/* Loads the CA, the configuration (store) and the signing key. Reasons: ca-unavailable,
 * keys-unavailable, joinconfig's. */
int joinservice_init(joinservice *js, const join_options *opt, ct_error *err);
void joinservice_done(joinservice *js);

/* The validator aTLS uses: the qemu-vtpm validator with the policy in force. */
atls_validator joinservice_validator(joinservice *js);

/* IssueJoinTicketRequest, unpacked strictly (at most JOIN_MAX_REQUEST, re-packs to its own length:
 * no unknown fields, no NUL inside a string), the uuid's shape checked and lower-cased into uuid.
 * Fuzz target. */
typedef struct join_request {
        char uuid[JOIN_UUID_LEN + 1];
        const uint8_t *csr; /* points into the unpacked message */
        size_t csr_len;
        bool control_plane;
        void *msg; /* Join__IssueJoinTicketRequest */
} join_request;
int join_request_parse(const uint8_t *buf, size_t len, join_request *ret, ct_error *err);
void join_request_done(join_request *r);
int join_rejoin_request_parse(const uint8_t *buf, size_t len, char uuid[static JOIN_UUID_LEN + 1], ct_error *err);
/* 8-4-4-4-12 hex digits; lower-cased into out. */
int join_uuid_normalize(const char *in, size_t len, char out[static JOIN_UUID_LEN + 1], ct_error *err);

/* The response packed into a secret (state disk key, measurement secret, control-plane keys). */
int joinservice_issue_join_ticket(joinservice *js, const uint8_t *req, size_t len, secret_t **ret, ct_error *err);
int joinservice_issue_rejoin_ticket(joinservice *js, const uint8_t *req, size_t len, secret_t **ret, ct_error *err);
/* UpdateAttestationConfigRequest { bytes signed_update = 1; } -> empty response. The store's
 * compare-and-swap decides between concurrent updates on several control planes (lib/joinconfig). */
int joinservice_update_config(joinservice *js, const uint8_t *req, size_t len, ct_error *err);
/* Takes a newer configuration another control plane stored (the shared store), if there is one. */
int joinservice_refresh_config(joinservice *js, bool *ret_changed, ct_error *err);
int join_update_request_parse(const uint8_t *buf, size_t len, const uint8_t **ret_doc, size_t *ret_len,
                              ct_error *err);

/* rpc handlers (userdata = joinservice*). */
void joinservice_join_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata);
void joinservice_rejoin_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata);
void joinservice_update_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata);

/* A kubeadm bootstrap token "[a-z0-9]{6}.[a-z0-9]{16}" (kubeadm's format). */
int join_bootstrap_token(char ret[static 24]);
/* "sha256:<hex of SHA-256(DER SubjectPublicKeyInfo)>", kubeadm's discovery-token-ca-cert-hash. */
int join_ca_cert_hash(X509 *ca, char ret[static 72]);
