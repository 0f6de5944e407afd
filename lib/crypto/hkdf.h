/* SPDX-License-Identifier: Apache-2.0 */
/* Key derivation as Constellation does it (reference constellation.md §5.4, §6):
 *   DeriveKey(secret, salt, info, L) = HKDF-SHA256 (RFC 5869, extract then expand)
 *   data key "id"      = HKDF(master secret, master secret salt, "key-" + id)
 *   measurement secret = data key "measurementSecret"
 *   cluster ID         = HKDF(measurement secret, measurement salt, "key-clusterID")
 *   PCR 15 after init  = SHA-256(0^32 || SHA-256(cluster ID))   (TPM2_PCR_Event, then extend)
 * Outputs are secrets and come back in locked, wiped-on-free memory. */
#pragma once

#include "basic/secret.h"

#define KDF_KEY_PREFIX "key-"
#define KDF_MEASUREMENT_SECRET_ID "measurementSecret"
#define KDF_CLUSTER_ID_INFO "key-clusterID"
#define KDF_DEFAULT_LENGTH 32
#define KDF_MAX_LENGTH (255 * 32) /* RFC 5869 §2.3: L <= 255 * HashLen */

int hkdf_sha256(const void *secret, size_t secret_len, const void *salt, size_t salt_len, const void *info,
                size_t info_len, size_t length, secret_t **ret);
/* Data key for a key ID (without the "key-" prefix, which is added here). */
int kdf_data_key(const secret_t *master_secret, const secret_t *salt, const char *key_id, size_t length,
                 secret_t **ret);
int kdf_measurement_secret(const secret_t *master_secret, const secret_t *salt, secret_t **ret);
/* 32-byte cluster ID. Not secret itself (it is measured and shown), but derived from one. */
int kdf_cluster_id(const secret_t *measurement_secret, const uint8_t *measurement_salt, size_t salt_len,
                   uint8_t ret[32]);
/* The SHA-256 PCR 15 value a node has after it was bound to cluster_id. */
void kdf_expected_pcr15(const uint8_t cluster_id[32], uint8_t ret[32]);
