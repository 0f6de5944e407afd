/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-disk-mapper's parts (Constellation disk-mapper, reference constellation.md §7), in
 * ct-disk-mapper so tests and fuzz/node-disk use them:
 *   - the state disk path per CSP;
 *   - the recovery request (recoverproto.RecoverMessage) and the keys it yields through lib/kms;
 *   - the race between the recovery server and the rejoin client (first valid key wins; a key is
 *     valid only if it opens keyslot 0, checked without activating anything);
 *   - the runtime systemd units that attach, make and mount the state disk after the root switch. */
#pragma once

#include <pthread.h>

#include "basic/error.h"
#include "basic/secret.h"
#include "luks/luks.h"
#include "nodestate/nodestate.h"

#define DM_RECOVER_METHOD "/recoverproto.API/Recover"
#define DM_RECOVERY_LISTEN "0.0.0.0:9999" /* constants.go RecoveryPort */
#define DM_URI_MAX 4096                   /* = KMS_MAX_URI */
#define DM_MAX_REQUEST (2 * DM_URI_MAX + 64)
#define DM_STATE_MOUNT "/run/state"
#define DM_NODESTATE_RELATIVE "constellation/node_state.json"
#define DM_UNIT_DIR "/run/systemd/system"
#define DM_KEY_LENGTH 32 /* StateDiskKeyLength, measurement secret */

/* Where the state disk is on a CSP (§7): qemu, openstack /dev/vdb; gcp
 * /dev/disk/by-id/google-state-disk; azure /dev/disk/azure/scsi1/lun0; aws /dev/sdb. NULL: unknown. */
const char *dm_state_disk_path(const char *csp);

/* The keys that unlock an existing disk. */
typedef struct dm_keys {
        secret_t *disk_key;           /* `key-<uuid>`, 32 bytes: the keyslot 0 passphrase */
        secret_t *measurement_secret; /* `key-measurementSecret`, 32 bytes */
} dm_keys;
void dm_keys_done(dm_keys *k);

/* Unpacks a RecoverMessage strictly: at most DM_MAX_REQUEST bytes, no unknown fields, both URIs
 * non-empty, at most DM_URI_MAX bytes, no NUL or control characters. The URIs carry the master
 * secret: they come back in wiped-on-free strings (erase_and_free) and never reach a log.
 * -EBADMSG `request-invalid` otherwise (layer "recover"). Fuzz target. */
int dm_recover_parse(const uint8_t *buf, size_t len, char **ret_kms_uri, char **ret_storage_uri, ct_error *err);

/* Opens the KMS (lib/kms) and derives the disk key for uuid and the measurement secret. */
int dm_keys_from_kms(const char *kms_uri, const char *storage_uri, const char *uuid, dm_keys *ret, ct_error *err);

/* The rejoin client seam (Constellation's rejoinclient: IssueRejoinTicket to the join service;
 * issue 8). Returns 0 with keys, or a negative errno; -EOPNOTSUPP means "not available": the race
 * then waits for the recovery server alone. */
typedef struct dm_rejoin_ops {
        int (*rejoin)(void *userdata, const char *disk_uuid, dm_keys *ret, ct_error *err);
        void *userdata;
} dm_rejoin_ops;
/* The seam without join endpoints (no metadata): -EOPNOTSUPP, reason `not-implemented`. */
int dm_rejoin_unsupported(void *userdata, const char *disk_uuid, dm_keys *ret, ct_error *err);

/* The rejoin client (lib/joinclient): one IssueRejoinTicket{disk_uuid} round over the join
 * endpoints (aTLS, the node attests with `issuer`), the first answer wins. userdata = the config. */
typedef struct dm_rejoin_config {
        const char *const *endpoints; /* "host:port", from the metadata's join_endpoints */
        size_t n_endpoints;
        const struct atls_issuer *issuer;
        int64_t handshake_timeout_ms; /* 0: 30 s */
        int64_t call_timeout_ms;      /* 0: 30 s (Constellation's rejoin client) */
} dm_rejoin_config;
int dm_rejoin_join_service(void *userdata, const char *disk_uuid, dm_keys *ret, ct_error *err);

/* The state shared by the recovery handler and the rejoin thread: the first keys that open
 * keyslot 0 win and are kept; later offers get -EALREADY `already-unlocked`. */
typedef struct dm_unlock {
        pthread_mutex_t lock;
        luks_disk *disk; /* borrowed */
        char uuid[LUKS_UUID_STRING_MAX];
        bool done;
        dm_keys keys;
        void (*on_done)(void *userdata); /* dm_unlock_notify(): the winner calls it once it is done */
        void *on_done_userdata;
} dm_unlock;
int dm_unlock_init(dm_unlock *u, luks_disk *disk, ct_error *err);
void dm_unlock_done(dm_unlock *u);
/* Checks keys->disk_key against keyslot 0 (no activation); on success takes the keys (*keys is
 * emptied). A wrong key: -EPERM `wrong-key` (layer "luks"), the disk untouched. */
int dm_unlock_offer(dm_unlock *u, dm_keys *keys, ct_error *err);
/* Calls on_done: the winner of dm_unlock_offer calls this after it finished its side (the recovery
 * handler after its reply is queued, so stopping the server cannot cancel the answer). */
void dm_unlock_notify(dm_unlock *u);
/* The /recoverproto.API/Recover handler (userdata = dm_unlock*): parse, KMS, offer, reply; a
 * failure goes back as a gRPC status with its reason (wrong key: PERMISSION_DENIED). */
struct rpc_call;
void dm_recover_handler(struct rpc_call *call, const uint8_t *req, size_t len, void *userdata);

/* cluster ID = HKDF(measurement secret, node_state.json MeasurementSalt, "key-clusterID"). */
int dm_cluster_id(const secret_t *measurement_secret, const nodestate *ns, uint8_t ret[32], ct_error *err);

/* systemd unit name escaping of a path (systemd-escape --path): "/dev/vdb" -> "dev-vdb". */
char *dm_unit_escape_path(const char *path);

/* ext4 on the freshly formatted, activated state disk (`DM_MKFS`), in the initrd, before the root
 * switch. Not on first use after it (x-systemd.makefs): systemd's 99-systemd.rules keep a
 * CRYPT-* device mapper device without a file system SYSTEMD_READY=0 ("we are probably still
 * calling mke2fs"), so dev-mapper-state.device never became active, and systemd-makefs, which
 * waits for that device, never ran (docs/node.md, "the state disk in the real root").
 * -EIO/-ETIMEDOUT `mkfs-failed` with the exit status or signal. */
#define DM_MKFS "/usr/sbin/mkfs.ext4"
#define DM_MKFS_TIMEOUT_MS (10 * 60 * 1000) /* a TCG guest writes the inode tables slowly */
int dm_make_filesystem(const char *device, ct_error *err);

/* Writes into unit_dir (DM_UNIT_DIR in the initrd; /run survives the root switch):
 *   systemd-cryptsetup@state.service (attach `state` <disk> <keyfile>
 *     'cipher=aes-xts-plain64,integrity=hmac-sha256', as Constellation generates it) and its
 *     requires-symlinks from dev-mapper-state.device and cryptsetup.target;
 *   run-state.mount (the file system dm_make_filesystem made),
 *     constellation-state-dirs.service, and the bind mounts /run/state/var -> /var,
 *     /run/state/kubernetes -> /etc/kubernetes, /run/state/etccni -> /etc/cni, /run/state/opt -> /opt,
 *     each required by local-fs.target: the equivalent of Constellation's fstab lines
 *     (docs/node.md says why units and not fstab). Files 0644, written atomically. */
int dm_write_units(const char *unit_dir, const char *disk_path, const char *keyfile, ct_error *err);
