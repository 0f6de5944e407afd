/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-joinservice: issues join and rejoin tickets to attested nodes (docs/node.md,
 * reference constellation.md §2.3). Runs on every initialised control plane after the key service.
 *
 *   :30090  gRPC over aTLS; the CLIENT attests (qemu-vtpm, validated against the attestation
 *           configuration in force, PCR 15 = 0 enforced); this side does not attest
 *   :30091  plain gRPC, /joinconfig.API/UpdateAttestationConfig: signed attestation config
 *           updates (authenticated by their HMAC, not by the transport; --update-listen none
 *           turns it off) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "basic/log.h"
#include "etcd/etcd.h"
#include "joinservice.h"
#include "metadata/metadata.h"
#include "service/service.h"

static const char *arg_kms_uri, *arg_keyservice = JOIN_KEYSERVICE, *arg_config_dir = JOINCONFIG_DEFAULT_DIR,
                  *arg_pki_dir = PKI_DEFAULT_DIR, *arg_api_endpoint, *arg_metadata, *arg_kubeadm, *arg_kubeconfig,
                  *arg_update_listen = JOIN_UPDATE_LISTEN, *arg_max_connections, *arg_handshake_timeout,
                  *arg_etcd_endpoint, *arg_config_refresh, *arg_control_plane_ips, *arg_etcd_peer_port = "2380",
                  *arg_learner_timeout;

static const service_option options[] = {
        { "keyservice", "HOST:PORT", "key service to get data keys from (default " JOIN_KEYSERVICE ")",
          &arg_keyservice, NULL, false },
        { "kms-uri", "URI", "get data keys from this KMS URI instead (tests; the URI holds the master secret)",
          &arg_kms_uri, NULL, false },
        { "etcd-endpoint", "HOST:PORT", "the shared store: etcd with mTLS (client certificate and CA from --pki-dir "
          "etcd/); the unit's way", &arg_etcd_endpoint, NULL, false },
        { "config-refresh", "MS", "with --etcd-endpoint: how often a newer configuration stored by another control "
          "plane is looked for (default 5000)", &arg_config_refresh, NULL, false },
        { "config-dir", "DIR", "without --etcd-endpoint: attestationConfig and measurementSalt in DIR (default "
          JOINCONFIG_DEFAULT_DIR "; a single service without etcd, e.g. host tests)", &arg_config_dir, NULL, false },
        { "pki-dir", "DIR", "cluster PKI (default " PKI_DEFAULT_DIR ")", &arg_pki_dir, NULL, false },
        { "control-plane-ips", "IP,IP", "the infrastructure's control planes: only a joiner with one of these "
          "addresses gets control-plane files (default: the metadata's control_plane_ips)", &arg_control_plane_ips,
          NULL, false },
        { "etcd-peer-port", "PORT", "with --etcd-endpoint: the etcd peer port control-plane joiners listen on "
          "(default 2380)", &arg_etcd_peer_port, NULL, false },
        { "learner-timeout", "MS", "with --etcd-endpoint: a control-plane joiner's etcd learner that cannot be "
          "promoted for this long is removed (default 600000)", &arg_learner_timeout, NULL, false },
        { "api-endpoint", "HOST:PORT", "API server endpoint for joiners (default: metadata vpc_ip:6443)",
          &arg_api_endpoint, NULL, false },
        { "metadata", "PATH", "node metadata (default $" METADATA_PATH_ENV " or fw_cfg)", &arg_metadata, NULL, false },
        { "kubeadm", "PATH", "register bootstrap tokens with `kubeadm token create` (default: not registered)",
          &arg_kubeadm, NULL, false },
        { "kubeconfig", "PATH", "admin kubeconfig for kubeadm (default /etc/kubernetes/admin.conf)", &arg_kubeconfig,
          NULL, false },
        { "max-connections", "N", "aTLS connections at once (default 128)", &arg_max_connections, NULL, false },
        { "handshake-timeout", "MS", "bound on one aTLS handshake incl. validation (default 20000)",
          &arg_handshake_timeout, NULL, false },
        { "update-listen", "HOST:PORT", "attestation config updates, plain gRPC (default " JOIN_UPDATE_LISTEN
                                        "; none: off)",
          &arg_update_listen, NULL, false },
};

static service_info info = {
        .name = "constellation-joinservice",
        .summary = "Issues join and rejoin tickets to nodes that attest (aTLS, qemu-vtpm, PCR 15 = 0).",
        .default_listen = JOIN_LISTEN,
        .options = options,
        .n_options = ELEMENTSOF(options),
        .atls = true,
        .atls_no_issuer = true,
        .max_connections = JOIN_MAX_CONNECTIONS,
        .handshake_timeout_ms = JOIN_HANDSHAKE_TIMEOUT_MS,
        .max_message = JOIN_MAX_REQUEST,
};

static char errbuf[CT_ERROR_DETAIL_MAX + 128];
#define ERR(e) ct_error_format((e), errbuf, sizeof errbuf)

static void update_server_error(void *userdata, int error, const char *what) {
        log_warn("attestation config updates: %s", what);
}

/* With the shared store: take configurations other control planes accepted. */
static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        long interval_ms;
} refresher = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *refresh_thread(void *userdata) {
        joinservice *js = userdata;
        bool failing = false;
        pthread_mutex_lock(&refresher.lock);
        while (!refresher.stop) {
                struct timespec until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += refresher.interval_ms / 1000;
                until.tv_nsec += (refresher.interval_ms % 1000) * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                while (!refresher.stop && pthread_cond_timedwait(&refresher.cond, &refresher.lock, &until) == 0)
                        ;
                if (refresher.stop)
                        break;
                pthread_mutex_unlock(&refresher.lock);
                ct_error err = CT_ERROR_INIT;
                int r = joinservice_refresh_config(js, NULL, &err);
                ct_error merr = CT_ERROR_INIT;
                if (r >= 0 && joinservice_tend_members(js, &merr) < 0 && !failing) {
                        char mmsg[CT_ERROR_DETAIL_MAX + 128];
                        log_warn("shared store: membership: %s", ct_error_format(&merr, mmsg, sizeof mmsg));
                }
                char msg[CT_ERROR_DETAIL_MAX + 128]; /* not errbuf: this thread runs beside main */
                if (r < 0 && !failing)
                        log_warn("shared store: %s (the configuration in force stays)",
                                 ct_error_format(&err, msg, sizeof msg));
                else if (r >= 0 && failing)
                        log_info("shared store: reachable again");
                failing = r < 0;
                pthread_mutex_lock(&refresher.lock);
        }
        pthread_mutex_unlock(&refresher.lock);
        return NULL;
}

int main(int argc, char **argv) {
        _cleanup_(service_freep) service *s = NULL;
        int r = service_new(&info, argc, argv, &s);
        if (r < 0)
                return service_exit_code(r);

        if (arg_max_connections) {
                char *end = NULL;
                unsigned long v = strtoul(arg_max_connections, &end, 10);
                if (end == arg_max_connections || *end || v < 1 || v > 4096) {
                        log_error("--max-connections: \"%s\" is not 1..4096", arg_max_connections);
                        return SERVICE_EXIT_USAGE;
                }
                info.max_connections = (unsigned) v;
        }
        if (arg_handshake_timeout) {
                char *end = NULL;
                long v = strtol(arg_handshake_timeout, &end, 10);
                if (end == arg_handshake_timeout || *end || v < 100 || v > 600000) {
                        log_error("--handshake-timeout: \"%s\" is not 100..600000 ms", arg_handshake_timeout);
                        return SERVICE_EXIT_USAGE;
                }
                info.handshake_timeout_ms = v;
        }
        ct_error err = CT_ERROR_INIT;
        char endpoint[300];
        /* The infrastructure's view (untrusted, as everything from it): this node's address for the
         * API endpoint and the control planes' addresses. */
        static metadata md;
        bool have_md = false;
        if (!arg_api_endpoint || arg_metadata || !arg_control_plane_ips) {
                if (metadata_read(arg_metadata, &md, &err) >= 0)
                        have_md = true;
                else if (!arg_api_endpoint || arg_metadata) {
                        log_error("metadata: %s (or give --api-endpoint)", ERR(&err));
                        return SERVICE_EXIT_FAILURE;
                } else
                        err = (ct_error) CT_ERROR_INIT; /* none: no control-plane joiners */
        }
        if (arg_api_endpoint)
                snprintf(endpoint, sizeof endpoint, "%s", arg_api_endpoint);
        else {
                bool v6 = strchr(md.vpc_ip, ':') != NULL;
                snprintf(endpoint, sizeof endpoint, "%s%s%s:%d", v6 ? "[" : "", md.vpc_ip, v6 ? "]" : "",
                         PKI_API_SERVER_PORT);
        }
        if (arg_control_plane_ips) {
                /* --control-plane-ips replaces the metadata's list. */
                char **v = NULL;
                size_t n = 0;
                _cleanup_free_ char *copy = strdup(arg_control_plane_ips);
                char *save = NULL;
                for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
                        char **nv = realloc(v, (n + 1) * sizeof *v);
                        if (!nv || !metadata_valid_ip(t) || n >= METADATA_MAX_CONTROL_PLANES) {
                                free(nv ? nv : v);
                                log_error("--control-plane-ips: \"%s\" is not a list of at most %u IP addresses", t,
                                          METADATA_MAX_CONTROL_PLANES);
                                return SERVICE_EXIT_USAGE;
                        }
                        v = nv;
                        if (!(v[n++] = strdup(t))) {
                                log_error("out of memory");
                                return SERVICE_EXIT_FAILURE;
                        }
                }
                for (size_t i = 0; i < md.n_control_plane_ips; i++)
                        free(md.control_plane_ips[i]);
                free(md.control_plane_ips);
                md.control_plane_ips = v;
                md.n_control_plane_ips = n;
                have_md = true;
        }
        char *end = NULL; /* --etcd-peer-port, --learner-timeout */
        long peer_port = strtol(arg_etcd_peer_port, &end, 10);
        if (end == arg_etcd_peer_port || *end || peer_port < 1 || peer_port > 65535) {
                log_error("--etcd-peer-port: \"%s\" is not 1..65535", arg_etcd_peer_port);
                return SERVICE_EXIT_USAGE;
        }
        long learner_timeout = JOIN_LEARNER_TIMEOUT_MS;
        if (arg_learner_timeout) {
                learner_timeout = strtol(arg_learner_timeout, &end, 10);
                if (end == arg_learner_timeout || *end || learner_timeout < 100 || learner_timeout > 86400000) {
                        log_error("--learner-timeout: \"%s\" is not 100..86400000 ms", arg_learner_timeout);
                        return SERVICE_EXIT_USAGE;
                }
        }

        join_keys keys = { 0 };
        if (join_keys_open(arg_kms_uri, arg_keyservice, &keys, &err) < 0) {
                log_error("keys: %s", ERR(&err));
                return SERVICE_EXIT_FAILURE;
        }
        joinconfig_store store;
        _cleanup_(etcd_client_freep) etcd_client *etcd = NULL;
        refresher.interval_ms = 5000;
        if (arg_config_refresh) {
                end = NULL;
                long v = strtol(arg_config_refresh, &end, 10);
                if (end == arg_config_refresh || *end || v < 10 || v > 3600000) {
                        log_error("--config-refresh: \"%s\" is not 10..3600000 ms", arg_config_refresh);
                        join_keys_done(&keys);
                        return SERVICE_EXIT_USAGE;
                }
                refresher.interval_ms = v;
        }
        if (arg_etcd_endpoint) {
                etcd_client_config ec;
                _cleanup_free_ char *storage = NULL;
                if (etcd_client_config_from_pki(arg_etcd_endpoint, arg_pki_dir, &ec, &storage) < 0 ||
                    etcd_client_new(&ec, &etcd, &err) < 0) {
                        log_error("shared store: %s", ERR(&err));
                        join_keys_done(&keys);
                        return SERVICE_EXIT_FAILURE;
                }
                store = joinconfig_store_etcd(etcd);
                log_info("configuration from the shared store (etcd %s, keys " JOINCONFIG_ETCD_PREFIX "*)",
                         arg_etcd_endpoint);
        } else
                store = joinconfig_store_dir(arg_config_dir);
        join_options opt = { .pki_dir = arg_pki_dir, .api_endpoint = endpoint, .kubeadm = arg_kubeadm,
                             .kubeconfig = arg_kubeconfig, .store = &store, .keys = &keys,
                             .infra = have_md ? &md : NULL, .etcd = etcd, .etcd_peer_port = (int) peer_port,
                             .learner_timeout_ms = learner_timeout };
        static joinservice js;
        if (joinservice_init(&js, &opt, &err) < 0) {
                log_error("%s", ERR(&err));
                join_keys_done(&keys);
                return SERVICE_EXIT_FAILURE;
        }
        log_info("control-plane files only for %zu infrastructure control-plane address(es)%s",
                 have_md ? md.n_control_plane_ips : 0,
                 arg_control_plane_ips ? " (--control-plane-ips)" : have_md ? " (metadata control_plane_ips)" : "");
        log_info("attestation config version %llu in force (%zu measurements, PCR 15 = 0 enforced)",
                 (unsigned long long) js.config.version, js.config.m.n);
        atls_validator validator = joinservice_validator(&js);
        info.validators = &validator;
        info.n_validators = 1;

        rpc_server *updates = NULL;
        r = service_register(s, JOIN_ISSUE_JOIN_TICKET_METHOD, joinservice_join_handler, &js);
        if (r >= 0)
                r = service_register(s, JOIN_ISSUE_REJOIN_TICKET_METHOD, joinservice_rejoin_handler, &js);
        if (r >= 0)
                r = service_start(s); /* before service_append_status: starting sets the status */
        if (r >= 0 && !streq(arg_update_listen, "none")) {
                rpc_server_options so = { .max_receive_message_length = JOIN_MAX_REQUEST,
                                          .on_error = update_server_error };
                int port = 0;
                r = rpc_server_new(&so, &updates);
                if (r >= 0)
                        r = rpc_server_register(updates, JOIN_UPDATE_CONFIG_METHOD, joinservice_update_handler, &js);
                if (r >= 0)
                        r = rpc_server_listen(updates, arg_update_listen, NULL, &port);
                if (r >= 0)
                        r = rpc_server_start(updates);
                if (r < 0)
                        log_error_errno(r, "attestation config updates on %s", arg_update_listen);
                else {
                        const char *colon = strrchr(arg_update_listen, ':');
                        int hl = colon ? (int) (colon - arg_update_listen) : 0;
                        service_append_status(s, "updates=%.*s:%d", hl, arg_update_listen, port);
                        log_info("attestation config updates (plain gRPC) on %.*s:%d", hl, arg_update_listen, port);
                }
        }
        pthread_t refresh;
        bool refreshing = false;
        if (r >= 0 && etcd) {
                pthread_condattr_t ca; /* the deadline is on CLOCK_MONOTONIC: a clock step cannot stall it */
                pthread_condattr_init(&ca);
                pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
                pthread_cond_init(&refresher.cond, &ca);
                pthread_condattr_destroy(&ca);
                if (pthread_create(&refresh, NULL, refresh_thread, &js) != 0) {
                        log_error("cannot start the configuration refresh thread");
                        r = -EAGAIN;
                } else
                        refreshing = true;
        }
        if (r >= 0)
                r = service_run(s);
        if (refreshing) {
                pthread_mutex_lock(&refresher.lock);
                refresher.stop = true;
                pthread_cond_signal(&refresher.cond);
                pthread_mutex_unlock(&refresher.lock);
                pthread_join(refresh, NULL);
                pthread_cond_destroy(&refresher.cond);
        }
        if (updates) {
                rpc_server_request_shutdown(updates);
                rpc_server_wait(updates);
                rpc_server_free(updates);
        }
        service_free(TAKE_PTR(s));
        joinservice_done(&js);
        join_keys_done(&keys);
        metadata_done(&md);
        return service_exit_code(r);
}
