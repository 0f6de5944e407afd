/* SPDX-License-Identifier: Apache-2.0 */
/* The bootstrapper's side of the join service (reference constellation.md §2.3, §5.4, §7):
 *
 *  bootstrapper_write_join_config()  after a successful Init: <config_dir>/attestationConfig (this
 *                                    node's PCRs 4, 8, 9, 11, 12, 13, enforced, version 0) and
 *                                    <config_dir>/measurementSalt (32 raw bytes), both 0600: what
 *                                    constellation-joinservice starts from (docs/node.md).
 *  bootstrapper_join()               a worker or a control plane not chosen for Init (metadata role
 *                                    control-plane; it races Init through join_options.claim):
 *                                    IssueJoinTicket on the metadata's join endpoints (in
 *                                    turn, with backoff) until a ticket arrives, then, as
 *                                    Constellation's joinclient.startNodeAndJoin:
 *     1. ticket checked (disk key 32 B, salt 32 B, measurement secret, kubelet certificate);
 *     2. cluster ID = HKDF(measurement secret, salt, "key-clusterID"); PCR 15 must still be zero,
 *        then TPM2_PCR_Event(15, cluster ID): the node is bound (a second join needs a reboot);
 *     3. keyslot 0: first-boot passphrase -> the ticket's disk key, token "initialized";
 *     4. node_state.json {Role: Worker, MeasurementSalt};
 *     5. kubelet client certificate (PEM) and its fresh key (0600) in <kubernetes_dir>;
 *     5a. a control plane: the ticket's control-plane files into the PKI directory (names from a
 *        fixed list: kubeadm's CAs, sa.key/pub, the etcd CA, etcd/initial-cluster);
 *     6. kubeadm join (--control-plane) when kubeadm is installed, else the log says so plainly;
 *     6a. a control plane with the shared store: its etcd member (bootstrapper_etcd_member_start,
 *        the learner the join service added), waited for until promoted;
 *     7. the marker INIT_COMPLETE_MARKER beside node_state.json.
 *  A failure in 3-7 sets the token back to "not initialized" and removes node_state.json (as a
 *  failed Init): the node reboots (INIT_EXIT_REBOOT) and starts over as a fresh node. */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/secret.h"
#include "bootstrapper.h"
#include "join.h"
#include "crypto/hkdf.h"
#include "join.pb-c.h"
#include "joinclient/joinclient.h"
#include "luks/luks.h"
#include "nodestate/nodestate.h"
#include "tpm/tpm.h"

#define LAYER "join"

static const unsigned join_config_pcrs[] = { 4, 8, 9, 11, 12, 13 };

int bootstrapper_join_config_json(const bootstrapper_config *cfg, char **ret_json, size_t *ret_len, ct_error *err) {
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        _cleanup_free_ char *why = NULL;
        int r = tpm_open(cfg->tcti, &t, &why);
        if (r < 0)
                return ct_error_set(err, r, "tpm", "tpm-open", "%s", why ? why : strerror(-r));
        uint32_t mask = 0;
        for (size_t i = 0; i < ELEMENTSOF(join_config_pcrs); i++)
                mask |= 1u << join_config_pcrs[i];
        tpmq_pcr_bank bank;
        if ((r = tpm_pcr_read(t, TPM_ALG_SHA256, mask, &bank)) < 0)
                return ct_error_set(err, r, "tpm", "pcr-read", "reading PCRs 4, 8, 9, 11-13: %s", tpm_last_error(t));

        _cleanup_free_ char *json = NULL;
        size_t json_len = 0;
        FILE *f = open_memstream(&json, &json_len);
        if (!f)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        fputs("{\"measurements\":{", f);
        for (size_t i = 0; i < ELEMENTSOF(join_config_pcrs); i++) {
                unsigned pcr = join_config_pcrs[i];
                if (!bank.present[pcr]) {
                        fclose(f);
                        return ct_error_set(err, -EIO, "tpm", "pcr-read", "the TPM returned no SHA-256 PCR %u", pcr);
                }
                _cleanup_free_ char *hex = hex_encode(bank.value[pcr], 32);
                if (!hex) {
                        fclose(f);
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                }
                fprintf(f, "%s\"%u\":{\"expected\":\"%s\",\"warnOnly\":false}", i ? "," : "", pcr, hex);
        }
        fputs("}}\n", f);
        if (fclose(f) != 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        *ret_json = TAKE_PTR(json);
        *ret_len = json_len;
        return 0;
}

int bootstrapper_write_join_config(const bootstrapper_config *cfg, const uint8_t *measurement_salt, size_t salt_len,
                                   ct_error *err) {
        if (salt_len != INIT_MEASUREMENT_SALT_LEN)
                return ct_error_set(err, -EINVAL, LAYER, "salt-invalid", "measurement salt is %zu bytes", salt_len);
        _cleanup_free_ char *json = NULL;
        size_t json_len = 0;
        int r = bootstrapper_join_config_json(cfg, &json, &json_len, err);
        if (r < 0)
                return r;

        if (mkdir(cfg->config_dir, 0700) < 0 && errno != EEXIST)
                return ct_error_set(err, -errno, LAYER, "io", "%s: %s", cfg->config_dir, strerror(errno));
        _cleanup_free_ char *config_path = NULL, *salt_path = NULL;
        if (asprintf(&config_path, "%s/" JOIN_CONFIG_ATTESTATION, cfg->config_dir) < 0 ||
            asprintf(&salt_path, "%s/" JOIN_CONFIG_SALT, cfg->config_dir) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if ((r = write_file_atomic(salt_path, measurement_salt, salt_len, 0600)) < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", salt_path, strerror(-r));
        if ((r = write_file_atomic(config_path, json, json_len, 0600)) < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", config_path, strerror(-r));
        initlog(LOG_LEVEL_INFO, "Init: join service configuration written to %s (PCRs 4, 8, 9, 11, 12, 13 enforced, "
                                "version 0) and %s",
                config_path, salt_path);
        return 0;
}

/* ---- the join ---------------------------------------------------------------------------- */

static void response_freep(Join__IssueJoinTicketResponse **p) {
        if (*p)
                join__issue_join_ticket_response__free_unpacked(*p, &rpc_wiping_allocator);
}

static int write_pem(const char *path, int (*writer)(BIO *, void *), void *obj, mode_t mode, ct_error *err) {
        BIO *b = BIO_new(BIO_s_secmem());
        if (!b || !writer(b, obj)) {
                BIO_free(b);
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "PEM encoding for %s failed", path);
        }
        char *data = NULL;
        long len = BIO_get_mem_data(b, &data);
        int r = len > 0 ? write_file_atomic(path, data, (size_t) len, mode) : -EIO;
        BIO_free(b); /* secure memory: wiped on free */
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        return 0;
}

static int pem_cert(BIO *b, void *x) {
        return PEM_write_bio_X509(b, x);
}
static int pem_key(BIO *b, void *k) {
        return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int write_kubelet_credentials(const bootstrapper_config *cfg, const ProtobufCBinaryData *cert_der, EVP_PKEY *key,
                                     ct_error *err) {
        const unsigned char *p = cert_der->data;
        X509 *x = d2i_X509(NULL, &p, (long) cert_der->len);
        if (!x || p != cert_der->data + cert_der->len) {
                X509_free(x);
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "the kubelet certificate does not parse");
        }
        int r = 0;
        _cleanup_free_ char *crt = NULL, *kp = NULL;
        if (mkdir(cfg->kubernetes_dir, 0755) < 0 && errno != EEXIST)
                r = ct_error_set(err, -errno, LAYER, "io", "%s: %s", cfg->kubernetes_dir, strerror(errno));
        else if (asprintf(&crt, "%s/" JOIN_KUBELET_CERT, cfg->kubernetes_dir) < 0 ||
                 asprintf(&kp, "%s/" JOIN_KUBELET_KEY, cfg->kubernetes_dir) < 0)
                r = ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        else if ((r = write_pem(kp, pem_key, key, 0600, err)) >= 0)
                r = write_pem(crt, pem_cert, x, 0644, err);
        X509_free(x);
        if (r >= 0)
                initlog(LOG_LEVEL_INFO, "join: kubelet client certificate %s and key %s written", crt, kp);
        return r;
}

static bool all_of(const char *s, size_t n, const char *alphabet) {
        return strlen(s) == n && strspn(s, alphabet) == n;
}

/* kubeadm's token [a-z0-9]{6}.[a-z0-9]{16} and "sha256:<64 hex>": the join service is not
 * authenticated, so nothing from the ticket may reach kubeadm's command line as an option. */
static bool valid_kubeadm_args(const Join__IssueJoinTicketResponse *t) {
        static const char lower_alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        const char *tok = t->token, *hash = t->discovery_token_ca_cert_hash;
        return metadata_valid_endpoint(t->api_server_endpoint) && strlen(tok) == 23 && tok[6] == '.' &&
               strspn(tok, lower_alnum) == 6 && all_of(tok + 7, 16, lower_alnum) && strncmp(hash, "sha256:", 7) == 0 &&
               all_of(hash + 7, 64, "0123456789abcdef");
}

static int run_kubeadm_join(const char *kubeadm, const Join__IssueJoinTicketResponse *t, const char *node_name,
                            bool control_plane, ct_error *err) {
        if (!valid_kubeadm_args(t))
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid",
                                    "the ticket's API server endpoint, token or CA hash is malformed");
        const char *argv[] = { kubeadm, "join", t->api_server_endpoint, "--token", t->token,
                               "--discovery-token-ca-cert-hash", t->discovery_token_ca_cert_hash, "--node-name",
                               node_name, control_plane ? "--control-plane" : NULL, NULL };
        pid_t pid = fork();
        if (pid < 0)
                return ct_error_set(err, -errno, LAYER, "kubeadm", "fork: %s", strerror(errno));
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execv(kubeadm, (char *const *) argv);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return ct_error_set(err, -errno, LAYER, "kubeadm", "waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return ct_error_set(err, -EIO, LAYER, "kubeadm", "%s join exited with status %d", kubeadm,
                                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0;
}

/* Sleeps ms, waking every 100 ms to look at *stop: false if stopped. */
static bool sleep_unless_stopped(int64_t ms, atomic_bool *stop) {
        while (ms > 0) {
                if (stop && atomic_load(stop))
                        return false;
                int64_t step = ms < 100 ? ms : 100;
                struct timespec ts = { .tv_sec = 0, .tv_nsec = step * 1000000 };
                nanosleep(&ts, NULL);
                ms -= step;
        }
        return !(stop && atomic_load(stop));
}

/* "host:port" names this node itself (its vpc_ip): a control plane never joins its own join service. */
static bool endpoint_is_self(const metadata *md, const char *ep) {
        const char *colon = strrchr(ep, ':');
        if (!colon || !md->vpc_ip)
                return false;
        const char *h = ep;
        size_t hl = (size_t) (colon - ep);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
                h++;
                hl -= 2;
        }
        return strlen(md->vpc_ip) == hl && strncmp(md->vpc_ip, h, hl) == 0;
}

size_t bootstrapper_join_endpoints(const metadata *md) {
        size_t n = 0;
        for (size_t i = 0; i < md->n_join_endpoints; i++)
                n += !(md->role == METADATA_ROLE_CONTROL_PLANE && endpoint_is_self(md, md->join_endpoints[i]));
        return n;
}

/* IssueJoinTicket on each endpoint in turn, again with backoff, until a ticket arrives. */
static int fetch_ticket(const join_options *o, const char *uuid, const uint8_t *csr, size_t csr_len,
                        Join__IssueJoinTicketResponse **ret, ct_error *err) {
        const metadata *md = &o->cfg->md;
        joinclient_options opt = { .issuer = o->issuer, .handshake_timeout_ms = o->handshake_timeout_ms };
        joinclient_join_request req = { .disk_uuid = uuid, .csr = csr, .csr_len = csr_len,
                                        .control_plane = md->role == METADATA_ROLE_CONTROL_PLANE };
        char msg[CT_ERROR_DETAIL_MAX + 128];
        for (unsigned attempt = 0;; attempt++) {
                for (size_t i = 0; i < md->n_join_endpoints; i++) {
                        if (md->role == METADATA_ROLE_CONTROL_PLANE && endpoint_is_self(md, md->join_endpoints[i]))
                                continue;
                        if (o->stop && atomic_load(o->stop))
                                return ct_error_set(err, -ECANCELED, LAYER, "stopped", "stopped while joining");
                        _cleanup_secret_ secret_t *packed = NULL;
                        grpc_status_code status = GRPC_STATUS_OK;
                        ct_error e = CT_ERROR_INIT;
                        if (joinclient_issue_join(md->join_endpoints[i], &opt, &req, &packed, &status, &e) < 0) {
                                initlog(LOG_LEVEL_WARN, "join: %s: %s", md->join_endpoints[i],
                                        ct_error_format(&e, msg, sizeof msg));
                                continue;
                        }
                        Join__IssueJoinTicketResponse *t = join__issue_join_ticket_response__unpack(
                                &rpc_wiping_allocator, packed->len, packed->data);
                        if (!t)
                                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid",
                                                    "the ticket from %s does not unpack", md->join_endpoints[i]);
                        initlog(LOG_LEVEL_INFO, "join: ticket issued by %s", md->join_endpoints[i]);
                        *ret = t;
                        return 0;
                }
                int64_t delay = joinclient_backoff_ms(&o->retry, attempt);
                initlog(LOG_LEVEL_INFO, "join: no ticket from %zu endpoint(s); retrying in %lld ms", bootstrapper_join_endpoints(md),
                        (long long) delay);
                if (!sleep_unless_stopped(delay, o->stop))
                        return ct_error_set(err, -ECANCELED, LAYER, "stopped", "stopped while joining");
        }
}

static int check_ticket(const Join__IssueJoinTicketResponse *t, ct_error *err) {
        if (t->state_disk_key.len != 32)
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "state disk key is %zu bytes, expected 32",
                                    t->state_disk_key.len);
        if (t->measurement_salt.len != NODESTATE_SALT_LEN)
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "measurement salt is %zu bytes, expected %d",
                                    t->measurement_salt.len, NODESTATE_SALT_LEN);
        if (t->measurement_secret.len == 0 || t->kubelet_cert.len == 0)
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "the ticket lacks %s",
                                    t->measurement_secret.len ? "the kubelet certificate" : "the measurement secret");
        return 0;
}

/* The control-plane files a ticket may carry (reference constellation.md §2.3: kubeadm's names under
 * the PKI directory) and whether each is a secret; nothing else is ever written from a ticket. */
static const struct {
        const char *name;
        bool secret;
        bool required;
} cp_files[] = {
        { "ca.crt", false, true },          { "ca.key", true, true },
        { "sa.pub", false, true },          { "sa.key", true, true },
        { "front-proxy-ca.crt", false, true }, { "front-proxy-ca.key", true, true },
        { "etcd/ca.crt", false, true },     { "etcd/ca.key", true, true },
        { "etcd/initial-cluster", false, false },
};
#define CP_FILE_INITIAL_CLUSTER 8
#define CP_FILE_MAX (64 * 1024)

/* Every file named once, from the list, within size; the required ones present; the initial
 * cluster required with the shared store. ret_index[i]: the ticket's entry for cp_files[i] or -1. */
static int check_cp_files(const Join__IssueJoinTicketResponse *t, bool shared_store, int ret_index[static 9],
                          ct_error *err) {
        for (size_t i = 0; i < ELEMENTSOF(cp_files); i++)
                ret_index[i] = -1;
        if (t->n_control_plane_files > ELEMENTSOF(cp_files))
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "%zu control-plane files",
                                    t->n_control_plane_files);
        for (size_t k = 0; k < t->n_control_plane_files; k++) {
                const Join__ControlPlaneCertOrKey *f = t->control_plane_files[k];
                size_t i = 0;
                while (i < ELEMENTSOF(cp_files) && !(f && f->name && streq(f->name, cp_files[i].name)))
                        i++;
                if (i == ELEMENTSOF(cp_files) || ret_index[i] >= 0)
                        return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid",
                                            "control-plane file %zu is unknown or named twice", k);
                if (f->data.len == 0 || f->data.len > CP_FILE_MAX || memchr(f->data.data, 0, f->data.len))
                        return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "control-plane file %s: %zu bytes",
                                            cp_files[i].name, f->data.len);
                ret_index[i] = (int) k;
        }
        for (size_t i = 0; i < ELEMENTSOF(cp_files); i++)
                if ((cp_files[i].required || (shared_store && i == CP_FILE_INITIAL_CLUSTER)) && ret_index[i] < 0)
                        return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "the ticket lacks control-plane file %s%s",
                                            cp_files[i].name,
                                            i == CP_FILE_INITIAL_CLUSTER ? " (the join service has no shared store?)" : "");
        return 0;
}

/* The ticket's etcd/initial-cluster goes into etcd.env as ETCD_INITIAL_CLUSTER: the join service is
 * not authenticated (the joiner attests, the service does not), so the value is held to its shape,
 * "name=https://host:port" entries separated by commas (node names DNS-1123, hosts IP addresses), at
 * most 64 of them, one of them this node's own peer URL under its name: no newline or other
 * character can reach the environment file. */
int bootstrapper_check_initial_cluster(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o,
                                       const uint8_t *data, size_t len, ct_error *err) {
        if (len == 0 || len > CP_FILE_MAX || memchr(data, 0, len))
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "etcd/initial-cluster: %zu bytes", len);
        _cleanup_free_ char *v = strndup((const char *) data, len), *self = NULL;
        bool v6 = strchr(cfg->md.vpc_ip, ':') != NULL;
        if (!v || asprintf(&self, "%s=https://%s%s%s:%d", cfg->md.name, v6 ? "[" : "", cfg->md.vpc_ip, v6 ? "]" : "",
                           o->peer_port) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        bool has_self = false;
        size_t n = 0;
        char *save = NULL;
        for (char *e = strtok_r(v, ",", &save); e; e = strtok_r(NULL, ",", &save), n++) {
                char *eq = strchr(e, '=');
                if (n >= 64 || !eq)
                        return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid",
                                            "etcd/initial-cluster: more than 64 entries, or one without '='");
                *eq = 0;
                bool ok = metadata_valid_node_name(e) && strncmp(eq + 1, "https://", 8) == 0 &&
                          metadata_valid_endpoint(eq + 9);
                if (ok) { /* the host must be an IP address */
                        const char *hp = eq + 9, *colon = strrchr(hp, ':');
                        char host[64];
                        size_t hl = colon ? (size_t) (colon - hp) : 0;
                        if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
                                hp++;
                                hl -= 2;
                        }
                        ok = hl > 0 && hl < sizeof host;
                        if (ok) {
                                memcpy(host, hp, hl);
                                host[hl] = 0;
                                ok = metadata_valid_ip(host);
                        }
                }
                if (!ok)
                        return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid",
                                            "etcd/initial-cluster entry %zu is not name=https://ip:port", n);
                *eq = '=';
                has_self = has_self || streq(e, self);
        }
        if (!has_self)
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid",
                                    "etcd/initial-cluster does not list this node's own peer URL (%s) among at most 64 "
                                    "name=https://ip:port entries", self);
        return 0;
}

static int write_cp_files(const bootstrapper_config *cfg, const Join__IssueJoinTicketResponse *t,
                          const int index[static 9], ct_error *err) {
        for (size_t i = 0; i < ELEMENTSOF(cp_files); i++) {
                if (index[i] < 0)
                        continue;
                const ProtobufCBinaryData *d = &t->control_plane_files[index[i]]->data;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", cfg->pki_dir, cp_files[i].name) < 0)
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                int r = mkdir_parents_private(path);
                if (r >= 0)
                        r = write_file_atomic(path, d->data, d->len, cp_files[i].secret ? 0600 : 0644);
                if (r < 0)
                        return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        }
        initlog(LOG_LEVEL_INFO, "join: the control-plane files (the cluster's CAs, service-account key, etcd CA) "
                                "written to %s", cfg->pki_dir);
        return 0;
}

int bootstrapper_join(const join_options *o, ct_error *err) {
        const bootstrapper_config *cfg = o->cfg;
        if (bootstrapper_join_endpoints(&cfg->md) == 0)
                return ct_error_set(err, -ENOENT, LAYER, "no-endpoints", "the metadata names no join endpoint");

        /* Read-only preparation: the disk must be NEW, the first-boot keyfile readable. */
        _cleanup_(luks_closep) luks_disk *disk = NULL;
        int r = cfg->state_disk ? luks_open(cfg->state_disk, &disk, err) : luks_open_active(LUKS_STATE_MAPPER_NAME, &disk, err);
        if (r < 0)
                return r;
        luks_state st;
        if ((r = luks_get_state(disk, &st, err)) < 0)
                return r;
        if (st != LUKS_STATE_NEW)
                return ct_error_set(err, -EBUSY, LAYER, "disk-not-new", "state disk %s is %s, expected a new disk",
                                    luks_path(disk), luks_state_to_string(st));
        char uuid[LUKS_UUID_STRING_MAX];
        if ((r = luks_uuid(disk, uuid, err)) < 0)
                return r;
        _cleanup_secret_ secret_t *first_boot = NULL;
        if ((r = luks_read_keyfile(cfg->state_keyfile, &first_boot, err)) < 0)
                return r;

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        const char *ips[] = { cfg->md.vpc_ip };
        if ((r = joinclient_csr_new(cfg->md.name, ips, 1, &key, &csr, &csr_len, err)) < 0)
                return r;
        bool cp = cfg->md.role == METADATA_ROLE_CONTROL_PLANE;
        initlog(LOG_LEVEL_INFO, "join: %s %s, state disk %s: asking %zu join endpoint(s) for a ticket",
                cp ? "control plane" : "worker", cfg->md.name, uuid, bootstrapper_join_endpoints(&cfg->md));

        _cleanup_(response_freep) Join__IssueJoinTicketResponse *t = NULL;
        if ((r = fetch_ticket(o, uuid, csr, csr_len, &t, err)) < 0)
                return r;
        if ((r = check_ticket(t, err)) < 0)
                return r;
        int cp_index[ELEMENTSOF(cp_files)];
        if (cp && (r = check_cp_files(t, o->etcd != NULL, cp_index, err)) < 0)
                return r;
        if (cp && o->etcd &&
            (r = bootstrapper_check_initial_cluster(
                     cfg, o->etcd, t->control_plane_files[cp_index[CP_FILE_INITIAL_CLUSTER]]->data.data,
                     t->control_plane_files[cp_index[CP_FILE_INITIAL_CLUSTER]]->data.len, err)) < 0)
                return r;
        if (!cp && t->n_control_plane_files > 0)
                return ct_error_set(err, -EBADMSG, LAYER, "ticket-invalid", "a worker's ticket with control-plane files");
        /* A control plane may still get Init instead: whichever claims the node first wins. */
        if (o->claim && !o->claim(o->claim_userdata))
                return ct_error_set(err, -ECANCELED, LAYER, "init-won",
                                    "Init took this node while it was joining: the ticket is dropped");

        /* Lock: PCR 15 must still be zero, then bind the node to the cluster. */
        uint8_t cluster_id[32];
        _cleanup_secret_ secret_t *ms = secret_new_copy(t->measurement_secret.data, t->measurement_secret.len);
        if (!ms)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if (kdf_cluster_id(ms, t->measurement_salt.data, t->measurement_salt.len, cluster_id) < 0)
                return ct_error_set(err, -EIO, LAYER, "derive", "deriving the cluster ID failed");
        bool zero = false;
        if ((r = bootstrapper_pcr15_is_zero(cfg->tcti, &zero, err)) < 0)
                return r;
        if (!zero)
                return ct_error_set(err, -EALREADY, LAYER, "already-activated", INIT_ALREADY_ACTIVATED);
        {
                _cleanup_(tpm_closep) tpm_ctx *tpm = NULL;
                _cleanup_free_ char *why = NULL;
                if ((r = tpm_open(cfg->tcti, &tpm, &why)) < 0)
                        return ct_error_set(err, r, "tpm", "tpm-open", "%s", why ? why : strerror(-r));
                if ((r = tpm_mark_bootstrapped(tpm, cluster_id, sizeof cluster_id)) < 0)
                        return ct_error_set(err, r, "tpm", "pcr-extend", "extending PCR 15: %s", tpm_last_error(tpm));
        }
        initlog(LOG_LEVEL_INFO, "join: node locked: PCR 15 extended with the cluster ID");
        /* From here on a failure leaves PCR 15 set: the caller exits INIT_EXIT_REBOOT. */
        if (o->ret_locked)
                *o->ret_locked = true;

        /* Everything with a cleanup is declared before the first goto (no jump into its scope). */
        _cleanup_secret_ secret_t *disk_key = secret_new_copy(t->state_disk_key.data, t->state_disk_key.len);
        _cleanup_free_ char *marker = bootstrapper_marker_path(cfg->nodestate_path);
        if (!disk_key || !marker) {
                r = ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                goto undo;
        }
        if ((r = luks_rekey_initialized(disk, first_boot, disk_key, err)) < 0)
                goto undo;
        initlog(LOG_LEVEL_INFO, "join: state disk %s re-keyed to the ticket's key and marked initialized", uuid);

        nodestate ns = { .role = cp ? NODESTATE_ROLE_CONTROL_PLANE : NODESTATE_ROLE_WORKER };
        memcpy(ns.measurement_salt, t->measurement_salt.data, NODESTATE_SALT_LEN);
        if ((r = nodestate_write(cfg->nodestate_path, &ns, err)) < 0)
                goto undo;
        initlog(LOG_LEVEL_INFO, "join: %s written", cfg->nodestate_path);

        if (cp && (r = write_cp_files(cfg, t, cp_index, err)) < 0)
                goto undo;
        if ((r = write_kubelet_credentials(cfg, &t->kubelet_cert, key, err)) < 0)
                goto undo;

        if (o->kubeadm && access(o->kubeadm, X_OK) == 0) {
                initlog(LOG_LEVEL_INFO, "join: running %s join %s", o->kubeadm, t->api_server_endpoint);
                if ((r = run_kubeadm_join(o->kubeadm, t, cfg->md.name, cp, err)) < 0)
                        goto undo;
                initlog(LOG_LEVEL_INFO, "join: kubeadm join finished");
        } else
                initlog(LOG_LEVEL_WARN,
                        "join: the Kubernetes layer was not installed: %s is not there, so kubeadm join did not run; "
                        "this node has its cluster identity (PCR 15), its state disk key, node_state.json and its "
                        "kubelet certificate, but it is no Kubernetes node",
                        o->kubeadm ? o->kubeadm : "kubeadm");

        if (cp && o->etcd) {
                const ProtobufCBinaryData *d = &t->control_plane_files[cp_index[CP_FILE_INITIAL_CLUSTER]]->data;
                _cleanup_free_ char *ic = strndup((const char *) d->data, d->len);
                if (!ic) {
                        r = ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                        goto undo;
                }
                if ((r = bootstrapper_etcd_member_start(cfg, o->etcd, ic, err)) < 0)
                        goto undo;
        } else if (cp)
                initlog(LOG_LEVEL_WARN, "join: no shared store configured (--etcd-endpoint): this control plane runs "
                                        "no etcd member, so its key and join services will not start");

        if ((r = write_file_atomic(marker, "complete\n", 9, 0600)) < 0) {
                r = ct_error_set(err, r, LAYER, "io", "%s: %s", marker, strerror(-r));
                goto undo;
        }
        initlog(LOG_LEVEL_INFO, "join: joined the cluster");
        return 0;

undo: {
        char msg[CT_ERROR_DETAIL_MAX + 128];
        ct_error u = CT_ERROR_INIT;
        initlog(LOG_LEVEL_ERROR, "join failed after the node was locked: %s", ct_error_format(err, msg, sizeof msg));
        if (luks_mark_initialized(disk, false, &u) < 0)
                initlog(LOG_LEVEL_ERROR, "join: could not mark the state disk not initialized: %s",
                        ct_error_format(&u, msg, sizeof msg));
        if (unlink(cfg->nodestate_path) < 0 && errno != ENOENT)
                initlog(LOG_LEVEL_ERROR, "join: could not remove %s: %s", cfg->nodestate_path, strerror(errno));
        return r;
}
}
