/* SPDX-License-Identifier: Apache-2.0 */
/* /init.API/Init (reference constellation.md §2.2), in this order:
 *
 *  A. validate, changing nothing (a refusal here is a gRPC status; TPM and disk untouched):
 *     1. the request unpacks; this node is a control plane with an init-secret hash;
 *     2. bcrypt(init_secret) == the metadata's hash (libcrypt crypt_r, constant-time compare)
 *        -> PERMISSION_DENIED;
 *     3. measurement_salt is 32 bytes; cluster name, SANs, version, service CIDR fit their
 *        alphabets; every component's URL/pin/install path has the right shape -> INVALID_ARGUMENT;
 *     4. the KMS opens from kms_uri/storage_uri -> INVALID_ARGUMENT;
 *     5. derive the measurement secret (DEK "measurementSecret") and the cluster ID
 *        (HKDF(measurementSecret, measurement_salt, "key-clusterID"));
 *     6. the state disk is a NEW LUKS2 disk (not initialized), its UUID gives the DEK
 *        "key-<lowercase uuid>", the first-boot keyfile reads -> FAILED_PRECONDITION / INTERNAL.
 *  B. lock: no other Init is running in this process and PCR 15 is zero, else FAILED_PRECONDITION
 *     "node is already being activated"; then TPM2_PCR_Event(15, cluster ID).
 *  C. bootstrap (a failure from here on is answered with init_failure and the log in 1024-byte
 *     chunks, the disk's token is set back to "not initialized", and the process exits with
 *     INIT_EXIT_REBOOT so that the node reboots and starts over as a fresh node):
 *     7. keyslot 0: first-boot passphrase -> DEK, then token "initialized" (lib/luks);
 *     8. node_state.json {Role: ControlPlane, MeasurementSalt}; the key service's configuration:
 *        for kms://cluster-kms the master secret and salt (<config_dir>/mastersecret, salt), for
 *        kms://kmip the URI itself (<config_dir>/kms-uri: the KEK stays in the user's KMIP server,
 *        the key service unwraps at its start); 0600 either way;
 *     9. PKI (kubeadm layout) and the admin kubeconfig (written 0600 as admin.conf);
 *    10. components downloaded, pins checked, installed; kubeadm init if kubeadm is among them,
 *        else the log says plainly that the Kubernetes layer was not installed;
 *    11. the marker INIT_COMPLETE_MARKER beside node_state.json;
 *  D. answer init_success{kubeconfig, owner_id empty, cluster_id}, then the log; start the key and
 *     verification services; stop serving Init.
 *
 * What a crash leaves (the TPM is reset by a reboot; PCR 15 is zero again):
 *   during A:          nothing changed; Init can be retried at once.
 *   after B, before 7: PCR 15 set, disk untouched. This process is gone; systemd restarts it, it
 *                      sees PCR 15 set without the completion marker and exits INIT_EXIT_REBOOT;
 *                      the reboot clears PCR 15 and the disk-mapper reuses the NEW disk.
 *   inside 7:          lib/luks changes the keyslot first, then the token: token still "not
 *                      initialized" -> after the reboot the disk-mapper reformats it (nothing on it
 *                      matters yet): a fresh node.
 *   after 7, before 11: token "initialized", keyslot = DEK; node_state.json may be there, the PKI
 *                      half written, no completion marker. On restart: PCR 15 set, no marker ->
 *                      exit INIT_EXIT_REBOOT -> reboot; the disk-mapper finds an initialized disk
 *                      and waits for recovery (the master secret derives the DEK). Init itself is
 *                      not resumable (as in Constellation: "resumption is not supported"), so such
 *                      a node never claims to be bootstrapped: its bootstrapper keeps refusing
 *                      (exit 3) until the node is replaced. pki_create keeps a complete CA and
 *                      refuses half a one, components are rewritten by rename.
 *   after 11:          bootstrapped; a restart starts the services and serves nothing.
 * A failure (not a crash) in C sets the token back to "not initialized" and removes
 * node_state.json and the key service's configuration, so the reboot reformats: a fresh node. */
#include <crypt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/secret.h"
#include "bootstrapper.h"
#include "components/components.h"
#include "crypto/hkdf.h"
#include "init.pb-c.h"
#include "kms/kms.h"
#include "luks/luks.h"
#include "nodestate/nodestate.h"
#include "pki/pki.h"
#include "service/service.h"
#include "tpm/tpm.h"

#define LAYER "init"

/* ---- the log ------------------------------------------------------------------------------ */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[INIT_LOG_MAX];
static size_t log_len;

void initlog(int level, const char *fmt, ...) {
        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_emit((enum log_level) level, "%s", line);
        static const char *const names[] = { "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF" };
        char stamped[1100];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        int n = snprintf(stamped, sizeof stamped, "%04d-%02d-%02dT%02d:%02d:%02dZ %s %s\n", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         names[level >= 0 && level <= LOG_LEVEL_OFF ? level : LOG_LEVEL_INFO], line);
        if (n < 0)
                return;
        size_t l = MIN((size_t) n, sizeof stamped - 1);
        pthread_mutex_lock(&log_lock);
        if (log_len + l > sizeof log_buf) { /* drop the oldest half */
                size_t keep = log_len / 2;
                memmove(log_buf, log_buf + log_len - keep, keep);
                log_len = keep;
        }
        memcpy(log_buf + log_len, stamped, l);
        log_len += l;
        pthread_mutex_unlock(&log_lock);
}

char *initlog_snapshot(size_t *ret_len) {
        pthread_mutex_lock(&log_lock);
        char *s = malloc(log_len + 1);
        if (s) {
                memcpy(s, log_buf, log_len);
                s[log_len] = 0;
                *ret_len = log_len;
        }
        pthread_mutex_unlock(&log_lock);
        return s;
}

/* ---- bootstrapper ------------------------------------------------------------------------- */

struct bootstrapper {
        const bootstrapper_config *cfg;
        void (*on_done)(void *userdata, bool success);
        void *userdata;
        pthread_mutex_t busy; /* held for the whole of one Init */
        bool done;            /* an Init succeeded: refuse every later one */
};

int bootstrapper_new(const bootstrapper_config *cfg, void (*on_done)(void *, bool), void *userdata, bootstrapper **ret) {
        bootstrapper *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->cfg = cfg;
        b->on_done = on_done;
        b->userdata = userdata;
        pthread_mutex_init(&b->busy, NULL);
        *ret = b;
        return 0;
}

void bootstrapper_free(bootstrapper *b) {
        if (!b)
                return;
        pthread_mutex_destroy(&b->busy);
        free(b);
}

char *bootstrapper_marker_path(const char *nodestate_path) {
        const char *slash = strrchr(nodestate_path, '/');
        char *path = NULL;
        if (asprintf(&path, "%.*s%s", slash ? (int) (slash - nodestate_path + 1) : 0, nodestate_path,
                     INIT_COMPLETE_MARKER) < 0)
                return NULL;
        return path;
}

int bootstrapper_pcr15_is_zero(const char *tcti, bool *ret_zero, ct_error *err) {
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        _cleanup_free_ char *why = NULL;
        int r = tpm_open(tcti, &t, &why);
        if (r < 0)
                return ct_error_set(err, r, "tpm", "tpm-open", "%s: %s", tcti ? tcti : TPM_DEFAULT_TCTI,
                                    why ? why : strerror(-r));
        tpmq_pcr_bank bank;
        r = tpm_pcr_read(t, TPM_ALG_SHA256, 1u << TPM_PCR_CLUSTER_ID, &bank);
        if (r < 0)
                return ct_error_set(err, r, "tpm", "pcr-read", "reading PCR 15: %s", tpm_last_error(t));
        static const uint8_t zero[32] = { 0 };
        if (!bank.present[TPM_PCR_CLUSTER_ID])
                return ct_error_set(err, -EIO, "tpm", "pcr-read", "the TPM returned no SHA-256 PCR 15");
        *ret_zero = memcmp(bank.value[TPM_PCR_CLUSTER_ID], zero, 32) == 0;
        return 0;
}

/* bcrypt through libcrypt (libxcrypt understands $2a$/$2b$/$2y$). The secret may not hold NUL
 * (crypt takes a C string); Go's bcrypt would hash those bytes, but no init secret has them. */
static int check_init_secret(const Init__InitRequest *req, const char *hash, ct_error *err) {
        if (req->init_secret.len == 0 || memchr(req->init_secret.data, 0, req->init_secret.len))
                return ct_error_set(err, -EPERM, LAYER, "wrong-init-secret", "the init secret does not match");
        _cleanup_secret_ secret_t *pw = secret_new_copy(req->init_secret.data, req->init_secret.len);
        struct crypt_data *cd = calloc(1, sizeof *cd);
        if (!pw || !cd) {
                free(cd);
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        }
        const char *out = crypt_r((const char *) pw->data, hash, cd);
        bool ok = out && out[0] != '*' && ct_memeq(out, strlen(out), hash, strlen(hash));
        erase_memory(cd, sizeof *cd);
        free(cd);
        if (!ok)
                return ct_error_set(err, -EPERM, LAYER, "wrong-init-secret", "the init secret does not match");
        return 0;
}

/* Everything A gathers for B-D. */
typedef struct init_plan {
        Init__InitRequest *req;
        const char *cluster_name;
        kms *kms;
        uint8_t cluster_id[32];
        luks_disk *disk;
        char uuid[LUKS_UUID_STRING_MAX];
        secret_t *first_boot_pass;
        secret_t *disk_key;
        secret_t *master_secret; /* cluster-kms only: for the key service */
        secret_t *master_salt;
        bool save_kms_uri;       /* kmip: the key service gets the URI (<config_dir>/kms-uri) */
        component_spec *components;
        size_t n_components;
        ssize_t kubeadm_index; /* -1: no kubeadm component */
} init_plan;

static void init_plan_done(init_plan *p) {
        if (p->req) {
                /* The request carries the init secret and, in kms_uri, the master secret. */
                if (p->req->init_secret.data)
                        erase_memory(p->req->init_secret.data, p->req->init_secret.len);
                if (p->req->kms_uri)
                        erase_memory(p->req->kms_uri, strlen(p->req->kms_uri));
                init__init_request__free_unpacked(p->req, NULL);
        }
        kms_free(p->kms);
        luks_close(p->disk);
        secret_free(p->first_boot_pass);
        secret_free(p->disk_key);
        secret_free(p->master_secret);
        secret_free(p->master_salt);
        free(p->components);
        erase_memory(p->cluster_id, sizeof p->cluster_id);
        *p = (init_plan){ 0 };
}

static components_options component_options(const bootstrapper_config *cfg) {
        return (components_options){ .allowed_roots = cfg->component_roots };
}

static bool basename_is(const char *path, const char *name) {
        const char *s = strrchr(path, '/');
        return streq(s ? s + 1 : path, name);
}

/* Step A without I/O: the request and the derivations. */
static int init_validate(const bootstrapper *b, const uint8_t *request, size_t len, init_plan *p, ct_error *err) {
        const bootstrapper_config *cfg = b->cfg;
        p->req = init__init_request__unpack(NULL, len, request);
        if (!p->req)
                return ct_error_set(err, -EBADMSG, LAYER, "request-malformed", "InitRequest does not unpack");
        const Init__InitRequest *req = p->req;
        if (cfg->md.role != METADATA_ROLE_CONTROL_PLANE || !cfg->md.init_secret_hash)
                return ct_error_set(err, -EBUSY, LAYER, "not-control-plane",
                                    "this node is a %s without an init-secret hash: only a control plane is "
                                    "initialised, workers join",
                                    metadata_role_to_string(cfg->md.role));
        int r = check_init_secret(req, cfg->md.init_secret_hash, err);
        if (r < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "Init: init secret accepted");

        if (req->measurement_salt.len != INIT_MEASUREMENT_SALT_LEN)
                return ct_error_set(err, -EINVAL, LAYER, "measurement-salt-length",
                                    "measurement_salt has %zu bytes, expected %d", req->measurement_salt.len,
                                    INIT_MEASUREMENT_SALT_LEN);
        p->cluster_name = isempty(req->cluster_name) ? INIT_DEFAULT_CLUSTER_NAME : req->cluster_name;
        if (!metadata_valid_node_name(p->cluster_name))
                return ct_error_set(err, -EINVAL, LAYER, "bad-cluster-name",
                                    "cluster_name is not a DNS-1123 name (lower-case letters, digits, '-', '.')");
        if (!isempty(req->kubernetes_version) && !kubeadm_valid_version(req->kubernetes_version))
                return ct_error_set(err, -EINVAL, LAYER, "bad-kubernetes-version",
                                    "kubernetes_version is not \"v<major>.<minor>.<patch>\"");
        if (!isempty(req->service_cidr) && !kubeadm_valid_cidr(req->service_cidr))
                return ct_error_set(err, -EINVAL, LAYER, "bad-service-cidr", "service_cidr is not an IP prefix");
        if (req->n_apiserver_cert_sans > 64)
                return ct_error_set(err, -EINVAL, LAYER, "bad-san", "more than 64 apiserver_cert_sans");
        for (size_t i = 0; i < req->n_apiserver_cert_sans; i++)
                if (!kubeadm_valid_san(req->apiserver_cert_sans[i]))
                        return ct_error_set(err, -EINVAL, LAYER, "bad-san",
                                            "apiserver_cert_sans[%zu] is not a DNS name or IP address", i);

        components_options co = component_options(cfg);
        p->kubeadm_index = -1;
        if (req->n_kubernetes_components > 256)
                return ct_error_set(err, -EINVAL, LAYER, "bad-component", "more than 256 components");
        if (req->n_kubernetes_components > 0) {
                p->components = calloc(req->n_kubernetes_components, sizeof *p->components);
                if (!p->components)
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        }
        for (size_t i = 0; i < req->n_kubernetes_components; i++) {
                const Components__Component *c = req->kubernetes_components[i];
                p->components[i] = (component_spec){ c->url, c->hash, c->install_path, c->extract };
                r = components_validate(&p->components[i], i, &co, err);
                if (r < 0)
                        return r; /* -EBADMSG/-EPERM from the layer "components": INVALID_ARGUMENT below */
                if (!c->extract && basename_is(c->install_path, "kubeadm"))
                        p->kubeadm_index = (ssize_t) i;
        }
        p->n_components = req->n_kubernetes_components;

        r = kms_open(req->kms_uri, req->storage_uri, &p->kms, err);
        if (r < 0)
                return r;
        if (streq(kms_backend_name(p->kms), "cluster-kms")) {
                /* The key service derives data keys from the same master secret and salt
                 * (Constellation mounts them from the constellation-mastersecret Secret). */
                _cleanup_(kms_uri_freep) kms_uri *u = NULL;
                if ((r = kms_uri_parse(req->kms_uri, &u, err)) < 0 ||
                    (r = kms_uri_get_base64(u, "key", &p->master_secret, err)) < 0 ||
                    (r = kms_uri_get_base64(u, "salt", &p->master_salt, err)) < 0)
                        return r;
        } else if (streq(kms_backend_name(p->kms), "kmip")) {
                /* Nothing to extract: the master secret exists only wrapped (the URI) and in the
                 * user's KMIP server. The key service unwraps it itself, so a revoked KEK stops it. */
                p->save_kms_uri = true;
        } else
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_BACKEND_UNKNOWN,
                                    "the key service cannot be configured for backend %s", kms_backend_name(p->kms));
        _cleanup_secret_ secret_t *ms = NULL;
        r = kms_get_data_key(p->kms, KDF_MEASUREMENT_SECRET_ID, 32, &ms, err);
        if (r < 0)
                return r;
        r = kdf_cluster_id(ms, req->measurement_salt.data, req->measurement_salt.len, p->cluster_id);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "derive", "deriving the cluster ID failed");
        return 0;
}

/* Step A, the part that reads the state disk and the first-boot keyfile (reads only). */
static int init_prepare_disk(const bootstrapper *b, init_plan *p, ct_error *err) {
        const bootstrapper_config *cfg = b->cfg;
        int r = cfg->state_disk ? luks_open(cfg->state_disk, &p->disk, err) : luks_open_active(LUKS_STATE_MAPPER_NAME, &p->disk, err);
        if (r < 0)
                return r;
        luks_state st;
        if ((r = luks_get_state(p->disk, &st, err)) < 0)
                return r;
        if (st != LUKS_STATE_NEW)
                return ct_error_set(err, -EBUSY, LAYER, "disk-not-new", "state disk %s is %s, expected a new disk",
                                    luks_path(p->disk), luks_state_to_string(st));
        if ((r = luks_uuid(p->disk, p->uuid, err)) < 0)
                return r;
        if ((r = kms_get_data_key(p->kms, p->uuid, 32, &p->disk_key, err)) < 0)
                return r;
        if ((r = luks_read_keyfile(cfg->state_keyfile, &p->first_boot_pass, err)) < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "Init: request valid (%zu components, KMS %s, state disk %s)", p->n_components,
                kms_backend_name(p->kms), p->uuid);
        return 0;
}

/* Step B. Caller holds b->busy. */
static int init_lock(bootstrapper *b, const init_plan *p, ct_error *err) {
        bool zero = false;
        int r = bootstrapper_pcr15_is_zero(b->cfg->tcti, &zero, err);
        if (r < 0)
                return r;
        if (!zero)
                return ct_error_set(err, -EALREADY, LAYER, "already-activated", INIT_ALREADY_ACTIVATED);
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        _cleanup_free_ char *why = NULL;
        r = tpm_open(b->cfg->tcti, &t, &why);
        if (r < 0)
                return ct_error_set(err, r, "tpm", "tpm-open", "%s", why ? why : strerror(-r));
        r = tpm_mark_bootstrapped(t, p->cluster_id, sizeof p->cluster_id);
        if (r < 0)
                return ct_error_set(err, r, "tpm", "pcr-extend", "extending PCR 15: %s", tpm_last_error(t));
        initlog(LOG_LEVEL_INFO, "Init: node locked: PCR 15 extended with the cluster ID");
        return 0;
}

static int write_admin_conf(const bootstrapper_config *cfg, const char *kubeconfig, ct_error *err) {
        if (mkdir(cfg->kubernetes_dir, 0755) < 0 && errno != EEXIST)
                return ct_error_set(err, -errno, LAYER, "io", "%s: %s", cfg->kubernetes_dir, strerror(errno));
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/admin.conf", cfg->kubernetes_dir) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        int r = write_file_atomic(path, kubeconfig, strlen(kubeconfig), 0600);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        return 0;
}

/* The key service's configuration in a 0700 directory, every file 0600 (constellation-keyservice
 * --config-dir, docs/node.md): kms://cluster-kms -> mastersecret and salt, raw; kms://kmip -> kms-uri,
 * the URI as the request carried it (it may hold the client key inline: never on a command line).
 * Exactly one of the two is written; the key service refuses a directory that has both. */
static const char *const key_service_files[] = { INIT_KEYSERVICE_MASTER_SECRET, INIT_KEYSERVICE_SALT,
                                                 INIT_KEYSERVICE_KMS_URI };

static int write_key_service_config(const bootstrapper_config *cfg, const init_plan *p, ct_error *err) {
        if (mkdir(cfg->config_dir, 0700) < 0 && errno != EEXIST)
                return ct_error_set(err, -errno, LAYER, "io", "%s: %s", cfg->config_dir, strerror(errno));
        const void *values[3] = { 0 };
        size_t lens[3] = { 0 };
        if (p->master_secret) {
                values[0] = p->master_secret->data, lens[0] = p->master_secret->len;
                values[1] = p->master_salt->data, lens[1] = p->master_salt->len;
        } else {
                values[2] = p->req->kms_uri, lens[2] = strlen(p->req->kms_uri);
        }
        for (size_t i = 0; i < ELEMENTSOF(key_service_files); i++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", cfg->config_dir, key_service_files[i]) < 0)
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                int r = values[i] ? write_file_atomic(path, values[i], lens[i], 0600)
                                  : (unlink(path) < 0 && errno != ENOENT ? -errno : 0);
                if (r < 0)
                        return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        }
        initlog(LOG_LEVEL_INFO, "Init: key service configuration (%s) written to %s",
                p->master_secret ? "master secret and salt" : "kms://kmip URI", cfg->config_dir);
        return 0;
}

static void remove_key_service_config(const bootstrapper_config *cfg) {
        for (size_t i = 0; i < ELEMENTSOF(key_service_files); i++) {
                char path[1024];
                if ((size_t) snprintf(path, sizeof path, "%s/%s", cfg->config_dir, key_service_files[i]) < sizeof path)
                        (void) unlink(path);
        }
}

/* Step C. Returns the kubeconfig (a secret: erase_and_free). */
static int init_bootstrap(bootstrapper *b, init_plan *p, char **ret_kubeconfig, ct_error *err) {
        const bootstrapper_config *cfg = b->cfg;
        int r = luks_rekey_initialized(p->disk, p->first_boot_pass, p->disk_key, err);
        if (r < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "Init: state disk %s re-keyed to its KMS key and marked initialized", p->uuid);

        nodestate ns = { .role = NODESTATE_ROLE_CONTROL_PLANE };
        memcpy(ns.measurement_salt, p->req->measurement_salt.data, NODESTATE_SALT_LEN);
        if ((r = nodestate_write(cfg->nodestate_path, &ns, err)) < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "Init: %s written", cfg->nodestate_path);
        if ((p->master_secret || p->save_kms_uri) && (r = write_key_service_config(cfg, p, err)) < 0)
                return r;

        if ((r = pki_create(cfg->pki_dir, err)) < 0)
                return r;
        _cleanup_(pki_ca_done) pki_ca ca = { 0 };
        if ((r = pki_load_ca(cfg->pki_dir, PKI_CA_KUBERNETES, &ca, err)) < 0)
                return r;
        const char *endpoint = cfg->md.endpoint ? cfg->md.endpoint : cfg->md.vpc_ip;
        _cleanup_erase_free_ char *kubeconfig = NULL;
        if ((r = pki_admin_kubeconfig(&ca, p->cluster_name, endpoint, &kubeconfig, err)) < 0)
                return r;
        if ((r = write_admin_conf(cfg, kubeconfig, err)) < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "Init: cluster PKI in %s, admin kubeconfig for https://%s:%d", cfg->pki_dir, endpoint,
                PKI_API_SERVER_PORT);

        components_options co = component_options(cfg);
        for (size_t i = 0; i < p->n_components; i++) {
                if ((r = components_install(&p->components[i], i, &co, err)) < 0)
                        return r;
                initlog(LOG_LEVEL_INFO, "Init: component %zu installed at %s", i, p->components[i].install_path);
        }
        if (p->kubeadm_index < 0) {
                initlog(LOG_LEVEL_WARN,
                        "Init: the Kubernetes layer was not installed: the request lists no kubeadm component, so "
                        "kubeadm init did not run; this node has its cluster identity (PCR 15), its state disk key, "
                        "node_state.json and the cluster PKI, but no Kubernetes control plane");
        } else {
                const char *const *sans = (const char *const *) p->req->apiserver_cert_sans;
                kubeadm_params kp = {
                        .kubeadm = p->components[p->kubeadm_index].install_path,
                        .node_name = cfg->md.name,
                        .node_ip = cfg->md.vpc_ip,
                        .endpoint = endpoint,
                        .cluster_name = p->cluster_name,
                        .kubernetes_version = p->req->kubernetes_version,
                        .service_cidr = p->req->service_cidr,
                        .sans = sans,
                        .n_sans = p->req->n_apiserver_cert_sans,
                        .pki_dir = cfg->pki_dir,
                        .kubernetes_dir = cfg->kubernetes_dir,
                        .patches_dir = access("/opt/kubernetes/patches", F_OK) == 0 ? "/opt/kubernetes/patches" : NULL,
                        .path_env = "/run/state/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                };
                _cleanup_free_ char *config = NULL;
                if ((r = kubeadm_write_config(&kp, &config, err)) < 0)
                        return r;
                initlog(LOG_LEVEL_INFO, "Init: running %s init --config %s", kp.kubeadm, config);
                if ((r = kubeadm_run_init(&kp, config, err)) < 0)
                        return r;
                initlog(LOG_LEVEL_INFO, "Init: kubeadm init finished");
        }
        /* Last: the marker that this bootstrap completed (main.c reads it after a restart). */
        _cleanup_free_ char *marker = bootstrapper_marker_path(cfg->nodestate_path);
        if (!marker)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if ((r = write_file_atomic(marker, "complete\n", 9, 0600)) < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", marker, strerror(-r));
        *ret_kubeconfig = TAKE_PTR(kubeconfig);
        return 0;
}

int bootstrapper_check_request(const bootstrapper_config *cfg, const uint8_t *request, size_t len, ct_error *err) {
        bootstrapper b = { .cfg = cfg };
        _cleanup_(init_plan_done) init_plan p = { 0 };
        return init_validate(&b, request, len, &p, err);
}

/* ---- answering ---------------------------------------------------------------------------- */

static int send_response(rpc_call *call, const Init__InitResponse *resp) {
        size_t len = init__init_response__get_packed_size(resp);
        _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                return -ENOMEM;
        init__init_response__pack(resp, buf);
        int r = rpc_call_send(call, buf, len);
        erase_memory(buf, len); /* may hold the kubeconfig's client key */
        return r;
}

static void send_log(rpc_call *call) {
        size_t len = 0;
        _cleanup_free_ char *log = initlog_snapshot(&len);
        for (size_t off = 0; log && off < len; off += INIT_LOG_CHUNK) {
                Init__LogResponseType l = INIT__LOG_RESPONSE_TYPE__INIT;
                l.log.data = (uint8_t *) log + off;
                l.log.len = MIN((size_t) INIT_LOG_CHUNK, len - off);
                Init__InitResponse resp = INIT__INIT_RESPONSE__INIT;
                resp.kind_case = INIT__INIT_RESPONSE__KIND_LOG;
                resp.log = &l;
                if (send_response(call, &resp) < 0)
                        return;
        }
}

static void send_failure(rpc_call *call, const ct_error *err) {
        char msg[CT_ERROR_DETAIL_MAX + 128];
        ct_error_format(err, msg, sizeof msg);
        Init__InitFailureResponse f = INIT__INIT_FAILURE_RESPONSE__INIT;
        f.error = msg;
        Init__InitResponse resp = INIT__INIT_RESPONSE__INIT;
        resp.kind_case = INIT__INIT_RESPONSE__KIND_INIT_FAILURE;
        resp.init_failure = &f;
        if (send_response(call, &resp) >= 0)
                send_log(call);
        rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* A refusal before anything changed: a status with "layer: reason: detail", except the lock,
 * which carries Constellation's exact text. */
static void refuse(rpc_call *call, const ct_error *err) {
        char msg[CT_ERROR_DETAIL_MAX + 128];
        grpc_status_code code;
        if (err->reason && streq(err->reason, "already-activated")) {
                code = GRPC_STATUS_FAILED_PRECONDITION;
                snprintf(msg, sizeof msg, INIT_ALREADY_ACTIVATED);
        } else {
                ct_error_format(err, msg, sizeof msg);
                code = service_status_from_error(err);
                if (err->layer && (streq(err->layer, "components") || streq(err->layer, "kms")) &&
                    (err->code == -EBADMSG || err->code == -EPERM || err->code == -EINVAL))
                        code = GRPC_STATUS_INVALID_ARGUMENT; /* the request's fields, not our state */
        }
        initlog(LOG_LEVEL_WARN, "Init refused: %s: %s", rpc_status_code_to_string(code), msg);
        rpc_call_fail(call, code, msg);
}

void bootstrapper_handle_init(rpc_call *call, const uint8_t *request, size_t request_len, void *userdata) {
        bootstrapper *b = userdata;
        ct_error err = CT_ERROR_INIT;
        initlog(LOG_LEVEL_INFO, "Init: request received (%zu bytes)", request_len);

        if (pthread_mutex_trylock(&b->busy) != 0) {
                ct_error_set(&err, -EALREADY, LAYER, "already-activated", "another Init is running");
                refuse(call, &err);
                return;
        }
        _cleanup_(init_plan_done) init_plan p = { 0 };
        _cleanup_erase_free_ char *kubeconfig = NULL;
        if (b->done) {
                ct_error_set(&err, -EALREADY, LAYER, "already-activated", "this node was initialised");
                goto refused;
        }
        if (init_validate(b, request, request_len, &p, &err) < 0 || init_prepare_disk(b, &p, &err) < 0 ||
            init_lock(b, &p, &err) < 0)
                goto refused;

        if (init_bootstrap(b, &p, &kubeconfig, &err) < 0) {
                char msg[CT_ERROR_DETAIL_MAX + 128];
                initlog(LOG_LEVEL_ERROR, "Init failed after the node was locked: %s",
                        ct_error_format(&err, msg, sizeof msg));
                ct_error undo = CT_ERROR_INIT;
                if (p.disk && luks_mark_initialized(p.disk, false, &undo) < 0)
                        initlog(LOG_LEVEL_ERROR, "Init: could not mark the state disk not initialized: %s",
                                ct_error_format(&undo, msg, sizeof msg));
                else
                        initlog(LOG_LEVEL_ERROR, "Init: state disk marked not initialized; the node must reboot "
                                                 "(it will be formatted again and can be initialised anew)");
                /* The master secret (or the URI that unwraps it) has no business on a node that
                 * failed to become part of the cluster. */
                if (p.master_secret || p.save_kms_uri)
                        remove_key_service_config(b->cfg);
                /* A restart before the reboot must not take this node for a bootstrapped one. */
                if (unlink(b->cfg->nodestate_path) < 0 && errno != ENOENT)
                        initlog(LOG_LEVEL_ERROR, "Init: could not remove %s: %s", b->cfg->nodestate_path,
                                strerror(errno));
                send_failure(call, &err);
                b->done = true; /* PCR 15 is set: no second attempt without a reboot */
                pthread_mutex_unlock(&b->busy);
                if (b->on_done)
                        b->on_done(b->userdata, false);
                return;
        }

        Init__InitSuccessResponse s = INIT__INIT_SUCCESS_RESPONSE__INIT;
        s.kubeconfig.data = (uint8_t *) kubeconfig;
        s.kubeconfig.len = strlen(kubeconfig);
        s.cluster_id.data = p.cluster_id;
        s.cluster_id.len = sizeof p.cluster_id;
        /* owner_id stays empty, as Constellation's init server leaves it. */
        Init__InitResponse resp = INIT__INIT_RESPONSE__INIT;
        resp.kind_case = INIT__INIT_RESPONSE__KIND_INIT_SUCCESS;
        resp.init_success = &s;
        initlog(LOG_LEVEL_INFO, "Init: succeeded; answering with the kubeconfig and the cluster ID");
        if (send_response(call, &resp) >= 0)
                send_log(call);
        rpc_call_finish(call, GRPC_STATUS_OK, NULL);
        b->done = true;
        pthread_mutex_unlock(&b->busy);
        if (b->on_done)
                b->on_done(b->userdata, true);
        return;

refused:
        refuse(call, &err);
        pthread_mutex_unlock(&b->busy);
}
