/* SPDX-License-Identifier: Apache-2.0 */
/* Constellation's cluster KMS (internal/kms/kms/cluster): data keys are HKDF-SHA256 of the master
 * secret and salt with info "key-" + id; nothing is stored.
 *
 * RFC 5869 in its two steps: PRK = HKDF-Extract(salt, master secret) does not depend on the key
 * ID, so it is computed once when the KMS opens; each data key is HKDF-Expand(PRK, "key-" + id, L)
 * with the HKDF implementation fetched once. Fetching it and extracting again per request cost
 * more than the gRPC call itself (bench/node). The result is the same bytes as lib/crypto's
 * kdf_data_key (test-node-kms checks Constellation's vectors through both). */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdlib.h>

#include "crypto/hkdf.h"
#include "kms/kms-internal.h"

typedef struct cluster_kms {
        secret_t *prk; /* HKDF-Extract(salt, master secret), 32 bytes */
        EVP_KDF *hkdf;
} cluster_kms;

static void cluster_free(void *state) {
        cluster_kms *c = state;
        if (!c)
                return;
        secret_free(c->prk);
        EVP_KDF_free(c->hkdf);
        free(c);
}

static int hkdf_run(EVP_KDF *hkdf, int mode, const void *key, size_t key_len, const void *salt, size_t salt_len,
                    const void *info, size_t info_len, uint8_t *out, size_t out_len) {
        EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(hkdf);
        if (!ctx)
                return -ENOMEM;
        static const uint8_t empty[1];
        OSSL_PARAM params[6];
        size_t n = 0;
        params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
        params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
        params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) (key_len ? key : empty), key_len);
        if (salt)
                params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                                (void *) (salt_len ? salt : empty), salt_len);
        if (info)
                params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                                (void *) (info_len ? info : empty), info_len);
        params[n] = OSSL_PARAM_construct_end();
        int r = EVP_KDF_derive(ctx, out, out_len, params) == 1 ? 0 : -EIO;
        EVP_KDF_CTX_free(ctx);
        return r;
}

static int cluster_get_data_key(void *state, const char *key_id, size_t length, secret_t **ret, ct_error *err) {
        cluster_kms *c = state;
        char info[sizeof(KDF_KEY_PREFIX) + KMS_MAX_KEY_ID];
        size_t id_len = strlen(key_id); /* kms_get_data_key checked 1..KMS_MAX_KEY_ID */
        memcpy(info, KDF_KEY_PREFIX, strlen(KDF_KEY_PREFIX));
        memcpy(info + strlen(KDF_KEY_PREFIX), key_id, id_len);
        secret_t *key = secret_new(length);
        if (!key)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "data key");
        int r = hkdf_run(c->hkdf, EVP_KDF_HKDF_MODE_EXPAND_ONLY, c->prk->data, c->prk->len, NULL, 0, info,
                         strlen(KDF_KEY_PREFIX) + id_len, key->data, length);
        if (r < 0) {
                secret_free(key);
                return ct_error_set(err, r, "kms", KMS_REASON_DERIVE, "HKDF-SHA256 of data key \"%s\" (%zu bytes)",
                                    key_id, length);
        }
        *ret = key;
        return 0;
}

static const kms_backend_ops cluster_ops = {
        .name = "cluster-kms",
        .get_data_key = cluster_get_data_key,
        .free = cluster_free,
};

int kms_cluster_new(const secret_t *master_secret, const secret_t *salt, const kms_backend_ops **ret_ops,
                    void **ret_state, ct_error *err) {
        if (master_secret->len < KMS_MASTER_SECRET_MIN)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_MASTER_SECRET_SHORT,
                                    "master secret has %zu bytes, at least %d are needed", master_secret->len,
                                    KMS_MASTER_SECRET_MIN);
        if (salt->len < KMS_SALT_MIN)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_SALT_SHORT,
                                    "master secret salt has %zu bytes, at least %d are needed", salt->len,
                                    KMS_SALT_MIN);
        cluster_kms *c = calloc(1, sizeof(*c));
        if (!c)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "cluster KMS");
        c->hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        c->prk = secret_new(32);
        if (!c->hkdf || !c->prk) {
                cluster_free(c);
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "cluster KMS (HKDF)");
        }
        if (hkdf_run(c->hkdf, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, master_secret->data, master_secret->len, salt->data,
                     salt->len, NULL, 0, c->prk->data, c->prk->len) < 0) {
                cluster_free(c);
                return ct_error_set(err, -EIO, "kms", KMS_REASON_DERIVE, "HKDF-Extract of the master secret");
        }
        *ret_ops = &cluster_ops;
        *ret_state = c;
        return 0;
}

int kms_cluster_open(const kms_uri *uri, const kms_backend_ops **ret_ops, void **ret_state, ct_error *err) {
        _cleanup_secret_ secret_t *key = NULL, *salt = NULL;
        int r = kms_uri_get_base64(uri, "key", &key, err);
        if (r < 0)
                return r;
        r = kms_uri_get_base64(uri, "salt", &salt, err);
        if (r < 0)
                return r;
        return kms_cluster_new(key, salt, ret_ops, ret_state, err);
}
