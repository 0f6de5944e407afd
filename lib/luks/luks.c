/* SPDX-License-Identifier: Apache-2.0 */
/* The state disk over libcryptsetup (luks.h; reference constellation.md §7). */
#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <libcryptsetup.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "luks/luks.h"

#define LAYER "luks"
#define LUKS_KEYFILE_MAX 8192
#define LUKS_WIPE_BLOCK (64u * 1024 * 1024) /* Constellation wipes in 64 MiB blocks */
#define LUKS_LAST_MSG_MAX 256

struct luks_disk {
        struct crypt_device *cd;
        char *path;
        bool loaded; /* crypt_load succeeded on a LUKS2 header */
        luks_pbkdf_profile pbkdf;
        char last_msg[LUKS_LAST_MSG_MAX];
};

const char *luks_state_to_string(luks_state s) {
        switch (s) {
        case LUKS_STATE_BLANK:
                return "blank";
        case LUKS_STATE_NEW:
                return "new";
        case LUKS_STATE_INITIALIZED:
                return "initialized";
        }
        return "unknown";
}

/* libcryptsetup would print to stderr; a library does not. Keep the last error line for details
 * (libcryptsetup never puts key material in its messages). */
static void log_cb(int level, const char *msg, void *usrptr) {
        luks_disk *d = usrptr;
        if (level != CRYPT_LOG_ERROR || !msg)
                return;
        size_t n = strnlen(msg, sizeof(d->last_msg) - 1);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                n--;
        memcpy(d->last_msg, msg, n);
        d->last_msg[n] = '\0';
}

static const char *last_msg(const luks_disk *d) {
        return d->last_msg[0] ? d->last_msg : "no message from libcryptsetup";
}

static bool have_device_mapper(void) {
        /* /proc/misc lists "device-mapper" when dm is present (machine.md: not on the host). */
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        if (read_full_file("/proc/misc", 65536, &buf, &len) < 0)
                return false;
        return strstr((const char *) buf, "device-mapper") != NULL;
}

static luks_disk *disk_new(const char *path) {
        luks_disk *d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->path = strdup(path);
        if (!d->path)
                return mfree(d);
        return d;
}

luks_disk *luks_close(luks_disk *d) {
        if (!d)
                return NULL;
        crypt_free(d->cd);
        free(d->path);
        free(d);
        return NULL;
}

void luks_set_pbkdf_profile(luks_disk *d, luks_pbkdf_profile p) {
        if (d)
                d->pbkdf = p;
}

const char *luks_path(const luks_disk *d) {
        return d ? d->path : NULL;
}

int luks_open(const char *path, luks_disk **ret, ct_error *err) {
        if (isempty(path) || !ret)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no device path");
        _cleanup_(luks_closep) luks_disk *d = disk_new(path);
        if (!d)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "%s", path);
        int r = crypt_init(&d->cd, path);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "device-open", "%s: %s", path, strerror(-r));
        crypt_set_log_callback(d->cd, log_cb, d);
        *ret = TAKE_PTR(d);
        return 0;
}

int luks_open_active(const char *name, luks_disk **ret, ct_error *err) {
        if (isempty(name) || !ret)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no mapping name");
        _cleanup_(luks_closep) luks_disk *d = disk_new(name);
        if (!d)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "%s", name);
        int r = crypt_init_by_name(&d->cd, name);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "device-open", "mapping %s: %s", name, strerror(-r));
        crypt_set_log_callback(d->cd, log_cb, d);
        if (!streq_ptr(crypt_get_type(d->cd), CRYPT_LUKS2))
                return ct_error_set(err, -EMEDIUMTYPE, LAYER, "not-luks2", "mapping %s is not LUKS2", name);
        const char *dev = crypt_get_device_name(d->cd);
        if (dev) {
                char *p = strdup(dev);
                if (!p)
                        return ct_error_set(err, -ENOMEM, LAYER, "oom", "%s", name);
                free(d->path);
                d->path = p;
        }
        d->loaded = true;
        *ret = TAKE_PTR(d);
        return 0;
}

/* ---- token 0 ---------------------------------------------------------------------------- */

int luks_token_parse(const char *json, size_t len, bool *ret_initialized, ct_error *err) {
        if (!json || len == 0)
                return ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: empty");
        if (len > LUKS_TOKEN_JSON_MAX)
                return ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: %zu bytes (at most %d)",
                                    len, LUKS_TOKEN_JSON_MAX);
        if (memchr(json, '\0', len))
                return ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: contains NUL");
        json_error_t jerr;
        /* JSON_REJECT_DUPLICATES: {"diskIsInitialized":false,"diskIsInitialized":true} is refused, not
         * resolved one way or the other. */
        json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: JSON: %s (offset %d)",
                                    jerr.text, jerr.position);
        int r = 0;
        if (!json_is_object(root)) {
                r = ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: not a JSON object");
                goto out;
        }
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
                if (!streq(key, "type") && !streq(key, "keyslots") && !streq(key, "diskIsInitialized")) {
                        r = ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: unknown key");
                        goto out;
                }
        }
        json_t *type = json_object_get(root, "type");
        if (!json_is_string(type) || !streq(json_string_value(type), LUKS_TOKEN_TYPE) ||
            json_string_length(type) != strlen(LUKS_TOKEN_TYPE)) {
                r = ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: type is not \"%s\"",
                                 LUKS_TOKEN_TYPE);
                goto out;
        }
        json_t *slots = json_object_get(root, "keyslots");
        if (!json_is_array(slots) || json_array_size(slots) != 0) {
                r = ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "token 0: keyslots is not []");
                goto out;
        }
        json_t *init = json_object_get(root, "diskIsInitialized");
        if (!json_is_boolean(init)) {
                r = ct_error_set(err, -EBADMSG, LAYER, "token-invalid",
                                 "token 0: diskIsInitialized missing or not a boolean");
                goto out;
        }
        if (ret_initialized)
                *ret_initialized = json_is_true(init);
out:
        json_decref(root);
        return r;
}

char *luks_token_format(bool initialized) {
        char *s;
        if (asprintf(&s, "{\"type\":\"%s\",\"keyslots\":[],\"diskIsInitialized\":%s}", LUKS_TOKEN_TYPE,
                     initialized ? "true" : "false") < 0)
                return NULL;
        return s;
}

/* ---- classification ------------------------------------------------------------------------ */

/* LUKS1/LUKS2 primary header magic "LUKS\xba\xbe" at offset 0 (LUKS2 on-disk format §2.1). */
static int has_luks_magic(const char *path, bool *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        uint8_t magic[6];
        ssize_t n = pread(fd, magic, sizeof(magic), 0);
        if (n < 0)
                return -errno;
        *ret = n == (ssize_t) sizeof(magic) && memcmp(magic, "LUKS\xba\xbe", 6) == 0;
        return 0;
}

static int load_header(luks_disk *d, bool *ret_present, ct_error *err) {
        if (d->loaded) {
                *ret_present = true;
                return 0;
        }
        d->last_msg[0] = '\0';
        int r = crypt_load(d->cd, CRYPT_LUKS, NULL);
        if (r >= 0) {
                if (!streq_ptr(crypt_get_type(d->cd), CRYPT_LUKS2))
                        return ct_error_set(err, -EMEDIUMTYPE, LAYER, "not-luks2",
                                            "%s: %s header, not LUKS2: neither formatted nor unlocked", d->path,
                                            crypt_get_type(d->cd) ?: "unknown");
                d->loaded = true;
                *ret_present = true;
                return 0;
        }
        if (r != -EINVAL)
                return ct_error_set(err, r, LAYER, "header-load", "%s: %s (%s)", d->path, strerror(-r), last_msg(d));
        /* -EINVAL: no valid header. A damaged header that still carries the LUKS magic is not
         * treated as blank: we do not wipe what we cannot read. */
        bool magic = false;
        int q = has_luks_magic(d->path, &magic);
        if (q < 0)
                return ct_error_set(err, q, LAYER, "header-load", "%s: %s", d->path, strerror(-q));
        if (magic)
                return ct_error_set(err, -EBADMSG, LAYER, "header-invalid",
                                    "%s: LUKS magic present but the header does not load (%s)", d->path, last_msg(d));
        *ret_present = false;
        return 0;
}

int luks_get_state(luks_disk *d, luks_state *ret, ct_error *err) {
        if (!d || !ret)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no disk");
        bool present = false;
        int r = load_header(d, &present, err);
        if (r < 0)
                return r;
        if (!present) {
                *ret = LUKS_STATE_BLANK;
                return 0;
        }
        const char *type = NULL;
        crypt_token_info ti = crypt_token_status(d->cd, LUKS_TOKEN_ID, &type);
        if (ti == CRYPT_TOKEN_INACTIVE) {
                /* An interrupted format (header written, token not yet): nothing was ever stored. */
                *ret = LUKS_STATE_NEW;
                return 0;
        }
        if (ti == CRYPT_TOKEN_INVALID)
                return ct_error_set(err, -EBADMSG, LAYER, "token-invalid", "%s: token 0 is invalid", d->path);
        const char *json = NULL;
        r = crypt_token_json_get(d->cd, LUKS_TOKEN_ID, &json);
        if (r < 0 || !json)
                return ct_error_set(err, r < 0 ? r : -EIO, LAYER, "token-invalid", "%s: token 0 unreadable (%s)",
                                    d->path, last_msg(d));
        bool initialized = false;
        r = luks_token_parse(json, strlen(json), &initialized, err);
        if (r < 0) {
                ct_error_prefix(err, "%s", d->path);
                return r;
        }
        *ret = initialized ? LUKS_STATE_INITIALIZED : LUKS_STATE_NEW;
        return 0;
}

int luks_is_initialized(luks_disk *d, bool *ret, ct_error *err) {
        luks_state s;
        int r = luks_get_state(d, &s, err);
        if (r < 0)
                return r;
        if (ret)
                *ret = s == LUKS_STATE_INITIALIZED;
        return 0;
}

/* ---- keyfile ----------------------------------------------------------------------------- */

int luks_read_keyfile(const char *path, secret_t **ret, ct_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ct_error_set(err, -errno, LAYER, "keyfile", "%s: %s", path, strerror(errno));
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_fd(fd, LUKS_KEYFILE_MAX, &buf, &len);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "keyfile", "%s: %s", path, strerror(-r));
        secret_t *s = len > 0 ? secret_new_copy(buf, len) : NULL;
        erase_memory(buf, len);
        free(buf);
        if (len == 0)
                return ct_error_set(err, -EBADMSG, LAYER, "keyfile", "%s: empty", path);
        if (!s)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "%s", path);
        *ret = s;
        return 0;
}

int luks_write_keyfile(const char *path, const secret_t *pass, ct_error *err) {
        if (isempty(path) || !pass || pass->len == 0)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no keyfile path or key");
        int r = mkdir_parents_private(path);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "keyfile", "%s: parent directory: %s", path, strerror(-r));
        r = write_file_atomic(path, pass->data, pass->len, 0400);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "keyfile", "%s: %s", path, strerror(-r));
        return 0;
}

/* ---- format ------------------------------------------------------------------------------ */

static void pbkdf_for(luks_pbkdf_profile p, struct crypt_pbkdf_type *ret) {
        if (p == LUKS_PBKDF_TEST_FAST) {
                *ret = (struct crypt_pbkdf_type){
                        .type = CRYPT_KDF_ARGON2ID,
                        .hash = "sha256",
                        .iterations = 4,
                        .max_memory_kb = 32,
                        .parallel_threads = 1,
                        .flags = CRYPT_PBKDF_NO_BENCHMARK,
                };
                return;
        }
        /* Constellation internal/cryptsetup: RFC 9106 §7 low-memory recommendation, benchmarked. */
        *ret = (struct crypt_pbkdf_type){
                .type = CRYPT_KDF_ARGON2ID,
                .hash = "sha256",
                .time_ms = LUKS_PBKDF_TIME_MS,
                .iterations = LUKS_PBKDF_ITERATIONS,
                .max_memory_kb = LUKS_PBKDF_MEMORY_KB,
                .parallel_threads = LUKS_PBKDF_PARALLEL,
        };
}

static int wipe_integrity(luks_disk *d, ct_error *err) {
        /* As Constellation: activate privately by the volume key held since format, without the
         * integrity journal, zero the whole mapped device, deactivate. */
        char name[64], path[96];
        snprintf(name, sizeof(name), "temporary-cryptsetup-%ld", (long) getpid());
        snprintf(path, sizeof(path), "/dev/mapper/%s", name);
        int r = crypt_activate_by_volume_key(d->cd, name, NULL, 0, CRYPT_ACTIVATE_PRIVATE | CRYPT_ACTIVATE_NO_JOURNAL);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "wipe", "%s: activate for wipe: %s", d->path, last_msg(d));
        r = crypt_wipe(d->cd, path, CRYPT_WIPE_ZERO, 0, 0, LUKS_WIPE_BLOCK, 0, NULL, NULL);
        int q = crypt_deactivate(d->cd, name);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "wipe", "%s: wipe: %s", d->path, last_msg(d));
        if (q < 0)
                return ct_error_set(err, q, LAYER, "wipe", "%s: deactivate after wipe: %s", d->path, last_msg(d));
        return 0;
}

int luks_format_new(luks_disk *d, const luks_format_options *opts, const char *keyfile_path,
                    secret_t **ret_passphrase, ct_error *err) {
        static const luks_format_options defaults = { .pbkdf = LUKS_PBKDF_CONSTELLATION, .wipe = true };
        if (!d || isempty(keyfile_path))
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no disk or keyfile path");
        if (!opts)
                opts = &defaults;

        /* The structural guard: classify first; only BLANK and NEW are formatted. */
        luks_state st;
        int r = luks_get_state(d, &st, err);
        if (r < 0) {
                ct_error_prefix(err, "refusing to format");
                return r;
        }
        if (st == LUKS_STATE_INITIALIZED)
                return ct_error_set(err, -EEXIST, LAYER, "disk-initialized",
                                    "%s: token 0 says the disk is initialized; refusing to format it", d->path);

        /* A fresh context: crypt_format on a context that loaded a header would keep its state. */
        struct crypt_device *cd = NULL;
        r = crypt_init(&cd, d->path);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "device-open", "%s: %s", d->path, strerror(-r));
        crypt_free(d->cd);
        d->cd = cd;
        d->loaded = false;
        d->last_msg[0] = '\0';
        crypt_set_log_callback(d->cd, log_cb, d);

        _cleanup_secret_ secret_t *pass = secret_new(LUKS_PASSPHRASE_LEN);
        if (!pass)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "passphrase");
        if (RAND_priv_bytes(pass->data, (int) pass->len) != 1)
                return ct_error_set(err, -EIO, LAYER, "random", "RAND_priv_bytes failed");

        d->pbkdf = opts->pbkdf;
        struct crypt_pbkdf_type pbkdf;
        pbkdf_for(opts->pbkdf, &pbkdf);
        struct crypt_params_luks2 params = {
                .pbkdf = &pbkdf,
                .integrity = LUKS_INTEGRITY,
                .sector_size = LUKS_SECTOR_SIZE,
        };
        r = crypt_format(d->cd, CRYPT_LUKS2, LUKS_CIPHER, LUKS_CIPHER_MODE, NULL, NULL, LUKS_VOLUME_KEY_SIZE,
                         &params);
        if (r < 0) {
                if (!have_device_mapper())
                        return ct_error_set(err, r, LAYER, "no-device-mapper",
                                            "%s: format with dm-integrity needs device-mapper (%s)", d->path,
                                            last_msg(d));
                return ct_error_set(err, r, LAYER, "format", "%s: %s", d->path, last_msg(d));
        }
        d->loaded = true;
        /* Token before keyslot: a crash after this leaves a NEW disk (token says not initialized). */
        _cleanup_free_ char *token = luks_token_format(false);
        if (!token)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "token");
        r = crypt_token_json_set(d->cd, LUKS_TOKEN_ID, token);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "token-write", "%s: %s", d->path, last_msg(d));
        if (opts->wipe) {
                r = wipe_integrity(d, err);
                if (r < 0)
                        return r;
        }
        r = crypt_keyslot_add_by_volume_key(d->cd, LUKS_KEYSLOT, NULL, 0, (const char *) pass->data, pass->len);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "keyslot-add", "%s: keyslot %d: %s", d->path, LUKS_KEYSLOT,
                                    last_msg(d));
        r = luks_write_keyfile(keyfile_path, pass, err);
        if (r < 0)
                return r;
        if (ret_passphrase)
                *ret_passphrase = TAKE_PTR(pass);
        return 0;
}

/* ---- keyslot and token changes ------------------------------------------------------------ */

static int require_loaded(luks_disk *d, ct_error *err) {
        bool present = false;
        int r = load_header(d, &present, err);
        if (r < 0)
                return r;
        if (!present)
                return ct_error_set(err, -ENODEV, LAYER, "no-header", "%s: no LUKS2 header", d->path);
        return 0;
}

int luks_uuid(luks_disk *d, char ret[LUKS_UUID_STRING_MAX], ct_error *err) {
        int r = require_loaded(d, err);
        if (r < 0)
                return r;
        const char *u = crypt_get_uuid(d->cd);
        if (!u || strlen(u) != LUKS_UUID_STRING_MAX - 1)
                return ct_error_set(err, -EBADMSG, LAYER, "uuid", "%s: no or malformed LUKS2 UUID", d->path);
        for (size_t i = 0; i < LUKS_UUID_STRING_MAX - 1; i++) {
                char c = u[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? c != '-' : !isxdigit((unsigned char) c))
                        return ct_error_set(err, -EBADMSG, LAYER, "uuid", "%s: malformed LUKS2 UUID", d->path);
                ret[i] = (char) tolower((unsigned char) c);
        }
        ret[LUKS_UUID_STRING_MAX - 1] = '\0';
        return 0;
}

static int map_unlock_error(luks_disk *d, int r, const char *what, ct_error *err) {
        if (r == -EPERM || r == -ENOENT)
                return ct_error_set(err, -EPERM, LAYER, "wrong-key", "%s: %s: no keyslot opens with this key",
                                    d->path, what);
        return ct_error_set(err, r, LAYER, "unlock", "%s: %s: %s", d->path, what, last_msg(d));
}

int luks_change_passphrase(luks_disk *d, const secret_t *old_pass, const secret_t *new_pass, ct_error *err) {
        if (!old_pass || !new_pass || new_pass->len == 0)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no passphrase");
        int r = require_loaded(d, err);
        if (r < 0)
                return r;
        struct crypt_pbkdf_type pbkdf;
        pbkdf_for(d->pbkdf, &pbkdf);
        r = crypt_set_pbkdf_type(d->cd, &pbkdf);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "pbkdf", "%s: %s", d->path, last_msg(d));
        r = crypt_keyslot_change_by_passphrase(d->cd, LUKS_KEYSLOT, LUKS_KEYSLOT, (const char *) old_pass->data,
                                               old_pass->len, (const char *) new_pass->data, new_pass->len);
        if (r < 0)
                return map_unlock_error(d, r, "change keyslot 0", err);
        return 0;
}

int luks_mark_initialized(luks_disk *d, bool initialized, ct_error *err) {
        int r = require_loaded(d, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *token = luks_token_format(initialized);
        if (!token)
                return ct_error_set(err, -ENOMEM, LAYER, "oom", "token");
        r = crypt_token_json_set(d->cd, LUKS_TOKEN_ID, token);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "token-write", "%s: %s", d->path, last_msg(d));
        return 0;
}

int luks_rekey_initialized(luks_disk *d, const secret_t *old_pass, const secret_t *new_pass, ct_error *err) {
        /* Order matters (luks.h): passphrase first, token second. */
        int r = luks_change_passphrase(d, old_pass, new_pass, err);
        if (r < 0)
                return r;
        return luks_mark_initialized(d, true, err);
}

int luks_check_passphrase(luks_disk *d, const secret_t *pass, ct_error *err) {
        if (!pass)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no passphrase");
        int r = require_loaded(d, err);
        if (r < 0)
                return r;
        r = crypt_activate_by_passphrase(d->cd, NULL, LUKS_KEYSLOT, (const char *) pass->data, pass->len, 0);
        if (r < 0)
                return map_unlock_error(d, r, "check keyslot 0", err);
        return 0;
}

int luks_activate(luks_disk *d, const char *name, const secret_t *pass, ct_error *err) {
        if (!pass || isempty(name))
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no name or passphrase");
        int r = require_loaded(d, err);
        if (r < 0)
                return r;
        if (!have_device_mapper())
                return ct_error_set(err, -EOPNOTSUPP, LAYER, "no-device-mapper",
                                    "%s: cannot activate %s: no device-mapper in this kernel", d->path, name);
        r = crypt_activate_by_passphrase(d->cd, name, LUKS_KEYSLOT, (const char *) pass->data, pass->len,
                                         CRYPT_ACTIVATE_NO_READ_WORKQUEUE | CRYPT_ACTIVATE_NO_WRITE_WORKQUEUE);
        if (r < 0)
                return map_unlock_error(d, r, "activate", err);
        return 0;
}

int luks_deactivate(const char *name, ct_error *err) {
        int r = crypt_deactivate(NULL, name);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "deactivate", "%s: %s", name, strerror(-r));
        return 0;
}
