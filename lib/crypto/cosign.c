/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "crypto/cosign.h"

#define COSIGN_MAX_SIG_B64 1024

const char *cosign_error_to_string(cosign_error e) {
        switch (e) {
        case COSIGN_OK:
                return "signature valid";
        case COSIGN_BAD_KEY:
                return "key is not an ECDSA P-256 key in PEM form";
        case COSIGN_BAD_SIGNATURE_FILE:
                return "signature file is not base64 of a DER ECDSA signature";
        case COSIGN_SIGNATURE_MISMATCH:
                return "signature does not match the file and key";
        }
        return "unknown error";
}

static bool is_p256(EVP_PKEY *key) {
        char group[64];
        size_t len;
        return EVP_PKEY_is_a(key, "EC") &&
               EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &len) == 1 &&
               (streq(group, "prime256v1") || streq(group, "P-256"));
}

int cosign_load_public_key(const char *pem, size_t len, EVP_PKEY **ret) {
        if (!pem || len > INT32_MAX)
                return -EINVAL;
        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return -ENOMEM;
        EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        if (!key)
                return -EBADMSG;
        if (!is_p256(key)) {
                EVP_PKEY_free(key);
                return -EKEYREJECTED;
        }
        *ret = key;
        return 0;
}

int cosign_load_private_key(const char *pem, size_t len, EVP_PKEY **ret) {
        if (!pem || len > INT32_MAX)
                return -EINVAL;
        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return -ENOMEM;
        EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        if (!key)
                return -EBADMSG;
        if (!is_p256(key)) {
                EVP_PKEY_free(key);
                return -EKEYREJECTED;
        }
        *ret = key;
        return 0;
}

/* Base64 text of the .sig file -> DER bytes; surrounding whitespace (a trailing newline) allowed. */
static int decode_sig(const char *sig_b64, size_t sig_len, uint8_t **ret, size_t *ret_len) {
        while (sig_len > 0 && isspace((unsigned char) sig_b64[sig_len - 1]))
                sig_len--;
        while (sig_len > 0 && isspace((unsigned char) *sig_b64)) {
                sig_b64++;
                sig_len--;
        }
        if (sig_len == 0 || sig_len > COSIGN_MAX_SIG_B64)
                return -EBADMSG;
        uint8_t *der;
        size_t der_len;
        if (base64_decode(sig_b64, sig_len, BASE64_STD, &der, &der_len) < 0)
                return -EBADMSG;
        /* Must be exactly one DER ECDSA-Sig-Value (RFC 3279 §2.2.3), nothing trailing. */
        const unsigned char *p = der;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long) der_len);
        bool ok = s && (size_t) (p - der) == der_len;
        ECDSA_SIG_free(s);
        if (!ok) {
                free(der);
                return -EBADMSG;
        }
        *ret = der;
        *ret_len = der_len;
        return 0;
}

static int verify_digest(const uint8_t digest[32], const char *sig_b64, size_t sig_len, EVP_PKEY *key,
                         cosign_error *ret_error) {
        cosign_error e = COSIGN_OK;
        _cleanup_free_ uint8_t *der = NULL;
        size_t der_len;
        if (!key || !is_p256(key))
                e = COSIGN_BAD_KEY;
        else if (decode_sig(sig_b64, sig_len, &der, &der_len) < 0)
                e = COSIGN_BAD_SIGNATURE_FILE;
        else {
                _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
                if (!ctx || EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
                        return -ENOMEM;
                if (EVP_PKEY_verify(ctx, der, der_len, digest, 32) != 1)
                        e = COSIGN_SIGNATURE_MISMATCH;
        }
        if (ret_error)
                *ret_error = e;
        return e == COSIGN_OK ? 0 : -EBADMSG;
}

int cosign_verify_blob(const uint8_t *blob, size_t blob_len, const char *sig_b64, size_t sig_len, EVP_PKEY *key,
                       cosign_error *ret_error) {
        uint8_t digest[32];
        SHA256(blob, blob_len, digest);
        return verify_digest(digest, sig_b64, sig_len, key, ret_error);
}

int cosign_verify_digest(const uint8_t digest[32], const char *sig_b64, size_t sig_len, EVP_PKEY *key,
                         cosign_error *ret_error) {
        return verify_digest(digest, sig_b64, sig_len, key, ret_error);
}

int cosign_sign_blob(const uint8_t *blob, size_t blob_len, EVP_PKEY *key, char **ret) {
        if (!key || !is_p256(key))
                return -EKEYREJECTED;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t sig_len = 0;
        if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(ctx, NULL, &sig_len, blob, blob_len) != 1)
                return -EIO;
        _cleanup_free_ uint8_t *sig = malloc(sig_len);
        if (!sig)
                return -ENOMEM;
        if (EVP_DigestSign(ctx, sig, &sig_len, blob, blob_len) != 1)
                return -EIO;
        char *b64 = base64_encode(sig, sig_len, BASE64_STD);
        if (!b64)
                return -ENOMEM;
        *ret = b64;
        return 0;
}
