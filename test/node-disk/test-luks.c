/* SPDX-License-Identifier: Apache-2.0 */
/* lib/luks on real files with the real libcryptsetup, cross-checked with the cryptsetup CLI
 * (luksDump --dump-json-metadata, open --test-passphrase) and an independent HKDF (python3).
 *
 * The host has no device-mapper, and libcryptsetup writes the dm-integrity superblock through
 * device-mapper inside crypt_format, so a format with integrity cannot complete here. crypt_format
 * is wrapped at link time (-Wl,--wrap=crypt_format): the wrapper records exactly what lib/luks
 * asked for (the test asserts Constellation's parameters: LUKS2, aes, xts-plain64, 96-byte volume
 * key, hmac(sha256), 4096-byte sectors, argon2id 2000 ms/3/65536 KiB/4), then formats the real
 * file with the same parameters minus integrity (64-byte key) so everything after the format runs
 * for real. One test passes the call through unchanged to show the real failure is reported as
 * `no-device-mapper`. In a guest the same code formats with dm-integrity (docs/node.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "crypto/hkdf.h"
#include "luks/luks.h"
#include "node-disk-util.h"

/* ---- the crypt_format wrap --------------------------------------------------------------- */

int __real_crypt_format(struct crypt_device *cd, const char *type, const char *cipher, const char *cipher_mode,
                        const char *uuid, const char *volume_key, size_t volume_key_size, void *params);
int __wrap_crypt_format(struct crypt_device *cd, const char *type, const char *cipher, const char *cipher_mode,
                        const char *uuid, const char *volume_key, size_t volume_key_size, void *params);

static struct {
        bool passthrough;
        unsigned calls;
        char type[16], cipher[16], mode[32], integrity[32], pbkdf_type[16], pbkdf_hash[16];
        size_t vk_size;
        uint32_t sector_size, time_ms, iterations, memory_kb, parallel, pbkdf_flags;
} fmt;

int __wrap_crypt_format(struct crypt_device *cd, const char *type, const char *cipher, const char *cipher_mode,
                        const char *uuid, const char *volume_key, size_t volume_key_size, void *params) {
        struct crypt_params_luks2 *p = params;
        fmt.calls++;
        snprintf(fmt.type, sizeof fmt.type, "%s", type ?: "");
        snprintf(fmt.cipher, sizeof fmt.cipher, "%s", cipher ?: "");
        snprintf(fmt.mode, sizeof fmt.mode, "%s", cipher_mode ?: "");
        fmt.vk_size = volume_key_size;
        if (p) {
                snprintf(fmt.integrity, sizeof fmt.integrity, "%s", p->integrity ?: "");
                fmt.sector_size = p->sector_size;
                if (p->pbkdf) {
                        snprintf(fmt.pbkdf_type, sizeof fmt.pbkdf_type, "%s", p->pbkdf->type ?: "");
                        snprintf(fmt.pbkdf_hash, sizeof fmt.pbkdf_hash, "%s", p->pbkdf->hash ?: "");
                        fmt.time_ms = p->pbkdf->time_ms;
                        fmt.iterations = p->pbkdf->iterations;
                        fmt.memory_kb = p->pbkdf->max_memory_kb;
                        fmt.parallel = p->pbkdf->parallel_threads;
                        fmt.pbkdf_flags = p->pbkdf->flags;
                }
        }
        if (fmt.passthrough || !p || !p->integrity)
                return __real_crypt_format(cd, type, cipher, cipher_mode, uuid, volume_key, volume_key_size, params);
        /* Host: the same format without dm-integrity (it needs device-mapper to write its superblock). */
        struct crypt_params_luks2 q = *p;
        q.integrity = NULL;
        return __real_crypt_format(cd, type, cipher, cipher_mode, uuid, volume_key, volume_key_size - 32, &q);
}

/* ---- fixtures ---------------------------------------------------------------------------- */

typedef struct fixture {
        char *dir;
        char disk[256], keyfile[256], dek[256], old[256];
} fixture;

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        f->dir = nd_tmpdir();
        snprintf(f->disk, sizeof f->disk, "%s/state.img", f->dir);
        snprintf(f->keyfile, sizeof f->keyfile, "%s/run/cryptsetup-keys.d/state.key", f->dir);
        snprintf(f->dek, sizeof f->dek, "%s/dek.key", f->dir);
        snprintf(f->old, sizeof f->old, "%s/old.key", f->dir);
        nd_blank_file(f->disk, NODE_DISK_SIZE);
        memset(&fmt, 0, sizeof fmt);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        nd_rmrf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static const luks_format_options fast = { .pbkdf = LUKS_PBKDF_TEST_FAST, .wipe = false };

static void format_fast(fixture *f) {
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        int r = luks_format_new(d, &fast, f->keyfile, NULL, &err);
        if (r < 0) {
                char b[700];
                fail_msg("format: %s", ct_error_format(&err, b, sizeof b));
        }
}

static json_t *luks_dump_json(const char *disk) {
        char *out = NULL;
        assert_int_equal(nd_run(&out, "cryptsetup luksDump --dump-json-metadata '%s'", disk), 0);
        json_error_t je;
        json_t *j = json_loads(out, 0, &je);
        free(out);
        assert_non_null(j);
        return j;
}

static int cli_test_passphrase(const char *disk, const char *keyfile) {
        return nd_run(NULL, "cryptsetup open --test-passphrase --key-slot 0 --key-file '%s' '%s' 2>/dev/null", keyfile,
                      disk);
}

static luks_state get_state(const char *disk) {
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(disk, &d, &err), 0);
        luks_state s;
        int r = luks_get_state(d, &s, &err);
        if (r < 0) {
                char b[700];
                fail_msg("state: %s", ct_error_format(&err, b, sizeof b));
        }
        return s;
}

/* DEK for the disk from a fixed master secret and salt: lib/crypto, checked against python3. */
static secret_t *derive_dek(const char *uuid, const char *dek_path) {
        static const char master_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        static const char salt_hex[] = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
        _cleanup_secret_ secret_t *master = NULL, *salt = NULL;
        assert_int_equal(secret_from_hex(master_hex, 64, &master), 0);
        assert_int_equal(secret_from_hex(salt_hex, 64, &salt), 0);
        secret_t *dek = NULL;
        assert_int_equal(kdf_data_key(master, salt, uuid, 32, &dek), 0);
        char info[64];
        snprintf(info, sizeof info, "key-%s", uuid);
        _cleanup_free_ char *py = nd_python_hkdf(master_hex, salt_hex, info);
        _cleanup_free_ char *ours = hex_encode(dek->data, dek->len);
        assert_string_equal(ours, py);
        nd_write_hex_as_raw(dek_path, py);
        return dek;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_format_parameters(void **state) {
        fixture *f = *state;
        assert_int_equal(get_state(f->disk), LUKS_STATE_BLANK);
        format_fast(f);
        /* What lib/luks asked libcryptsetup for: Constellation's §7 format. */
        assert_int_equal(fmt.calls, 1);
        assert_string_equal(fmt.type, CRYPT_LUKS2);
        assert_string_equal(fmt.cipher, "aes");
        assert_string_equal(fmt.mode, "xts-plain64");
        assert_int_equal(fmt.vk_size, 96);
        assert_string_equal(fmt.integrity, "hmac(sha256)");
        assert_int_equal(fmt.sector_size, 4096);
        assert_string_equal(fmt.pbkdf_type, "argon2id");

        /* The keyfile: 32 random bytes, 0400, in a 0700 directory. */
        struct stat st;
        assert_int_equal(stat(f->keyfile, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0400);
        assert_int_equal(st.st_size, LUKS_PASSPHRASE_LEN);
        char dir[256];
        snprintf(dir, sizeof dir, "%s/run/cryptsetup-keys.d", f->dir);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        /* What the cryptsetup CLI reads back. */
        json_t *j = luks_dump_json(f->disk);
        json_t *seg = json_object_get(json_object_get(j, "segments"), "0");
        assert_string_equal(json_string_value(json_object_get(seg, "encryption")), "aes-xts-plain64");
        assert_int_equal(json_integer_value(json_object_get(seg, "sector_size")), 4096);
        json_t *ks = json_object_get(json_object_get(j, "keyslots"), "0");
        assert_non_null(ks);
        assert_string_equal(json_string_value(json_object_get(json_object_get(ks, "kdf"), "type")), "argon2id");
        assert_null(json_object_get(json_object_get(j, "keyslots"), "1"));
        json_t *tok = json_object_get(json_object_get(j, "tokens"), "0");
        assert_string_equal(json_string_value(json_object_get(tok, "type")), LUKS_TOKEN_TYPE);
        assert_true(json_is_false(json_object_get(tok, "diskIsInitialized")));
        assert_int_equal(json_array_size(json_object_get(tok, "keyslots")), 0);
        json_decref(j);

        assert_int_equal(cli_test_passphrase(f->disk, f->keyfile), 0);
        assert_int_equal(get_state(f->disk), LUKS_STATE_NEW);
}

static void test_format_constellation_pbkdf(void **state) {
        /* The production PBKDF (benchmarked argon2id, ~2 s per keyslot operation). */
        fixture *f = *state;
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        static const luks_format_options prod = { .pbkdf = LUKS_PBKDF_CONSTELLATION, .wipe = false };
        _cleanup_secret_ secret_t *pass = NULL;
        int r = luks_format_new(d, &prod, f->keyfile, &pass, &err);
        if (r < 0) {
                char b[700];
                fail_msg("format: %s", ct_error_format(&err, b, sizeof b));
        }
        assert_string_equal(fmt.pbkdf_type, "argon2id");
        assert_string_equal(fmt.pbkdf_hash, "sha256");
        assert_int_equal(fmt.time_ms, 2000);
        assert_int_equal(fmt.iterations, 3);
        assert_int_equal(fmt.memory_kb, 65536);
        assert_int_equal(fmt.parallel, 4);
        assert_int_equal(fmt.pbkdf_flags, 0); /* benchmarked, as Constellation */
        assert_non_null(pass);
        assert_int_equal(pass->len, LUKS_PASSPHRASE_LEN);
        /* The keyslot the CLI sees: argon2id, 4 threads, at most 64 MiB. */
        json_t *j = luks_dump_json(f->disk);
        json_t *kdf = json_object_get(json_object_get(json_object_get(j, "keyslots"), "0"), "kdf");
        assert_string_equal(json_string_value(json_object_get(kdf, "type")), "argon2id");
        /* libcryptsetup caps the threads at the online CPUs (as on a 2-vCPU node). */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        assert_int_equal(json_integer_value(json_object_get(kdf, "cpus")), cpus < 4 ? cpus : 4);
        assert_true(json_integer_value(json_object_get(kdf, "memory")) <= 65536);
        assert_true(json_integer_value(json_object_get(kdf, "time")) >= 4);
        json_decref(j);
        /* And the returned passphrase is the keyfile's content. */
        _cleanup_secret_ secret_t *kf = NULL;
        assert_int_equal(luks_read_keyfile(f->keyfile, &kf, &err), 0);
        assert_true(ct_memeq(kf->data, kf->len, pass->data, pass->len));

        /* The re-key from a fresh handle (the bootstrapper's) keeps Constellation's PBKDF rather than
         * libcryptsetup's default (argon2id up to 1 GiB). */
        luks_close(TAKE_PTR(d));
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        _cleanup_secret_ secret_t *dek = secret_new(32);
        memset(dek->data, 0x11, 32);
        assert_int_equal(luks_rekey_initialized(d, pass, dek, &err), 0);
        j = luks_dump_json(f->disk);
        kdf = json_object_get(json_object_get(json_object_get(j, "keyslots"), "0"), "kdf");
        assert_string_equal(json_string_value(json_object_get(kdf, "type")), "argon2id");
        assert_int_equal(json_integer_value(json_object_get(kdf, "cpus")), cpus < 4 ? cpus : 4);
        assert_true(json_integer_value(json_object_get(kdf, "memory")) <= 65536);
        json_decref(j);
}

static void test_rekey_and_cli(void **state) {
        fixture *f = *state;
        format_fast(f);
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        luks_set_pbkdf_profile(d, LUKS_PBKDF_TEST_FAST);
        char uuid[LUKS_UUID_STRING_MAX];
        assert_int_equal(luks_uuid(d, uuid, &err), 0);
        for (const char *c = uuid; *c; c++)
                assert_false(*c >= 'A' && *c <= 'F');
        char *out = NULL;
        assert_int_equal(nd_run(&out, "cryptsetup luksUUID '%s'", f->disk), 0);
        assert_int_equal(strncasecmp(out, uuid, 36), 0);
        free(out);

        _cleanup_secret_ secret_t *dek = derive_dek(uuid, f->dek);
        _cleanup_secret_ secret_t *old = NULL;
        assert_int_equal(luks_read_keyfile(f->keyfile, &old, &err), 0);
        assert_int_equal(luks_rekey_initialized(d, old, dek, &err), 0);
        assert_int_equal(luks_check_passphrase(d, dek, &err), 0);
        assert_int_equal(luks_check_passphrase(d, old, &err), -EPERM);
        assert_string_equal(err.reason, "wrong-key");

        luks_close(TAKE_PTR(d));
        assert_int_equal(get_state(f->disk), LUKS_STATE_INITIALIZED);
        /* The CLI agrees: the DEK opens keyslot 0, the first-boot passphrase no longer does. */
        assert_int_equal(cli_test_passphrase(f->disk, f->dek), 0);
        assert_int_not_equal(cli_test_passphrase(f->disk, f->keyfile), 0);
        json_t *j = luks_dump_json(f->disk);
        json_t *tok = json_object_get(json_object_get(j, "tokens"), "0");
        assert_true(json_is_true(json_object_get(tok, "diskIsInitialized")));
        assert_null(json_object_get(json_object_get(j, "keyslots"), "1"));
        json_decref(j);

        /* A failed bootstrap marks the disk not initialized (the bootstrapper's undo): NEW again,
         * so the next boot formats it; the keyslot is untouched until then. */
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        assert_int_equal(luks_mark_initialized(d, false, &err), 0);
        luks_close(TAKE_PTR(d));
        assert_int_equal(get_state(f->disk), LUKS_STATE_NEW);
        assert_int_equal(cli_test_passphrase(f->disk, f->dek), 0);
        j = luks_dump_json(f->disk);
        tok = json_object_get(json_object_get(j, "tokens"), "0");
        assert_true(json_is_false(json_object_get(tok, "diskIsInitialized")));
        assert_null(json_object_get(json_object_get(j, "tokens"), "1"));
        json_decref(j);
}

static void test_format_refuses_initialized(void **state) {
        fixture *f = *state;
        format_fast(f);
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        assert_int_equal(luks_mark_initialized(d, true, &err), 0);
        luks_close(TAKE_PTR(d));

        _cleanup_free_ char *before = nd_hash_prefix(f->disk, NODE_DISK_HEADER_AREA);
        unsigned calls = fmt.calls;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        assert_int_equal(luks_format_new(d, &fast, f->keyfile, NULL, &err), -EEXIST);
        assert_string_equal(err.layer, "luks");
        assert_string_equal(err.reason, "disk-initialized");
        assert_int_equal(fmt.calls, calls); /* crypt_format was never reached */
        _cleanup_free_ char *after = nd_hash_prefix(f->disk, NODE_DISK_HEADER_AREA);
        assert_string_equal(before, after);
        /* The keyfile of the refused format was not replaced either (the old one is still valid). */
        assert_int_equal(cli_test_passphrase(f->disk, f->keyfile), 0);
}

static void test_killed_between_rekey_steps(void **state) {
        /* The bootstrapper changed keyslot 0 to the DEK and died before the token flip. */
        fixture *f = *state;
        format_fast(f);
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        luks_set_pbkdf_profile(d, LUKS_PBKDF_TEST_FAST);
        char uuid[LUKS_UUID_STRING_MAX];
        assert_int_equal(luks_uuid(d, uuid, &err), 0);
        _cleanup_secret_ secret_t *dek = derive_dek(uuid, f->dek);
        _cleanup_secret_ secret_t *old = NULL;
        assert_int_equal(luks_read_keyfile(f->keyfile, &old, &err), 0);
        assert_int_equal(luks_change_passphrase(d, old, dek, &err), 0);
        luks_close(TAKE_PTR(d));

        /* Next boot: the disk is NEW (not initialized), so the disk-mapper formats it again. */
        assert_int_equal(get_state(f->disk), LUKS_STATE_NEW);
        bool init = true;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        assert_int_equal(luks_is_initialized(d, &init, &err), 0);
        assert_false(init);
        assert_int_equal(luks_format_new(d, &fast, f->keyfile, NULL, &err), 0);
        char uuid2[LUKS_UUID_STRING_MAX];
        assert_int_equal(luks_uuid(d, uuid2, &err), 0);
        luks_close(TAKE_PTR(d));
        /* Converged: a fresh disk (new UUID), the new keyfile opens it, the half-handed-over DEK
         * does not, and the token says not initialized. */
        assert_string_not_equal(uuid, uuid2);
        assert_int_equal(get_state(f->disk), LUKS_STATE_NEW);
        assert_int_equal(cli_test_passphrase(f->disk, f->keyfile), 0);
        assert_int_not_equal(cli_test_passphrase(f->disk, f->dek), 0);
}

static void set_token_raw(const char *disk, const char *json) {
        struct crypt_device *cd = NULL;
        assert_int_equal(crypt_init(&cd, disk), 0);
        assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
        assert_true(crypt_token_json_set(cd, 0, json) >= 0);
        crypt_free(cd);
}

static void expect_refused(fixture *f, int code, const char *reason) {
        _cleanup_free_ char *before = nd_hash_prefix(f->disk, NODE_DISK_HEADER_AREA);
        unsigned calls = fmt.calls;
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        luks_state s;
        assert_int_equal(luks_get_state(d, &s, &err), code);
        assert_string_equal(err.reason, reason);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(luks_format_new(d, &fast, f->keyfile, NULL, &err), code);
        assert_string_equal(err.reason, reason);
        assert_int_equal(fmt.calls, calls);
        _cleanup_free_ char *after = nd_hash_prefix(f->disk, NODE_DISK_HEADER_AREA);
        assert_string_equal(before, after);
}

static void test_invalid_token_refused(void **state) {
        fixture *f = *state;
        format_fast(f);
        /* A token 0 we cannot classify: the disk is neither formatted nor unlocked. */
        set_token_raw(f->disk, "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":\"yes\"}");
        expect_refused(f, -EBADMSG, "token-invalid");
        set_token_raw(f->disk, "{\"type\":\"other\",\"keyslots\":[]}");
        expect_refused(f, -EBADMSG, "token-invalid");
}

static void test_no_token_is_new(void **state) {
        /* A LUKS2 header without token 0 (a format interrupted before the token): NEW, formatted. */
        fixture *f = *state;
        nd_write_hex_as_raw(f->old, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        assert_int_equal(nd_run(NULL,
                                "cryptsetup luksFormat -q --type luks2 --pbkdf argon2id --pbkdf-force-iterations 4 "
                                "--pbkdf-memory 32 --pbkdf-parallel 1 --key-file '%s' '%s'",
                                f->old, f->disk),
                         0);
        assert_int_equal(get_state(f->disk), LUKS_STATE_NEW);
        format_fast(f);
        assert_int_equal(get_state(f->disk), LUKS_STATE_NEW);
        assert_int_equal(cli_test_passphrase(f->disk, f->keyfile), 0);
        assert_int_not_equal(cli_test_passphrase(f->disk, f->old), 0);
}

static void test_luks1_refused(void **state) {
        fixture *f = *state;
        nd_write_hex_as_raw(f->old, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        assert_int_equal(nd_run(NULL,
                                "cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file '%s' '%s'",
                                f->old, f->disk),
                         0);
        expect_refused(f, -EMEDIUMTYPE, "not-luks2");
}

static void test_damaged_header_refused(void **state) {
        /* LUKS magic present, header checksum broken in both copies: not "blank", not wiped. */
        fixture *f = *state;
        format_fast(f);
        FILE *fp = fopen(f->disk, "r+e");
        assert_non_null(fp);
        /* Flip a byte of the JSON area of both binary headers (primary at 4096, secondary at 16384+4096). */
        for (long off = 4096 + 16; off < 64 * 1024; off += 16384) {
                fseek(fp, off, SEEK_SET);
                int c = fgetc(fp);
                fseek(fp, off, SEEK_SET);
                fputc(c ^ 0x55, fp);
        }
        fclose(fp);
        expect_refused(f, -EBADMSG, "header-invalid");
}

static void test_blank_and_junk(void **state) {
        fixture *f = *state;
        assert_int_equal(get_state(f->disk), LUKS_STATE_BLANK);
        /* Random bytes (no LUKS magic) are blank too: there is nothing to protect. */
        assert_int_equal(nd_run(NULL, "head -c 1048576 /dev/urandom | dd of='%s' conv=notrunc status=none", f->disk), 0);
        assert_int_equal(get_state(f->disk), LUKS_STATE_BLANK);
}

static void test_wrong_key_leaves_header(void **state) {
        fixture *f = *state;
        format_fast(f);
        _cleanup_free_ char *before = nd_hash_prefix(f->disk, NODE_DISK_HEADER_AREA);
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        _cleanup_secret_ secret_t *wrong = secret_new(32);
        memset(wrong->data, 0x42, 32);
        assert_int_equal(luks_check_passphrase(d, wrong, &err), -EPERM);
        assert_string_equal(err.layer, "luks");
        assert_string_equal(err.reason, "wrong-key");
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(luks_change_passphrase(d, wrong, wrong, &err), -EPERM);
        assert_string_equal(err.reason, "wrong-key");
        luks_close(TAKE_PTR(d));
        _cleanup_free_ char *after = nd_hash_prefix(f->disk, NODE_DISK_HEADER_AREA);
        assert_string_equal(before, after);
}

static void test_host_has_no_device_mapper(void **state) {
        /* Without the wrap's help: the real crypt_format with dm-integrity and activation both fail
         * on this host, and say why. (In a guest these succeed.) */
        fixture *f = *state;
        fmt.passthrough = true;
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        assert_true(luks_format_new(d, &fast, f->keyfile, NULL, &err) < 0);
        assert_string_equal(err.reason, "no-device-mapper");
        assert_int_equal(access(f->keyfile, F_OK), -1); /* no keyfile for a disk that was not formatted */
        luks_close(TAKE_PTR(d));
        fmt.passthrough = false;
        format_fast(f);
        _cleanup_secret_ secret_t *pass = NULL;
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(luks_read_keyfile(f->keyfile, &pass, &err), 0);
        assert_int_equal(luks_open(f->disk, &d, &err), 0);
        assert_int_equal(luks_activate(d, LUKS_STATE_MAPPER_NAME, pass, &err), -EOPNOTSUPP);
        assert_string_equal(err.reason, "no-device-mapper");
}

static void test_token_parse(void **state) {
        bool init = false;
        assert_int_equal(luks_token_parse("{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":true}",
                                          74, &init, NULL), 0);
        assert_true(init);
        _cleanup_free_ char *t = luks_token_format(false);
        assert_string_equal(t, "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":false}");
        assert_int_equal(luks_token_parse(t, strlen(t), &init, NULL), 0);
        assert_false(init);
        /* Key order does not matter, whitespace is JSON. */
        const char *ok = " { \"diskIsInitialized\" : true , \"keyslots\":[ ], \"type\":\"constellation-state-disk\" } ";
        assert_int_equal(luks_token_parse(ok, strlen(ok), &init, NULL), 0);
        assert_true(init);
        static const char *bad[] = {
                "",
                "null",
                "[]",
                "{}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[]}",
                "{\"type\":\"constellation-state-disk\",\"diskIsInitialized\":true}",
                "{\"keyslots\":[],\"diskIsInitialized\":true}",
                "{\"type\":\"luks2-keyring\",\"keyslots\":[],\"diskIsInitialized\":true}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[\"0\"],\"diskIsInitialized\":true}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":{},\"diskIsInitialized\":true}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":1}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":\"true\"}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":null}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":true,\"x\":1}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":false,\"diskIsInitialized\":true}",
                "{\"type\":\"constellation-state-disk\\u0000\",\"keyslots\":[],\"diskIsInitialized\":true}",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":true",
                "{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":true}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ct_error err = CT_ERROR_INIT;
                init = true;
                if (luks_token_parse(bad[i], strlen(bad[i]), &init, &err) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_string_equal(err.reason, "token-invalid");
        }
        /* A NUL inside the buffer, and a document over the size bound. */
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(luks_token_parse("{}\0{}", 5, &init, &err), -EBADMSG);
        _cleanup_free_ char *big = malloc(LUKS_TOKEN_JSON_MAX + 2);
        memset(big, ' ', LUKS_TOKEN_JSON_MAX + 1);
        memcpy(big, t, strlen(t));
        big[LUKS_TOKEN_JSON_MAX + 1] = '\0';
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(luks_token_parse(big, LUKS_TOKEN_JSON_MAX + 1, &init, &err), -EBADMSG);
        assert_non_null(strstr(err.detail, "at most"));
}

int main(void) {
        nd_require_tool("cryptsetup");
        nd_require_tool("/usr/bin/python3");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_format_parameters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_format_constellation_pbkdf, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rekey_and_cli, setup, teardown),
                cmocka_unit_test_setup_teardown(test_format_refuses_initialized, setup, teardown),
                cmocka_unit_test_setup_teardown(test_killed_between_rekey_steps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_token_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_token_is_new, setup, teardown),
                cmocka_unit_test_setup_teardown(test_luks1_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_header_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blank_and_junk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_key_leaves_header, setup, teardown),
                cmocka_unit_test_setup_teardown(test_host_has_no_device_mapper, setup, teardown),
                cmocka_unit_test(test_token_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
