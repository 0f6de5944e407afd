/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS under gRPC over TCP loopback: the connection patterns of Constellation (server attests:
 * Init/recover; client attests: join; mutual), streams through the relay, and every refusal
 * with its reason on both ends: a relay presenting another key, a replayed document, wrong
 * measurements, missing evidence, a client without a certificate, a broken nonce transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "atls/atls.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/secret.h"
#include "wipe-check.h"

/* --- handlers --- */

static atomic_uint echo_runs;

static void echo_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        (void) userdata;
        atomic_fetch_add(&echo_runs, 1);
        _cleanup_free_ uint8_t *buf = malloc(len + 5);
        memcpy(buf, "echo:", 5);
        memcpy(buf + 5, req, len);
        rpc_call_reply(call, buf, len + 5);
}

/* Echo for secrets: the handler's own copy is wiped too. */
static void secret_echo_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        (void) userdata;
        uint8_t *buf = malloc(len + 5);
        memcpy(buf, "echo:", 5);
        memcpy(buf + 5, req, len);
        rpc_call_reply(call, buf, len + 5);
        erase_and_free_sized(buf, len + 5);
}

/* Init-like server stream: n messages, then OK. */
static void count_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        (void) userdata;
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "%.*s", (int) (len < 15 ? len : 15), (const char *) req);
        int n = atoi(tmp);
        for (int i = 0; i < n; i++) {
                char buf[16];
                int k = snprintf(buf, sizeof(buf), "%d", i);
                if (rpc_call_send(call, buf, (size_t) k) < 0)
                        return;
        }
        rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void hold_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        (void) req, (void) len, (void) userdata;
        rpc_call_send(call, "first", 5);
        rpc_call_hold(call);
}

/* --- a server with an aTLS listener, and what it refused --- */

typedef struct fixture {
        rpc_server *server;
        atls_listener *listener;
        int port;
        char address[64];
        pthread_mutex_t lock;
        atls_reason last_reason;
        char last_detail[512];
        unsigned rejects;
} fixture;

static void on_reject(void *userdata, const char *peer, const atls_error *err) {
        fixture *f = userdata;
        assert_non_null(strstr(peer, "127.0.0.1:"));
        pthread_mutex_lock(&f->lock);
        f->last_reason = err->reason;
        snprintf(f->last_detail, sizeof(f->last_detail), "%s", err->detail);
        f->rejects++;
        pthread_mutex_unlock(&f->lock);
}

/* The gRPC server's receive limit for the next fixture_start. */
static int fixture_max_receive = 8 << 20;

static void fixture_start(fixture *f, const atls_config *server_config) {
        *f = (fixture) { 0 };
        pthread_mutex_init(&f->lock, NULL);
        rpc_server_options o = { .max_receive_message_length = fixture_max_receive, .max_send_message_length = 8 << 20 };
        assert_int_equal(rpc_server_new(&o, &f->server), 0);
        assert_int_equal(rpc_server_register(f->server, "/test.Svc/Echo", echo_handler, NULL), 0);
        assert_int_equal(rpc_server_register(f->server, "/test.Svc/Count", count_handler, NULL), 0);
        assert_int_equal(rpc_server_register(f->server, "/test.Svc/Hold", hold_handler, NULL), 0);
        assert_int_equal(rpc_server_register(f->server, "/test.Svc/SecretEcho", secret_echo_handler, NULL), 0);
        assert_int_equal(rpc_server_start(f->server), 0);
        atls_config c = *server_config;
        c.on_reject = on_reject;
        c.on_reject_userdata = f;
        atls_error err = { 0 };
        assert_int_equal(atls_listen(f->server, "127.0.0.1:0", &c, &f->port, &f->listener, &err), 0);
        assert_true(f->port > 0);
        snprintf(f->address, sizeof(f->address), "127.0.0.1:%d", f->port);
}

static void fixture_stop(fixture *f) {
        atls_listener_free(f->listener);
        rpc_server_request_shutdown(f->server);
        rpc_server_wait(f->server);
        rpc_server_free(f->server);
        pthread_mutex_destroy(&f->lock);
}

/* The server's refusal is reported on its connection thread, possibly after the client gave up;
 * wait for it (bounded by count, not by time assertions). */
static void expect_server_reject(fixture *f, atls_reason reason, const char *detail_part) {
        for (int i = 0; i < 1000; i++) {
                pthread_mutex_lock(&f->lock);
                unsigned n = f->rejects;
                atls_reason r = f->last_reason;
                char d[512];
                snprintf(d, sizeof(d), "%s", f->last_detail);
                pthread_mutex_unlock(&f->lock);
                if (n > 0) {
                        if (r != reason || !strstr(d, detail_part))
                                fail_msg("server refused with %s: %s; expected %s (\"%s\")", atls_reason_to_string(r), d,
                                         atls_reason_to_string(reason), detail_part);
                        return;
                }
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        fail_msg("server never reported a refusal (expected %s)", atls_reason_to_string(reason));
}

static void expect_dial_refused(const char *address, const atls_config *c, atls_reason reason, const char *detail_part) {
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        int r = atls_dial(address, c, NULL, &conn, &err);
        if (r >= 0 || err.reason != reason || !strstr(err.detail, detail_part)) {
                atls_conn_free(conn);
                fail_msg("dial: r=%d %s: %s; expected %s (\"%s\")", r, atls_reason_to_string(err.reason), err.detail,
                         atls_reason_to_string(reason), detail_part);
        }
        assert_null(conn);
}

static void expect_echo(rpc_channel *ch, const char *msg) {
        _cleanup_free_ uint8_t *resp = NULL;
        size_t len = 0;
        rpc_status st = { 0 };
        assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", msg, strlen(msg), 10000, &resp, &len, &st), 0);
        if (st.code != GRPC_STATUS_OK)
                fail_msg("Echo: %s: %s", rpc_status_code_to_string(st.code), st.message ?: "");
        assert_int_equal(len, strlen(msg) + 5);
        assert_memory_equal(resp + 5, msg, strlen(msg));
        rpc_status_done(&st);
}

static void expect_count(rpc_channel *ch, int n) {
        char req[16];
        snprintf(req, sizeof(req), "%d", n);
        _cleanup_(rpc_stream_freep) rpc_stream *s = NULL;
        assert_int_equal(rpc_stream_open(ch, "/test.Svc/Count", req, strlen(req), 10000, &s), 0);
        for (int i = 0;; i++) {
                _cleanup_free_ uint8_t *m = NULL;
                size_t len;
                int r = rpc_stream_next(s, &m, &len);
                assert_true(r >= 0);
                if (r == 0) {
                        assert_int_equal(i, n);
                        break;
                }
                char want[16];
                snprintf(want, sizeof(want), "%d", i);
                assert_int_equal(len, strlen(want));
                assert_memory_equal(m, want, len);
        }
        assert_int_equal(rpc_stream_status(s)->code, GRPC_STATUS_OK);
}

/* --- variants for the tests --- */

static atls_issuer dummy_issuer;
static atls_validator dummy_validator;

/* A relay: forwards a genuine node's document (bound to the node's key) in its own certificate. */
static int relay_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd, size_t *rl,
                       atls_error *err) {
        (void) u, (void) ud, (void) udl;
        uint8_t node_key_hash[ATLS_USER_DATA_SIZE];
        RAND_bytes(node_key_hash, sizeof(node_key_hash));
        return dummy_issuer.issue(NULL, node_key_hash, sizeof(node_key_hash), n, nl, rd, rl, err);
}

/* A replay: a document recorded from an earlier connection (another nonce). */
static uint8_t old_nonce[ATLS_NONCE_SIZE];
static int replay_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd, size_t *rl,
                        atls_error *err) {
        (void) u, (void) n, (void) nl;
        return dummy_issuer.issue(NULL, ud, udl, old_nonce, sizeof(old_nonce), rd, rl, err);
}

/* "measured" test variant: a dummy document plus a PCR value, checked against the validator's
 * expected value. It exercises the measurement refusal path through the whole stack; the real
 * TPM variant (qemu-vtpm on swtpm) plugs into the same interface. */
#define OID_MEASURED "1.3.9900.1.77"
static int measured_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd,
                          size_t *rl, atls_error *err) {
        const char *pcr = u;
        _cleanup_free_ uint8_t *inner = NULL;
        size_t inner_len;
        int r = dummy_issuer.issue(NULL, ud, udl, n, nl, &inner, &inner_len, err);
        if (r < 0)
                return r;
        json_auto_t *doc = json_loadb((const char *) inner, inner_len, 0, NULL);
        json_object_set_new(doc, "PCR11", json_string(pcr));
        char *s = json_dumps(doc, JSON_COMPACT);
        *rd = (uint8_t *) s;
        *rl = strlen(s);
        return 0;
}
static int measured_validate(void *u, const uint8_t *doc, size_t len, const uint8_t *n, size_t nl, uint8_t **ret_ud,
                             size_t *ret_udl, atls_error *err) {
        const char *expected = u;
        json_auto_t *root = json_loadb((const char *) doc, len, 0, NULL);
        const char *got = root ? json_string_value(json_object_get(root, "PCR11")) : NULL;
        if (!got)
                return atls_error_set(err, ATLS_REASON_EVIDENCE_MALFORMED, "measured: no PCR11");
        if (!streq(got, expected))
                return atls_error_set(err, ATLS_REASON_EVIDENCE_MEASUREMENTS,
                                      "untrusted measurement value %s at index 11 (expected %s)", got, expected);
        return dummy_validator.validate(NULL, doc, len, n, nl, ret_ud, ret_udl, err);
}

static int setup(void **state) {
        (void) state;
        dummy_issuer = atls_dummy_issuer();
        dummy_validator = atls_dummy_validator();
        RAND_bytes(old_nonce, sizeof(old_nonce));
        return 0;
}

/* --- tests --- */

/* CLI/Terraform -> bootstrapper Init: the server attests, the client validates; unary and a
 * server stream pass through the relay, including messages larger than one TLS record. */
static void test_server_attests(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer });
        atls_config cc = { .validators = &dummy_validator, .n_validators = 1 };
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &cc, NULL, &conn, &err), 0);
        rpc_channel *ch = atls_conn_channel(conn);
        expect_echo(ch, "hello");
        expect_count(ch, 200);

        size_t big_len = 3 << 20;
        _cleanup_free_ char *big = malloc(big_len + 1);
        for (size_t i = 0; i < big_len; i++)
                big[i] = (char) ('a' + i % 26);
        big[big_len] = 0;
        expect_echo(ch, big);
        expect_echo(ch, "after");

        /* A second connection gets a new certificate for its own nonce. */
        _cleanup_(atls_conn_freep) atls_conn *conn2 = NULL;
        assert_int_equal(atls_dial(f.address, &cc, NULL, &conn2, &err), 0);
        expect_echo(atls_conn_channel(conn2), "second");

        unsigned accepted, established, refused;
        atls_listener_stats(f.listener, &accepted, &established, &refused);
        assert_int_equal(accepted, 2);
        assert_int_equal(established, 2);
        assert_int_equal(refused, 0);
        atls_conn_free(TAKE_PTR(conn));
        atls_conn_free(TAKE_PTR(conn2));
        fixture_stop(&f);
}

/* The plaintext of a connection (secrets in gRPC messages) is wiped from every buffer our code frees:
 * the relay buffers on both ends, the rpc copies (wipe-check.h, -Wl,--wrap=free). The messages
 * fill the 16 KiB relay buffers, so the small frames at the end of a connection cannot hide an
 * unwiped buffer by overwriting it. */
static void test_relay_wipes_plaintext(void **state) {
        (void) state;
        static const char marker[] = "MARKER-atls-plaintext-e41d07";
        fixture f;
        atls_config both = { .issuer = &dummy_issuer, .validators = &dummy_validator, .n_validators = 1 };
        fixture_start(&f, &both);
        size_t len = 40000;
        uint8_t *req = malloc(len);
        for (size_t i = 0; i + sizeof(marker) <= len; i += sizeof(marker) - 1)
                memcpy(req + i, marker, sizeof(marker) - 1);
        memset(req + len - sizeof(marker), '.', sizeof(marker));

        wipe_check_arm(marker);
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &both, NULL, &conn, &err), 0);
        for (int i = 0; i < 3; i++) {
                uint8_t *resp = NULL;
                size_t resp_len = 0;
                rpc_status st = { 0 };
                assert_int_equal(rpc_unary(atls_conn_channel(conn), "/test.Svc/SecretEcho", req, len, 10000, &resp,
                                           &resp_len, &st),
                                 0);
                assert_int_equal(st.code, GRPC_STATUS_OK);
                assert_int_equal(resp_len, len + 5);
                erase_and_free_sized(resp, resp_len);
                rpc_status_done(&st);
        }
        atls_conn_free(conn);
        fixture_stop(&f);
        unsigned hits = wipe_check_disarm();
        erase_and_free_sized(req, len);
        assert_int_equal(hits, 0);
}

/* The receive limit holds before gRPC buffers a message: the relay reads the 5-byte gRPC prefix
 * and closes the connection when it announces more than the server's limit, so neither gRPC nor
 * the handler ever gets the body (gRPC 1.51 alone would buffer all of it first: lib/rpc/rpc.h).
 * The same on the client for replies over rpc_channel_options.max_receive_message_length. */
static void test_oversize_message_refused_at_relay(void **state) {
        (void) state;
        fixture f;
        fixture_max_receive = 1 << 20;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer });
        fixture_max_receive = 8 << 20;
        atls_config cc = { .validators = &dummy_validator, .n_validators = 1 };
        atls_error err = { 0 };

        size_t big_len = 2 << 20;
        char *big = malloc(big_len + 1);
        memset(big, 'b', big_len);
        big[big_len] = 0;
        atomic_store(&echo_runs, 0);
        atls_conn *conn = NULL;
        assert_int_equal(atls_dial(f.address, &cc, NULL, &conn, &err), 0);
        rpc_status st = { 0 };
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        assert_int_equal(rpc_unary(atls_conn_channel(conn), "/test.Svc/Echo", big, big_len, 10000, &resp, &resp_len, &st),
                         0);
        assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
        rpc_status_done(&st);
        expect_server_reject(&f, ATLS_REASON_MESSAGE_TOO_LARGE,
                             "stream 1 announces a 2097152-byte gRPC message; the limit is 1048576; connection closed");
        assert_int_equal(atomic_load(&echo_runs), 0);
        atls_conn_free(conn);

        /* Exactly the limit passes, on a new connection. */
        big[1 << 20] = 0;
        assert_int_equal(atls_dial(f.address, &cc, NULL, &conn, &err), 0);
        expect_echo(atls_conn_channel(conn), big);
        assert_int_equal(atomic_load(&echo_runs), 1);
        assert_false(atls_conn_error(conn, NULL));
        atls_conn_free(conn);

        /* Client side: a reply of 1001 bytes over a 1000-byte limit closes the client's relay. */
        rpc_channel_options small = { .max_receive_message_length = 1000 };
        assert_int_equal(atls_dial(f.address, &cc, &small, &conn, &err), 0);
        big[996] = 0;
        assert_int_equal(rpc_unary(atls_conn_channel(conn), "/test.Svc/Echo", big, 996, 10000, &resp, &resp_len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
        rpc_status_done(&st);
        atls_error why = { 0 };
        assert_true(atls_conn_error(conn, &why));
        assert_int_equal(why.reason, ATLS_REASON_MESSAGE_TOO_LARGE);
        assert_string_equal(why.detail, "stream 1 announces a 1001-byte gRPC message; the limit is 1000; connection closed");
        atls_conn_free(conn);
        free(big);
        fixture_stop(&f);
}

/* Joining node -> join service: the client attests with the server's CA-name nonce. */
static void test_client_attests(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 });
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &(atls_config) { .issuer = &dummy_issuer }, NULL, &conn, &err), 0);
        expect_echo(atls_conn_channel(conn), "join");
        atls_conn_free(TAKE_PTR(conn));
        fixture_stop(&f);
}

static void test_mutual(void **state) {
        (void) state;
        fixture f;
        atls_config both = { .issuer = &dummy_issuer, .validators = &dummy_validator, .n_validators = 1 };
        fixture_start(&f, &both);
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &both, NULL, &conn, &err), 0);
        expect_echo(atls_conn_channel(conn), "mutual");
        expect_count(atls_conn_channel(conn), 3);
        atls_conn_free(TAKE_PTR(conn));
        fixture_stop(&f);
}

/* An open, never-finished stream over aTLS blocks neither other calls nor the relay. */
static void test_held_stream(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer });
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 },
                                   NULL, &conn, &err),
                         0);
        rpc_channel *ch = atls_conn_channel(conn);
        _cleanup_(rpc_stream_freep) rpc_stream *held = NULL;
        assert_int_equal(rpc_stream_open(ch, "/test.Svc/Hold", "", 0, 0, &held), 0);
        _cleanup_free_ uint8_t *m = NULL;
        size_t len;
        assert_int_equal(rpc_stream_next(held, &m, &len), 1);
        assert_memory_equal(m, "first", 5);
        for (int i = 0; i < 5; i++)
                expect_echo(ch, "while held");
        /* Shut the server down with the stream still open: the listener closes the connection. */
        fixture_stop(&f);
        rpc_stream_free(TAKE_PTR(held));
}

static void test_relay_refused(void **state) {
        (void) state;
        fixture f;
        atls_issuer relay = { .oid = ATLS_OID_DUMMY, .name = "dummy", .issue = relay_issue };
        fixture_start(&f, &(atls_config) { .issuer = &relay });
        expect_dial_refused(f.address, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 },
                            ATLS_REASON_KEY_MISMATCH, "but the certificate's key hash is");
        expect_server_reject(&f, ATLS_REASON_HANDSHAKE, "peer refused the TLS handshake");
        fixture_stop(&f);
}

static void test_replayed_document_refused(void **state) {
        (void) state;
        fixture f;
        atls_issuer replay = { .oid = ATLS_OID_DUMMY, .name = "dummy", .issue = replay_issue };
        fixture_start(&f, &(atls_config) { .issuer = &replay });
        expect_dial_refused(f.address, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 },
                            ATLS_REASON_EVIDENCE_NONCE, "invalid nonce");
        fixture_stop(&f);
}

/* The joining node replays an old document: the server refuses it, and the client's dial says
 * the server did not accept its attestation (TLS 1.3: seen only after the client's Finished). */
static void test_client_replay_refused_by_server(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 });
        atls_issuer replay = { .oid = ATLS_OID_DUMMY, .name = "dummy", .issue = replay_issue };
        expect_dial_refused(f.address, &(atls_config) { .issuer = &replay }, ATLS_REASON_HANDSHAKE,
                            "the server did not accept our attestation");
        expect_server_reject(&f, ATLS_REASON_EVIDENCE_NONCE, "invalid nonce");
        fixture_stop(&f);
}

static void test_wrong_measurements_refused(void **state) {
        (void) state;
        fixture f;
        atls_issuer iss = { .oid = OID_MEASURED, .name = "measured", .issue = measured_issue, .userdata = "bad1" };
        fixture_start(&f, &(atls_config) { .issuer = &iss });
        atls_validator v = { .oid = OID_MEASURED, .name = "measured", .validate = measured_validate, .userdata = "good" };
        expect_dial_refused(f.address, &(atls_config) { .validators = &v, .n_validators = 1 },
                            ATLS_REASON_EVIDENCE_MEASUREMENTS, "untrusted measurement value bad1 at index 11");
        /* And the matching value passes. */
        iss.userdata = "good";
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &(atls_config) { .validators = &v, .n_validators = 1 }, NULL, &conn, &err),
                         0);
        expect_echo(atls_conn_channel(conn), "measured");
        atls_conn_free(TAKE_PTR(conn));
        fixture_stop(&f);
}

static void test_missing_evidence_refused(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { 0 }); /* server does not attest */
        expect_dial_refused(f.address, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 },
                            ATLS_REASON_NO_EVIDENCE, "certificate does not contain compatible attestation documents");
        /* A client without validators accepts it (Constellation's verifier without validators). */
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &(atls_config) { 0 }, NULL, &conn, &err), 0);
        expect_echo(atls_conn_channel(conn), "unattested");
        atls_conn_free(TAKE_PTR(conn));
        fixture_stop(&f);
}

static void test_client_without_certificate_refused(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .validators = &dummy_validator, .n_validators = 1 });
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        /* Without a certificate the client's handshake may still complete (TLS 1.3), and then
         * its first call fails; either way the server refuses with no-certificate. */
        int r = atls_dial(f.address, &(atls_config) { 0 }, NULL, &conn, &err);
        if (r == 0) {
                rpc_status st = { 0 };
                _cleanup_free_ uint8_t *resp = NULL;
                size_t len;
                assert_int_equal(rpc_unary(atls_conn_channel(conn), "/test.Svc/Echo", "x", 1, 5000, &resp, &len, &st), 0);
                assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
                rpc_status_done(&st);
                atls_conn_free(conn);
        } else
                assert_int_equal(err.reason, ATLS_REASON_HANDSHAKE);
        expect_server_reject(&f, ATLS_REASON_NO_CERTIFICATE, "client presented no certificate");
        fixture_stop(&f);
}

/* A plain OpenSSL client that sends a SNI which is no base64 nonce. */
static void test_bad_sni_refused(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer });
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) f.port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        _cleanup_(SSL_freep) SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "node.example.com");
        assert_true(SSL_connect(ssl) != 1);
        ERR_clear_error();
        close(fd);
        expect_server_reject(&f, ATLS_REASON_NONCE_TRANSPORT, "is not a base64 nonce");
        fixture_stop(&f);
}

/* What a Go client (Constellation's dialer) sees: the server certificate attests to the nonce it
 * sent as SNI (standard base64 with padding), and the CertificateRequest lists exactly one CA
 * name whose CN is a PrintableString of 44 base64 characters (the server's 32-byte nonce). */
typedef struct wire_seen {
        int n_cas;
        int cn_type;
        int cn_len;
        int verify_r;
        atls_error verify_err;
} wire_seen;
static uint8_t wire_nonce[ATLS_NONCE_SIZE];
static int wire_cert_cb(SSL *ssl, void *arg) {
        wire_seen *w = arg;
        const STACK_OF(X509_NAME) *cas = SSL_get0_peer_CA_list(ssl);
        w->n_cas = cas ? sk_X509_NAME_num(cas) : 0;
        if (w->n_cas == 1) {
                X509_NAME *name = sk_X509_NAME_value(cas, 0);
                ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, 0));
                w->cn_type = ASN1_STRING_type(cn);
                w->cn_len = ASN1_STRING_length(cn);
        }
        X509 *server_cert = SSL_get0_peer_certificate(ssl);
        w->verify_r = atls_certificate_verify(server_cert, &dummy_validator, 1, wire_nonce, sizeof(wire_nonce), NULL,
                                              &w->verify_err);
        return 0; /* no client certificate: the server will refuse, which is not the point here */
}
static int accept_any(X509_STORE_CTX *ctx, void *arg) {
        (void) ctx, (void) arg;
        return 1;
}

/* --- shutdown drains what gRPC already wrote (a raw HTTP/2 client that reads only later) --- */

static atomic_bool big_reply_queued;

/* Replies with as many bytes as the request names. */
static void big_reply_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        (void) len, (void) userdata;
        size_t n = strtoul((const char *) req, NULL, 10);
        uint8_t *buf = malloc(n);
        memset(buf, 'r', n);
        (void) rpc_call_reply(call, buf, n);
        free(buf);
        atomic_store(&big_reply_queued, true);
}

static void h2_frame(uint8_t **p, uint8_t type, uint8_t flags, uint32_t stream, const void *payload, size_t len) {
        uint8_t *o = *p;
        o[0] = (uint8_t) (len >> 16), o[1] = (uint8_t) (len >> 8), o[2] = (uint8_t) len, o[3] = type, o[4] = flags;
        o[5] = (uint8_t) (stream >> 24), o[6] = (uint8_t) (stream >> 16), o[7] = (uint8_t) (stream >> 8), o[8] = (uint8_t) stream;
        memcpy(o + 9, payload, len);
        *p = o + 9 + len;
}

/* HPACK literal header field without indexing, new name (RFC 7541 §6.2.2), short strings. */
static void hpack_literal(uint8_t **p, const char *name, const char *value) {
        uint8_t *o = *p;
        *o++ = 0x00;
        *o++ = (uint8_t) strlen(name);
        memcpy(o, name, strlen(name)), o += strlen(name);
        *o++ = (uint8_t) strlen(value);
        memcpy(o, value, strlen(value)), o += strlen(value);
        *p = o;
}

static void *free_listener_thread(void *arg) {
        atls_listener_free(arg);
        return NULL;
}

/* The listener stops while a client is not reading: the TCP buffers are full and what gRPC wrote
 * waits in the relay and the socketpair. atls_listener_free must still forward it and end with
 * close_notify once the client reads (within ATLS_DRAIN_TIMEOUT_MS), instead of cutting the
 * connection, which is how an answered call turned into UNAVAILABLE at shutdown. */
static void test_shutdown_drains_relays(void **state) {
        (void) state;
        enum { REPLY = 12 << 20 }; /* more than loopback TCP buffers hold for a client that does not read */
        fixture f = { 0 };
        pthread_mutex_init(&f.lock, NULL);
        rpc_server_options o = { .max_send_message_length = 16 << 20 };
        assert_int_equal(rpc_server_new(&o, &f.server), 0);
        assert_int_equal(rpc_server_register(f.server, "/test.Svc/Big", big_reply_handler, NULL), 0);
        assert_int_equal(rpc_server_start(f.server), 0);
        atls_error err = { 0 };
        assert_int_equal(atls_listen(f.server, "127.0.0.1:0", &(atls_config) { .issuer = &dummy_issuer }, &f.port,
                                     &f.listener, &err),
                         0);

        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int small = 4096;
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) f.port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        uint8_t nonce[ATLS_NONCE_SIZE];
        RAND_bytes(nonce, sizeof(nonce));
        _cleanup_free_ char *sni = base64_encode(nonce, sizeof(nonce), BASE64_STD);
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_cert_verify_callback(ctx, accept_any, NULL);
        assert_int_equal(SSL_CTX_set_alpn_protos(ctx, (const unsigned char *) "\x02h2", 3), 0);
        _cleanup_(SSL_freep) SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, sni);
        assert_int_equal(SSL_connect(ssl), 1);

        static uint8_t out[4096];
        uint8_t *p = out;
        memcpy(p, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), p += 24;
        static const uint8_t settings[] = { 0x00, 0x04, 0x7f, 0xff, 0xff, 0xff }; /* INITIAL_WINDOW_SIZE max */
        h2_frame(&p, 0x4, 0, 0, settings, sizeof(settings));
        static const uint8_t window[] = { 0x7f, 0xff, 0x00, 0x00 };              /* connection window */
        h2_frame(&p, 0x8, 0, 0, window, sizeof(window));
        uint8_t block[256], *b = block;
        hpack_literal(&b, ":method", "POST");
        hpack_literal(&b, ":scheme", "http");
        hpack_literal(&b, ":path", "/test.Svc/Big");
        hpack_literal(&b, ":authority", "node");
        hpack_literal(&b, "content-type", "application/grpc");
        hpack_literal(&b, "te", "trailers");
        h2_frame(&p, 0x1, 0x4, 1, block, (size_t) (b - block));
        char req[16];
        int rl = snprintf(req, sizeof(req), "%d", REPLY);
        uint8_t msg[32] = { 0, 0, 0, 0, (uint8_t) rl };
        memcpy(msg + 5, req, (size_t) rl);
        h2_frame(&p, 0x0, 0x1, 1, msg, 5 + (size_t) rl);
        assert_int_equal(SSL_write(ssl, out, (int) (p - out)), (int) (p - out));

        /* The reply is queued; gRPC writes until every buffer up to the client is full. */
        atomic_store(&big_reply_queued, false);
        while (!atomic_load(&big_reply_queued)) {
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        struct timespec settle = { 0, 300 * 1000 * 1000 };
        nanosleep(&settle, NULL);

        /* The listener stops (on its own thread: it drains until the client has read). The
         * server cannot finish first here: its call waits for a write the relay has to pass on. */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, free_listener_thread, f.listener), 0);
        struct timespec later = { 0, 200 * 1000 * 1000 };
        nanosleep(&later, NULL);

        /* Now the client reads: everything gRPC wrote, then close_notify (not a cut connection). */
        static uint8_t in[64 * 1024];
        size_t got = 0;
        int n;
        while ((n = SSL_read(ssl, in, (int) sizeof(in))) > 0)
                got += (size_t) n;
        int e = SSL_get_error(ssl, n);
        if (e != SSL_ERROR_ZERO_RETURN)
                fail_msg("after %zu bytes the connection ended without close_notify (SSL error %d)", got, e);
        assert_true(got > 0);
        pthread_join(t, NULL);
        rpc_server_request_shutdown(f.server);
        rpc_server_wait(f.server);
        rpc_server_free(f.server);
        pthread_mutex_destroy(&f.lock);
        close(fd);
}

static void test_wire_format(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer, .validators = &dummy_validator, .n_validators = 1 });
        RAND_bytes(wire_nonce, sizeof(wire_nonce));
        _cleanup_free_ char *sni = base64_encode(wire_nonce, sizeof(wire_nonce), BASE64_STD);
        assert_int_equal(strlen(sni), 44);

        /* TLS 1.3 carries the CA name in certificate_authorities, TLS 1.2 in CertificateRequest. */
        static const int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };
        for (size_t vi = 0; vi < ELEMENTSOF(versions); vi++) {
                int version = versions[vi];
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) f.port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                wire_seen w = { .verify_r = 1 };
                _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
                SSL_CTX_set_max_proto_version(ctx, version);
                SSL_CTX_set_cert_verify_callback(ctx, accept_any, NULL);
                _cleanup_(SSL_freep) SSL *ssl = SSL_new(ctx);
                SSL_set_fd(ssl, fd);
                SSL_set_tlsext_host_name(ssl, sni);
                SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
                SSL_set_cert_cb(ssl, wire_cert_cb, &w);
                (void) SSL_connect(ssl);
                ERR_clear_error();
                close(fd);

                assert_int_equal(w.n_cas, 1);
                assert_int_equal(w.cn_type, V_ASN1_PRINTABLESTRING);
                assert_int_equal(w.cn_len, 44);
                if (w.verify_r != 0)
                        fail_msg("server certificate: %s: %s", atls_reason_to_string(w.verify_err.reason), w.verify_err.detail);
        }
        fixture_stop(&f);
}

/* Plaintext HTTP/2 to the aTLS port. */
static void test_plaintext_client_refused(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer });
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(f.address, NULL, NULL, &ch), 0);
        rpc_status st = { 0 };
        _cleanup_free_ uint8_t *resp = NULL;
        size_t len;
        assert_int_equal(rpc_unary(ch, "/test.Svc/Echo", "x", 1, 5000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
        rpc_status_done(&st);
        expect_server_reject(&f, ATLS_REASON_HANDSHAKE, "TLS handshake failed");
        rpc_channel_free(TAKE_PTR(ch));
        fixture_stop(&f);
}

/* A peer that accepts TCP but never speaks TLS: the handshake times out with that reason. */
static void test_handshake_timeout(void **state) {
        (void) state;
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t salen = sizeof(sa);
        assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *) &sa, &salen), 0);
        char address[64];
        snprintf(address, sizeof(address), "127.0.0.1:%d", ntohs(sa.sin_port));
        expect_dial_refused(address,
                            &(atls_config) { .validators = &dummy_validator, .n_validators = 1, .handshake_timeout_ms = 200 },
                            ATLS_REASON_TIMEOUT, "did not finish within 200 ms");
        close(lfd);
        /* Nothing listens any more. */
        expect_dial_refused(address, &(atls_config) { 0 }, ATLS_REASON_CONNECT, "Connection refused");
        expect_dial_refused("no-port", &(atls_config) { 0 }, ATLS_REASON_INVALID_ARGUMENT, "expected host:port");
}

/* A connection that never sends a ClientHello holds its thread only until the handshake timeout. */
static void test_silent_client_times_out(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer, .handshake_timeout_ms = 200 });
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) f.port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        expect_server_reject(&f, ATLS_REASON_TIMEOUT, "did not finish within 200 ms");
        close(fd);
        fixture_stop(&f);
}

static void test_connection_limit(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer, .max_connections = 1 });
        atls_config cc = { .validators = &dummy_validator, .n_validators = 1 };
        atls_conn *first = NULL;
        atls_error err = { 0 };
        assert_int_equal(atls_dial(f.address, &cc, NULL, &first, &err), 0);
        expect_echo(atls_conn_channel(first), "one");
        expect_dial_refused(f.address, &cc, ATLS_REASON_HANDSHAKE, "peer closed the connection during the handshake");
        expect_server_reject(&f, ATLS_REASON_TOO_MANY_CONNECTIONS, "1 connections open, the limit");
        atls_conn_free(first);
        /* Once the first connection's thread has ended, a new one is served. */
        atls_conn *next = NULL;
        for (int i = 0; i < 200 && !next; i++) {
                err = (atls_error) { 0 };
                if (atls_dial(f.address, &cc, NULL, &next, &err) < 0) {
                        assert_int_equal(err.reason, ATLS_REASON_HANDSHAKE);
                        struct timespec ts = { 0, 10 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
        assert_non_null(next);
        expect_echo(atls_conn_channel(next), "two");
        atls_conn_free(next);
        fixture_stop(&f);
}

/* Mutual aTLS from several threads at once: connection threads, validators and relays run
 * concurrently. */
static void *dial_worker(void *arg) {
        const char *address = arg;
        atls_config both = { .issuer = &dummy_issuer, .validators = &dummy_validator, .n_validators = 1 };
        for (int i = 0; i < 5; i++) {
                atls_conn *conn = NULL;
                atls_error err = { 0 };
                if (atls_dial(address, &both, NULL, &conn, &err) < 0)
                        return strdup(err.detail);
                _cleanup_free_ uint8_t *resp = NULL;
                size_t len;
                rpc_status st = { 0 };
                int r = rpc_unary(atls_conn_channel(conn), "/test.Svc/Echo", "c", 1, 10000, &resp, &len, &st);
                bool ok = r == 0 && st.code == GRPC_STATUS_OK && len == 6;
                rpc_status_done(&st);
                atls_conn_free(conn);
                if (!ok)
                        return strdup("echo failed");
        }
        return NULL;
}

static void test_concurrent_dials(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer, .validators = &dummy_validator, .n_validators = 1 });
        pthread_t t[8];
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(&t[i], NULL, dial_worker, f.address), 0);
        char *failure = NULL;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char *r = NULL;
                pthread_join(t[i], (void **) &r);
                if (r && !failure)
                        failure = r;
                else
                        free(r);
        }
        if (failure) {
                char msg[512];
                snprintf(msg, sizeof(msg), "%s", failure);
                free(failure);
                fail_msg("concurrent dial: %s", msg);
        }
        unsigned established;
        atls_listener_stats(f.listener, NULL, &established, NULL);
        assert_int_equal(established, 40);
        fixture_stop(&f);
}

/* Many clients at once, some refused, while the listener is freed with connections open. */
static void test_shutdown_with_open_connections(void **state) {
        (void) state;
        fixture f;
        fixture_start(&f, &(atls_config) { .issuer = &dummy_issuer });
        atls_config cc = { .validators = &dummy_validator, .n_validators = 1 };
        atls_conn *conns[8] = { 0 };
        for (size_t i = 0; i < ELEMENTSOF(conns); i++) {
                atls_error err = { 0 };
                assert_int_equal(atls_dial(f.address, &cc, NULL, &conns[i], &err), 0);
                expect_echo(atls_conn_channel(conns[i]), "open");
        }
        fixture_stop(&f);
        /* The clients see the connection gone. */
        rpc_status st = { 0 };
        _cleanup_free_ uint8_t *resp = NULL;
        size_t len;
        assert_int_equal(rpc_unary(atls_conn_channel(conns[0]), "/test.Svc/Echo", "x", 1, 5000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
        rpc_status_done(&st);
        for (size_t i = 0; i < ELEMENTSOF(conns); i++)
                atls_conn_free(conns[i]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_server_attests),
                cmocka_unit_test(test_client_attests),
                cmocka_unit_test(test_mutual),
                cmocka_unit_test(test_relay_wipes_plaintext),
                cmocka_unit_test(test_oversize_message_refused_at_relay),
                cmocka_unit_test(test_held_stream),
                cmocka_unit_test(test_relay_refused),
                cmocka_unit_test(test_replayed_document_refused),
                cmocka_unit_test(test_client_replay_refused_by_server),
                cmocka_unit_test(test_wrong_measurements_refused),
                cmocka_unit_test(test_missing_evidence_refused),
                cmocka_unit_test(test_client_without_certificate_refused),
                cmocka_unit_test(test_bad_sni_refused),
                cmocka_unit_test(test_wire_format),
                cmocka_unit_test(test_plaintext_client_refused),
                cmocka_unit_test(test_handshake_timeout),
                cmocka_unit_test(test_silent_client_times_out),
                cmocka_unit_test(test_connection_limit),
                cmocka_unit_test(test_concurrent_dials),
                cmocka_unit_test(test_shutdown_with_open_connections),
                cmocka_unit_test(test_shutdown_drains_relays),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
