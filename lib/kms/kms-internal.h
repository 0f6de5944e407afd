/* SPDX-License-Identifier: Apache-2.0 */
/* Backend open functions; kms.c dispatches on the kms:// host (see kms.h, "Backends"). */
#pragma once

#include "kms/kms.h"

typedef int (*kms_backend_open_fn)(const kms_uri *uri, const kms_backend_ops **ret_ops, void **ret_state,
                                   ct_error *err);

/* kms://cluster-kms?key=&salt= (kms-cluster.c) */
int kms_cluster_open(const kms_uri *uri, const kms_backend_ops **ret_ops, void **ret_state, ct_error *err);
int kms_cluster_new(const secret_t *master_secret, const secret_t *salt, const kms_backend_ops **ret_ops,
                    void **ret_state, ct_error *err);
/* kms://kmip?endpoint=&kek=&wrapped=&salt=&client-cert=&client-key=&server-ca= (kms-kmip.c) */
int kms_kmip_open(const kms_uri *uri, const kms_backend_ops **ret_ops, void **ret_state, ct_error *err);
