/* SPDX-License-Identifier: Apache-2.0 */
/* Ephemeral X.509 certificates: go-plugin AutoMTLS server certificates, attested-TLS
 * certificates (lib/atls builds its per-connection certificate here), and test PKIs. Keys are
 * fresh ECDSA P-256 (or P-384/P-521) keys, or one the caller made. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "basic/macro.h"

typedef struct x509_params {
        const char *common_name;      /* Subject CN; NULL: none */
        const char *organization;     /* Subject O; NULL: none */
        const char *const *dns_names; /* SAN DNS names, NULL-terminated; NULL: no SAN */
        bool is_ca;                   /* basicConstraints CA:TRUE + keyCertSign */
        bool server_auth;             /* EKU serverAuth */
        bool client_auth;             /* EKU clientAuth */
        int64_t not_before_offset_s;  /* relative to now; e.g. -30 */
        int64_t lifetime_s;           /* from now */
        const char *curve;            /* "P-256" (default), "P-384", "P-521" */
        /* The certificate's key, when the caller made it first (aTLS binds its evidence to the key
         * before the certificate exists); NULL: a fresh key on `curve`. Not taken over: ret_key
         * then gets a new reference to it. */
        EVP_PKEY *subject_key;
        /* One extra non-critical extension (attested TLS evidence), by dotted OID. */
        const char *extra_oid;
        const uint8_t *extra_value;
        size_t extra_value_len;
        /* Issuer; NULL: self-signed. */
        EVP_PKEY *issuer_key;
        X509 *issuer_cert;
} x509_params;

/* Creates a key and a certificate. Any of the ret_* may be NULL. PEM strings are malloc'd; the
 * key PEM is a secret: free it with erase_and_free(). */
int x509_issue(const x509_params *params, EVP_PKEY **ret_key, X509 **ret_cert, char **ret_key_pem,
               char **ret_cert_pem);

/* PEM <-> objects. */
int x509_to_pem(X509 *cert, char **ret);
int x509_to_der(X509 *cert, uint8_t **ret, size_t *ret_len);
int x509_key_to_pem(EVP_PKEY *key, char **ret);
int x509_from_pem(const char *pem, size_t len, X509 **ret);
