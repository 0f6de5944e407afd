/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS with swtpm-backed qemu-vtpm evidence over TCP loopback under gRPC: server-attested and
 * mutual connections succeed; wrong measurements, a replayed document (old nonce), a relay with
 * another key and missing evidence are refused with their reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/rand.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "atls/qemu-vtpm.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "swtpm-util.h"

static swtpm tpm_sim;
static atls_issuer vtpm_issuer;
/* swtpm starts with PCR 0 zero; Constellation enforces e.g. PCR 15 = 0 for a fresh node. */
static attdoc_measurement good_measurements[2] = { { .index = 0, .expected_len = 32 },
                                                   { .index = 15, .expected_len = 32 } };
static atls_qemu_vtpm_policy good_policy = { good_measurements, 2, false };
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
        atls_qemu_vtpm_policy bad = { &m, 1, false };
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


/* A server whose document carries a genuine SHA-256 quote made by `tpm2_quote -l sha256:0,1` with
 * its AK, and made-up values for PCRs 4, 9, 11 and 15 beside the real PCR 0 and 1: exactly what the
 * client's policy expects. The quote does not cover those PCRs, so the client must refuse. */
static const unsigned forged_pcrs[] = { 4, 9, 11, 15 };
static char forge_dir[64];

static int partial_quote_issue(void *u, const uint8_t *ud, size_t udl, const uint8_t *n, size_t nl, uint8_t **rd,
                               size_t *rl, atls_error *err) {
        uint8_t *doc = NULL;
        size_t len = 0;
        int r = vtpm_issuer.issue(u, ud, udl, n, nl, &doc, &len, err); /* creates/loads the AK, real PCR 0/1 */
        if (r < 0)
                return r;
        uint8_t extra[32], tn[32];
        if (attdoc_make_extra_data(ud, udl, n, nl, extra) < 0 || attdoc_make_tpm_nonce(NULL, 0, extra, tn) < 0)
                return -ENOMEM;
        _cleanup_free_ char *hex = hex_encode(tn, sizeof tn), *cmd = NULL;
        if (!hex || asprintf(&cmd,
                             "TPM2TOOLS_TCTI='%s' tpm2_quote -c 0x81008F01 -l sha256:0,1 -q %s -g sha256 "
                             "-m %s/q.msg -s %s/q.sig >/dev/null && TPM2TOOLS_TCTI='%s' tpm2_flushcontext -s "
                             ">/dev/null 2>&1; true",
                             tpm_sim.tcti, hex, forge_dir, forge_dir, tpm_sim.tcti) < 0)
                return -ENOMEM;
        if (system(cmd) != 0)
                return -EIO;
        char path[128];
        _cleanup_free_ uint8_t *msg = NULL, *sig = NULL;
        size_t msg_len, sig_len;
        snprintf(path, sizeof path, "%s/q.msg", forge_dir);
        if (read_full_file(path, 4096, &msg, &msg_len) < 0)
                return -EIO;
        snprintf(path, sizeof path, "%s/q.sig", forge_dir);
        if (read_full_file(path, 4096, &sig, &sig_len) < 0)
                return -EIO;

        json_t *j = json_loadb((const char *) doc, len, 0, NULL), *q;
        free(doc);
        size_t i;
        json_array_foreach(json_object_get(json_object_get(j, "Attestation"), "quotes"), i, q) {
                json_t *pcrs = json_object_get(q, "pcrs");
                if (json_integer_value(json_object_get(pcrs, "hash")) != 11)
                        continue;
                _cleanup_free_ char *mb = base64_encode(msg, msg_len, BASE64_STD);
                _cleanup_free_ char *sb = base64_encode(sig, sig_len, BASE64_STD);
                json_object_set_new(q, "quote", json_string(mb));
                json_object_set_new(q, "raw_sig", json_string(sb));
                json_t *map = json_object_get(pcrs, "pcrs"), *keep = json_object();
                json_object_set(keep, "0", json_object_get(map, "0"));
                json_object_set(keep, "1", json_object_get(map, "1"));
                for (size_t k = 0; k < ELEMENTSOF(forged_pcrs); k++) {
                        uint8_t v[32];
                        memset(v, 0xc0 + (int) k, sizeof v);
                        _cleanup_free_ char *b = base64_encode(v, sizeof v, BASE64_STD);
                        char key[4];
                        snprintf(key, sizeof key, "%u", forged_pcrs[k]);
                        json_object_set_new(keep, key, json_string(b));
                }
                json_object_set_new(pcrs, "pcrs", keep);
        }
        char *out = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!out)
                return -ENOMEM;
        *rd = (uint8_t *) out;
        *rl = strlen(out);
        return 0;
}

static void test_pcrs_not_covered_by_quote(void **state) {
        (void) state;
        if (system("command -v tpm2_quote >/dev/null") != 0)
                fail_msg("tpm2_quote (tpm2-tools) is not installed (scripts/setup.sh)");
        snprintf(forge_dir, sizeof forge_dir, "/tmp/ct-atls-forge-XXXXXX");
        assert_non_null(mkdtemp(forge_dir));
        attdoc_measurement m[ELEMENTSOF(forged_pcrs)];
        for (size_t k = 0; k < ELEMENTSOF(forged_pcrs); k++) {
                m[k] = (attdoc_measurement){ .index = forged_pcrs[k], .expected_len = 32 };
                memset(m[k].expected, 0xc0 + (int) k, 32);
        }
        atls_qemu_vtpm_policy policy = { m, ELEMENTSOF(m), false };
        atls_validator v = atls_qemu_vtpm_validator(&policy);
        atls_issuer forger = vtpm_issuer;
        forger.issue = partial_quote_issue;
        server s;
        server_start(&s, &(atls_config) { .issuer = &forger });
        expect_refused(s.address, &(atls_config) { .validators = &v, .n_validators = 1 },
                       ATLS_REASON_EVIDENCE_SIGNATURE, "do not have the same PCR selection");
        server_stop(&s);
        char path[128];
        snprintf(path, sizeof path, "%s/q.msg", forge_dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/q.sig", forge_dir);
        unlink(path);
        rmdir(forge_dir);
}

/* A validator without an enforced measurement would accept any TPM's document: refused unless the
 * caller opts in with allow_empty_policy. */
static void test_empty_policy(void **state) {
        (void) state;
        server s;
        server_start(&s, &(atls_config) { .issuer = &vtpm_issuer });
        atls_qemu_vtpm_policy empty = { 0 };
        atls_validator v = atls_qemu_vtpm_validator(&empty);
        expect_refused(s.address, &(atls_config) { .validators = &v, .n_validators = 1 }, ATLS_REASON_EVIDENCE_POLICY,
                       "measurement policy is empty");
        atls_validator vnull = atls_qemu_vtpm_validator(NULL);
        expect_refused(s.address, &(atls_config) { .validators = &vnull, .n_validators = 1 },
                       ATLS_REASON_EVIDENCE_POLICY, "measurement policy is empty");
        empty.allow_empty_policy = true;
        atls_conn *conn = NULL;
        atls_error err = { 0 };
        if (atls_dial(s.address, &(atls_config) { .validators = &v, .n_validators = 1 }, NULL, &conn, &err) < 0)
                fail_msg("dial with allow_empty_policy: %s: %s", atls_reason_to_string(err.reason), err.detail);
        expect_echo(conn);
        atls_conn_free(conn);
        server_stop(&s);
}

/* The largest event log an aTLS peer can send: a genuine document grown to ATLS_MAX_DOCUMENT_SIZE
 * with the crafted log of issue 12 (Spec ID header, zeros, one 0x01 at the end) as event_log. The
 * qemu-vtpm validator must refuse it with the parser's reason (the old parser was quadratic here:
 * minutes of CPU per handshake; bench-tpm measures the time, this test only the verdict). Called
 * through the validator interface aTLS uses, so the size is the aTLS limit and not OpenSSL's
 * certificate-list limit. */
static void test_largest_event_log(void **state) {
        (void) state;
        uint8_t nonce[ATLS_NONCE_SIZE], ud[ATLS_USER_DATA_SIZE];
        RAND_bytes(nonce, sizeof nonce);
        RAND_bytes(ud, sizeof ud);
        uint8_t *doc = NULL;
        size_t len = 0;
        atls_error err = { 0 };
        assert_int_equal(vtpm_issuer.issue(vtpm_issuer.userdata, ud, sizeof ud, nonce, sizeof nonce, &doc, &len, &err), 0);
        json_t *j = json_loadb((const char *) doc, len, 0, NULL);
        assert_non_null(j);
        free(doc);
        _cleanup_free_ char *small = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        assert_non_null(small);
        /* ,"event_log":"<base64>" adds 15 bytes and 4 per 3 bytes of log. */
        size_t room = ATLS_MAX_DOCUMENT_SIZE - strlen(small) - 15, n = room / 4 * 3;
        _cleanup_free_ uint8_t *log = calloc(1, n);
        assert_non_null(log);
        static const uint8_t h[] = {
                0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                33, 0, 0, 0, 'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0,
                0, 0, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0x0b, 0, 32, 0, 0,
        };
        memcpy(log, h, sizeof h);
        log[n - 1] = 0x01;
        _cleanup_free_ char *b64 = base64_encode(log, n, BASE64_STD);
        assert_non_null(b64);
        json_object_set_new(json_object_get(j, "Attestation"), "event_log", json_string(b64));
        _cleanup_free_ char *big = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(j);
        assert_non_null(big);
        size_t big_len = strlen(big);
        assert_true(big_len <= ATLS_MAX_DOCUMENT_SIZE);
        assert_true(big_len > ATLS_MAX_DOCUMENT_SIZE - 4);

        uint8_t *got_ud = NULL;
        size_t got_len = 0;
        atls_error verr = { 0 };
        int r = vtpm_validator.validate(vtpm_validator.userdata, (const uint8_t *) big, big_len, nonce, sizeof nonce,
                                        &got_ud, &got_len, &verr);
        free(got_ud);
        size_t events = (n - sizeof h) / 16, at = sizeof h + events * 16;
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "qemu-vtpm: event log malformed: event log malformed: event %zu at offset %zu: truncated", events,
                             at) > 0);
        if (r >= 0 || verr.reason != ATLS_REASON_EVIDENCE_MALFORMED || !strstr(verr.detail, want))
                fail_msg("validate %zu-byte document (%zu-byte log): r=%d %s: %s; want %s", big_len, n, r,
                         atls_reason_to_string(verr.reason), verr.detail, want);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_server_attests),   cmocka_unit_test(test_mutual),
                cmocka_unit_test(test_wrong_measurements), cmocka_unit_test(test_replayed_document),
                cmocka_unit_test(test_relay_other_key),  cmocka_unit_test(test_missing_extension),
                cmocka_unit_test(test_pcrs_not_covered_by_quote), cmocka_unit_test(test_empty_policy),
                cmocka_unit_test(test_largest_event_log),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
