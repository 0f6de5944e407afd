/* SPDX-License-Identifier: Apache-2.0 */
/* Loopback tests of the gRPC layer: plaintext and mutual TLS over unix sockets and TCP, streams,
 * deadlines, size limits, refusals, and serving over an already connected socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "basic/secret.h"
#include "rpc/rpc-internal.h"
#include "rpc/rpc.h"
#include "x509/x509.h"
#include "wipe-check.h"

static char sockdir[64];

/* Handler runs per method, to show that a refused call never reached its handler. */
static atomic_uint echo_runs, big_runs;

/* -Wl,--wrap=pthread_create: fail the next thread our code starts (a handler thread). */
static atomic_bool fail_next_thread;
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
        if (atomic_exchange(&fail_next_thread, false))
                return EAGAIN;
        return __real_pthread_create(t, a, fn, arg);
}

static void echo_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        atomic_fetch_add(&echo_runs, 1);
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "echo:%.*s", (int) len, (const char *) req);
        assert_int_equal(rpc_call_reply(call, buf, (size_t) n), 0);
}

static void count_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        int n = atoi((const char *) req);
        for (int i = 0; i < n; i++) {
                char buf[16];
                int k = snprintf(buf, sizeof(buf), "%d", i);
                if (rpc_call_send(call, buf, (size_t) k) < 0)
                        return;
        }
        rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Echoes the whole request, whatever its size. */
static void big_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        atomic_fetch_add(&big_runs, 1);
        assert_int_equal(rpc_call_reply(call, req, len), 0);
}

/* Replies with as many bytes as the request's decimal number says. */
static void sized_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        size_t n = (size_t) atol((const char *) req);
        _cleanup_free_ uint8_t *buf = calloc(1, n ? n : 1);
        assert_non_null(buf);
        rpc_call_reply(call, buf, n);
}

static void slow_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        struct timespec ts = { 0, 500 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        rpc_call_reply(call, "late", 4);
}

static void hold_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        rpc_call_send(call, "first", 5);
        rpc_call_hold(call); /* like go-plugin's StreamStdio: never finished by the server */
}

static void fail_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad input: field x");
}

static void shutdown_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        rpc_call_shutdown_server_after(call);
        rpc_call_reply(call, "", 0);
}

static rpc_server *server_new(const rpc_server_options *o) {
        rpc_server *s;
        assert_int_equal(rpc_server_new(o, &s), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Echo", echo_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Count", count_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Slow", slow_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Hold", hold_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Fail", fail_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Shutdown", shutdown_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Big", big_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Sized", sized_handler, NULL), 0);
        assert_int_equal(rpc_server_register(s, "/test.Svc/Echo", echo_handler, NULL), -EEXIST);
        return s;
}

static void expect_echo(rpc_channel *ch, const char *msg) {
        _cleanup_free_ uint8_t *resp = NULL;
        size_t len;
        rpc_status st = { 0 };
        assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", msg, strlen(msg), 5000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_OK);
        char want[256];
        snprintf(want, sizeof(want), "echo:%s", msg);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(resp, want, len);
        rpc_status_done(&st);
}

static grpc_status_code unary_status(rpc_channel *ch, const char *method, const void *req, size_t len,
                                     int64_t timeout_ms, char **ret_message) {
        rpc_status st = { 0 };
        _cleanup_free_ uint8_t *resp = NULL;
        size_t rlen;
        assert_int_equal(rpc_unary(ch, method, req, len, timeout_ms, &resp, &rlen, &st), 0);
        if (ret_message)
                *ret_message = TAKE_PTR(st.message);
        rpc_status_done(&st);
        return st.code;
}

static void test_unary_unix_and_tcp(void **state) {
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/plain.sock", sockdir);
        int port = -1, tcp_port = -1;
        assert_int_equal(rpc_server_listen(s, addr, NULL, &port), 0);
        assert_int_equal(port, 0);
        assert_int_equal(rpc_server_listen(s, "127.0.0.1:0", NULL, &tcp_port), 0);
        assert_true(tcp_port > 0);
        assert_int_equal(rpc_server_start(s), 0);

        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);
        expect_echo(ch, "hello");
        expect_echo(ch, "");

        char tcp[64];
        snprintf(tcp, sizeof(tcp), "127.0.0.1:%d", tcp_port);
        _cleanup_(rpc_channel_freep) rpc_channel *ch2 = NULL;
        assert_int_equal(rpc_channel_new(tcp, NULL, NULL, &ch2), 0);
        expect_echo(ch2, "over tcp");

        _cleanup_free_ char *msg = NULL;
        assert_int_equal(unary_status(ch, "/test.Svc/Nope", "x", 1, 5000, NULL), GRPC_STATUS_UNIMPLEMENTED);
        assert_int_equal(unary_status(ch, "/test.Svc/Fail", "x", 1, 5000, &msg), GRPC_STATUS_INVALID_ARGUMENT);
        assert_string_equal(msg, "bad input: field x");
}

static void test_server_stream(void **state) {
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/stream.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);

        _cleanup_(rpc_stream_freep) rpc_stream *st = NULL;
        assert_int_equal(rpc_stream_open(ch, "/test.Svc/Count", "5", 1, 5000, &st), 0);
        for (int i = 0; i < 5; i++) {
                _cleanup_free_ uint8_t *m = NULL;
                size_t len;
                assert_int_equal(rpc_stream_next(st, &m, &len), 1);
                char want[16];
                snprintf(want, sizeof(want), "%d", i);
                assert_int_equal(len, strlen(want));
                assert_memory_equal(m, want, len);
        }
        uint8_t *m;
        size_t len;
        assert_int_equal(rpc_stream_next(st, &m, &len), 0);
        assert_non_null(rpc_stream_status(st));
        assert_int_equal(rpc_stream_status(st)->code, GRPC_STATUS_OK);
}

/* A stream the server holds open forever must not block unary calls on the same server, and
 * shutdown must end it. */
static void test_held_stream_does_not_block(void **state) {
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/hold.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);

        rpc_stream *held[3];
        for (int i = 0; i < 3; i++) {
                assert_int_equal(rpc_stream_open(ch, "/test.Svc/Hold", "", 0, 0, &held[i]), 0);
                _cleanup_free_ uint8_t *m = NULL;
                size_t len;
                assert_int_equal(rpc_stream_next(held[i], &m, &len), 1);
        }
        expect_echo(ch, "still served");
        /* Slow handlers run concurrently too. */
        assert_int_equal(unary_status(ch, "/test.Svc/Slow", "", 0, 5000, NULL), GRPC_STATUS_OK);

        rpc_server_request_shutdown(s);
        rpc_server_wait(s);
        for (int i = 0; i < 3; i++) {
                uint8_t *m;
                size_t len;
                assert_int_equal(rpc_stream_next(held[i], &m, &len), 0);
                assert_int_not_equal(rpc_stream_status(held[i])->code, GRPC_STATUS_OK);
                rpc_stream_free(held[i]);
        }
}

/* An oversize request through the real server: gRPC core refuses it with RESOURCE_EXHAUSTED from
 * the configured limit, and the handler never runs; a request of exactly the limit passes. */
static void check_receive_limit(rpc_channel *ch) {
        _cleanup_free_ char *msg = NULL;
        _cleanup_free_ char *big = malloc(1 << 20);
        memset(big, 'a', 1 << 20);
        atomic_store(&big_runs, 0);
        assert_int_equal(unary_status(ch, "/test.Svc/Big", big, 1025, 5000, &msg), GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_non_null(strstr(msg, "larger than max (1025 vs. 1024)"));
        free(TAKE_PTR(msg));
        /* Far beyond the limit (1 MiB) too. */
        assert_int_equal(unary_status(ch, "/test.Svc/Big", big, 1 << 20, 5000, &msg), GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_int_equal(atomic_load(&big_runs), 0);
        assert_int_equal(unary_status(ch, "/test.Svc/Big", big, 1024, 5000, NULL), GRPC_STATUS_OK);
        assert_int_equal(atomic_load(&big_runs), 1);
}

static void test_deadline_and_size_limit(void **state) {
        rpc_server_options o = { .max_receive_message_length = 1024 };
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(&o);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/limits.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);

        assert_int_equal(unary_status(ch, "/test.Svc/Slow", "", 0, 100, NULL), GRPC_STATUS_DEADLINE_EXCEEDED);

        check_receive_limit(ch);
        expect_echo(ch, "small is fine");

        /* The same limit holds on a connection served from a socket (the aTLS path). */
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(rpc_server_add_fd(s, sv[0]), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *fd_ch = NULL;
        assert_int_equal(rpc_channel_new_from_fd(sv[1], NULL, &fd_ch), 0);
        check_receive_limit(fd_ch);
}

/* Without options the server and channels still carry explicit limits (4 MiB), and a channel's own
 * limits hold in both directions. */
static void test_default_and_client_limits(void **state) {
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/client-limits.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);

        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);
        size_t over = RPC_DEFAULT_MAX_MESSAGE_LENGTH + 1;
        _cleanup_free_ char *big = calloc(1, over);
        atomic_store(&big_runs, 0);
        _cleanup_free_ char *msg = NULL;
        /* Refused before it is sent (our send limit), so the server never sees it. */
        assert_int_equal(unary_status(ch, "/test.Svc/Big", big, over, 10000, &msg), GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_int_equal(atomic_load(&big_runs), 0);
        /* A server reply above the default is refused by the server's send limit. */
        assert_int_equal(unary_status(ch, "/test.Svc/Sized", "4194305", 7, 10000, NULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_int_equal(unary_status(ch, "/test.Svc/Sized", "4194304", 7, 10000, NULL), GRPC_STATUS_OK);

        /* A client that accepts at most 100 bytes: a 101-byte reply ends with RESOURCE_EXHAUSTED. */
        rpc_channel_options small = { .max_receive_message_length = 100, .max_send_message_length = 10 };
        _cleanup_(rpc_channel_freep) rpc_channel *ch2 = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, &small, &ch2), 0);
        assert_int_equal(unary_status(ch2, "/test.Svc/Sized", "100", 3, 5000, NULL), GRPC_STATUS_OK);
        assert_int_equal(unary_status(ch2, "/test.Svc/Sized", "101", 3, 5000, NULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
        /* ... and sends at most 10. */
        assert_int_equal(unary_status(ch2, "/test.Svc/Big", "0123456789x", 11, 5000, NULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_int_equal(atomic_load(&big_runs), 0);
}

/* Server-wide conditions reach the program through on_error (lib/ logs at debug level only). */
struct error_seen {
        atomic_int error;
        char what[512];
};

static void record_error(void *userdata, int error, const char *what) {
        struct error_seen *e = userdata;
        snprintf(e->what, sizeof(e->what), "%s", what);
        atomic_store(&e->error, error);
}

static void test_on_error_reports_handler_start_failure(void **state) {
        struct error_seen seen = { 0 };
        rpc_server_options o = { .on_error = record_error, .on_error_userdata = &seen };
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(&o);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/on-error.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);
        expect_echo(ch, "warm");

        atomic_store(&echo_runs, 0);
        atomic_store(&fail_next_thread, true);
        _cleanup_free_ char *msg = NULL;
        assert_int_equal(unary_status(ch, "/test.Svc/Echo", "x", 1, 5000, &msg), GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_string_equal(msg, "server cannot start a handler");
        assert_int_equal(atomic_load(&echo_runs), 0);
        assert_int_equal(atomic_load(&seen.error), -EAGAIN);
        assert_string_equal(seen.what,
                            "cannot start a handler thread for /test.Svc/Echo: the call was refused with RESOURCE_EXHAUSTED");
        /* The server goes on serving. */
        expect_echo(ch, "after");
}

/* gRPC's own copy of a received message is wiped once it is copied out: the slices of the byte
 * buffer (one refcounted, one inline) read back as zeros while we still hold a reference. */
static void test_received_buffer_wiped(void **state) {
        static const char secret[] = "received-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
        grpc_init();
        grpc_slice parts[2] = { grpc_slice_from_copied_string(secret), grpc_slice_from_copied_string("tiny") };
        grpc_slice keep = grpc_slice_ref(parts[0]);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(parts, 2);
        grpc_slice_unref(parts[0]);
        grpc_slice_unref(parts[1]);
        uint8_t *out = NULL;
        size_t len = 0;
        assert_int_equal(rpc_byte_buffer_to_bytes(bb, &out, &len), 0);
        assert_int_equal(len, strlen(secret) + 4);
        assert_memory_equal(out, secret, strlen(secret));
        assert_memory_equal(out + strlen(secret), "tiny", 4);
        assert_int_equal(out[len], 0);
        static const uint8_t zeros[sizeof(secret)];
        assert_memory_equal(GRPC_SLICE_START_PTR(keep), zeros, strlen(secret));
        grpc_slice inline_part = bb->data.raw.slice_buffer.slices[1];
        assert_memory_equal(GRPC_SLICE_START_PTR(inline_part), zeros, 4);
        rpc_byte_buffer_destroy_wiped(bb);
        rpc_byte_buffer_destroy_wiped(NULL);
        grpc_slice_unref(keep);
        erase_and_free_sized(out, len);
        grpc_shutdown();
}

/* No copy of a message that our code frees still holds it: the request a handler got, the reply
 * handed to gRPC, and the messages the client copied out (wipe-check.h, -Wl,--wrap=free). */
static void test_messages_wiped(void **state) {
        static const char marker[] = "MARKER-rpc-secret-52c1e9";
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/wipe.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);
        expect_echo(ch, "warm");

        char req[4096];
        for (size_t i = 0; i + sizeof(marker) <= sizeof(req); i += sizeof(marker) - 1)
                memcpy(req + i, marker, sizeof(marker) - 1);
        wipe_check_arm(marker);
        for (int i = 0; i < 3; i++) {
                uint8_t *resp = NULL;
                size_t len = 0;
                rpc_status st = { 0 };
                assert_int_equal(rpc_unary(ch, "/test.Svc/Big", req, sizeof(req), 5000, &resp, &len, &st), 0);
                assert_int_equal(st.code, GRPC_STATUS_OK);
                assert_int_equal(len, sizeof(req));
                assert_memory_equal(resp, req, len);
                erase_and_free_sized(resp, len);
                rpc_status_done(&st);
        }
        rpc_stream *stream = NULL;
        assert_int_equal(rpc_stream_open(ch, "/test.Svc/Big", req, sizeof(req), 5000, &stream), 0);
        uint8_t *m = NULL;
        size_t mlen = 0;
        assert_int_equal(rpc_stream_next(stream, &m, &mlen), 1);
        erase_and_free_sized(m, mlen);
        rpc_stream_free(stream);
        rpc_channel_free(TAKE_PTR(ch));
        rpc_server_free(TAKE_PTR(s));
        assert_int_equal(wipe_check_disarm(), 0);
        erase_memory(req, sizeof(req));
}

static void test_shutdown_after_reply(void **state) {
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/shutdown.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, NULL, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, NULL, NULL, &ch), 0);
        /* The reply arrives with OK, then the server stops by itself. */
        assert_int_equal(unary_status(ch, "/test.Svc/Shutdown", "", 0, 5000, NULL), GRPC_STATUS_OK);
        rpc_server_wait(s);
}

/* --- TLS --- */

struct pki {
        EVP_PKEY *ca_key;
        X509 *ca_cert;
        char *ca_pem;
        char *server_key, *server_cert;
        char *client_key, *client_cert;
};

static void pki_make(struct pki *p, const char *ca_name) {
        const char *const localhost[] = { "localhost", NULL };
        x509_params ca = { .common_name = ca_name, .is_ca = true, .not_before_offset_s = -30, .lifetime_s = 3600 };
        assert_int_equal(x509_issue(&ca, &p->ca_key, &p->ca_cert, NULL, &p->ca_pem), 0);
        x509_params srv = { .common_name = "server", .dns_names = localhost, .server_auth = true,
                            .not_before_offset_s = -30, .lifetime_s = 3600,
                            .issuer_key = p->ca_key, .issuer_cert = p->ca_cert };
        assert_int_equal(x509_issue(&srv, NULL, NULL, &p->server_key, &p->server_cert), 0);
        x509_params cli = { .common_name = "client", .client_auth = true, .not_before_offset_s = -30,
                            .lifetime_s = 3600, .issuer_key = p->ca_key, .issuer_cert = p->ca_cert };
        assert_int_equal(x509_issue(&cli, NULL, NULL, &p->client_key, &p->client_cert), 0);
}

static void pki_done(struct pki *p) {
        EVP_PKEY_free(p->ca_key);
        X509_free(p->ca_cert);
        free(p->ca_pem);
        erase_and_free(p->server_key);
        free(p->server_cert);
        erase_and_free(p->client_key);
        free(p->client_cert);
}

static int refuse_all(const char *pem, void *userdata, char **ret_reason) {
        int *calls = userdata;
        (*calls)++;
        *ret_reason = strdup("certificate carries no attestation document");
        return -EPERM;
}

static int accept_client_cn(const char *pem, void *userdata, char **ret_reason) {
        int *calls = userdata;
        (*calls)++;
        return strstr(pem, "BEGIN CERTIFICATE") ? 0 : -EINVAL;
}

static void test_mutual_tls(void **state) {
        struct pki good = { 0 }, rogue = { 0 };
        pki_make(&good, "good-ca");
        pki_make(&rogue, "rogue-ca");
        int server_hook_calls = 0;

        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        rpc_tls_config server_tls = {
                .key_pem = good.server_key, .cert_pem = good.server_cert, .root_pem = good.ca_pem,
                .require_peer_cert = true, .verify = accept_client_cn, .verify_userdata = &server_hook_calls,
        };
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/tls.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, &server_tls, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);

        /* Good client. */
        rpc_tls_config client_tls = { .key_pem = good.client_key, .cert_pem = good.client_cert,
                                      .root_pem = good.ca_pem, .target_name = "localhost" };
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, &client_tls, NULL, &ch), 0);
        expect_echo(ch, "mutual");
        assert_true(server_hook_calls >= 1);

        /* A client certificate from another CA is refused by the server. */
        rpc_tls_config rogue_tls = { .key_pem = rogue.client_key, .cert_pem = rogue.client_cert,
                                     .root_pem = good.ca_pem, .target_name = "localhost" };
        _cleanup_(rpc_channel_freep) rpc_channel *ch_rogue = NULL;
        assert_int_equal(rpc_channel_new(addr, &rogue_tls, NULL, &ch_rogue), 0);
        assert_int_equal(unary_status(ch_rogue, "/test.Svc/Echo", "x", 1, 3000, NULL), GRPC_STATUS_UNAVAILABLE);

        /* No client certificate at all is refused when one is required. */
        rpc_tls_config anon_tls = { .root_pem = good.ca_pem, .target_name = "localhost" };
        _cleanup_(rpc_channel_freep) rpc_channel *ch_anon = NULL;
        assert_int_equal(rpc_channel_new(addr, &anon_tls, NULL, &ch_anon), 0);
        assert_int_equal(unary_status(ch_anon, "/test.Svc/Echo", "x", 1, 3000, NULL), GRPC_STATUS_UNAVAILABLE);

        /* The client refuses a server whose certificate chains to a root it does not trust. */
        rpc_tls_config wrong_root = { .key_pem = good.client_key, .cert_pem = good.client_cert,
                                      .root_pem = rogue.ca_pem, .target_name = "localhost" };
        _cleanup_(rpc_channel_freep) rpc_channel *ch_wrong = NULL;
        assert_int_equal(rpc_channel_new(addr, &wrong_root, NULL, &ch_wrong), 0);
        assert_int_equal(unary_status(ch_wrong, "/test.Svc/Echo", "x", 1, 3000, NULL), GRPC_STATUS_UNAVAILABLE);

        /* The client's custom hook refuses the (otherwise valid) server. */
        int client_hook_calls = 0;
        rpc_tls_config hooked = { .key_pem = good.client_key, .cert_pem = good.client_cert,
                                  .root_pem = good.ca_pem, .target_name = "localhost",
                                  .verify = refuse_all, .verify_userdata = &client_hook_calls };
        _cleanup_(rpc_channel_freep) rpc_channel *ch_hook = NULL;
        assert_int_equal(rpc_channel_new(addr, &hooked, NULL, &ch_hook), 0);
        assert_int_equal(unary_status(ch_hook, "/test.Svc/Echo", "x", 1, 3000, NULL), GRPC_STATUS_UNAVAILABLE);
        assert_true(client_hook_calls >= 1);

        /* TLS client against a plaintext expectation: no credentials at all is refused locally. */
        rpc_tls_config nothing = { 0 };
        rpc_channel *bad;
        assert_int_equal(rpc_channel_new(addr, &nothing, NULL, &bad), -EINVAL);

        rpc_server_free(TAKE_PTR(s));
        pki_done(&good);
        pki_done(&rogue);
}

static void test_server_hook_refuses_client(void **state) {
        struct pki good = { 0 };
        pki_make(&good, "good-ca");
        int calls = 0;
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        rpc_tls_config server_tls = { .key_pem = good.server_key, .cert_pem = good.server_cert,
                                      .root_pem = good.ca_pem, .require_peer_cert = true,
                                      .verify = refuse_all, .verify_userdata = &calls };
        char addr[128];
        snprintf(addr, sizeof(addr), "unix:%s/tls-hook.sock", sockdir);
        assert_int_equal(rpc_server_listen(s, addr, &server_tls, NULL), 0);
        assert_int_equal(rpc_server_start(s), 0);
        rpc_tls_config client_tls = { .key_pem = good.client_key, .cert_pem = good.client_cert,
                                      .root_pem = good.ca_pem, .target_name = "localhost" };
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(addr, &client_tls, NULL, &ch), 0);
        assert_int_equal(unary_status(ch, "/test.Svc/Echo", "x", 1, 3000, NULL), GRPC_STATUS_UNAVAILABLE);
        assert_true(calls >= 1);
        rpc_server_free(TAKE_PTR(s));
        pki_done(&good);
}

/* Serving over an already connected socket: the path attested TLS takes (our own TLS
 * termination in front of gRPC). */
static void test_fd_transport(void **state) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        _cleanup_(rpc_server_freep) rpc_server *s = server_new(NULL);
        assert_int_equal(rpc_server_start(s), 0);
        assert_int_equal(rpc_server_add_fd(s, sv[0]), 0);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new_from_fd(sv[1], NULL, &ch), 0);
        expect_echo(ch, "over a socketpair");

        _cleanup_(rpc_stream_freep) rpc_stream *st = NULL;
        assert_int_equal(rpc_stream_open(ch, "/test.Svc/Count", "3", 1, 5000, &st), 0);
        int n = 0;
        for (;;) {
                _cleanup_free_ uint8_t *m = NULL;
                size_t len;
                int r = rpc_stream_next(st, &m, &len);
                assert_true(r >= 0);
                if (r == 0)
                        break;
                n++;
        }
        assert_int_equal(n, 3);
}

static int setup(void **state) {
        snprintf(sockdir, sizeof(sockdir), "/tmp/ct-rpc-XXXXXX");
        return mkdtemp(sockdir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sockdir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_unary_unix_and_tcp),
                cmocka_unit_test(test_server_stream),
                cmocka_unit_test(test_held_stream_does_not_block),
                cmocka_unit_test(test_deadline_and_size_limit),
                cmocka_unit_test(test_default_and_client_limits),
                cmocka_unit_test(test_on_error_reports_handler_start_failure),
                cmocka_unit_test(test_messages_wiped),
                cmocka_unit_test(test_received_buffer_wiped),
                cmocka_unit_test(test_shutdown_after_reply),
                cmocka_unit_test(test_mutual_tls),
                cmocka_unit_test(test_server_hook_refuses_client),
                cmocka_unit_test(test_fd_transport),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
