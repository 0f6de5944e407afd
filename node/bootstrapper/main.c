/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-bootstrapper: serves /init.API/Init over aTLS on :9000 on a fresh node, attesting
 * with the node's vTPM (qemu-vtpm). After a successful Init it starts the key service, the
 * verification service and the join service and stops serving; a node whose PCR 15 is already set
 * never serves Init. A worker (metadata role "worker") joins instead: it asks the join service
 * endpoints of its metadata for a ticket (join.c) while Init stays served (and refused: Init is
 * for a control plane only). A control plane whose metadata names join endpoints serves Init and
 * joins at the same time: the first to claim the node wins (Constellation's node lock): a join that
 * claimed it refuses every Init with "node is already being activated", an Init running or done
 * stops the join. A control plane that joined starts its shared store member (join.c) and units. */
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "atls/qemu-vtpm.h"
#include "basic/log.h"
#include "bootstrapper.h"
#include "join.h"
#include "luks/luks.h"
#include "nodestate/nodestate.h"
#include "pki/pki.h"
#include "service/service.h"

#define DEFAULT_COMPONENT_ROOTS "/run/state:/opt:/etc/kubernetes:/etc/cni:/var/lib/kubelet"
#define DEFAULT_START_UNITS \
        "constellation-keyservice.service constellation-verification-service.service constellation-joinservice.service"
/* Time for the last messages of the Init stream to reach the client before the server stops. */
#define STOP_DELAY_S 2

static const char *arg_metadata, *arg_state_disk, *arg_keyfile = LUKS_STATE_KEYFILE, *arg_node_state = NODESTATE_PATH,
                                                   *arg_pki_dir = PKI_DEFAULT_DIR, *arg_kubernetes_dir = "/etc/kubernetes",
                                                   *arg_component_roots = DEFAULT_COMPONENT_ROOTS,
                                                   *arg_start_units = DEFAULT_START_UNITS,
                                                   *arg_config_dir = "/var/config", *arg_kubeadm = JOIN_DEFAULT_KUBEADM,
                                                   *arg_join_retry_ms = "1000", *arg_etcd_endpoint,
                                                   *arg_etcd_unit = "constellation-etcd.service",
                                                   *arg_etcd_env = "/var/config/etcd.env", *arg_etcd_data_dir = "/var/lib/etcd",
                                                   *arg_etcd_peer_port = "2380";

static const service_option options[] = {
        { "metadata", "FILE", "node metadata JSON (default: $" METADATA_PATH_ENV " or QEMU fw_cfg)", &arg_metadata, NULL,
          false },
        { "state-disk", "PATH", "LUKS2 state disk (default: the device behind /dev/mapper/state)", &arg_state_disk,
          NULL, false },
        { "state-keyfile", "FILE", "first-boot passphrase (default " LUKS_STATE_KEYFILE ")", &arg_keyfile, NULL, false },
        { "node-state", "FILE", "node_state.json to write (default " NODESTATE_PATH ")", &arg_node_state, NULL, false },
        { "pki-dir", "DIR", "cluster PKI directory (default " PKI_DEFAULT_DIR ")", &arg_pki_dir, NULL, false },
        { "kubernetes-dir", "DIR", "admin.conf and kubeadm config (default /etc/kubernetes)", &arg_kubernetes_dir, NULL,
          false },
        { "config-dir", "DIR", "key service configuration: mastersecret + salt, or kms-uri (default /var/config)", &arg_config_dir, NULL,
          false },
        { "component-roots", "DIR:DIR", "where components may be installed (default " DEFAULT_COMPONENT_ROOTS ")",
          &arg_component_roots, NULL, false },
        { "start-units", "UNITS", "systemd units to start after Init (\"\": none)", &arg_start_units, NULL, false },
        { "kubeadm", "PATH", "a worker runs `PATH join` after its ticket if installed (default " JOIN_DEFAULT_KUBEADM ")",
          &arg_kubeadm, NULL, false },
        { "etcd-endpoint", "HOST:PORT", "the control planes' shared store: after Init start etcd and store the join "
          "and key services' configuration there (the unit: 127.0.0.1:2379; default: none, files in --config-dir)",
          &arg_etcd_endpoint, NULL, false },
        { "etcd-unit", "UNIT", "etcd's unit, started after its configuration is written (default "
          "constellation-etcd.service; \"\": etcd is started by someone else)", &arg_etcd_unit, NULL, false },
        { "etcd-env", "FILE", "etcd's configuration (the unit's EnvironmentFile; default /var/config/etcd.env)",
          &arg_etcd_env, NULL, false },
        { "etcd-data-dir", "DIR", "etcd's data on the state disk (default /var/lib/etcd)", &arg_etcd_data_dir, NULL,
          false },
        { "etcd-peer-port", "PORT", "etcd's peer port (default 2380)", &arg_etcd_peer_port, NULL, false },
        { "join-retry", "MS", "a worker's first retry delay after no endpoint gave a ticket (doubling to 30 s; default 1000)",
          &arg_join_retry_ms, NULL, false },
};

static const service_info info = {
        .name = "constellation-bootstrapper",
        .summary = "Serves Constellation's /init.API/Init over aTLS on a fresh node.",
        .default_listen = "0.0.0.0:9000",
        .options = options,
        .n_options = ELEMENTSOF(options),
        .atls = true,
        .max_message = 64 * 1024 * 1024, /* components carry data: URLs */
};

static struct {
        service *s;
        pthread_mutex_t lock;
        bool finished, success;
        bool joined, join_locked, join_failed; /* the join succeeded / PCR 15 was extended / gave up */
        bool init_running, join_claimed;       /* the node lock between Init and a control plane's join */
        pthread_cond_t init_idle;
        atomic_bool join_stop;
} run = { .lock = PTHREAD_MUTEX_INITIALIZER, .init_idle = PTHREAD_COND_INITIALIZER };

/* The join's side of the node lock: waits for an Init in progress; false if Init took the node. */
static bool claim_for_join(void *userdata) {
        (void) userdata;
        pthread_mutex_lock(&run.lock);
        while (run.init_running)
                pthread_cond_wait(&run.init_idle, &run.lock);
        bool ok = !run.finished;
        if (ok)
                run.join_claimed = true;
        pthread_mutex_unlock(&run.lock);
        return ok;
}

/* Init's side: refused once a join claimed the node; else marked running for the whole call. */
static void init_guarded(rpc_call *call, const uint8_t *request, size_t len, void *userdata) {
        pthread_mutex_lock(&run.lock);
        bool claimed = run.join_claimed;
        if (!claimed)
                run.init_running = true;
        pthread_mutex_unlock(&run.lock);
        if (claimed) {
                initlog(LOG_LEVEL_WARN, "Init refused: this node is joining the cluster");
                rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, INIT_ALREADY_ACTIVATED);
                return;
        }
        bootstrapper_handle_init(call, request, len, userdata);
        pthread_mutex_lock(&run.lock);
        run.init_running = false;
        pthread_cond_broadcast(&run.init_idle);
        pthread_mutex_unlock(&run.lock);
}

static void *join_thread(void *arg) {
        join_options *o = arg;
        ct_error err = CT_ERROR_INIT;
        char msg[CT_ERROR_DETAIL_MAX + 128];
        bool locked = false;
        o->ret_locked = &locked;
        int r = bootstrapper_join(o, &err);
        if (r < 0 && r != -ECANCELED)
                initlog(LOG_LEVEL_ERROR, "join failed: %s", ct_error_format(&err, msg, sizeof msg));
        pthread_mutex_lock(&run.lock);
        run.joined = r >= 0;
        run.join_locked = locked;
        run.join_failed = r < 0 && r != -ECANCELED;
        pthread_mutex_unlock(&run.lock);
        if (r != -ECANCELED)
                service_request_stop(run.s);
        return NULL;
}

static void *stop_later(void *arg) {
        (void) arg;
        sleep(STOP_DELAY_S);
        service_request_stop(run.s);
        return NULL;
}

static void on_done(void *userdata, bool success) {
        (void) userdata;
        pthread_mutex_lock(&run.lock);
        run.finished = true;
        run.success = success;
        pthread_mutex_unlock(&run.lock);
        pthread_t t;
        if (pthread_create(&t, NULL, stop_later, NULL) == 0)
                pthread_detach(t);
        else
                service_request_stop(run.s);
}

static int start_units(const char *units) {
        if (isempty(units))
                return 0;
        _cleanup_free_ char *copy = strdup(units);
        const char *argv[16] = { "systemctl", "start", "--no-block" };
        size_t n = 3;
        char *save = NULL;
        for (char *u = strtok_r(copy, " ", &save); u && n < ELEMENTSOF(argv) - 1; u = strtok_r(NULL, " ", &save))
                argv[n++] = u;
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sigset_t none; /* lib/service's blocked signals and SIGPIPE's SIG_IGN survive execve */
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                execvp("systemctl", (char *const *) argv);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                initlog(LOG_LEVEL_ERROR, "systemctl start %s failed (status %d)", units, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
                return -EIO;
        }
        initlog(LOG_LEVEL_INFO, "started %s", units);
        return 0;
}

/* The join service's configuration from this node's PCRs and node_state.json's salt. After Init
 * (overwrite) and on every start of a bootstrapped control plane whose attestationConfig is missing
 * (a failure after Init was answered; never over a signed update the join service stored). */
static void write_join_config(const bootstrapper_config *cfg, bool overwrite) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/" JOIN_CONFIG_ATTESTATION, cfg->config_dir) < 0)
                return;
        if (!overwrite && access(path, F_OK) == 0)
                return;
        nodestate ns;
        ct_error err = CT_ERROR_INIT;
        char msg[CT_ERROR_DETAIL_MAX + 128];
        if (nodestate_read(cfg->nodestate_path, &ns, &err) < 0 ||
            bootstrapper_write_join_config(cfg, ns.measurement_salt, sizeof ns.measurement_salt, &err) < 0)
                initlog(LOG_LEVEL_ERROR, "the join service's configuration was not written (it will not start): %s",
                        ct_error_format(&err, msg, sizeof msg));
}

#define ETCD_WAIT_MS 120000 /* etcd's first start on a TCG guest */

/* The shared store (etcd.c) when configured, else the join service's files. After Init (overwrite
 * the files) and on every start of a bootstrapped control plane (etcd: idempotent, never over a
 * stored update). */
static void shared_state(const bootstrapper_config *cfg, bool after_init) {
        if (isempty(arg_etcd_endpoint)) {
                write_join_config(cfg, after_init);
                return;
        }
        bootstrapper_etcd_options o = { .endpoint = arg_etcd_endpoint, .unit = arg_etcd_unit, .env_file = arg_etcd_env,
                                        .data_dir = arg_etcd_data_dir, .peer_port = atoi(arg_etcd_peer_port),
                                        .wait_ms = ETCD_WAIT_MS };
        ct_error err = CT_ERROR_INIT;
        char msg[CT_ERROR_DETAIL_MAX + 128];
        if (bootstrapper_shared_state(cfg, &o, &err) < 0)
                initlog(LOG_LEVEL_ERROR, "the shared store was not set up (the join and key services will not start): %s",
                        ct_error_format(&err, msg, sizeof msg));
}

static int split_roots(const char *list, char ***ret) {
        char *copy = strdup(list);
        size_t n = 1;
        if (!copy)
                return -ENOMEM;
        for (const char *p = list; *p; p++)
                n += *p == ':';
        char **v = calloc(n + 1, sizeof(char *));
        if (!v) {
                free(copy);
                return -ENOMEM;
        }
        size_t i = 0;
        char *save = NULL;
        for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
                if (t[0] != '/') {
                        free(copy);
                        free(v);
                        return -EINVAL;
                }
                v[i++] = t;
        }
        if (i == 0) {
                free(copy);
                free(v);
                return -EINVAL;
        }
        *ret = v; /* v[0] points at the start of copy: roots_free() frees both */
        return 0;
}

static void roots_free(char ***v) {
        if (*v) {
                free((*v)[0]);
                free(*v);
        }
}

int main(int argc, char **argv) {
        _cleanup_(service_freep) service *s = NULL;
        int r = service_new(&info, argc, argv, &s);
        if (r < 0)
                return service_exit_code(r);
        run.s = s;

        bootstrapper_config cfg = {
                .tcti = service_tpm(s),
                .state_disk = arg_state_disk,
                .state_keyfile = arg_keyfile,
                .nodestate_path = arg_node_state,
                .pki_dir = arg_pki_dir,
                .kubernetes_dir = arg_kubernetes_dir,
                .config_dir = arg_config_dir,
                .start_units = arg_start_units,
        };
        _cleanup_(roots_free) char **roots = NULL;
        if (split_roots(arg_component_roots, &roots) < 0) {
                log_error("--component-roots: expected absolute directories separated by ':'");
                return SERVICE_EXIT_USAGE;
        }
        cfg.component_roots = (const char *const *) roots;

        ct_error err = CT_ERROR_INIT;
        char msg[CT_ERROR_DETAIL_MAX + 128];
        if (metadata_read(arg_metadata, &cfg.md, &err) < 0) {
                initlog(LOG_LEVEL_ERROR, "cannot read this node's metadata: %s", ct_error_format(&err, msg, sizeof msg));
                return SERVICE_EXIT_FAILURE;
        }
        initlog(LOG_LEVEL_INFO, "node %s (%s, %s)", cfg.md.name, metadata_role_to_string(cfg.md.role), cfg.md.vpc_ip);

        bool zero = false;
        if (bootstrapper_pcr15_is_zero(cfg.tcti, &zero, &err) < 0) {
                initlog(LOG_LEVEL_ERROR, "cannot read PCR 15: %s", ct_error_format(&err, msg, sizeof msg));
                metadata_done(&cfg.md);
                return SERVICE_EXIT_FAILURE;
        }
        if (!zero) {
                nodestate ns;
                ct_error nerr = CT_ERROR_INIT;
                int exit_code = SERVICE_EXIT_OK;
                _cleanup_free_ char *marker = bootstrapper_marker_path(arg_node_state);
                bool complete = marker && access(marker, F_OK) == 0;
                if (complete && nodestate_read(arg_node_state, &ns, &nerr) >= 0) {
                        initlog(LOG_LEVEL_INFO,
                                "this node is already bootstrapped (PCR 15 set, %s and %s present): not serving Init",
                                arg_node_state, marker);
                        if (ns.role == NODESTATE_ROLE_CONTROL_PLANE) {
                                shared_state(&cfg, false);
                                (void) start_units(arg_start_units);
                        }
                        /* The unit is Type=notify with FailureAction=reboot: an exit without READY=1
                         * is a 'protocol' failure, and a rejoined or recovered node rebooted in a loop. */
                        (void) service_notify("READY=1\nSTATUS=already bootstrapped: not serving Init");
                } else {
                        initlog(LOG_LEVEL_ERROR,
                                "PCR 15 is set but %s: a bootstrap was interrupted and Init cannot be resumed; the "
                                "node must reboot to converge (exit %d)",
                                complete ? ct_error_format(&nerr, msg, sizeof msg) : "the completion marker is missing",
                                INIT_EXIT_REBOOT);
                        exit_code = INIT_EXIT_REBOOT;
                }
                metadata_done(&cfg.md);
                return exit_code;
        }

        _cleanup_(bootstrapper_freep) bootstrapper *b = NULL;
        if (bootstrapper_new(&cfg, on_done, NULL, &b) < 0 || service_register(s, INIT_METHOD, init_guarded, b) < 0) {
                log_error("out of memory");
                metadata_done(&cfg.md);
                return SERVICE_EXIT_FAILURE;
        }
        atls_issuer issuer = atls_qemu_vtpm_issuer(service_tpm(s));
        char *end = NULL;
        long long retry_ms = strtoll(arg_join_retry_ms, &end, 10);
        if (!end || *end || retry_ms < 1 || retry_ms > 30000) {
                log_error("--join-retry: expected milliseconds 1..30000");
                metadata_done(&cfg.md);
                return SERVICE_EXIT_USAGE;
        }
        bootstrapper_etcd_options eo = { .endpoint = arg_etcd_endpoint, .unit = arg_etcd_unit, .env_file = arg_etcd_env,
                                         .data_dir = arg_etcd_data_dir, .peer_port = atoi(arg_etcd_peer_port),
                                         .wait_ms = ETCD_WAIT_MS };
        bool cp = cfg.md.role == METADATA_ROLE_CONTROL_PLANE;
        join_options jo = { .cfg = &cfg, .issuer = &issuer, .retry = { .base_ms = retry_ms }, .stop = &run.join_stop,
                            .kubeadm = isempty(arg_kubeadm) ? NULL : arg_kubeadm,
                            .claim = cp ? claim_for_join : NULL,
                            .etcd = cp && !isempty(arg_etcd_endpoint) ? &eo : NULL };
        pthread_t joiner;
        bool joining = false;
        /* A worker joins; a control plane joins too when its metadata names join services (the other
         * control planes'), racing the Init the first control plane gets. */
        if (cfg.md.role == METADATA_ROLE_WORKER || (cp && bootstrapper_join_endpoints(&cfg.md) > 0)) {
                if (pthread_create(&joiner, NULL, join_thread, &jo) != 0) {
                        log_error("cannot start the join thread");
                        metadata_done(&cfg.md);
                        return SERVICE_EXIT_FAILURE;
                }
                joining = true;
        }
        r = service_run(s);
        if (joining) {
                atomic_store(&run.join_stop, true);
                pthread_join(joiner, NULL);
        }
        pthread_mutex_lock(&run.lock);
        bool finished = run.finished, success = run.success, joined = run.joined, join_locked = run.join_locked,
             join_failed = run.join_failed;
        pthread_mutex_unlock(&run.lock);
        if (finished && success) {
                initlog(LOG_LEVEL_INFO, "Init done: no longer serving Init");
                shared_state(&cfg, true); /* needs the metadata (node name, address) */
                (void) start_units(arg_start_units);
                metadata_done(&cfg.md);
                return SERVICE_EXIT_OK;
        }
        if (joined) {
                initlog(LOG_LEVEL_INFO, "joined: no longer serving Init");
                if (cp)
                        (void) start_units(arg_start_units);
                metadata_done(&cfg.md);
                return SERVICE_EXIT_OK;
        }
        metadata_done(&cfg.md);
        if (join_locked) {
                initlog(LOG_LEVEL_ERROR, "the join failed after PCR 15 was set: the node must reboot (exit %d)",
                        INIT_EXIT_REBOOT);
                return INIT_EXIT_REBOOT;
        }
        if (join_failed)
                return SERVICE_EXIT_FAILURE;
        if (finished)
                return INIT_EXIT_REBOOT;
        return service_exit_code(r);
}
