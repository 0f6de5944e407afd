/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP 1.4 client over OpenSSL TLS. See kmip.h for the transport, retry and error rules. */
#include "kmip/kmip.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "basic/cleanup-openssl.h"
#include "basic/log.h"
#include "kmip/ttlv.h"

#define LAYER "kmip"

struct kmip_client {
        kmip_config cfg;
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
        bool server_name_is_ip;
        kmip_trace_fn hook;
        void *hook_userdata;
        unsigned n_connects, n_requests;
};

const char *kmip_state_to_string(uint32_t state) {
        switch (state) {
        case KMIP_STATE_PRE_ACTIVE:
                return "Pre-Active";
        case KMIP_STATE_ACTIVE:
                return "Active";
        case KMIP_STATE_DEACTIVATED:
                return "Deactivated";
        case KMIP_STATE_COMPROMISED:
                return "Compromised";
        case KMIP_STATE_DESTROYED:
                return "Destroyed";
        case KMIP_STATE_DESTROYED_COMPROMISED:
                return "Destroyed Compromised";
        }
        return "unknown";
}

const char *kmip_result_reason_to_string(uint32_t reason) {
        switch (reason) {
        case KMIP_REASON_ITEM_NOT_FOUND:
                return "Item Not Found";
        case KMIP_REASON_RESPONSE_TOO_LARGE:
                return "Response Too Large";
        case KMIP_REASON_AUTHENTICATION_NOT_SUCCESSFUL:
                return "Authentication Not Successful";
        case KMIP_REASON_INVALID_MESSAGE:
                return "Invalid Message";
        case KMIP_REASON_OPERATION_NOT_SUPPORTED:
                return "Operation Not Supported";
        case KMIP_REASON_MISSING_DATA:
                return "Missing Data";
        case KMIP_REASON_INVALID_FIELD:
                return "Invalid Field";
        case KMIP_REASON_FEATURE_NOT_SUPPORTED:
                return "Feature Not Supported";
        case KMIP_REASON_CRYPTOGRAPHIC_FAILURE:
                return "Cryptographic Failure";
        case KMIP_REASON_ILLEGAL_OPERATION:
                return "Illegal Operation";
        case KMIP_REASON_PERMISSION_DENIED:
                return "Permission Denied";
        case KMIP_REASON_GENERAL_FAILURE:
                return "General Failure";
        }
        return "other";
}

static const char *reason_token(uint32_t reason) {
        switch (reason) {
        case KMIP_REASON_ITEM_NOT_FOUND:
                return "item-not-found";
        case KMIP_REASON_AUTHENTICATION_NOT_SUCCESSFUL:
                return "authentication-failed";
        case KMIP_REASON_PERMISSION_DENIED:
                return "permission-denied";
        case KMIP_REASON_INVALID_FIELD:
        case KMIP_REASON_MISSING_DATA:
        case KMIP_REASON_INVALID_MESSAGE:
                return "invalid-field";
        case KMIP_REASON_OPERATION_NOT_SUPPORTED:
        case KMIP_REASON_FEATURE_NOT_SUPPORTED:
                return "operation-not-supported";
        case KMIP_REASON_CRYPTOGRAPHIC_FAILURE:
                return "cryptographic-failure";
        case KMIP_REASON_ILLEGAL_OPERATION:
                return "illegal-operation";
        case KMIP_REASON_GENERAL_FAILURE:
                return "general-failure";
        }
        return "operation-failed";
}

static int reason_errno(uint32_t reason) {
        switch (reason) {
        case KMIP_REASON_ITEM_NOT_FOUND:
                return -ENOENT;
        case KMIP_REASON_AUTHENTICATION_NOT_SUCCESSFUL:
        case KMIP_REASON_PERMISSION_DENIED:
                return -EACCES;
        case KMIP_REASON_OPERATION_NOT_SUPPORTED:
        case KMIP_REASON_FEATURE_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case KMIP_REASON_INVALID_FIELD:
        case KMIP_REASON_MISSING_DATA:
        case KMIP_REASON_INVALID_MESSAGE:
                return -EINVAL;
        }
        return -EIO;
}

static const char *op_name(uint32_t op) {
        switch (op) {
        case KMIP_OP_CREATE:
                return "Create";
        case KMIP_OP_GET_ATTRIBUTES:
                return "Get Attributes";
        case KMIP_OP_ACTIVATE:
                return "Activate";
        case KMIP_OP_REVOKE:
                return "Revoke";
        case KMIP_OP_DESTROY:
                return "Destroy";
        case KMIP_OP_ENCRYPT:
                return "Encrypt";
        case KMIP_OP_DECRYPT:
                return "Decrypt";
        }
        return "operation";
}

/* ---- configuration ---- */

void kmip_config_done(kmip_config *c) {
        if (!c)
                return;
        free(c->host);
        free(c->server_name);
        free(c->client_cert_pem);
        secret_free(c->client_key_pem);
        free(c->server_ca_pem);
        *c = (kmip_config) { 0 };
}

int kmip_parse_endpoint(const char *s, char **ret_host, uint16_t *ret_port) {
        if (isempty(s))
                return -EINVAL;
        const char *host = s, *host_end, *port = NULL;
        if (s[0] == '[') {
                host = s + 1;
                host_end = strchr(host, ']');
                if (!host_end || host_end == host)
                        return -EINVAL;
                if (host_end[1] == ':')
                        port = host_end + 2;
                else if (host_end[1] != '\0')
                        return -EINVAL;
        } else {
                host_end = strchr(s, ':');
                if (host_end) {
                        if (strchr(host_end + 1, ':'))
                                return -EINVAL; /* a bare IPv6 literal needs brackets */
                        port = host_end + 1;
                } else
                        host_end = s + strlen(s);
                if (host_end == s)
                        return -EINVAL;
        }
        unsigned long p = KMIP_DEFAULT_PORT;
        if (port) {
                if (*port < '0' || *port > '9')
                        return -EINVAL;
                char *end;
                errno = 0;
                p = strtoul(port, &end, 10);
                if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
                        return -EINVAL;
        }
        char *h = strndup(host, (size_t) (host_end - host));
        if (!h)
                return -ENOMEM;
        *ret_host = h;
        *ret_port = (uint16_t) p;
        return 0;
}

static bool is_ip_literal(const char *s) {
        struct in6_addr a6;
        struct in_addr a4;
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

static int load_cert(const char *pem, X509 **ret) {
        _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, -1);
        if (!b)
                return -ENOMEM;
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x)
                return -EBADMSG;
        *ret = x;
        return 0;
}

int kmip_client_new(const kmip_config *config, kmip_client **ret, ct_error *err) {
        if (isempty(config->host) || config->port == 0)
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "no KMIP endpoint");
        if (isempty(config->client_cert_pem) || !config->client_key_pem || config->client_key_pem->len == 0 ||
            isempty(config->server_ca_pem))
                return ct_error_set(err, -EINVAL, LAYER, "bad-config",
                                    "client-cert, client-key and server-ca are all required");

        _cleanup_(X509_freep) X509 *cert = NULL, *ca = NULL;
        kmip_client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = -EBADF;
        int r = -ENOMEM;
        c->cfg.host = strdup(config->host);
        c->cfg.port = config->port;
        c->cfg.server_name = strdup(config->server_name ? config->server_name : config->host);
        c->cfg.client_cert_pem = strdup(config->client_cert_pem);
        c->cfg.client_key_pem = secret_new_copy(config->client_key_pem->data, config->client_key_pem->len);
        c->cfg.server_ca_pem = strdup(config->server_ca_pem);
        c->cfg.timeout_ms = config->timeout_ms ? config->timeout_ms : KMIP_DEFAULT_TIMEOUT_MS;
        c->cfg.attempts = config->attempts ? config->attempts : KMIP_DEFAULT_ATTEMPTS;
        c->cfg.backoff_ms = config->backoff_ms ? config->backoff_ms : KMIP_DEFAULT_BACKOFF_MS;
        if (!c->cfg.host || !c->cfg.server_name || !c->cfg.client_cert_pem || !c->cfg.client_key_pem ||
            !c->cfg.server_ca_pem)
                goto fail;
        c->server_name_is_ip = is_ip_literal(c->cfg.server_name);

        c->ctx = SSL_CTX_new(TLS_client_method());
        if (!c->ctx)
                goto fail;
        /* KMIP Profiles v1.4, Basic Authentication Suite: TLS 1.2 or later. */
        SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);

        r = load_cert(c->cfg.client_cert_pem, &cert);
        if (r < 0) {
                r = ct_error_set(err, r, LAYER, "bad-config", "client-cert: not a PEM certificate");
                goto fail;
        }
        if (SSL_CTX_use_certificate(c->ctx, cert) != 1) {
                r = ct_error_set(err, -EINVAL, LAYER, "bad-config", "client-cert: not usable");
                goto fail;
        }
        {
                _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(c->cfg.client_key_pem->data,
                                                               (int) c->cfg.client_key_pem->len);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
                if (!key) {
                        r = ct_error_set(err, -EINVAL, LAYER, "bad-config", "client-key: not a PEM private key");
                        goto fail;
                }
                if (SSL_CTX_use_PrivateKey(c->ctx, key) != 1 || SSL_CTX_check_private_key(c->ctx) != 1) {
                        r = ct_error_set(err, -EINVAL, LAYER, "bad-config",
                                         "client-key does not match client-cert");
                        goto fail;
                }
        }
        r = load_cert(c->cfg.server_ca_pem, &ca);
        if (r < 0) {
                r = ct_error_set(err, r, LAYER, "bad-config", "server-ca: not a PEM certificate");
                goto fail;
        }
        /* The pinned CA is the only trust anchor: a fresh store, no default paths. */
        X509_STORE *store = X509_STORE_new();
        if (!store || X509_STORE_add_cert(store, ca) != 1) {
                X509_STORE_free(store);
                r = -ENOMEM;
                goto fail;
        }
        SSL_CTX_set_cert_store(c->ctx, store);
        ERR_clear_error();
        *ret = c;
        return 0;
fail:
        ERR_clear_error();
        kmip_client_free(c);
        return r;
}

static void disconnect(kmip_client *c) {
        if (c->ssl) {
                (void) SSL_shutdown(c->ssl);
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -EBADF;
}

void kmip_client_free(kmip_client *c) {
        if (!c)
                return;
        disconnect(c);
        SSL_CTX_free(c->ctx);
        kmip_config_done(&c->cfg);
        free(c);
}

void kmip_client_set_response_hook(kmip_client *c, kmip_trace_fn fn, void *userdata) {
        c->hook = fn;
        c->hook_userdata = userdata;
}

void kmip_client_stats(const kmip_client *c, unsigned *ret_connects, unsigned *ret_requests) {
        if (ret_connects)
                *ret_connects = c->n_connects;
        if (ret_requests)
                *ret_requests = c->n_requests;
}

/* ---- transport ---- */

/* Transport errors that another attempt may cure. */
static bool transient(const ct_error *e) {
        return e->reason && (streq(e->reason, "server-down") || streq(e->reason, "server-timeout") ||
                             streq(e->reason, "connection-lost"));
}

static int tcp_connect(kmip_client *c, ct_error *err) {
        char port[8];
        snprintf(port, sizeof(port), "%u", c->cfg.port);
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(c->cfg.host, port, &hints, &ai);
        if (g != 0)
                return ct_error_set(err, -EHOSTUNREACH, LAYER, "server-down", "%s:%u: cannot resolve: %s",
                                    c->cfg.host, c->cfg.port, gai_strerror(g));
        int last = -ECONNREFUSED;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                               a->ai_protocol);
                if (fd < 0) {
                        last = -errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                        if (errno != EINPROGRESS) {
                                last = -errno;
                                continue;
                        }
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        int n;
                        do
                                n = poll(&p, 1, (int) c->cfg.timeout_ms);
                        while (n < 0 && errno == EINTR);
                        if (n == 0) {
                                last = -ETIMEDOUT;
                                continue;
                        }
                        int soerr = 0;
                        socklen_t sl = sizeof(soerr);
                        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
                                last = -errno;
                                continue;
                        }
                        if (soerr != 0) {
                                last = -soerr;
                                continue;
                        }
                }
                /* Blocking from here, every read and write bounded by the timeout. */
                int fl = fcntl(fd, F_GETFL);
                if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                        last = -errno;
                        continue;
                }
                struct timeval tv = { .tv_sec = c->cfg.timeout_ms / 1000,
                                      .tv_usec = (c->cfg.timeout_ms % 1000) * 1000 };
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                freeaddrinfo(ai);
                c->fd = TAKE_FD(fd);
                return 0;
        }
        freeaddrinfo(ai);
        if (last == -ETIMEDOUT)
                return ct_error_set(err, last, LAYER, "server-timeout", "%s:%u: no answer to connect within %u ms",
                                    c->cfg.host, c->cfg.port, c->cfg.timeout_ms);
        return ct_error_set(err, last, LAYER, "server-down", "%s:%u: %s", c->cfg.host, c->cfg.port,
                            strerror(-last));
}

/* Classifies a failed handshake from the verify result and the OpenSSL error queue. */
static int handshake_error(kmip_client *c, int ssl_ret, ct_error *err) {
        int saved_errno = errno;
        int ssl_err = SSL_get_error(c->ssl, ssl_ret);
        long vr = SSL_get_verify_result(c->ssl);
        unsigned long e = ERR_peek_last_error();
        int reason = ERR_GET_REASON(e);
        char ebuf[256] = "";
        if (e)
                ERR_error_string_n(e, ebuf, sizeof(ebuf));
        ERR_clear_error();
        if (vr != X509_V_OK) {
                if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
                        return ct_error_set(err, -EPERM, LAYER, "server-name-mismatch",
                                            "%s:%u: the server certificate does not name %s", c->cfg.host,
                                            c->cfg.port, c->cfg.server_name);
                return ct_error_set(err, -EPERM, LAYER, "server-ca-mismatch",
                                    "%s:%u: the server certificate does not chain to the pinned server-ca: %s",
                                    c->cfg.host, c->cfg.port, X509_verify_cert_error_string(vr));
        }
        switch (reason) {
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
        case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
                return ct_error_set(err, -EACCES, LAYER, "tls-client-cert-refused",
                                    "%s:%u: the server refused the client certificate (%s)", c->cfg.host,
                                    c->cfg.port, ebuf);
        }
        /* On a blocking socket with SO_RCVTIMEO, "want read/write" means the timeout expired. */
        if (ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE ||
            (ssl_err == SSL_ERROR_SYSCALL && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)))
                return ct_error_set(err, -ETIMEDOUT, LAYER, "server-timeout",
                                    "%s:%u: TLS handshake not finished within %u ms", c->cfg.host, c->cfg.port,
                                    c->cfg.timeout_ms);
        if (ssl_err == SSL_ERROR_SYSCALL && !e)
                return ct_error_set(err, -ECONNRESET, LAYER, "connection-lost",
                                    "%s:%u: connection closed during the TLS handshake", c->cfg.host, c->cfg.port);
        return ct_error_set(err, -EPROTO, LAYER, "tls-handshake-failed", "%s:%u: %s", c->cfg.host, c->cfg.port,
                            ebuf[0] ? ebuf : "TLS handshake failed");
}

/* A socket BIO whose writes never raise SIGPIPE (send with MSG_NOSIGNAL): a library must not kill
 * its process when the server closes the connection, nor change the process's signal handling. */
static BIO_METHOD *nosigpipe_method;
static pthread_once_t nosigpipe_once = PTHREAD_ONCE_INIT;

static int nosigpipe_write(BIO *b, const char *buf, int len) {
        int fd = -1;
        BIO_get_fd(b, &fd);
        BIO_clear_retry_flags(b);
        if (fd < 0 || len < 0)
                return -1;
        ssize_t n = send(fd, buf, (size_t) len, MSG_NOSIGNAL);
        return n < 0 ? -1 : (int) n;
}

static void nosigpipe_init(void) {
        const BIO_METHOD *sock = BIO_s_socket();
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                     "kmip socket");
        if (!m)
                return;
        if (BIO_meth_set_write(m, nosigpipe_write) != 1 || BIO_meth_set_read(m, BIO_meth_get_read(sock)) != 1 ||
            BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) != 1 ||
            BIO_meth_set_create(m, BIO_meth_get_create(sock)) != 1 ||
            BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock)) != 1) {
                BIO_meth_free(m);
                return;
        }
        nosigpipe_method = m;
}

static int tls_connect(kmip_client *c, ct_error *err) {
        int r = tcp_connect(c, err);
        if (r < 0)
                return r;
        c->ssl = SSL_new(c->ctx);
        if (!c->ssl) {
                disconnect(c);
                return -ENOMEM;
        }
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if (c->server_name_is_ip) {
                if (X509_VERIFY_PARAM_set1_ip_asc(vp, c->cfg.server_name) != 1)
                        r = -EINVAL;
        } else {
                X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (SSL_set1_host(c->ssl, c->cfg.server_name) != 1 ||
                    SSL_set_tlsext_host_name(c->ssl, c->cfg.server_name) != 1)
                        r = -EINVAL;
        }
        (void) pthread_once(&nosigpipe_once, nosigpipe_init);
        BIO *bio = nosigpipe_method ? BIO_new(nosigpipe_method) : NULL;
        if (!bio) {
                disconnect(c);
                return -ENOMEM;
        }
        BIO_set_fd(bio, c->fd, BIO_NOCLOSE);
        SSL_set_bio(c->ssl, bio, bio);
        if (r < 0) {
                disconnect(c);
                ERR_clear_error();
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "server name %s not usable",
                                    c->cfg.server_name);
        }
        ERR_clear_error();
        errno = 0;
        int s = SSL_connect(c->ssl);
        if (s != 1) {
                r = handshake_error(c, s, err);
                disconnect(c);
                return r;
        }
        c->n_connects++;
        log_debug("kmip: connected to %s:%u (%s)", c->cfg.host, c->cfg.port, SSL_get_version(c->ssl));
        return 0;
}

/* I/O errors after the handshake. A TLS 1.3 server reports a refused client certificate only
 * after the handshake, as an alert on the first read. */
static int io_error(kmip_client *c, int ret, const char *what, ct_error *err) {
        int saved_errno = errno;
        int ssl_err = SSL_get_error(c->ssl, ret);
        unsigned long e = ERR_peek_last_error();
        int reason = ERR_GET_REASON(e);
        char ebuf[256] = "";
        if (e)
                ERR_error_string_n(e, ebuf, sizeof(ebuf));
        ERR_clear_error();
        if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED || reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
            reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE || reason == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED)
                return ct_error_set(err, -EACCES, LAYER, "tls-client-cert-refused",
                                    "%s:%u: the server refused the client certificate (%s)", c->cfg.host,
                                    c->cfg.port, ebuf);
        if (ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE ||
            (ssl_err == SSL_ERROR_SYSCALL && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)))
                return ct_error_set(err, -ETIMEDOUT, LAYER, "server-timeout", "%s:%u: %s: no answer within %u ms",
                                    c->cfg.host, c->cfg.port, what, c->cfg.timeout_ms);
        return ct_error_set(err, -ECONNRESET, LAYER, "connection-lost", "%s:%u: %s: connection lost%s%s",
                            c->cfg.host, c->cfg.port, what, ebuf[0] ? ": " : "", ebuf);
}

static int tls_write_all(kmip_client *c, const uint8_t *p, size_t len, ct_error *err) {
        while (len > 0) {
                size_t n = 0;
                ERR_clear_error();
                errno = 0;
                int w = SSL_write_ex(c->ssl, p, len, &n);
                if (w != 1)
                        return io_error(c, w, "sending the request", err);
                p += n;
                len -= n;
        }
        return 0;
}

static int tls_read_exact(kmip_client *c, uint8_t *p, size_t len, size_t *ret_got, ct_error *err) {
        size_t got = 0;
        while (got < len) {
                size_t n = 0;
                ERR_clear_error();
                errno = 0;
                int rr = SSL_read_ex(c->ssl, p + got, len - got, &n);
                if (rr != 1) {
                        *ret_got = got;
                        return io_error(c, rr, "reading the response", err);
                }
                got += n;
        }
        *ret_got = got;
        return 0;
}

/* ---- messages ---- */

static void enc_request_header(ttlv_enc *e) {
        ttlv_enc_begin(e, KMIP_TAG_REQUEST_MESSAGE);
        ttlv_enc_begin(e, KMIP_TAG_REQUEST_HEADER);
        ttlv_enc_begin(e, KMIP_TAG_PROTOCOL_VERSION);
        ttlv_enc_int(e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
        ttlv_enc_int(e, KMIP_TAG_PROTOCOL_VERSION_MINOR, 4);
        ttlv_enc_end(e);
        ttlv_enc_int(e, KMIP_TAG_MAXIMUM_RESPONSE_SIZE, 65536);
        ttlv_enc_int(e, KMIP_TAG_BATCH_COUNT, 1);
        ttlv_enc_end(e);
}

static void enc_begin_request(ttlv_enc *e, uint32_t op) {
        ttlv_enc_init(e);
        enc_request_header(e);
        ttlv_enc_begin(e, KMIP_TAG_BATCH_ITEM);
        ttlv_enc_enum(e, KMIP_TAG_OPERATION, op);
        ttlv_enc_begin(e, KMIP_TAG_REQUEST_PAYLOAD);
}

static void enc_end_request(ttlv_enc *e) {
        ttlv_enc_end(e); /* payload */
        ttlv_enc_end(e); /* batch item */
        ttlv_enc_end(e); /* message */
}

int kmip_parse_response(const uint8_t *msg, size_t len, uint32_t operation, ttlv_tree **ret_tree,
                        size_t *ret_payload, ct_error *err) {
        _cleanup_(ttlv_tree_freep) ttlv_tree *t = NULL;
        enum ttlv_error te;
        int r = ttlv_decode(msg, len, &t, &te);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return ct_error_set(err, r, LAYER, "protocol-error", "%s response: malformed TTLV: %s",
                                    op_name(operation), ttlv_error_to_string(te));
        if (t->items[0].tag != KMIP_TAG_RESPONSE_MESSAGE || t->items[0].type != TTLV_STRUCTURE)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error", "%s response: not a Response Message",
                                    op_name(operation));
        size_t hdr = ttlv_child_typed(t, 0, KMIP_TAG_RESPONSE_HEADER, TTLV_STRUCTURE);
        int32_t count;
        if (hdr == TTLV_NONE || ttlv_get_int(t, hdr, KMIP_TAG_BATCH_COUNT, &count) < 0 || count != 1)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "%s response: header missing or batch count is not 1", op_name(operation));
        size_t pv = ttlv_child_typed(t, hdr, KMIP_TAG_PROTOCOL_VERSION, TTLV_STRUCTURE);
        int32_t major;
        if (pv == TTLV_NONE || ttlv_get_int(t, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, &major) < 0 || major != 1)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "%s response: protocol version is not 1.x", op_name(operation));
        size_t item = ttlv_child_typed(t, 0, KMIP_TAG_BATCH_ITEM, TTLV_STRUCTURE);
        if (item == TTLV_NONE || ttlv_next_same(t, item) != TTLV_NONE)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "%s response: not exactly one batch item", op_name(operation));
        uint32_t status, op;
        if (ttlv_get_enum(t, item, KMIP_TAG_RESULT_STATUS, &status) < 0)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error", "%s response: no Result Status",
                                    op_name(operation));
        /* Error responses built before the request was understood carry no Operation. */
        if (ttlv_get_enum(t, item, KMIP_TAG_OPERATION, &op) == 0 && op != operation)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "%s response: answers operation 0x%x", op_name(operation), op);
        if (status != KMIP_STATUS_SUCCESS) {
                uint32_t reason = 0;
                (void) ttlv_get_enum(t, item, KMIP_TAG_RESULT_REASON, &reason);
                const char *m = NULL;
                size_t mlen = 0;
                (void) ttlv_get_text(t, item, KMIP_TAG_RESULT_MESSAGE, &m, &mlen);
                /* The Result Message is the server's text: printable ASCII only, bounded. */
                char msgbuf[200];
                size_t k = 0;
                for (size_t i = 0; m && i < mlen && k < sizeof(msgbuf) - 1; i++)
                        msgbuf[k++] = (m[i] >= 0x20 && m[i] < 0x7f) ? m[i] : '?';
                msgbuf[k] = '\0';
                return ct_error_set(err, reason_errno(reason), LAYER, reason_token(reason),
                                    "%s: the KMIP server answered %s (Result Reason %s)%s%s", op_name(operation),
                                    status == KMIP_STATUS_OPERATION_FAILED ? "Operation Failed" : "not Success",
                                    kmip_result_reason_to_string(reason), k ? ": " : "", msgbuf);
        }
        *ret_payload = ttlv_child_typed(t, item, KMIP_TAG_RESPONSE_PAYLOAD, TTLV_STRUCTURE);
        *ret_tree = TAKE_PTR(t);
        return 0;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void wipe_free(uint8_t *p, size_t len) {
        if (p) {
                erase_memory(p, len);
                free(p);
        }
}

/* One exchange: send the request, read one response. *ret_msg is wiped by the caller. */
static int exchange_once(kmip_client *c, const uint8_t *req, size_t req_len, bool *ret_sent, bool *ret_reused,
                         uint8_t **ret_msg, size_t *ret_len, ct_error *err) {
        *ret_sent = false;
        *ret_reused = c->ssl != NULL;
        int r;
        if (!c->ssl) {
                r = tls_connect(c, err);
                if (r < 0)
                        return r;
        }
        r = tls_write_all(c, req, req_len, err);
        if (r < 0)
                return r;
        *ret_sent = true;
        c->n_requests++;
        uint8_t hdr[TTLV_HEADER_SIZE];
        size_t got;
        r = tls_read_exact(c, hdr, sizeof(hdr), &got, err);
        if (r < 0) {
                if (got == 0 && *ret_reused)
                        *ret_sent = false; /* a stale kept-alive connection: nothing was answered */
                return r;
        }
        size_t total;
        if (ttlv_peek_message_size(hdr, &total) < 0)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "%s:%u: the response header is not a TTLV structure of at most %u bytes",
                                    c->cfg.host, c->cfg.port, TTLV_MAX_MESSAGE);
        uint8_t *msg = malloc(total);
        if (!msg)
                return -ENOMEM;
        memcpy(msg, hdr, sizeof(hdr));
        r = tls_read_exact(c, msg + sizeof(hdr), total - sizeof(hdr), &got, err);
        if (r < 0) {
                wipe_free(msg, total);
                return r;
        }
        *ret_msg = msg;
        *ret_len = total;
        return 0;
}

/* Sends a request and returns the parsed response with retries (kmip.h). */
static int request(kmip_client *c, uint32_t op, ttlv_enc *e, bool idempotent, ttlv_tree **ret_tree,
                   uint8_t **ret_msg, size_t *ret_msg_len, size_t *ret_payload, ct_error *err) {
        const uint8_t *req;
        size_t req_len;
        int r = ttlv_enc_finish(e, &req, &req_len);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "bad-config", "%s: request does not encode", op_name(op));
        ct_error last = CT_ERROR_INIT;
        unsigned made = 0;
        for (unsigned attempt = 0; attempt < c->cfg.attempts; attempt++) {
                made++;
                if (attempt > 0) {
                        unsigned shift = MIN(attempt - 1, 10u);
                        sleep_ms(c->cfg.backoff_ms << shift);
                }
                ct_error one = CT_ERROR_INIT;
                bool sent, reused;
                uint8_t *msg = NULL;
                size_t msg_len = 0;
                r = exchange_once(c, req, req_len, &sent, &reused, &msg, &msg_len, &one);
                if (r < 0) {
                        disconnect(c);
                        last = one;
                        if (r == -ENOMEM)
                                return r;
                        if (!transient(&one))
                                break;
                        if (sent && !idempotent)
                                break; /* the server may have acted on it: do not repeat */
                        log_debug("kmip: %s: attempt %u failed: %s", op_name(op), attempt + 1, one.detail);
                        continue;
                }
                if (c->hook)
                        c->hook(c->hook_userdata, op, msg, msg_len);
                ttlv_tree *t = NULL;
                size_t payload = TTLV_NONE;
                r = kmip_parse_response(msg, msg_len, op, &t, &payload, err);
                if (r < 0) {
                        if (err && err->reason && streq(err->reason, "protocol-error"))
                                disconnect(c); /* out of step with the server */
                        wipe_free(msg, msg_len);
                        return r;
                }
                *ret_tree = t;
                *ret_msg = msg;
                *ret_msg_len = msg_len;
                *ret_payload = payload;
                return 0;
        }
        if (transient(&last))
                ct_error_prefix(&last, "%s: %u attempt%s", op_name(op), made, made == 1 ? "" : "s");
        if (streq_ptr(last.reason, "connection-lost"))
                last.reason = "server-down"; /* the server went away while we talked to it */
        if (err && !ct_error_is_set(err))
                *err = last;
        return last.code ? last.code : -EIO;
}

struct response {
        ttlv_tree *tree;
        uint8_t *msg;
        size_t len;
        size_t payload;
};

static void response_done(struct response *resp) {
        ttlv_tree_free(resp->tree);
        wipe_free(resp->msg, resp->len);
        *resp = (struct response) { .payload = TTLV_NONE };
}

static int do_request(kmip_client *c, uint32_t op, ttlv_enc *e, bool idempotent, struct response *resp,
                      ct_error *err) {
        *resp = (struct response) { .payload = TTLV_NONE };
        int r = request(c, op, e, idempotent, &resp->tree, &resp->msg, &resp->len, &resp->payload, err);
        ttlv_enc_done(e);
        return r;
}

static int payload_uid(const struct response *resp, uint32_t op, char **ret, ct_error *err) {
        const char *s;
        size_t n;
        if (resp->payload == TTLV_NONE ||
            ttlv_get_text(resp->tree, resp->payload, KMIP_TAG_UNIQUE_IDENTIFIER, &s, &n) < 0 || n == 0 || n > 256)
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error", "%s response: no Unique Identifier",
                                    op_name(op));
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x21 || s[i] > 0x7e)
                        return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                            "%s response: Unique Identifier is not printable", op_name(op));
        char *u = strndup(s, n);
        if (!u)
                return -ENOMEM;
        *ret = u;
        return 0;
}

static void enc_attr_int(ttlv_enc *e, const char *name, uint8_t type, uint32_t v) {
        ttlv_enc_begin(e, KMIP_TAG_ATTRIBUTE);
        ttlv_enc_text(e, KMIP_TAG_ATTRIBUTE_NAME, name, strlen(name));
        if (type == TTLV_ENUMERATION)
                ttlv_enc_enum(e, KMIP_TAG_ATTRIBUTE_VALUE, v);
        else
                ttlv_enc_int(e, KMIP_TAG_ATTRIBUTE_VALUE, (int32_t) v);
        ttlv_enc_end(e);
}

static int check_uid(const char *uid, ct_error *err) {
        if (isempty(uid) || strlen(uid) > 256)
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "KEK unique identifier missing or too long");
        return 0;
}

int kmip_create_aes_key(kmip_client *c, unsigned bits, uint32_t usage_mask, const char *name, char **ret_uid,
                        ct_error *err) {
        if (bits != 128 && bits != 192 && bits != 256)
                return ct_error_set(err, -EINVAL, LAYER, "bad-config", "AES key length %u", bits);
        ttlv_enc e;
        enc_begin_request(&e, KMIP_OP_CREATE);
        ttlv_enc_enum(&e, KMIP_TAG_OBJECT_TYPE, 2 /* Symmetric Key */);
        ttlv_enc_begin(&e, KMIP_TAG_TEMPLATE_ATTRIBUTE);
        enc_attr_int(&e, "Cryptographic Algorithm", TTLV_ENUMERATION, 3 /* AES */);
        enc_attr_int(&e, "Cryptographic Length", TTLV_INTEGER, bits);
        enc_attr_int(&e, "Cryptographic Usage Mask", TTLV_INTEGER, usage_mask);
        if (!isempty(name)) {
                ttlv_enc_begin(&e, KMIP_TAG_ATTRIBUTE);
                ttlv_enc_text(&e, KMIP_TAG_ATTRIBUTE_NAME, "Name", 4);
                ttlv_enc_begin(&e, KMIP_TAG_ATTRIBUTE_VALUE);
                ttlv_enc_text(&e, KMIP_TAG_NAME_VALUE, name, strlen(name));
                ttlv_enc_enum(&e, KMIP_TAG_NAME_TYPE, 1 /* Uninterpreted Text String */);
                ttlv_enc_end(&e);
                ttlv_enc_end(&e);
        }
        ttlv_enc_end(&e);
        enc_end_request(&e);
        struct response resp;
        int r = do_request(c, KMIP_OP_CREATE, &e, false, &resp, err);
        if (r < 0)
                return r;
        r = payload_uid(&resp, KMIP_OP_CREATE, ret_uid, err);
        response_done(&resp);
        return r;
}

static int simple_uid_op(kmip_client *c, uint32_t op, const char *uid, int32_t revoke_code, ct_error *err) {
        int r = check_uid(uid, err);
        if (r < 0)
                return r;
        ttlv_enc e;
        enc_begin_request(&e, op);
        ttlv_enc_text(&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid, strlen(uid));
        if (op == KMIP_OP_REVOKE) {
                ttlv_enc_begin(&e, KMIP_TAG_REVOCATION_REASON);
                ttlv_enc_enum(&e, KMIP_TAG_REVOCATION_REASON_CODE, (uint32_t) revoke_code);
                ttlv_enc_end(&e);
        }
        enc_end_request(&e);
        struct response resp;
        r = do_request(c, op, &e, false, &resp, err);
        if (r < 0) {
                ct_error_prefix(err, "KEK %s", uid);
                return r;
        }
        response_done(&resp);
        return 0;
}

int kmip_activate(kmip_client *c, const char *uid, ct_error *err) {
        return simple_uid_op(c, KMIP_OP_ACTIVATE, uid, 0, err);
}

int kmip_revoke(kmip_client *c, const char *uid, uint32_t reason_code, ct_error *err) {
        return simple_uid_op(c, KMIP_OP_REVOKE, uid, (int32_t) reason_code, err);
}

int kmip_destroy(kmip_client *c, const char *uid, ct_error *err) {
        return simple_uid_op(c, KMIP_OP_DESTROY, uid, 0, err);
}

int kmip_get_key_info(kmip_client *c, const char *uid, kmip_key_info *ret, ct_error *err) {
        int r = check_uid(uid, err);
        if (r < 0)
                return r;
        static const char *const names[] = { "State", "Cryptographic Algorithm", "Cryptographic Length",
                                             "Cryptographic Usage Mask" };
        ttlv_enc e;
        enc_begin_request(&e, KMIP_OP_GET_ATTRIBUTES);
        ttlv_enc_text(&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid, strlen(uid));
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                ttlv_enc_text(&e, KMIP_TAG_ATTRIBUTE_NAME, names[i], strlen(names[i]));
        enc_end_request(&e);
        struct response resp;
        r = do_request(c, KMIP_OP_GET_ATTRIBUTES, &e, true, &resp, err);
        if (r < 0) {
                ct_error_prefix(err, "KEK %s", uid);
                return r;
        }
        kmip_key_info info = { 0 };
        if (resp.payload != TTLV_NONE) {
                const ttlv_tree *t = resp.tree;
                for (size_t a = ttlv_child(t, resp.payload, KMIP_TAG_ATTRIBUTE); a != TTLV_NONE;
                     a = ttlv_next_same(t, a)) {
                        const char *n;
                        size_t nl;
                        if (t->items[a].type != TTLV_STRUCTURE ||
                            ttlv_get_text(t, a, KMIP_TAG_ATTRIBUTE_NAME, &n, &nl) < 0)
                                continue;
                        uint32_t ev;
                        int32_t iv;
                        if (nl == 5 && memcmp(n, "State", 5) == 0 &&
                            ttlv_get_enum(t, a, KMIP_TAG_ATTRIBUTE_VALUE, &ev) == 0)
                                info.state = ev;
                        else if (nl == 23 && memcmp(n, "Cryptographic Algorithm", 23) == 0 &&
                                 ttlv_get_enum(t, a, KMIP_TAG_ATTRIBUTE_VALUE, &ev) == 0)
                                info.algorithm = ev;
                        else if (nl == 20 && memcmp(n, "Cryptographic Length", 20) == 0 &&
                                 ttlv_get_int(t, a, KMIP_TAG_ATTRIBUTE_VALUE, &iv) == 0)
                                info.length = iv;
                        else if (nl == 24 && memcmp(n, "Cryptographic Usage Mask", 24) == 0 &&
                                 ttlv_get_int(t, a, KMIP_TAG_ATTRIBUTE_VALUE, &iv) == 0)
                                info.usage_mask = iv;
                }
        }
        response_done(&resp);
        *ret = info;
        return 0;
}

static void enc_gcm_params(ttlv_enc *e) {
        ttlv_enc_begin(e, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
        ttlv_enc_enum(e, KMIP_TAG_BLOCK_CIPHER_MODE, 9 /* GCM */);
        ttlv_enc_enum(e, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, 3 /* AES */);
        ttlv_enc_int(e, KMIP_TAG_TAG_LENGTH, KMIP_GCM_TAG_SIZE);
        ttlv_enc_end(e);
}

int kmip_encrypt_gcm(kmip_client *c, const char *uid, const secret_t *plaintext, const void *aad, size_t aad_len,
                     const uint8_t nonce[KMIP_GCM_NONCE_SIZE], uint8_t **ret_ciphertext, size_t *ret_ciphertext_len,
                     uint8_t ret_tag[KMIP_GCM_TAG_SIZE], ct_error *err) {
        int r = check_uid(uid, err);
        if (r < 0)
                return r;
        ttlv_enc e;
        enc_begin_request(&e, KMIP_OP_ENCRYPT);
        ttlv_enc_text(&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid, strlen(uid));
        enc_gcm_params(&e);
        ttlv_enc_bytes(&e, KMIP_TAG_DATA, plaintext->data, plaintext->len);
        ttlv_enc_bytes(&e, KMIP_TAG_IV_COUNTER_NONCE, nonce, KMIP_GCM_NONCE_SIZE);
        ttlv_enc_bytes(&e, KMIP_TAG_AE_ADDITIONAL_DATA, aad, aad_len);
        enc_end_request(&e);
        struct response resp;
        r = do_request(c, KMIP_OP_ENCRYPT, &e, true, &resp, err);
        if (r < 0) {
                ct_error_prefix(err, "KEK %s", uid);
                return r;
        }
        const uint8_t *ct, *tag;
        size_t ct_len, tag_len;
        if (resp.payload == TTLV_NONE || ttlv_get_bytes(resp.tree, resp.payload, KMIP_TAG_DATA, &ct, &ct_len) < 0 ||
            ttlv_get_bytes(resp.tree, resp.payload, KMIP_TAG_AE_TAG, &tag, &tag_len) < 0) {
                response_done(&resp);
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "Encrypt response: no Data or no Authenticated Encryption Tag (does the "
                                    "server speak KMIP 1.4 AES-GCM?)");
        }
        if (ct_len != plaintext->len || tag_len != KMIP_GCM_TAG_SIZE) {
                response_done(&resp);
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "Encrypt response: %zu ciphertext bytes for %zu plaintext bytes, %zu-byte tag",
                                    ct_len, plaintext->len, tag_len);
        }
        uint8_t *out = malloc(MAX(ct_len, (size_t) 1));
        if (!out) {
                response_done(&resp);
                return -ENOMEM;
        }
        memcpy(out, ct, ct_len);
        memcpy(ret_tag, tag, KMIP_GCM_TAG_SIZE);
        response_done(&resp);
        *ret_ciphertext = out;
        *ret_ciphertext_len = ct_len;
        return 0;
}

/* A refused Decrypt: ask the server about the key's state to say why (kmip.h). */
static int explain_refusal(kmip_client *c, const char *uid, ct_error *err) {
        kmip_key_info info;
        ct_error probe = CT_ERROR_INIT;
        if (kmip_get_key_info(c, uid, &info, &probe) < 0)
                return 0; /* keep the original reason */
        const char *reason;
        switch (info.state) {
        case KMIP_STATE_DEACTIVATED:
        case KMIP_STATE_COMPROMISED:
                reason = "kek-revoked";
                break;
        case KMIP_STATE_DESTROYED:
        case KMIP_STATE_DESTROYED_COMPROMISED:
                reason = "kek-destroyed";
                break;
        case KMIP_STATE_PRE_ACTIVE:
                reason = "kek-not-active";
                break;
        default:
                return 0;
        }
        err->reason = reason;
        ct_error_prefix(err, "%s on the KMIP server", kmip_state_to_string(info.state));
        return 0;
}

int kmip_decrypt_gcm(kmip_client *c, const char *uid, const uint8_t *ciphertext, size_t ciphertext_len,
                     const void *aad, size_t aad_len, const uint8_t nonce[KMIP_GCM_NONCE_SIZE],
                     const uint8_t tag[KMIP_GCM_TAG_SIZE], secret_t **ret_plaintext, ct_error *err) {
        int r = check_uid(uid, err);
        if (r < 0)
                return r;
        ttlv_enc e;
        enc_begin_request(&e, KMIP_OP_DECRYPT);
        ttlv_enc_text(&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid, strlen(uid));
        enc_gcm_params(&e);
        ttlv_enc_bytes(&e, KMIP_TAG_DATA, ciphertext, ciphertext_len);
        ttlv_enc_bytes(&e, KMIP_TAG_IV_COUNTER_NONCE, nonce, KMIP_GCM_NONCE_SIZE);
        ttlv_enc_bytes(&e, KMIP_TAG_AE_ADDITIONAL_DATA, aad, aad_len);
        ttlv_enc_bytes(&e, KMIP_TAG_AE_TAG, tag, KMIP_GCM_TAG_SIZE);
        enc_end_request(&e);
        struct response resp;
        ct_error local = CT_ERROR_INIT;
        r = do_request(c, KMIP_OP_DECRYPT, &e, true, &resp, &local);
        if (r < 0) {
                if (streq_ptr(local.reason, "permission-denied") || streq_ptr(local.reason, "illegal-operation"))
                        explain_refusal(c, uid, &local);
                else if (streq_ptr(local.reason, "general-failure") ||
                         streq_ptr(local.reason, "cryptographic-failure")) {
                        /* PyKMIP reports a GCM tag mismatch as General Failure; others as
                         * Cryptographic Failure. Either way the blob did not authenticate. */
                        local.reason = "unwrap-failed";
                        ct_error_prefix(&local, "the KMIP server could not authenticate the wrapped secret "
                                                "(tampered blob, other KEK or other salt)");
                } else if (streq_ptr(local.reason, "item-not-found"))
                        ct_error_prefix(&local, "destroyed, or never created on this server");
                ct_error_prefix(&local, "KEK %s", uid);
                if (err && !ct_error_is_set(err))
                        *err = local;
                return r;
        }
        const uint8_t *pt;
        size_t pt_len;
        if (resp.payload == TTLV_NONE || ttlv_get_bytes(resp.tree, resp.payload, KMIP_TAG_DATA, &pt, &pt_len) < 0 ||
            pt_len != ciphertext_len) {
                response_done(&resp);
                return ct_error_set(err, -EBADMSG, LAYER, "protocol-error",
                                    "Decrypt response: no Data of the ciphertext's length");
        }
        secret_t *s = secret_new_copy(pt, pt_len);
        response_done(&resp);
        if (!s)
                return -ENOMEM;
        *ret_plaintext = s;
        return 0;
}
