/* SPDX-License-Identifier: Apache-2.0 */
#include "joinclient/joinclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/cleanup-openssl.h"
#include "join.pb-c.h"
#include "pki/pki.h"

#define L "joinclient"

/* ---- CSR ---- */

int joinclient_csr_new(const char *node_name, const char *const *ips, size_t n_ips, EVP_PKEY **ret_key,
                       uint8_t **ret_der, size_t *ret_der_len, ct_error *err) {
        if (isempty(node_name) || n_ips > PKI_MAX_CSR_IPS)
                return ct_error_set(err, -EINVAL, L, "request", "node name missing or more than %u IP addresses",
                                    PKI_MAX_CSR_IPS);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
        X509_REQ *req = X509_REQ_new();
        X509_NAME *name = X509_NAME_new();
        STACK_OF(X509_EXTENSION) *exts = NULL;
        GENERAL_NAMES *sans = NULL;
        int r = -EIO;
        char cn[300];
        snprintf(cn, sizeof cn, "%s%s", PKI_NODE_CN_PREFIX, node_name);
        if (!key || !req || !name ||
            !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) PKI_NODE_ORG, -1, -1, 0) ||
            !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) ||
            !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key))
                goto out;
        if (n_ips > 0) {
                sans = GENERAL_NAMES_new();
                if (!sans)
                        goto out;
                for (size_t i = 0; i < n_ips; i++) {
                        uint8_t a[16];
                        int alen = inet_pton(AF_INET, ips[i], a) == 1 ? 4 : inet_pton(AF_INET6, ips[i], a) == 1 ? 16 : 0;
                        if (alen == 0) {
                                r = ct_error_set(err, -EINVAL, L, "request", "\"%s\" is not an IP address", ips[i]);
                                goto out;
                        }
                        GENERAL_NAME *gn = GENERAL_NAME_new();
                        ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
                        if (!gn || !os || !ASN1_OCTET_STRING_set(os, a, alen)) {
                                GENERAL_NAME_free(gn);
                                ASN1_OCTET_STRING_free(os);
                                goto out;
                        }
                        GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
                        if (!sk_GENERAL_NAME_push(sans, gn)) {
                                GENERAL_NAME_free(gn);
                                goto out;
                        }
                }
                exts = sk_X509_EXTENSION_new_null();
                X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, sans);
                if (!exts || !ext || !sk_X509_EXTENSION_push(exts, ext)) {
                        X509_EXTENSION_free(ext);
                        goto out;
                }
                if (!X509_REQ_add_extensions(req, exts))
                        goto out;
        }
        if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
                goto out;
        uint8_t *der = NULL;
        int n = i2d_X509_REQ(req, &der);
        if (n <= 0)
                goto out;
        *ret_der = der;
        *ret_der_len = (size_t) n;
        *ret_key = TAKE_PTR(key);
        r = 0;
out:
        if (r == -EIO)
                ct_error_set(err, -EIO, L, "request", "OpenSSL could not make the CSR");
        X509_REQ_free(req);
        X509_NAME_free(name);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        GENERAL_NAMES_free(sans);
        return r;
}

/* ---- calls ---- */

static int call(const char *endpoint, const joinclient_options *opt, const char *method, const uint8_t *req,
                size_t req_len, secret_t **ret, grpc_status_code *ret_status, ct_error *err) {
        atls_config cfg = { .issuer = opt->issuer,
                            .handshake_timeout_ms = opt->handshake_timeout_ms ?: 30000 };
        rpc_channel_options co = { .max_receive_message_length = JOINCLIENT_MAX_RESPONSE };
        atls_conn *conn = NULL;
        atls_error aerr = { 0 };
        int r = atls_dial(endpoint, &cfg, &co, &conn, &aerr);
        if (r < 0)
                return ct_error_set(err, -ECONNREFUSED, L, "unreachable", "%s: %s: %s", endpoint,
                                    atls_reason_to_string(aerr.reason), aerr.detail);
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        rpc_status st = { 0 };
        r = rpc_unary(atls_conn_channel(conn), method, req, req_len, opt->call_timeout_ms ?: JOINCLIENT_CALL_TIMEOUT_MS,
                      &resp, &resp_len, &st);
        atls_conn_free(conn);
        if (ret_status)
                *ret_status = r < 0 ? GRPC_STATUS_UNAVAILABLE : st.code;
        if (r < 0) {
                rpc_status_done(&st);
                return ct_error_set(err, -ECONNREFUSED, L, "unreachable", "%s %s: %s", endpoint, method, strerror(-r));
        }
        if (st.code != GRPC_STATUS_OK) {
                r = ct_error_set(err, -EREMOTEIO, L, "rpc-status", "%s %s: %s: %s", endpoint, method,
                                 rpc_status_code_to_string(st.code), st.message ?: "");
                rpc_status_done(&st);
                erase_and_free_sized(resp, resp_len);
                return r;
        }
        rpc_status_done(&st);
        secret_t *s = secret_new_copy(resp ?: (uint8_t *) "", resp_len);
        erase_and_free_sized(resp, resp_len);
        if (!s)
                return ct_error_set(err, -ENOMEM, L, "request", "out of memory");
        *ret = s;
        return 0;
}

void joinclient_rejoin_ticket_done(joinclient_rejoin_ticket *t) {
        if (!t)
                return;
        secret_free(t->state_disk_key);
        secret_free(t->measurement_secret);
        *t = (joinclient_rejoin_ticket){ 0 };
}

static int rejoin_one(const char *endpoint, const joinclient_options *opt, const char *disk_uuid,
                      joinclient_rejoin_ticket *ret, ct_error *err) {
        Join__IssueRejoinTicketRequest req = JOIN__ISSUE_REJOIN_TICKET_REQUEST__INIT;
        req.disk_uuid = (char *) disk_uuid;
        uint8_t buf[256];
        if (join__issue_rejoin_ticket_request__get_packed_size(&req) > sizeof buf)
                return ct_error_set(err, -EINVAL, L, "request", "disk UUID too long");
        size_t n = join__issue_rejoin_ticket_request__pack(&req, buf);
        _cleanup_secret_ secret_t *resp = NULL;
        int r = call(endpoint, opt, JOINCLIENT_REJOIN_METHOD, buf, n, &resp, NULL, err);
        if (r < 0)
                return r;
        Join__IssueRejoinTicketResponse *m =
                join__issue_rejoin_ticket_response__unpack(&rpc_wiping_allocator, resp->len, resp->data);
        if (!m || m->state_disk_key.len != 32 || m->measurement_secret.len != 32) {
                if (m)
                        join__issue_rejoin_ticket_response__free_unpacked(m, &rpc_wiping_allocator);
                return ct_error_set(err, -EBADMSG, L, "protocol",
                                    "%s: IssueRejoinTicketResponse without 32-byte disk key and measurement secret",
                                    endpoint);
        }
        joinclient_rejoin_ticket t = {
                .state_disk_key = secret_new_copy(m->state_disk_key.data, 32),
                .measurement_secret = secret_new_copy(m->measurement_secret.data, 32),
        };
        join__issue_rejoin_ticket_response__free_unpacked(m, &rpc_wiping_allocator);
        if (!t.state_disk_key || !t.measurement_secret) {
                joinclient_rejoin_ticket_done(&t);
                return ct_error_set(err, -ENOMEM, L, "request", "out of memory");
        }
        *ret = t;
        return 0;
}

int joinclient_rejoin(const char *const *endpoints, size_t n_endpoints, const joinclient_options *opt,
                      const char *disk_uuid, joinclient_rejoin_ticket *ret, ct_error *err) {
        if (n_endpoints == 0)
                return ct_error_set(err, -ENOENT, L, "no-endpoints", "the metadata names no join endpoint");
        int r = -EIO;
        for (size_t i = 0; i < n_endpoints; i++) {
                /* Keep the last endpoint's reason: each attempt overwrites the previous one. */
                ct_error e = CT_ERROR_INIT;
                r = rejoin_one(endpoints[i], opt, disk_uuid, ret, &e);
                if (r >= 0)
                        return 0;
                if (err) {
                        *err = e;
                        if (n_endpoints > 1)
                                ct_error_prefix(err, "%zu endpoints tried, last", n_endpoints);
                }
        }
        return r;
}

int64_t joinclient_backoff_ms(const joinclient_retry *retry, unsigned attempt) {
        int64_t base = retry && retry->base_ms > 0 ? retry->base_ms : 1000;
        int64_t max = retry && retry->max_ms > 0 ? retry->max_ms : 30000;
        if (max < base)
                max = base;
        int64_t d = base;
        for (unsigned i = 0; i < attempt && d < max; i++)
                d = d > max / 2 ? max : d * 2;
        if (d > max)
                d = max;
        uint8_t r = 0;
        if (RAND_bytes(&r, 1) != 1)
                r = 255;
        /* 80..100 % */
        return d - (d * 20 / 100) * (255 - r) / 255;
}

int joinclient_rejoin_loop(const char *const *endpoints, size_t n_endpoints, const joinclient_options *opt,
                           const char *disk_uuid, const joinclient_retry *retry, atomic_bool *stop,
                           void (*on_attempt_failed)(void *userdata, const ct_error *err), void *userdata,
                           joinclient_rejoin_ticket *ret, ct_error *err) {
        for (unsigned attempt = 0;; attempt++) {
                if (stop && atomic_load(stop))
                        return ct_error_set(err, -ECANCELED, L, "stopped", "stopped before a ticket arrived");
                ct_error e = CT_ERROR_INIT;
                int r = joinclient_rejoin(endpoints, n_endpoints, opt, disk_uuid, ret, &e);
                if (r >= 0)
                        return 0;
                if (r == -ENOENT) {
                        if (err)
                                *err = e;
                        return r;
                }
                if (on_attempt_failed)
                        on_attempt_failed(userdata, &e);
                int64_t delay = joinclient_backoff_ms(retry, attempt);
                for (int64_t waited = 0; waited < delay; waited += 100) {
                        if (stop && atomic_load(stop))
                                break;
                        int64_t step = MIN(100, delay - waited);
                        struct timespec ts = { step / 1000, (step % 1000) * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
}

int joinclient_issue_join(const char *endpoint, const joinclient_options *opt, const joinclient_join_request *jr,
                          secret_t **ret_response, grpc_status_code *ret_status, ct_error *err) {
        Join__IssueJoinTicketRequest req = JOIN__ISSUE_JOIN_TICKET_REQUEST__INIT;
        req.disk_uuid = (char *) (jr->disk_uuid ?: "");
        req.certificate_request = (ProtobufCBinaryData){ jr->csr_len, (uint8_t *) jr->csr };
        req.is_control_plane = jr->control_plane;
        size_t n = join__issue_join_ticket_request__get_packed_size(&req);
        _cleanup_free_ uint8_t *buf = malloc(n ?: 1);
        if (!buf)
                return ct_error_set(err, -ENOMEM, L, "request", "out of memory");
        join__issue_join_ticket_request__pack(&req, buf);
        return call(endpoint, opt, JOINCLIENT_JOIN_METHOD, buf, n, ret_response, ret_status, err);
}
