/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-disk-mapper: Constellation's prepare-state-disk in the initrd (reference
 * constellation.md §7).
 *
 *   blank or new state disk  -> LUKS2 format (lib/luks), random passphrase in the keyfile, activate
 *                               as `state`, runtime units that attach, mkfs and mount it after the
 *                               root switch; the bootstrapper re-keys it at init/join.
 *   initialized state disk    -> recovery server on :9999 (aTLS, the node attests with qemu-vtpm)
 *                               racing the rejoin client; the first key that opens keyslot 0 wins;
 *                               then activate, read node_state.json (read-only mount), cluster ID
 *                               = HKDF(measurement secret, salt), PCR 15 (tpm_mark_bootstrapped),
 *                               keyfile + units.
 *   anything else             -> exit 1 with the reason (the unit reboots; docs/node.md).
 *
 * --host-test (HOST TESTS ONLY; the host has no device-mapper): the unlock stops at the check that
 * the key opens keyslot 0 (no activation, no mount), node_state.json is read from --state-dir, a
 * new disk is not wiped. Everything else (aTLS, KMS, PCR 15, keyfile, units) runs as in the guest. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include "basic/log.h"
#include "atls/qemu-vtpm.h"
#include "disk-mapper.h"
#include "metadata/metadata.h"
#include "service/service.h"
#include "tpm/tpm.h"

#define DISK_WAIT_SECONDS 120
#define REJOIN_INTERVAL_SECONDS 30

static const char *arg_disk, *arg_csp, *arg_keyfile = LUKS_STATE_KEYFILE, *arg_unit_dir = DM_UNIT_DIR,
                                         *arg_state_dir, *arg_metadata, *arg_rejoin_interval;
static bool arg_host_test;

static const service_option options[] = {
        { "disk", "PATH", "state disk (default: the CSP's, see --csp)", &arg_disk, NULL, false },
        { "csp", "NAME", "qemu, openstack, gcp, azure, aws (default $CONSTEL_CSP, else qemu)", &arg_csp, NULL, false },
        { "keyfile", "PATH", "state disk keyfile (default " LUKS_STATE_KEYFILE ")", &arg_keyfile, NULL, false },
        { "unit-dir", "DIR", "where the runtime units go (default " DM_UNIT_DIR ")", &arg_unit_dir, NULL, false },
        { "host-test", NULL, "HOST TESTS ONLY: check the keyslot instead of activating, no mount, no wipe", NULL,
          &arg_host_test, false },
        { "state-dir", "DIR", "HOST TESTS ONLY (with --host-test): directory holding " DM_NODESTATE_RELATIVE,
          &arg_state_dir, NULL, false },
        { "metadata", "PATH", "node metadata with the join endpoints (default $" METADATA_PATH_ENV " or fw_cfg)",
          &arg_metadata, NULL, false },
        { "rejoin-interval", "SECONDS", "between rejoin rounds (default 30)", &arg_rejoin_interval, NULL, false },
};

static const service_info info = {
        .name = "constellation-disk-mapper",
        .summary = "Prepares the encrypted state disk in the initrd (format a new one, or unlock an existing one "
                   "through recovery or rejoin).",
        .default_listen = DM_RECOVERY_LISTEN,
        .options = options,
        .n_options = ELEMENTSOF(options),
        .atls = true,
        .max_message = DM_MAX_REQUEST,
};

static char errbuf[CT_ERROR_DETAIL_MAX + 128];
#define ERR(e) ct_error_format((e), errbuf, sizeof errbuf)

/* The disk may appear after we start (udev in the initrd): wait for it, then resolve symlinks. */
static int find_disk(const char *path, char **ret) {
        for (int i = 0; i < DISK_WAIT_SECONDS * 2; i++) {
                char *real = realpath(path, NULL);
                if (real) {
                        *ret = real;
                        return 0;
                }
                if (errno != ENOENT)
                        return log_error_errno(-errno, "state disk %s", path);
                if (i == 0)
                        log_info("waiting up to %d s for the state disk %s", DISK_WAIT_SECONDS, path);
                struct timespec ts = { 0, 500 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        log_error("state disk %s did not appear within %d s", path, DISK_WAIT_SECONDS);
        return -ENOENT;
}

static int prepare_new_disk(luks_disk *d, luks_state st) {
        ct_error err = CT_ERROR_INIT;
        log_info("%s: %s state disk: formatting LUKS2 (aes-xts-plain64, hmac(sha256), 4096-byte sectors)",
                 luks_path(d), luks_state_to_string(st));
        luks_format_options opts = { .pbkdf = LUKS_PBKDF_CONSTELLATION, .wipe = !arg_host_test };
        _cleanup_secret_ secret_t *pass = NULL;
        if (luks_format_new(d, &opts, arg_keyfile, &pass, &err) < 0) {
                log_error("format: %s", ERR(&err));
                return -EIO;
        }
        int r = arg_host_test ? luks_check_passphrase(d, pass, &err) : luks_activate(d, LUKS_STATE_MAPPER_NAME, pass, &err);
        if (r < 0) {
                log_error("%s: %s", arg_host_test ? "check" : "activate", ERR(&err));
                return r;
        }
        if (!arg_host_test) {
                log_info("making the ext4 file system on /dev/mapper/%s", LUKS_STATE_MAPPER_NAME);
                if (dm_make_filesystem("/dev/mapper/" LUKS_STATE_MAPPER_NAME, &err) < 0) {
                        /* The token still says "not initialized": the next boot formats again. */
                        log_error("%s", ERR(&err));
                        return -EIO;
                }
        }
        if (dm_write_units(arg_unit_dir, luks_path(d), arg_keyfile, &err) < 0) {
                log_error("units: %s", ERR(&err));
                return -EIO;
        }
        log_info("state disk formatted%s; keyfile %s, units in %s", arg_host_test ? " (host test: not activated)" : " and mapped as /dev/mapper/state",
                 arg_keyfile, arg_unit_dir);
        return 0;
}

/* ---- existing disk: recovery server racing the rejoin client ---------------------------- */

typedef struct rejoin_ctx {
        dm_unlock *unlock;
        const dm_rejoin_ops *ops;
        int interval_s;
        atomic_bool stop;
} rejoin_ctx;

static void *rejoin_thread(void *p) {
        rejoin_ctx *c = p;
        while (!atomic_load(&c->stop)) {
                ct_error err = CT_ERROR_INIT;
                dm_keys keys = { 0 };
                int r = c->ops->rejoin(c->ops->userdata, c->unlock->uuid, &keys, &err);
                if (r >= 0) {
                        r = dm_unlock_offer(c->unlock, &keys, &err);
                        dm_keys_done(&keys);
                        if (r >= 0) {
                                log_info("rejoin: the ticket's key opens the state disk");
                                dm_unlock_notify(c->unlock);
                                break;
                        }
                        if (r == -EALREADY)
                                break;
                        log_warn("rejoin: %s", ERR(&err));
                } else if (r == -EOPNOTSUPP) {
                        log_info("rejoin: %s; waiting for recovery alone", ERR(&err));
                        break;
                } else
                        log_warn("rejoin: %s; retrying in %d s", ERR(&err), c->interval_s);
                for (int i = 0; i < c->interval_s * 10 && !atomic_load(&c->stop); i++) {
                        struct timespec ts = { 0, 100 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
        return NULL;
}

/* Stopping the service tears down the aTLS relays at once (atls_listener_free), which can drop a
 * reply that gRPC already wrote but the relay has not yet forwarded: the operator would see
 * UNAVAILABLE although the key was taken. So the stop lingers a moment after the winning reply
 * (recovery happens once per boot; the client closes its side within milliseconds). Reported to
 * lib/atls: draining relays on listener shutdown would make this unnecessary. */
#define STOP_LINGER_MS 1500

static void *delayed_stop(void *userdata) {
        struct timespec ts = { STOP_LINGER_MS / 1000, (STOP_LINGER_MS % 1000) * 1000 * 1000 };
        nanosleep(&ts, NULL);
        service_request_stop(userdata);
        return NULL;
}

static void stop_service(void *userdata) {
        pthread_t t;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) == 0 && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
            pthread_create(&t, &attr, delayed_stop, userdata) == 0) {
                pthread_attr_destroy(&attr);
                return;
        }
        service_request_stop(userdata); /* no thread: stop now rather than never */
}

static int read_node_state(luks_disk *d, const secret_t *disk_key, nodestate *ret) {
        ct_error err = CT_ERROR_INIT;
        const char *dir = arg_host_test ? arg_state_dir : DM_STATE_MOUNT;
        if (!arg_host_test) {
                if (luks_activate(d, LUKS_STATE_MAPPER_NAME, disk_key, &err) < 0) {
                        log_error("activate: %s", ERR(&err));
                        return -EIO;
                }
                if (mkdir(DM_STATE_MOUNT, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(-errno, "mkdir %s", DM_STATE_MOUNT);
                if (mount("/dev/mapper/" LUKS_STATE_MAPPER_NAME, DM_STATE_MOUNT, "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          NULL) < 0)
                        return log_error_errno(-errno, "mount /dev/mapper/state read-only on %s", DM_STATE_MOUNT);
        }
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, DM_NODESTATE_RELATIVE);
        int r = nodestate_read(path, ret, &err);
        if (!arg_host_test && umount(DM_STATE_MOUNT) < 0)
                log_warn_errno(-errno, "umount %s", DM_STATE_MOUNT);
        if (r < 0) {
                log_error("node state: %s", ERR(&err));
                return r;
        }
        return 0;
}

static int prepare_existing_disk(service *s, luks_disk *d, int interval) {
        ct_error err = CT_ERROR_INIT;
        dm_unlock u;
        if (dm_unlock_init(&u, d, &err) < 0) {
                log_error("state disk: %s", ERR(&err));
                return -EIO;
        }
        u.on_done = stop_service;
        u.on_done_userdata = s;
        int r = service_register(s, DM_RECOVER_METHOD, dm_recover_handler, &u);
        if (r >= 0)
                r = service_start(s);
        if (r < 0) {
                dm_unlock_done(&u);
                return r;
        }
        /* The rejoin client: the join endpoints from the (untrusted) metadata; we attest, the join
         * service decides. Without endpoints the recovery server waits alone. */
        metadata md = { 0 };
        atls_issuer issuer = atls_qemu_vtpm_issuer(service_tpm(s));
        dm_rejoin_config rcfg = { .issuer = &issuer };
        dm_rejoin_ops rejoin = { .rejoin = dm_rejoin_unsupported };
        if (metadata_read(arg_metadata, &md, &err) < 0) {
                log_warn("rejoin: metadata: %s", ERR(&err));
                err = (ct_error) CT_ERROR_INIT;
        } else if (md.n_join_endpoints > 0) {
                rcfg.endpoints = (const char *const *) md.join_endpoints;
                rcfg.n_endpoints = md.n_join_endpoints;
                rejoin = (dm_rejoin_ops){ .rejoin = dm_rejoin_join_service, .userdata = &rcfg };
                log_info("rejoin: asking %zu join endpoint(s) (first: %s) every %d s", md.n_join_endpoints,
                         md.join_endpoints[0], interval);
        }
        rejoin_ctx rc = { .unlock = &u, .ops = &rejoin, .interval_s = interval };
        pthread_t thread;
        r = pthread_create(&thread, NULL, rejoin_thread, &rc);
        if (r != 0) {
                dm_unlock_done(&u);
                metadata_done(&md);
                return log_error_errno(-r, "rejoin thread");
        }
        log_info("%s: state disk %s is initialized: waiting for its key from recovery (%s, aTLS on %s:%d) or rejoin",
                 luks_path(d), u.uuid, DM_RECOVER_METHOD, service_listen_address(s), service_port(s));
        r = service_run(s);
        atomic_store(&rc.stop, true);
        pthread_join(thread, NULL);
        metadata_done(&md);
        if (r < 0 || !u.done) {
                if (r >= 0)
                        log_error("stopped before the state disk was unlocked");
                dm_unlock_done(&u);
                return r < 0 ? r : -ECANCELED;
        }

        nodestate ns;
        uint8_t cluster_id[32];
        CLEANUP_ERASE(cluster_id);
        r = read_node_state(d, u.keys.disk_key, &ns);
        if (r >= 0 && dm_cluster_id(u.keys.measurement_secret, &ns, cluster_id, &err) < 0) {
                log_error("%s", ERR(&err));
                r = -EIO;
        }
        if (r >= 0) {
                _cleanup_(tpm_closep) tpm_ctx *t = NULL;
                _cleanup_free_ char *terr = NULL;
                if (tpm_open(service_tpm(s), &t, &terr) < 0) {
                        log_error("TPM %s: %s", service_tpm(s), terr ?: "cannot open");
                        r = -EIO;
                } else if (tpm_mark_bootstrapped(t, cluster_id, sizeof cluster_id) < 0) {
                        log_error("PCR %u: extending the cluster ID failed: %s", TPM_PCR_CLUSTER_ID, tpm_last_error(t));
                        r = -EIO;
                } else
                        log_info("PCR %u extended with the cluster ID (%s node)", TPM_PCR_CLUSTER_ID,
                                 nodestate_role_to_string(ns.role));
        }
        if (r >= 0 && luks_write_keyfile(arg_keyfile, u.keys.disk_key, &err) < 0) {
                log_error("keyfile: %s", ERR(&err));
                r = -EIO;
        }
        if (r >= 0 && dm_write_units(arg_unit_dir, luks_path(d), arg_keyfile, &err) < 0) {
                log_error("units: %s", ERR(&err));
                r = -EIO;
        }
        if (r >= 0)
                log_info("state disk unlocked%s; keyfile %s, units in %s",
                         arg_host_test ? " (host test: keyslot checked, not activated)" : " and mapped as /dev/mapper/state",
                         arg_keyfile, arg_unit_dir);
        dm_unlock_done(&u);
        return r;
}

int main(int argc, char **argv) {
        _cleanup_(service_freep) service *s = NULL;
        int r = service_new(&info, argc, argv, &s);
        if (r < 0)
                return service_exit_code(r);
        if (arg_state_dir && !arg_host_test) {
                log_error("--state-dir is for host tests only and needs --host-test");
                return SERVICE_EXIT_USAGE;
        }
        if (arg_host_test) {
                if (!arg_state_dir) {
                        log_error("--host-test needs --state-dir");
                        return SERVICE_EXIT_USAGE;
                }
                log_warn("HOST TEST MODE: the state disk is only checked, never activated or mounted");
        }
        int interval = REJOIN_INTERVAL_SECONDS;
        if (arg_rejoin_interval) {
                char *end = NULL;
                long v = strtol(arg_rejoin_interval, &end, 10);
                if (end == arg_rejoin_interval || *end || v < 1 || v > 3600) {
                        log_error("--rejoin-interval: \"%s\" is not 1..3600 seconds", arg_rejoin_interval);
                        return SERVICE_EXIT_USAGE;
                }
                interval = (int) v;
        }
        const char *path = arg_disk;
        if (!path) {
                const char *csp = arg_csp ?: getenv("CONSTEL_CSP") ?: "qemu";
                path = dm_state_disk_path(csp);
                if (!path) {
                        log_error("CSP \"%s\" is not known (qemu, openstack, gcp, azure, aws); use --disk", csp);
                        return SERVICE_EXIT_USAGE;
                }
        }
        _cleanup_free_ char *disk = NULL;
        if (find_disk(path, &disk) < 0)
                return SERVICE_EXIT_FAILURE;

        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        luks_state st;
        if (luks_open(disk, &d, &err) < 0 || luks_get_state(d, &st, &err) < 0) {
                /* Never formatted because of an error: an unreadable or unclassifiable disk stops here. */
                log_error("state disk: %s", ERR(&err));
                return SERVICE_EXIT_FAILURE;
        }
        r = st == LUKS_STATE_INITIALIZED ? prepare_existing_disk(s, d, interval) : prepare_new_disk(d, st);
        return r < 0 ? SERVICE_EXIT_FAILURE : SERVICE_EXIT_OK;
}
