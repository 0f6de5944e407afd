/* SPDX-License-Identifier: Apache-2.0 */
/* constellation_cluster: Constellation's complete schema (reference constellation.md §1.3).
 *
 * Differences from Constellation's provider, on purpose:
 *  - master_secret, master_secret_salt, measurement_salt, init_secret and gcp.service_account_key
 *    are sensitive AND write-only: Terraform (>= 1.11) hands them to the provider from the
 *    configuration at every apply and never stores them in plan or state files. Constellation kept
 *    them in state in clear; UpgradeResourceState drops them from such state.
 *  - Create initialises the first control plane through lib/nodeclient (aTLS with the qemu-vtpm
 *    validator from attestation.measurements, then /init.API/Init; an unreachable node is retried
 *    while nothing was sent), then pushes the measurements to the node's join service as the first
 *    signed attestation config update; other variants are refused.
 *    Constellation then configures the cluster through Kubernetes (join-config, Helm): not here.
 *  - kmip (ours; hold your own key): instead of master_secret + salt, the master secret wrapped under a
 *    KEK in the user's KMIP server; Create unwraps (or draws and wraps) it there before the node is
 *    dialled and sends Init a kms://kmip URI; the KEK id and credentials are write-only; key
 *    management cannot change after Init (refused at plan time).
 *  - Changes that need Kubernetes (image, kubernetes_version, microservice version) are refused
 *    at plan time. A changed attestation configuration is signed with the key derived from the
 *    master secret and pushed to the join service (/joinconfig.API/UpdateAttestationConfig on
 *    :30091), Constellation's join-config ConfigMap without Kubernetes; other updates stop at apply
 *    with a diagnostic. Read keeps the state (Constellation's Read is a no-op too) and Delete only
 *    drops it. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <openssl/rand.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "crypto/hkdf.h"
#include "joinconfig/joinconfig.h"
#include "kmip/wrap.h"
#include "basic/secret.h"
#include "image-common.h"
#include "measurements/measurements.h"
#include "nodeclient/nodeclient.h"
#include "provider.h"
#include "validators.h"
#include "verifyclient/verifyclient.h"

#define CIDR_RE "^([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}$"

/* The image object as resources and data sources take it (output of constellation_image). */
const tf_attr tf_image_input_attrs[] = {
        { .name = "version", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Image version." },
        { .name = "reference", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "CSP-specific image reference." },
        { .name = "short_path", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Short path of the image." },
        { .name = "marketplace_image", .kind = CTY_BOOL, .mode = TF_OPTIONAL, .description = "Marketplace image." },
        TF_ATTR_END,
};

static const tf_attr measurement_attrs[] = {
        { .name = "expected", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Expected PCR value (hex).",
          .validate = tf_validate_hex },
        { .name = "warn_only", .kind = CTY_BOOL, .mode = TF_REQUIRED,
          .description = "Only warn, do not fail, when the value differs." },
        TF_ATTR_END,
};

static const char *const enforcement_policies[] = { "Equal", "MAAFallback", "WarnOnly", NULL };

static const tf_attr azure_signer_attrs[] = {
        { .name = "accepted_key_digests", .kind = CTY_LIST, .elem_kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Accepted digests of the firmware signing key (hex)." },
        { .name = "enforcement_policy", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "`Equal`, `MAAFallback` or `WarnOnly`.", .validate = tf_validate_one_of,
          .validate_arg = enforcement_policies },
        { .name = "maa_url", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "Microsoft Azure Attestation URL." },
        TF_ATTR_END,
};

static const tf_attr tdx_attrs[] = {
        { .name = "qe_svn", .kind = CTY_NUMBER, .mode = TF_REQUIRED, .description = "Minimum QE security version." },
        { .name = "pce_svn", .kind = CTY_NUMBER, .mode = TF_REQUIRED, .description = "Minimum PCE security version." },
        { .name = "tee_tcb_svn", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "TEE TCB SVN (hex).",
          .validate = tf_validate_hex },
        { .name = "qe_vendor_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "QE vendor ID (hex).",
          .validate = tf_validate_hex },
        { .name = "mr_seam", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "MRSEAM (hex).",
          .validate = tf_validate_hex },
        { .name = "xfam", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "XFAM (hex).",
          .validate = tf_validate_hex },
        { .name = "intel_root_key", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Intel root key (PEM)." },
        TF_ATTR_END,
};

const tf_attr tf_attestation_attrs_input[] = {
        { .name = "variant", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Attestation variant.",
          .validate = tf_validate_one_of, .validate_arg = tf_attestation_variants },
        { .name = "bootloader_version", .kind = CTY_NUMBER, .mode = TF_REQUIRED,
          .description = "Minimum SEV-SNP bootloader TCB version." },
        { .name = "tee_version", .kind = CTY_NUMBER, .mode = TF_REQUIRED, .description = "Minimum TEE TCB version." },
        { .name = "snp_version", .kind = CTY_NUMBER, .mode = TF_REQUIRED, .description = "Minimum SNP TCB version." },
        { .name = "microcode_version", .kind = CTY_NUMBER, .mode = TF_REQUIRED,
          .description = "Minimum microcode TCB version." },
        { .name = "amd_root_key", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "AMD root key (ARK) as a JSON-encoded PEM string." },
        { .name = "azure_firmware_signer_config", .nesting = TF_NEST_SINGLE, .nested = azure_signer_attrs,
          .mode = TF_OPTIONAL, .description = "Azure firmware signer configuration." },
        { .name = "tdx", .nesting = TF_NEST_SINGLE, .nested = tdx_attrs, .mode = TF_OPTIONAL,
          .description = "TDX configuration." },
        { .name = "measurements", .nesting = TF_NEST_MAP, .nested = measurement_attrs, .mode = TF_REQUIRED,
          .description = "Expected measurements, by PCR index.", .validate = tf_validate_pcr_keys },
        TF_ATTR_END,
};

static const tf_attr extra_microservices_attrs[] = {
        { .name = "csi_driver", .kind = CTY_BOOL, .mode = TF_REQUIRED, .description = "Deploy the CSI driver." },
        TF_ATTR_END,
};

static const tf_attr network_attrs[] = {
        { .name = "ip_cidr_node", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Node CIDR.",
          .validate = tf_validate_regex, .validate_arg = CIDR_RE },
        { .name = "ip_cidr_pod", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "Pod CIDR (required on GCP).",
          .validate = tf_validate_regex, .validate_arg = CIDR_RE },
        { .name = "ip_cidr_service", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Service CIDR.",
          .validate = tf_validate_regex, .validate_arg = CIDR_RE },
        TF_ATTR_END,
};

static const tf_attr gcp_attrs[] = {
        { .name = "service_account_key", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Base64 of the service account key JSON. Write-only: never stored in state (state written by "
                         "earlier providers loses it at the next refresh or apply)." },
        { .name = "project_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "GCP project ID." },
        TF_ATTR_END,
};

static const tf_attr azure_attrs[] = {
        { .name = "tenant_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Tenant ID." },
        { .name = "location", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Location." },
        { .name = "uami_client_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "UAMI client ID." },
        { .name = "uami_resource_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "UAMI resource ID." },
        { .name = "resource_group", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Resource group." },
        { .name = "subscription_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Subscription ID." },
        { .name = "network_security_group_name", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Network security group name." },
        { .name = "load_balancer_name", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Load balancer name." },
        TF_ATTR_END,
};

static const tf_attr openstack_attrs[] = {
        { .name = "cloud", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Cloud name in clouds.yaml." },
        { .name = "clouds_yaml_path", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "Path to clouds.yaml." },
        { .name = "floating_ip_pool_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Floating IP pool." },
        { .name = "deploy_yawol_load_balancer", .kind = CTY_BOOL, .mode = TF_OPTIONAL,
          .description = "Deploy the yawol load balancer." },
        { .name = "yawol_image_id", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "yawol image ID." },
        { .name = "yawol_flavor_id", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "yawol flavor ID." },
        { .name = "network_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Network ID." },
        { .name = "subnet_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Subnet ID." },
        TF_ATTR_END,
};

/* Ours, not Constellation's: hold your own key (docs/node.md "Hold your own key: KMIP"). The cluster's
 * master secret exists only wrapped under a KEK in the user's KMIP server; Init carries a kms://kmip
 * URI that the provider assembles from these parts, with the PEMs inline. The KEK's identifier and the
 * credentials are write-only (never in plan or state); the endpoint, the server name, the wrapped
 * blob and its salt are public (useless without the KEK) and kept in state, so a change of them is
 * seen, and refused, at plan time. */
static const tf_attr kmip_attrs[] = {
        { .name = "endpoint", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "`HOST:PORT` of the KMIP server, as the nodes and the provider reach it (port 5696 if "
                         "omitted)." },
        { .name = "server_name", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "DNS name or IP the server certificate must carry (default: the endpoint's host)." },
        { .name = "kek_id", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "KMIP unique identifier of the key-encryption key (AES-256, created in the server, e.g. by "
                         "`constellation-attest kmip create-kek`). Write-only." },
        { .name = "client_certificate", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true,
          .write_only = true, .description = "Client certificate for the KMIP server (PEM). Write-only." },
        { .name = "client_key", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Private key of the client certificate (PEM; an EC key keeps the node's URI under 4096 "
                         "bytes). Write-only." },
        { .name = "server_ca", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "The CA certificate the KMIP server's certificate must chain to (PEM), the only trust "
                         "anchor. Write-only." },
        { .name = "wrapped_master_secret", .kind = CTY_STRING, .mode = TF_OPTIONAL_COMPUTED,
          .description = "The master secret wrapped under the KEK (padded base64url: the `wrapped` parameter of "
                         "`constellation-attest kmip wrap-master-secret`'s URI). Public: useless without the KEK. "
                         "Without it (and `salt`), Create draws a fresh master secret and salt and wraps them at "
                         "the KMIP server; nobody ever holds the master secret in clear." },
        { .name = "salt", .kind = CTY_STRING, .mode = TF_OPTIONAL_COMPUTED,
          .description = "HKDF salt of the master secret (padded base64url, 32 bytes or more: the `salt` parameter "
                         "of the same URI); given with `wrapped_master_secret`, or drawn by Create. Public." },
        TF_ATTR_END,
};

/* Ours, not Constellation's: the nodes whose verification Create waits for (the shape of
 * constellation_qemu_infrastructure.nodes: [for n in ….nodes : { name = n.name, role = n.role,
 * verification_endpoint = "${n.host_address}:30081" }]), and what it found. */
static const tf_attr cluster_node_attrs[] = {
        { .name = "name", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Node name, as `verification` and diagnostics report it." },
        { .name = "role", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "`control-plane` or `worker` (informational)." },
        { .name = "verification_endpoint", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "HOST:PORT of the node's verification service (port 30081)." },
        { .name = "instance", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Anything that changes when the node is started again, e.g. "
                         "`tostring(n.qemu_pid)` of constellation_qemu_infrastructure's nodes: a node restarted by "
                         "the infrastructure then changes `nodes`, and apply waits until it has rejoined and "
                         "verifies. Without it, a restart leaves `nodes` as it was and is not checked." },
        TF_ATTR_END,
};

static const tf_attr verification_attrs[] = {
        { .name = "name", .kind = CTY_STRING, .mode = TF_COMPUTED, .description = "Node name (from `nodes`)." },
        { .name = "verification_endpoint", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Where it was asked." },
        { .name = "verified", .kind = CTY_BOOL, .mode = TF_COMPUTED,
          .description = "The node attested with a fresh nonce against attestation.measurements and PCR 15 = "
                         "the cluster ID." },
        { .name = "reason", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Why the last attempt failed (`unreachable: …`, `measurement-mismatch: PCR 15 …`); null "
                         "when verified." },
        TF_ATTR_END,
};

static const tf_attr cluster_attrs[] = {
        { .name = "name", .kind = CTY_STRING, .mode = TF_REQUIRED, .requires_replace = true,
          .description = "Name of the cluster." },
        { .name = "csp", .kind = CTY_STRING, .mode = TF_REQUIRED, .requires_replace = true,
          .description = "Cloud service provider.", .validate = tf_validate_one_of, .validate_arg = tf_csps_with_qemu },
        { .name = "uid", .kind = CTY_STRING, .mode = TF_REQUIRED, .requires_replace = true,
          .description = "UID of the cluster's infrastructure." },
        { .name = "image", .nesting = TF_NEST_SINGLE, .nested = tf_image_input_attrs, .mode = TF_REQUIRED,
          .description = "Node image (from `constellation_image`)." },
        { .name = "kubernetes_version", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Kubernetes version, e.g. `v1.31.13`.", .validate = tf_validate_regex,
          .validate_arg = "^v[0-9]+\\.[0-9]+\\.[0-9]+$" },
        { .name = "constellation_microservice_version", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Version of Constellation's microservices.", .validate = tf_validate_regex,
          .validate_arg = "^v[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$" },
        { .name = "out_of_cluster_endpoint", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Endpoint of the cluster from outside (the init RPC goes to port 9000 there)." },
        { .name = "in_cluster_endpoint", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Endpoint inside the cluster (default: out_of_cluster_endpoint)." },
        { .name = "extra_microservices", .nesting = TF_NEST_SINGLE, .nested = extra_microservices_attrs,
          .mode = TF_OPTIONAL, .description = "Extra microservices." },
        { .name = "api_server_cert_sans", .kind = CTY_LIST, .elem_kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Extra subject alternative names for the API server certificate." },
        { .name = "network_config", .nesting = TF_NEST_SINGLE, .nested = network_attrs, .mode = TF_REQUIRED,
          .description = "Network configuration." },
        { .name = "master_secret", .kind = CTY_STRING, .mode = TF_OPTIONAL, .sensitive = true, .write_only = true,
          .description = "Master secret (64 hex characters), from which all cluster keys are derived. Write-only: "
                         "never stored in state. Required unless `kmip` is set (exactly one of the two).",
          .validate = tf_validate_hex64 },
        { .name = "master_secret_salt", .kind = CTY_STRING, .mode = TF_OPTIONAL, .sensitive = true,
          .write_only = true,
          .description = "Salt for key derivation (64 hex characters). Write-only. Required with `master_secret`; "
                         "not with `kmip`.",
          .validate = tf_validate_hex64 },
        { .name = "measurement_salt", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Salt for the cluster ID (64 hex characters). Write-only.", .validate = tf_validate_hex64 },
        { .name = "init_secret", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Secret that authorizes the init request to the first node. Write-only." },
        { .name = "kmip", .nesting = TF_NEST_SINGLE, .nested = kmip_attrs, .mode = TF_OPTIONAL,
          .description = "Not in Constellation's schema. Hold your own key: the cluster's master secret is wrapped "
                         "under a key-encryption key in your KMIP server and Init sends a `kms://kmip` URI instead "
                         "of the master secret. Instead of `master_secret` and `master_secret_salt`. Cannot change "
                         "on an initialised cluster." },
        { .name = "license_id", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "Constellation license ID." },
        { .name = "attestation", .nesting = TF_NEST_SINGLE, .nested = tf_attestation_attrs_input, .mode = TF_REQUIRED,
          .description = "Attestation configuration (from `constellation_attestation`)." },
        { .name = "gcp", .nesting = TF_NEST_SINGLE, .nested = gcp_attrs, .mode = TF_OPTIONAL,
          .description = "GCP settings (required if csp is gcp)." },
        { .name = "azure", .nesting = TF_NEST_SINGLE, .nested = azure_attrs, .mode = TF_OPTIONAL,
          .description = "Azure settings (required if csp is azure)." },
        { .name = "openstack", .nesting = TF_NEST_SINGLE, .nested = openstack_attrs, .mode = TF_OPTIONAL,
          .description = "OpenStack settings (required if csp is openstack or stackit)." },
        { .name = "nodes", .nesting = TF_NEST_LIST, .nested = cluster_node_attrs, .mode = TF_OPTIONAL,
          .description = "Not in Constellation's schema. The cluster's nodes (control planes and workers): after "
                         "Init, Create waits until every one verifies (see `verification`, `join_timeout`). A "
                         "changed list (also one unknown at plan: a VM restarted) is verified again at apply." },
        { .name = "join_timeout", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Not in Constellation's schema. How long after Init Create waits for every node of `nodes` "
                         "to verify, e.g. `90s`, `20m`, `1h` (default `20m`).",
          .validate = tf_validate_regex, .validate_arg = "^[0-9]{1,6}(s|m|h)$" },
        { .name = "verification", .nesting = TF_NEST_LIST, .nested = verification_attrs, .mode = TF_COMPUTED,
          .description = "Not in Constellation's schema. Per node of `nodes`, the result of the verification "
                         "when it was last applied (Create, or Update after `nodes` or `attestation` changed or a "
                         "node was unverified: the plan then shows it as known after apply); Read does not refresh "
                         "it. Null without `nodes`." },
        { .name = "owner_id", .kind = CTY_STRING, .mode = TF_COMPUTED, .description = "Owner ID of the cluster." },
        { .name = "cluster_id", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Cluster ID (hex), measured into PCR 15 of every node." },
        { .name = "kubeconfig", .kind = CTY_STRING, .mode = TF_COMPUTED, .sensitive = true,
          .description = "Admin kubeconfig." },
        { .name = "host", .kind = CTY_STRING, .mode = TF_COMPUTED, .description = "Kubernetes API server URL." },
        { .name = "client_certificate", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Client certificate (PEM)." },
        { .name = "client_key", .kind = CTY_STRING, .mode = TF_COMPUTED, .sensitive = true,
          .description = "Client key (PEM)." },
        { .name = "cluster_ca_certificate", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Cluster CA certificate (PEM)." },
        TF_ATTR_END,
};

static void validate_key_management(const cty_value *config, tf_diags *d);

static void validate_cluster(const cty_value *config, tf_diags *d) {
        validate_key_management(config, d);
        const char *csp = tf_get_string(config, "csp");
        if (!csp)
                return;
        static const struct {
                const char *block;
                const char *csps[3];
        } blocks[] = {
                { "gcp", { "gcp", NULL } },
                { "azure", { "azure", NULL } },
                { "openstack", { "openstack", "stackit", NULL } },
        };
        for (size_t i = 0; i < ELEMENTSOF(blocks); i++) {
                const cty_value *b = cty_object_get(config, blocks[i].block);
                bool wanted = false;
                for (size_t k = 0; blocks[i].csps[k]; k++)
                        wanted = wanted || streq(csp, blocks[i].csps[k]);
                tf_path p = tf_path_child(NULL, blocks[i].block);
                if (wanted && b && b->null)
                        tf_error(d, &p, "Missing CSP configuration",
                                 "When csp is \"%s\", the %s attribute must be set.", csp, blocks[i].block);
                else if (!wanted && b && !b->null && !b->unknown)
                        tf_warning(d, &p, "Unused CSP configuration",
                                   "The %s attribute is set but csp is \"%s\"; it is ignored.", blocks[i].block, csp);
        }
        if (streq(csp, "gcp")) {
                const cty_value *net = cty_object_get(config, "network_config");
                const cty_value *pod = cty_object_get(net, "ip_cidr_pod");
                if (pod && pod->null) {
                        tf_path p0 = tf_path_child(NULL, "network_config");
                        tf_path p = tf_path_child(&p0, "ip_cidr_pod");
                        tf_error(d, &p, "Missing pod CIDR", "On GCP, network_config.ip_cidr_pod must be set.");
                }
        }
}

/* ---- Create: Init of the first control plane (lib/nodeclient) ----------------------------------- */

#define INIT_PORT "9000"
#define INIT_HANDSHAKE_TIMEOUT_MS (60 * 1000)
#define INIT_CALL_TIMEOUT_MS (30 * 60 * 1000) /* kubeadm init takes minutes */
/* How long an unreachable node is retried: a TCG boot with a first state disk format takes minutes. */
#define INIT_UNREACHABLE_DEADLINE_S (20 * 60)
#define INIT_RETRY_INTERVAL_S 2
#define JOINCONFIG_UPDATE_PORT "30091"
#define JOINCONFIG_UPDATE_TIMEOUT_MS (30 * 1000)
#define JOINCONFIG_UPDATE_METHOD "/joinconfig.API/UpdateAttestationConfig"
/* After Init, how long the node's join service (started once Init is answered) is waited for. */
#define INIT_JOIN_SERVICE_DEADLINE_S (5 * 60)

static int sign_attestation_update(const measurements *m, const secret_t *master, const secret_t *salt, char **ret,
                                   tf_diags *d);
static int push_attestation_update(const char *host, const char *doc, int retry_s, bool warn, tf_diags *d);

/* attestation.measurements -> measurements; errors name the PCR's attribute path. */
static int measurements_from_attestation(const cty_value *att, measurements *ret, tf_diags *d) {
        const cty_value *map = cty_object_get(att, "measurements");
        tf_path p0 = tf_path_child(NULL, "attestation"), p1 = tf_path_child(&p0, "measurements");
        *ret = (measurements){ 0 };
        if (!map || map->null || map->unknown || map->c.n == 0) {
                tf_error(d, &p1, "No measurements", "attestation.measurements must hold at least one PCR.");
                return -EINVAL;
        }
        for (size_t i = 0; i < map->c.n; i++) {
                char step[160];
                snprintf(step, sizeof step, "[%s]", map->c.keys[i]);
                tf_path pk = tf_path_child(&p1, step);
                const char *key = map->c.keys[i], *hex = tf_get_string(map->c.items[i], "expected");
                char *end;
                unsigned long idx = strtoul(key, &end, 10);
                uint8_t value[MEASUREMENTS_MAX_DIGEST];
                bool warn = false;
                (void) cty_value_get_bool(cty_object_get(map->c.items[i], "warn_only"), &warn);
                if (!*key || *end || idx > MEASUREMENTS_MAX_INDEX || !hex || strlen(hex) != 64 ||
                    hex_decode_exact(hex, value, 32) < 0) {
                        tf_error(d, &pk, "Invalid measurement",
                                 "PCR %s: a qemu-vtpm measurement is a SHA-256 PCR value, 64 hexadecimal characters.",
                                 key);
                        return -EINVAL;
                }
                if (measurements_set(ret, (uint32_t) idx, value, 32, warn) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* A config string attribute as a secret: hex-decoded, or its bytes. The cty value is wiped when freed. */
static int config_secret(const cty_value *config, const char *name, bool hex, secret_t **ret, tf_diags *d) {
        const char *s;
        size_t len;
        tf_path p = tf_path_child(NULL, name);
        if (cty_value_get_string(cty_object_get(config, name), &s, &len) < 0 || len == 0) {
                tf_error(d, &p, "Missing secret",
                         "%s must be set: it is write-only, so Terraform passes it from the configuration at every apply.",
                         name);
                return -EINVAL;
        }
        int r = hex ? secret_from_hex(s, len, ret) : ((*ret = secret_new_copy(s, len)) ? 0 : -ENOMEM);
        if (r == -EINVAL)
                tf_error(d, &p, "Invalid secret", "%s must be hexadecimal.", name);
        return r;
}

/* ---- Hold your own key: kmip (docs/node.md "Hold your own key: KMIP") ------------------------- */

/* The node refuses longer kms:// URIs (lib/kms KMS_MAX_URI); the PEMs travel inline. */
#define CLUSTER_KMIP_URI_MAX NODECLIENT_MAX_KMS_URI
#define CLUSTER_KMIP_SECRET_LEN 32 /* a master secret and salt drawn by Create, as Constellation's CLI draws them */
#define CLUSTER_KMIP_KEK_ID_MAX 256

static bool value_set(const cty_value *v) {
        return v && !v->null;
}

static bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "base64:<base64url of the PEM>", the inline form of a kms://kmip file reference. Wipe it. */
static char *kmip_inline_ref(const char *pem) {
        _cleanup_erase_free_ char *b = base64_encode(pem, strlen(pem), BASE64_URL);
        char *ref = NULL;
        if (!b || asprintf(&ref, "base64:%s", b) < 0)
                return NULL;
        return ref;
}

typedef struct kmip_refs {
        char *cert, *key, *ca; /* inline references; the key's is a credential */
} kmip_refs;

static void kmip_refs_done(kmip_refs *r) {
        erase_and_free(r->cert);
        erase_and_free(r->key);
        erase_and_free(r->ca);
        *r = (kmip_refs){ 0 };
}

static int kmip_refs_from(const cty_value *k, kmip_refs *ret) {
        const char *cert = tf_get_string(k, "client_certificate"), *key = tf_get_string(k, "client_key"),
                   *ca = tf_get_string(k, "server_ca");
        if (!cert || !key || !ca)
                return -EINVAL;
        kmip_refs r = { kmip_inline_ref(cert), kmip_inline_ref(key), kmip_inline_ref(ca) };
        if (!r.cert || !r.key || !r.ca) {
                kmip_refs_done(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

/* A client for the configured server (certificates loaded, no connection yet). */
static int kmip_client_from(const cty_value *k, const kmip_refs *refs, kmip_client **ret, ct_error *err) {
        kmip_uri_params p = { .endpoint = tf_get_string(k, "endpoint"), .server_name = tf_get_string(k, "server_name"),
                              .client_cert = refs->cert, .client_key = refs->key, .server_ca = refs->ca };
        kmip_config cfg;
        int r = kmip_config_from_params(&p, &cfg, err);
        if (r < 0)
                return r;
        r = kmip_client_new(&cfg, ret, err);
        kmip_config_done(&cfg);
        return r;
}

/* The attribute under kmip a lib/kmip refusal is about. */
static const char *kmip_reason_attr(const ct_error *err) {
        static const struct {
                const char *reason, *attr;
        } map[] = {
                { "server-down", "endpoint" },
                { "server-timeout", "endpoint" },
                { "connection-lost", "endpoint" },
                { "server-ca-mismatch", "server_ca" },
                { "server-name-mismatch", "server_name" },
                { "tls-handshake-failed", "server_ca" },
                { "tls-client-cert-refused", "client_certificate" },
                { "authentication-failed", "client_certificate" },
                { "permission-denied", "client_certificate" },
                { "item-not-found", "kek_id" },
                { "kek-revoked", "kek_id" },
                { "kek-destroyed", "kek_id" },
                { "kek-not-active", "kek_id" },
                { "unwrap-failed", "wrapped_master_secret" },
                { "bad-wrapped", "wrapped_master_secret" },
        };
        const char *reason = err->reason ?: "";
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (streq(reason, map[i].reason))
                        return map[i].attr;
        if (streq(reason, "bad-config")) {
                if (has_prefix(err->detail, "client-cert"))
                        return "client_certificate";
                if (has_prefix(err->detail, "client-key"))
                        return "client_key";
                if (has_prefix(err->detail, "server-ca"))
                        return "server_ca";
                if (has_prefix(err->detail, "endpoint"))
                        return "endpoint";
                if (strstr(err->detail, "server name"))
                        return "server_name";
        }
        return NULL;
}

static bool is_token_char(char c) {
        return isalnum((unsigned char) c) || c == '-' || c == '_';
}

/* Whether `kek` occurs in s as a whole token. */
static bool contains_token(const char *s, const char *kek) {
        size_t n = strlen(kek);
        if (n == 0)
                return false;
        for (const char *q = strstr(s, kek); q; q = strstr(q + 1, kek))
                if ((q == s || !is_token_char(q[-1])) && !is_token_char(q[n]))
                        return true;
        return false;
}

/* lib/kmip's detail without the KEK's identifier, which is write-only and must not reach plan
 * output or logs: the "KEK <id>: " prefix goes; the server's Result Message (it may quote the
 * object) goes; what still names it is withheld. Transport failures only name host:port and TLS. */
static void kmip_safe_detail(const ct_error *err, const char *kek, char *buf, size_t size) {
        const char *s = err->detail;
        size_t n = kek ? strlen(kek) : 0;
        if (n && has_prefix(s, "KEK ") && !strncmp(s + 4, kek, n) && !strncmp(s + 4 + n, ": ", 2))
                s += 4 + n + 2;
        snprintf(buf, size, "%s", s);
        char *rr = strstr(buf, "(Result Reason ");
        char *close = rr ? strchr(rr, ')') : NULL;
        if (close)
                close[1] = 0;
        static const char *const transport[] = { "server-down", "server-timeout", "connection-lost", "server-ca-mismatch",
                                                 "server-name-mismatch", "tls-handshake-failed", "tls-client-cert-refused" };
        for (size_t i = 0; i < ELEMENTSOF(transport); i++)
                if (err->reason && streq(err->reason, transport[i]))
                        return;
        if (kek && contains_token(buf, kek))
                snprintf(buf, size, "(the detail is withheld: it quotes kmip.kek_id, which is write-only)");
}

static const char *kmip_advice(const char *attr) {
        if (!attr)
                return "";
        if (streq(attr, "endpoint"))
                return " Check kmip.endpoint and that the KMIP server runs and is reachable from where Terraform runs.";
        if (streq(attr, "server_ca"))
                return " kmip.server_ca must be the CA that issued the KMIP server's certificate.";
        if (streq(attr, "server_name"))
                return " Set kmip.server_name to a DNS name or IP address in the server certificate.";
        if (streq(attr, "client_certificate") || streq(attr, "client_key"))
                return " The KMIP server must accept kmip.client_certificate (issued by the CA it trusts, with its "
                       "key in kmip.client_key) and allow it to use the KEK.";
        if (streq(attr, "kek_id"))
                return " kmip.kek_id must name an active AES-256 key of the KMIP server (constellation-attest kmip "
                       "check --kek …).";
        if (streq(attr, "wrapped_master_secret"))
                return " The server could not authenticate the blob under this KEK: kmip.kek_id, "
                       "kmip.wrapped_master_secret and kmip.salt must be the ones the master secret was wrapped with.";
        return "";
}

/* One error diagnostic for a lib/kmip refusal, at the attribute it is about; `after` says what
 * became of the cluster. */
static void kmip_diag(tf_diags *d, const ct_error *err, const char *kek, const char *after) {
        const char *attr = kmip_reason_attr(err);
        tf_path pk = tf_path_child(NULL, "kmip"), pa = tf_path_child(&pk, attr ?: "");
        char detail[CT_ERROR_DETAIL_MAX + 128];
        kmip_safe_detail(err, kek, detail, sizeof detail);
        tf_error(d, attr ? &pa : &pk, "KMIP server refused",
                 "The KMIP server at the configured kmip.endpoint refused: %s: %s.%s%s", err->reason ?: "error", detail,
                 kmip_advice(attr), after);
}

/* Padded base64url (Go base64.URLEncoding, as the URI carries them); unpadded is accepted too. */
static int b64url_decode(const char *s, uint8_t **ret, size_t *ret_len) {
        if (base64_decode(s, strlen(s), BASE64_URL, ret, ret_len) == 0)
                return 0;
        return base64_decode(s, strlen(s), BASE64_URL_RAW, ret, ret_len);
}

/* kmip.wrapped_master_secret and kmip.salt: shape checks, with diagnostics at their paths. */
static int kmip_decode_public(const cty_value *k, uint8_t **ret_blob, size_t *ret_blob_len, secret_t **ret_salt,
                              tf_diags *d) {
        const char *w = tf_get_string(k, "wrapped_master_secret"), *s = tf_get_string(k, "salt");
        tf_path pk = tf_path_child(NULL, "kmip"), pw = tf_path_child(&pk, "wrapped_master_secret"),
                ps = tf_path_child(&pk, "salt");
        _cleanup_free_ uint8_t *blob = NULL, *salt = NULL;
        size_t blen = 0, slen = 0;
        if (!w || b64url_decode(w, &blob, &blen) < 0 || blen < KMIP_WRAP_OVERHEAD + KMIP_WRAP_SECRET_MIN ||
            blen > KMIP_WRAP_OVERHEAD + KMIP_WRAP_SECRET_MAX || blob[0] != KMIP_WRAP_VERSION) {
                tf_error(d, &pw, "Invalid wrapped master secret",
                         "kmip.wrapped_master_secret must be the padded base64url blob that constellation-attest kmip "
                         "wrap-master-secret puts in its URI's wrapped parameter: version byte %d, %d to %d bytes "
                         "(got %zu bytes).",
                         KMIP_WRAP_VERSION, KMIP_WRAP_OVERHEAD + KMIP_WRAP_SECRET_MIN,
                         KMIP_WRAP_OVERHEAD + KMIP_WRAP_SECRET_MAX, blen);
                return -EINVAL;
        }
        if (!s || b64url_decode(s, &salt, &slen) < 0 || slen < 32) {
                tf_error(d, &ps, "Invalid salt",
                         "kmip.salt must be padded base64url of at least 32 bytes (the salt parameter of the same "
                         "URI; got %zu bytes).",
                         slen);
                if (salt)
                        erase_memory(salt, slen);
                return -EINVAL;
        }
        secret_t *sec = secret_new_copy(salt, slen);
        erase_memory(salt, slen);
        if (!sec)
                return -ENOMEM;
        *ret_salt = sec;
        *ret_blob = TAKE_PTR(blob);
        *ret_blob_len = blen;
        return 0;
}

/* The kms://kmip URI for the nodes (PEMs inline), in a secret. */
static int kmip_build_uri(const cty_value *k, const kmip_refs *refs, const uint8_t *blob, size_t blob_len,
                          const secret_t *salt, secret_t **ret, ct_error *err) {
        kmip_uri_parts parts = { .endpoint = tf_get_string(k, "endpoint"), .kek = tf_get_string(k, "kek_id"),
                                 .client_cert = refs->cert, .client_key = refs->key, .server_ca = refs->ca,
                                 .server_name = tf_get_string(k, "server_name"), .wrapped = blob,
                                 .wrapped_len = blob_len, .salt = salt };
        _cleanup_erase_free_ char *uri = NULL;
        int r = kmip_uri_build(&parts, &uri, err);
        if (r < 0)
                return r;
        secret_t *s = secret_new_copy(uri, strlen(uri));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Config-time checks of kmip (known values only; Terraform validates again once they are known).
 * No message quotes a write-only value. */
static void validate_kmip(const cty_value *k, tf_diags *d) {
        tf_path pk = tf_path_child(NULL, "kmip");
        const cty_value *ep = cty_object_get(k, "endpoint"), *sn = cty_object_get(k, "server_name"),
                        *kek = cty_object_get(k, "kek_id"), *w = cty_object_get(k, "wrapped_master_secret"),
                        *s = cty_object_get(k, "salt");
        const char *str;
        if (cty_value_get_string(ep, &str, NULL) == 0) {
                _cleanup_free_ char *host = NULL;
                uint16_t port;
                tf_path p = tf_path_child(&pk, "endpoint");
                if (kmip_parse_endpoint(str, &host, &port) < 0)
                        tf_error(d, &p, "Invalid KMIP endpoint",
                                 "kmip.endpoint must be HOST:PORT, [IPv6]:PORT or HOST (port 5696), got \"%s\".", str);
        }
        if (cty_value_get_string(sn, &str, NULL) == 0) {
                tf_path p = tf_path_child(&pk, "server_name");
                bool ok = *str && strlen(str) <= 253;
                for (const char *q = str; ok && *q; q++)
                        ok = isalnum((unsigned char) *q) || strchr(".-:", *q);
                if (!ok)
                        tf_error(d, &p, "Invalid KMIP server name",
                                 "kmip.server_name must be a DNS name or an IP address (letters, digits, '.', '-', "
                                 "':'; at most 253 characters).");
        }
        size_t len;
        if (cty_value_get_string(kek, &str, &len) == 0) {
                tf_path p = tf_path_child(&pk, "kek_id");
                bool ok = len > 0 && len <= CLUSTER_KMIP_KEK_ID_MAX;
                for (size_t i = 0; ok && i < len; i++)
                        ok = (unsigned char) str[i] >= 0x20 && str[i] != 0x7f;
                if (!ok)
                        tf_error(d, &p, "Invalid KEK identifier",
                                 "kmip.kek_id must be a KMIP unique identifier: 1 to %d printable characters (got %zu "
                                 "characters%s).",
                                 CLUSTER_KMIP_KEK_ID_MAX, len, len && len <= CLUSTER_KMIP_KEK_ID_MAX ? ", some not printable" : "");
        }
        /* wrapped_master_secret and salt: both (from wrap-master-secret) or neither (Create draws them). */
        bool wk = w && !w->unknown, sk = s && !s->unknown;
        if (wk && sk && value_set(w) != value_set(s)) {
                tf_path p = tf_path_child(&pk, value_set(w) ? "salt" : "wrapped_master_secret");
                tf_error(d, &p, "Incomplete wrapped master secret",
                         "kmip.wrapped_master_secret and kmip.salt go together: give both (the wrapped and salt "
                         "parameters of constellation-attest kmip wrap-master-secret's URI), or neither and Create draws "
                         "a fresh master secret and wraps it at the KMIP server.");
        } else if (wk && sk && value_set(w)) {
                _cleanup_free_ uint8_t *blob = NULL;
                _cleanup_secret_ secret_t *salt = NULL;
                size_t blen;
                (void) kmip_decode_public(k, &blob, &blen, &salt, d);
        }
        /* The PEMs: parsed (and the key matched to the certificate) by lib/kmip's client set-up, which
         * connects to nothing. */
        const cty_value *pems[] = { cty_object_get(k, "client_certificate"), cty_object_get(k, "client_key"),
                                    cty_object_get(k, "server_ca") };
        for (size_t i = 0; i < ELEMENTSOF(pems); i++)
                if (!pems[i] || pems[i]->null || pems[i]->unknown || (ep && (ep->unknown || ep->null)))
                        return;
        _cleanup_(kmip_refs_done) kmip_refs refs = { 0 };
        _cleanup_(kmip_client_freep) kmip_client *c = NULL;
        ct_error err = CT_ERROR_INIT;
        if (kmip_refs_from(k, &refs) < 0)
                return;
        if (kmip_client_from(k, &refs, &c, &err) < 0) {
                if (!ct_error_is_set(&err))
                        return; /* out of memory: nothing to say about the configuration */
                const char *attr = kmip_reason_attr(&err);
                tf_path pa = tf_path_child(&pk, attr ?: "");
                char detail[CT_ERROR_DETAIL_MAX + 128];
                kmip_safe_detail(&err, NULL, detail, sizeof detail);
                if (attr && streq(attr, "endpoint"))
                        return; /* said above */
                tf_error(d, attr ? &pa : &pk, "Invalid KMIP credentials", "%s (kmip.client_certificate, "
                         "kmip.client_key and kmip.server_ca are PEM: a certificate, its private key, the server's CA "
                         "certificate).", detail);
                return;
        }
        /* The node's URI must fit the node's limit; the blob is at most 64 bytes of master secret. */
        if (!kek || kek->null || kek->unknown || (sn && sn->unknown))
                return;
        uint8_t blob[KMIP_WRAP_OVERHEAD + KMIP_WRAP_SECRET_MAX] = { KMIP_WRAP_VERSION };
        _cleanup_secret_ secret_t *salt = secret_new(CLUSTER_KMIP_SECRET_LEN), *uri = NULL;
        size_t blen = KMIP_WRAP_OVERHEAD + CLUSTER_KMIP_SECRET_LEN;
        if (value_set(w) && !w->unknown) {
                uint8_t *b = NULL;
                secret_t *sl = NULL;
                tf_diags quiet = { 0 };
                if (kmip_decode_public(k, &b, &blen, &sl, &quiet) == 0) {
                        memcpy(blob, b, MIN(blen, sizeof blob));
                        secret_free(salt);
                        salt = sl;
                        free(b);
                }
                tf_diags_done(&quiet);
        }
        if (!salt || kmip_build_uri(k, &refs, blob, blen, salt, &uri, &err) < 0)
                return;
        if (uri->len > CLUSTER_KMIP_URI_MAX) {
                tf_path p = tf_path_child(&pk, "client_key");
                tf_error(d, &p, "KMIP settings too long for a node",
                         "The kms://kmip URI Init sends would be %zu bytes; a node accepts at most %d. The client "
                         "certificate, its key and the server CA travel in it inline: use EC (P-256) keys and "
                         "certificates without long chains.",
                         uri->len, CLUSTER_KMIP_URI_MAX);
        }
}

/* Which key management the configuration chooses: exactly one of master_secret + master_secret_salt
 * and kmip (unknown values pass; Terraform validates again once they are known). */
static void validate_key_management(const cty_value *config, tf_diags *d) {
        const cty_value *ms = cty_object_get(config, "master_secret"), *mss = cty_object_get(config, "master_secret_salt"),
                        *k = cty_object_get(config, "kmip");
        tf_path pk = tf_path_child(NULL, "kmip"), pm = tf_path_child(NULL, "master_secret"),
                ps = tf_path_child(NULL, "master_secret_salt");
        bool known = !(ms && ms->unknown) && !(mss && mss->unknown) && !(k && k->unknown);
        if (value_set(k) && (value_set(ms) || value_set(mss))) {
                tf_error(d, &pk, "Conflicting key management",
                         "kmip and %s are mutually exclusive: with kmip the master secret exists only wrapped under "
                         "the KEK in your KMIP server (its salt is kmip.salt). Remove master_secret and "
                         "master_secret_salt, or remove kmip.",
                         value_set(ms) ? "master_secret" : "master_secret_salt");
                return;
        }
        if (!value_set(k) && known) {
                if (!value_set(ms) && !value_set(mss))
                        tf_error(d, &pm, "Missing key management",
                                 "Set master_secret and master_secret_salt (every cluster key is derived from them), "
                                 "or kmip (hold your own key: the master secret wrapped under a key-encryption key "
                                 "in your KMIP server).");
                else if (!value_set(ms))
                        tf_error(d, &pm, "Missing master secret", "master_secret_salt is set, so master_secret must be too.");
                else if (!value_set(mss))
                        tf_error(d, &ps, "Missing master secret salt", "master_secret is set, so master_secret_salt must be too.");
        }
        if (value_set(k) && !k->unknown)
                validate_kmip(k, d);
}

/* The master secret and salt of a kmip cluster, unwrapped at the user's KMIP server with the
 * configured credentials (cfg: the configuration's kmip, holding the write-only parts) from the
 * planned blob and salt (pub). With generate and no blob yet (Create), a fresh master secret and
 * salt are drawn and wrapped first, the round trip checked, and *ret_blob_b64 / *ret_salt_b64 say
 * what to keep in state. *ret_uri (optional): the node's kms://kmip URI. Refusals become one
 * diagnostic at the attribute concerned, ending with `after`. */
static int kmip_master_secret(const cty_value *cfg, const cty_value *pub, bool generate, secret_t **ret_master,
                              secret_t **ret_salt, char **ret_blob_b64, char **ret_salt_b64, secret_t **ret_uri,
                              const char *after, tf_diags *d) {
        const char *kek = tf_get_string(cfg, "kek_id");
        tf_path pk = tf_path_child(NULL, "kmip"), pe = tf_path_child(&pk, "kek_id");
        if (!kek || !*kek) {
                tf_error(d, &pe, "Missing KEK identifier",
                         "kmip.kek_id must be set: it is write-only, so Terraform passes it from the configuration at "
                         "every apply.%s",
                         after);
                return -EINVAL;
        }
        _cleanup_(kmip_refs_done) kmip_refs refs = { 0 };
        _cleanup_(kmip_client_freep) kmip_client *c = NULL;
        ct_error err = CT_ERROR_INIT;
        int r = kmip_refs_from(cfg, &refs);
        if (r == -EINVAL) {
                tf_error(d, &pk, "Missing KMIP credentials",
                         "kmip.client_certificate, kmip.client_key and kmip.server_ca must be set: they are write-only, "
                         "so Terraform passes them from the configuration at every apply.%s",
                         after);
                return r;
        }
        if (r < 0)
                return r;
        if ((r = kmip_client_from(cfg, &refs, &c, &err)) < 0) {
                if (ct_error_is_set(&err))
                        kmip_diag(d, &err, kek, after);
                return r;
        }
        _cleanup_free_ uint8_t *blob = NULL;
        size_t blob_len = 0;
        _cleanup_secret_ secret_t *salt = NULL, *master = NULL;
        const cty_value *w = cty_object_get(pub, "wrapped_master_secret");
        bool fresh = generate && (!w || w->null || w->unknown);
        if (fresh) {
                salt = secret_new(CLUSTER_KMIP_SECRET_LEN);
                _cleanup_secret_ secret_t *drawn = secret_new(CLUSTER_KMIP_SECRET_LEN);
                if (!salt || !drawn)
                        return -ENOMEM;
                if (RAND_bytes(drawn->data, (int) drawn->len) != 1 || RAND_bytes(salt->data, (int) salt->len) != 1) {
                        tf_error(d, &pk, "No randomness", "OpenSSL's RAND_bytes failed to draw the master secret.%s",
                                 after);
                        return -EIO;
                }
                log_debug("constellation_cluster: wrapping a fresh master secret at the KMIP server");
                if ((r = kmip_wrap_master_secret(c, kek, drawn, salt, &blob, &blob_len, &err)) < 0) {
                        if (ct_error_is_set(&err))
                                kmip_diag(d, &err, kek, after);
                        return r;
                }
        } else if ((r = kmip_decode_public(pub, &blob, &blob_len, &salt, d)) < 0)
                return r;
        /* The unwrap is the check that KEK, credentials, blob and salt belong together (and, for a
         * fresh wrap, the round trip) before anything reaches a node. */
        log_debug("constellation_cluster: unwrapping the master secret at the KMIP server");
        if ((r = kmip_unwrap_master_secret(c, kek, blob, blob_len, salt, &master, &err)) < 0) {
                if (ct_error_is_set(&err))
                        kmip_diag(d, &err, kek, after);
                return r;
        }
        _cleanup_secret_ secret_t *uri = NULL;
        if (ret_uri && (r = kmip_build_uri(cfg, &refs, blob, blob_len, salt, &uri, &err)) < 0) {
                if (ct_error_is_set(&err))
                        kmip_diag(d, &err, kek, after);
                return r;
        }
        if (uri && uri->len > CLUSTER_KMIP_URI_MAX) {
                tf_path p = tf_path_child(&pk, "client_key");
                tf_error(d, &p, "KMIP settings too long for a node",
                         "The kms://kmip URI would be %zu bytes; a node accepts at most %d. Use EC (P-256) keys.%s",
                         uri->len, CLUSTER_KMIP_URI_MAX, after);
                return -E2BIG;
        }
        if (ret_blob_b64) {
                _cleanup_free_ char *bb = base64_encode(blob, blob_len, BASE64_URL);
                _cleanup_free_ char *sb = base64_encode(salt->data, salt->len, BASE64_URL);
                if (!bb || !sb)
                        return -ENOMEM;
                *ret_blob_b64 = TAKE_PTR(bb);
                *ret_salt_b64 = TAKE_PTR(sb);
        }
        if (ret_uri)
                *ret_uri = TAKE_PTR(uri);
        *ret_master = TAKE_PTR(master);
        *ret_salt = TAKE_PTR(salt);
        return 0;
}

/* The PCR index in an aTLS refusal ("… at index 9 (expected …)" or "PCR 9 (expected …)"), or -1. */
static int refused_pcr(const char *detail) {
        const char *s = strstr(detail, "at index ");
        size_t skip = strlen("at index ");
        if (!s) {
                s = strstr(detail, "PCR ");
                skip = strlen("PCR ");
        }
        if (!s)
                return -1;
        char *end;
        unsigned long idx = strtoul(s + skip, &end, 10);
        return end == s + skip || idx > MEASUREMENTS_MAX_INDEX ? -1 : (int) idx;
}

/* The value of the first line "<indent>key: value" (NUL-terminated copy), or NULL. */
static char *yaml_value(const char *yaml, size_t len, const char *key) {
        size_t klen = strlen(key);
        for (const char *line = yaml, *end = yaml + len; line < end;) {
                const char *nl = memchr(line, '\n', (size_t) (end - line));
                const char *le = nl ?: end, *q = line;
                while (q < le && (*q == ' ' || *q == '-'))
                        q++;
                if ((size_t) (le - q) > klen + 1 && !strncmp(q, key, klen) && q[klen] == ':' && q[klen + 1] == ' ')
                        return strndup(q + klen + 2, (size_t) (le - q - klen - 2));
                line = nl ? nl + 1 : end;
        }
        return NULL;
}

/* base64 PEM from the kubeconfig as a cty string (NULL value if absent or not base64). */
static cty_value *pem_value(const char *yaml, size_t len, const char *key, bool secret) {
        _cleanup_erase_free_ char *b64 = yaml_value(yaml, len, key);
        _cleanup_free_ uint8_t *pem = NULL;
        size_t plen = 0;
        if (!b64 || base64_decode(b64, strlen(b64), BASE64_STD, &pem, &plen) < 0)
                return cty_null(&cty_string);
        cty_value *v = cty_string_newn((const char *) pem, plen);
        if (secret)
                erase_memory(pem, plen);
        return v;
}

/* The kubeconfig with its server's host replaced by out_of_cluster_endpoint (port kept), as
 * Constellation's provider does. */
static char *kubeconfig_rewrite(const char *yaml, size_t len, const char *endpoint, char **ret_host) {
        const char *s = NULL;
        for (const char *q = yaml; q && q < yaml + len; q = strstr(q + 1, "server: https://"))
                if (!strncmp(q, "server: https://", 16)) {
                        s = q;
                        break;
                }
        if (!s)
                return NULL;
        const char *host = s + 16, *eol = memchr(host, '\n', (size_t) (yaml + len - host));
        if (!eol)
                eol = yaml + len;
        const char *port = NULL;
        for (const char *q = eol; q > host; q--)
                if (q[-1] == ':') {
                        port = q - 1;
                        break;
                }
        if (!port)
                return NULL;
        bool v6 = strchr(endpoint, ':');
        char *server = NULL, *out = NULL;
        if (asprintf(&server, "https://%s%s%s%.*s", v6 ? "[" : "", endpoint, v6 ? "]" : "", (int) (eol - port), port) < 0)
                return NULL;
        if (asprintf(&out, "%.*s%s%.*s", (int) (host - 8 - yaml), yaml, server, (int) (yaml + len - eol), eol) < 0) {
                free(server);
                return NULL;
        }
        *ret_host = server;
        return out;
}

static void diag_init_failure(tf_diags *d, const char *endpoint, const ct_error *err,
                              const nodeclient_init_result *res) {
        tf_path pa = tf_path_child(NULL, "attestation"), pm = tf_path_child(&pa, "measurements");
        if (streq(err->reason, NODECLIENT_REASON_ATLS_REFUSED)) {
                int pcr = refused_pcr(err->detail);
                char step[16];
                snprintf(step, sizeof step, "[\"%d\"]", pcr);
                tf_path pp = tf_path_child(&pm, step);
                if (pcr >= 0)
                        tf_error(d, &pp, "Attestation refused: PCR mismatch",
                                 "The node at %s did not attest against attestation.measurements: PCR %d differs (%s). "
                                 "Nothing was sent to the node; it is not initialised. Check that the measurements "
                                 "belong to the image the node booted.",
                                 endpoint, pcr, err->detail);
                else
                        tf_error(d, &pm, "Attestation refused",
                                 "The node at %s did not attest against attestation.measurements (%s). Nothing was "
                                 "sent to the node; it is not initialised.",
                                 endpoint, err->detail);
        } else if (streq(err->reason, NODECLIENT_REASON_UNREACHABLE) && !res->connected) {
                tf_path pe = tf_path_child(NULL, "out_of_cluster_endpoint");
                tf_error(d, &pe, "Cannot reach the first control plane",
                         "No attested connection to %s within %d minutes (%s). Is the infrastructure up and the node's "
                         "bootstrapper serving? Nothing was sent.",
                         endpoint, INIT_UNREACHABLE_DEADLINE_S / 60, err->detail);
        } else if (streq(err->reason, NODECLIENT_REASON_UNREACHABLE)) {
                tf_error(d, NULL, "Init interrupted",
                         "The connection to %s ended after the node attested (%s). The request may have reached the "
                         "node; Init is not resumable, so if the node was initialised it cannot be initialised again: "
                         "replace the infrastructure.",
                         endpoint, err->detail);
        } else if (streq(err->reason, NODECLIENT_REASON_RPC_STATUS) && strstr(err->detail, "already being activated")) {
                tf_error(d, NULL, "Control plane already initialised",
                         "The node at %s refused Init: it is being or was initialised already (%s), by an earlier "
                         "apply that did not record the cluster (interrupted during the Init call). Init is not "
                         "resumable, and its result (the kubeconfig) was only in the lost response: replace the "
                         "infrastructure together with the cluster. Nothing was changed on the node.",
                         endpoint, err->detail);
        } else if (streq(err->reason, NODECLIENT_REASON_RPC_STATUS) && strstr(err->detail, "wrong-init-secret")) {
                tf_path pi = tf_path_child(NULL, "init_secret");
                tf_error(d, &pi, "Init secret refused",
                         "The node refused the init request: the init secret is not the one whose hash the "
                         "infrastructure gave the node (%s). Use the infrastructure's init secret.",
                         err->detail);
        } else {
                const char *log = res->log && res->log_len ? res->log : "";
                size_t keep = strlen(log) > 4000 ? 4000 : strlen(log);
                tf_error(d, NULL, "Cluster initialisation failed", "%s: %s (%s).%s%.*s", endpoint, err->detail,
                         err->reason, keep ? "\n\nThe node's log (end):\n" : "", (int) keep,
                         log + strlen(log) - keep);
        }
}


/* ---- the whole cluster's verification (lib/verifyclient, as constellation-attest verify) ------- */

#define JOIN_TIMEOUT_DEFAULT_S (20 * 60)
#define VERIFY_CALL_TIMEOUT_MS (10 * 1000)
#define VERIFY_RETRY_INTERVAL_S 2
#define VERIFY_MAX_NODES 1024

/* join_timeout ("90s", "20m", "1h"; the schema's regex) in seconds; null: the default. */
static int join_timeout_s(const cty_value *planned) {
        const char *s = tf_get_string(planned, "join_timeout");
        if (!s || !*s)
                return JOIN_TIMEOUT_DEFAULT_S;
        char *end;
        unsigned long n = strtoul(s, &end, 10);
        unsigned long mul = *end == 'h' ? 3600 : *end == 'm' ? 60 : 1;
        unsigned long max = 100UL * 24 * 3600; /* 100 days; n has at most 6 digits: no overflow */
        return n * mul > max ? (int) max : (int) (n * mul);
}

typedef struct node_check {
        const char *name, *endpoint;
        bool control_plane, verified;
        /* Refused for a boot measurement (a PCR other than 15): final until the node reboots. */
        int boot_pcr;
        char reason[CT_ERROR_DETAIL_MAX + 256];
} node_check;

/* "reason: detail" for the state and diagnostics, with what a PCR 15 mismatch means. */
static void describe_failure(const ct_error *err, char *buf, size_t size) {
        int pcr = verifyclient_refused_pcr(err);
        if (pcr == VERIFYCLIENT_PCR_CLUSTER_ID) {
                /* attdoc: "… <got> at index 15 (expected …)"; zero: never extended */
                bool unset = strstr(err->detail, "0000000000000000000000000000000000000000000000000000000000000000 at index");
                snprintf(buf, size, "%s: PCR 15 (the cluster ID) differs: %s (%s)", err->reason, err->detail,
                         unset ? "the node has not joined the cluster yet" : "the node was bound to another cluster");
        } else if (pcr >= 0)
                snprintf(buf, size, "%s: PCR %d differs: %s", err->reason, pcr, err->detail);
        else
                snprintf(buf, size, "%s: %s", err->reason ?: "error", err->detail);
}

/* Asks every node of `nodes` for its attestation (fresh nonce, attestation.measurements, PCR 15 =
 * cluster_id) until all verified or timeout_s passed, and sets v.verification. Nodes that did not
 * verify are one error naming each with its last reason; with `warn`, a warning if every such node
 * differs in a boot measurement (see update_cluster). `after` says what became of the cluster.
 *
 * Waiting is for joins, which change PCR 15 only. A node refused for another PCR (a boot measurement)
 * answers the same until it reboots, so it is not asked again; and once every control plane is refused
 * that way, the other nodes are not waited for either: the join service admits joining nodes against
 * the same measurements, so nodes of the control planes' image cannot join (their verification
 * service does not even run before they have: the state disk is unlocked in the initrd), and waiting
 * join_timeout for that would only hide the cause. */
static int verify_nodes(cty_value *v, const measurements *m, const uint8_t cluster_id[32], int timeout_s, bool warn,
                        const char *after, tf_diags *d) {
        const cty_value *nodes = cty_object_get(v, "nodes");
        ssize_t ti = cty_type_attr_index(v->type, "verification");
        if (ti < 0)
                return -EINVAL;
        cty_type *lt = v->type->types[ti];
        if (!nodes || nodes->null || nodes->unknown)
                return cty_object_set(v, "verification", cty_null(lt));
        size_t n = 0;
        (void) cty_value_length(nodes, &n);
        tf_path pn = tf_path_child(NULL, "nodes");
        if (n > VERIFY_MAX_NODES) {
                tf_error(d, &pn, "Too many nodes", "nodes has %zu entries; at most %d are verified.%s", n,
                         VERIFY_MAX_NODES, after);
                return -E2BIG;
        }
        _cleanup_free_ node_check *c = calloc(n ?: 1, sizeof *c);
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const cty_value *e = cty_index_get(nodes, i);
                c[i].name = tf_get_string(e, "name") ?: "";
                c[i].endpoint = tf_get_string(e, "verification_endpoint") ?: "";
                const char *role = tf_get_string(e, "role");
                c[i].control_plane = role && streq(role, "control-plane");
                c[i].boot_pcr = -1;
                snprintf(c[i].reason, sizeof c[i].reason, "not asked yet");
        }
        size_t n_cp = 0;
        for (size_t i = 0; i < n; i++)
                n_cp += c[i].control_plane;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        size_t left = n, refused = 0, cp_refused = 0;
        bool gave_up = false;
        for (unsigned round = 1; left > refused; round++) {
                for (size_t i = 0; i < n; i++) {
                        if (c[i].verified || c[i].boot_pcr >= 0)
                                continue;
                        ct_error err = CT_ERROR_INIT;
                        _cleanup_free_ char *warnings = NULL;
                        int r = verifyclient_verify(c[i].endpoint, m, cluster_id, VERIFY_CALL_TIMEOUT_MS, &warnings, &err);
                        if (r >= 0) {
                                c[i].verified = true;
                                left--;
                                log_debug("constellation_cluster: node %s (%s) verified", c[i].name, c[i].endpoint);
                                if (warnings)
                                        tf_warning(d, &pn, "Warn-only measurement differs",
                                                   "Node %s (%s) verified with warnings:\n%s", c[i].name, c[i].endpoint,
                                                   warnings);
                        } else {
                                if (!ct_error_is_set(&err))
                                        ct_error_set(&err, r, "verifyclient", "error", "%s", strerror(-r));
                                describe_failure(&err, c[i].reason, sizeof c[i].reason);
                                log_debug("constellation_cluster: node %s (%s) not verified (round %u): %s", c[i].name,
                                          c[i].endpoint, round, c[i].reason);
                                int pcr = verifyclient_refused_pcr(&err);
                                if (pcr >= 0 && pcr != VERIFYCLIENT_PCR_CLUSTER_ID) {
                                        c[i].boot_pcr = pcr;
                                        refused++;
                                        cp_refused += c[i].control_plane;
                                }
                        }
                }
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (left == refused || now.tv_sec - t0.tv_sec >= timeout_s)
                        break;
                if (n_cp > 0 && cp_refused == n_cp) {
                        gave_up = true;
                        break;
                }
                (void) nanosleep(&(struct timespec){ .tv_sec = VERIFY_RETRY_INTERVAL_S }, NULL);
        }

        _cleanup_(cty_value_freep) cty_value *list = cty_collection_new(lt);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                cty_value *o = cty_object_new(lt->elem);
                if (!o || cty_object_set(o, "name", cty_string_new(c[i].name)) < 0 ||
                    cty_object_set(o, "verification_endpoint", cty_string_new(c[i].endpoint)) < 0 ||
                    cty_object_set(o, "verified", cty_bool_new(c[i].verified)) < 0 ||
                    cty_object_set(o, "reason", c[i].verified ? cty_null(&cty_string) : cty_string_new(c[i].reason)) < 0 ||
                    cty_collection_append(list, o) < 0) {
                        cty_value_free(o);
                        return -ENOMEM;
                }
        }
        if (cty_object_set(v, "verification", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        if (left == 0)
                return 0;
        _cleanup_free_ char *names = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&names, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!c[i].verified)
                        fprintf(f, "\n  - %s (%s): %s%s", c[i].name, c[i].endpoint, c[i].reason,
                                gave_up && c[i].boot_pcr < 0 ? " (not waited for: see below)" : "");
        fclose(f);
        _cleanup_free_ char *cid = hex_encode(cluster_id, 32);
        if (refused > 0)
                /* The configured measurements and the running nodes disagree: say so first, and what
                 * it means for joins, rather than a timeout. */
                tf_diags_add(d, !warn || refused < left, &pn, "Nodes do not match attestation.measurements",
                             "%zu of %zu nodes did not verify against attestation.measurements and PCR 15 = cluster "
                             "ID %s; each with its last reason:%s\n\n%zu of them booted with measurements other "
                             "than the configured ones (a PCR other than 15 differs). The join service admits "
                             "joining and rejoining nodes against the configuration applied to it, so a node that "
                             "boots such an image is refused until the measurements match it again.%s%s",
                             left, n, cid ?: "?", names ?: "", refused,
                             gave_up ? " Every control plane differs, so the other nodes were not waited for "
                                       "(join_timeout): the join service refuses nodes of the control planes' image."
                                     : "",
                             after);
        else
                tf_error(d, &pn, "Nodes did not verify",
                             "%zu of %zu nodes did not verify within %d s (join_timeout) against "
                             "attestation.measurements and PCR 15 = cluster ID %s; each with its last reason:%s\n\nA "
                             "worker verifies once it has joined (its PCR 15 then holds the cluster ID): check that "
                             "it reaches the join service, that its measurements are the applied ones, and that its "
                             "verification service (port 30081) serves.%s",
                             left, n, timeout_s, cid ?: "?", names ?: "", after);
        return -ETIMEDOUT;
}

/* ---- An Init that happened without a record (apply interrupted during Init) ------------------- */

#define INIT_PROBE_EVERY 15 /* Init attempts (2 s apart) between two looks at the node's PCR 15 */

/* HOST:PORT of the first control plane's verification service in `nodes`, or NULL. */
static const char *first_control_plane_verify(const cty_value *planned) {
        const cty_value *nodes = cty_object_get(planned, "nodes");
        size_t n = 0;
        if (!nodes || nodes->null || nodes->unknown || cty_value_length(nodes, &n) < 0)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const cty_value *e = cty_index_get(nodes, i);
                const char *role = tf_get_string(e, "role");
                if (role && streq(role, "control-plane"))
                        return tf_get_string(e, "verification_endpoint");
        }
        return NULL;
}

/* While the control plane does not serve Init, it may have been initialised already: by an apply
 * that was interrupted during the Init call (Terraform or the provider killed), so the node did its
 * Init and stopped serving but no state recorded it. Its PCR 15 tells: the cluster ID these secrets
 * derive means this configuration initialised it; another non-zero value, another cluster. Either
 * is final (Init is not resumable, and waiting 20 minutes for a closed port would only hide it):
 * an error, and 1. 0: not initialised, unreachable, or refused for another reason (Init's own
 * attestation reports that). */
static int probe_initialised(const char *verify_endpoint, const char *init_endpoint, const measurements *m,
                             const uint8_t cluster_id[32], tf_diags *d) {
        ct_error err = CT_ERROR_INIT;
        _cleanup_free_ char *warnings = NULL, *cid = hex_encode(cluster_id, 32);
        int r = verifyclient_verify(verify_endpoint, m, cluster_id, VERIFY_CALL_TIMEOUT_MS, &warnings, &err);
        const char *advice =
                "Init is not resumable, and its result (the kubeconfig) was only in the lost response, so this "
                "cluster cannot be recorded: replace the infrastructure together with the cluster (e.g. "
                "`terraform apply -replace=` on the infrastructure resource). Nothing was sent.";
        if (r >= 0) {
                tf_error(d, NULL, "Control plane already initialised",
                         "The node at %s does not serve Init, and its verification service (%s) attests PCR 15 = "
                         "cluster ID %s, the one master_secret, master_secret_salt and measurement_salt derive: it "
                         "was initialised with this configuration's secrets by an earlier apply that did not record "
                         "the cluster (interrupted during the Init call). %s",
                         init_endpoint, verify_endpoint, cid ?: "?", advice);
                return 1;
        }
        if (verifyclient_refused_pcr(&err) == VERIFYCLIENT_PCR_CLUSTER_ID &&
            !strstr(err.detail, "0000000000000000000000000000000000000000000000000000000000000000 at index")) {
                tf_error(d, NULL, "Control plane bound to another cluster",
                         "The node at %s does not serve Init, and its verification service (%s) attests a PCR 15 "
                         "that is not the cluster ID these secrets derive (%s): it was initialised with other "
                         "secrets (%s). An initialised node cannot be initialised again: replace the infrastructure, "
                         "or configure the secrets it was initialised with (this error then says so). Nothing was "
                         "sent.",
                         init_endpoint, verify_endpoint, cid ?: "?", err.detail);
                return 1;
        }
        log_debug("constellation_cluster: %s not initialised yet (%s: %s)", verify_endpoint, err.reason ?: "?",
                  err.detail);
        return 0;
}

static cty_value *create_cluster(tf_provider_state *p, const cty_value *planned, const cty_value *config,
                                 tf_diags *d) {
        const cty_value *att = cty_object_get(planned, "attestation");
        const char *variant = tf_get_string(att, "variant"), *host = tf_get_string(planned, "out_of_cluster_endpoint");
        tf_path pa = tf_path_child(NULL, "attestation"), pv = tf_path_child(&pa, "variant");
        if (!variant || !streq(variant, "qemu-vtpm")) {
                tf_error(d, &pv, "Attestation variant not supported for creation",
                         "Creating a cluster validates the first node with the qemu-vtpm validator (local QEMU "
                         "clusters, constellation_qemu_infrastructure); \"%s\" is not implemented yet. Nothing was "
                         "created.",
                         variant ?: "");
                return NULL;
        }
        _cleanup_free_ nodeclient_policy *policy = calloc(1, sizeof *policy); /* large, self-referencing */
        measurements m;
        ct_error err = CT_ERROR_INIT;
        if (!policy || measurements_from_attestation(att, &m, d) < 0)
                return NULL;
        if (nodeclient_policy_from_measurements(&m, policy, &err) < 0) {
                tf_path pm = tf_path_child(&pa, "measurements");
                tf_error(d, &pm, "Invalid measurements", "%s.", err.detail);
                return NULL;
        }
        _cleanup_secret_ secret_t *master = NULL, *salt = NULL, *msalt = NULL, *isecret = NULL, *kms_uri = NULL;
        _cleanup_free_ char *wrapped_b64 = NULL, *salt_b64 = NULL;
        const cty_value *kmip_cfg = cty_object_get(config, "kmip");
        bool use_kmip = value_set(kmip_cfg);
        /* A blob drawn by Create goes into state; a given one stays as the configuration wrote it. */
        const cty_value *planned_wrapped = cty_object_get(cty_object_get(planned, "kmip"), "wrapped_master_secret");
        bool drawn = use_kmip && (!planned_wrapped || planned_wrapped->null || planned_wrapped->unknown);
        if (config_secret(config, "measurement_salt", true, &msalt, d) < 0 ||
            config_secret(config, "init_secret", false, &isecret, d) < 0)
                return NULL;
        if (use_kmip) {
                /* Hold your own key: the master secret is unwrapped (or first drawn and wrapped) at the
                 * user's KMIP server before the node is dialled, so a refusal names its attribute and
                 * leaves the node untouched; the node gets the kms://kmip URI and unwraps it itself. */
                if (kmip_master_secret(kmip_cfg, cty_object_get(planned, "kmip"), true, &master, &salt, &wrapped_b64,
                                       &salt_b64, &kms_uri, " Nothing was sent to the node; it is not initialised.",
                                       d) < 0)
                        return NULL;
        } else if (config_secret(config, "master_secret", true, &master, d) < 0 ||
                   config_secret(config, "master_secret_salt", true, &salt, d) < 0)
                return NULL;

        /* Subject alternative names: the configured ones and the endpoint. */
        const cty_value *sans_v = cty_object_get(planned, "api_server_cert_sans");
        size_t n_sans = 0;
        if (sans_v && !sans_v->null && !sans_v->unknown)
                (void) cty_value_length(sans_v, &n_sans);
        _cleanup_free_ const char **sans = calloc(n_sans + 1, sizeof *sans);
        if (!sans)
                return NULL;
        size_t k = 0;
        bool have_host = false;
        for (size_t i = 0; i < n_sans; i++) {
                const char *s;
                if (cty_value_get_string(cty_index_get(sans_v, i), &s, NULL) == 0 && *s) {
                        sans[k++] = s;
                        have_host = have_host || streq(s, host);
                }
        }
        if (!have_host)
                sans[k++] = host;

        const char *svc = tf_get_string(cty_object_get(planned, "network_config"), "ip_cidr_service");
        nodeclient_init_params params = {
                .master_secret = use_kmip ? NULL : master, .salt = use_kmip ? NULL : salt, .kms_uri = kms_uri,
                .measurement_salt = msalt, .init_secret = isecret,
                .cluster_name = tf_get_string(planned, "name"),
                .kubernetes_version = tf_get_string(planned, "kubernetes_version"),
                .service_cidr = svc,
                .apiserver_cert_sans = sans, .n_apiserver_cert_sans = k,
                .handshake_timeout_ms = INIT_HANDSHAKE_TIMEOUT_MS, .call_timeout_ms = INIT_CALL_TIMEOUT_MS,
        };
        _cleanup_free_ char *endpoint = NULL;
        if (asprintf(&endpoint, strchr(host, ':') ? "[%s]:" INIT_PORT : "%s:" INIT_PORT, host) < 0) {
                endpoint = NULL;
                return NULL;
        }
        /* The node may still be booting (the infrastructure was just created): while nothing could be
         * sent (no aTLS connection), try again, as Constellation does while the node is Unavailable.
         * Once the node attested, a failure is final: Init is not resumable. */
        nodeclient_init_result res = { 0 };
        int r;
        const char *probe = first_control_plane_verify(planned);
        uint8_t want_cid[32];
        _cleanup_secret_ secret_t *ms = NULL;
        if (probe && (kdf_measurement_secret(master, salt, &ms) < 0 ||
                      kdf_cluster_id(ms, msalt->data, msalt->len, want_cid) < 0))
                probe = NULL;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (unsigned attempt = 1;; attempt++) {
                log_debug("constellation_cluster: Init of %s (attempt %u)", endpoint, attempt);
                res = (nodeclient_init_result){ 0 };
                err = (ct_error) CT_ERROR_INIT;
                r = nodeclient_init(endpoint, &policy->validator, &params, &res, &err);
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (r >= 0 || res.connected || !streq(err.reason, NODECLIENT_REASON_UNREACHABLE) ||
                    now.tv_sec - t0.tv_sec >= INIT_UNREACHABLE_DEADLINE_S)
                        break;
                nodeclient_init_result_done(&res);
                if (probe && attempt % INIT_PROBE_EVERY == 1 && probe_initialised(probe, endpoint, &m, want_cid, d) > 0)
                        return NULL;
                log_debug("constellation_cluster: %s unreachable (%s), retrying in %d s", endpoint, err.detail,
                          INIT_RETRY_INTERVAL_S);
                (void) nanosleep(&(struct timespec){ .tv_sec = INIT_RETRY_INTERVAL_S }, NULL);
        }
        if (r < 0) {
                diag_init_failure(d, endpoint, &err, &res);
                nodeclient_init_result_done(&res);
                return NULL;
        }

        /* The node is initialised: from here on, every failure still returns what we know. */
        _cleanup_free_ char *cid = hex_encode(res.cluster_id, sizeof res.cluster_id);
        _cleanup_free_ char *owner = hex_encode(res.owner_id ?: (const uint8_t *) "", res.owner_id_len);
        const char *kc = (const char *) res.kubeconfig->data;
        size_t kc_len = res.kubeconfig->len;
        _cleanup_free_ char *server = NULL;
        _cleanup_erase_free_ char *rewritten = kubeconfig_rewrite(kc, kc_len, host, &server);
        if (rewritten) {
                kc = rewritten;
                kc_len = strlen(rewritten);
        }
        _cleanup_(cty_value_freep) cty_value *v = cty_value_copy(planned);
        if (!v || !cid || !owner || cty_object_set(v, "cluster_id", cty_string_new(cid)) < 0 ||
            cty_object_set(v, "owner_id", cty_string_new(owner)) < 0 ||
            cty_object_set(v, "kubeconfig", cty_string_newn(kc, kc_len)) < 0 ||
            cty_object_set(v, "host", server ? cty_string_new(server) : cty_null(&cty_string)) < 0 ||
            cty_object_set(v, "cluster_ca_certificate", pem_value(kc, kc_len, "certificate-authority-data", false)) < 0 ||
            cty_object_set(v, "client_certificate", pem_value(kc, kc_len, "client-certificate-data", false)) < 0 ||
            cty_object_set(v, "client_key", pem_value(kc, kc_len, "client-key-data", true)) < 0 ||
            (drawn && (cty_object_set(cty_object_get(v, "kmip"), "wrapped_master_secret", cty_string_new(wrapped_b64)) < 0 ||
                       cty_object_set(cty_object_get(v, "kmip"), "salt", cty_string_new(salt_b64)) < 0))) {
                nodeclient_init_result_done(&res);
                tf_error(d, NULL, "Out of memory",
                         "The cluster was initialised (cluster ID %s) but the provider ran out of memory recording it.",
                         cid ?: "?");
                return NULL;
        }
        nodeclient_init_result_done(&res);
        /* docs/node.md: the node's join service starts with the PCRs the node read from its own TPM
         * (version 0); the client that ran Init pushes the user's measurements as the first signed
         * update. The cluster exists either way: a failure here is a warning. */
        _cleanup_free_ char *doc = NULL;
        tf_diags sd = { 0 };
        if (sign_attestation_update(&m, master, salt, &doc, &sd) == 0)
                (void) push_attestation_update(host, doc, INIT_JOIN_SERVICE_DEADLINE_S, true, d);
        for (size_t i = 0; i < sd.n; i++)
                if (sd.items[i]->detail)
                        tf_warning(d, NULL, "Measurements not pushed to the join service", "%s", sd.items[i]->detail);
        tf_diags_done(&sd);
        /* The whole cluster: every listed node must verify with PCR 15 = this cluster's ID. The cluster
         * exists either way: on failure the state is returned with the error, which Terraform saves as
         * tainted (docs/resources/cluster.md "Nodes that do not verify"). */
        uint8_t cid_bin[32];
        if (hex_decode_exact(cid, cid_bin, sizeof cid_bin) == 0)
                (void) verify_nodes(v, &m, cid_bin, join_timeout_s(planned), false,
                                    "\n\nThe cluster is initialised (Init cannot be repeated) and saved in state; "
                                    "Terraform marks it tainted, so the next plan would replace it, which fails on "
                                    "initialised nodes. Once the nodes are fixed, run `terraform untaint` on this "
                                    "resource and apply again with the nodes to check (a changed `nodes` is verified "
                                    "again), or replace the infrastructure together with the cluster.",
                                    d);
        return TAKE_PTR(v);
}

/* The cluster's keys cannot move to another KMS after Init: every node keeps the kms:// URI (or the
 * master secret) it was initialised with on its state disk, and the blob is bound to its KEK. The
 * write-only parts (KEK identifier, credentials) are in no plan or state to compare with; a changed
 * KEK is refused by the server when Update next unwraps (the blob's additional data names the KEK). */
static void plan_key_management(const cty_value *prior, const cty_value *planned, tf_diags *d) {
        const cty_value *pk = cty_object_get(prior, "kmip"), *nk = cty_object_get(planned, "kmip");
        const cty_value *cid = cty_object_get(prior, "cluster_id");
        if (!cid || cid->null || (nk && nk->unknown))
                return; /* imported: nothing recorded to compare with */
        tf_path pkp = tf_path_child(NULL, "kmip");
        if (value_set(pk) != value_set(nk)) {
                tf_error(d, &pkp, "Key management cannot change",
                         "The cluster was initialised with %s, and every node keeps that on its state disk; "
                         "switching to %s would need the cluster's keys moved, which this provider does not do. Keep "
                         "the key management the cluster was created with (the master secret's key derivation stays "
                         "the same either way), or replace the cluster.",
                         value_set(pk) ? "kmip (hold your own key)" : "master_secret and master_secret_salt",
                         value_set(nk) ? "kmip" : "master_secret");
                return;
        }
        if (!value_set(pk))
                return;
        static const char *const fixed[] = { "endpoint", "server_name", "wrapped_master_secret", "salt" };
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
                const cty_value *a = cty_object_get(pk, fixed[i]), *b = cty_object_get(nk, fixed[i]);
                if (!a || !b || b->unknown || cty_value_equal(a, b))
                        continue;
                tf_path p = tf_path_child(&pkp, fixed[i]);
                tf_error(d, &p, "KMIP settings cannot change",
                         "kmip.%s of an initialised cluster cannot change: the nodes received the kms://kmip URI at Init "
                         "and keep it on their state disks (recovery and the key service use it), and the master "
                         "secret is wrapped under the KEK once. Keep the applied value (see the state), or replace "
                         "the cluster.",
                         fixed[i]);
        }
}

/* Changes that need Kubernetes are refused at plan time, never half-applied. */
static int plan_cluster(tf_provider_state *p, const cty_value *prior, cty_value *planned, tf_diags *d) {
        /* Without nodes there is nothing to verify: verification is null, known now (the schema's
         * planning made the null computed value unknown). */
        const cty_value *nn = cty_object_get(planned, "nodes");
        ssize_t vi = cty_type_attr_index(planned->type, "verification");
        if (vi >= 0 && nn && nn->null && !nn->unknown)
                (void) cty_object_set(planned, "verification", cty_null(planned->type->types[vi]));
        if (!prior || prior->null)
                return 0;
        /* A replacement (name, csp, uid) is planned again as a create: nothing to refuse here. */
        static const char *const replacing[] = { "name", "csp", "uid" };
        for (size_t i = 0; i < ELEMENTSOF(replacing); i++)
                if (!cty_value_equal(cty_object_get(prior, replacing[i]), cty_object_get(planned, replacing[i])))
                        return 0;
        static const struct {
                const char *attr, *what;
        } needs_k8s[] = {
                { "image", "a node image upgrade" },
                { "kubernetes_version", "a Kubernetes upgrade" },
                { "constellation_microservice_version", "a microservice upgrade" },
        };
        plan_key_management(prior, planned, d);
        /* Verified again at apply: a changed node list; changed measurements (the running nodes are
         * checked against what the join service will now admit); and a cluster with a node that did
         * not verify at the last apply, so that `apply` checks again and the plan is not empty while
         * a node is unverified (a restarted worker that rejoins later, measurements put right). */
        const cty_value *pn = cty_object_get(prior, "nodes");
        bool reverify = !cty_value_equal(cty_object_get(prior, "attestation"), cty_object_get(planned, "attestation"));
        const cty_value *pver = cty_object_get(prior, "verification");
        size_t n_ver = 0;
        if (pver && !pver->null && !pver->unknown && cty_value_length(pver, &n_ver) == 0)
                for (size_t i = 0; i < n_ver && !reverify; i++) {
                        bool ok = true;
                        reverify = cty_value_get_bool(cty_object_get(cty_index_get(pver, i), "verified"), &ok) == 0 && !ok;
                }
        if (vi >= 0 && nn && !nn->null &&
            (!pn || nn->unknown || cty_value_has_unknown(nn) || !cty_value_equal(pn, nn) || reverify))
                (void) cty_object_set(planned, "verification", cty_unknown(planned->type->types[vi]));
        for (size_t i = 0; i < ELEMENTSOF(needs_k8s); i++) {
                const cty_value *a = cty_object_get(prior, needs_k8s[i].attr), *b = cty_object_get(planned, needs_k8s[i].attr);
                /* Unknown now, or not in the prior state (imported): nothing to compare. */
                if (!a || !b || a->null || b->unknown || cty_value_has_unknown(b) || cty_value_equal(a, b))
                        continue;
                tf_path pa = tf_path_child(NULL, needs_k8s[i].attr);
                tf_error(d, &pa, "Change needs Kubernetes",
                         "Changing %s of an existing cluster is %s, which runs through Kubernetes on the cluster (node "
                         "versions, Helm releases); this provider does not do that yet, and refuses it now rather than "
                         "leave the cluster half-upgraded. Keep the current value, or replace the cluster.",
                         needs_k8s[i].attr, needs_k8s[i].what);
        }
        return 0;
}

/* ---- Update: the attestation configuration, as a signed update to the join service -------------- */


/* The first configured (not computed, not write-only) attribute other than `except` whose planned
 * value differs from the prior one, or NULL. */
static const char *changed_attribute(const cty_value *prior, const cty_value *planned, const char *except) {
        for (size_t i = 0; cluster_attrs[i].name; i++) {
                const tf_attr *a = &cluster_attrs[i];
                if (a->write_only || a->mode == TF_COMPUTED || streq(a->name, except) || streq(a->name, "nodes") ||
                    streq(a->name, "join_timeout"))
                        continue;
                if (!cty_value_equal(cty_object_get(prior, a->name), cty_object_get(planned, a->name)))
                        return a->name;
        }
        return NULL;
}

/* Signs measurements as an attestation config update with the key derived from the master secret
 * (version: the wall clock in milliseconds, so every later apply supersedes every earlier one; the
 * init configuration is version 0; < 2^53 until the year 287396). */
static int sign_attestation_update(const measurements *m, const secret_t *master, const secret_t *salt, char **ret,
                                   tf_diags *d) {
        _cleanup_secret_ secret_t *key = NULL;
        if (kdf_data_key(master, salt, JOINCONFIG_SIGNING_KEY_ID, JOINCONFIG_SIGNING_KEY_LEN, &key) < 0)
                return -ENOMEM;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t version = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
        ct_error err = CT_ERROR_INIT;
        if (joinconfig_update_sign(m, version, key, ret, &err) < 0) {
                char b[CT_ERROR_DETAIL_MAX + 64];
                tf_path pa = tf_path_child(NULL, "attestation"), pm = tf_path_child(&pa, "measurements");
                tf_error(d, &pm, "Invalid attestation configuration", "%s.", ct_error_format(&err, b, sizeof b));
                return -EINVAL;
        }
        log_debug("constellation_cluster: attestation config update version %" PRIu64, version);
        return 0;
}

/* Pushes a signed update document to host:30091 (docs/node.md "Attestation config updates without
 * Kubernetes"), trying again while the service is unreachable until retry_s have passed. Problems are
 * errors (Update) or, when the cluster exists regardless (Create), warnings whose text says so. */
static int push_attestation_update(const char *host, const char *doc, int retry_s, bool warn, tf_diags *d) {
        tf_path pa = tf_path_child(NULL, "attestation"), pe = tf_path_child(NULL, "out_of_cluster_endpoint");
        const char *after = warn ? " The cluster is initialised regardless; until the join service takes the "
                                   "update it admits joining nodes by the PCRs 4, 8, 9, 11, 12 and 13 the first node "
                                   "reported at Init. Push it later with constellation-attest join-config, or apply a "
                                   "changed attestation."
                                 : " The state is unchanged.";
        _cleanup_free_ char *endpoint = NULL;
        if (asprintf(&endpoint, strchr(host, ':') ? "[%s]:" JOINCONFIG_UPDATE_PORT : "%s:" JOINCONFIG_UPDATE_PORT,
                     host) < 0) {
                endpoint = NULL;
                return -ENOMEM;
        }
        /* UpdateAttestationConfigRequest { bytes signed_update = 1; } */
        size_t len = strlen(doc), n = 0;
        _cleanup_free_ uint8_t *req = malloc(len + 16);
        if (!req)
                return -ENOMEM;
        req[n++] = 0x0a;
        for (size_t v = len;; v >>= 7) {
                req[n++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                if (v <= 0x7f)
                        break;
        }
        memcpy(req + n, doc, len);
        n += len;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rpc_status st = { 0 };
        int r;
        for (;;) {
                /* A fresh channel per attempt: gRPC's reconnect backoff would grow to minutes. */
                _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
                if ((r = rpc_channel_new(endpoint, NULL, NULL, &ch)) >= 0) {
                        uint8_t *resp = NULL;
                        size_t resp_len = 0;
                        r = rpc_unary(ch, JOINCONFIG_UPDATE_METHOD, req, n, JOINCONFIG_UPDATE_TIMEOUT_MS, &resp,
                                      &resp_len, &st);
                        free(resp);
                }
                bool unreachable = r < 0 || st.code == GRPC_STATUS_UNAVAILABLE || st.code == GRPC_STATUS_DEADLINE_EXCEEDED;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (!unreachable || now.tv_sec - t0.tv_sec >= retry_s)
                        break;
                log_debug("constellation_cluster: join service %s unreachable, retrying", endpoint);
                rpc_status_done(&st);
                st = (rpc_status){ 0 };
                (void) nanosleep(&(struct timespec){ .tv_sec = INIT_RETRY_INTERVAL_S }, NULL);
        }
        bool failed = true;
        if (r < 0 || st.code == GRPC_STATUS_UNAVAILABLE || st.code == GRPC_STATUS_DEADLINE_EXCEEDED)
                tf_diags_add(d, !warn, &pe, "Cannot reach the join service",
                             "The attestation configuration update could not be delivered to %s (%s). The join "
                             "service runs on every initialised control plane.%s",
                             endpoint, r < 0 ? strerror(-r) : st.message ?: rpc_status_code_to_string(st.code), after);
        else if (st.code != GRPC_STATUS_OK)
                tf_diags_add(d, !warn, &pa, "Attestation configuration refused",
                             "The join service at %s refused the signed update: %s: %s.%s%s", endpoint,
                             rpc_status_code_to_string(st.code), st.message ?: "",
                             st.message && strstr(st.message, "signature-invalid")
                                     ? " The update is signed with a key derived from master_secret and "
                                       "master_secret_salt: they must be the ones the cluster was created with."
                                     : "",
                             after);
        else
                failed = false;
        rpc_status_done(&st);
        return failed ? -EPERM : 0;
}

/* The cluster ID of the state as 32 bytes. */
static int state_cluster_id(const cty_value *v, uint8_t ret[32]) {
        const char *hex = tf_get_string(v, "cluster_id");
        return hex && strlen(hex) == 64 ? hex_decode_exact(hex, ret, 32) : -EINVAL;
}

static cty_value *update_cluster(tf_provider_state *p, const cty_value *prior, const cty_value *planned,
                                 const cty_value *config, tf_diags *d) {
        const char *other = changed_attribute(prior, planned, "attestation");
        if (other) {
                tf_path po = tf_path_child(NULL, other);
                tf_error(d, &po, "Cluster update is not available yet",
                         "Changing %s of an initialised cluster is not implemented in this release (only the "
                         "attestation configuration is updated in place). The state is unchanged; keep the value as "
                         "it was applied, or replace the cluster.",
                         other);
                return cty_value_copy(prior);
        }
        const cty_value *att = cty_object_get(planned, "attestation");
        measurements m;
        if (measurements_from_attestation(att, &m, d) < 0)
                return cty_value_copy(prior);
        bool att_changed = !cty_value_equal(cty_object_get(prior, "attestation"), att);
        if (att_changed) {
                /* The attestation configuration changed: sign it with the key derived from the master
                 * secret and push it to the join service, which accepts only a version above the one in
                 * force. */
                const char *variant = tf_get_string(att, "variant"), *host = tf_get_string(planned, "out_of_cluster_endpoint");
                tf_path pa = tf_path_child(NULL, "attestation"), pv = tf_path_child(&pa, "variant");
                if (!variant || !streq(variant, "qemu-vtpm") || !host) {
                        tf_error(d, &pv, "Attestation variant not supported for updates",
                                 "The join service's attestation configuration is updated for qemu-vtpm clusters only; "
                                 "the state is unchanged.");
                        return cty_value_copy(prior);
                }
                _cleanup_secret_ secret_t *master = NULL, *salt = NULL;
                _cleanup_free_ char *doc = NULL;
                const cty_value *kmip_cfg = cty_object_get(config, "kmip");
                int r = value_set(kmip_cfg)
                                ? kmip_master_secret(kmip_cfg, cty_object_get(planned, "kmip"), false, &master, &salt,
                                                     NULL, NULL, NULL, " The state is unchanged.", d)
                                : config_secret(config, "master_secret", true, &master, d) < 0
                                          ? -EINVAL
                                          : config_secret(config, "master_secret_salt", true, &salt, d);
                if (r < 0 || sign_attestation_update(&m, master, salt, &doc, d) < 0 ||
                    push_attestation_update(host, doc, 0, false, d) < 0)
                        return cty_value_copy(prior);
        }
        _cleanup_(cty_value_freep) cty_value *v = cty_value_copy(planned);
        if (!v)
                return NULL;
        /* Verified again where the plan made `verification` unknown (plan_cluster: a changed node
         * list, changed measurements, a node unverified at the last apply). Nodes that do not verify
         * are an error, but for measurements just pushed while the nodes stay as they were: pushing
         * the measurements of an image the nodes do not run yet is how an upgrade starts, so that is a
         * warning naming each node and PCR (the join service now refuses a node that reboots with its
         * current image), recorded in `verification`, and the plan stays non-empty until they match. */
        const cty_value *pv = cty_object_get(v, "verification");
        bool nodes_changed = !cty_value_equal(cty_object_get(prior, "nodes"), cty_object_get(planned, "nodes"));
        if (nodes_changed || (pv && pv->unknown)) {
                uint8_t cid[32];
                if (state_cluster_id(prior, cid) < 0) {
                        tf_path pn = tf_path_child(NULL, "nodes");
                        tf_error(d, &pn, "No cluster ID", "The state has no cluster ID (an imported cluster?), so "
                                                          "the nodes' PCR 15 cannot be checked. The state is unchanged.");
                        return cty_value_copy(prior);
                }
                (void) verify_nodes(v, &m, cid, join_timeout_s(planned), att_changed && !nodes_changed,
                                    att_changed ? "\n\nThe join service has the new measurements (pushed before "
                                                  "this check); the state records them and this result. The next "
                                                  "plan shows `verification` again until every node verifies; apply "
                                                  "to check again."
                                                : "\n\nThe state records the node list and this result; the next "
                                                  "plan shows `verification` again until every node verifies; apply "
                                                  "to check again.",
                                    d);
        }
        return TAKE_PTR(v);
}

static cty_value *read_cluster(tf_provider_state *p, const cty_value *current, tf_diags *d) {
        /* As Constellation: the cluster is not queried; the stored state is the truth. */
        return cty_value_copy(current);
}

static void delete_cluster(tf_provider_state *p, const cty_value *prior, tf_diags *d) {
        /* As Constellation: the cluster ends with its infrastructure; only the state is dropped. */
}

/* Percent-decoding of a URL query value (RFC 3986 §2.1). */
static char *url_unescape(const char *s, size_t len) {
        char *out = malloc(len + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '%') {
                        uint8_t byte;
                        char hex[3] = { len - i >= 3 ? s[i + 1] : 0, len - i >= 3 ? s[i + 2] : 0, 0 };
                        if (hex_decode_exact(hex, &byte, 1) < 0) {
                                /* Not NUL-terminated yet: wipe by length (fuzz regression
                                 * import-bad-percent-escape). */
                                erase_memory(out, len + 1);
                                free(out);
                                return NULL;
                        }
                        *o++ = (char) byte;
                        i += 2;
                } else
                        *o++ = s[i] == '+' ? ' ' : s[i];
        }
        *o = 0;
        return out;
}

static cty_value *import_cluster(tf_provider_state *p, const char *id, tf_diags *d) {
        static const char scheme[] = "constellation-cluster://";
        if (strncmp(id, scheme, strlen(scheme)) != 0) {
                tf_error(d, NULL, "Invalid import ID",
                         "The import ID must be a URI constellation-cluster://?kubeConfig=<base64>&clusterEndpoint=<host>"
                         "&masterSecret=<hex>&masterSecretSalt=<hex>.");
                return NULL;
        }
        const char *q = strchr(id + strlen(scheme), '?');
        if (!q) {
                tf_error(d, NULL, "Invalid import ID", "The import URI has no query (expected ?kubeConfig=…).");
                return NULL;
        }
        _cleanup_free_ char *endpoint = NULL;
        _cleanup_erase_free_ char *kubeconfig_b64 = NULL; /* admin credentials */
        _cleanup_erase_free_ char *master = NULL, *salt = NULL;
        for (const char *s = q + 1; *s;) {
                const char *amp = strchr(s, '&'), *end = amp ? amp : s + strlen(s);
                const char *eq = memchr(s, '=', (size_t) (end - s));
                if (!eq) {
                        tf_error(d, NULL, "Invalid import ID", "Query parameter without a value in the import URI.");
                        return NULL;
                }
                size_t klen = (size_t) (eq - s);
                char *value = url_unescape(eq + 1, (size_t) (end - eq - 1));
                if (!value) {
                        tf_error(d, NULL, "Invalid import ID", "Bad percent-encoding in the import URI.");
                        return NULL;
                }
                char **slot = klen == 10 && !strncmp(s, "kubeConfig", klen)         ? &kubeconfig_b64
                              : klen == 15 && !strncmp(s, "clusterEndpoint", klen)  ? &endpoint
                              : klen == 12 && !strncmp(s, "masterSecret", klen)     ? &master
                              : klen == 16 && !strncmp(s, "masterSecretSalt", klen) ? &salt
                                                                                    : NULL;
                if (!slot) {
                        tf_error(d, NULL, "Invalid import ID", "Unknown query parameter \"%.*s\" in the import URI.",
                                 (int) klen, s);
                        erase_and_free(value);
                        return NULL;
                }
                erase_and_free(*slot);
                *slot = value;
                s = amp ? amp + 1 : end;
        }
        /* A kmip cluster (hold your own key) has no master secret in clear: its import URI has neither
         * masterSecret nor masterSecretSalt (the configuration's kmip supplies the rest). */
        const char *missing = !kubeconfig_b64 ? "kubeConfig" : !endpoint ? "clusterEndpoint"
                              : !master && salt                          ? "masterSecret"
                              : master && !salt                          ? "masterSecretSalt"
                                                                         : NULL;
        if (missing) {
                tf_error(d, NULL, "Invalid import ID", "The import URI lacks the %s parameter.", missing);
                return NULL;
        }
        uint8_t buf[32];
        CLEANUP_ERASE(buf);
        if (master && (hex_decode_exact(master, buf, sizeof(buf)) < 0 || hex_decode_exact(salt, buf, sizeof(buf)) < 0)) {
                tf_error(d, NULL, "Invalid import ID",
                         "masterSecret and masterSecretSalt must each be 64 hexadecimal characters.");
                return NULL;
        }
        _cleanup_free_ uint8_t *kubeconfig = NULL;
        size_t klen;
        if (base64_decode(kubeconfig_b64, strlen(kubeconfig_b64), BASE64_STD, &kubeconfig, &klen) < 0 &&
            base64_decode(kubeconfig_b64, strlen(kubeconfig_b64), BASE64_URL, &kubeconfig, &klen) < 0) {
                tf_error(d, NULL, "Invalid import ID", "kubeConfig must be the base64 encoding of a kubeconfig file.");
                return NULL;
        }

        cty_value *kc = cty_string_newn((const char *) kubeconfig, klen);
        erase_memory(kubeconfig, klen); /* the copy in state is the only one kept */
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(cluster_attrs);
        _cleanup_(cty_value_freep) cty_value *v = cty_object_new(t);
        if (!v || !kc) {
                cty_value_free(kc);
                return NULL;
        }
        if (cty_object_set(v, "kubeconfig", kc) < 0 || cty_object_set(v, "out_of_cluster_endpoint", cty_string_new(endpoint)) < 0)
                return NULL;
        /* master_secret and its salt are write-only: the configuration supplies them at every apply,
         * so the ones in the import URI are only checked, never stored. */
        return TAKE_PTR(v);
}

const tf_resource_ops tf_resource_cluster = {
        .type_name = "constellation_cluster",
        .attrs = cluster_attrs,
        .description = "A Constellation cluster: initializes the first node over attested TLS and configures the "
                       "cluster's attestation, networking and microservices.",
        .validate = validate_cluster,
        .plan = plan_cluster,
        .create = create_cluster,
        .update = update_cluster,
        .read = read_cluster,
        .delete = delete_cluster,
        .import = import_cluster,
};
