/* SPDX-License-Identifier: Apache-2.0 */
/* The bootstrapper's side of the control planes' shared store (join.h bootstrapper_shared_state,
 * docs/node.md "The shared store"): etcd's certificates and configuration, its start, and the
 * hand-over of what Init produced (the join service's attestation configuration and measurement
 * salt, the key service's KMS configuration) into etcd, where every control plane's join service
 * and key service read it. */
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/secret.h"
#include "bootstrapper.h"
#include "etcd/etcd.h"
#include "join.h"
#include "joinconfig/joinconfig.h"
#include "nodestate/nodestate.h"
#include "pki/pki.h"

#define LAYER "etcd-setup"
#define KEYSERVICE_ETCD_PREFIX "/constellation/keyservice/" /* node/keyservice/keyservice.h */
#define SECRET_FILE_MAX 8192

static bool is_loopback(const char *ip) {
        return strncmp(ip, "127.", 4) == 0 || streq(ip, "::1");
}

/* "host:port" of the endpoint -> port. */
static int endpoint_port(const char *endpoint) {
        const char *colon = strrchr(endpoint, ':');
        if (!colon)
                return -EINVAL;
        char *end = NULL;
        long p = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || p < 1 || p > 65535)
                return -EINVAL;
        return (int) p;
}

/* initial_cluster NULL: a new one-member cluster of this node; else the members MemberAdd answered
 * ("name=peer-url,...") and state "existing". */
static int write_env(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o, const char *initial_cluster,
                     ct_error *err) {
        int cport = endpoint_port(o->endpoint);
        if (cport < 0 || o->peer_port < 1 || o->peer_port > 65535)
                return ct_error_set(err, -EINVAL, LAYER, "config", "etcd endpoint %s / peer port %d", o->endpoint,
                                    o->peer_port);
        const char *ip = cfg->md.vpc_ip;
        bool v6 = strchr(ip, ':') != NULL;
        const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
        const char *pki = cfg->pki_dir;
        _cleanup_free_ char *env = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&env, &len);
        if (!f)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        fprintf(f, "# Written by constellation-bootstrapper (docs/node.md \"The shared store\"); etcd reads ETCD_*.\n");
        fprintf(f, "ETCD_NAME=%s\n", cfg->md.name);
        fprintf(f, "ETCD_DATA_DIR=%s\n", o->data_dir);
        if (is_loopback(ip))
                fprintf(f, "ETCD_LISTEN_CLIENT_URLS=https://%s%s%s:%d\n", lb, ip, rb, cport);
        else
                fprintf(f, "ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:%d,https://%s%s%s:%d\n", cport, lb, ip, rb, cport);
        fprintf(f, "ETCD_ADVERTISE_CLIENT_URLS=https://%s%s%s:%d\n", lb, ip, rb, cport);
        fprintf(f, "ETCD_LISTEN_PEER_URLS=https://%s%s%s:%d\n", lb, ip, rb, o->peer_port);
        fprintf(f, "ETCD_INITIAL_ADVERTISE_PEER_URLS=https://%s%s%s:%d\n", lb, ip, rb, o->peer_port);
        if (initial_cluster) {
                fprintf(f, "ETCD_INITIAL_CLUSTER=%s\n", initial_cluster);
                fprintf(f, "ETCD_INITIAL_CLUSTER_STATE=existing\n");
        } else {
                fprintf(f, "ETCD_INITIAL_CLUSTER=%s=https://%s%s%s:%d\n", cfg->md.name, lb, ip, rb, o->peer_port);
                fprintf(f, "ETCD_INITIAL_CLUSTER_STATE=new\n");
        }
        fprintf(f, "ETCD_INITIAL_CLUSTER_TOKEN=constellation\n");
        fprintf(f, "ETCD_CLIENT_CERT_AUTH=true\n");
        fprintf(f, "ETCD_TRUSTED_CA_FILE=%s/%s.crt\n", pki, PKI_CA_ETCD);
        fprintf(f, "ETCD_CERT_FILE=%s/%s.crt\n", pki, PKI_ETCD_SERVER);
        fprintf(f, "ETCD_KEY_FILE=%s/%s.key\n", pki, PKI_ETCD_SERVER);
        fprintf(f, "ETCD_PEER_CLIENT_CERT_AUTH=true\n");
        fprintf(f, "ETCD_PEER_TRUSTED_CA_FILE=%s/%s.crt\n", pki, PKI_CA_ETCD);
        fprintf(f, "ETCD_PEER_CERT_FILE=%s/%s.crt\n", pki, PKI_ETCD_PEER);
        fprintf(f, "ETCD_PEER_KEY_FILE=%s/%s.key\n", pki, PKI_ETCD_PEER);
        /* Peers are authenticated by the etcd CA alone: a peer's connection arrives from the
         * infrastructure's NAT (QEMU's slirp host address 10.42.0.1, loopback's 127.0.0.1), never
         * from the address in its certificate, which etcd would otherwise require (docs/node.md). */
        fprintf(f, "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION=true\n");
        fprintf(f, "ETCD_ENABLE_V2=false\n");
        fprintf(f, "ETCD_LOGGER=zap\n");
        fprintf(f, "ETCD_LOG_OUTPUTS=stderr\n");
        if (fclose(f) != 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        int r = mkdir_parents_private(o->env_file);
        if (r >= 0)
                r = write_file_atomic(o->env_file, env, len, 0600);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", o->env_file, strerror(-r));
        if (mkdir(o->data_dir, 0700) < 0 && errno != EEXIST) {
                r = mkdir_parents_private(o->data_dir);
                if (r < 0 || (mkdir(o->data_dir, 0700) < 0 && errno != EEXIST))
                        return ct_error_set(err, -errno, LAYER, "io", "%s: %s", o->data_dir, strerror(errno));
        }
        return 0;
}

/* systemctl start UNIT (blocking: a Type=notify unit is started once it said READY=1). */
static int start_unit(const char *unit, ct_error *err) {
        pid_t pid = fork();
        if (pid < 0)
                return ct_error_set(err, -errno, LAYER, "start-failed", "fork: %s", strerror(errno));
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                execlp("systemctl", "systemctl", "start", unit, (char *) NULL);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return ct_error_set(err, -errno, LAYER, "start-failed", "waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return ct_error_set(err, -EIO, LAYER, "start-failed", "systemctl start %s: status %d", unit,
                                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* etcd answers a Range (any answer, also "not found") within wait_ms. A fresh channel per attempt:
 * a channel that failed to connect waits out gRPC's reconnect backoff (up to minutes) before it
 * tries again, even after etcd came up. */
static int wait_for_etcd(const etcd_client_config *ec, int64_t wait_ms, ct_error *err) {
        int64_t deadline = now_ms() + wait_ms, delay = 50;
        for (;;) {
                ct_error e = CT_ERROR_INIT;
                _cleanup_(etcd_client_freep) etcd_client *c = NULL;
                int r = etcd_client_new(ec, &c, &e);
                if (r < 0) {
                        if (err)
                                *err = e;
                        return r;
                }
                _cleanup_secret_ secret_t *v = NULL;
                int64_t rev = 0;
                r = etcd_get(c, ETCD_PREFIX "ready", 16, &v, &rev, &e);
                if (r >= 0 || r == -ENOENT)
                        return 0;
                if (now_ms() + delay >= deadline) {
                        if (err)
                                *err = e;
                        ct_error_prefix(err, "etcd did not answer within %lld ms", (long long) wait_ms);
                        return r;
                }
                struct timespec ts = { delay / 1000, (delay % 1000) * 1000000L };
                nanosleep(&ts, NULL); /* backoff between attempts at a condition with a deadline */
                delay = delay * 2 > 1000 ? 1000 : delay * 2;
        }
}

/* The key service's files in config_dir -> etcd (each only if absent), then removed. */
static int move_keyservice_config(const bootstrapper_config *cfg, etcd_client *c, ct_error *err) {
        static const char *const names[] = { INIT_KEYSERVICE_KMS_URI, INIT_KEYSERVICE_MASTER_SECRET,
                                             INIT_KEYSERVICE_SALT };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", cfg->config_dir, names[i]) < 0)
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                _cleanup_secret_ secret_t *v = NULL;
                int r = secret_read_file(path, SECRET_FILE_MAX, &v);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
                char key[128];
                snprintf(key, sizeof key, "%s%s", KEYSERVICE_ETCD_PREFIX, names[i]);
                r = etcd_cas(c, key, 0, v->data, v->len, NULL, NULL, err);
                if (r < 0 && r != -ESTALE) /* -ESTALE: stored before a crash, or by the first control plane */
                        return r;
                if (err && r == -ESTALE)
                        *err = (ct_error) CT_ERROR_INIT;
                if (unlink(path) < 0 && errno != ENOENT)
                        return ct_error_set(err, -errno, LAYER, "io", "%s: %s", path, strerror(errno));
                initlog(LOG_LEVEL_INFO, "the key service's %s is in the shared store (%s); %s removed", names[i], key,
                        path);
        }
        return 0;
}

int bootstrapper_shared_state(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o, ct_error *err) {
        const char *ips[] = { cfg->md.vpc_ip };
        int r = pki_etcd_certs(cfg->pki_dir, cfg->md.name, ips, 1, err);
        if (r < 0)
                return r;
        /* Written once: a restart keeps it (a member that joined an existing cluster must never come
         * back as a new one-member cluster, should its data directory be gone). */
        if (access(o->env_file, F_OK) != 0 && (r = write_env(cfg, o, NULL, err)) < 0)
                return r;
        if (!isempty(o->unit)) {
                if ((r = start_unit(o->unit, err)) < 0)
                        return r;
                initlog(LOG_LEVEL_INFO, "started %s", o->unit);
        }
        etcd_client_config ec;
        _cleanup_free_ char *storage = NULL;
        if (etcd_client_config_from_pki(o->endpoint, cfg->pki_dir, &ec, &storage) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if ((r = wait_for_etcd(&ec, o->wait_ms, err)) < 0)
                return r;
        _cleanup_(etcd_client_freep) etcd_client *c = NULL;
        if ((r = etcd_client_new(&ec, &c, err)) < 0)
                return r;

        nodestate ns;
        if ((r = nodestate_read(cfg->nodestate_path, &ns, err)) < 0)
                return r;
        _cleanup_free_ char *json = NULL;
        size_t json_len = 0;
        r = bootstrapper_join_config_json(cfg, &json, &json_len, err);
        if (r >= 0) {
                joinconfig_store store = joinconfig_store_etcd(c);
                r = joinconfig_store_init(&store, (const uint8_t *) json, json_len, ns.measurement_salt, err);
        }
        erase_memory(&ns, sizeof ns);
        if (r < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "the join service's configuration is in the shared store (etcd %s, "
                                JOINCONFIG_ETCD_PREFIX "*; PCRs 4, 8, 9, 11, 12, 13 enforced unless an update is "
                                "already stored)",
                o->endpoint);
        return move_keyservice_config(cfg, c, err);
}

/* ---- a control plane joining the store ---- */

static int peer_url(const bootstrapper_config *cfg, int peer_port, char *buf, size_t size) {
        bool v6 = strchr(cfg->md.vpc_ip, ':') != NULL;
        if ((size_t) snprintf(buf, size, "https://%s%s%s:%d", v6 ? "[" : "", cfg->md.vpc_ip, v6 ? "]" : "", peer_port) >=
            size)
                return -EINVAL;
        return 0;
}

/* etcd.env for a member of an existing store, the unit started, and its client port serving a
 * linearizable Range (the member is in the quorum). */
static int start_member(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o, const char *cluster,
                        ct_error *err) {
        int r = write_env(cfg, o, cluster, err);
        if (r < 0)
                return r;
        if (!isempty(o->unit)) {
                if ((r = start_unit(o->unit, err)) < 0)
                        return r;
                initlog(LOG_LEVEL_INFO, "started %s", o->unit);
        }
        etcd_client_config local;
        _cleanup_free_ char *local_storage = NULL;
        if (etcd_client_config_from_pki(o->endpoint, cfg->pki_dir, &local, &local_storage) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if ((r = wait_for_etcd(&local, o->wait_ms, err)) < 0)
                return r;
        initlog(LOG_LEVEL_INFO, "this node's etcd member serves the shared store (%s, members: %s)", o->endpoint,
                cluster);
        return 0;
}

int bootstrapper_etcd_member_join(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o,
                                  const char *member_endpoint, ct_error *err) {
        const char *ips[] = { cfg->md.vpc_ip };
        int r = pki_etcd_certs(cfg->pki_dir, cfg->md.name, ips, 1, err);
        if (r < 0)
                return r;
        char self_url[300];
        if (peer_url(cfg, o->peer_port, self_url, sizeof self_url) < 0)
                return ct_error_set(err, -EINVAL, LAYER, "config", "peer URL too long");
        etcd_client_config ec;
        _cleanup_free_ char *storage = NULL;
        if (etcd_client_config_from_pki(member_endpoint, cfg->pki_dir, &ec, &storage) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if ((r = wait_for_etcd(&ec, o->wait_ms, err)) < 0)
                return r;
        _cleanup_(etcd_client_freep) etcd_client *c = NULL;
        if ((r = etcd_client_new(&ec, &c, err)) < 0)
                return r;
        /* Already a member (a restart after MemberAdd): take the list as it is; else add us. */
        etcd_members m = { 0 };
        if ((r = etcd_member_list(c, &m, err)) < 0)
                return r;
        uint64_t self = 0;
        for (size_t i = 0; i < m.n && !self; i++)
                for (char **u = m.items[i].peer_urls; u && *u && !self; u++)
                        if (streq(*u, self_url))
                                self = m.items[i].id;
        if (!self) {
                etcd_members_done(&m);
                if ((r = etcd_member_add(c, self_url, &m, err)) < 0)
                        return r;
                self = m.added_id;
                initlog(LOG_LEVEL_INFO, "added to the shared store as etcd member %llx (%s) through %s",
                        (unsigned long long) self, self_url, member_endpoint);
        }
        _cleanup_free_ char *cluster = NULL;
        r = etcd_initial_cluster(&m, self, cfg->md.name, &cluster);
        etcd_members_done(&m);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "internal", "out of memory");
        return start_member(cfg, o, cluster, err);
}

int bootstrapper_etcd_member_start(const bootstrapper_config *cfg, const bootstrapper_etcd_options *o,
                                   const char *initial_cluster, ct_error *err) {
        const char *ips[] = { cfg->md.vpc_ip };
        int r = pki_etcd_certs(cfg->pki_dir, cfg->md.name, ips, 1, err);
        if (r < 0)
                return r;
        /* A learner answers no linearizable Range: this returns once the join service promoted it. */
        return start_member(cfg, o, initial_cluster, err);
}
