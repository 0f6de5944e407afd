/* SPDX-License-Identifier: Apache-2.0 */
#include "keyservice.h"
#include "etcd/etcd.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "basic/fileio.h"

static int malformed(ct_error *err, const char *what) {
        return ct_error_set(err, -EBADMSG, "keyservice", "request-malformed", "GetDataKeyRequest: %s", what);
}

/* Base 128 varint, at most 10 bytes; advances *off only on success. */
static int read_varint(const uint8_t *buf, size_t len, size_t *off, uint64_t *ret) {
        uint64_t v = 0;
        for (size_t i = 0; i < 10; i++) {
                if (!bounds_ok(len, *off, i + 1))
                        return -EBADMSG;
                uint8_t b = buf[*off + i];
                if (i == 9 && b > 1)
                        return -EBADMSG; /* more than 64 bits */
                v |= (uint64_t) (b & 0x7f) << (7 * i);
                if (!(b & 0x80)) {
                        *off += i + 1;
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

int keyservice_request_decode(const uint8_t *buf, size_t len, keyservice_request *ret, ct_error *err) {
        keyservice_request req = { .data_key_id = "", .data_key_id_len = 0, .length = 0 };
        size_t off = 0;
        while (off < len) {
                uint64_t tag, v;
                if (read_varint(buf, len, &off, &tag) < 0)
                        return malformed(err, "truncated field tag");
                uint64_t field = tag >> 3;
                unsigned wt = (unsigned) (tag & 7);
                if (field == 0 || field > 536870911u)
                        return malformed(err, "invalid field number");
                switch (wt) {
                case 0:
                        if (read_varint(buf, len, &off, &v) < 0)
                                return malformed(err, "truncated varint");
                        if (field == 2)
                                req.length = (uint32_t) v;
                        else if (field == 1)
                                return malformed(err, "data_key_id (1) is not length-delimited");
                        break;
                case 1:
                case 5: {
                        size_t n = wt == 1 ? 8 : 4;
                        if (field == 1 || field == 2)
                                return malformed(err, "field 1 or 2 with a fixed-size wire type");
                        if (!bounds_ok(len, off, n))
                                return malformed(err, "truncated fixed-size field");
                        off += n;
                        break;
                }
                case 2:
                        if (read_varint(buf, len, &off, &v) < 0)
                                return malformed(err, "truncated length");
                        if (v > len || !bounds_ok(len, off, (size_t) v))
                                return malformed(err, "length-delimited field runs past the message");
                        if (field == 2)
                                return malformed(err, "length (2) is length-delimited");
                        if (field == 1) {
                                req.data_key_id = (const char *) buf + off;
                                req.data_key_id_len = (size_t) v;
                        }
                        off += (size_t) v;
                        break;
                default:
                        return malformed(err, "unsupported wire type (group)");
                }
        }
        *ret = req;
        return 0;
}

size_t keyservice_response_encode(const secret_t *data_key, uint8_t buf[static KEYSERVICE_MAX_RESPONSE]) {
        size_t h = 0;
        buf[h++] = 0x0a; /* field 1, wire type 2 */
        uint64_t v = data_key->len;
        do {
                buf[h++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v);
        memcpy(buf + h, data_key->data, data_key->len);
        return h + data_key->len;
}

int keyservice_get_data_key(kms *k, const uint8_t *req_buf, size_t req_len, uint8_t buf[static KEYSERVICE_MAX_RESPONSE],
                            size_t *ret_len, ct_error *err) {
        keyservice_request req;
        int r = keyservice_request_decode(req_buf, req_len, &req, err);
        if (r < 0)
                return r;
        if (req.data_key_id_len == 0)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_KEY_ID_EMPTY, "data_key_id is empty");
        if (req.data_key_id_len > KMS_MAX_KEY_ID)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_KEY_ID_INVALID,
                                    "data_key_id has %zu bytes, at most %d are allowed", req.data_key_id_len,
                                    KMS_MAX_KEY_ID);
        if (memchr(req.data_key_id, '\0', req.data_key_id_len))
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_KEY_ID_INVALID, "data_key_id contains a NUL byte");
        char id[KMS_MAX_KEY_ID + 1];
        memcpy(id, req.data_key_id, req.data_key_id_len);
        id[req.data_key_id_len] = '\0';

        _cleanup_secret_ secret_t *key = NULL;
        r = kms_get_data_key(k, id, req.length, &key, err);
        if (r < 0)
                return r;
        *ret_len = keyservice_response_encode(key, buf);
        return 0;
}

static int read_checked_file(const char *path, const char *what, size_t min_len, size_t max_len, secret_t **ret,
                             ct_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return ct_error_set(err, -errno, "keyservice", "file-unreadable", "%s (%s): %s", path, what,
                                    strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return ct_error_set(err, -errno, "keyservice", "file-unreadable", "%s (%s): %s", path, what,
                                    strerror(errno));
        if (!S_ISREG(st.st_mode))
                return ct_error_set(err, -EINVAL, "keyservice", "file-unreadable", "%s (%s): not a regular file",
                                    path, what);
        if (st.st_mode & 0077)
                return ct_error_set(err, -EPERM, "keyservice", "file-permissions",
                                    "%s (%s): mode %04o lets group or others read it; it must be 0600 or 0400 "
                                    "(chmod 600 %s)",
                                    path, what, (unsigned) (st.st_mode & 07777), path);
        if ((uint64_t) st.st_size > max_len)
                return ct_error_set(err, -EFBIG, "keyservice", "file-too-large", "%s (%s): %lld bytes, at most %zu",
                                    path, what, (long long) st.st_size, max_len);
        secret_t *s = secret_new((size_t) st.st_size);
        if (!s)
                return ct_error_set(err, -ENOMEM, "keyservice", "out-of-memory", "%s", path);
        size_t got = 0;
        while (got < s->len) {
                ssize_t n = read(fd, s->data + got, s->len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? -errno : -EIO;
                        secret_free(s);
                        return ct_error_set(err, e, "keyservice", "file-unreadable", "%s (%s): short read", path,
                                            what);
                }
                got += (size_t) n;
        }
        if (s->len < min_len) {
                size_t l = s->len;
                secret_free(s);
                return ct_error_set(err, -EINVAL, "keyservice", "file-too-short",
                                    "%s (%s): %zu bytes, at least %zu are needed", path, what, l, min_len);
        }
        *ret = s;
        return 0;
}

int keyservice_read_secret_file(const char *path, const char *what, size_t min_len, secret_t **ret, ct_error *err) {
        return read_checked_file(path, what, min_len, KEYSERVICE_SECRET_FILE_MAX, ret, err);
}

int keyservice_read_kms_uri_file(const char *path, secret_t **ret, ct_error *err) {
        static const char scheme[] = "kms://";
        _cleanup_secret_ secret_t *s = NULL;
        /* + 2: the URI may be followed by "\r\n". */
        int r = read_checked_file(path, "KMS URI", sizeof scheme - 1, KMS_MAX_URI + 2, &s, err);
        if (r < 0)
                return r;
        if (s->len > 0 && s->data[s->len - 1] == '\n')
                s->data[--s->len] = 0;
        if (s->len > 0 && s->data[s->len - 1] == '\r')
                s->data[--s->len] = 0;
        if (memchr(s->data, 0, s->len))
                return ct_error_set(err, -EINVAL, "keyservice", "uri-invalid", "%s (KMS URI): contains a NUL byte", path);
        if (s->len > KMS_MAX_URI)
                return ct_error_set(err, -EFBIG, "keyservice", "file-too-large", "%s (KMS URI): %zu bytes, at most %d",
                                    path, s->len, KMS_MAX_URI);
        if (s->len < sizeof scheme - 1 || memcmp(s->data, scheme, sizeof scheme - 1) != 0)
                return ct_error_set(err, -EINVAL, "keyservice", "uri-invalid", "%s (KMS URI): does not start with %s",
                                    path, scheme);
        *ret = TAKE_PTR(s);
        return 0;
}

static int config_file_exists(const char *dir, const char *name, bool *ret, ct_error *err) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return ct_error_set(err, -ENOMEM, "keyservice", "out-of-memory", "%s", dir);
        struct stat st;
        if (lstat(path, &st) == 0) {
                *ret = true;
                return 0;
        }
        if (errno != ENOENT)
                return ct_error_set(err, -errno, "keyservice", "file-unreadable", "%s: %s", path, strerror(errno));
        *ret = false;
        return 0;
}

int keyservice_config_find(const char *dir, keyservice_config_kind *ret, ct_error *err) {
        bool uri = false, master = false, salt = false;
        int r;
        if ((r = config_file_exists(dir, KEYSERVICE_CONFIG_KMS_URI, &uri, err)) < 0 ||
            (r = config_file_exists(dir, KEYSERVICE_CONFIG_MASTER_SECRET, &master, err)) < 0 ||
            (r = config_file_exists(dir, KEYSERVICE_CONFIG_SALT, &salt, err)) < 0)
                return r;
        if (uri && (master || salt))
                return ct_error_set(err, -EINVAL, "keyservice", "config-ambiguous",
                                    "%s holds both " KEYSERVICE_CONFIG_KMS_URI " and " KEYSERVICE_CONFIG_MASTER_SECRET
                                    "/" KEYSERVICE_CONFIG_SALT "; the bootstrapper writes only one: remove the stale one",
                                    dir);
        if (!uri && !master && !salt)
                return ct_error_set(err, -ENOENT, "keyservice", "config-missing",
                                    "%s holds neither " KEYSERVICE_CONFIG_KMS_URI " nor " KEYSERVICE_CONFIG_MASTER_SECRET
                                    " and " KEYSERVICE_CONFIG_SALT " (is the node initialised?)",
                                    dir);
        *ret = uri ? KEYSERVICE_CONFIG_URI : KEYSERVICE_CONFIG_FILES;
        return 0;
}

/* ---- the shared store ---- */

/* One value: *ret NULL if absent. */
static int etcd_value(struct etcd_client *c, const char *name, size_t min_len, size_t max_len, secret_t **ret,
                      ct_error *err) {
        char key[128];
        snprintf(key, sizeof key, "%s%s", KEYSERVICE_ETCD_PREFIX, name);
        secret_t *v = NULL;
        int64_t rev = 0;
        ct_error e = CT_ERROR_INIT;
        int r = etcd_get(c, key, max_len, &v, &rev, &e);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r == -EFBIG)
                return ct_error_set(err, r, "keyservice", "file-too-large", "%s: larger than %zu bytes", key, max_len);
        if (r < 0) {
                if (err)
                        *err = e;
                return r;
        }
        if (v->len < min_len) {
                size_t n = v->len;
                secret_free(v);
                return ct_error_set(err, -EINVAL, "keyservice", "file-too-short", "%s: %zu bytes, at least %zu", key, n,
                                    min_len);
        }
        *ret = v;
        return 0;
}

int keyservice_open_etcd(struct etcd_client *c, kms **ret, ct_error *err) {
        static const char scheme[] = "kms://";
        _cleanup_secret_ secret_t *uri = NULL, *master = NULL, *salt = NULL;
        int r = etcd_value(c, KEYSERVICE_CONFIG_KMS_URI, sizeof scheme - 1, KMS_MAX_URI, &uri, err);
        if (r >= 0)
                r = etcd_value(c, KEYSERVICE_CONFIG_MASTER_SECRET, KMS_MASTER_SECRET_MIN, KEYSERVICE_SECRET_FILE_MAX,
                               &master, err);
        if (r >= 0)
                r = etcd_value(c, KEYSERVICE_CONFIG_SALT, KMS_SALT_MIN, KEYSERVICE_SECRET_FILE_MAX, &salt, err);
        if (r < 0)
                return r;
        if (uri && (master || salt))
                return ct_error_set(err, -EINVAL, "keyservice", "config-ambiguous",
                                    "%s holds kms-uri and a master secret or salt: the bootstrapper stores one",
                                    KEYSERVICE_ETCD_PREFIX);
        if (uri) {
                if (memchr(uri->data, 0, uri->len) || memcmp(uri->data, scheme, sizeof scheme - 1) != 0)
                        return ct_error_set(err, -EINVAL, "keyservice", "uri-invalid",
                                            "%skms-uri: not a kms:// URI without NUL bytes", KEYSERVICE_ETCD_PREFIX);
                _cleanup_secret_ secret_t *z = secret_new(uri->len + 1);
                if (!z)
                        return ct_error_set(err, -ENOMEM, "keyservice", "out-of-memory", "kms-uri");
                memcpy(z->data, uri->data, uri->len);
                z->data[uri->len] = 0;
                return kms_open((const char *) z->data, KMS_URI_NO_STORE, ret, err);
        }
        if (!master || !salt)
                return ct_error_set(err, -ENOENT, "keyservice", "config-missing",
                                    "%s holds neither kms-uri nor mastersecret and salt (the bootstrapper stores them "
                                    "after Init)",
                                    KEYSERVICE_ETCD_PREFIX);
        return kms_open_cluster(master, salt, ret, err);
}
