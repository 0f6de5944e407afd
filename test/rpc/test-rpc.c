/* SPDX-License-Identifier: Apache-2.0 */
/* Loopback tests of the gRPC layer: plaintext and mutual TLS over unix sockets and TCP, streams,
 * deadlines, size limits, refusals, and serving over an already connected socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "basic/secret.h"
#include "rpc/rpc.h"
#include "x509/x509.h"

static char sockdir[64];

static void echo_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
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

        _cleanup_free_ char *big = malloc(4096);
        memset(big, 'a', 4096);
        assert_int_equal(unary_status(ch, "/test.Svc/Echo", big, 4096, 5000, NULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
        expect_echo(ch, "small is fine");
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
                cmocka_unit_test(test_shutdown_after_reply),
                cmocka_unit_test(test_mutual_tls),
                cmocka_unit_test(test_server_hook_refuses_client),
                cmocka_unit_test(test_fd_transport),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
