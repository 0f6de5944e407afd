/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster's master secret wrapped by a KEK that never leaves the user's KMIP server
 * (lib/kmip/README.md, docs/node.md "Hold your own key: KMIP").
 *
 * Wrapping is one KMIP Encrypt with AES-256-GCM inside the server; unwrapping is one Decrypt. The
 * blob is public (it is useless without the KEK) and lives in the kms://kmip URI, on the control
 * planes' state disks and in Terraform state:
 *
 *   blob = 0x01 (version) || nonce (12) || tag (16) || ciphertext (= master secret length, 16..64)
 *   AAD  = "constellation-kmip-wrap-v1" || 0x00 || KEK unique identifier || 0x00 || salt
 *
 * The AAD binds the blob to its KEK and to the HKDF salt that goes with the master secret, so a
 * blob cannot be replayed under another KEK identity or paired with another salt: the server's GCM
 * tag check refuses it (unwrap-failed). The nonce is drawn by us (RAND_bytes), never reused with
 * one KEK in practice (96 random bits per wrap; a cluster wraps once). */
#pragma once

#include "kmip/kmip.h"

#define KMIP_WRAP_VERSION 0x01
#define KMIP_WRAP_SECRET_MIN 16
#define KMIP_WRAP_SECRET_MAX 64
#define KMIP_WRAP_OVERHEAD (1 + KMIP_GCM_NONCE_SIZE + KMIP_GCM_TAG_SIZE)

int kmip_wrap_master_secret(kmip_client *c, const char *kek_uid, const secret_t *master_secret,
                            const secret_t *salt, uint8_t **ret_blob, size_t *ret_blob_len, ct_error *err);
/* Checks the blob's shape before anything is sent (bad-wrapped), then asks the server. */
int kmip_unwrap_master_secret(kmip_client *c, const char *kek_uid, const uint8_t *blob, size_t blob_len,
                              const secret_t *salt, secret_t **ret_master_secret, ct_error *err);

/* A PEM given either as an absolute file path or inline as "base64:<base64url of the PEM>"
 * (padding optional). `what` names the parameter in errors. Files are read up to 64 KiB. The
 * result is a secret (client keys are). */
int kmip_load_pem_ref(const char *ref, const char *what, secret_t **ret, ct_error *err);

/* Fills a kmip_config from the kms://kmip parameters (strings as decoded from the URI; NULL when
 * absent). endpoint, client-cert, client-key and server-ca are required. */
typedef struct kmip_uri_params {
        const char *endpoint, *server_name, *client_cert, *client_key, *server_ca, *timeout_ms, *attempts;
} kmip_uri_params;
int kmip_config_from_params(const kmip_uri_params *p, kmip_config *ret, ct_error *err);

/* Builds "kms://kmip?endpoint=…&kek=…&wrapped=…&salt=…&client-cert=…&client-key=…&server-ca=…
 * [&server-name=…]" with wrapped and salt in padded base64url (as kms://cluster-kms encodes its
 * key and salt). The file references must be absolute paths of [A-Za-z0-9/._:@,-] or "base64:…";
 * the kek id is percent-encoded where needed. The URI may carry an inline client key: treat it as
 * a secret (the caller frees it with erase_and_free). */
typedef struct kmip_uri_parts {
        const char *endpoint, *kek, *client_cert, *client_key, *server_ca, *server_name;
        const uint8_t *wrapped;
        size_t wrapped_len;
        const secret_t *salt;
} kmip_uri_parts;
int kmip_uri_build(const kmip_uri_parts *p, char **ret, ct_error *err);
