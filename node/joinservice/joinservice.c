/* SPDX-License-Identifier: Apache-2.0 */
#include "joinservice.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "crypto/hkdf.h"
#include "join.pb-c.h"
#include "joinclient/joinclient.h"
#include "keyservice.pb-c.h"
#include "service/service.h"

#define L "join"
#define KEYSERVICE_METHOD "/kms.API/GetDataKey"
#define TOKEN_TIMEOUT_MS 30000
#define CP_FILE_MAX (64 * 1024)

extern char **environ;

/* ---- keys ---- */

int join_keys_open(const char *uri, const char *keyservice, join_keys *ret, ct_error *err) {
        join_keys k = { .timeout_ms = JOIN_KEY_TIMEOUT_MS };
        if (!isempty(uri)) {
                int r = kms_open(uri, NULL, &k.kms, err);
                if (r < 0)
                        return r;
        } else {
                int r = rpc_channel_new(keyservice ?: JOIN_KEYSERVICE, NULL, NULL, &k.chan);
                if (r < 0)
                        return ct_error_set(err, r, L, "keys-unavailable", "key service channel to %s",
                                            keyservice ?: JOIN_KEYSERVICE);
        }
        *ret = k;
        return 0;
}

void join_keys_done(join_keys *k) {
        if (!k)
                return;
        kms_free(k->kms);
        rpc_channel_free(k->chan);
        *k = (join_keys){ 0 };
}

int join_keys_get(join_keys *k, const char *id, size_t length, secret_t **ret, ct_error *err) {
        if (k->kms)
                return kms_get_data_key(k->kms, id, length, ret, err);
        Kms__GetDataKeyRequest req = KMS__GET_DATA_KEY_REQUEST__INIT;
        req.data_key_id = (char *) id;
        req.length = (uint32_t) length;
        uint8_t buf[KMS_MAX_KEY_ID + 16];
        if (kms__get_data_key_request__get_packed_size(&req) > sizeof buf)
                return ct_error_set(err, -EINVAL, L, "keys-unavailable", "key ID too long");
        size_t n = kms__get_data_key_request__pack(&req, buf);
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        rpc_status st = { 0 };
        int r = rpc_unary(k->chan, KEYSERVICE_METHOD, buf, n, k->timeout_ms, &resp, &resp_len, &st);
        if (r < 0 || st.code != GRPC_STATUS_OK) {
                /* The key service's messages hold reasons, never keys. */
                r = ct_error_set(err, -EAGAIN, L, "keys-unavailable", "key service %s: %s%s%s",
                                 KEYSERVICE_METHOD, r < 0 ? strerror(-r) : "status ",
                                 r < 0 ? "" : rpc_status_code_to_string(st.code), "");
                if (st.message)
                        ct_error_prefix(err, "%s", st.message);
                rpc_status_done(&st);
                erase_and_free_sized(resp, resp_len);
                return r;
        }
        rpc_status_done(&st);
        Kms__GetDataKeyResponse *m = kms__get_data_key_response__unpack(&rpc_wiping_allocator, resp_len, resp);
        erase_and_free_sized(resp, resp_len);
        if (!m || m->data_key.len != length) {
                if (m)
                        kms__get_data_key_response__free_unpacked(m, &rpc_wiping_allocator);
                return ct_error_set(err, -EAGAIN, L, "keys-unavailable", "key service answered no %zu-byte key",
                                    length);
        }
        secret_t *s = secret_new_copy(m->data_key.data, m->data_key.len);
        kms__get_data_key_response__free_unpacked(m, &rpc_wiping_allocator);
        if (!s)
                return ct_error_set(err, -ENOMEM, L, "keys-unavailable", "out of memory");
        *ret = s;
        return 0;
}

/* ---- policy ---- */

static int policy_new(const joinconfig *cfg, join_policy **ret) {
        join_policy *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        atomic_init(&p->refs, 1);
        p->version = cfg->version;
        for (size_t i = 0; i < cfg->m.n; i++) {
                p->items[i] = (attdoc_measurement){ .index = cfg->m.items[i].index,
                                                    .expected_len = cfg->m.items[i].len,
                                                    .warn_only = cfg->m.items[i].warn_only };
                memcpy(p->items[i].expected, cfg->m.items[i].expected, cfg->m.items[i].len);
        }
        p->policy = (atls_qemu_vtpm_policy){ .measurements = p->items, .n_measurements = cfg->m.n };
        p->validator = atls_qemu_vtpm_validator(&p->policy);
        *ret = p;
        return 0;
}

static void policy_unref(join_policy *p) {
        if (p && atomic_fetch_sub(&p->refs, 1) == 1)
                free(p);
}

static join_policy *policy_get(joinservice *js) {
        pthread_mutex_lock(&js->lock);
        join_policy *p = js->policy;
        atomic_fetch_add(&p->refs, 1);
        pthread_mutex_unlock(&js->lock);
        return p;
}

static int js_validate(void *userdata, const uint8_t *doc, size_t doc_len, const uint8_t *nonce, size_t nonce_len,
                       uint8_t **ret_user_data, size_t *ret_user_data_len, atls_error *err) {
        joinservice *js = userdata;
        join_policy *p = policy_get(js);
        int r = p->validator.validate(p->validator.userdata, doc, doc_len, nonce, nonce_len, ret_user_data,
                                      ret_user_data_len, err);
        if (r < 0)
                atomic_fetch_add(&js->refused, 1);
        policy_unref(p);
        return r;
}

atls_validator joinservice_validator(joinservice *js) {
        return (atls_validator){ .oid = ATLS_OID_QEMU_VTPM, .name = "qemu-vtpm", .validate = js_validate, .userdata = js };
}

/* ---- init ---- */

int join_ca_cert_hash(X509 *ca, char ret[static 72]) {
        uint8_t *der = NULL;
        int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(ca), &der);
        if (n <= 0)
                return -EIO;
        uint8_t h[SHA256_DIGEST_LENGTH];
        SHA256(der, (size_t) n, h);
        OPENSSL_free(der);
        _cleanup_free_ char *hex = hex_encode(h, sizeof h);
        if (!hex)
                return -ENOMEM;
        snprintf(ret, 72, "sha256:%s", hex);
        return 0;
}

int joinservice_init(joinservice *js, const join_options *opt, ct_error *err) {
        *js = (joinservice){ .opt = *opt };
        pthread_mutex_init(&js->lock, NULL);
        pthread_mutex_init(&js->update_lock, NULL);
        pthread_mutex_init(&js->members_lock, NULL);
        int r = pki_load_ca(opt->pki_dir, PKI_CA_KUBERNETES, &js->ca, err);
        if (r < 0) {
                ct_error_prefix(err, "cluster CA in %s", opt->pki_dir);
                goto fail;
        }
        if (join_ca_cert_hash(js->ca.cert, js->ca_hash) < 0) {
                r = ct_error_set(err, -EIO, L, "ca-unavailable", "cannot hash the CA's public key");
                goto fail;
        }
        r = join_keys_get(opt->keys, JOINCONFIG_SIGNING_KEY_ID, JOINCONFIG_SIGNING_KEY_LEN, &js->signing_key, err);
        if (r < 0)
                goto fail;
        r = joinconfig_load(opt->store, js->signing_key, &js->config, err);
        if (r < 0)
                goto fail;
        r = policy_new(&js->config, &js->policy);
        if (r < 0) {
                r = ct_error_set(err, r, L, "internal", "out of memory");
                goto fail;
        }
        return 0;
fail:
        joinservice_done(js);
        return r;
}

void joinservice_done(joinservice *js) {
        if (!js)
                return;
        pki_ca_done(&js->ca);
        secret_free(js->signing_key);
        js->signing_key = NULL;
        policy_unref(js->policy);
        js->policy = NULL;
        erase_memory(js->config.salt, sizeof js->config.salt);
        pthread_mutex_destroy(&js->lock);
        pthread_mutex_destroy(&js->update_lock);
        pthread_mutex_destroy(&js->members_lock);
}

/* ---- requests ---- */

int join_uuid_normalize(const char *in, size_t len, char out[static JOIN_UUID_LEN + 1], ct_error *err) {
        if (len != JOIN_UUID_LEN)
                return ct_error_set(err, -EINVAL, L, "uuid-invalid",
                                    "disk_uuid has %zu characters, a LUKS2 UUID has 36 (8-4-4-4-12 hex digits)", len);
        for (size_t i = 0; i < JOIN_UUID_LEN; i++) {
                char c = in[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? c != '-' : !isxdigit((unsigned char) c))
                        return ct_error_set(err, -EINVAL, L, "uuid-invalid",
                                            "disk_uuid: character %zu is not %s (8-4-4-4-12 hex digits)", i,
                                            dash ? "'-'" : "a hex digit");
                out[i] = (char) tolower((unsigned char) c);
        }
        out[JOIN_UUID_LEN] = '\0';
        return 0;
}

int join_request_parse(const uint8_t *buf, size_t len, join_request *ret, ct_error *err) {
        if (len > JOIN_MAX_REQUEST)
                return ct_error_set(err, -EINVAL, L, "request-malformed", "%zu bytes, at most %d", len,
                                    JOIN_MAX_REQUEST);
        Join__IssueJoinTicketRequest *m = join__issue_join_ticket_request__unpack(NULL, len, buf);
        if (!m)
                return ct_error_set(err, -EINVAL, L, "request-malformed", "IssueJoinTicketRequest does not unpack");
        /* Re-packing to the same length rules out unknown fields and a NUL inside disk_uuid (which
         * protobuf-c would silently cut short). */
        if (m->base.n_unknown_fields > 0 || join__issue_join_ticket_request__get_packed_size(m) != len) {
                join__issue_join_ticket_request__free_unpacked(m, NULL);
                return ct_error_set(err, -EINVAL, L, "request-malformed",
                                    "IssueJoinTicketRequest has unknown fields or a NUL in a string");
        }
        join_request r = { .msg = m, .csr = m->certificate_request.data, .csr_len = m->certificate_request.len,
                           .control_plane = m->is_control_plane };
        int k = join_uuid_normalize(m->disk_uuid, strlen(m->disk_uuid), r.uuid, err);
        if (k < 0) {
                join__issue_join_ticket_request__free_unpacked(m, NULL);
                return k;
        }
        if (r.csr_len == 0) {
                join__issue_join_ticket_request__free_unpacked(m, NULL);
                return ct_error_set(err, -EINVAL, "pki", "csr-malformed", "certificate_request is empty");
        }
        *ret = r;
        return 0;
}

void join_request_done(join_request *r) {
        if (r && r->msg)
                join__issue_join_ticket_request__free_unpacked(r->msg, NULL);
        if (r)
                r->msg = NULL;
}

int join_rejoin_request_parse(const uint8_t *buf, size_t len, char uuid[static JOIN_UUID_LEN + 1], ct_error *err) {
        if (len > JOIN_MAX_REQUEST)
                return ct_error_set(err, -EINVAL, L, "request-malformed", "%zu bytes, at most %d", len,
                                    JOIN_MAX_REQUEST);
        Join__IssueRejoinTicketRequest *m = join__issue_rejoin_ticket_request__unpack(NULL, len, buf);
        if (!m)
                return ct_error_set(err, -EINVAL, L, "request-malformed", "IssueRejoinTicketRequest does not unpack");
        int r = 0;
        if (m->base.n_unknown_fields > 0 || join__issue_rejoin_ticket_request__get_packed_size(m) != len)
                r = ct_error_set(err, -EINVAL, L, "request-malformed",
                                 "IssueRejoinTicketRequest has unknown fields or a NUL in a string");
        else
                r = join_uuid_normalize(m->disk_uuid, strlen(m->disk_uuid), uuid, err);
        join__issue_rejoin_ticket_request__free_unpacked(m, NULL);
        return r;
}

int join_update_request_parse(const uint8_t *buf, size_t len, const uint8_t **ret_doc, size_t *ret_len,
                              ct_error *err) {
        /* UpdateAttestationConfigRequest { bytes signed_update = 1; }: exactly one field 1
         * (tag 0x0a), a varint length, the bytes, nothing after. */
        if (len > JOIN_MAX_REQUEST || len < 2 || buf[0] != 0x0a)
                return ct_error_set(err, -EINVAL, L, "request-malformed",
                                    "UpdateAttestationConfigRequest must hold exactly signed_update (field 1)");
        uint64_t n = 0;
        size_t off = 1;
        for (unsigned shift = 0;; shift += 7) {
                if (off >= len || shift > 28)
                        return ct_error_set(err, -EINVAL, L, "request-malformed", "truncated length");
                uint8_t b = buf[off++];
                n |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80))
                        break;
        }
        if (n == 0 || n != len - off)
                return ct_error_set(err, -EINVAL, L, "request-malformed",
                                    "signed_update is empty or other bytes follow it");
        *ret_doc = buf + off;
        *ret_len = (size_t) n;
        return 0;
}

/* ---- tickets ---- */

int join_bootstrap_token(char ret[static 24]) {
        static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        uint8_t rnd[22];
        /* Rejection sampling keeps the 36 characters uniform. */
        for (size_t i = 0; i < 22;) {
                if (RAND_bytes(rnd, sizeof rnd) != 1)
                        return -EIO;
                for (size_t j = 0; j < sizeof rnd && i < 22; j++) {
                        if (rnd[j] >= 252)
                                continue;
                        char c = alphabet[rnd[j] % 36];
                        ret[i < 6 ? i : i + 1] = c;
                        i++;
                }
        }
        ret[6] = '.';
        ret[23] = '\0';
        erase_memory(rnd, sizeof rnd);
        return 0;
}

/* `kubeadm token create <token> --ttl 15m0s --kubeconfig <admin.conf>` with a deadline, so a hung
 * API server cannot hold the call forever. */
static int register_token(joinservice *js, const char *token, ct_error *err) {
        if (isempty(js->opt.kubeadm))
                return 0;
        /* The Kubernetes layer is installed by Init only when its request lists kubeadm (the
         * bootstrapper installs it at Constellation's /run/state/bin/kubeadm): without it there is no
         * API server to register a token with, and the ticket carries none (1), as the joiner's own
         * kubeadm step says when kubeadm is not there. A kubeadm that is there but fails still refuses. */
        if (access(js->opt.kubeadm, F_OK) < 0 && errno == ENOENT)
                return 1;
        char *argv[] = { (char *) js->opt.kubeadm, (char *) "token", (char *) "create", (char *) token,
                         (char *) "--ttl", (char *) JOIN_TOKEN_TTL, (char *) "--kubeconfig",
                         (char *) (js->opt.kubeconfig ?: "/etc/kubernetes/admin.conf"), NULL };
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t none, def;
        sigemptyset(&none);
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &def);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        pid_t pid;
        int r = posix_spawn(&pid, js->opt.kubeadm, NULL, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return ct_error_set(err, -r, L, "token-failed", "%s: %s", js->opt.kubeadm, strerror(r));
        int st = 0;
        for (int waited = 0;; waited += 20) {
                pid_t w = waitpid(pid, &st, WNOHANG);
                if (w == pid)
                        break;
                if (waited >= TOKEN_TIMEOUT_MS) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &st, 0);
                        return ct_error_set(err, -ETIMEDOUT, L, "token-failed", "%s token create: no answer in %d s",
                                            js->opt.kubeadm, TOKEN_TIMEOUT_MS / 1000);
                }
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return ct_error_set(err, -EIO, L, "token-failed", "%s token create failed (status %d)",
                                    js->opt.kubeadm, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0;
}

static const char *const cp_files[] = { "ca.key",  "sa.key", "front-proxy-ca.key", "etcd/ca.key",
                                        "ca.crt",  "sa.pub", "front-proxy-ca.crt", "etcd/ca.crt" };

typedef struct ticket_parts {
        secret_t *disk_key, *msecret;
        uint8_t *cert;
        size_t cert_len;
        char *initial_cluster;
        uint8_t *files[ELEMENTSOF(cp_files)];
        size_t file_len[ELEMENTSOF(cp_files)];
} ticket_parts;

static void ticket_parts_done(ticket_parts *p) {
        secret_free(p->disk_key);
        secret_free(p->msecret);
        OPENSSL_free(p->cert);
        free(p->initial_cluster);
        for (size_t i = 0; i < ELEMENTSOF(cp_files); i++)
                erase_and_free_sized(p->files[i], p->file_len[i]);
}

/* The node name (CN system:node:<name>) and its only IP address from the certificate just issued for
 * the joiner's CSR (pki_sign_node_csr checked both). A control-plane joiner must name exactly one. */
static int cert_node_identity(const uint8_t *der, size_t len, char name[static 254], char ip[static 46],
                              ct_error *err) {
        const uint8_t *p = der;
        _cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long) len);
        if (!x)
                return ct_error_set(err, -EIO, L, "internal", "the issued certificate does not parse");
        char cn[300];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        if (n <= 12 || strncmp(cn, "system:node:", 12) != 0 || n - 12 > 253)
                return ct_error_set(err, -EPERM, L, "not-control-plane", "the CSR names no node");
        memcpy(name, cn + 12, (size_t) n - 12 + 1);
        GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        int count = 0;
        for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
                if (g->type != GEN_IPADD)
                        continue;
                int alen = ASN1_STRING_length(g->d.iPAddress);
                const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
                if (++count == 1 && !inet_ntop(alen == 4 ? AF_INET : AF_INET6, a, ip, 46))
                        count = 99;
        }
        GENERAL_NAMES_free(sans);
        if (count != 1)
                return ct_error_set(err, -EPERM, L, "not-control-plane",
                                    "a control-plane joiner's CSR must carry exactly one IP address (its vpc_ip), "
                                    "this one has %d", count);
        return 0;
}

/* A control-plane request: the joiner's address is one of the infrastructure's control planes. */
static int check_control_plane(joinservice *js, const ticket_parts *p, char name[static 254], char ip[static 46],
                               ct_error *err) {
        int r = cert_node_identity(p->cert, p->cert_len, name, ip, err);
        if (r < 0)
                return r;
        if (!js->opt.infra || js->opt.infra->n_control_plane_ips == 0)
                return ct_error_set(err, -EPERM, L, "not-control-plane",
                                    "node %s asked for the control-plane files, but this join service knows no "
                                    "control-plane addresses (metadata control_plane_ips)", name);
        if (!metadata_is_control_plane_ip(js->opt.infra, ip))
                return ct_error_set(err, -EPERM, L, "not-control-plane",
                                    "node %s (%s) asked for the control-plane files, but %s is not a control plane "
                                    "of this cluster's infrastructure (metadata control_plane_ips)", name, ip, ip);
        return 0;
}

static bool enter(joinservice *js, ct_error *err) {
        if (atomic_fetch_add(&js->inflight, 1) >= JOIN_MAX_INFLIGHT) {
                atomic_fetch_sub(&js->inflight, 1);
                ct_error_set(err, -EAGAIN, L, "busy", "%d tickets are being issued; try again", JOIN_MAX_INFLIGHT);
                return false;
        }
        return true;
}

static int pack_secret(const ProtobufCMessage *m, secret_t **ret, ct_error *err) {
        size_t n = protobuf_c_message_get_packed_size(m);
        secret_t *s = secret_new(n ?: 1);
        if (!s)
                return ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
        s->len = protobuf_c_message_pack(m, s->data);
        *ret = s;
        return 0;
}

int joinservice_issue_join_ticket(joinservice *js, const uint8_t *req, size_t len, secret_t **ret, ct_error *err) {
        if (!enter(js, err))
                return -EAGAIN;
        join_request jr = { 0 };
        ticket_parts p = { 0 };
        char token[24];
        CLEANUP_ERASE(token);
        uint8_t salt[JOINCONFIG_SALT_LEN];
        CLEANUP_ERASE(salt);
        int r = join_request_parse(req, len, &jr, err);
        if (r < 0)
                goto out;
        r = pki_sign_node_csr(&js->ca, jr.csr, jr.csr_len, NULL, time(NULL), &p.cert, &p.cert_len, err);
        if (r < 0)
                goto out;
        r = join_keys_get(js->opt.keys, jr.uuid, JOIN_KEY_LENGTH, &p.disk_key, err);
        if (r < 0)
                goto out;
        r = join_keys_get(js->opt.keys, KDF_MEASUREMENT_SECRET_ID, JOIN_KEY_LENGTH, &p.msecret, err);
        if (r < 0)
                goto out;
        char cp_name[254] = "", cp_ip[46] = "";
        if (jr.control_plane && (r = check_control_plane(js, &p, cp_name, cp_ip, err)) < 0)
                goto out;
        if (jr.control_plane)
                for (size_t i = 0; i < ELEMENTSOF(cp_files); i++) {
                        char path[PATH_MAX];
                        snprintf(path, sizeof path, "%s/%s", js->opt.pki_dir, cp_files[i]);
                        r = read_full_file(path, CP_FILE_MAX, &p.files[i], &p.file_len[i]);
                        if (r < 0) {
                                r = ct_error_set(err, -EIO, L, "ca-unavailable", "control-plane file %s: %s", path,
                                                 strerror(-r));
                                goto out;
                        }
                }
        r = join_bootstrap_token(token);
        if (r < 0) {
                r = ct_error_set(err, r, L, "token-failed", "no random bytes");
                goto out;
        }
        r = register_token(js, token, err);
        if (r < 0)
                goto out;
        if (r == 1) {
                log_warn("join: %s is not there (the Kubernetes layer was not installed at Init): the ticket for "
                            "disk %s carries no bootstrap token",
                            js->opt.kubeadm, jr.uuid);
                erase_memory(token, sizeof token);
                r = 0;
        }
        /* Last, so that a refusal above adds no member: the joiner becomes an etcd learner. */
        if (jr.control_plane && js->opt.etcd) {
                char url[80];
                bool v6 = strchr(cp_ip, ':') != NULL;
                snprintf(url, sizeof url, "https://%s%s%s:%d", v6 ? "[" : "", cp_ip, v6 ? "]" : "",
                         js->opt.etcd_peer_port > 0 ? js->opt.etcd_peer_port : ETCD_DEFAULT_PEER_PORT);
                uint64_t id = 0;
                r = etcd_join_learner(js->opt.etcd, cp_name, url, &p.initial_cluster, &id, err);
                if (r < 0) {
                        ct_error_prefix(err, "adding control plane %s to the shared store", cp_name);
                        goto out;
                }
                log_info("control plane %s: etcd learner %llx added for %s%s; members: %s", cp_name,
                         (unsigned long long) id, url, r > 0 ? " (its earlier member removed)" : "",
                         p.initial_cluster);
        }

        pthread_mutex_lock(&js->lock);
        memcpy(salt, js->config.salt, sizeof salt);
        pthread_mutex_unlock(&js->lock);

        Join__ControlPlaneCertOrKey files[ELEMENTSOF(cp_files) + 1], *fp[ELEMENTSOF(cp_files) + 1];
        Join__IssueJoinTicketResponse resp = JOIN__ISSUE_JOIN_TICKET_RESPONSE__INIT;
        resp.state_disk_key = (ProtobufCBinaryData){ p.disk_key->len, p.disk_key->data };
        resp.measurement_salt = (ProtobufCBinaryData){ sizeof salt, salt };
        resp.measurement_secret = (ProtobufCBinaryData){ p.msecret->len, p.msecret->data };
        resp.kubelet_cert = (ProtobufCBinaryData){ p.cert_len, p.cert };
        resp.api_server_endpoint = (char *) js->opt.api_endpoint;
        resp.token = token;
        resp.discovery_token_ca_cert_hash = js->ca_hash;
        if (jr.control_plane) {
                for (size_t i = 0; i < ELEMENTSOF(cp_files); i++) {
                        join__control_plane_cert_or_key__init(&files[i]);
                        files[i].name = (char *) cp_files[i];
                        files[i].data = (ProtobufCBinaryData){ p.file_len[i], p.files[i] };
                        fp[i] = &files[i];
                }
                resp.n_control_plane_files = ELEMENTSOF(cp_files);
                if (p.initial_cluster) {
                        size_t k = resp.n_control_plane_files++;
                        join__control_plane_cert_or_key__init(&files[k]);
                        files[k].name = (char *) JOIN_CP_FILE_INITIAL_CLUSTER;
                        files[k].data = (ProtobufCBinaryData){ strlen(p.initial_cluster),
                                                               (uint8_t *) p.initial_cluster };
                        fp[k] = &files[k];
                }
                resp.control_plane_files = fp;
        }
        r = pack_secret(&resp.base, ret, err);
        if (r >= 0) {
                atomic_fetch_add(&js->issued, 1);
                log_info("join ticket issued for disk %s (%s)", jr.uuid, jr.control_plane ? "control plane" : "worker");
        }
out:
        ticket_parts_done(&p);
        join_request_done(&jr);
        atomic_fetch_sub(&js->inflight, 1);
        return r;
}

int joinservice_issue_rejoin_ticket(joinservice *js, const uint8_t *req, size_t len, secret_t **ret, ct_error *err) {
        if (!enter(js, err))
                return -EAGAIN;
        char uuid[JOIN_UUID_LEN + 1];
        ticket_parts p = { 0 };
        int r = join_rejoin_request_parse(req, len, uuid, err);
        if (r >= 0)
                r = join_keys_get(js->opt.keys, uuid, JOIN_KEY_LENGTH, &p.disk_key, err);
        if (r >= 0)
                r = join_keys_get(js->opt.keys, KDF_MEASUREMENT_SECRET_ID, JOIN_KEY_LENGTH, &p.msecret, err);
        if (r >= 0) {
                Join__IssueRejoinTicketResponse resp = JOIN__ISSUE_REJOIN_TICKET_RESPONSE__INIT;
                resp.state_disk_key = (ProtobufCBinaryData){ p.disk_key->len, p.disk_key->data };
                resp.measurement_secret = (ProtobufCBinaryData){ p.msecret->len, p.msecret->data };
                r = pack_secret(&resp.base, ret, err);
        }
        if (r >= 0) {
                atomic_fetch_add(&js->rejoined, 1);
                log_info("rejoin ticket issued for disk %s", uuid);
        }
        ticket_parts_done(&p);
        atomic_fetch_sub(&js->inflight, 1);
        return r;
}

/* Makes cfg the configuration in force (lock held); the old policy in *ret_old (unref it after
 * unlocking). */
static int enforce_locked(joinservice *js, const joinconfig *cfg, join_policy **ret_old) {
        join_policy *np = NULL;
        if (policy_new(cfg, &np) < 0)
                return -ENOMEM;
        js->config = *cfg;
        *ret_old = js->policy;
        js->policy = np;
        return 0;
}

int joinservice_update_config(joinservice *js, const uint8_t *req, size_t len, ct_error *err) {
        const uint8_t *doc;
        size_t doc_len;
        int r = join_update_request_parse(req, len, &doc, &doc_len, err);
        if (r < 0)
                return r;
        pthread_mutex_lock(&js->update_lock);
        pthread_mutex_lock(&js->lock);
        joinconfig next = js->config;
        pthread_mutex_unlock(&js->lock);
        bool refreshed = false;
        r = joinconfig_apply_update(js->opt.store, js->signing_key, &next, doc, doc_len, &refreshed, err);
        join_policy *old = NULL;
        /* Accepted, or refused after another control plane's configuration was loaded from the
         * store: either way `next` is what the store holds now. */
        if (r >= 0 || refreshed) {
                pthread_mutex_lock(&js->lock);
                if (enforce_locked(js, &next, &old) < 0 && r >= 0)
                        r = ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
                pthread_mutex_unlock(&js->lock);
        }
        pthread_mutex_unlock(&js->update_lock);
        policy_unref(old);
        if (r >= 0)
                log_info("attestation config version %llu accepted and in force (%zu measurements)",
                         (unsigned long long) next.version, next.m.n);
        else if (refreshed)
                log_info("attestation config version %llu (stored by another control plane) now in force",
                         (unsigned long long) next.version);
        erase_memory(&next, sizeof next);
        return r;
}

int joinservice_refresh_config(joinservice *js, bool *ret_changed, ct_error *err) {
        pthread_mutex_lock(&js->update_lock);
        pthread_mutex_lock(&js->lock);
        joinconfig next = js->config;
        pthread_mutex_unlock(&js->lock);
        bool changed = false;
        int r = joinconfig_refresh(js->opt.store, js->signing_key, &next, &changed, err);
        join_policy *old = NULL;
        if (r >= 0 && changed) {
                pthread_mutex_lock(&js->lock);
                if (enforce_locked(js, &next, &old) < 0)
                        r = ct_error_set(err, -ENOMEM, L, "internal", "out of memory");
                pthread_mutex_unlock(&js->lock);
        }
        pthread_mutex_unlock(&js->update_lock);
        policy_unref(old);
        if (r >= 0 && changed)
                log_info("attestation config version %llu (from the shared store) now in force (%zu measurements)",
                         (unsigned long long) next.version, next.m.n);
        erase_memory(&next, sizeof next);
        if (r >= 0 && ret_changed)
                *ret_changed = changed;
        return r;
}

/* ---- handlers ---- */

static void reply_secret(rpc_call *call, int r, secret_t *resp, const ct_error *err) {
        if (r < 0)
                service_call_fail(call, err);
        else
                rpc_call_reply(call, resp->data, resp->len);
        secret_free(resp);
}

void joinservice_join_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        ct_error err = CT_ERROR_INIT;
        secret_t *resp = NULL;
        int r = joinservice_issue_join_ticket(userdata, req, len, &resp, &err);
        reply_secret(call, r, resp, &err);
}

void joinservice_rejoin_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        ct_error err = CT_ERROR_INIT;
        secret_t *resp = NULL;
        int r = joinservice_issue_rejoin_ticket(userdata, req, len, &resp, &err);
        reply_secret(call, r, resp, &err);
}

void joinservice_update_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        ct_error err = CT_ERROR_INIT;
        int r = joinservice_update_config(userdata, req, len, &err);
        if (r < 0)
                service_call_fail(call, &err);
        else
                rpc_call_reply(call, "", 0);
}

/* ---- control-plane joiners' etcd membership ---- */

static void learner_report(void *userdata, uint64_t id, const char *peer_url, bool promoted, const ct_error *why) {
        (void) userdata;
        char msg[CT_ERROR_DETAIL_MAX + 128];
        if (promoted)
                log_info("shared store: learner %llx (%s) promoted to a voting etcd member", (unsigned long long) id,
                         peer_url);
        else
                log_warn("shared store: learner %llx (%s) removed: not promotable within the learner timeout (%s)",
                         (unsigned long long) id, peer_url, why ? ct_error_format(why, msg, sizeof msg) : "");
}

int joinservice_tend_members(joinservice *js, ct_error *err) {
        if (!js->opt.etcd)
                return 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        pthread_mutex_lock(&js->members_lock);
        int r = etcd_tend_learners(js->opt.etcd, &js->learners, now,
                                   js->opt.learner_timeout_ms > 0 ? js->opt.learner_timeout_ms : JOIN_LEARNER_TIMEOUT_MS,
                                   learner_report, js, err);
        pthread_mutex_unlock(&js->members_lock);
        return r;
}
