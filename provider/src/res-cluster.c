/* SPDX-License-Identifier: Apache-2.0 */
/* constellation_cluster: Constellation's complete schema (reference constellation.md §1.3).
 *
 * Differences from Constellation's provider, on purpose:
 *  - master_secret, master_secret_salt, measurement_salt, init_secret and gcp.service_account_key
 *    are sensitive AND write-only: Terraform (>= 1.11) hands them to the provider from the
 *    configuration at every apply and never stores them in plan or state files. Constellation kept
 *    them in state in clear; UpgradeResourceState drops them from such state.
 *  - Create and Update need the node services (init over attested TLS), which come with a later
 *    release of this provider; until then they fail with a diagnostic that says so. Read keeps the
 *    state (Constellation's Read is a no-op too) and Delete only drops it. */
#include <stdio.h>

#include "basic/encoding.h"
#include "basic/secret.h"
#include "image-common.h"
#include "provider.h"
#include "validators.h"

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
        { .name = "master_secret", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Master secret (64 hex characters), from which all cluster keys are derived. Write-only: "
                         "never stored in state.",
          .validate = tf_validate_hex64 },
        { .name = "master_secret_salt", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Salt for key derivation (64 hex characters). Write-only.", .validate = tf_validate_hex64 },
        { .name = "measurement_salt", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Salt for the cluster ID (64 hex characters). Write-only.", .validate = tf_validate_hex64 },
        { .name = "init_secret", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Secret that authorizes the init request to the first node. Write-only." },
        { .name = "license_id", .kind = CTY_STRING, .mode = TF_OPTIONAL, .description = "Constellation license ID." },
        { .name = "attestation", .nesting = TF_NEST_SINGLE, .nested = tf_attestation_attrs_input, .mode = TF_REQUIRED,
          .description = "Attestation configuration (from `constellation_attestation`)." },
        { .name = "gcp", .nesting = TF_NEST_SINGLE, .nested = gcp_attrs, .mode = TF_OPTIONAL,
          .description = "GCP settings (required if csp is gcp)." },
        { .name = "azure", .nesting = TF_NEST_SINGLE, .nested = azure_attrs, .mode = TF_OPTIONAL,
          .description = "Azure settings (required if csp is azure)." },
        { .name = "openstack", .nesting = TF_NEST_SINGLE, .nested = openstack_attrs, .mode = TF_OPTIONAL,
          .description = "OpenStack settings (required if csp is openstack or stackit)." },
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

static void validate_cluster(const cty_value *config, tf_diags *d) {
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

static cty_value *create_cluster(tf_provider_state *p, const cty_value *planned, const cty_value *config,
                                 tf_diags *d) {
        tf_error(d, NULL, "Cluster creation is not available yet",
                 "Creating a cluster sends the init request to the first node over attested TLS (port 9000 of "
                 "out_of_cluster_endpoint). The node services that answer it come with a later release of this "
                 "provider. Validation, planning, import, refresh and destroy work today.");
        return NULL;
}

static cty_value *update_cluster(tf_provider_state *p, const cty_value *prior, const cty_value *planned,
                                 const cty_value *config, tf_diags *d) {
        tf_error(d, NULL, "Cluster update is not available yet",
                 "Updating a cluster talks to its nodes (join configuration, microservices), which comes with a "
                 "later release of this provider. The state is unchanged.");
        return cty_value_copy(prior);
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
        const char *missing = !kubeconfig_b64 ? "kubeConfig" : !endpoint ? "clusterEndpoint" : !master ? "masterSecret"
                                                              : !salt    ? "masterSecretSalt"
                                                                         : NULL;
        if (missing) {
                tf_error(d, NULL, "Invalid import ID", "The import URI lacks the %s parameter.", missing);
                return NULL;
        }
        uint8_t buf[32];
        CLEANUP_ERASE(buf);
        if (hex_decode_exact(master, buf, sizeof(buf)) < 0 || hex_decode_exact(salt, buf, sizeof(buf)) < 0) {
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
        .create = create_cluster,
        .update = update_cluster,
        .read = read_cluster,
        .delete = delete_cluster,
        .import = import_cluster,
};
