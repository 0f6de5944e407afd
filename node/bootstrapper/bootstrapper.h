/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-bootstrapper: a fresh node's /init.API/Init server (reference constellation.md
 * §2.2). The steps and their order are in init.c; docs/node.md has the crash table. */
#pragma once

#include "basic/error.h"
#include "metadata/metadata.h"
#include "rpc/rpc.h"

#define INIT_METHOD "/init.API/Init"
#define INIT_ALREADY_ACTIVATED "node is already being activated" /* Constellation's exact text */
#define INIT_LOG_CHUNK 1024                                       /* Constellation's log chunk size */
#define INIT_LOG_MAX (256u * 1024)                                /* our log buffer keeps this much */
#define INIT_MEASUREMENT_SALT_LEN 32
#define INIT_DEFAULT_CLUSTER_NAME "constellation"
#define INIT_EXIT_REBOOT 3 /* PCR 15 set but the bootstrap did not finish: reboot to converge */
/* Written beside node_state.json as the very last step of a successful bootstrap: node_state.json
 * is written early (the disk-mapper needs the salt after any reboot), so it cannot tell a complete
 * bootstrap from an interrupted one. */
#define INIT_COMPLETE_MARKER "bootstrap-complete"
/* The key service's configuration in config_dir (constellation-keyservice --config-dir): either
 * the raw master secret and salt (kms://cluster-kms) or the kms:// URI (kms://kmip). */
#define INIT_KEYSERVICE_MASTER_SECRET "mastersecret"
#define INIT_KEYSERVICE_SALT "salt"
#define INIT_KEYSERVICE_KMS_URI "kms-uri"

typedef struct bootstrapper_config {
        const char *tcti;             /* TPM for PCR 15 (same as the aTLS issuer's) */
        const char *state_disk;       /* LUKS2 device or file; NULL: the active mapping "state" */
        const char *state_keyfile;    /* first-boot passphrase (LUKS_STATE_KEYFILE) */
        const char *nodestate_path;   /* NODESTATE_PATH */
        const char *pki_dir;          /* /etc/kubernetes/pki */
        const char *kubernetes_dir;   /* /etc/kubernetes: admin.conf, kubeadm-init.yaml */
        const char *config_dir;       /* /var/config: the key service's mastersecret + salt, or kms-uri */
        const char *const *component_roots;
        const char *start_units;      /* after success: "a.service b.service"; "" none */
        metadata md;                  /* this node, from the infrastructure (untrusted) */
} bootstrapper_config;

typedef struct bootstrapper bootstrapper;

/* Holds cfg by reference. on_done is called (from the handler thread) after an Init that locked
 * the node was answered, successfully or not: the program stops serving (and after a failure
 * exits INIT_EXIT_REBOOT). */
int bootstrapper_new(const bootstrapper_config *cfg, void (*on_done)(void *userdata, bool success), void *userdata,
                     bootstrapper **ret);
void bootstrapper_free(bootstrapper *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(bootstrapper *, bootstrapper_free);
/* The rpc_handler_fn for INIT_METHOD (userdata: the bootstrapper). */
void bootstrapper_handle_init(rpc_call *call, const uint8_t *request, size_t request_len, void *userdata);

/* Step A of Init without any I/O (unpack, role, init secret, salt, names, component shapes, KMS URI,
 * derivations): what the fuzz target drives. */
int bootstrapper_check_request(const bootstrapper_config *cfg, const uint8_t *request, size_t len, ct_error *err);

/* The process log: every line the bootstrapper logs is kept (bounded, the oldest dropped) so it
 * can be streamed to the Init client after a failure, as Constellation streams its journal. */
void initlog(int level, const char *fmt, ...) _printf_(2, 3);
/* A copy of the log buffer (malloc'd, NUL-terminated). */
char *initlog_snapshot(size_t *ret_len);

/* <directory of nodestate_path>/bootstrap-complete (malloc'd). */
char *bootstrapper_marker_path(const char *nodestate_path);

/* PCR 15 (SHA-256 bank) is all zeros: *ret_zero. */
int bootstrapper_pcr15_is_zero(const char *tcti, bool *ret_zero, ct_error *err);

/* kubeadm (kubeadm.c): the InitConfiguration/ClusterConfiguration for this node and cluster, and
 * running `kubeadm init` with it. Only reached when the request installs kubeadm; no kubeadm
 * exists on the build hosts, so this path is untested here (docs/node.md says so). */
typedef struct kubeadm_params {
        const char *kubeadm;          /* path of the installed kubeadm */
        const char *node_name;
        const char *node_ip;
        const char *endpoint;         /* control-plane endpoint host */
        const char *cluster_name;
        const char *kubernetes_version;
        const char *service_cidr;     /* may be "" */
        const char *const *sans;      /* apiserver certSANs */
        size_t n_sans;
        const char *pki_dir;
        const char *kubernetes_dir;
        const char *patches_dir;      /* may be NULL */
        const char *path_env;         /* PATH for kubeadm (its kubelet, crictl) */
} kubeadm_params;
int kubeadm_write_config(const kubeadm_params *p, char **ret_path, ct_error *err);
int kubeadm_run_init(const kubeadm_params *p, const char *config_path, ct_error *err);
/* A SAN, Kubernetes version or service CIDR that may go into the YAML (strict alphabets). */
bool kubeadm_valid_san(const char *s);
bool kubeadm_valid_version(const char *s);
bool kubeadm_valid_cidr(const char *s);
