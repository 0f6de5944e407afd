/* SPDX-License-Identifier: Apache-2.0 */
/* The bootstrapper and the join service (join.c has the steps; docs/node.md the contract). */
#pragma once

#include <stdatomic.h>

#include "bootstrapper.h"
#include "joinclient/joinclient.h"

/* The join service's files (join.c, docs/node.md "What the bootstrapper writes at init"). */
#define JOIN_CONFIG_ATTESTATION "attestationConfig"
#define JOIN_CONFIG_SALT "measurementSalt"
/* The kubelet's client certificate (PEM) and key (0600) from the join ticket, in kubernetes_dir. */
#define JOIN_KUBELET_CERT "kubelet-client-crt.pem"
#define JOIN_KUBELET_KEY "kubelet-client-key.pem"
#define JOIN_DEFAULT_KUBEADM "/run/state/bin/kubeadm"

/* After a successful Init: <config_dir>/attestationConfig ({"measurements":{…}} with this node's
 * SHA-256 PCRs 4, 8, 9, 11, 12, 13 enforced; version 0) and <config_dir>/measurementSalt (the 32
 * raw bytes), 0600, atomically. */
int bootstrapper_write_join_config(const bootstrapper_config *cfg, const uint8_t *measurement_salt, size_t salt_len,
                                   ct_error *err);
/* The attestationConfig document alone (NUL-terminated, caller frees). */
int bootstrapper_join_config_json(const bootstrapper_config *cfg, char **ret_json, size_t *ret_len, ct_error *err);

/* The control planes' shared store (etcd.c, docs/node.md "The shared store"). After Init, and on
 * every start of a bootstrapped control plane, when an etcd endpoint is configured:
 *   1. this node's etcd certificates from the cluster etcd CA (lib/pki pki_etcd_certs);
 *   2. etcd's configuration as an environment file (0600, the unit's EnvironmentFile; written once,
 *      kept on restarts): data dir on the state disk, client URLs https://127.0.0.1:<port> (+ the
 *      node's IP), peer URL https://<node IP>:<peer port>, mTLS for both with the etcd CA, a new
 *      one-member cluster;
 *   3. `systemctl start <unit>` (Type=notify: returns once etcd serves), unless unit is "";
 *   4. waits for etcd (mTLS, up to wait_ms) and stores, each only if absent: the join service's
 *      attestationConfig and measurementSalt, and the key service's configuration from config_dir
 *      (kms-uri, or mastersecret and salt), whose files are then removed: etcd is the one source. */
typedef struct bootstrapper_etcd_options {
        const char *endpoint;  /* 127.0.0.1:2379: what the node's services dial */
        const char *unit;      /* constellation-etcd.service; "": started by someone else (tests) */
        const char *env_file;  /* /var/config/etcd.env */
        const char *data_dir;  /* /var/lib/etcd (the state disk) */
        int peer_port;         /* 2380 */
        int64_t wait_ms;       /* how long etcd may take to answer */
} bootstrapper_etcd_options;
int bootstrapper_shared_state(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o, ct_error *err);

/* A control plane joining the store (its ticket's control-plane files, with the etcd CA, already in
 * cfg->pki_dir): its etcd certificates; MemberAdd of its peer URL on member_endpoint (an existing
 * member's client URL; skipped if a member with that peer URL exists: a restart); etcd.env with the
 * member list MemberAdd answered and ETCD_INITIAL_CLUSTER_STATE=existing; start the unit; wait until
 * the local etcd serves (the values are replicated: nothing is stored). Not yet called: the
 * bootstrapper has no control-plane join path (docs/node.md "Not done yet"). */
int bootstrapper_etcd_member_join(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o,
                                  const char *member_endpoint, ct_error *err);

/* A control plane that joined (its ticket's control-plane files, with the etcd CA, in cfg->pki_dir;
 * the join service added it as an etcd learner): its etcd certificates; etcd.env with
 * ETCD_INITIAL_CLUSTER = initial_cluster (the ticket's etcd/initial-cluster) and state "existing";
 * start the unit; wait until the local member answers a linearizable Range (i.e. the join service
 * promoted the learner), at most o->wait_ms. */
int bootstrapper_etcd_member_start(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o,
                                   const char *initial_cluster, ct_error *err);

/* A worker or control plane joins (join.c has the steps). */
typedef struct join_options {
        const bootstrapper_config *cfg;
        const atls_issuer *issuer;    /* the node attests with this */
        int64_t handshake_timeout_ms; /* 0: joinclient's default */
        joinclient_retry retry;       /* between rounds over all endpoints */
        atomic_bool *stop;            /* set: give up (-ECANCELED "stopped") */
        const char *kubeadm;          /* run `kubeadm join` if this is executable */
        bool *ret_locked;             /* set once PCR 15 was extended (a failure then needs a reboot) */
        /* A control plane: called right before the lock (PCR 15); false: Init took the node (or is
         * taking it), the join stops ("init-won"). NULL: no Init to race with. */
        bool (*claim)(void *userdata);
        void *claim_userdata;
        const bootstrapper_etcd_options *etcd; /* a control plane's shared store; NULL: none */
} join_options;
int bootstrapper_join(const join_options *o, ct_error *err);
/* A control-plane ticket's etcd/initial-cluster (from an unauthenticated join service, bound for
 * etcd.env): "name=https://ip:port" entries, comma-separated, DNS-1123 names, IP hosts, at most 64,
 * one of them exactly this node's peer URL under its name (cfg->md, o->peer_port). Reason
 * join: ticket-invalid. */
int bootstrapper_check_initial_cluster(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o,
                                       const uint8_t *data, size_t len, ct_error *err);
/* The metadata's join endpoints a join dials: all, but a control plane's own (its vpc_ip) skipped. */
size_t bootstrapper_join_endpoints(const metadata *md);
