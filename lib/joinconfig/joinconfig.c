/* SPDX-License-Identifier: Apache-2.0 */
#include "joinconfig/joinconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "etcd/etcd.h"

#define L "joinconfig"
#define UPDATE_DOMAIN "constellation-attestation-config-update-v1"

/* ---- the directory store ---- */

static int dir_path(const char *dir, const char *name, char *buf, size_t size, ct_error *err) {
        if (strchr(name, '/') || (size_t) snprintf(buf, size, "%s/%s", dir, name) >= size)
                return ct_error_set(err, -EINVAL, L, "io", "object name \"%s\" is not a file name", name);
        return 0;
}

static int dir_load(void *userdata, const char *name, size_t max_size, uint8_t **ret, size_t *ret_len,
                    int64_t *ret_revision, ct_error *err) {
        char path[PATH_MAX];
        int r = dir_path(userdata, name, path, sizeof path, err);
        if (r < 0)
                return r;
        /* No symlinks: the directory is the state disk's /var/config, written only by us. */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return ct_error_set(err, -errno, L, "io", "%s: %s", path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return ct_error_set(err, -EINVAL, L, "io", "%s: not a regular file", path);
        }
        r = read_full_fd(fd, max_size, ret, ret_len);
        close(fd);
        if (r == -EFBIG)
                return ct_error_set(err, r, L, "too-large", "%s: larger than %zu bytes", path, max_size);
        if (r < 0)
                return ct_error_set(err, r, L, "io", "%s: %s", path, strerror(-r));
        *ret_revision = 0;
        return 0;
}

static int dir_save(void *userdata, const char *name, const uint8_t *data, size_t len, int64_t expected_revision,
                    int64_t *ret_revision, ct_error *err) {
        (void) expected_revision; /* one writer: the service that owns the directory */
        char path[PATH_MAX];
        int r = dir_path(userdata, name, path, sizeof path, err);
        if (r < 0)
                return r;
        r = write_file_atomic(path, data, len, 0600);
        if (r < 0)
                return ct_error_set(err, r, L, "io", "%s: %s", path, strerror(-r));
        if (ret_revision)
                *ret_revision = 0;
        return 0;
}

joinconfig_store joinconfig_store_dir(const char *dir) {
        return (joinconfig_store){ .load = dir_load, .save = dir_save, .userdata = (void *) dir };
}

/* ---- the etcd store ---- */

static int etcd_key(const char *name, char *buf, size_t size, ct_error *err) {
        if (strchr(name, '/') || (size_t) snprintf(buf, size, "%s%s", JOINCONFIG_ETCD_PREFIX, name) >= size)
                return ct_error_set(err, -EINVAL, L, "io", "object name \"%s\" is not a key name", name);
        return 0;
}

static int etcd_store_load(void *userdata, const char *name, size_t max_size, uint8_t **ret, size_t *ret_len,
                           int64_t *ret_revision, ct_error *err) {
        char key[256];
        int r = etcd_key(name, key, sizeof key, err);
        if (r < 0)
                return r;
        _cleanup_secret_ secret_t *v = NULL;
        int64_t rev = 0;
        r = etcd_get(userdata, key, max_size, &v, &rev, err);
        if (r < 0)
                return r;
        uint8_t *copy = malloc(v->len + 1);
        if (!copy)
                return ct_error_set(err, -ENOMEM, L, "io", "out of memory");
        memcpy(copy, v->data, v->len);
        copy[v->len] = 0;
        *ret = copy;
        *ret_len = v->len;
        *ret_revision = rev;
        return 0;
}

static int etcd_store_save(void *userdata, const char *name, const uint8_t *data, size_t len,
                           int64_t expected_revision, int64_t *ret_revision, ct_error *err) {
        char key[256];
        int r = etcd_key(name, key, sizeof key, err);
        if (r < 0)
                return r;
        if (expected_revision == JOINCONFIG_REVISION_ANY)
                return etcd_put(userdata, key, data, len, ret_revision, err);
        return etcd_cas(userdata, key, expected_revision, data, len, ret_revision, NULL, err);
}

joinconfig_store joinconfig_store_etcd(struct etcd_client *client) {
        return (joinconfig_store){ .load = etcd_store_load, .save = etcd_store_save, .userdata = client };
}

/* ---- measurements ---- */

int joinconfig_require_pcr15_zero(measurements *m, ct_error *err) {
        static const uint8_t zero[32] = { 0 };
        const measurement *p = measurements_get(m, JOINCONFIG_PCR15);
        if (p) {
                if (p->len != 32 || CRYPTO_memcmp(p->expected, zero, 32) != 0) {
                        _cleanup_free_ char *hex = hex_encode(p->expected, p->len);
                        return ct_error_set(err, -EINVAL, L, "pcr15-invalid",
                                            "PCR 15 expected %s: a joining node's PCR 15 must be zero (it is bound "
                                            "to a cluster only after it joined)",
                                            hex ?: "?");
                }
        }
        /* Absent, or zero and perhaps warn-only: enforced zero. */
        if (measurements_set(m, JOINCONFIG_PCR15, zero, 32, false) < 0)
                return ct_error_set(err, -ENOMEM, L, "measurements-invalid", "cannot add PCR 15");
        return 0;
}

static int check_measurements(measurements *m, ct_error *err) {
        for (size_t i = 0; i < m->n; i++)
                if (m->items[i].len != 32)
                        return ct_error_set(err, -EINVAL, L, "measurements-invalid",
                                            "PCR %u: %zu-byte value, qemu-vtpm PCRs are 32 bytes (SHA-256)",
                                            m->items[i].index, m->items[i].len);
        return joinconfig_require_pcr15_zero(m, err);
}

static int parse_map(json_t *map, measurements *ret, ct_error *err) {
        if (!json_is_object(map))
                return ct_error_set(err, -EINVAL, L, "measurements-invalid", "\"measurements\" is not an object");
        measurements m;
        _cleanup_free_ char *why = NULL;
        if (measurements_parse_map(map, &m, &why) < 0)
                return ct_error_set(err, -EINVAL, L, "measurements-invalid", "measurements: %s", why ?: "invalid");
        int r = check_measurements(&m, err);
        if (r < 0)
                return r;
        *ret = m;
        return 0;
}

static int load_json(const uint8_t *buf, size_t len, json_t **ret, ct_error *err) {
        if (len > JOINCONFIG_MAX_SIZE)
                return ct_error_set(err, -EFBIG, L, "too-large", "%zu bytes, at most %u", len, JOINCONFIG_MAX_SIZE);
        json_error_t jerr;
        json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return ct_error_set(err, -EINVAL, L, "json-invalid", "line %d column %d: %s", jerr.line, jerr.column,
                                    jerr.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return ct_error_set(err, -EINVAL, L, "json-invalid", "not a JSON object");
        }
        *ret = j;
        return 0;
}

static int check_keys(json_t *o, const char *const *allowed, size_t n, ct_error *err) {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
                bool ok = false;
                for (size_t i = 0; i < n && !ok; i++)
                        ok = streq(k, allowed[i]);
                if (!ok)
                        return ct_error_set(err, -EINVAL, L, "unknown-key", "unknown key \"%.64s\"", k);
        }
        return 0;
}

int joinconfig_parse_attestation(const uint8_t *buf, size_t len, measurements *ret, ct_error *err) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = load_json(buf, len, &j, err);
        if (r < 0)
                return r;
        static const char *const keys[] = { "measurements" };
        r = check_keys(j, keys, ELEMENTSOF(keys), err);
        if (r < 0)
                return r;
        json_t *map = json_object_get(j, "measurements");
        if (!map)
                return ct_error_set(err, -EINVAL, L, "missing-key", "\"measurements\" is missing");
        return parse_map(map, ret, err);
}

/* ---- signed updates ---- */

int joinconfig_update_canonical(const measurements *m, uint64_t version, uint8_t **ret, size_t *ret_len) {
        size_t len = sizeof UPDATE_DOMAIN + 8 + 1;
        for (size_t i = 0; i < m->n; i++)
                len += 4 + 1 + 1 + m->items[i].len;
        if (m->n > 255)
                return -EINVAL;
        uint8_t *b = malloc(len), *p = b;
        if (!b)
                return -ENOMEM;
        memcpy(p, UPDATE_DOMAIN, sizeof UPDATE_DOMAIN); /* with its NUL */
        p += sizeof UPDATE_DOMAIN;
        for (int i = 7; i >= 0; i--)
                *p++ = (uint8_t) (version >> (8 * i));
        *p++ = (uint8_t) m->n;
        for (size_t i = 0; i < m->n; i++) {
                uint32_t idx = m->items[i].index;
                *p++ = (uint8_t) (idx >> 24);
                *p++ = (uint8_t) (idx >> 16);
                *p++ = (uint8_t) (idx >> 8);
                *p++ = (uint8_t) idx;
                *p++ = m->items[i].warn_only ? 1 : 0;
                *p++ = (uint8_t) m->items[i].len;
                memcpy(p, m->items[i].expected, m->items[i].len);
                p += m->items[i].len;
        }
        *ret = b;
        *ret_len = len;
        return 0;
}

static int update_mac(const measurements *m, uint64_t version, const secret_t *key, uint8_t mac[JOINCONFIG_MAC_LEN]) {
        _cleanup_free_ uint8_t *c = NULL;
        size_t clen;
        int r = joinconfig_update_canonical(m, version, &c, &clen);
        if (r < 0)
                return r;
        unsigned mlen = 0;
        if (!HMAC(EVP_sha256(), key->data, (int) key->len, c, clen, mac, &mlen) || mlen != JOINCONFIG_MAC_LEN)
                return -EIO;
        return 0;
}

static int check_key(const secret_t *key, ct_error *err) {
        if (!key || key->len < 16)
                return ct_error_set(err, -EINVAL, L, "signature-invalid", "no signing key (at least 16 bytes)");
        return 0;
}

int joinconfig_update_sign(const measurements *min, uint64_t version, const secret_t *key, char **ret_json,
                           ct_error *err) {
        int r = check_key(key, err);
        if (r < 0)
                return r;
        if (version == 0 || version > JOINCONFIG_MAX_VERSION)
                return ct_error_set(err, -EINVAL, L, "version-invalid", "version %llu: must be 1..2^53-1",
                                    (unsigned long long) version);
        measurements m = *min;
        r = check_measurements(&m, err);
        if (r < 0)
                return r;
        uint8_t mac[JOINCONFIG_MAC_LEN];
        r = update_mac(&m, version, key, mac);
        if (r < 0)
                return ct_error_set(err, r, L, "signature-invalid", "HMAC-SHA256 failed");
        _cleanup_free_ char *sig = base64_encode(mac, sizeof mac, BASE64_STD);
        json_t *map = measurements_to_json_object(&m);
        json_t *o = map && sig ? json_pack("{s:I,s:o,s:s}", "version", (json_int_t) version, "measurements", map,
                                           "signature", sig)
                               : NULL;
        char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (o)
                json_decref(o);
        if (!s)
                return ct_error_set(err, -ENOMEM, L, "io", "out of memory");
        *ret_json = s;
        return 0;
}

int joinconfig_update_verify(const uint8_t *doc, size_t len, const secret_t *key, uint64_t current_version,
                             measurements *ret_m, uint64_t *ret_version, ct_error *err) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        int r = load_json(doc, len, &j, err);
        if (r < 0)
                return r;
        static const char *const keys[] = { "version", "measurements", "signature" };
        r = check_keys(j, keys, ELEMENTSOF(keys), err);
        if (r < 0)
                return r;
        json_t *jv = json_object_get(j, "version"), *jm = json_object_get(j, "measurements"),
               *js = json_object_get(j, "signature");
        if (!jm)
                return ct_error_set(err, -EINVAL, L, "missing-key", "\"measurements\" is missing");
        if (!js)
                return ct_error_set(err, -EPERM, L, "signature-missing",
                                    "the update is not signed (constellation-attest join-config sign)");
        if (!jv)
                return ct_error_set(err, -EINVAL, L, "missing-key", "\"version\" is missing");
        if (!json_is_integer(jv) || json_integer_value(jv) < 1 ||
            (uint64_t) json_integer_value(jv) > JOINCONFIG_MAX_VERSION)
                return ct_error_set(err, -EINVAL, L, "version-invalid", "\"version\" must be an integer 1..2^53-1");
        uint64_t version = (uint64_t) json_integer_value(jv);
        if (!json_is_string(js))
                return ct_error_set(err, -EINVAL, L, "signature-invalid", "\"signature\" is not a string");
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_len = 0;
        if (base64_decode(json_string_value(js), json_string_length(js), BASE64_STD, &sig, &sig_len) < 0 ||
            sig_len != JOINCONFIG_MAC_LEN)
                return ct_error_set(err, -EPERM, L, "signature-invalid",
                                    "\"signature\" is not base64 of a 32-byte HMAC-SHA256");
        measurements m;
        r = parse_map(jm, &m, err);
        if (r < 0)
                return r;
        r = check_key(key, err);
        if (r < 0)
                return r;
        uint8_t mac[JOINCONFIG_MAC_LEN];
        r = update_mac(&m, version, key, mac);
        if (r < 0)
                return ct_error_set(err, r, L, "signature-invalid", "HMAC-SHA256 failed");
        if (!ct_memeq(mac, sizeof mac, sig, sig_len))
                return ct_error_set(err, -EPERM, L, "signature-invalid",
                                    "the signature does not match the content (tampered, or signed with another "
                                    "cluster's master secret)");
        if (version <= current_version)
                return ct_error_set(err, -EPERM, L, "version-rollback",
                                    "version %llu is not newer than the version in force (%llu)",
                                    (unsigned long long) version, (unsigned long long) current_version);
        *ret_m = m;
        *ret_version = version;
        return 0;
}

int joinconfig_load(const joinconfig_store *store, const secret_t *key, joinconfig *ret, ct_error *err) {
        _cleanup_free_ uint8_t *salt = NULL, *cfg = NULL;
        size_t salt_len = 0, cfg_len = 0;
        int64_t salt_rev = 0, cfg_rev = 0;
        int r = store->load(store->userdata, JOINCONFIG_MEASUREMENT_SALT, 4096, &salt, &salt_len, &salt_rev, err);
        if (r < 0)
                return r;
        if (salt_len != JOINCONFIG_SALT_LEN) {
                erase_memory(salt, salt_len);
                return ct_error_set(err, -EINVAL, L, "salt-invalid", "%s: %zu bytes, must be %d",
                                    JOINCONFIG_MEASUREMENT_SALT, salt_len, JOINCONFIG_SALT_LEN);
        }
        r = store->load(store->userdata, JOINCONFIG_ATTESTATION_CONFIG, JOINCONFIG_MAX_SIZE, &cfg, &cfg_len, &cfg_rev,
                        err);
        if (r < 0) {
                erase_memory(salt, salt_len);
                return r;
        }
        joinconfig c = { .revision = cfg_rev };
        /* A signed update has "signature"; the init form has only "measurements". */
        _cleanup_(json_decrefp) json_t *j = NULL;
        r = load_json(cfg, cfg_len, &j, err);
        if (r < 0)
                return r;
        if (json_object_get(j, "signature") || json_object_get(j, "version")) {
                r = joinconfig_update_verify(cfg, cfg_len, key, 0, &c.m, &c.version, err);
                if (r < 0) {
                        ct_error_prefix(err, "%s", JOINCONFIG_ATTESTATION_CONFIG);
                        return r;
                }
        } else {
                r = joinconfig_parse_attestation(cfg, cfg_len, &c.m, err);
                if (r < 0) {
                        ct_error_prefix(err, "%s", JOINCONFIG_ATTESTATION_CONFIG);
                        return r;
                }
        }
        memcpy(c.salt, salt, JOINCONFIG_SALT_LEN);
        erase_memory(salt, salt_len);
        *ret = c;
        return 0;
}

#define CAS_ATTEMPTS 3

int joinconfig_apply_update(const joinconfig_store *store, const secret_t *key, joinconfig *cfg, const uint8_t *doc,
                            size_t len, bool *ret_refreshed, ct_error *err) {
        bool refreshed = false;
        int r = 0;
        for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
                measurements m;
                uint64_t version;
                int64_t rev = 0;
                ct_error e = CT_ERROR_INIT;
                r = joinconfig_update_verify(doc, len, key, cfg->version, &m, &version, &e);
                if (r >= 0)
                        r = store->save(store->userdata, JOINCONFIG_ATTESTATION_CONFIG, doc, len, cfg->revision, &rev,
                                        &e);
                if (r >= 0) {
                        cfg->m = m;
                        cfg->version = version;
                        cfg->revision = rev;
                        break;
                }
                if (r != -ESTALE) {
                        if (err)
                                *err = e;
                        break;
                }
                /* Another control plane stored a configuration since ours was loaded: that one is in
                 * force now; verify the update against it. */
                joinconfig fresh;
                r = joinconfig_load(store, key, &fresh, err);
                if (r < 0)
                        break;
                *cfg = fresh;
                erase_memory(&fresh, sizeof fresh);
                refreshed = true;
                r = ct_error_set(&e, -ESTALE, L, "update-conflict",
                                 "the stored attestation configuration changed under %d attempts", CAS_ATTEMPTS);
                if (attempt == CAS_ATTEMPTS - 1 && err)
                        *err = e;
        }
        if (ret_refreshed)
                *ret_refreshed = refreshed;
        return r;
}

int joinconfig_refresh(const joinconfig_store *store, const secret_t *key, joinconfig *cfg, bool *ret_changed,
                       ct_error *err) {
        *ret_changed = false;
        joinconfig fresh;
        int r = joinconfig_load(store, key, &fresh, err);
        if (r < 0)
                return r;
        if (fresh.revision != cfg->revision && fresh.version < cfg->version)
                r = ct_error_set(err, -EPERM, L, "version-rollback",
                                 "the store holds version %llu, older than the version in force (%llu): not taken",
                                 (unsigned long long) fresh.version, (unsigned long long) cfg->version);
        else if (fresh.revision != cfg->revision && fresh.version > cfg->version) {
                *cfg = fresh;
                *ret_changed = true;
        }
        erase_memory(&fresh, sizeof fresh);
        return r;
}

int joinconfig_store_init(const joinconfig_store *store, const uint8_t *attestation, size_t attestation_len,
                          const uint8_t salt[static JOINCONFIG_SALT_LEN], ct_error *err) {
        measurements m;
        int r = joinconfig_parse_attestation(attestation, attestation_len, &m, err);
        if (r < 0)
                return r;
        /* Each only if absent (revision 0): a restart after Init never replaces a signed update. */
        ct_error e = CT_ERROR_INIT;
        r = store->save(store->userdata, JOINCONFIG_MEASUREMENT_SALT, salt, JOINCONFIG_SALT_LEN, 0, NULL, &e);
        if (r < 0 && r != -ESTALE) {
                if (err)
                        *err = e;
                return r;
        }
        e = (ct_error) CT_ERROR_INIT;
        r = store->save(store->userdata, JOINCONFIG_ATTESTATION_CONFIG, attestation, attestation_len, 0, NULL, &e);
        if (r < 0 && r != -ESTALE) {
                if (err)
                        *err = e;
                return r;
        }
        return 0;
}
