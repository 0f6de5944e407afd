/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: a peer's aTLS certificate (DER) through atls_certificate_verify with the
 * dummy validator. Each input is verified as is (signature and validity checks) and once more
 * after being re-signed by a fixed key with a current validity window, so that extension lookup,
 * document size checks, validation and the key binding are reached for every input. */
#include <openssl/x509.h>

#include "atls/atls.h"
#include "basic/cleanup-openssl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_nonce[ATLS_NONCE_SIZE]; /* the seeds were made for the zero nonce */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static EVP_PKEY *key;
        if (!key)
                key = EVP_EC_gen("P-256");
        const unsigned char *p = data;
        _cleanup_(X509_freep) X509 *cert = d2i_X509(NULL, &p, (long) size);
        if (!cert)
                return 0;
        atls_validator vals[2] = { atls_dummy_validator(), atls_dummy_validator() };
        vals[1].oid = ATLS_OID_QEMU_VTPM;
        atls_error err = { 0 };
        int idx;
        (void) atls_certificate_verify(cert, vals, 2, fuzz_nonce, sizeof(fuzz_nonce), &idx, &err);
        (void) atls_reason_to_string(err.reason);

        if (key && X509_set_pubkey(cert, key) == 1 && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
            X509_gmtime_adj(X509_getm_notAfter(cert), 3600) && X509_sign(cert, key, EVP_sha256()) > 0) {
                err = (atls_error) { 0 };
                (void) atls_certificate_verify(cert, vals, 2, fuzz_nonce, sizeof(fuzz_nonce), &idx, &err);
                err = (atls_error) { 0 };
                (void) atls_certificate_verify(cert, NULL, 0, NULL, 0, &idx, &err);
        }
        return 0;
}
