/* SPDX-License-Identifier: Apache-2.0 */
/* What the infrastructure tells a node about itself: its name, role, VPC address, the bcrypt hash of
 * the init secret and where to join. Constellation reads these from the cloud's metadata service
 * (on QEMU: GET /self, /initsecrethash of a host HTTP server, reference constellation.md §2.1/§4.5);
 * here the QEMU infrastructure hands each VM one JSON document through fw_cfg
 *   -fw_cfg name=opt/constellation/metadata,file=<json>
 * which the guest reads from METADATA_FW_CFG_PATH. No metadata server, container or host network.
 *
 * The infrastructure is untrusted: the document is parsed strictly (size cap, no duplicate or
 * unknown keys, every field checked for type, length and alphabet) and nothing in it is a secret
 * (the init secret hash is a bcrypt hash the owner chose to publish to the infrastructure).
 *
 * Document (UTF-8 JSON object, at most METADATA_MAX_SIZE bytes):
 *   "name"             string, required: Kubernetes node name (DNS-1123 subdomain, <= 253)
 *   "role"             string, required: "control-plane" | "worker"
 *   "vpc_ip"           string, required: the node's address inside the cluster network (IPv4/IPv6)
 *   "init_secret_hash" string, required for a control plane: bcrypt ("$2a$"/"$2b$"/"$2y$", cost
 *                      04..31, 60 characters), the hash Terraform stored for the cluster's init secret
 *   "join_endpoints"   array of "host:port" strings, optional (<= METADATA_MAX_JOIN_ENDPOINTS):
 *                      control-plane join services a worker (or a rejoining node) dials
 *   "control_plane_ips" array of IPv4/IPv6 strings, optional (<= METADATA_MAX_CONTROL_PLANES): every
 *                      control plane's vpc_ip (the address its etcd peers and join service use); a
 *                      join service issues control-plane files (and adds an etcd member) only to a
 *                      joiner whose certificate request carries one of them (docs/node.md)
 *   "uid"              string, optional: the infrastructure's cluster UID (names, tags; <= 64, [a-z0-9-])
 *   "endpoint"         string, optional: the cluster's out-of-cluster endpoint (host name, IPv4 or
 *                      IPv6 address, no port), put into
 *                      the admin kubeconfig instead of vpc_ip */
#pragma once

#include "basic/error.h"
#include "basic/macro.h"

#define METADATA_FW_CFG_PATH "/sys/firmware/qemu_fw_cfg/by_name/opt/constellation/metadata/raw"
/* Tests and non-QEMU setups point the reader elsewhere. */
#define METADATA_PATH_ENV "CONSTELLATION_METADATA_PATH"
#define METADATA_MAX_SIZE (64u * 1024)
#define METADATA_MAX_JOIN_ENDPOINTS 16u
#define METADATA_MAX_CONTROL_PLANES 128u
#define METADATA_NAME_MAX 253u
#define METADATA_BCRYPT_HASH_LEN 60u

typedef enum metadata_role {
        METADATA_ROLE_UNKNOWN = 0,
        METADATA_ROLE_CONTROL_PLANE,
        METADATA_ROLE_WORKER,
} metadata_role;

/* "control-plane" / "worker" / "unknown". */
const char *metadata_role_to_string(metadata_role role);

typedef struct metadata {
        char *name;
        metadata_role role;
        char *vpc_ip;
        char *init_secret_hash; /* NULL for a worker without one */
        char **join_endpoints;
        size_t n_join_endpoints;
        char **control_plane_ips; /* the infrastructure's control planes (vpc_ip each) */
        size_t n_control_plane_ips;
        char *uid;      /* NULL if absent */
        char *endpoint; /* NULL if absent */
} metadata;

/* Frees the members and zeroes *m. Accepts a zeroed or NULL metadata. */
void metadata_done(metadata *m);

/* Parses a document. On failure returns -EBADMSG (not JSON, wrong type/shape, a value out of its
 * alphabet), -EFBIG (over METADATA_MAX_SIZE) or -ENOMEM, with err (layer "metadata") naming the
 * field: reasons "too-large", "not-json", "not-object", "unknown-field", "missing-field",
 * "bad-field". *ret is touched only on success. */
int metadata_parse(const char *json, size_t len, metadata *ret, ct_error *err);

/* Reads and parses the document from path; path NULL: $CONSTELLATION_METADATA_PATH if set, else
 * METADATA_FW_CFG_PATH. Reasons as metadata_parse plus "unreadable" (-ENOENT, -EACCES, ...). */
int metadata_read(const char *path, metadata *ret, ct_error *err);

/* Field validators, shared with other parsers of outside names and addresses. */
bool metadata_valid_node_name(const char *s);
bool metadata_valid_ip(const char *s);
/* "host:port" with host a DNS name, IPv4 or [IPv6] and port 1..65535. */
bool metadata_valid_endpoint(const char *s);
bool metadata_valid_bcrypt_hash(const char *s);
/* ip is one of the document's control_plane_ips (exact string; NULL-safe). */
bool metadata_is_control_plane_ip(const metadata *m, const char *ip);
