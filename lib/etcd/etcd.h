/* SPDX-License-Identifier: Apache-2.0 */
/* A small etcd v3 client: the control planes' shared state (docs/node.md "The shared store").
 *
 * gRPC through lib/rpc with mTLS: the client presents a certificate of the cluster's etcd CA and
 * accepts only a server certificate of that CA for the endpoint's address (etcd runs with
 * --client-cert-auth and --trusted-ca-file = the same CA; lib/pki issues both). Wire format:
 * etcd's etcdserverpb (schemas/etcd.proto): /etcdserverpb.KV/Range, /Put, /Txn and
 * /etcdserverpb.Cluster/MemberAdd, /MemberList.
 *
 * Operations on single keys only (what the node plane needs):
 *   etcd_get   Range of one key -> value and its mod_revision (-ENOENT "not-found")
 *   etcd_put   Put, unconditional
 *   etcd_cas   Txn: if mod_revision(key) == expected (0: the key must not exist) then Put, else
 *              nothing: -ESTALE "compare-failed" and the revision in force. Two writers that both
 *              read revision R cannot both replace the value: the second one's compare fails.
 *
 * Bounds: every call has a deadline (etcd_client_config.timeout_ms, default 5 s); replies larger
 * than ETCD_MAX_RESPONSE are refused by gRPC before they are parsed; a reply is unpacked with a
 * wiping allocator (values may be secrets: the key service's master secret), must carry exactly
 * the shape asked for (one key value at most, the key we asked for, a value no larger than the
 * caller's maximum, at most ETCD_MAX_MEMBERS members) or it is "response-malformed".
 *
 * Errors: negative errno + ct_error, layer "etcd", reasons:
 *   config              a certificate, key or CA file missing or unreadable, a bad endpoint
 *   tls-refused         we refused the server's certificate (not of our etcd CA, wrong address),
 *                       -ECONNREFUSED
 *   unreachable         no connection: etcd down, or etcd refused our client certificate (gRPC
 *                       reports that as a failed read; its message is in the detail), -ECONNREFUSED
 *   timeout             the deadline passed (ours, or etcd's copy of it: UNKNOWN "context deadline
 *                       exceeded"; e.g. no quorum), -ETIMEDOUT
 *   rpc-status          etcd answered with another gRPC status (the detail has code and message)
 *   response-malformed  a reply that does not unpack or does not have the expected shape, -EBADMSG
 *   too-large           a value larger than the caller's maximum, -EFBIG
 *   not-found           etcd_get: the key does not exist, -ENOENT
 *   compare-failed      etcd_cas: the key's revision is not the expected one, -ESTALE
 *   membership (etcd's own refusals, api/v3rpc/rpctypes): not-found (no such member, -ENOENT),
 *   learner-not-ready (a learner not yet in sync with the leader, -EAGAIN), not-learner (promote of
 *   a voter, -EALREADY), too-many-learners (etcd 3.4 allows one, -EBUSY), peer-url-exists (-EEXIST),
 *   quorum-at-risk (strict reconfiguration check: not enough started members, unhealthy, -EBUSY)
 * Nothing here logs above debug level; details never contain a value. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "basic/error.h"
#include "basic/macro.h"
#include "basic/secret.h"

#define ETCD_MAX_RESPONSE (1024 * 1024) /* gRPC receive limit of a client channel */
#define ETCD_MAX_REQUEST (1024 * 1024)
#define ETCD_MAX_KEY 1024               /* our keys are short paths under ETCD_PREFIX */
#define ETCD_MAX_MEMBERS 64
#define ETCD_DEFAULT_TIMEOUT_MS 5000
#define ETCD_DEFAULT_CLIENT_PORT 2379
#define ETCD_DEFAULT_PEER_PORT 2380
#define ETCD_PREFIX "/constellation/"

#define ETCD_METHOD_RANGE "/etcdserverpb.KV/Range"
#define ETCD_METHOD_PUT "/etcdserverpb.KV/Put"
#define ETCD_METHOD_TXN "/etcdserverpb.KV/Txn"
#define ETCD_METHOD_MEMBER_ADD "/etcdserverpb.Cluster/MemberAdd"
#define ETCD_METHOD_MEMBER_LIST "/etcdserverpb.Cluster/MemberList"
#define ETCD_METHOD_MEMBER_REMOVE "/etcdserverpb.Cluster/MemberRemove"
#define ETCD_METHOD_MEMBER_PROMOTE "/etcdserverpb.Cluster/MemberPromote"

/* The files lib/pki issues under the PKI directory (kubeadm's layout where kubeadm has one). */
#define ETCD_PKI_CA "etcd/ca.crt"
#define ETCD_PKI_CLIENT_CERT "etcd/constellation-client.crt"
#define ETCD_PKI_CLIENT_KEY "etcd/constellation-client.key"

typedef struct etcd_client etcd_client;

typedef struct etcd_client_config {
        const char *endpoint;  /* "host:port" (IPv6 bracketed); the server certificate must name host */
        const char *ca_file;   /* PEM: the etcd CA */
        const char *cert_file; /* PEM: our client certificate (etcd CA) */
        const char *key_file;  /* PEM: its key (read into wiped memory) */
        int64_t timeout_ms;    /* per call; 0: ETCD_DEFAULT_TIMEOUT_MS */
} etcd_client_config;

/* The config for a node's local etcd from a PKI directory (ETCD_PKI_* under pki_dir). The strings
 * are allocated into *ret_storage (free() it after etcd_client_new). */
int etcd_client_config_from_pki(const char *endpoint, const char *pki_dir, etcd_client_config *ret,
                                char **ret_storage);

int etcd_client_new(const etcd_client_config *cfg, etcd_client **ret, ct_error *err);
void etcd_client_free(etcd_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(etcd_client *, etcd_client_free);
const char *etcd_client_endpoint(const etcd_client *c);

/* A key's value (in *ret_value, secret memory, len = the value's length) and its mod_revision.
 * max_value bounds the value ("too-large"). */
int etcd_get(etcd_client *c, const char *key, size_t max_value, secret_t **ret_value, int64_t *ret_mod_revision,
             ct_error *err);
/* Put; *ret_revision (may be NULL) is the store's revision after the write (= the key's new
 * mod_revision). */
int etcd_put(etcd_client *c, const char *key, const void *value, size_t len, int64_t *ret_revision, ct_error *err);
/* Compare-and-swap: Put only if the key's mod_revision equals expected_mod_revision (0: only if
 * the key does not exist). On success *ret_revision = the new mod_revision. On a failed compare
 * -ESTALE "compare-failed" and, if ret_current is given, the key's current mod_revision (0: it
 * does not exist). */
int etcd_cas(etcd_client *c, const char *key, int64_t expected_mod_revision, const void *value, size_t len,
             int64_t *ret_revision, int64_t *ret_current, ct_error *err);

typedef struct etcd_member {
        uint64_t id;
        char *name;             /* "" for a member added but not started yet */
        char **peer_urls;       /* NULL-terminated */
        char **client_urls;     /* NULL-terminated */
        bool learner;
} etcd_member;
typedef struct etcd_members {
        etcd_member *items;
        size_t n;
        uint64_t added_id;      /* etcd_member_add: the new member's ID */
} etcd_members;
void etcd_members_done(etcd_members *m);
/* MemberList; MemberAdd of a (voting) member with one peer URL: etcd answers the new member's ID and
 * the member list the new member must start with (--initial-cluster, state "existing"). */
int etcd_member_list(etcd_client *c, etcd_members *ret, ct_error *err);
int etcd_member_add(etcd_client *c, const char *peer_url, etcd_members *ret, ct_error *err);
/* MemberAdd of a learner (etcd 3.4): it replicates but does not vote, so a learner that never starts
 * costs no quorum and can always be removed; it serves no client request but a serializable Range
 * until it is promoted. */
int etcd_member_add_learner(etcd_client *c, const char *peer_url, etcd_members *ret, ct_error *err);
/* MemberRemove / MemberPromote of a member ID; *ret (may be NULL) gets the member list after it.
 * Promote: learner-not-ready until the learner caught up with the leader, not-learner for a voter. */
int etcd_member_remove(etcd_client *c, uint64_t id, etcd_members *ret, ct_error *err);
int etcd_member_promote(etcd_client *c, uint64_t id, etcd_members *ret, ct_error *err);

/* ETCD_INITIAL_CLUSTER as `etcdctl member add` prints it: "name=peer-url,..." with self_name for the
 * member self (the new one: etcd knows no name for it until it starts). */
int etcd_initial_cluster(const etcd_members *m, uint64_t self, const char *self_name, char **ret);

/* A control plane joining (docs/node.md "A control plane joins"): the member with peer_url, if one
 * exists (an earlier incarnation of that node), is removed, then peer_url is added as a learner; the
 * new member's ETCD_INITIAL_CLUSTER (name for it) in *ret_initial_cluster (malloc'd), its ID in
 * *ret_id (may be NULL). Returns 1 if an earlier member was removed, else 0. */
int etcd_join_learner(etcd_client *c, const char *name, const char *peer_url, char **ret_initial_cluster,
                      uint64_t *ret_id, ct_error *err);

/* Learners seen, and since when (etcd_tend_learners' memory between rounds). */
typedef struct etcd_learner {
        uint64_t id;
        int64_t since_ms;
} etcd_learner;
typedef struct etcd_learners {
        etcd_learner items[ETCD_MAX_MEMBERS];
        size_t n;
} etcd_learners;
void etcd_learners_done(etcd_learners *t);
/* One round: every learner in MemberList is promoted if etcd agrees (in sync with the leader); one
 * that stayed a learner for timeout_ms since this tracker first saw it is removed (its node never
 * started its member, or never caught up). A member already promoted or removed by another control
 * plane counts as done. report (may be NULL) is told of each promotion (promoted true) and removal
 * (why: the last promote refusal). Returns the number of learners still pending (>= 0) or a
 * negative errno when MemberList failed. */
int etcd_tend_learners(etcd_client *c, etcd_learners *t, int64_t now_ms, int64_t timeout_ms,
                       void (*report)(void *userdata, uint64_t id, const char *peer_url, bool promoted,
                                      const ct_error *why),
                       void *userdata, ct_error *err);

/* The parsers of etcd's replies (outside bytes; fuzz/etcd). Each unpacks with a wiping allocator,
 * checks the shape, and copies out only what is asked for. */
int etcd_parse_range_response(const uint8_t *buf, size_t len, const char *key, size_t max_value,
                              secret_t **ret_value, int64_t *ret_mod_revision, ct_error *err);
int etcd_parse_put_response(const uint8_t *buf, size_t len, int64_t *ret_revision, ct_error *err);
/* A Txn whose failure branch is a Range of key: *ret_succeeded, on success the header revision,
 * on failure the key's current mod_revision (0 if absent). */
int etcd_parse_cas_response(const uint8_t *buf, size_t len, const char *key, bool *ret_succeeded,
                            int64_t *ret_revision, ct_error *err);
int etcd_parse_members_response(const uint8_t *buf, size_t len, bool member_add, etcd_members *ret, ct_error *err);
