/* SPDX-License-Identifier: Apache-2.0 */
#include "verification.h"

#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "attestation/issue.h"
#include "basic/encoding.h"
#include "basic/log.h"
#include "tpm/tpm.h"
#include "verify.pb-c.h"

static int nonce_length_ok(size_t len, ct_error *err) {
        if (len == 0)
                return ct_error_set(err, -EINVAL, "verify", "nonce-missing", "a nonce is required to issue an attestation");
        if (len < VERIFICATION_NONCE_MIN || len > VERIFICATION_NONCE_MAX)
                return ct_error_set(err, -EINVAL, "verify", "nonce-length",
                                    "nonce has %zu bytes, must have %d..%d (32 random bytes are usual)", len,
                                    VERIFICATION_NONCE_MIN, VERIFICATION_NONCE_MAX);
        return 0;
}

int verification_grpc_nonce(const uint8_t *req, size_t len, uint8_t **ret, size_t *ret_len, ct_error *err) {
        Verify__GetAttestationRequest *m = verify__get_attestation_request__unpack(NULL, len, req);
        if (!m)
                return ct_error_set(err, -EBADMSG, "verify", "request-malformed",
                                    "GetAttestationRequest does not parse (protobuf)");
        int r = nonce_length_ok(m->nonce.len, err);
        uint8_t *n = NULL;
        if (r >= 0) {
                n = malloc(m->nonce.len);
                if (!n)
                        r = ct_error_set(err, -ENOMEM, "verify", "out-of-memory", "nonce");
                else
                        memcpy(n, m->nonce.data, m->nonce.len);
        }
        size_t nlen = m->nonce.len;
        verify__get_attestation_request__free_unpacked(m, NULL);
        if (r < 0)
                return r;
        *ret = n;
        *ret_len = nlen;
        return 0;
}

int verification_http_nonce(const char *value, uint8_t **ret, size_t *ret_len, ct_error *err) {
        if (isempty(value))
                return ct_error_set(err, -EINVAL, "verify", "nonce-missing",
                                    "the nonce parameter is required exactly once: GET /?nonce=<base64url>");
        /* base64 of VERIFICATION_NONCE_MAX bytes is 4 * ceil(max / 3) characters */
        size_t vlen = strnlen(value, 4 * ((VERIFICATION_NONCE_MAX + 2) / 3) + 1);
        if (vlen > 4 * ((VERIFICATION_NONCE_MAX + 2) / 3))
                return ct_error_set(err, -EINVAL, "verify", "nonce-length", "nonce longer than %d bytes",
                                    VERIFICATION_NONCE_MAX);
        uint8_t *n = NULL;
        size_t nlen = 0;
        /* Go base64.URLEncoding: alphabet "-_", '=' padding required. */
        if (vlen % 4 != 0 || base64_decode(value, vlen, BASE64_URL, &n, &nlen) < 0)
                return ct_error_set(err, -EINVAL, "verify", "nonce-encoding",
                                    "nonce is not padded base64url (RFC 4648 §5, '-' '_' and '=')");
        int r = nonce_length_ok(nlen, err);
        if (r < 0) {
                free(n);
                return r;
        }
        *ret = n;
        *ret_len = nlen;
        return 0;
}

int verification_grpc_response(const char *doc, size_t doc_len, uint8_t **ret, size_t *ret_len) {
        Verify__GetAttestationResponse m = VERIFY__GET_ATTESTATION_RESPONSE__INIT;
        m.attestation.data = (uint8_t *) doc;
        m.attestation.len = doc_len;
        size_t n = verify__get_attestation_response__get_packed_size(&m);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
                return -ENOMEM;
        verify__get_attestation_response__pack(&m, buf);
        *ret = buf;
        *ret_len = n;
        return 0;
}

char *verification_http_body(const char *doc, size_t doc_len) {
        _cleanup_free_ char *b64 = base64_encode(doc, doc_len, BASE64_STD);
        if (!b64)
                return NULL;
        char *body = NULL;
        if (asprintf(&body, "{\"data\":\"%s\"}\n", b64) < 0)
                return NULL;
        return body;
}

struct verification {
        const char *tcti;
        const char *event_log;
        pthread_mutex_t lock; /* one TPM, one quote at a time */
};

int verification_new(const char *tcti, const char *event_log, verification **ret) {
        verification *v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->tcti = tcti;
        v->event_log = event_log;
        pthread_mutex_init(&v->lock, NULL);
        *ret = v;
        return 0;
}

void verification_free(verification *v) {
        if (!v)
                return;
        pthread_mutex_destroy(&v->lock);
        free(v);
}

int verification_issue(verification *v, const uint8_t *nonce, size_t nonce_len, char **ret_doc, size_t *ret_len,
                       ct_error *err) {
        _cleanup_free_ char *why = NULL;
        char *doc = NULL;
        size_t len = 0;
        pthread_mutex_lock(&v->lock);
        tpm_ctx *t = NULL;
        int r = tpm_open(v->tcti, &t, &why);
        if (r >= 0)
                r = attdoc_issue_qemu_vtpm_tpm(t, v->event_log, (const uint8_t *) VERIFICATION_USER_DATA,
                                               strlen(VERIFICATION_USER_DATA), nonce, nonce_len, &doc, &len, &why);
        tpm_close(t);
        pthread_mutex_unlock(&v->lock);
        if (r < 0)
                return ct_error_set(err, r, "verify", "issue-failed", "issuing the attestation document from %s: %s",
                                    v->tcti ?: TPM_DEFAULT_TCTI, why ?: strerror(-r));
        *ret_doc = doc;
        *ret_len = len;
        return 0;
}

/* --- HTTP --- */

struct verification_http {
        verification *v;
        struct MHD_Daemon *daemon;
        int fd;
};

static char request_marker, body_marker;

struct nonce_args {
        unsigned count;
        const char *value;
};

static enum MHD_Result count_nonce(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        struct nonce_args *a = cls;
        if (key && streq(key, "nonce")) {
                a->count++;
                a->value = value;
        }
        return MHD_YES;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body, const char *type) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const ct_error *err) {
        char msg[CT_ERROR_DETAIL_MAX + 64];
        ct_error_format(err, msg, sizeof msg);
        log_warn("HTTP GET /: %u: %s", status, msg);
        char *body = NULL;
        if (asprintf(&body, "%s\n", msg) < 0)
                return MHD_NO;
        return respond(c, status, body, "text/plain; charset=utf-8");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
        verification_http *h = cls;
        ct_error err = CT_ERROR_INIT;
        if (!*req_cls) {
                *req_cls = &request_marker;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                *upload_data_size = 0; /* a GET has no body: remember it and refuse below */
                *req_cls = &body_marker;
                return MHD_YES;
        }
        if (!streq(method, MHD_HTTP_METHOD_GET)) {
                ct_error_set(&err, -EINVAL, "verify", "method-not-allowed", "%s: only GET / is served", method);
                return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, &err);
        }
        if (!streq(url, "/")) {
                ct_error_set(&err, -ENOENT, "verify", "not-found", "only GET /?nonce=<base64url> is served");
                return respond_error(c, MHD_HTTP_NOT_FOUND, &err);
        }
        if (*req_cls == &body_marker) {
                ct_error_set(&err, -EINVAL, "verify", "request-malformed", "GET / with a request body");
                return respond_error(c, MHD_HTTP_BAD_REQUEST, &err);
        }
        struct nonce_args a = { 0 };
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_nonce, &a);
        if (a.count > 1) {
                ct_error_set(&err, -EINVAL, "verify", "nonce-repeated", "the nonce parameter is required exactly once");
                return respond_error(c, MHD_HTTP_BAD_REQUEST, &err);
        }
        _cleanup_free_ uint8_t *nonce = NULL;
        size_t nonce_len = 0;
        if (verification_http_nonce(a.value, &nonce, &nonce_len, &err) < 0)
                return respond_error(c, MHD_HTTP_BAD_REQUEST, &err);
        _cleanup_free_ char *doc = NULL;
        size_t doc_len = 0;
        if (verification_issue(h->v, nonce, nonce_len, &doc, &doc_len, &err) < 0)
                return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, &err);
        char *body = verification_http_body(doc, doc_len);
        if (!body)
                return MHD_NO;
        log_debug("HTTP GET /: attestation issued (%zu bytes)", doc_len);
        return respond(c, MHD_HTTP_OK, body, "application/json");
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
        log_emitv(LOG_LEVEL_DEBUG, fmt, ap);
}

/* "host:port", "[v6]:port", ":port" (all addresses) -> a listening socket. */
static int listen_on(const char *address, int *ret_fd, int *ret_port, ct_error *err) {
        const char *colon = strrchr(address, ':');
        if (!colon)
                return ct_error_set(err, -EINVAL, "verify", "address-invalid", "%s: expected HOST:PORT", address);
        char host[256];
        size_t hlen = (size_t) (colon - address);
        if (hlen >= sizeof host)
                return ct_error_set(err, -EINVAL, "verify", "address-invalid", "%s: host too long", address);
        memcpy(host, address, hlen);
        host[hlen] = '\0';
        char *h = host;
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
                host[hlen - 1] = '\0';
                h = host + 1;
        }
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &ai);
        if (g != 0)
                return ct_error_set(err, -EINVAL, "verify", "address-invalid", "%s: %s", address, gai_strerror(g));
        int r = -EADDRNOTAVAIL;
        for (struct addrinfo *p = ai; p; p = p->ai_next) {
                int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                int one = 1;
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (bind(fd, p->ai_addr, p->ai_addrlen) < 0 || listen(fd, 64) < 0) {
                        r = -errno;
                        close(fd);
                        continue;
                }
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                getsockname(fd, (struct sockaddr *) &ss, &sl);
                *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                                           : ((struct sockaddr_in *) &ss)->sin_port);
                *ret_fd = fd;
                freeaddrinfo(ai);
                return 0;
        }
        freeaddrinfo(ai);
        return ct_error_set(err, r, "verify", "listen-failed", "%s: %s", address, strerror(-r));
}

int verification_http_start(verification *v, const char *address, verification_http **ret, int *ret_port,
                            ct_error *err) {
        verification_http *h = calloc(1, sizeof(*h));
        if (!h)
                return ct_error_set(err, -ENOMEM, "verify", "out-of-memory", "HTTP server");
        h->v = v;
        h->fd = -1;
        int port = 0;
        int r = listen_on(address, &h->fd, &port, err);
        if (r < 0) {
                free(h);
                return r;
        }
        h->daemon = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
                (unsigned) VERIFICATION_HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned) VERIFICATION_HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                (size_t) VERIFICATION_HTTP_MEMORY_LIMIT, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
        if (!h->daemon) {
                close(h->fd);
                free(h);
                return ct_error_set(err, -EIO, "verify", "listen-failed", "%s: libmicrohttpd would not start", address);
        }
        h->fd = -1; /* MHD_stop_daemon closes the listening socket */
        *ret = h;
        *ret_port = port;
        return 0;
}

void verification_http_stop(verification_http *h) {
        if (!h)
                return;
        if (h->daemon)
                MHD_stop_daemon(h->daemon);
        if (h->fd >= 0)
                close(h->fd);
        free(h);
}
