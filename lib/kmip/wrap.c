/* SPDX-License-Identifier: Apache-2.0 */
/* Master-secret wrapping through a KMIP server and the kms://kmip parameters (wrap.h). */
#include "kmip/wrap.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>

#include "basic/encoding.h"
#include "basic/fileio.h"

#define LAYER "kmip"
#define AAD_LABEL "constellation-kmip-wrap-v1"
#define PEM_MAX (64 * 1024)

/* AAD = label || 0 || uid || 0 || salt (wrap.h). */
static int build_aad(const char *kek_uid, const secret_t *salt, uint8_t **ret, size_t *ret_len) {
        size_t lab = sizeof(AAD_LABEL) - 1, ul = strlen(kek_uid);
        if (salt->len > SIZE_MAX - lab - ul - 2)
                return -E2BIG;
        size_t n = lab + 1 + ul + 1 + salt->len;
        uint8_t *a = malloc(n);
        if (!a)
                return -ENOMEM;
        memcpy(a, AAD_LABEL, lab);
        a[lab] = 0;
        memcpy(a + lab + 1, kek_uid, ul);
        a[lab + 1 + ul] = 0;
        memcpy(a + lab + 2 + ul, salt->data, salt->len);
        *ret = a;
        *ret_len = n;
        return 0;
}

static void aad_free(uint8_t *a, size_t n) {
        if (a) {
                erase_memory(a, n); /* holds the salt */
                free(a);
        }
}

int kmip_wrap_master_secret(kmip_client *c, const char *kek_uid, const secret_t *master_secret,
                            const secret_t *salt, uint8_t **ret_blob, size_t *ret_blob_len, ct_error *err) {
        if (master_secret->len < KMIP_WRAP_SECRET_MIN || master_secret->len > KMIP_WRAP_SECRET_MAX)
                return ct_error_set(err, -EINVAL, LAYER, "bad-master-secret",
                                    "master secret has %zu bytes (%d..%d are allowed)", master_secret->len,
                                    KMIP_WRAP_SECRET_MIN, KMIP_WRAP_SECRET_MAX);
        if (isempty(kek_uid))
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "no KEK unique identifier");
        uint8_t nonce[KMIP_GCM_NONCE_SIZE], tag[KMIP_GCM_TAG_SIZE];
        if (RAND_bytes(nonce, sizeof(nonce)) != 1)
                return ct_error_set(err, -EIO, LAYER, "random-failed", "no random nonce");
        uint8_t *aad = NULL;
        size_t aad_len = 0;
        int r = build_aad(kek_uid, salt, &aad, &aad_len);
        if (r < 0)
                return r;
        uint8_t *ct = NULL;
        size_t ct_len = 0;
        r = kmip_encrypt_gcm(c, kek_uid, master_secret, aad, aad_len, nonce, &ct, &ct_len, tag, err);
        aad_free(aad, aad_len);
        if (r < 0)
                return r;
        size_t n = KMIP_WRAP_OVERHEAD + ct_len;
        uint8_t *blob = malloc(n);
        if (!blob) {
                free(ct);
                return -ENOMEM;
        }
        blob[0] = KMIP_WRAP_VERSION;
        memcpy(blob + 1, nonce, sizeof(nonce));
        memcpy(blob + 1 + sizeof(nonce), tag, sizeof(tag));
        memcpy(blob + KMIP_WRAP_OVERHEAD, ct, ct_len);
        free(ct);
        *ret_blob = blob;
        *ret_blob_len = n;
        return 0;
}

int kmip_unwrap_master_secret(kmip_client *c, const char *kek_uid, const uint8_t *blob, size_t blob_len,
                              const secret_t *salt, secret_t **ret_master_secret, ct_error *err) {
        /* Shape first: version, then a ciphertext of an allowed master-secret length. */
        if (blob_len < KMIP_WRAP_OVERHEAD || blob[0] != KMIP_WRAP_VERSION)
                return ct_error_set(err, -EBADMSG, LAYER, "bad-wrapped",
                                    "wrapped master secret: not a version-%d blob (%zu bytes)", KMIP_WRAP_VERSION,
                                    blob_len);
        size_t ct_len = blob_len - KMIP_WRAP_OVERHEAD;
        if (ct_len < KMIP_WRAP_SECRET_MIN || ct_len > KMIP_WRAP_SECRET_MAX)
                return ct_error_set(err, -EBADMSG, LAYER, "bad-wrapped",
                                    "wrapped master secret: %zu ciphertext bytes (%d..%d expected)", ct_len,
                                    KMIP_WRAP_SECRET_MIN, KMIP_WRAP_SECRET_MAX);
        uint8_t *aad = NULL;
        size_t aad_len = 0;
        int r = build_aad(kek_uid, salt, &aad, &aad_len);
        if (r < 0)
                return r;
        r = kmip_decrypt_gcm(c, kek_uid, blob + KMIP_WRAP_OVERHEAD, ct_len, aad, aad_len, blob + 1,
                             blob + 1 + KMIP_GCM_NONCE_SIZE, ret_master_secret, err);
        aad_free(aad, aad_len);
        return r;
}

int kmip_load_pem_ref(const char *ref, const char *what, secret_t **ret, ct_error *err) {
        if (isempty(ref))
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "%s: missing", what);
        uint8_t *data = NULL;
        size_t len = 0;
        int r;
        if (ref[0] == '/') {
                r = read_full_file(ref, PEM_MAX, &data, &len);
                if (r < 0)
                        return ct_error_set(err, r, LAYER, "bad-config", "%s: %s: %s", what, ref, strerror(-r));
        } else if (strncmp(ref, "base64:", 7) == 0) {
                const char *b = ref + 7;
                r = base64_decode(b, strlen(b), BASE64_URL, &data, &len);
                if (r < 0)
                        r = base64_decode(b, strlen(b), BASE64_URL_RAW, &data, &len);
                if (r < 0)
                        return ct_error_set(err, r, LAYER, "bad-config", "%s: inline value is not base64url", what);
        } else
                return ct_error_set(err, -EINVAL, LAYER, "bad-config",
                                    "%s: neither an absolute path nor base64:<base64url PEM>", what);
        if (len == 0 || !memmem(data, len, "-----BEGIN ", 11)) {
                erase_memory(data, len);
                free(data);
                return ct_error_set(err, -EBADMSG, LAYER, "bad-config", "%s: not PEM", what);
        }
        secret_t *s = secret_new_copy(data, len);
        erase_memory(data, len);
        free(data);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *ret) {
        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v == 0 || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

int kmip_config_from_params(const kmip_uri_params *p, kmip_config *ret, ct_error *err) {
        kmip_config c = { 0 };
        _cleanup_secret_ secret_t *cert = NULL, *ca = NULL;
        int r;
        if (isempty(p->endpoint))
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "endpoint: missing");
        r = kmip_parse_endpoint(p->endpoint, &c.host, &c.port);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "bad-config", "endpoint: \"%s\" is not host:port", p->endpoint);
        if ((r = kmip_load_pem_ref(p->client_cert, "client-cert", &cert, err)) < 0 ||
            (r = kmip_load_pem_ref(p->client_key, "client-key", &c.client_key_pem, err)) < 0 ||
            (r = kmip_load_pem_ref(p->server_ca, "server-ca", &ca, err)) < 0)
                goto fail;
        c.client_cert_pem = strdup((const char *) cert->data);
        c.server_ca_pem = strdup((const char *) ca->data);
        if (!isempty(p->server_name))
                c.server_name = strdup(p->server_name);
        if (!c.client_cert_pem || !c.server_ca_pem || (!isempty(p->server_name) && !c.server_name)) {
                r = -ENOMEM;
                goto fail;
        }
        if (p->timeout_ms && parse_uint(p->timeout_ms, 600000, &c.timeout_ms) < 0) {
                r = ct_error_set(err, -EINVAL, LAYER, "bad-config", "timeout-ms: not 1..600000");
                goto fail;
        }
        if (p->attempts && parse_uint(p->attempts, 20, &c.attempts) < 0) {
                r = ct_error_set(err, -EINVAL, LAYER, "bad-config", "attempts: not 1..20");
                goto fail;
        }
        *ret = c;
        return 0;
fail:
        kmip_config_done(&c);
        return r;
}

static bool path_ref_ok(const char *s) {
        if (strncmp(s, "base64:", 7) == 0) {
                for (const char *p = s + 7; *p; p++)
                        if (!(isalnum((unsigned char) *p) || *p == '-' || *p == '_' || *p == '='))
                                return false;
                return true;
        }
        if (s[0] != '/')
                return false;
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char) *p) || strchr("/._:@,-", *p)))
                        return false;
        return true;
}

struct ubuf {
        char *s;
        size_t len, cap;
        bool failed;
};

static void ub_add(struct ubuf *b, const char *s, size_t n) {
        if (b->failed)
                return;
        if (b->cap - b->len <= n) {
                size_t cap = MAX(b->cap * 2, b->len + n + 256);
                char *p = malloc(cap);
                if (!p) {
                        b->failed = true;
                        return;
                }
                if (b->s) {
                        memcpy(p, b->s, b->len);
                        erase_memory(b->s, b->cap); /* may hold an inline client key */
                        free(b->s);
                }
                b->s = p;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

static void ub_str(struct ubuf *b, const char *s) {
        ub_add(b, s, strlen(s));
}

/* Percent-encodes everything but RFC 3986 unreserved characters and `keep`. */
static void ub_escaped(struct ubuf *b, const char *s, const char *keep) {
        for (const char *p = s; *p; p++) {
                if (isalnum((unsigned char) *p) || strchr("-._~", *p) || strchr(keep, *p))
                        ub_add(b, p, 1);
                else {
                        char e[4];
                        snprintf(e, sizeof(e), "%%%02X", (unsigned char) *p);
                        ub_add(b, e, 3);
                }
        }
}

int kmip_uri_build(const kmip_uri_parts *p, char **ret, ct_error *err) {
        if (isempty(p->endpoint) || isempty(p->kek) || !p->wrapped || !p->salt || isempty(p->client_cert) ||
            isempty(p->client_key) || isempty(p->server_ca))
                return ct_error_set(err, -EINVAL, LAYER, "bad-config",
                                    "endpoint, kek, wrapped, salt, client-cert, client-key and server-ca are required");
        char *host = NULL;
        uint16_t port;
        if (kmip_parse_endpoint(p->endpoint, &host, &port) < 0)
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "endpoint: \"%s\" is not host:port",
                                    p->endpoint);
        free(host);
        const char *refs[][2] = { { "client-cert", p->client_cert },
                                  { "client-key", p->client_key },
                                  { "server-ca", p->server_ca } };
        for (size_t i = 0; i < ELEMENTSOF(refs); i++)
                if (!path_ref_ok(refs[i][1]))
                        return ct_error_set(err, -EINVAL, LAYER, "bad-config",
                                            "%s: use an absolute path of [A-Za-z0-9/._:@,-] or base64:<base64url>",
                                            refs[i][0]);
        _cleanup_free_ char *w = base64_encode(p->wrapped, p->wrapped_len, BASE64_URL);
        _cleanup_erase_free_ char *s = base64_encode(p->salt->data, p->salt->len, BASE64_URL);
        if (!w || !s)
                return -ENOMEM;
        struct ubuf b = { 0 };
        ub_str(&b, "kms://kmip?endpoint=");
        ub_escaped(&b, p->endpoint, ":[]");
        ub_str(&b, "&kek=");
        ub_escaped(&b, p->kek, "");
        ub_str(&b, "&wrapped=");
        ub_str(&b, w);
        ub_str(&b, "&salt=");
        ub_str(&b, s);
        for (size_t i = 0; i < ELEMENTSOF(refs); i++) {
                ub_str(&b, "&");
                ub_str(&b, refs[i][0]);
                ub_str(&b, "=");
                ub_str(&b, refs[i][1]);
        }
        if (!isempty(p->server_name)) {
                ub_str(&b, "&server-name=");
                ub_escaped(&b, p->server_name, ":");
        }
        if (b.failed) {
                if (b.s) {
                        erase_memory(b.s, b.cap);
                        free(b.s);
                }
                return -ENOMEM;
        }
        *ret = b.s;
        return 0;
}
