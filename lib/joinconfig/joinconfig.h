/* SPDX-License-Identifier: Apache-2.0 */
/* The join service's attestation configuration and measurement salt (docs/node.md "constellation-joinservice"):
 *
 *   attestationConfig   Constellation's format for the qemu-vtpm variant,
 *                       {"measurements":{"4":{"expected":"<hex>","warnOnly":false},...}}
 *                       (written by the bootstrapper at init: the measurements the cluster was
 *                       initialised with), or an accepted signed update (below) that replaced it
 *   measurementSalt     the 32 raw bytes of the cluster's measurement salt
 *
 * PCR 15 must be zero for a joiner (reference constellation.md §5.4: only a node that was never
 * bound to a cluster may join): joinconfig adds PCR 15 = 0^32, enforced, when a configuration omits
 * it, turns a warn-only zero PCR 15 into an enforced one, and refuses a configuration that expects
 * any other PCR 15 value ("pcr15-invalid").
 *
 * Signed updates (issue 8 item 5, attestation config changes without Kubernetes): a JSON document
 *   {"version":N,"measurements":{...},"signature":"<base64 HMAC-SHA256>"}
 * N in 1..2^53-1, the signature over the canonical encoding (joinconfig_update_canonical) with the key
 * HKDF(master secret, salt, "key-attestationConfigSigning") (a KMS data key "attestationConfigSigning",
 * 32 bytes: whoever holds the master secret can sign; the join service fetches the key from the key
 * service). An update is accepted only if it verifies and N is greater than the version in force
 * (the init configuration is version 0): a captured older update cannot roll the cluster back.
 *
 * The store is an interface (joinconfig_store): the control planes' shared etcd (lib/etcd, keys
 * under /constellation/joinservice/, docs/node.md "The shared store") on a node, or a directory
 * (host tests, a service run by hand without etcd). Updates are compare-and-swap: an update is saved
 * only if the stored configuration is still the one it was verified against (the etcd
 * mod_revision), so two control planes accepting different updates at once cannot silently
 * overwrite each other; the loser reloads what the winner stored and verifies again.
 *
 * Errors: negative errno + ct_error, layer "joinconfig", reasons:
 *   io, too-large, json-invalid, unknown-key, missing-key, measurements-invalid, pcr15-invalid,
 *   salt-invalid, version-invalid, signature-missing, signature-invalid, version-rollback,
 *   update-conflict (the store changed under every attempt), and the store's own (etcd: ...). */
#pragma once

#include <stdint.h>

#include "basic/error.h"
#include "basic/secret.h"
#include "measurements/measurements.h"

#define JOINCONFIG_ATTESTATION_CONFIG "attestationConfig"
#define JOINCONFIG_MEASUREMENT_SALT "measurementSalt"
#define JOINCONFIG_DEFAULT_DIR "/var/config"
#define JOINCONFIG_MAX_SIZE (64u * 1024)
#define JOINCONFIG_SALT_LEN 32
#define JOINCONFIG_SIGNING_KEY_ID "attestationConfigSigning" /* KMS data key; info "key-attestationConfigSigning" */
#define JOINCONFIG_SIGNING_KEY_LEN 32
#define JOINCONFIG_MAC_LEN 32
#define JOINCONFIG_MAX_VERSION ((UINT64_C(1) << 53) - 1) /* exact in every JSON reader */
#define JOINCONFIG_PCR15 15u

/* Where the two objects live. A backend implements load and save of a named object:
 *   load  -ENOENT if the object does not exist; *ret_revision its revision (etcd's mod_revision,
 *         > 0; a directory has none: 0)
 *   save  replaces the object only if its revision is still expected_revision (0: only if it does
 *         not exist; JOINCONFIG_REVISION_ANY: unconditionally), else -ESTALE; *ret_revision (may be
 *         NULL) the new revision. The directory store has one writer (its service) and ignores
 *         expected_revision. */
#define JOINCONFIG_REVISION_ANY (-1)
typedef struct joinconfig_store {
        int (*load)(void *userdata, const char *name, size_t max_size, uint8_t **ret, size_t *ret_len,
                    int64_t *ret_revision, ct_error *err);
        int (*save)(void *userdata, const char *name, const uint8_t *data, size_t len, int64_t expected_revision,
                    int64_t *ret_revision, ct_error *err);
        void *userdata;
} joinconfig_store;

/* Files in a directory (userdata = the directory path, which must outlive the store); save is
 * atomic (temp file + rename), mode 0600. */
joinconfig_store joinconfig_store_dir(const char *dir);

/* etcd (lib/etcd): the objects are the keys JOINCONFIG_ETCD_PREFIX<name>; save is etcd_cas (or
 * etcd_put for JOINCONFIG_REVISION_ANY). The client must outlive the store. */
#define JOINCONFIG_ETCD_PREFIX "/constellation/joinservice/"
struct etcd_client;
joinconfig_store joinconfig_store_etcd(struct etcd_client *client);

/* The configuration in force. */
typedef struct joinconfig {
        uint64_t version; /* 0: the configuration written at init */
        int64_t revision; /* the store's revision of attestationConfig (CAS) */
        measurements m;   /* every value 32 bytes; PCR 15 = 0, enforced */
        uint8_t salt[JOINCONFIG_SALT_LEN];
} joinconfig;

/* Parses Constellation's attestation configuration ({"measurements":{...}}, exactly that key) and
 * applies the PCR 15 rule. Every measurement must be 32 bytes (qemu-vtpm SHA-256 PCRs). */
int joinconfig_parse_attestation(const uint8_t *buf, size_t len, measurements *ret, ct_error *err);

/* Adds or checks PCR 15 (see above); exported for the CLI and the tests. */
int joinconfig_require_pcr15_zero(measurements *m, ct_error *err);

/* The bytes the HMAC covers: "constellation-attestation-config-update-v1" NUL, version (8 bytes big
 * endian), count (1 byte), then per measurement in index order: index (4 bytes BE), warnOnly (1 byte),
 * length (1 byte), expected value. */
int joinconfig_update_canonical(const measurements *m, uint64_t version, uint8_t **ret, size_t *ret_len);

/* Signs: the update document (JSON, NUL-terminated, caller frees). m is checked as the service
 * would (PCR 15 rule applied to the signed content). */
int joinconfig_update_sign(const measurements *m, uint64_t version, const secret_t *key, char **ret_json,
                           ct_error *err);

/* Verifies an update document: shape, measurements, signature (constant-time), then version >
 * current_version. On success fills *ret_m and *ret_version. */
int joinconfig_update_verify(const uint8_t *doc, size_t len, const secret_t *key, uint64_t current_version,
                             measurements *ret_m, uint64_t *ret_version, ct_error *err);

/* Loads the configuration in force from the store: the salt (exactly 32 bytes) and the attestation
 * configuration, either the init form (version 0) or a signed update (verified with key; a signed
 * document that does not verify is refused). key may be NULL only if the store holds the init form. */
int joinconfig_load(const joinconfig_store *store, const secret_t *key, joinconfig *ret, ct_error *err);

/* Verifies an update against cfg (version in force) and saves it to the store as the attestation
 * configuration if the store still holds cfg->revision (compare-and-swap); on success updates cfg.
 * If another writer changed the store first, the configuration in the store is loaded into *cfg
 * (it is the one in force now: the caller enforces *cfg whatever the result) and the update is
 * verified against it again (a version not newer is "version-rollback"), at most 3 times
 * ("update-conflict"). *ret_refreshed (may be NULL) says whether *cfg changed. */
int joinconfig_apply_update(const joinconfig_store *store, const secret_t *key, joinconfig *cfg, const uint8_t *doc,
                            size_t len, bool *ret_refreshed, ct_error *err);

/* Reloads the configuration from the store if its revision differs from cfg->revision and it is
 * newer (version greater) than cfg's; *ret_changed says whether *cfg was replaced. A store whose
 * configuration is not newer is left alone (an older one is "version-rollback"). */
int joinconfig_refresh(const joinconfig_store *store, const secret_t *key, joinconfig *cfg, bool *ret_changed,
                       ct_error *err);

/* Stores the init configuration (the bootstrapper after Init): the salt and the attestation
 * configuration, each only if absent (a restart never replaces a signed update). */
int joinconfig_store_init(const joinconfig_store *store, const uint8_t *attestation, size_t attestation_len,
                          const uint8_t salt[static JOINCONFIG_SALT_LEN], ct_error *err);
