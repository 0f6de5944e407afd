/* SPDX-License-Identifier: Apache-2.0 */
/* The state disk as Constellation formats and unlocks it (reference constellation.md §7,
 * internal/cryptsetup, disk-mapper/internal/diskencryption), over libcryptsetup.
 *
 * Format (bit for bit Constellation's parameters):
 *   LUKS2, cipher aes / xts-plain64, volume key 64 B + 32 B integrity key (96 B),
 *   integrity hmac(sha256) (dm-integrity), sector size 4096,
 *   PBKDF argon2id {time 2000 ms, iterations 3, max memory 65536 KiB, parallel 4},
 *   keyslot 0 holds the passphrase,
 *   token 0 = {"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":<bool>}.
 *
 * Life of the disk:
 *   1. blank disk (no LUKS header)             -> luks_format_new(): random 32-byte passphrase
 *      into a 0400 keyfile, token "not initialized"; the disk-mapper activates it as `state`.
 *   2. init/join (bootstrapper)                -> luks_rekey_initialized(): keyslot 0 changes from
 *      that passphrase to the KMS data key `key-<disk uuid>`, THEN the token says initialized.
 *   3. reboot of an initialized disk          -> unlock with a key from recovery or rejoin.
 *   4. bootstrap failure                       -> luks_mark_initialized(false), reboot, reformat.
 *
 * Crash between the two steps of 2 (keyslot already changed, token not yet "initialized"): the
 * next boot sees a NEW disk and reformats it. That is the convergence we choose: nothing was
 * written to the disk yet that the cluster depends on (node_state.json and everything else come
 * after the token flip, as in Constellation's init server and join client), and the node is
 * re-bootstrapped from scratch. The other order (token first) could leave an "initialized" disk
 * whose keyslot still holds the random first-boot passphrase, which only lived in /run: a disk
 * nobody could ever unlock or recover.
 *
 * Never reformat an initialized disk because of an error: luks_format_new() itself loads the
 * header and refuses (reason `disk-initialized`) if token 0 says initialized, and refuses a
 * header whose token 0 is present but not a valid constellation token (reason `token-invalid`):
 * a disk we cannot classify is not wiped. Only a blank device, or a LUKS2 header with no token 0
 * (a format that was interrupted before the token was written) or with a valid token saying
 * "not initialized", is (re)formatted. Callers cannot bypass this.
 *
 * The host has no device-mapper: activation (luks_activate) and the dm-integrity wipe only work in
 * a guest. libcryptsetup also needs device-mapper to write the dm-integrity superblock during
 * crypt_format, so on the host luks_format_new() fails with reason `no-device-mapper`; host tests
 * assert the exact crypt_format parameters through a link-time wrap (test/node-disk) and format
 * the rest for real. luks_check_passphrase() (crypt_activate_by_passphrase with name NULL) opens
 * the keyslot without activating anything and works on files.
 *
 * Every fallible function returns a negative errno and fills *err (optional) with layer "luks" and
 * a reason token; details name the device, never a key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/error.h"
#include "basic/secret.h"

#define LUKS_STATE_MAPPER_NAME "state"
#define LUKS_STATE_KEYFILE "/run/cryptsetup-keys.d/state.key"
#define LUKS_TOKEN_TYPE "constellation-state-disk"
#define LUKS_TOKEN_ID 0
#define LUKS_KEYSLOT 0
#define LUKS_PASSPHRASE_LEN 32       /* first-boot random passphrase */
#define LUKS_TOKEN_JSON_MAX 4096     /* token 0 JSON accepted by luks_token_parse */
#define LUKS_UUID_STRING_MAX 37      /* 36 + NUL */

/* Constellation's parameters (constellation.md §7). */
#define LUKS_CIPHER "aes"
#define LUKS_CIPHER_MODE "xts-plain64"
#define LUKS_VOLUME_KEY_SIZE (64 + 32)
#define LUKS_INTEGRITY "hmac(sha256)"
#define LUKS_SECTOR_SIZE 4096
#define LUKS_PBKDF_TIME_MS 2000
#define LUKS_PBKDF_ITERATIONS 3
#define LUKS_PBKDF_MEMORY_KB 65536
#define LUKS_PBKDF_PARALLEL 4

typedef struct luks_disk luks_disk;

typedef enum luks_state {
        LUKS_STATE_BLANK,       /* no LUKS header: format */
        LUKS_STATE_NEW,         /* LUKS2 header, token 0 absent or "not initialized": format */
        LUKS_STATE_INITIALIZED, /* token 0 says initialized: unlock, never format */
} luks_state;
const char *luks_state_to_string(luks_state s);

typedef enum luks_pbkdf_profile {
        LUKS_PBKDF_CONSTELLATION = 0, /* the §7 parameters (benchmarked argon2id, ~2 s) */
        /* TEST ONLY: argon2id with 4 iterations, 32 KiB, 1 thread, no benchmark, so host tests do
         * not spend seconds per keyslot operation. Never selected by the node programs. */
        LUKS_PBKDF_TEST_FAST,
} luks_pbkdf_profile;

typedef struct luks_format_options {
        luks_pbkdf_profile pbkdf;
        /* Zero the whole device through dm-integrity after format so every tag is valid (as
         * Constellation does, 64 MiB blocks). Needs device-mapper: in the guest only. */
        bool wipe;
} luks_format_options;

/* The PBKDF for keyslots this handle writes (format, passphrase change). Default
 * LUKS_PBKDF_CONSTELLATION; host tests select LUKS_PBKDF_TEST_FAST. luks_format_new() uses
 * opts->pbkdf. Without this, a keyslot change would get libcryptsetup's default argon2id (up to
 * 1 GiB of memory), more than a small node may have in the initrd. */
void luks_set_pbkdf_profile(luks_disk *d, luks_pbkdf_profile p);

/* Opens the device or file at path (crypt_init) without loading its header. */
int luks_open(const char *path, luks_disk **ret, ct_error *err);
/* Opens the device behind an active mapping (crypt_init_by_name, e.g. "state"): what the
 * bootstrapper uses to re-key the disk the disk-mapper activated. */
int luks_open_active(const char *name, luks_disk **ret, ct_error *err);
luks_disk *luks_close(luks_disk *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(luks_disk *, luks_close);
const char *luks_path(const luks_disk *d);

/* Classifies the disk. -EBADMSG with reason `token-invalid` when token 0 exists but is not a valid
 * constellation token; -EIO `header-load` on read errors. A LUKS1 or other non-LUKS2 header is
 * `not-luks2` (-EMEDIUMTYPE): neither formatted nor unlocked. */
int luks_get_state(luks_disk *d, luks_state *ret, ct_error *err);
/* Constellation's IsInitialized: header loads AND token 0 says initialized. */
int luks_is_initialized(luks_disk *d, bool *ret, ct_error *err);

/* Formats a BLANK or NEW disk: random LUKS_PASSPHRASE_LEN passphrase written to keyfile_path
 * (mode 0400, parent directory created 0700, file replaced atomically), LUKS2 as above, keyslot 0,
 * token 0 not initialized, optional wipe. Refuses an initialized or unclassifiable disk (see top).
 * *ret_passphrase (optional) gets a copy of the passphrase. opts NULL = Constellation defaults. */
int luks_format_new(luks_disk *d, const luks_format_options *opts, const char *keyfile_path,
                    secret_t **ret_passphrase, ct_error *err);

/* Reads a keyfile (at most 8 KiB; a state keyfile is LUKS_PASSPHRASE_LEN bytes). */
int luks_read_keyfile(const char *path, secret_t **ret, ct_error *err);
/* Writes a keyfile: mode 0400, parent directory created 0700, replaced atomically. */
int luks_write_keyfile(const char *path, const secret_t *key, ct_error *err);

/* The LUKS2 UUID, lower-cased (Constellation derives `key-<lowercase uuid>`). */
int luks_uuid(luks_disk *d, char ret[LUKS_UUID_STRING_MAX], ct_error *err);

/* Keyslot 0: old passphrase -> new passphrase (crypt_keyslot_change_by_passphrase). A wrong old
 * passphrase is -EPERM `wrong-key` and changes nothing. */
int luks_change_passphrase(luks_disk *d, const secret_t *old_pass, const secret_t *new_pass, ct_error *err);
/* Writes token 0 with diskIsInitialized = initialized. */
int luks_mark_initialized(luks_disk *d, bool initialized, ct_error *err);
/* The bootstrapper's re-key at init/join: luks_change_passphrase() then luks_mark_initialized(true),
 * in that order (see the top of this file for a crash in between). */
int luks_rekey_initialized(luks_disk *d, const secret_t *old_pass, const secret_t *new_pass, ct_error *err);

/* Checks that pass opens keyslot 0 without activating anything (crypt_activate_by_passphrase with
 * name NULL): works on files. Wrong key: -EPERM `wrong-key`, header untouched. */
int luks_check_passphrase(luks_disk *d, const secret_t *pass, ct_error *err);
/* Activates keyslot 0 as /dev/mapper/<name> with no_read/write_workqueue, as Constellation. Guest
 * only (device-mapper): on the host this fails with `no-device-mapper`. */
int luks_activate(luks_disk *d, const char *name, const secret_t *pass, ct_error *err);
int luks_deactivate(const char *name, ct_error *err);

/* Parses token 0 JSON strictly: an object of exactly the keys "type" (== LUKS_TOKEN_TYPE),
 * "keyslots" (an array, empty as Constellation writes it) and "diskIsInitialized" (a boolean),
 * at most LUKS_TOKEN_JSON_MAX bytes, no NUL. -EBADMSG `token-invalid` otherwise. Fuzz target. */
int luks_token_parse(const char *json, size_t len, bool *ret_initialized, ct_error *err);
/* The token JSON Constellation writes (malloc'd). */
char *luks_token_format(bool initialized);
