/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-disk-mapper's parts (disk-mapper.h). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/process-util.h"
#include "crypto/hkdf.h"
#include "disk-mapper.h"
#include "joinclient/joinclient.h"
#include "kms/kms.h"
#include "recover.pb-c.h"
#include "rpc/rpc.h"
#include "service/service.h"

#define LAYER "recover"

const char *dm_state_disk_path(const char *csp) {
        static const struct {
                const char *csp, *path;
        } table[] = {
                { "qemu", "/dev/vdb" },
                { "openstack", "/dev/vdb" },
                { "gcp", "/dev/disk/by-id/google-state-disk" },
                { "azure", "/dev/disk/azure/scsi1/lun0" },
                { "aws", "/dev/sdb" },
        };
        if (!csp)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(csp, table[i].csp))
                        return table[i].path;
        return NULL;
}

void dm_keys_done(dm_keys *k) {
        if (!k)
                return;
        secret_free(k->disk_key);
        secret_free(k->measurement_secret);
        k->disk_key = k->measurement_secret = NULL;
}

/* ---- the recovery request ---------------------------------------------------------------- */

static bool uri_chars_ok(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

static int take_uri(const char *field, char *s, char **ret, ct_error *err) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0)
                return ct_error_set(err, -EBADMSG, LAYER, "request-invalid", "RecoverMessage.%s is empty", field);
        if (n > DM_URI_MAX)
                return ct_error_set(err, -EBADMSG, LAYER, "request-invalid", "RecoverMessage.%s is %zu bytes (at most %d)",
                                    field, n, DM_URI_MAX);
        if (!uri_chars_ok(s, n))
                return ct_error_set(err, -EBADMSG, LAYER, "request-invalid",
                                    "RecoverMessage.%s has characters outside printable ASCII", field);
        char *c = strdup(s);
        if (!c)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "%s", field);
        *ret = c;
        return 0;
}

int dm_recover_parse(const uint8_t *buf, size_t len, char **ret_kms_uri, char **ret_storage_uri, ct_error *err) {
        if (!buf && len > 0)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no buffer");
        if (len > DM_MAX_REQUEST)
                return ct_error_set(err, -EBADMSG, LAYER, "request-invalid", "RecoverMessage is %zu bytes (at most %d)",
                                    len, DM_MAX_REQUEST);
        Recoverproto__RecoverMessage *m = recoverproto__recover_message__unpack(NULL, len, buf);
        if (!m)
                return ct_error_set(err, -EBADMSG, LAYER, "request-invalid", "RecoverMessage does not decode");
        int r = 0;
        _cleanup_erase_free_ char *kmsu = NULL;
        _cleanup_erase_free_ char *storage = NULL;
        /* Fields 1 and 2 (state_disk_key, measurement_secret) were removed from the protocol: a
         * client that still sends keys directly is refused, not half-understood. */
        if (m->base.n_unknown_fields > 0) {
                r = ct_error_set(err, -EBADMSG, LAYER, "request-invalid",
                                 "RecoverMessage has unknown or removed field %u (only kms_uri = 3, storage_uri = 4)",
                                 m->base.unknown_fields[0].tag);
                goto out;
        }
        /* protobuf-c hands strings over as C strings: an embedded NUL would silently shorten a URI.
         * A message that does not re-pack to exactly its own bytes (embedded NUL, a field given
         * twice, non-minimal varints) is refused; Go's and protobuf-c's encoders both produce the
         * canonical form. */
        if (recoverproto__recover_message__get_packed_size(m) != len) {
                r = ct_error_set(err, -EBADMSG, LAYER, "request-invalid",
                                 "RecoverMessage is not canonically encoded (embedded NUL, repeated field, padding)");
                goto out;
        }
        r = take_uri("kms_uri", m->kms_uri, &kmsu, err);
        if (r >= 0)
                r = take_uri("storage_uri", m->storage_uri, &storage, err);
        if (r >= 0) {
                *ret_kms_uri = TAKE_PTR(kmsu);
                *ret_storage_uri = TAKE_PTR(storage);
        }
out:
        /* The unpacked strings hold the master secret: wipe before protobuf-c frees them. */
        if (m->kms_uri)
                erase_memory(m->kms_uri, strlen(m->kms_uri));
        if (m->storage_uri)
                erase_memory(m->storage_uri, strlen(m->storage_uri));
        for (unsigned i = 0; i < m->base.n_unknown_fields; i++)
                erase_memory(m->base.unknown_fields[i].data, m->base.unknown_fields[i].len);
        recoverproto__recover_message__free_unpacked(m, NULL);
        return r;
}

int dm_keys_from_kms(const char *kmsuri, const char *storage_uri, const char *uuid, dm_keys *ret, ct_error *err) {
        _cleanup_(kms_freep) kms *k = NULL;
        int r = kms_open(kmsuri, storage_uri, &k, err);
        if (r < 0)
                return r;
        dm_keys keys = { 0 };
        r = kms_get_data_key(k, uuid, DM_KEY_LENGTH, &keys.disk_key, err);
        if (r >= 0)
                r = kms_get_data_key(k, KDF_MEASUREMENT_SECRET_ID, DM_KEY_LENGTH, &keys.measurement_secret, err);
        if (r < 0) {
                dm_keys_done(&keys);
                return r;
        }
        *ret = keys;
        return 0;
}

int dm_rejoin_unsupported(void *userdata, const char *disk_uuid, dm_keys *ret, ct_error *err) {
        return ct_error_set(err, -EOPNOTSUPP, "rejoin", "not-implemented",
                            "no join endpoints (the node metadata names none)");
}

int dm_rejoin_join_service(void *userdata, const char *disk_uuid, dm_keys *ret, ct_error *err) {
        const dm_rejoin_config *c = userdata;
        joinclient_options opt = { .issuer = c->issuer, .handshake_timeout_ms = c->handshake_timeout_ms,
                                   .call_timeout_ms = c->call_timeout_ms };
        joinclient_rejoin_ticket t = { 0 };
        int r = joinclient_rejoin(c->endpoints, c->n_endpoints, &opt, disk_uuid, &t, err);
        if (r < 0)
                return r;
        *ret = (dm_keys){ .disk_key = TAKE_PTR(t.state_disk_key), .measurement_secret = TAKE_PTR(t.measurement_secret) };
        return 0;
}

/* ---- the unlock race --------------------------------------------------------------------- */

int dm_unlock_init(dm_unlock *u, luks_disk *disk, ct_error *err) {
        *u = (dm_unlock){ .disk = disk };
        int r = luks_uuid(disk, u->uuid, err);
        if (r < 0)
                return r;
        r = pthread_mutex_init(&u->lock, NULL);
        if (r != 0)
                return ct_error_set(err, -r, LAYER, "internal", "mutex: %s", strerror(r));
        return 0;
}

void dm_unlock_done(dm_unlock *u) {
        dm_keys_done(&u->keys);
        pthread_mutex_destroy(&u->lock);
}

int dm_unlock_offer(dm_unlock *u, dm_keys *keys, ct_error *err) {
        if (!keys || !keys->disk_key || !keys->measurement_secret)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "incomplete keys");
        pthread_mutex_lock(&u->lock);
        int r;
        if (u->done)
                r = ct_error_set(err, -EALREADY, LAYER, "already-unlocked", "the state disk was already unlocked");
        else
                r = luks_check_passphrase(u->disk, keys->disk_key, err);
        if (r >= 0) {
                u->keys = *keys;
                *keys = (dm_keys){ 0 };
                u->done = true;
        }
        pthread_mutex_unlock(&u->lock);
        return r;
}

void dm_unlock_notify(dm_unlock *u) {
        if (u->on_done)
                u->on_done(u->on_done_userdata);
}

void dm_recover_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        dm_unlock *u = userdata;
        ct_error err = CT_ERROR_INIT;
        _cleanup_erase_free_ char *kmsuri = NULL, *storage_uri = NULL;
        dm_keys keys = { 0 };
        int r = dm_recover_parse(req, len, &kmsuri, &storage_uri, &err);
        if (r >= 0)
                r = dm_keys_from_kms(kmsuri, storage_uri, u->uuid, &keys, &err);
        if (r >= 0)
                r = dm_unlock_offer(u, &keys, &err);
        dm_keys_done(&keys);
        if (r < 0) {
                (void) service_call_fail(call, &err);
                return;
        }
        log_info("recovery: the key from the KMS opens the state disk (keyslot %d)", LUKS_KEYSLOT);
        /* RecoverResponse is empty. Reply first, then stop the server: a stop requested before
         * the reply is queued cancels the call, and the operator would see UNAVAILABLE although
         * the key was taken. */
        (void) rpc_call_reply(call, "", 0);
        dm_unlock_notify(u);
}

int dm_cluster_id(const secret_t *measurement_secret, const nodestate *ns, uint8_t ret[32], ct_error *err) {
        int r = kdf_cluster_id(measurement_secret, ns->measurement_salt, NODESTATE_SALT_LEN, ret);
        if (r < 0)
                return ct_error_set(err, r, "disk-mapper", "cluster-id", "HKDF of the cluster ID failed");
        return 0;
}

/* ---- the file system ---------------------------------------------------------------------- */

int dm_make_filesystem(const char *device, ct_error *err) {
        /* -E nodiscard: dm-integrity without allow_discards refuses discards, and the wipe already
         * wrote every sector. -m 0: nothing on the state disk runs as an unprivileged user that the
         * reserve would protect root from. Constellation formats the same way (ext4, no options). */
        const char *const argv[] = { DM_MKFS, "-q", "-F", "-t", "ext4", "-m", "0", "-E", "nodiscard", "-L", "state", device,
                                     NULL };
        int sig = 0;
        int r = process_run(argv, DM_MKFS_TIMEOUT_MS, &sig);
        if (r == 0)
                return 0;
        if (r == -ETIMEDOUT)
                return ct_error_set(err, r, "disk-mapper", "mkfs-failed", "%s %s: no result in %d s", DM_MKFS, device,
                                    DM_MKFS_TIMEOUT_MS / 1000);
        if (r == -ECHILD)
                return ct_error_set(err, -EIO, "disk-mapper", "mkfs-failed", "%s %s: killed by signal %d", DM_MKFS, device,
                                    sig);
        if (r < 0)
                return ct_error_set(err, r, "disk-mapper", "mkfs-failed", "%s: %s", DM_MKFS, strerror(-r));
        return ct_error_set(err, -EIO, "disk-mapper", "mkfs-failed", "%s %s: exit status %d", DM_MKFS, device, r);
}

/* ---- runtime units ----------------------------------------------------------------------- */

char *dm_unit_escape_path(const char *path) {
        /* systemd-escape --path: trim slashes, "/" -> "-", [A-Za-z0-9:_.] kept (but a "." that starts
         * the name is escaped), everything else \xNN; "/" alone is "-". */
        while (*path == '/')
                path++;
        size_t n = strlen(path);
        while (n > 0 && path[n - 1] == '/')
                n--;
        if (n == 0)
                return strdup("-");
        char *out = malloc(n * 4 + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) path[i];
                if (c == '/') {
                        if (i > 0 && path[i - 1] == '/')
                                continue;
                        *o++ = '-';
                } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
                           c == '_' || (c == '.' && i > 0)) {
                        *o++ = (char) c;
                } else {
                        o += sprintf(o, "\\x%02x", c);
                }
        }
        *o = '\0';
        return out;
}

/* systemd unit files: values with spaces or quotes would need quoting; our paths are checked. */
static bool unit_path_ok(const char *p) {
        if (isempty(p) || p[0] != '/')
                return false;
        for (const char *c = p; *c; c++)
                if ((unsigned char) *c <= 0x20 || *c == '\'' || *c == '"' || *c == '\\' || *c == '%' || *c == 0x7f)
                        return false;
        return true;
}

static int write_unit(const char *dir, const char *name, const char *content, ct_error *err) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int r = write_file_atomic(path, content, strlen(content), 0644);
        if (r < 0)
                return ct_error_set(err, r, "disk-mapper", "unit-write", "%s: %s", path, strerror(-r));
        return 0;
}

static int link_unit(const char *dir, const char *wanting, const char *kind, const char *name, ct_error *err) {
        char d[512], link[1024], target[512];
        snprintf(d, sizeof d, "%s/%s.%s", dir, wanting, kind);
        if (mkdir(d, 0755) < 0 && errno != EEXIST)
                return ct_error_set(err, -errno, "disk-mapper", "unit-write", "%s: %s", d, strerror(errno));
        snprintf(link, sizeof link, "%s/%s", d, name);
        snprintf(target, sizeof target, "../%s", name);
        (void) unlink(link);
        if (symlink(target, link) < 0)
                return ct_error_set(err, -errno, "disk-mapper", "unit-write", "%s: %s", link, strerror(errno));
        return 0;
}

static const struct {
        const char *unit, *what, *where, *dir;
} binds[] = {
        { "var.mount", DM_STATE_MOUNT "/var", "/var", "var" },
        { "etc-kubernetes.mount", DM_STATE_MOUNT "/kubernetes", "/etc/kubernetes", "kubernetes" },
        { "etc-cni.mount", DM_STATE_MOUNT "/etccni", "/etc/cni", "etccni" },
        { "opt.mount", DM_STATE_MOUNT "/opt", "/opt", "opt" },
};

int dm_write_units(const char *unit_dir, const char *disk_path, const char *keyfile, ct_error *err) {
        if (!unit_path_ok(disk_path) || !unit_path_ok(keyfile) || isempty(unit_dir))
                return ct_error_set(err, -EINVAL, "disk-mapper", "unit-write",
                                    "disk and keyfile paths must be absolute, without spaces, quotes, %% or backslashes");
        if (mkdir(unit_dir, 0755) < 0 && errno != EEXIST)
                return ct_error_set(err, -errno, "disk-mapper", "unit-write", "%s: %s", unit_dir, strerror(errno));
        _cleanup_free_ char *dev = dm_unit_escape_path(disk_path);
        if (!dev)
                return ct_error_set(err, -ENOMEM, "disk-mapper", "oom", "unit name");
        _cleanup_free_ char *crypt = NULL;
        /* As systemd-cryptsetup-generator writes it and Constellation's disk-mapper generates it. */
        if (asprintf(&crypt,
                     "# Generated by constellation-disk-mapper: attach the state disk after the root switch.\n"
                     "[Unit]\n"
                     "Description=Cryptography Setup for %%I\n"
                     "Documentation=man:systemd-cryptsetup@.service(8)\n"
                     "DefaultDependencies=no\n"
                     "IgnoreOnIsolate=true\n"
                     "After=cryptsetup-pre.target systemd-udevd-kernel.socket\n"
                     "Before=blockdev@dev-mapper-%%i.target\n"
                     "Wants=blockdev@dev-mapper-%%i.target\n"
                     "Conflicts=umount.target\n"
                     "Before=cryptsetup.target\n"
                     "BindsTo=%s.device\n"
                     "After=%s.device\n"
                     "Before=umount.target\n"
                     "\n"
                     "[Service]\n"
                     "Type=oneshot\n"
                     "RemainAfterExit=yes\n"
                     "TimeoutSec=0\n"
                     "KeyringMode=shared\n"
                     "OOMScoreAdjust=500\n"
                     "ExecStart=/usr/lib/systemd/systemd-cryptsetup attach '%s' '%s' '%s' "
                     "'cipher=aes-xts-plain64,integrity=hmac-sha256'\n"
                     "ExecStop=/usr/lib/systemd/systemd-cryptsetup detach '%s'\n",
                     dev, dev, LUKS_STATE_MAPPER_NAME, disk_path, keyfile, LUKS_STATE_MAPPER_NAME) < 0)
                return ct_error_set(err, -ENOMEM, "disk-mapper", "oom", "unit");
        int r = write_unit(unit_dir, "systemd-cryptsetup@state.service", crypt, err);
        if (r >= 0)
                r = link_unit(unit_dir, "dev-mapper-state.device", "requires", "systemd-cryptsetup@state.service", err);
        if (r >= 0)
                r = link_unit(unit_dir, "cryptsetup.target", "requires", "systemd-cryptsetup@state.service", err);
        if (r < 0)
                return r;
        /* As systemd-cryptsetup-generator: no start timeout for the mapped device. Its job starts at
         * the root switch and waits for systemd-cryptsetup (argon2id, dm-integrity), which took longer
         * than the default 90 s in a loaded TCG guest (test/node-guest): everything on the disk failed. */
        char dropin[512];
        snprintf(dropin, sizeof dropin, "%s/dev-mapper-%s.device.d", unit_dir, LUKS_STATE_MAPPER_NAME);
        if (mkdir(dropin, 0755) < 0 && errno != EEXIST)
                return ct_error_set(err, -errno, "disk-mapper", "unit-write", "%s: %s", dropin, strerror(errno));
        r = write_unit(unit_dir, "dev-mapper-state.device.d/40-device-timeout.conf",
                       "# Generated by constellation-disk-mapper (as systemd-cryptsetup-generator).\n"
                       "[Unit]\nJobTimeoutSec=infinity\n",
                       err);
        if (r < 0)
                return r;

        static const char state_mount[] =
                "# Generated by constellation-disk-mapper (fstab: /dev/mapper/state /run/state ext4 defaults).\n"
                "[Unit]\n"
                "Description=Constellation state disk\n"
                "DefaultDependencies=no\n"
                "Requires=systemd-cryptsetup@state.service\n"
                "After=systemd-cryptsetup@state.service\n"
                "Before=local-fs.target umount.target\n"
                "Conflicts=umount.target\n"
                "\n"
                "[Mount]\n"
                "What=/dev/mapper/state\n"
                "Where=" DM_STATE_MOUNT "\n"
                "Type=ext4\n"
                "Options=defaults\n";
        r = write_unit(unit_dir, "run-state.mount", state_mount, err);
        if (r >= 0)
                r = link_unit(unit_dir, "local-fs.target", "requires", "run-state.mount", err);
        if (r < 0)
                return r;

        _cleanup_free_ char *dirs = NULL;
        if (asprintf(&dirs,
                     "# Generated by constellation-disk-mapper: the bind sources on the state disk.\n"
                     "[Unit]\n"
                     "Description=Constellation state disk directories\n"
                     "DefaultDependencies=no\n"
                     "Requires=run-state.mount\n"
                     "After=run-state.mount\n"
                     "\n"
                     "[Service]\n"
                     "Type=oneshot\n"
                     "RemainAfterExit=yes\n"
                     "ExecStart=/bin/mkdir -p " DM_STATE_MOUNT "/%s " DM_STATE_MOUNT "/%s " DM_STATE_MOUNT
                     "/%s " DM_STATE_MOUNT "/%s\n",
                     binds[0].dir, binds[1].dir, binds[2].dir, binds[3].dir) < 0)
                return ct_error_set(err, -ENOMEM, "disk-mapper", "oom", "unit");
        r = write_unit(unit_dir, "constellation-state-dirs.service", dirs, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(binds); i++) {
                _cleanup_free_ char *m = NULL;
                if (asprintf(&m,
                             "# Generated by constellation-disk-mapper (fstab: %s %s none defaults,bind).\n"
                             "[Unit]\n"
                             "Description=Bind %s to %s\n"
                             "DefaultDependencies=no\n"
                             "Requires=run-state.mount constellation-state-dirs.service\n"
                             "After=run-state.mount constellation-state-dirs.service\n"
                             "Before=local-fs.target umount.target\n"
                             "Conflicts=umount.target\n"
                             "\n"
                             "[Mount]\n"
                             "What=%s\n"
                             "Where=%s\n"
                             "Type=none\n"
                             "Options=bind\n",
                             binds[i].what, binds[i].where, binds[i].what, binds[i].where, binds[i].what,
                             binds[i].where) < 0)
                        return ct_error_set(err, -ENOMEM, "disk-mapper", "oom", "unit");
                r = write_unit(unit_dir, binds[i].unit, m, err);
                if (r >= 0)
                        r = link_unit(unit_dir, "local-fs.target", "requires", binds[i].unit, err);
                if (r < 0)
                        return r;
        }
        return 0;
}
