/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS handshakes with OpenSSL (Constellation internal/atls/atls.go CreateAttestationServerTLSConfig
 * / CreateAttestationClientTLSConfig; reference constellation.md §3):
 *
 *  client: SNI = base64.StdEncoding(32-byte nonce); verifies the server certificate itself
 *          (InsecureSkipVerify + VerifyPeerCertificate); if it has an issuer and the server asks
 *          for a certificate, reads the server nonce from the single CA name's CN and attests.
 *  server: a certificate made per connection from the client's SNI nonce; with validators it
 *          requires a client certificate (RequireAnyClientCert) and sends one CA name whose CN is
 *          its own nonce (TLS 1.3 certificate_authorities, RFC 8446 §4.2.4; TLS 1.2
 *          CertificateRequest, RFC 5246 §7.4.4).
 * Session resumption is off: a resumed session would skip attestation. */
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "atls/atls-internal.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/log.h"

typedef struct hs_state {
        const atls_config *config;
        bool is_server;
        uint8_t own_nonce[ATLS_NONCE_SIZE];
        bool sent_certificate; /* client: the server asked and we presented one */
        atls_error err;
} hs_state;

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static void ex_index_init(void) {
        ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static hs_state *state_of(SSL *ssl) {
        return SSL_get_ex_data(ssl, ex_index);
}

static int use_fresh_certificate(SSL *ssl, hs_state *st, const uint8_t *nonce, size_t nonce_len) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r = atls_certificate_new(st->config->issuer, nonce, nonce_len, &key, &cert, &st->err);
        if (r < 0)
                return r;
        if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1)
                return atls_error_set(&st->err, ATLS_REASON_INTERNAL, "aTLS: installing certificate");
        return 0;
}

/* Server: the certificate depends on the client's nonce in SNI, so it is made here, after the
 * ClientHello was read (OpenSSL calls this callback with or without SNI). */
static int server_name_cb(SSL *ssl, int *alert, void *arg) {
        (void) arg;
        hs_state *st = state_of(ssl);
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        _cleanup_free_ uint8_t *nonce = NULL;
        size_t nonce_len = 0;

        if (st->config->issuer) {
                if (!sni) {
                        atls_error_set(&st->err, ATLS_REASON_NONCE_TRANSPORT,
                                       "client sent no SNI: expected base64 of its 32-byte nonce");
                        *alert = SSL_AD_ILLEGAL_PARAMETER;
                        return SSL_TLSEXT_ERR_ALERT_FATAL;
                }
                if (base64_decode(sni, strlen(sni), BASE64_STD, &nonce, &nonce_len) < 0) {
                        atls_error_set(&st->err, ATLS_REASON_NONCE_TRANSPORT,
                                       "client SNI \"%.60s\" is not a base64 nonce", sni);
                        *alert = SSL_AD_ILLEGAL_PARAMETER;
                        return SSL_TLSEXT_ERR_ALERT_FATAL;
                }
        }
        if (use_fresh_certificate(ssl, st, nonce, nonce_len) < 0) {
                *alert = SSL_AD_INTERNAL_ERROR;
                return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        return SSL_TLSEXT_ERR_OK;
}

/* Client: called when the server requested a certificate. The server's nonce is the CN of the
 * one CA name it sent (Constellation's client requires exactly one). */
static int client_cert_cb(SSL *ssl, void *arg) {
        (void) arg;
        hs_state *st = state_of(ssl);
        const STACK_OF(X509_NAME) *cas = SSL_get0_peer_CA_list(ssl);
        int n = cas ? sk_X509_NAME_num(cas) : 0;
        if (n != 1) {
                atls_error_set(&st->err, ATLS_REASON_NONCE_TRANSPORT,
                               "server requested a certificate with %d acceptable CA names, expected exactly 1 carrying its nonce",
                               n);
                return 0;
        }
        X509_NAME *name = sk_X509_NAME_value(cas, 0);
        int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        ASN1_STRING *cn = idx >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)) : NULL;
        _cleanup_free_ uint8_t *nonce = NULL;
        size_t nonce_len = 0;
        if (!cn || base64_decode((const char *) ASN1_STRING_get0_data(cn), (size_t) ASN1_STRING_length(cn), BASE64_STD,
                                 &nonce, &nonce_len) < 0) {
                atls_error_set(&st->err, ATLS_REASON_NONCE_TRANSPORT,
                               "server's CA name has no base64 nonce in its common name");
                return 0;
        }
        if (use_fresh_certificate(ssl, st, nonce, nonce_len) < 0)
                return 0;
        st->sent_certificate = true;
        return 1;
}

/* Replaces X.509 path validation entirely: aTLS certificates are self-signed and carry their
 * own evidence. */
static int verify_cb(X509_STORE_CTX *sctx, void *arg) {
        (void) arg;
        SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
        hs_state *st = state_of(ssl);
        X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
        if (atls_certificate_verify(leaf, st->config->validators, st->config->n_validators, st->own_nonce,
                                    sizeof(st->own_nonce), NULL, &st->err) < 0) {
                X509_STORE_CTX_set_error(sctx, X509_V_ERR_APPLICATION_VERIFICATION);
                return 0;
        }
        return 1;
}

/* Prefer h2 (gRPC); Constellation's client offers ["http/1.1","h2"]. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                          unsigned inlen, void *arg) {
        (void) ssl;
        (void) arg;
        for (unsigned off = 0; off < inlen;) {
                unsigned len = in[off];
                if (inlen - off - 1 < len)
                        break;
                if (len == 2 && memcmp(in + off + 1, "h2", 2) == 0) {
                        *out = in + off + 1;
                        *outlen = 2;
                        return SSL_TLSEXT_ERR_OK;
                }
                off += 1 + len;
        }
        return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *make_ctx(bool is_server) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
        if (!ctx)
                return NULL;
        /* MinVersion TLS 1.2 as Constellation; no resumption (it would skip attestation). */
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
                return NULL;
        /* SSL_OP_CLEANSE_PLAINTEXT: OpenSSL wipes its copy of decrypted application data once
         * SSL_read handed it to us (by default it stays in the record buffer until overwritten). */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_CLEANSE_PLAINTEXT);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_cert_verify_callback(ctx, verify_cb, NULL);
        if (is_server) {
                SSL_CTX_set_tlsext_servername_callback(ctx, server_name_cb);
                SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
        } else {
                static const unsigned char protos[] = "\x08http/1.1\x02h2";
                if (SSL_CTX_set_alpn_protos(ctx, protos, sizeof(protos) - 1) != 0)
                        return NULL;
        }
        return TAKE_PTR(ctx);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to become ready for `events`; 1 ready, 0 timeout, -ECANCELED stop. */
static int wait_fd(int fd, short events, int stop_fd, int64_t deadline) {
        for (;;) {
                int64_t left = deadline - now_ms();
                if (left <= 0)
                        return 0;
                struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = stop_fd, .events = POLLIN } };
                int n = poll(p, stop_fd >= 0 ? 2 : 1, left > INT32_MAX ? INT32_MAX : (int) left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (stop_fd >= 0 && (p[1].revents & POLLIN))
                        return -ECANCELED;
                if (n > 0)
                        return 1;
        }
}

/* Turns OpenSSL's error queue into the reason of a handshake that failed below aTLS. */
static int handshake_failure(SSL *ssl, int ssl_err, hs_state *st) {
        unsigned long e = ERR_peek_last_error();
        char buf[256] = "";
        if (e)
                ERR_error_string_n(e, buf, sizeof(buf));
        ERR_clear_error();
        if (st->err.reason != ATLS_REASON_OK)
                return atls_error_set(&st->err, st->err.reason, "%s", st->err.detail);
        if (st->is_server && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
                return atls_error_set(&st->err, ATLS_REASON_NO_CERTIFICATE,
                                      "client presented no certificate, but this server requires client attestation");
        if (e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
                return atls_error_set(&st->err, ATLS_REASON_HANDSHAKE, "peer refused the TLS handshake: %s%s", buf,
                                      !st->is_server && st->sent_certificate
                                              ? " (the server did not accept our attestation)"
                                              : "");
        if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN || !e ||
            (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
                return atls_error_set(&st->err, ATLS_REASON_HANDSHAKE, "peer closed the connection during the %shandshake",
                                      SSL_is_init_finished(ssl) ? "post-" : "");
        return atls_error_set(&st->err, ATLS_REASON_HANDSHAKE, "TLS handshake failed: %s", buf);
}

int atls_handshake(int fd, bool is_server, const atls_config *config, int stop_fd, bool confirm, SSL **ret,
                   atls_error *err) {
        if (fd < 0 || !config || !ret || (config->n_validators > 0 && !config->validators))
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "aTLS handshake: invalid arguments");
        pthread_once(&ex_once, ex_index_init);
        if (ex_index < 0)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS: no SSL ex_data index");

        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS: fcntl: %s", strerror(errno));

        hs_state st = { .config = config, .is_server = is_server };
        if (RAND_bytes(st.own_nonce, sizeof(st.own_nonce)) != 1)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS: no randomness for the nonce");
        _cleanup_free_ char *nonce_b64 = base64_encode(st.own_nonce, sizeof(st.own_nonce), BASE64_STD);
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = make_ctx(is_server);
        _cleanup_(SSL_freep) SSL *ssl = ctx ? SSL_new(ctx) : NULL;
        if (!nonce_b64 || !ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_ex_data(ssl, ex_index, &st) != 1)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS: setting up TLS");

        if (is_server) {
                SSL_set_accept_state(ssl);
                if (config->n_validators > 0) {
                        /* RequireAnyClientCert + ClientCAs = {self-signed cert with CN = nonce}. */
                        _cleanup_(X509_NAME_freep) X509_NAME *ca = X509_NAME_new();
                        STACK_OF(X509_NAME) *list = sk_X509_NAME_new_null();
                        if (!ca || !list ||
                            /* PrintableString, as Go's pkix.Name encodes it (base64 fits its alphabet). */
                            !X509_NAME_add_entry_by_NID(ca, NID_commonName, V_ASN1_PRINTABLESTRING,
                                                        (const unsigned char *) nonce_b64, -1, -1, 0) ||
                            !sk_X509_NAME_push(list, ca)) {
                                sk_X509_NAME_free(list);
                                return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS: building the CA name");
                        }
                        TAKE_PTR(ca);
                        SSL_set_client_CA_list(ssl, list); /* takes ownership */
                        SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
                }
        } else {
                SSL_set_connect_state(ssl);
                /* The SNI is not a host name: 44 characters of base64 including '+', '/', '='. */
                if (SSL_set_tlsext_host_name(ssl, nonce_b64) != 1)
                        return atls_error_set(err, ATLS_REASON_INTERNAL, "aTLS: setting SNI");
                SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
                if (config->issuer)
                        SSL_set_cert_cb(ssl, client_cert_cb, NULL);
        }

        int64_t timeout = config->handshake_timeout_ms > 0 ? config->handshake_timeout_ms : 30000;
        int64_t deadline = now_ms() + timeout;
        int r;
        for (;;) {
                ERR_clear_error();
                int hr = SSL_do_handshake(ssl);
                if (hr == 1)
                        break;
                int e = SSL_get_error(ssl, hr);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                        r = handshake_failure(ssl, e, &st);
                        goto fail;
                }
                r = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, stop_fd, deadline);
                if (r <= 0) {
                        r = r == 0 ? atls_error_set(&st.err, ATLS_REASON_TIMEOUT,
                                                    "aTLS handshake did not finish within %lld ms", (long long) timeout)
                                   : atls_error_set(&st.err, ATLS_REASON_INTERNAL, "aTLS handshake cancelled");
                        goto fail;
                }
        }

        if (!is_server && confirm && st.sent_certificate) {
                /* TLS 1.3: the server checks our certificate after our handshake finished. Wait for
                 * its first bytes (gRPC's server sends its HTTP/2 SETTINGS at once) or its alert. */
                for (;;) {
                        char c;
                        size_t n;
                        ERR_clear_error();
                        if (SSL_peek_ex(ssl, &c, 1, &n) == 1)
                                break;
                        int e = SSL_get_error(ssl, 0);
                        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                                r = handshake_failure(ssl, e, &st);
                                goto fail;
                        }
                        r = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, stop_fd, deadline);
                        if (r <= 0) {
                                r = r == 0 ? atls_error_set(&st.err, ATLS_REASON_TIMEOUT,
                                                            "server sent nothing within %lld ms after the handshake",
                                                            (long long) timeout)
                                           : atls_error_set(&st.err, ATLS_REASON_INTERNAL, "aTLS handshake cancelled");
                                goto fail;
                        }
                }
        }

        SSL_set_ex_data(ssl, ex_index, NULL);
        *ret = TAKE_PTR(ssl);
        return 0;

fail:
        SSL_set_ex_data(ssl, ex_index, NULL);
        if (err)
                *err = st.err;
        return r;
}

int atls_handshake_server(int fd, const atls_config *config, SSL **ret, atls_error *err) {
        return atls_handshake(fd, true, config, -1, false, ret, err);
}

int atls_handshake_client(int fd, const atls_config *config, SSL **ret, atls_error *err) {
        return atls_handshake(fd, false, config, -1, false, ret, err);
}
