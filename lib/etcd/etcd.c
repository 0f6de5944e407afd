/* SPDX-License-Identifier: Apache-2.0 */
#include "etcd/etcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "etcd.pb-c.h"
#include "rpc/rpc.h"
#include "rpc/wipe-alloc.h"

#define L "etcd"
#define MAX_PEM_FILE (64 * 1024)

struct etcd_client {
        rpc_channel *chan;
        int64_t timeout_ms;
        char *endpoint;
};

/* ---- values may be secrets: unpacked with lib/rpc's wiping allocator ---- */

#define DEFINE_UNPACKED_FREE(type, fn)                                                                                 \
        static void fn##_freep(type **p) {                                                                             \
                if (*p)                                                                                                \
                        fn##__free_unpacked(*p, &rpc_wiping_allocator);                                                      \
        }
DEFINE_UNPACKED_FREE(Etcdserverpb__RangeResponse, etcdserverpb__range_response)
DEFINE_UNPACKED_FREE(Etcdserverpb__PutResponse, etcdserverpb__put_response)
DEFINE_UNPACKED_FREE(Etcdserverpb__TxnResponse, etcdserverpb__txn_response)
DEFINE_UNPACKED_FREE(Etcdserverpb__MemberAddResponse, etcdserverpb__member_add_response)
DEFINE_UNPACKED_FREE(Etcdserverpb__MemberListResponse, etcdserverpb__member_list_response)

/* ---- client ---- */

int etcd_client_config_from_pki(const char *endpoint, const char *pki_dir, etcd_client_config *ret,
                                char **ret_storage) {
        size_t dl = strlen(pki_dir);
        size_t need = 3 * (dl + 1) + sizeof ETCD_PKI_CA + sizeof ETCD_PKI_CLIENT_CERT + sizeof ETCD_PKI_CLIENT_KEY;
        char *s = malloc(need), *p = s;
        if (!s)
                return -ENOMEM;
        etcd_client_config c = { .endpoint = endpoint };
        c.ca_file = p;
        p += sprintf(p, "%s/%s", pki_dir, ETCD_PKI_CA) + 1;
        c.cert_file = p;
        p += sprintf(p, "%s/%s", pki_dir, ETCD_PKI_CLIENT_CERT) + 1;
        c.key_file = p;
        sprintf(p, "%s/%s", pki_dir, ETCD_PKI_CLIENT_KEY);
        *ret = c;
        *ret_storage = s;
        return 0;
}

static int read_pem(const char *path, const char *what, char **ret, size_t *ret_len, ct_error *err) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path, MAX_PEM_FILE, &buf, &len);
        if (r < 0)
                return ct_error_set(err, r, L, "config", "%s %s: %s", what, path, strerror(-r));
        if (len == 0 || memchr(buf, 0, len)) {
                erase_and_free_sized(buf, len);
                return ct_error_set(err, -EINVAL, L, "config", "%s %s: not a PEM file", what, path);
        }
        *ret = (char *) buf; /* read_full_file NUL-terminates */
        *ret_len = len;
        return 0;
}

/* The host of "host:port" / "[v6]:port", for the server certificate check. */
static int endpoint_host(const char *endpoint, char *buf, size_t size) {
        const char *colon = strrchr(endpoint, ':');
        if (!colon || colon == endpoint || !colon[1])
                return -EINVAL;
        const char *h = endpoint;
        size_t hl = (size_t) (colon - endpoint);
        if (h[0] == '[') {
                if (hl < 3 || h[hl - 1] != ']')
                        return -EINVAL;
                h++;
                hl -= 2;
        }
        if (hl >= size)
                return -EINVAL;
        memcpy(buf, h, hl);
        buf[hl] = 0;
        return 0;
}

int etcd_client_new(const etcd_client_config *cfg, etcd_client **ret, ct_error *err) {
        char host[256];
        if (!cfg || !cfg->endpoint || endpoint_host(cfg->endpoint, host, sizeof host) < 0)
                return ct_error_set(err, -EINVAL, L, "config", "endpoint \"%.128s\" is not host:port",
                                    cfg && cfg->endpoint ? cfg->endpoint : "");
        if (!cfg->ca_file || !cfg->cert_file || !cfg->key_file)
                return ct_error_set(err, -EINVAL, L, "config", "the etcd CA, client certificate and key are required");
        char *ca = NULL, *cert = NULL, *key = NULL;
        size_t ca_len = 0, cert_len = 0, key_len = 0;
        int r = read_pem(cfg->ca_file, "etcd CA", &ca, &ca_len, err);
        if (r >= 0)
                r = read_pem(cfg->cert_file, "client certificate", &cert, &cert_len, err);
        if (r >= 0)
                r = read_pem(cfg->key_file, "client key", &key, &key_len, err);
        etcd_client *c = NULL;
        if (r >= 0) {
                c = calloc(1, sizeof *c);
                if (!c || !(c->endpoint = strdup(cfg->endpoint)))
                        r = ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
        }
        if (r >= 0) {
                rpc_tls_config tls = { .key_pem = key, .cert_pem = cert, .root_pem = ca, .target_name = host };
                rpc_channel_options o = { .max_receive_message_length = ETCD_MAX_RESPONSE,
                                          .max_send_message_length = ETCD_MAX_REQUEST };
                r = rpc_channel_new(cfg->endpoint, &tls, &o, &c->chan);
                if (r < 0)
                        r = ct_error_set(err, r, L, "config", "cannot create a TLS channel to %s", cfg->endpoint);
        }
        erase_and_free_sized(key, key_len);
        free(cert);
        free(ca);
        if (r < 0) {
                etcd_client_free(c);
                return r;
        }
        c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : ETCD_DEFAULT_TIMEOUT_MS;
        *ret = c;
        return 0;
}

void etcd_client_free(etcd_client *c) {
        if (!c)
                return;
        rpc_channel_free(c->chan);
        free(c->endpoint);
        free(c);
}

const char *etcd_client_endpoint(const etcd_client *c) {
        return c->endpoint;
}

/* One unary call; the reply in *ret (free with erase_and_free_sized). */
static int call(etcd_client *c, const char *method, const ProtobufCMessage *req, uint8_t **ret, size_t *ret_len,
                ct_error *err) {
        size_t n = protobuf_c_message_get_packed_size(req);
        if (n > ETCD_MAX_REQUEST)
                return ct_error_set(err, -EFBIG, L, "too-large", "%s: request of %zu bytes", method, n);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
                return ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
        protobuf_c_message_pack(req, buf);
        rpc_status st = { 0 };
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        int r = rpc_unary(c->chan, method, buf, n, c->timeout_ms, &resp, &resp_len, &st);
        erase_and_free_sized(buf, n);
        if (r < 0)
                return ct_error_set(err, r, L, "unreachable", "%s %s: %s", c->endpoint, method, strerror(-r));
        if (st.code != GRPC_STATUS_OK) {
                const char *m = st.message ? st.message : "";
                if (st.code == GRPC_STATUS_UNAVAILABLE && (strstr(m, "andshake failed") || strstr(m, "certificate")))
                        r = ct_error_set(err, -ECONNREFUSED, L, "tls-refused", "%s %s: %.300s", c->endpoint, method, m);
                else if (st.code == GRPC_STATUS_UNAVAILABLE && !strstr(m, "unhealthy cluster"))
                        r = ct_error_set(err, -ECONNREFUSED, L, "unreachable", "%s %s: UNAVAILABLE: %.300s",
                                         c->endpoint, method, m);
                /* Our deadline reaches etcd with the call; when etcd's copy of it expires first, etcd
                 * answers UNKNOWN "context deadline exceeded": the same timeout. */
                else if (st.code == GRPC_STATUS_DEADLINE_EXCEEDED ||
                         (st.code == GRPC_STATUS_UNKNOWN && strstr(m, "deadline exceeded")))
                        r = ct_error_set(err, -ETIMEDOUT, L, "timeout", "%s %s: no answer within %lld ms: %.300s",
                                         c->endpoint, method, (long long) c->timeout_ms, m);
                /* etcd's membership refusals (api/v3rpc/rpctypes), each its own reason: callers act on them. */
                else if (st.code == GRPC_STATUS_NOT_FOUND && strstr(m, "member not found"))
                        r = ct_error_set(err, -ENOENT, L, "not-found", "%s %s: %.300s", c->endpoint, method, m);
                else if (st.code == GRPC_STATUS_FAILED_PRECONDITION && strstr(m, "in sync with leader"))
                        r = ct_error_set(err, -EAGAIN, L, "learner-not-ready", "%s %s: %.300s", c->endpoint, method, m);
                else if (st.code == GRPC_STATUS_FAILED_PRECONDITION && strstr(m, "can only promote a learner"))
                        r = ct_error_set(err, -EALREADY, L, "not-learner", "%s %s: %.300s", c->endpoint, method, m);
                else if (st.code == GRPC_STATUS_FAILED_PRECONDITION && strstr(m, "too many learner"))
                        r = ct_error_set(err, -EBUSY, L, "too-many-learners", "%s %s: %.300s", c->endpoint, method, m);
                else if (st.code == GRPC_STATUS_FAILED_PRECONDITION && strstr(m, "Peer URLs already exists"))
                        r = ct_error_set(err, -EEXIST, L, "peer-url-exists", "%s %s: %.300s", c->endpoint, method, m);
                else if ((st.code == GRPC_STATUS_FAILED_PRECONDITION && strstr(m, "not enough started members")) ||
                         (st.code == GRPC_STATUS_UNAVAILABLE && strstr(m, "unhealthy cluster")))
                        r = ct_error_set(err, -EBUSY, L, "quorum-at-risk", "%s %s: %.300s", c->endpoint, method, m);
                else
                        r = ct_error_set(err, -EIO, L, "rpc-status", "%s %s: %s: %.300s", c->endpoint, method,
                                         rpc_status_code_to_string(st.code), m);
                rpc_status_done(&st);
                return r;
        }
        rpc_status_done(&st);
        *ret = resp;
        *ret_len = resp_len;
        return 0;
}

static int check_key(const char *key, ct_error *err) {
        size_t n = key ? strlen(key) : 0;
        if (n == 0 || n > ETCD_MAX_KEY)
                return ct_error_set(err, -EINVAL, L, "config", "key of %zu bytes (1..%d)", n, ETCD_MAX_KEY);
        return 0;
}

/* ---- parsers of etcd's replies ---- */

static int malformed(ct_error *err, const char *what) {
        return ct_error_set(err, -EBADMSG, L, "response-malformed", "%s", what);
}

static bool key_is(const ProtobufCBinaryData *k, const char *key) {
        size_t n = strlen(key);
        return k->len == n && memcmp(k->data, key, n) == 0;
}

/* One key value of a single-key Range: none, or exactly `key` with sane revisions. */
static int range_kv(const Etcdserverpb__RangeResponse *m, const char *key, const Etcdserverpb__KeyValue **ret,
                    ct_error *err) {
        if (m->n_kvs > 1 || m->more)
                return malformed(err, "a single-key Range answered more than one key");
        if (m->n_kvs == 0) {
                *ret = NULL;
                return 0;
        }
        const Etcdserverpb__KeyValue *kv = m->kvs[0];
        if (!kv || !key_is(&kv->key, key))
                return malformed(err, "Range answered another key");
        if (kv->mod_revision <= 0 || kv->create_revision <= 0 || kv->mod_revision < kv->create_revision)
                return malformed(err, "Range answered a key with impossible revisions");
        *ret = kv;
        return 0;
}

int etcd_parse_range_response(const uint8_t *buf, size_t len, const char *key, size_t max_value,
                              secret_t **ret_value, int64_t *ret_mod_revision, ct_error *err) {
        if (len > ETCD_MAX_RESPONSE)
                return ct_error_set(err, -EFBIG, L, "too-large", "RangeResponse of %zu bytes", len);
        _cleanup_(etcdserverpb__range_response_freep) Etcdserverpb__RangeResponse *m =
                etcdserverpb__range_response__unpack(&rpc_wiping_allocator, len, buf);
        if (!m)
                return malformed(err, "RangeResponse does not unpack");
        const Etcdserverpb__KeyValue *kv = NULL;
        int r = range_kv(m, key, &kv, err);
        if (r < 0)
                return r;
        if (!kv)
                return ct_error_set(err, -ENOENT, L, "not-found", "%s does not exist", key);
        if (kv->value.len > max_value)
                return ct_error_set(err, -EFBIG, L, "too-large", "%s: %zu bytes, at most %zu", key, kv->value.len,
                                    max_value);
        secret_t *v = secret_new_copy(kv->value.data, kv->value.len);
        if (!v)
                return ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
        *ret_value = v;
        *ret_mod_revision = kv->mod_revision;
        return 0;
}

static int header_revision(const Etcdserverpb__ResponseHeader *h, int64_t *ret, ct_error *err) {
        if (!h || h->revision <= 0)
                return malformed(err, "reply without a header revision");
        *ret = h->revision;
        return 0;
}

int etcd_parse_put_response(const uint8_t *buf, size_t len, int64_t *ret_revision, ct_error *err) {
        if (len > ETCD_MAX_RESPONSE)
                return ct_error_set(err, -EFBIG, L, "too-large", "PutResponse of %zu bytes", len);
        _cleanup_(etcdserverpb__put_response_freep) Etcdserverpb__PutResponse *m =
                etcdserverpb__put_response__unpack(&rpc_wiping_allocator, len, buf);
        if (!m)
                return malformed(err, "PutResponse does not unpack");
        return header_revision(m->header, ret_revision, err);
}

int etcd_parse_cas_response(const uint8_t *buf, size_t len, const char *key, bool *ret_succeeded,
                            int64_t *ret_revision, ct_error *err) {
        if (len > ETCD_MAX_RESPONSE)
                return ct_error_set(err, -EFBIG, L, "too-large", "TxnResponse of %zu bytes", len);
        _cleanup_(etcdserverpb__txn_response_freep) Etcdserverpb__TxnResponse *m =
                etcdserverpb__txn_response__unpack(&rpc_wiping_allocator, len, buf);
        if (!m)
                return malformed(err, "TxnResponse does not unpack");
        int64_t rev = 0;
        int r = header_revision(m->header, &rev, err);
        if (r < 0)
                return r;
        /* We sent one operation per branch: a Put on success, a Range of key on failure. */
        if (m->n_responses != 1 || !m->responses[0])
                return malformed(err, "TxnResponse without exactly one operation result");
        const Etcdserverpb__ResponseOp *op = m->responses[0];
        if (m->succeeded) {
                if (op->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT)
                        return malformed(err, "a succeeded compare-and-swap did not answer its Put");
                *ret_succeeded = true;
                *ret_revision = rev;
                return 0;
        }
        if (op->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE || !op->response_range)
                return malformed(err, "a failed compare-and-swap did not answer its Range");
        const Etcdserverpb__KeyValue *kv = NULL;
        r = range_kv(op->response_range, key, &kv, err);
        if (r < 0)
                return r;
        *ret_succeeded = false;
        *ret_revision = kv ? kv->mod_revision : 0;
        return 0;
}

void etcd_members_done(etcd_members *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++) {
                free(m->items[i].name);
                for (char **p = m->items[i].peer_urls; p && *p; p++)
                        free(*p);
                free(m->items[i].peer_urls);
                for (char **p = m->items[i].client_urls; p && *p; p++)
                        free(*p);
                free(m->items[i].client_urls);
        }
        free(m->items);
        *m = (etcd_members){ 0 };
}

static char **strv_copy(char **v, size_t n) {
        char **out = calloc(n + 1, sizeof(char *));
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!v[i] || !(out[i] = strdup(v[i]))) {
                        for (size_t j = 0; j < i; j++)
                                free(out[j]);
                        free(out);
                        return NULL;
                }
        return out;
}

#define MAX_URLS 16

static int copy_members(Etcdserverpb__Member **v, size_t n, etcd_members *ret, ct_error *err) {
        if (n == 0 || n > ETCD_MAX_MEMBERS)
                return ct_error_set(err, -EBADMSG, L, "response-malformed", "%zu members (1..%d)", n, ETCD_MAX_MEMBERS);
        etcd_members out = { .items = calloc(n, sizeof(etcd_member)) };
        if (!out.items)
                return ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
        for (size_t i = 0; i < n; i++) {
                const Etcdserverpb__Member *m = v[i];
                if (!m || m->id == 0 || m->n_peerurls == 0 || m->n_peerurls > MAX_URLS || m->n_clienturls > MAX_URLS ||
                    strlen(m->name) > 255) {
                        etcd_members_done(&out);
                        return malformed(err, "a member without an ID or peer URL, or with too many URLs");
                }
                etcd_member *o = &out.items[out.n++];
                o->id = m->id;
                o->learner = m->islearner;
                if (!(o->name = strdup(m->name)) || !(o->peer_urls = strv_copy(m->peerurls, m->n_peerurls)) ||
                    !(o->client_urls = strv_copy(m->clienturls, m->n_clienturls))) {
                        etcd_members_done(&out);
                        return ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
                }
        }
        *ret = out;
        return 0;
}

int etcd_parse_members_response(const uint8_t *buf, size_t len, bool member_add, etcd_members *ret, ct_error *err) {
        if (len > ETCD_MAX_RESPONSE)
                return ct_error_set(err, -EFBIG, L, "too-large", "member reply of %zu bytes", len);
        if (!member_add) {
                _cleanup_(etcdserverpb__member_list_response_freep) Etcdserverpb__MemberListResponse *m =
                        etcdserverpb__member_list_response__unpack(&rpc_wiping_allocator, len, buf);
                if (!m)
                        return malformed(err, "MemberListResponse does not unpack");
                return copy_members(m->members, m->n_members, ret, err);
        }
        _cleanup_(etcdserverpb__member_add_response_freep) Etcdserverpb__MemberAddResponse *m =
                etcdserverpb__member_add_response__unpack(&rpc_wiping_allocator, len, buf);
        if (!m)
                return malformed(err, "MemberAddResponse does not unpack");
        if (!m->member || m->member->id == 0)
                return malformed(err, "MemberAddResponse without the new member");
        bool listed = false;
        for (size_t i = 0; i < m->n_members && !listed; i++)
                listed = m->members[i] && m->members[i]->id == m->member->id;
        if (!listed)
                return malformed(err, "MemberAddResponse: the new member is not in the member list");
        int r = copy_members(m->members, m->n_members, ret, err);
        if (r >= 0)
                ret->added_id = m->member->id;
        return r;
}

/* ---- operations ---- */

int etcd_get(etcd_client *c, const char *key, size_t max_value, secret_t **ret_value, int64_t *ret_mod_revision,
             ct_error *err) {
        int r = check_key(key, err);
        if (r < 0)
                return r;
        Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){ strlen(key), (uint8_t *) key };
        req.limit = 1;
        uint8_t *resp = NULL;
        size_t len = 0;
        r = call(c, ETCD_METHOD_RANGE, &req.base, &resp, &len, err);
        if (r < 0)
                return r;
        r = etcd_parse_range_response(resp, len, key, max_value, ret_value, ret_mod_revision, err);
        erase_and_free_sized(resp, len);
        return r;
}

int etcd_put(etcd_client *c, const char *key, const void *value, size_t len, int64_t *ret_revision, ct_error *err) {
        int r = check_key(key, err);
        if (r < 0)
                return r;
        Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
        req.key = (ProtobufCBinaryData){ strlen(key), (uint8_t *) key };
        req.value = (ProtobufCBinaryData){ len, (uint8_t *) value };
        uint8_t *resp = NULL;
        size_t rlen = 0;
        r = call(c, ETCD_METHOD_PUT, &req.base, &resp, &rlen, err);
        if (r < 0)
                return r;
        int64_t rev = 0;
        r = etcd_parse_put_response(resp, rlen, &rev, err);
        erase_and_free_sized(resp, rlen);
        if (r >= 0 && ret_revision)
                *ret_revision = rev;
        return r;
}

int etcd_cas(etcd_client *c, const char *key, int64_t expected, const void *value, size_t len, int64_t *ret_revision,
             int64_t *ret_current, ct_error *err) {
        int r = check_key(key, err);
        if (r < 0)
                return r;
        if (expected < 0)
                return ct_error_set(err, -EINVAL, L, "config", "expected revision %lld", (long long) expected);
        ProtobufCBinaryData k = { strlen(key), (uint8_t *) key };
        /* mod_revision(key) == expected; etcd compares an absent key's revisions as 0. */
        Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
        cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        cmp.key = k;
        cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        cmp.mod_revision = expected;
        Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
        put.key = k;
        put.value = (ProtobufCBinaryData){ len, (uint8_t *) value };
        Etcdserverpb__RangeRequest get = ETCDSERVERPB__RANGE_REQUEST__INIT;
        get.key = k;
        get.limit = 1;
        get.keys_only = true; /* the failure branch only needs the revision, never the value */
        Etcdserverpb__RequestOp on_success = ETCDSERVERPB__REQUEST_OP__INIT, on_failure = ETCDSERVERPB__REQUEST_OP__INIT;
        on_success.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        on_success.request_put = &put;
        on_failure.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        on_failure.request_range = &get;
        Etcdserverpb__Compare *cmps[] = { &cmp };
        Etcdserverpb__RequestOp *succ[] = { &on_success }, *fail[] = { &on_failure };
        Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
        req.n_compare = 1;
        req.compare = cmps;
        req.n_success = 1;
        req.success = succ;
        req.n_failure = 1;
        req.failure = fail;
        uint8_t *resp = NULL;
        size_t rlen = 0;
        r = call(c, ETCD_METHOD_TXN, &req.base, &resp, &rlen, err);
        if (r < 0)
                return r;
        bool ok = false;
        int64_t rev = 0;
        r = etcd_parse_cas_response(resp, rlen, key, &ok, &rev, err);
        erase_and_free_sized(resp, rlen);
        if (r < 0)
                return r;
        if (!ok) {
                if (ret_current)
                        *ret_current = rev;
                return ct_error_set(err, -ESTALE, L, "compare-failed",
                                    "%s: revision %lld in force, expected %lld (another writer was first)", key,
                                    (long long) rev, (long long) expected);
        }
        if (ret_revision)
                *ret_revision = rev;
        return 0;
}

int etcd_member_list(etcd_client *c, etcd_members *ret, ct_error *err) {
        Etcdserverpb__MemberListRequest req = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
        uint8_t *resp = NULL;
        size_t len = 0;
        int r = call(c, ETCD_METHOD_MEMBER_LIST, &req.base, &resp, &len, err);
        if (r < 0)
                return r;
        r = etcd_parse_members_response(resp, len, false, ret, err);
        erase_and_free_sized(resp, len);
        return r;
}

static int member_add(etcd_client *c, const char *peer_url, bool learner, etcd_members *ret, ct_error *err) {
        if (!peer_url || strncmp(peer_url, "https://", 8) != 0 || strlen(peer_url) > 255)
                return ct_error_set(err, -EINVAL, L, "config", "peer URL must be https://host:port");
        Etcdserverpb__MemberAddRequest req = ETCDSERVERPB__MEMBER_ADD_REQUEST__INIT;
        char *urls[] = { (char *) peer_url };
        req.n_peerurls = 1;
        req.peerurls = urls;
        req.islearner = learner;
        uint8_t *resp = NULL;
        size_t len = 0;
        int r = call(c, ETCD_METHOD_MEMBER_ADD, &req.base, &resp, &len, err);
        if (r < 0)
                return r;
        r = etcd_parse_members_response(resp, len, true, ret, err);
        erase_and_free_sized(resp, len);
        return r;
}

int etcd_member_add(etcd_client *c, const char *peer_url, etcd_members *ret, ct_error *err) {
        return member_add(c, peer_url, false, ret, err);
}

int etcd_member_add_learner(etcd_client *c, const char *peer_url, etcd_members *ret, ct_error *err) {
        return member_add(c, peer_url, true, ret, err);
}

/* MemberRemove and MemberPromote answer {header, repeated Member members = 2}: MemberListResponse's
 * layout, so the same parser checks them. */
static int member_by_id(etcd_client *c, const char *method, uint64_t id, etcd_members *ret, ct_error *err) {
        if (id == 0)
                return ct_error_set(err, -EINVAL, L, "config", "member ID 0");
        uint8_t *resp = NULL;
        size_t len = 0;
        int r;
        if (streq(method, ETCD_METHOD_MEMBER_REMOVE)) {
                Etcdserverpb__MemberRemoveRequest req = ETCDSERVERPB__MEMBER_REMOVE_REQUEST__INIT;
                req.id = id;
                r = call(c, method, &req.base, &resp, &len, err);
        } else {
                Etcdserverpb__MemberPromoteRequest req = ETCDSERVERPB__MEMBER_PROMOTE_REQUEST__INIT;
                req.id = id;
                r = call(c, method, &req.base, &resp, &len, err);
        }
        if (r < 0)
                return r;
        etcd_members m = { 0 };
        r = etcd_parse_members_response(resp, len, false, &m, err);
        erase_and_free_sized(resp, len);
        if (r < 0)
                return r;
        if (ret)
                *ret = m;
        else
                etcd_members_done(&m);
        return 0;
}

int etcd_member_remove(etcd_client *c, uint64_t id, etcd_members *ret, ct_error *err) {
        return member_by_id(c, ETCD_METHOD_MEMBER_REMOVE, id, ret, err);
}

int etcd_member_promote(etcd_client *c, uint64_t id, etcd_members *ret, ct_error *err) {
        return member_by_id(c, ETCD_METHOD_MEMBER_PROMOTE, id, ret, err);
}

/* ---- membership of a joining control plane ---- */

int etcd_initial_cluster(const etcd_members *m, uint64_t self, const char *self_name, char **ret) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
                return -ENOMEM;
        bool first = true;
        for (size_t i = 0; i < m->n; i++)
                for (char **u = m->items[i].peer_urls; u && *u; u++) {
                        const char *name = m->items[i].id == self ? self_name : m->items[i].name;
                        fprintf(f, "%s%s=%s", first ? "" : ",", name, *u);
                        first = false;
                }
        if (fclose(f) != 0) {
                free(out);
                return -ENOMEM;
        }
        *ret = out;
        return 0;
}

int etcd_join_learner(etcd_client *c, const char *name, const char *peer_url, char **ret_initial_cluster,
                      uint64_t *ret_id, ct_error *err) {
        if (isempty(name) || strlen(name) > 253 || strpbrk(name, "=,\n"))
                return ct_error_set(err, -EINVAL, L, "config", "member name invalid");
        etcd_members m = { 0 };
        int r = etcd_member_list(c, &m, err);
        if (r < 0)
                return r;
        /* An earlier incarnation of this node (an attempt that never started its member, or a node whose
         * state disk was formatted again): its member goes first. A voter that is down can only be
         * removed while the others keep a quorum; etcd refuses otherwise and so do we. */
        uint64_t stale = 0;
        for (size_t i = 0; i < m.n && !stale; i++)
                for (char **u = m.items[i].peer_urls; u && *u && !stale; u++)
                        if (streq(*u, peer_url))
                                stale = m.items[i].id;
        etcd_members_done(&m);
        if (stale) {
                r = etcd_member_remove(c, stale, NULL, err);
                if (r < 0 && r != -ENOENT) {
                        ct_error_prefix(err, "removing the earlier member %llx of %s", (unsigned long long) stale,
                                        peer_url);
                        return r;
                }
        }
        /* etcd derives a member's ID from its peer URLs and the time in seconds: a member added again
         * within the second its removed namesake was added gets the removed ID, which etcd refuses
         * forever (ErrIDRemoved, reported as "member not found"). The next second gives a new ID. */
        for (int attempt = 0;; attempt++) {
                r = etcd_member_add_learner(c, peer_url, &m, err);
                if (r != -ENOENT || attempt == 2)
                        break;
                struct timespec ts = { 1, 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        if (r < 0)
                return r;
        _cleanup_free_ char *ic = NULL;
        uint64_t id = m.added_id;
        r = etcd_initial_cluster(&m, id, name, &ic);
        etcd_members_done(&m);
        if (r < 0)
                return ct_error_set(err, r, L, "internal", "out of memory");
        *ret_initial_cluster = TAKE_PTR(ic);
        if (ret_id)
                *ret_id = id;
        return stale ? 1 : 0;
}

void etcd_learners_done(etcd_learners *t) {
        if (t)
                *t = (etcd_learners){ 0 };
}

int etcd_tend_learners(etcd_client *c, etcd_learners *t, int64_t now_ms, int64_t timeout_ms,
                       void (*report)(void *userdata, uint64_t id, const char *peer_url, bool promoted,
                                      const ct_error *why),
                       void *userdata, ct_error *err) {
        etcd_members m = { 0 };
        int r = etcd_member_list(c, &m, err);
        if (r < 0)
                return r;
        etcd_learners next = { 0 };
        int pending = 0;
        for (size_t i = 0; i < m.n; i++) {
                const etcd_member *e = &m.items[i];
                if (!e->learner)
                        continue;
                int64_t since = now_ms;
                for (size_t k = 0; k < t->n; k++)
                        if (t->items[k].id == e->id)
                                since = t->items[k].since_ms;
                ct_error e2 = CT_ERROR_INIT;
                int q = etcd_member_promote(c, e->id, NULL, &e2);
                if (q >= 0 || q == -EALREADY || q == -ENOENT) { /* promoted (here, or by another control plane) */
                        if (q >= 0 && report)
                                report(userdata, e->id, e->peer_urls[0], true, NULL);
                        continue;
                }
                if (now_ms - since >= timeout_ms) {
                        /* A learner is no voter: removing it never needs it, and its absence never
                         * costs the quorum. */
                        ct_error e3 = CT_ERROR_INIT;
                        int d = etcd_member_remove(c, e->id, NULL, &e3);
                        if (d >= 0 || d == -ENOENT) {
                                if (d >= 0 && report)
                                        report(userdata, e->id, e->peer_urls[0], false, &e2);
                                continue;
                        }
                }
                if (next.n < ETCD_MAX_MEMBERS)
                        next.items[next.n++] = (etcd_learner){ .id = e->id, .since_ms = since };
                pending++;
        }
        etcd_members_done(&m);
        *t = next;
        return pending;
}
