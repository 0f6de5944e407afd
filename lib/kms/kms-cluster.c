/* SPDX-License-Identifier: Apache-2.0 */
/* Constellation's cluster KMS (internal/kms/kms/cluster): data keys are HKDF-SHA256 of the master
 * secret and salt with info "key-" + id; nothing is stored. */
#include <stdlib.h>

#include "crypto/hkdf.h"
#include "kms/kms-internal.h"

typedef struct cluster_kms {
        secret_t *master_secret;
        secret_t *salt;
} cluster_kms;

static void cluster_free(void *state) {
        cluster_kms *c = state;
        if (!c)
                return;
        secret_free(c->master_secret);
        secret_free(c->salt);
        free(c);
}

static int cluster_get_data_key(void *state, const char *key_id, size_t length, secret_t **ret, ct_error *err) {
        cluster_kms *c = state;
        secret_t *key = NULL;
        int r = kdf_data_key(c->master_secret, c->salt, key_id, length, &key);
        if (r < 0)
                return ct_error_set(err, r, "kms", KMS_REASON_DERIVE, "HKDF-SHA256 of data key \"%s\" (%zu bytes)",
                                    key_id, length);
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
        c->master_secret = secret_new_copy(master_secret->data, master_secret->len);
        c->salt = secret_new_copy(salt->data, salt->len);
        if (!c->master_secret || !c->salt) {
                cluster_free(c);
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "cluster KMS secrets");
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
