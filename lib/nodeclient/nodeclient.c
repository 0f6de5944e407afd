/* SPDX-License-Identifier: Apache-2.0 */
/* The Init client (nodeclient.h). The steps and the error of each are in the header. */
#include <errno.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atls/atls.h"
#include "basic/encoding.h"
#include "init.pb-c.h"
#include "nodeclient.h"
#include "rpc/rpc.h"
#include "rpc/wipe-alloc.h"

#define LAYER "nodeclient"
#define MASTER_SECRET_MIN 16 /* lib/kms KMS_MASTER_SECRET_MIN: the node refuses shorter ones */
#define SALT_MIN 32
#define MEASUREMENT_SALT_LEN 32

/* An unpacked InitResponse holds the kubeconfig (admin client key): lib/rpc's wiping allocator. */

int nodeclient_policy_from_measurements(const measurements *m, nodeclient_policy *ret, ct_error *err) {
        if (!m || m->n == 0)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_MEASUREMENTS,
                                    "no measurements: the node's attestation would prove nothing");
        if (m->n > ELEMENTSOF(ret->items))
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_MEASUREMENTS, "%zu measurements, at most %zu",
                                    m->n, ELEMENTSOF(ret->items));
        for (size_t i = 0; i < m->n; i++)
                if (m->items[i].len != 32)
                        return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_MEASUREMENTS,
                                            "PCR %u: %zu-byte value, qemu-vtpm PCRs are 32-byte SHA-256",
                                            m->items[i].index, m->items[i].len);
        memset(ret, 0, sizeof *ret);
        for (size_t i = 0; i < m->n; i++) {
                ret->items[i] = (attdoc_measurement){ .index = m->items[i].index, .expected_len = 32,
                                                      .warn_only = m->items[i].warn_only };
                memcpy(ret->items[i].expected, m->items[i].expected, 32);
        }
        ret->policy = (atls_qemu_vtpm_policy){ .measurements = ret->items, .n_measurements = m->n };
        ret->validator = atls_qemu_vtpm_validator(&ret->policy);
        return 0;
}

int nodeclient_kms_uri(const secret_t *master_secret, const secret_t *salt, secret_t **ret) {
        _cleanup_erase_free_ char *k = base64_encode(master_secret->data, master_secret->len, BASE64_URL);
        _cleanup_erase_free_ char *s = base64_encode(salt->data, salt->len, BASE64_URL);
        if (!k || !s)
                return -ENOMEM;
        static const char fmt[] = "kms://cluster-kms?key=%s&salt=%s";
        size_t len = strlen(fmt) - 4 + strlen(k) + strlen(s);
        _cleanup_secret_ secret_t *uri = secret_new(len + 1);
        if (!uri)
                return -ENOMEM;
        snprintf((char *) uri->data, len + 1, fmt, k, s);
        uri->len = len;
        *ret = TAKE_PTR(uri);
        return 0;
}

void nodeclient_init_result_done(nodeclient_init_result *r) {
        if (!r)
                return;
        secret_free(r->kubeconfig);
        free(r->owner_id);
        free(r->log);
        free(r->status_message);
        *r = (nodeclient_init_result){ 0 };
}

/* A caller's ready kms:// URI: the shape only (the node parses it with lib/kms); the detail never
 * quotes it (a kms://kmip URI may carry the KMIP client key). */
static int check_kms_uri(const secret_t *u, ct_error *err) {
        static const char scheme[] = "kms://";
        if (u->len < sizeof scheme - 1 || memcmp(u->data, scheme, sizeof scheme - 1) != 0)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "KMS URI: does not start with %s",
                                    scheme);
        if (u->len > NODECLIENT_MAX_KMS_URI)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "KMS URI: %zu bytes (at most %d)",
                                    u->len, NODECLIENT_MAX_KMS_URI);
        if (memchr(u->data, 0, u->len))
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "KMS URI: contains a NUL byte");
        return 0;
}

static int check_params(const nodeclient_init_params *p, ct_error *err) {
        if (p->kms_uri) {
                if (p->master_secret || p->salt)
                        return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST,
                                            "a KMS URI and a master secret or salt: give one of the two");
                int r = check_kms_uri(p->kms_uri, err);
                if (r < 0)
                        return r;
        } else if (!p->master_secret || p->master_secret->len < MASTER_SECRET_MIN)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "master secret: %zu bytes (at least %d)",
                                    p->master_secret ? p->master_secret->len : 0, MASTER_SECRET_MIN);
        else if (!p->salt || p->salt->len < SALT_MIN)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "salt: %zu bytes (at least %d)",
                                    p->salt ? p->salt->len : 0, SALT_MIN);
        if (!p->measurement_salt || p->measurement_salt->len != MEASUREMENT_SALT_LEN)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "measurement salt: %zu bytes (exactly %d)",
                                    p->measurement_salt ? p->measurement_salt->len : 0, MEASUREMENT_SALT_LEN);
        if (!p->init_secret || p->init_secret->len == 0)
                return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST, "init secret: empty");
        for (size_t i = 0; i < p->n_components; i++)
                if (!p->components[i].url || !p->components[i].hash || !p->components[i].install_path)
                        return ct_error_set(err, -EINVAL, LAYER, NODECLIENT_REASON_REQUEST,
                                            "component %zu: url, hash and install_path are required", i);
        return 0;
}

/* Packs the request into wiped memory. */
static int pack_request(const nodeclient_init_params *p, const secret_t *uri, secret_t **ret) {
        Init__InitRequest req = INIT__INIT_REQUEST__INIT;
        req.kms_uri = (char *) uri->data;
        req.storage_uri = (char *) "storage://no-store";
        req.measurement_salt.data = p->measurement_salt->data;
        req.measurement_salt.len = p->measurement_salt->len;
        req.init_secret.data = p->init_secret->data;
        req.init_secret.len = p->init_secret->len;
        req.cluster_name = (char *) (p->cluster_name ?: "constell");
        req.kubernetes_version = (char *) (p->kubernetes_version ?: "v1.30.4");
        req.service_cidr = (char *) (p->service_cidr ?: "10.96.0.0/12");
        req.conformance_mode = p->conformance_mode;
        req.apiserver_cert_sans = (char **) p->apiserver_cert_sans;
        req.n_apiserver_cert_sans = p->n_apiserver_cert_sans;
        _cleanup_free_ Components__Component *comps = NULL;
        _cleanup_free_ Components__Component **cptr = NULL;
        if (p->n_components > 0) {
                comps = calloc(p->n_components, sizeof *comps);
                cptr = calloc(p->n_components, sizeof *cptr);
                if (!comps || !cptr)
                        return -ENOMEM;
                for (size_t i = 0; i < p->n_components; i++) {
                        components__component__init(&comps[i]);
                        comps[i].url = (char *) p->components[i].url;
                        comps[i].hash = (char *) p->components[i].hash;
                        comps[i].install_path = (char *) p->components[i].install_path;
                        comps[i].extract = p->components[i].extract;
                        cptr[i] = &comps[i];
                }
                req.kubernetes_components = cptr;
                req.n_kubernetes_components = p->n_components;
        }
        size_t len = init__init_request__get_packed_size(&req);
        _cleanup_secret_ secret_t *buf = secret_new(len ? len : 1);
        if (!buf)
                return -ENOMEM;
        init__init_request__pack(&req, buf->data);
        buf->len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int append_log(nodeclient_init_result *r, const uint8_t *data, size_t len) {
        if (len == 0)
                return 0;
        if (r->log_len >= NODECLIENT_MAX_LOG || len > NODECLIENT_MAX_LOG - r->log_len) {
                size_t keep = NODECLIENT_MAX_LOG - r->log_len;
                r->log_dropped += len - keep;
                len = keep;
                if (len == 0)
                        return 0;
        }
        char *n = realloc(r->log, r->log_len + len + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n + r->log_len, data, len);
        r->log_len += len;
        n[r->log_len] = 0;
        r->log = n;
        return 0;
}

int nodeclient_init(const char *endpoint, const atls_validator *validator, const nodeclient_init_params *p,
                    nodeclient_init_result *ret, ct_error *err) {
        int r = check_params(p, err);
        if (r < 0)
                return r;
        _cleanup_secret_ secret_t *uri = NULL, *req = NULL;
        if (p->kms_uri) {
                /* NUL-terminated copy: protobuf-c packs kms_uri as a C string. */
                if ((uri = secret_new(p->kms_uri->len + 1))) {
                        memcpy(uri->data, p->kms_uri->data, p->kms_uri->len);
                        uri->data[p->kms_uri->len] = 0;
                        uri->len = p->kms_uri->len;
                }
                r = uri ? 0 : -ENOMEM;
        } else
                r = nodeclient_kms_uri(p->master_secret, p->salt, &uri);
        if (r < 0 || (r = pack_request(p, uri, &req)) < 0)
                return ct_error_set(err, r, LAYER, NODECLIENT_REASON_REQUEST, "cannot build the request: %s", strerror(-r));

        atls_config cfg = { .validators = validator, .n_validators = 1,
                            .handshake_timeout_ms = p->handshake_timeout_ms ?: 60000 };
        rpc_channel_options copt = { .max_receive_message_length = NODECLIENT_MAX_MESSAGE };
        atls_error aerr = { 0 };
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        r = atls_dial(endpoint, &cfg, &copt, &conn, &aerr);
        if (r < 0) {
                bool refused = aerr.reason >= ATLS_REASON_NO_CERTIFICATE && aerr.reason <= ATLS_REASON_EVIDENCE_POLICY;
                return ct_error_set(err, refused ? -EPERM : -ECONNREFUSED, LAYER,
                                    refused ? NODECLIENT_REASON_ATLS_REFUSED : NODECLIENT_REASON_UNREACHABLE,
                                    "%s: %s: %s", endpoint, atls_reason_to_string(aerr.reason), aerr.detail);
        }

        nodeclient_init_result res = { .connected = true };
        _cleanup_(rpc_stream_freep) rpc_stream *st = NULL;
        r = rpc_stream_open(atls_conn_channel(conn), NODECLIENT_INIT_METHOD, req->data, req->len,
                            p->call_timeout_ms ?: 30 * 60 * 1000, &st);
        if (r < 0) {
                ret->connected = true;
                return ct_error_set(err, -ECONNREFUSED, LAYER, NODECLIENT_REASON_UNREACHABLE, "%s %s: %s", endpoint,
                                    NODECLIENT_INIT_METHOD, strerror(-r));
        }
        Init__InitResponse *verdict = NULL;
        int perr = 0;
        char pdetail[200] = "";
        size_t n_messages = 0;
        for (;;) {
                uint8_t *m = NULL;
                size_t ml = 0;
                r = rpc_stream_next(st, &m, &ml);
                if (r <= 0)
                        break;
                n_messages++;
                Init__InitResponse *resp = init__init_response__unpack(&rpc_wiping_allocator, ml, m);
                erase_and_free_sized(m, ml);
                if (!resp) {
                        if (!perr) {
                                perr = -EBADMSG;
                                snprintf(pdetail, sizeof pdetail, "message %zu does not unpack as init.InitResponse", n_messages);
                        }
                        continue;
                }
                if (resp->kind_case == INIT__INIT_RESPONSE__KIND_LOG) {
                        if (resp->log && append_log(&res, resp->log->log.data, resp->log->log.len) < 0 && !perr) {
                                perr = -ENOMEM;
                                snprintf(pdetail, sizeof pdetail, "out of memory for the node's log");
                        }
                        init__init_response__free_unpacked(resp, &rpc_wiping_allocator);
                } else if ((resp->kind_case == INIT__INIT_RESPONSE__KIND_INIT_SUCCESS ||
                            resp->kind_case == INIT__INIT_RESPONSE__KIND_INIT_FAILURE) &&
                           !verdict && n_messages == 1) {
                        verdict = resp;
                } else {
                        if (!perr) {
                                perr = -EBADMSG;
                                snprintf(pdetail, sizeof pdetail, "message %zu: unexpected %s", n_messages,
                                         verdict ? "second verdict" : "verdict after the log, or unknown kind");
                        }
                        init__init_response__free_unpacked(resp, &rpc_wiping_allocator);
                }
        }
        int local = r;
        const rpc_status *s = rpc_stream_status(st);
        res.status = s->code;
        if (s->message && !(res.status_message = strdup(s->message)))
                local = -ENOMEM;

        if (local < 0)
                r = ct_error_set(err, local, LAYER, NODECLIENT_REASON_UNREACHABLE, "%s %s: %s", endpoint,
                                 NODECLIENT_INIT_METHOD, strerror(-local));
        else if (perr < 0)
                r = ct_error_set(err, perr, LAYER, NODECLIENT_REASON_PROTOCOL, "%s: %s", endpoint, pdetail);
        else if (verdict && verdict->kind_case == INIT__INIT_RESPONSE__KIND_INIT_FAILURE)
                r = ct_error_set(err, -EREMOTEIO, LAYER, NODECLIENT_REASON_INIT_FAILURE, "%s: init failed on the node: %s",
                                 endpoint, verdict->init_failure && verdict->init_failure->error
                                                   ? verdict->init_failure->error : "(no error text)");
        else if (res.status != GRPC_STATUS_OK) {
                bool unreachable = res.status == GRPC_STATUS_UNAVAILABLE || res.status == GRPC_STATUS_DEADLINE_EXCEEDED;
                r = ct_error_set(err, unreachable ? -ECONNREFUSED : -EREMOTEIO, LAYER,
                                 unreachable ? NODECLIENT_REASON_UNREACHABLE : NODECLIENT_REASON_RPC_STATUS, "%s %s: %s: %s",
                                 endpoint, NODECLIENT_INIT_METHOD, rpc_status_code_to_string(res.status),
                                 res.status_message ?: "(no message)");
        } else if (!verdict)
                r = ct_error_set(err, -EBADMSG, LAYER, NODECLIENT_REASON_PROTOCOL,
                                 "%s: the stream ended without init_success or init_failure", endpoint);
        else {
                Init__InitSuccessResponse *ok = verdict->init_success;
                if (!ok || ok->cluster_id.len != NODECLIENT_CLUSTER_ID_LEN)
                        r = ct_error_set(err, -EBADMSG, LAYER, NODECLIENT_REASON_PROTOCOL,
                                         "%s: init_success with a %zu-byte cluster ID (expected %d)", endpoint,
                                         ok ? ok->cluster_id.len : 0, NODECLIENT_CLUSTER_ID_LEN);
                else if (ok->kubeconfig.len == 0)
                        r = ct_error_set(err, -EBADMSG, LAYER, NODECLIENT_REASON_PROTOCOL,
                                         "%s: init_success without a kubeconfig", endpoint);
                else {
                        res.kubeconfig = secret_new_copy(ok->kubeconfig.data, ok->kubeconfig.len);
                        memcpy(res.cluster_id, ok->cluster_id.data, NODECLIENT_CLUSTER_ID_LEN);
                        if (ok->owner_id.len > 0 && (res.owner_id = malloc(ok->owner_id.len)))
                                memcpy(res.owner_id, ok->owner_id.data, res.owner_id_len = ok->owner_id.len);
                        r = res.kubeconfig ? 0
                                           : ct_error_set(err, -ENOMEM, LAYER, NODECLIENT_REASON_PROTOCOL,
                                                          "out of memory for the kubeconfig");
                }
        }
        if (verdict)
                init__init_response__free_unpacked(verdict, &rpc_wiping_allocator);
        *ret = res;
        return r;
}
