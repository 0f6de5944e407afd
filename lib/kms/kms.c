/* SPDX-License-Identifier: Apache-2.0 */
/* kms:// and storage:// URIs (Constellation internal/kms/uri) and backend dispatch. */
#include <ctype.h>
#include <stdlib.h>

#include "basic/encoding.h"
#include "kms/kms-internal.h"

#define KMS_MAX_PARAMS 32

typedef struct kms_param {
        char *name;
        secret_t *value; /* text, NUL-terminated (secret_t always is) */
} kms_param;

struct kms_uri {
        char scheme[16];
        char host[64];
        kms_param params[KMS_MAX_PARAMS];
        size_t n_params;
};

struct kms {
        const kms_backend_ops *ops;
        void *state;
};

/* One name from backends[]: kms://<name>?... */
static const struct {
        const char *host;
        kms_backend_open_fn open;
} backends[] = {
        { "cluster-kms", kms_cluster_open },
        { "kmip", kms_kmip_open },
};

/* Go url.QueryUnescape: "+" -> " ", "%XX" -> byte; a bad escape is an error. out must hold len
 * bytes; *ret_len <= len. */
static int query_unescape(const char *s, size_t len, char *out, size_t *ret_len) {
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '%') {
                        if (!bounds_ok(len, i + 1, 2))
                                return -EINVAL;
                        int hi = hex_digit_value((unsigned char) s[i + 1]), lo = hex_digit_value((unsigned char) s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        out[o++] = (char) (hi << 4 | lo);
                        i += 2;
                } else if (s[i] == '+')
                        out[o++] = ' ';
                else
                        out[o++] = s[i];
        }
        *ret_len = o;
        return 0;
}

void kms_uri_free(kms_uri *u) {
        if (!u)
                return;
        for (size_t i = 0; i < u->n_params; i++) {
                free(u->params[i].name);
                secret_free(u->params[i].value);
        }
        free(u);
}

static int uri_malformed(ct_error *err, const char *what) {
        return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_MALFORMED, "%s", what);
}

/* name=value: both unescaped once (url.ParseQuery), the value once more (Constellation's
 * getQueryParameter). */
static int parse_param(kms_uri *u, const char *p, size_t len, ct_error *err) {
        if (u->n_params >= KMS_MAX_PARAMS)
                return uri_malformed(err, "URI has too many query parameters");
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t) (eq - p) : len;
        const char *v = eq ? eq + 1 : p + len;
        size_t vlen = eq ? len - nlen - 1 : 0;

        _cleanup_free_ char *name = malloc(nlen + 1);
        _cleanup_secret_ secret_t *once = secret_new(vlen + 1);
        if (!name || !once)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "URI parameter");
        size_t n;
        if (query_unescape(p, nlen, name, &n) < 0)
                return uri_malformed(err, "bad %-escape in a query parameter name");
        name[n] = '\0';
        if (memchr(name, '\0', n))
                return uri_malformed(err, "NUL in a query parameter name");
        size_t m;
        if (query_unescape(v, vlen, (char *) once->data, &m) < 0)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_MALFORMED,
                                    "bad %%-escape in the value of query parameter \"%s\"", name);
        secret_t *twice = secret_new(m + 1);
        if (!twice)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "URI parameter");
        size_t t;
        if (query_unescape((const char *) once->data, m, (char *) twice->data, &t) < 0) {
                secret_free(twice);
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_MALFORMED,
                                    "bad %%-escape in the value of query parameter \"%s\"", name);
        }
        twice->data[t] = '\0';
        twice->len = t;
        if (memchr(twice->data, '\0', t)) {
                secret_free(twice);
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_MALFORMED,
                                    "NUL in the value of query parameter \"%s\"", name);
        }
        u->params[u->n_params].name = TAKE_PTR(name);
        u->params[u->n_params].value = twice;
        u->n_params++;
        return 0;
}

int kms_uri_parse(const char *uri, kms_uri **ret, ct_error *err) {
        if (!uri)
                return uri_malformed(err, "no URI");
        size_t len = strnlen(uri, KMS_MAX_URI + 1);
        if (len > KMS_MAX_URI)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_MALFORMED, "URI longer than %d bytes",
                                    KMS_MAX_URI);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) uri[i] < 0x20 || uri[i] == 0x7f)
                        return uri_malformed(err, "control character in URI");
        if (memchr(uri, '#', len))
                return uri_malformed(err, "URI has a fragment ('#')");

        _cleanup_(kms_uri_freep) kms_uri *u = calloc(1, sizeof(*u));
        if (!u)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "URI");

        /* scheme "://" (RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), case-insensitive) */
        const char *sep = strstr(uri, "://");
        if (!sep || sep == uri || (size_t) (sep - uri) >= sizeof u->scheme)
                return uri_malformed(err, "URI is not of the form scheme://host?parameters");
        for (const char *c = uri; c < sep; c++) {
                if (!(isalpha((unsigned char) *c) || (c > uri && (isdigit((unsigned char) *c) || strchr("+-.", *c)))))
                        return uri_malformed(err, "URI scheme has an invalid character");
                u->scheme[c - uri] = (char) tolower((unsigned char) *c);
        }

        const char *host = sep + 3;
        size_t hlen = strcspn(host, "/?");
        if (hlen >= sizeof u->host)
                return uri_malformed(err, "URI host too long");
        for (size_t i = 0; i < hlen; i++)
                if (!(isalnum((unsigned char) host[i]) || strchr("-._:", host[i])))
                        return uri_malformed(err, "URI host has an invalid character");
        memcpy(u->host, host, hlen);
        const char *rest = host + hlen;
        if (*rest == '/')
                rest++; /* "storage://no-store/" */
        if (*rest && *rest != '?')
                return uri_malformed(err, "URI has a path (only scheme://host?parameters)");
        if (*rest == '?') {
                const char *q = rest + 1;
                while (*q) {
                        size_t plen = strcspn(q, "&");
                        if (memchr(q, ';', plen))
                                return uri_malformed(err, "';' in the URI query (Go's url.ParseQuery refuses it)");
                        if (plen > 0) {
                                int r = parse_param(u, q, plen, err);
                                if (r < 0)
                                        return r;
                        }
                        q += plen;
                        if (*q == '&')
                                q++;
                }
        }
        *ret = TAKE_PTR(u);
        return 0;
}

const char *kms_uri_scheme(const kms_uri *u) {
        return u->scheme;
}

const char *kms_uri_host(const kms_uri *u) {
        return u->host;
}

const char *kms_uri_get(const kms_uri *u, const char *name) {
        for (size_t i = 0; i < u->n_params; i++)
                if (streq(u->params[i].name, name))
                        return (const char *) u->params[i].value->data;
        return NULL;
}

int kms_uri_get_base64(const kms_uri *u, const char *name, secret_t **ret, ct_error *err) {
        const char *v = kms_uri_get(u, name);
        if (isempty(v))
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_PARAMETER_MISSING,
                                    "kms://%s: query parameter \"%s\" is missing or empty", u->host, name);
        size_t vlen = strlen(v);
        _cleanup_free_ uint8_t *raw = NULL;
        size_t raw_len = 0;
        /* Go base64.URLEncoding: '=' padding is required. */
        if (vlen % 4 != 0 || base64_decode(v, vlen, BASE64_URL, &raw, &raw_len) < 0)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_PARAMETER_INVALID,
                                    "kms://%s: query parameter \"%s\" is not padded base64url (RFC 4648 §5)",
                                    u->host, name);
        secret_t *s = secret_new_copy(raw, raw_len);
        erase_memory(raw, raw_len);
        if (!s)
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "URI parameter");
        *ret = s;
        return 0;
}

static int kms_new(const kms_backend_ops *ops, void *state, kms **ret, ct_error *err) {
        kms *k = calloc(1, sizeof(*k));
        if (!k) {
                ops->free(state);
                return ct_error_set(err, -ENOMEM, "kms", "out-of-memory", "KMS");
        }
        k->ops = ops;
        k->state = state;
        *ret = k;
        return 0;
}

int kms_open(const char *kms_uri_s, const char *storage_uri_s, kms **ret, ct_error *err) {
        _cleanup_(kms_uri_freep) kms_uri *u = NULL, *st = NULL;
        int r;

        if (!isempty(storage_uri_s)) {
                r = kms_uri_parse(storage_uri_s, &st, err);
                if (r < 0) {
                        ct_error_prefix(err, "storage URI");
                        return r;
                }
                if (!streq(st->scheme, "storage"))
                        return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_SCHEME,
                                            "storage URI: scheme \"%s\", expected storage://", st->scheme);
                if (!streq(st->host, "no-store") || st->n_params > 0)
                        return ct_error_set(err, -EOPNOTSUPP, "kms", KMS_REASON_STORAGE_UNSUPPORTED,
                                            "storage://%s: only %s is supported", st->host, KMS_URI_NO_STORE);
        }

        r = kms_uri_parse(kms_uri_s, &u, err);
        if (r < 0) {
                ct_error_prefix(err, "KMS URI");
                return r;
        }
        if (!streq(u->scheme, "kms"))
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_URI_SCHEME, "KMS URI: scheme \"%s\", expected kms://",
                                    u->scheme);
        for (size_t i = 0; i < ELEMENTSOF(backends); i++) {
                if (!streq(u->host, backends[i].host))
                        continue;
                const kms_backend_ops *ops = NULL;
                void *state = NULL;
                r = backends[i].open(u, &ops, &state, err);
                if (r < 0)
                        return r;
                return kms_new(ops, state, ret, err);
        }
        return ct_error_set(err, -EOPNOTSUPP, "kms", KMS_REASON_BACKEND_UNKNOWN,
                            "kms://%s: unknown KMS backend (supported: cluster-kms, kmip)", u->host);
}

int kms_open_cluster(const secret_t *master_secret, const secret_t *salt, kms **ret, ct_error *err) {
        const kms_backend_ops *ops = NULL;
        void *state = NULL;
        int r = kms_cluster_new(master_secret, salt, &ops, &state, err);
        if (r < 0)
                return r;
        return kms_new(ops, state, ret, err);
}

int kms_get_data_key(kms *k, const char *key_id, size_t length, secret_t **ret, ct_error *err) {
        if (isempty(key_id))
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_KEY_ID_EMPTY, "data key ID is empty");
        size_t idlen = strnlen(key_id, KMS_MAX_KEY_ID + 1);
        if (idlen > KMS_MAX_KEY_ID)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_KEY_ID_INVALID,
                                    "data key ID is longer than %d bytes", KMS_MAX_KEY_ID);
        if (length == 0 || length > KMS_MAX_DATA_KEY_LENGTH)
                return ct_error_set(err, -EINVAL, "kms", KMS_REASON_LENGTH_INVALID,
                                    "data key length %zu, must be 1..%d (HKDF-SHA256: 255 * 32)", length,
                                    KMS_MAX_DATA_KEY_LENGTH);
        secret_t *key = NULL;
        int r = k->ops->get_data_key(k->state, key_id, length, &key, err);
        if (r < 0)
                return r;
        *ret = key;
        return 0;
}

const char *kms_backend_name(const kms *k) {
        return k->ops->name;
}

void kms_free(kms *k) {
        if (!k)
                return;
        if (k->ops)
                k->ops->free(k->state);
        free(k);
}
