/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parser of the node metadata document (metadata.h): size first, then JSON with duplicate
 * keys refused, then every key known, then each field's type, length and alphabet. */
#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "metadata/metadata.h"

#define LAYER "metadata"

const char *metadata_role_to_string(metadata_role role) {
        switch (role) {
        case METADATA_ROLE_CONTROL_PLANE:
                return "control-plane";
        case METADATA_ROLE_WORKER:
                return "worker";
        default:
                return "unknown";
        }
}

void metadata_done(metadata *m) {
        if (!m)
                return;
        free(m->name);
        free(m->vpc_ip);
        free(m->init_secret_hash);
        for (size_t i = 0; i < m->n_join_endpoints; i++)
                free(m->join_endpoints[i]);
        free(m->join_endpoints);
        for (size_t i = 0; i < m->n_control_plane_ips; i++)
                free(m->control_plane_ips[i]);
        free(m->control_plane_ips);
        free(m->uid);
        free(m->endpoint);
        *m = (metadata){ 0 };
}

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* DNS-1123 subdomain (Kubernetes node names): labels of [a-z0-9-] starting and ending with an
 * alphanumeric, separated by dots, each <= 63, whole <= 253. */
static bool valid_dns_subdomain(const char *s, size_t max) {
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        size_t label = 0;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!is_lower_alnum(c) && c != '-')
                        return false;
                if (label == 0 && c == '-')
                        return false;
                if (++label > 63)
                        return false;
        }
        return label > 0 && s[n - 1] != '-';
}

bool metadata_valid_node_name(const char *s) {
        return s && valid_dns_subdomain(s, METADATA_NAME_MAX);
}

bool metadata_valid_ip(const char *s) {
        if (!s || strlen(s) >= INET6_ADDRSTRLEN)
                return false;
        uint8_t buf[16];
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A host: an IPv4 address or a DNS name (letters may be upper case in host names). */
static bool valid_host(const char *s) {
        if (metadata_valid_ip(s) && !strchr(s, ':'))
                return true;
        size_t n = strlen(s);
        if (n == 0 || n > 253)
                return false;
        char lower[254];
        for (size_t i = 0; i <= n; i++)
                lower[i] = (char) ((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
        return valid_dns_subdomain(lower, 253);
}

bool metadata_valid_endpoint(const char *s) {
        if (!s)
                return false;
        size_t n = strlen(s);
        if (n == 0 || n > 300)
                return false;
        const char *colon;
        char host[300];
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return false;
                size_t hl = (size_t) (close - s - 1);
                if (hl == 0 || hl >= sizeof host)
                        return false;
                memcpy(host, s + 1, hl);
                host[hl] = 0;
                uint8_t buf[16];
                if (inet_pton(AF_INET6, host, buf) != 1)
                        return false;
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || colon == s)
                        return false;
                size_t hl = (size_t) (colon - s);
                if (hl >= sizeof host)
                        return false;
                memcpy(host, s, hl);
                host[hl] = 0;
                if (!valid_host(host))
                        return false;
        }
        const char *p = colon + 1;
        size_t pl = strlen(p);
        if (pl == 0 || pl > 5 || p[0] == '0')
                return false;
        unsigned port = 0;
        for (size_t i = 0; i < pl; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return false;
                port = port * 10 + (unsigned) (p[i] - '0');
        }
        return port >= 1 && port <= 65535;
}

/* Modular Crypt Format of bcrypt: "$2" [aby] "$" cost(2 digits, 04..31) "$" 53 chars of
 * "./A-Za-z0-9" (22 salt + 31 hash). Go's golang.org/x/crypto/bcrypt writes "$2a$". */
bool metadata_valid_bcrypt_hash(const char *s) {
        if (!s || strlen(s) != METADATA_BCRYPT_HASH_LEN)
                return false;
        if (s[0] != '$' || s[1] != '2' || (s[2] != 'a' && s[2] != 'b' && s[2] != 'y') || s[3] != '$')
                return false;
        if (s[4] < '0' || s[4] > '3' || s[5] < '0' || s[5] > '9' || s[6] != '$')
                return false;
        int cost = (s[4] - '0') * 10 + (s[5] - '0');
        if (cost < 4 || cost > 31)
                return false;
        for (size_t i = 7; i < METADATA_BCRYPT_HASH_LEN; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '/'))
                        return false;
        }
        return true;
}

/* The out-of-cluster endpoint: a host name or an IPv4/IPv6 address. */
static bool valid_endpoint_host(const char *s) {
        return metadata_valid_ip(s) || valid_host(s);
}

static bool valid_uid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_lower_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static int take_string(json_t *obj, const char *key, bool required, bool (*valid)(const char *), const char *what,
                       char **ret, ct_error *err) {
        json_t *v = json_object_get(obj, key);
        if (!v) {
                if (required)
                        return ct_error_set(err, -EBADMSG, LAYER, "missing-field", "\"%s\" is missing", key);
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return ct_error_set(err, -EBADMSG, LAYER, "bad-field", "\"%s\" is not a string", key);
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || !valid(s))
                return ct_error_set(err, -EBADMSG, LAYER, "bad-field", "\"%s\" is not %s", key, what);
        char *c = strdup(s);
        if (!c)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        *ret = c;
        return 0;
}

static const char *const known_keys[] = { "name", "role", "vpc_ip", "init_secret_hash", "join_endpoints", "uid",
                                          "endpoint", "control_plane_ips" };

/* An optional array of at most max strings, each valid(): a NUL-free copy in *ret / *ret_n. */
static int take_string_array(json_t *root, const char *key, size_t max, bool (*valid)(const char *),
                             const char *what, char ***ret, size_t *ret_n, ct_error *err) {
        json_t *je = json_object_get(root, key);
        if (!je)
                return 0;
        if (!json_is_array(je))
                return ct_error_set(err, -EBADMSG, LAYER, "bad-field", "\"%s\" is not an array", key);
        size_t n = json_array_size(je);
        if (n > max)
                return ct_error_set(err, -EBADMSG, LAYER, "bad-field", "\"%s\" has %zu entries, at most %zu allowed",
                                    key, n, max);
        if (n > 0) {
                *ret = calloc(n, sizeof(char *));
                if (!*ret)
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(je, i);
                if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e) ||
                    !valid(json_string_value(e)))
                        return ct_error_set(err, -EBADMSG, LAYER, "bad-field", "\"%s\"[%zu] is not %s", key, i, what);
                (*ret)[i] = strdup(json_string_value(e));
                if (!(*ret)[i])
                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                (*ret_n)++;
        }
        return 0;
}

int metadata_parse(const char *json, size_t len, metadata *ret, ct_error *err) {
        if (!json || !ret)
                return ct_error_set(err, -EINVAL, LAYER, "internal", "no document");
        if (len > METADATA_MAX_SIZE)
                return ct_error_set(err, -EFBIG, LAYER, "too-large", "document has %zu bytes, at most %u allowed",
                                    len, METADATA_MAX_SIZE);
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return ct_error_set(err, -EBADMSG, LAYER, "not-json", "line %d column %d: %.120s", jerr.line,
                                    jerr.column, jerr.text);
        if (!json_is_object(root))
                return ct_error_set(err, -EBADMSG, LAYER, "not-object", "document is not a JSON object");

        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(known_keys); i++)
                        known = known || streq(key, known_keys[i]);
                if (!known)
                        return ct_error_set(err, -EBADMSG, LAYER, "unknown-field", "unknown field \"%.64s\"", key);
        }

        _cleanup_(metadata_done) metadata m = { 0 };
        _cleanup_free_ char *role = NULL;
        int r;
        if ((r = take_string(root, "name", true, metadata_valid_node_name, "a DNS-1123 node name", &m.name, err)) < 0)
                return r;
        json_t *rv = json_object_get(root, "role");
        if (!rv)
                return ct_error_set(err, -EBADMSG, LAYER, "missing-field", "\"role\" is missing");
        if (!json_is_string(rv))
                return ct_error_set(err, -EBADMSG, LAYER, "bad-field", "\"role\" is not a string");
        if (streq(json_string_value(rv), "control-plane"))
                m.role = METADATA_ROLE_CONTROL_PLANE;
        else if (streq(json_string_value(rv), "worker"))
                m.role = METADATA_ROLE_WORKER;
        else
                return ct_error_set(err, -EBADMSG, LAYER, "bad-field",
                                    "\"role\" is neither \"control-plane\" nor \"worker\"");
        if ((r = take_string(root, "vpc_ip", true, metadata_valid_ip, "an IPv4 or IPv6 address", &m.vpc_ip, err)) < 0)
                return r;
        if ((r = take_string(root, "init_secret_hash", m.role == METADATA_ROLE_CONTROL_PLANE,
                             metadata_valid_bcrypt_hash, "a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31, 60 characters)",
                             &m.init_secret_hash, err)) < 0)
                return r;
        if ((r = take_string(root, "uid", false, valid_uid, "at most 64 of [a-z0-9-]", &m.uid, err)) < 0)
                return r;
        if ((r = take_string(root, "endpoint", false, valid_endpoint_host, "a host name or IP address", &m.endpoint,
                             err)) < 0)
                return r;

        if ((r = take_string_array(root, "join_endpoints", METADATA_MAX_JOIN_ENDPOINTS, metadata_valid_endpoint,
                                   "a \"host:port\" string", &m.join_endpoints, &m.n_join_endpoints, err)) < 0 ||
            (r = take_string_array(root, "control_plane_ips", METADATA_MAX_CONTROL_PLANES, metadata_valid_ip,
                                   "an IPv4 or IPv6 address", &m.control_plane_ips, &m.n_control_plane_ips, err)) < 0)
                return r;
        *ret = m;
        m = (metadata){ 0 };
        return 0;
}

int metadata_read(const char *path, metadata *ret, ct_error *err) {
        if (!path) {
                const char *e = getenv(METADATA_PATH_ENV);
                path = !isempty(e) ? e : METADATA_FW_CFG_PATH;
        }
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path, METADATA_MAX_SIZE, &buf, &len);
        if (r == -EFBIG)
                return ct_error_set(err, r, LAYER, "too-large", "%s: more than %u bytes", path, METADATA_MAX_SIZE);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "unreadable", "%s: %s", path, strerror(-r));
        r = metadata_parse((const char *) buf, len, ret, err);
        if (r < 0)
                ct_error_prefix(err, "%s", path);
        return r;
}

/* Compared as addresses, not strings: "::1" and "0::1" are one address. */
static bool same_ip(const char *a, const char *b) {
        unsigned char x[16], y[16];
        if (inet_pton(AF_INET, a, x) == 1)
                return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
        return inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
}

bool metadata_is_control_plane_ip(const metadata *m, const char *ip) {
        for (size_t i = 0; m && ip && i < m->n_control_plane_ips; i++)
                if (same_ip(m->control_plane_ips[i], ip))
                        return true;
        return false;
}
