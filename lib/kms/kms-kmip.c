/* SPDX-License-Identifier: Apache-2.0 */
/* kms://kmip: hold your own key (lib/kmip/README.md, docs/node.md "Hold your own key: KMIP").
 *
 *   kms://kmip?endpoint=<host:port>&kek=<KMIP unique identifier>&wrapped=<b64url>&salt=<b64url>
 *             &client-cert=<path|base64:…>&client-key=<path|base64:…>&server-ca=<path|base64:…>
 *             [&server-name=<DNS name or IP>][&timeout-ms=<n>][&attempts=<n>]
 *
 * Opening asks the user's KMIP server, once, to Decrypt (AES-256-GCM under the KEK, inside the
 * server) the wrapped master secret; data keys are then derived exactly as kms://cluster-kms does
 * (HKDF-SHA256(master secret, salt, "key-" + id)), so key IDs and the keys of a cluster stay
 * Constellation-compatible and no round trip is made per data key. A revoked or destroyed KEK makes
 * every later open fail (crypto-shredding); a running instance keeps its master secret until it
 * exits. The ct_error of a refusal is the kmip layer's (kek-revoked, item-not-found, ...). */
#include <stdlib.h>

#include "kmip/wrap.h"
#include "kms/kms-internal.h"

typedef struct kmip_kms {
        const kms_backend_ops *cluster_ops;
        void *cluster_state;
} kmip_kms;

static void kmip_kms_free(void *state) {
        kmip_kms *k = state;
        if (!k)
                return;
        if (k->cluster_ops)
                k->cluster_ops->free(k->cluster_state);
        free(k);
}

static int kmip_kms_get_data_key(void *state, const char *key_id, size_t length, secret_t **ret, ct_error *err) {
        kmip_kms *k = state;
        return k->cluster_ops->get_data_key(k->cluster_state, key_id, length, ret, err);
}

static const kms_backend_ops kmip_ops = {
        .name = "kmip",
        .get_data_key = kmip_kms_get_data_key,
        .free = kmip_kms_free,
};

int kms_kmip_open(const kms_uri *uri, const kms_backend_ops **ret_ops, void **ret_state, ct_error *err) {
        static const char *const required[] = { "endpoint", "kek", "client-cert", "client-key", "server-ca" };
        for (size_t i = 0; i < ELEMENTSOF(required); i++)
                if (isempty(kms_uri_get(uri, required[i])))
                        return ct_error_set(err, -EINVAL, "kms", KMS_REASON_PARAMETER_MISSING,
                                            "kms://kmip: parameter \"%s\" is missing", required[i]);
        _cleanup_secret_ secret_t *wrapped = NULL, *salt = NULL, *master = NULL;
        int r = kms_uri_get_base64(uri, "wrapped", &wrapped, err);
        if (r < 0)
                return r;
        r = kms_uri_get_base64(uri, "salt", &salt, err);
        if (r < 0)
                return r;
        if (salt->len < KMS_SALT_MIN)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_SALT_SHORT,
                                    "kms://kmip: salt has %zu bytes, at least %d are needed", salt->len, KMS_SALT_MIN);

        kmip_uri_params p = {
                .endpoint = kms_uri_get(uri, "endpoint"),
                .server_name = kms_uri_get(uri, "server-name"),
                .client_cert = kms_uri_get(uri, "client-cert"),
                .client_key = kms_uri_get(uri, "client-key"),
                .server_ca = kms_uri_get(uri, "server-ca"),
                .timeout_ms = kms_uri_get(uri, "timeout-ms"),
                .attempts = kms_uri_get(uri, "attempts"),
        };
        kmip_config cfg;
        r = kmip_config_from_params(&p, &cfg, err);
        if (r < 0) {
                ct_error_prefix(err, "kms://kmip");
                return r;
        }
        _cleanup_(kmip_client_freep) kmip_client *c = NULL;
        r = kmip_client_new(&cfg, &c, err);
        kmip_config_done(&cfg);
        if (r < 0) {
                ct_error_prefix(err, "kms://kmip");
                return r;
        }
        const char *kek = kms_uri_get(uri, "kek");
        r = kmip_unwrap_master_secret(c, kek, wrapped->data, wrapped->len, salt, &master, err);
        if (r < 0) {
                ct_error_prefix(err, "kms://kmip: unwrapping the master secret");
                return r;
        }
        kmip_kms *k = calloc(1, sizeof(*k));
        if (!k)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "kms://kmip");
        r = kms_cluster_new(master, salt, &k->cluster_ops, &k->cluster_state, err);
        if (r < 0) {
                free(k);
                return r;
        }
        *ret_ops = &kmip_ops;
        *ret_state = k;
        return 0;
}
