/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-keyservice: /kms.API/GetDataKey (plain gRPC, 127.0.0.1:9000; never outside the
 * node) for the control plane's own users: data key = HKDF-SHA256(master secret, salt, "key-" + id)
 * (reference constellation.md §2.4, §6). The secrets come from two raw files, as Constellation's
 * /var/config/mastersecret and /var/config/salt, or from a kms:// URI (lib/kms backends: for
 * kms://kmip the master secret is unwrapped by the user's KMIP server once, here at the start), given
 * inline, in a file, or found in the bootstrapper's --config-dir (the unit's way). */
#include <stdio.h>

#include "basic/log.h"
#include "etcd/etcd.h"
#include "keyservice.h"
#include "service/service.h"

static const char *arg_master_secret, *arg_salt, *arg_kms_uri, *arg_kms_uri_file, *arg_config_dir, *arg_etcd_endpoint,
                  *arg_pki_dir = "/etc/kubernetes/pki";

static const service_option options[] = {
        { "master-secret", "FILE", "raw master secret, >= 16 bytes, mode 0600/0400", &arg_master_secret, NULL, false },
        { "salt", "FILE", "raw master secret salt, >= 32 bytes, mode 0600/0400", &arg_salt, NULL, false },
        { "kms-uri", "URI", "instead of the files: kms://cluster-kms?key=..&salt=.. or kms://kmip?..",
          &arg_kms_uri, NULL, false },
        { "kms-uri-file", "FILE", "the kms:// URI from a file, mode 0600/0400 (an inline KMIP client key stays off "
          "the command line)", &arg_kms_uri_file, NULL, false },
        { "config-dir", "DIR", "what the bootstrapper wrote: DIR/kms-uri, or DIR/mastersecret and DIR/salt",
          &arg_config_dir, NULL, false },
        { "etcd-endpoint", "HOST:PORT", "the shared store (the unit's way): what the bootstrapper stored under "
          KEYSERVICE_ETCD_PREFIX " in etcd, mTLS with --pki-dir's etcd/ client certificate", &arg_etcd_endpoint, NULL,
          false },
        { "pki-dir", "DIR", "with --etcd-endpoint: the cluster PKI (default /etc/kubernetes/pki)", &arg_pki_dir, NULL,
          false },
};

static const service_info info = {
        .name = "constellation-keyservice",
        .summary = "Serves /kms.API/GetDataKey: data keys derived from the cluster's master secret.",
        .default_listen = "127.0.0.1:9000",
        .options = options,
        .n_options = ELEMENTSOF(options),
        .max_message = KEYSERVICE_MAX_REQUEST,
};

static void get_data_key(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        ct_error err = CT_ERROR_INIT;
        uint8_t resp[KEYSERVICE_MAX_RESPONSE];
        CLEANUP_ERASE(resp);
        size_t resp_len = 0;
        if (keyservice_get_data_key(userdata, req, len, resp, &resp_len, &err) < 0)
                (void) service_call_fail(call, &err);
        else
                (void) rpc_call_reply(call, resp, resp_len);
}

static int open_kms_uri_file(const char *path, kms **ret, ct_error *err) {
        _cleanup_secret_ secret_t *uri = NULL;
        int r = keyservice_read_kms_uri_file(path, &uri, err);
        if (r < 0)
                return r;
        return kms_open((const char *) uri->data, KMS_URI_NO_STORE, ret, err);
}

static int open_kms_files(const char *master_path, const char *salt_path, kms **ret, ct_error *err) {
        _cleanup_secret_ secret_t *master = NULL, *salt = NULL;
        int r = keyservice_read_secret_file(master_path, "master secret", KMS_MASTER_SECRET_MIN, &master, err);
        if (r >= 0)
                r = keyservice_read_secret_file(salt_path, "salt", KMS_SALT_MIN, &salt, err);
        if (r >= 0)
                r = kms_open_cluster(master, salt, ret, err);
        return r;
}

static int open_config_dir(const char *dir, kms **ret, ct_error *err) {
        keyservice_config_kind kind;
        int r = keyservice_config_find(dir, &kind, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *a = NULL, *b = NULL;
        if (kind == KEYSERVICE_CONFIG_URI) {
                if (asprintf(&a, "%s/%s", dir, KEYSERVICE_CONFIG_KMS_URI) < 0)
                        return ct_error_set(err, -ENOMEM, "keyservice", "out-of-memory", "%s", dir);
                log_info("configuration: %s", a);
                return open_kms_uri_file(a, ret, err);
        }
        if (asprintf(&a, "%s/%s", dir, KEYSERVICE_CONFIG_MASTER_SECRET) < 0 ||
            asprintf(&b, "%s/%s", dir, KEYSERVICE_CONFIG_SALT) < 0)
                return ct_error_set(err, -ENOMEM, "keyservice", "out-of-memory", "%s", dir);
        log_info("configuration: %s and %s", a, b);
        return open_kms_files(a, b, ret, err);
}

static int open_etcd(kms **ret, ct_error *err) {
        etcd_client_config ec;
        _cleanup_free_ char *storage = NULL;
        _cleanup_(etcd_client_freep) etcd_client *c = NULL;
        if (etcd_client_config_from_pki(arg_etcd_endpoint, arg_pki_dir, &ec, &storage) < 0)
                return ct_error_set(err, -ENOMEM, "keyservice", "out-of-memory", "etcd configuration");
        int r = etcd_client_new(&ec, &c, err);
        if (r < 0)
                return r;
        log_info("configuration: the shared store (etcd %s, " KEYSERVICE_ETCD_PREFIX "*)", arg_etcd_endpoint);
        return keyservice_open_etcd(c, ret, err);
}

static int open_kms(kms **ret, ct_error *err) {
        if (arg_etcd_endpoint)
                return open_etcd(ret, err);
        if (arg_kms_uri)
                return kms_open(arg_kms_uri, KMS_URI_NO_STORE, ret, err);
        if (arg_kms_uri_file)
                return open_kms_uri_file(arg_kms_uri_file, ret, err);
        if (arg_config_dir)
                return open_config_dir(arg_config_dir, ret, err);
        return open_kms_files(arg_master_secret, arg_salt, ret, err);
}

int main(int argc, char **argv) {
        _cleanup_(kms_freep) kms *k = NULL; /* freed after the service that uses it */
        _cleanup_(service_freep) service *s = NULL;
        int r = service_new(&info, argc, argv, &s);
        if (r < 0)
                return service_exit_code(r);
        /* Exactly one source: the two files together, or one of the others alone. */
        int sources = !!(arg_master_secret || arg_salt) + !!arg_kms_uri + !!arg_kms_uri_file + !!arg_config_dir +
                      !!arg_etcd_endpoint;
        if (sources != 1 || ((arg_master_secret || arg_salt) && !(arg_master_secret && arg_salt))) {
                log_error("give one of: --master-secret FILE and --salt FILE, --kms-uri URI, --kms-uri-file FILE, "
                          "--config-dir DIR, --etcd-endpoint HOST:PORT");
                return SERVICE_EXIT_USAGE;
        }
        ct_error err = CT_ERROR_INIT;
        char msg[CT_ERROR_DETAIL_MAX + 64];
        if (open_kms(&k, &err) < 0) {
                log_error("%s", ct_error_format(&err, msg, sizeof msg));
                return SERVICE_EXIT_FAILURE;
        }
        r = service_register(s, KEYSERVICE_METHOD, get_data_key, k);
        if (r < 0)
                return SERVICE_EXIT_FAILURE;
        return service_exit_code(service_run(s));
}
