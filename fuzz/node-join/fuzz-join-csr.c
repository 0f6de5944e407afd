/* SPDX-License-Identifier: Apache-2.0 */
/* The kubelet CSR handling of the join service: lib/pki's pki_sign_node_csr with a CA made once in
 * memory. A signed certificate must carry O=system:nodes and a CN with the node prefix. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pki/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pki_ca ca;

static void make_ca(void) {
        ca.key = EVP_EC_gen("P-256");
        ca.cert = X509_new();
        X509_set_version(ca.cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(ca.cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(ca.cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(ca.cert), 3600L * 24 * 365);
        X509_NAME *n = X509_get_subject_name(ca.cert);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) "kubernetes", -1, -1, 0);
        X509_set_issuer_name(ca.cert, n);
        X509_set_pubkey(ca.cert, ca.key);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, ca.cert, ca.cert, NULL, NULL, 0);
        X509_EXTENSION *e1 = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash"),
                       *e2 = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        if (!e1 || !e2 || !X509_add_ext(ca.cert, e1, -1) || !X509_add_ext(ca.cert, e2, -1))
                abort();
        X509_EXTENSION_free(e1);
        X509_EXTENSION_free(e2);
        if (X509_sign(ca.cert, ca.key, EVP_sha256()) <= 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!ca.key)
                make_ca();
        uint8_t *der = NULL;
        size_t der_len = 0;
        ct_error err = CT_ERROR_INIT;
        if (pki_sign_node_csr(&ca, data, size, NULL, time(NULL), &der, &der_len, &err) < 0) {
                if (!err.reason || strncmp(err.reason, "csr-", 4) != 0) {
                        fprintf(stderr, "unexpected refusal: %s: %s\n", err.reason ?: "(none)", err.detail);
                        abort();
                }
                return 0;
        }
        const uint8_t *p = der;
        X509 *cert = d2i_X509(NULL, &p, (long) der_len);
        if (!cert)
                abort();
        char buf[512];
        X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
        if (!strstr(buf, "O=system:nodes") || !strstr(buf, "CN=system:node:"))
                abort();
        X509_free(cert);
        OPENSSL_free(der);
        return 0;
}
