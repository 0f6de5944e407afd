/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS with swtpm-backed qemu-vtpm evidence over TCP loopback under gRPC: server-attested and
 * mutual connections succeed; wrong measurements, a replayed document (old nonce), a relay with
 * another key and missing evidence are refused with their reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>

#include "atls/qemu-vtpm.h"
#include "swtpm-util.h"

static swtpm tpm_sim;
static atls_issuer vtpm_issuer;
/* swtpm starts with PCR 0 zero; Constellation enforces e.g. PCR 15 = 0 for a fresh node. */
static attdoc_measurement good_measurements[2] = { { .index = 0, .expected_len = 32 },
                                                   { .index = 15, .expected_len = 32 } };
static atls_qemu_vtpm_policy good_policy = { good_measurements, 2 };
static atls_validator vtpm_validator;

static void echo_handler(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        (void) userdata;
        rpc_call_reply(call, req, len);
}

typedef struct server {
        rpc_server *rpc;
        atls_listener *listener;
        char address[64];
        pthread_mutex_t lock;
        atls_error last;
} server;

static void on_reject(void *userdata, const char *peer, const atls_error *err) {
        (void) peer;
        server *s = userdata;
        pthread_mutex_lock(&s->lock);
        s->last = *err;
        pthread_mutex_unlock(&s->lock);
}

static void server_start(server *s, const atls_config *config) {
        *s = (server) { 0 };
        pthread_mutex_init(&s->lock, NULL);
        assert_int_equal(rpc_server_new(NULL, &s->rpc), 0);
        assert_int_equal(rpc_server_register(s->rpc, "/test.Svc/Echo", echo_handler, NULL), 0);
        assert_int_equal(rpc_server_start(s->rpc), 0);
        atls_config c = *config;
        c.on_reject = on_reject;
        c.on_reject_userdata = s;
        int port;
        atls_error err = { 0 };
        assert_int_equal(atls_listen(s->rpc, "127.0.0.1:0", &c, &port, &s->listener, &err), 0);
        snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", port);
}

static void server_stop(server *s) {
        atls_listener_free(s->listener);
        rpc_server_free(s->rpc);
        pthread_mutex_destroy(&s->lock);
}

static void expect_echo(atls_conn *conn) {
        uint8_t *resp = NULL;
        size_t len = 0;
        rpc_status st = { 0 };
        assert_int_equal(rpc_unary(atls_conn_channel(conn), "/test.Svc/Echo", "attested", 8, 10000, &resp, &len, &st), 0);
        if (st.code != GRPC_STATUS_OK)
                fail_msg("Echo: %s: %s", rpc_status_code_to_string(st.code), st.message ?: "");
        assert_int_equal(len, 8);
        assert_memory_equal(resp, "attested", 8);
        free(resp);
        rpc_status_done(&st);
}

static void expect_refused(const char *address, const atls_config *c, atls_reason reason, const char *part) {
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        int r = atls_dial(address, c, NULL, &conn, &err);
        if (r >= 0 || err.reason != reason || !strstr(err.detail, part)) {
                atls_conn_free(conn);
                fail_msg("dial: r=%d %s: %s; expected %s (\"%s\")", r, atls_reason_to_string(err.reason), err.detail,
                         atls_reason_to_string(reason), part);
        }
}

static int setup(void **state) {
        (void) state;
        if (swtpm_start(&tpm_sim) < 0)
                return -1;
        vtpm_issuer = atls_qemu_vtpm_issuer(tpm_sim.tcti);
        vtpm_validator = atls_qemu_vtpm_validator(&good_policy);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        swtpm_stop(&tpm_sim);
        return 0;
}

static void test_server_attests(void **state) {
        (void) state;
        server s;
        server_start(&s, &(atls_config) { .issuer = &vtpm_issuer });
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        int r = atls_dial(s.address, &(atls_config) { .validators = &vtpm_validator, .n_validators = 1 }, NULL, &conn,
                          &err);
        if (r < 0)
                fail_msg("dial: %s: %s", atls_reason_to_string(err.reason), err.detail);
        expect_echo(conn);
        atls_conn_free(conn);
        server_stop(&s);
}

static void test_mutual(void **state) {
        (void) state;
        server s;
        atls_config both = { .issuer = &vtpm_issuer, .validators = &vtpm_validator, .n_validators = 1 };
        server_start(&s, &both);
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        int r = atls_dial(s.address, &both, NULL, &conn, &err);
        if (r < 0)
                fail_msg("dial: %s: %s", atls_reason_to_string(err.reason), err.detail);
        expect_echo(conn);
        atls_conn_free(conn);
        server_stop(&s);
}

static void test_wrong_measurements(void **state) {
        (void) state;
        server s;
        server_start(&s, &(atls_config) { .issuer = &vtpm_issuer });
        attdoc_measurement m = { .index = 0, .expected_len = 32 };
        memset(m.expected, 0x11, 32);
        atls_qemu_vtpm_policy bad = { &m, 1 };
        atls_validator v = atls_qemu_vtpm_validator(&bad);
        expect_refused(s.address, &(atls_config) { .validators = &v, .n_validators = 1 },
                       ATLS_REASON_EVIDENCE_MEASUREMENTS, "index 0");
        server_stop(&s);
}

/* Issuers that misuse the real TPM: a replay of a document made for an old nonce, and a relay
 * whose document binds another key than its certificate's. */
static uint8_t old_nonce[ATLS_NONCE_SIZE];
static int replay_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd, size_t *rl,
                        atls_error *err) {
        (void) n, (void) nl;
        return vtpm_issuer.issue(u, ud, udl, old_nonce, sizeof(old_nonce), rd, rl, err);
}
static int relay_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd, size_t *rl,
                       atls_error *err) {
        (void) ud, (void) udl;
        uint8_t other_key_hash[ATLS_USER_DATA_SIZE];
        RAND_bytes(other_key_hash, sizeof(other_key_hash));
        return vtpm_issuer.issue(u, other_key_hash, sizeof(other_key_hash), n, nl, rd, rl, err);
}

static void test_replayed_document(void **state) {
        (void) state;
        RAND_bytes(old_nonce, sizeof(old_nonce));
        atls_issuer replay = vtpm_issuer;
        replay.issue = replay_issue;
        server s;
        server_start(&s, &(atls_config) { .issuer = &replay });
        expect_refused(s.address, &(atls_config) { .validators = &vtpm_validator, .n_validators = 1 },
                       ATLS_REASON_EVIDENCE_NONCE, "qemu-vtpm: ");
        server_stop(&s);

        /* And a joining node replaying towards a server that validates it. */
        server_start(&s, &(atls_config) { .validators = &vtpm_validator, .n_validators = 1 });
        expect_refused(s.address, &(atls_config) { .issuer = &replay }, ATLS_REASON_HANDSHAKE,
                       "did not accept our attestation");
        for (int i = 0; i < 500; i++) {
                pthread_mutex_lock(&s.lock);
                atls_reason got = s.last.reason;
                pthread_mutex_unlock(&s.lock);
                if (got != ATLS_REASON_OK)
                        break;
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        assert_int_equal(s.last.reason, ATLS_REASON_EVIDENCE_NONCE);
        server_stop(&s);
}

static void test_relay_other_key(void **state) {
        (void) state;
        atls_issuer relay = vtpm_issuer;
        relay.issue = relay_issue;
        server s;
        server_start(&s, &(atls_config) { .issuer = &relay });
        expect_refused(s.address, &(atls_config) { .validators = &vtpm_validator, .n_validators = 1 },
                       ATLS_REASON_KEY_MISMATCH, "qemu-vtpm document binds key hash");
        server_stop(&s);
}

static void test_missing_extension(void **state) {
        (void) state;
        server s;
        atls_issuer dummy = atls_dummy_issuer(); /* evidence, but not of the variant the client wants */
        server_start(&s, &(atls_config) { .issuer = &dummy });
        expect_refused(s.address, &(atls_config) { .validators = &vtpm_validator, .n_validators = 1 },
                       ATLS_REASON_NO_EVIDENCE, "expected qemu-vtpm (1.3.9900.5.1)");
        server_stop(&s);
        server_start(&s, &(atls_config) { 0 });
        expect_refused(s.address, &(atls_config) { .validators = &vtpm_validator, .n_validators = 1 },
                       ATLS_REASON_NO_EVIDENCE, "does not contain compatible attestation documents");
        server_stop(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_server_attests),   cmocka_unit_test(test_mutual),
                cmocka_unit_test(test_wrong_measurements), cmocka_unit_test(test_replayed_document),
                cmocka_unit_test(test_relay_other_key),  cmocka_unit_test(test_missing_extension),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
