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

/* A worker joins (join.c has the steps). */
typedef struct join_options {
        const bootstrapper_config *cfg;
        const atls_issuer *issuer;    /* the node attests with this */
        int64_t handshake_timeout_ms; /* 0: joinclient's default */
        joinclient_retry retry;       /* between rounds over all endpoints */
        atomic_bool *stop;            /* set: give up (-ECANCELED "stopped") */
        const char *kubeadm;          /* run `kubeadm join` if this is executable */
        bool *ret_locked;             /* set once PCR 15 was extended (a failure then needs a reboot) */
} join_options;
int bootstrapper_join(const join_options *o, ct_error *err);
