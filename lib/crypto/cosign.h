/* SPDX-License-Identifier: Apache-2.0 */
/* cosign blob signatures (`cosign sign-blob --key`): the .sig file is base64 (standard, padded)
 * of an ASN.1 DER ECDSA signature over SHA-256 of the exact blob bytes, made with an ECDSA P-256
 * key (reference constellation.md §5.2). Used for measurements.json by the provider, the image
 * tools and constellation-attest. */
#pragma once

#include <openssl/evp.h>

#include "basic/macro.h"

typedef enum cosign_error {
        COSIGN_OK = 0,
        COSIGN_BAD_KEY,             /* the public/private key PEM does not parse or is not ECDSA P-256 */
        COSIGN_BAD_SIGNATURE_FILE,  /* not base64, or not a DER ECDSA signature */
        COSIGN_SIGNATURE_MISMATCH,  /* well-formed signature that does not verify for this blob and key */
} cosign_error;

const char *cosign_error_to_string(cosign_error e);

/* Loads a PEM public key (SubjectPublicKeyInfo); only ECDSA P-256 is accepted. */
int cosign_load_public_key(const char *pem, size_t len, EVP_PKEY **ret);
/* Loads a PEM private key (PKCS#8 or SEC1 EC; unencrypted). */
int cosign_load_private_key(const char *pem, size_t len, EVP_PKEY **ret);

/* Verifies a .sig file's content (whitespace around the base64 is ignored) over blob.
 * Returns 0 if valid, -EBADMSG otherwise with *ret_error set to the reason. */
int cosign_verify_blob(const uint8_t *blob, size_t blob_len, const char *sig_b64, size_t sig_len, EVP_PKEY *key,
                       cosign_error *ret_error);
/* Verifies a signature over a precomputed SHA-256 digest (Rekor hashedrekord entries). */
int cosign_verify_digest(const uint8_t digest[32], const char *sig_b64, size_t sig_len, EVP_PKEY *key,
                         cosign_error *ret_error);
/* Signs blob; *ret is the base64 .sig content (no trailing newline), malloc'd. */
int cosign_sign_blob(const uint8_t *blob, size_t blob_len, EVP_PKEY *key, char **ret);
