/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <stdio.h>

#include "crypto/hkdf.h"

int hkdf_sha256(const void *secret, size_t secret_len, const void *salt, size_t salt_len, const void *info,
                size_t info_len, size_t length, secret_t **ret) {
        if (length == 0 || length > KDF_MAX_LENGTH || (!secret && secret_len))
                return -EINVAL;
        EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        if (!kdf)
                return -EOPNOTSUPP;
        EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
        EVP_KDF_free(kdf);
        if (!ctx)
                return -ENOMEM;
        /* OpenSSL wants non-NULL pointers even for empty inputs. */
        static const uint8_t empty[1];
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) (secret_len ? secret : empty), secret_len),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *) (salt_len ? salt : empty), salt_len),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) (info_len ? info : empty), info_len),
                OSSL_PARAM_construct_end(),
        };
        secret_t *out = secret_new(length);
        int r = 0;
        if (!out)
                r = -ENOMEM;
        else if (EVP_KDF_derive(ctx, out->data, length, params) != 1)
                r = -EIO;
        EVP_KDF_CTX_free(ctx);
        if (r < 0) {
                secret_free(out);
                return r;
        }
        *ret = out;
        return 0;
}

int kdf_data_key(const secret_t *master_secret, const secret_t *salt, const char *key_id, size_t length,
                 secret_t **ret) {
        if (!master_secret || !salt || isempty(key_id))
                return -EINVAL;
        _cleanup_free_ char *info = NULL;
        if (asprintf(&info, KDF_KEY_PREFIX "%s", key_id) < 0)
                return -ENOMEM;
        return hkdf_sha256(master_secret->data, master_secret->len, salt->data, salt->len, info, strlen(info), length,
                           ret);
}

int kdf_measurement_secret(const secret_t *master_secret, const secret_t *salt, secret_t **ret) {
        return kdf_data_key(master_secret, salt, KDF_MEASUREMENT_SECRET_ID, KDF_DEFAULT_LENGTH, ret);
}

int kdf_cluster_id(const secret_t *measurement_secret, const uint8_t *measurement_salt, size_t salt_len,
                   uint8_t ret[32]) {
        _cleanup_secret_ secret_t *id = NULL;
        int r = hkdf_sha256(measurement_secret->data, measurement_secret->len, measurement_salt, salt_len,
                            KDF_CLUSTER_ID_INFO, strlen(KDF_CLUSTER_ID_INFO), 32, &id);
        if (r < 0)
                return r;
        memcpy(ret, id->data, 32);
        return 0;
}

void kdf_expected_pcr15(const uint8_t cluster_id[32], uint8_t ret[32]) {
        /* TPM2_PCR_Event(15, clusterID) extends the SHA-256 digest of the event data into a PCR
         * that starts at zero (TCG TPM 2.0 Part 3 §22.3): PCR = H(0^32 || H(clusterID)). */
        uint8_t buf[64];
        memset(buf, 0, 32);
        SHA256(cluster_id, 32, buf + 32);
        SHA256(buf, sizeof(buf), ret);
}
