/* SPDX-License-Identifier: Apache-2.0 */
/* lib/joinconfig and the join service's request checks without a network: the attestation
 * configuration (PCR 15 rule), signed updates (every refusal reason), the directory store, disk
 * UUIDs, bootstrap tokens, the update request framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "joinconfig/joinconfig.h"
#include "joinclient/joinclient.h"
#include "joinservice.h"

#define HEX32(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static const char *reason_of(const ct_error *e) {
        return e->reason ?: "";
}

static void test_attestation_config(void **state) {
        measurements m;
        ct_error err = CT_ERROR_INIT;
        const char *doc = "{\"measurements\":{\"4\":{\"expected\":\"" HEX32("a") "\",\"warnOnly\":false}}}";
        assert_int_equal(joinconfig_parse_attestation((const uint8_t *) doc, strlen(doc), &m, &err), 0);
        assert_int_equal(m.n, 2);
        const measurement *p15 = measurements_get(&m, 15);
        assert_non_null(p15);
        assert_false(p15->warn_only);
        static const uint8_t zero[32] = { 0 };
        assert_memory_equal(p15->expected, zero, 32);

        const char *warn15 = "{\"measurements\":{\"15\":{\"expected\":\"" HEX32("0") "\",\"warnOnly\":true}}}";
        assert_int_equal(joinconfig_parse_attestation((const uint8_t *) warn15, strlen(warn15), &m, &err), 0);
        assert_false(measurements_get(&m, 15)->warn_only);

        struct {
                const char *doc, *reason;
        } bad[] = {
                { "{\"measurements\":{\"15\":{\"expected\":\"" HEX32("1") "\",\"warnOnly\":false}}}", "pcr15-invalid" },
                { "{\"measurements\":{\"4\":{\"expected\":\"" HEX32("a") "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"warnOnly\":false}}}",
                  "measurements-invalid" },
                { "{\"measurements\":{},\"other\":1}", "unknown-key" },
                { "{}", "missing-key" },
                { "[1]", "json-invalid" },
                { "{\"measurements\":{\"4\":{\"expected\":\"zz\"}}}", "measurements-invalid" },
                { "{\"measurements\":1}", "measurements-invalid" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ct_error e = CT_ERROR_INIT;
                assert_true(joinconfig_parse_attestation((const uint8_t *) bad[i].doc, strlen(bad[i].doc), &m, &e) < 0);
                if (strcmp(reason_of(&e), bad[i].reason) != 0)
                        fail_msg("%s: expected %s, got %s (%s)", bad[i].doc, bad[i].reason, reason_of(&e), e.detail);
        }
}

static void test_updates(void **state) {
        uint8_t kb[32];
        memset(kb, 7, 32);
        _cleanup_secret_ secret_t *key = secret_new_copy(kb, 32);
        measurements m = { 0 };
        uint8_t v[32];
        memset(v, 0xaa, 32);
        measurements_set(&m, 4, v, 32, false);
        char *doc = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(joinconfig_update_sign(&m, 3, key, &doc, &err), 0);
        measurements got;
        uint64_t ver = 0;
        assert_int_equal(joinconfig_update_verify((const uint8_t *) doc, strlen(doc), key, 2, &got, &ver, &err), 0);
        assert_int_equal(ver, 3);
        assert_int_equal(got.n, 2);
        ct_error e = CT_ERROR_INIT;
        assert_true(joinconfig_update_verify((const uint8_t *) doc, strlen(doc), key, 3, &got, &ver, &e) < 0);
        assert_string_equal(reason_of(&e), "version-rollback");
        memset(kb, 8, 32);
        _cleanup_secret_ secret_t *other = secret_new_copy(kb, 32);
        e = (ct_error) CT_ERROR_INIT;
        assert_true(joinconfig_update_verify((const uint8_t *) doc, strlen(doc), other, 0, &got, &ver, &e) < 0);
        assert_string_equal(reason_of(&e), "signature-invalid");
        /* versions out of range cannot be signed */
        e = (ct_error) CT_ERROR_INIT;
        char *d2 = NULL;
        assert_true(joinconfig_update_sign(&m, 0, key, &d2, &e) < 0);
        assert_string_equal(reason_of(&e), "version-invalid");
        const char *badver = "{\"version\":-1,\"measurements\":{},\"signature\":\"AAAA\"}";
        e = (ct_error) CT_ERROR_INIT;
        assert_true(joinconfig_update_verify((const uint8_t *) badver, strlen(badver), key, 0, &got, &ver, &e) < 0);
        assert_string_equal(reason_of(&e), "version-invalid");

        /* the directory store: an accepted update replaces the init form and survives a reload */
        char dir[] = "/tmp/ct-joinconfig-XXXXXX";
        assert_non_null(mkdtemp(dir));
        joinconfig_store st = joinconfig_store_dir(dir);
        const char *init = "{\"measurements\":{\"4\":{\"expected\":\"" HEX32("a") "\",\"warnOnly\":false}}}";
        uint8_t salt[32];
        memset(salt, 0x5a, 32);
        assert_int_equal(st.save(st.userdata, JOINCONFIG_ATTESTATION_CONFIG, (const uint8_t *) init, strlen(init), JOINCONFIG_REVISION_ANY, NULL, &err), 0);
        e = (ct_error) CT_ERROR_INIT;
        joinconfig cfg;
        assert_true(joinconfig_load(&st, key, &cfg, &e) < 0);
        assert_string_equal(reason_of(&e), "io"); /* no salt yet */
        assert_int_equal(st.save(st.userdata, JOINCONFIG_MEASUREMENT_SALT, salt, 31, JOINCONFIG_REVISION_ANY, NULL, &err), 0);
        e = (ct_error) CT_ERROR_INIT;
        assert_true(joinconfig_load(&st, key, &cfg, &e) < 0);
        assert_string_equal(reason_of(&e), "salt-invalid");
        assert_int_equal(st.save(st.userdata, JOINCONFIG_MEASUREMENT_SALT, salt, 32, JOINCONFIG_REVISION_ANY, NULL, &err), 0);
        assert_int_equal(joinconfig_load(&st, key, &cfg, &err), 0);
        assert_int_equal(cfg.version, 0);
        assert_int_equal(joinconfig_apply_update(&st, key, &cfg, (const uint8_t *) doc, strlen(doc), NULL, &err), 0);
        assert_int_equal(cfg.version, 3);
        joinconfig again;
        assert_int_equal(joinconfig_load(&st, key, &again, &err), 0);
        assert_int_equal(again.version, 3);
        e = (ct_error) CT_ERROR_INIT;
        assert_true(joinconfig_load(&st, other, &again, &e) < 0); /* a stored update is verified on load */
        assert_string_equal(reason_of(&e), "signature-invalid");
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        free(doc);
}

static void test_uuid_token_framing(void **state) {
        char out[JOIN_UUID_LEN + 1];
        ct_error e = CT_ERROR_INIT;
        const char *u = "ABCDEF01-2345-6789-ABCD-EF0123456789";
        assert_int_equal(join_uuid_normalize(u, strlen(u), out, &e), 0);
        assert_string_equal(out, "abcdef01-2345-6789-abcd-ef0123456789");
        const char *bad[] = { "", "abcdef01-2345-6789-abcd-ef012345678", "abcdef01x2345-6789-abcd-ef0123456789",
                              "abcdef01-2345-6789-abcd-ef012345678 " };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                e = (ct_error) CT_ERROR_INIT;
                assert_true(join_uuid_normalize(bad[i], strlen(bad[i]), out, &e) < 0);
                assert_string_equal(reason_of(&e), "uuid-invalid");
        }
        char tok[24], tok2[24];
        assert_int_equal(join_bootstrap_token(tok), 0);
        assert_int_equal(join_bootstrap_token(tok2), 0);
        assert_int_equal(strlen(tok), 23);
        assert_int_equal(tok[6], '.');
        assert_string_not_equal(tok, tok2);
        const uint8_t *d;
        size_t dl;
        static const uint8_t ok[] = { 0x0a, 0x02, '{', '}' }, trailing[] = { 0x0a, 0x01, '{', '}' },
                             other[] = { 0x12, 0x01, 'x' }, empty[] = { 0x0a, 0x00 };
        assert_int_equal(join_update_request_parse(ok, sizeof ok, &d, &dl, &e), 0);
        assert_int_equal(dl, 2);
        assert_true(join_update_request_parse(trailing, sizeof trailing, &d, &dl, &e) < 0);
        assert_true(join_update_request_parse(other, sizeof other, &d, &dl, &e) < 0);
        assert_true(join_update_request_parse(empty, sizeof empty, &d, &dl, &e) < 0);
        /* an IssueRejoinTicketRequest with an unknown field, or a NUL inside the uuid */
        static const uint8_t unknown[] = { 0x0a, 0x01, 'a', 0x10, 0x01 };
        e = (ct_error) CT_ERROR_INIT;
        assert_true(join_rejoin_request_parse(unknown, sizeof unknown, out, &e) < 0);
        assert_string_equal(reason_of(&e), "request-malformed");
        uint8_t nul[38] = { 0x0a, 36 };
        memcpy(nul + 2, "abcdef01-2345-6789-abcd-ef0123456789", 36);
        nul[20] = 0;
        e = (ct_error) CT_ERROR_INIT;
        assert_true(join_rejoin_request_parse(nul, sizeof nul, out, &e) < 0);
        assert_string_equal(reason_of(&e), "request-malformed");
}

static void test_backoff(void **state) {
        joinclient_retry r = { .base_ms = 1000, .max_ms = 30000 };
        int64_t want[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
        for (unsigned a = 0; a < ELEMENTSOF(want); a++)
                for (int k = 0; k < 50; k++) {
                        int64_t d = joinclient_backoff_ms(&r, a);
                        assert_true(d <= want[a] && d >= want[a] * 8 / 10);
                }
        assert_true(joinclient_backoff_ms(&r, 4000000000u) <= 30000); /* no overflow */
        joinclient_retry fixed = { .base_ms = 30000, .max_ms = 30000 };
        assert_true(joinclient_backoff_ms(&fixed, 0) >= 24000 && joinclient_backoff_ms(&fixed, 9) <= 30000);
        assert_true(joinclient_backoff_ms(NULL, 0) <= 1000);
}

static int failures;
static atomic_bool stop_flag;
static void count_failure(void *userdata, const ct_error *err) {
        assert_string_equal(err->reason, "unreachable");
        if (++failures == 3)
                atomic_store(&stop_flag, true);
}

/* Retries until stopped; every round is reported with its reason; no endpoints is immediate. */
static void test_rejoin_loop(void **state) {
        const char *eps[] = { "127.0.0.1:1" };
        joinclient_options opt = { .handshake_timeout_ms = 2000, .call_timeout_ms = 2000 };
        joinclient_retry r = { .base_ms = 10, .max_ms = 40 };
        joinclient_rejoin_ticket t = { 0 };
        ct_error e = CT_ERROR_INIT;
        assert_int_equal(joinclient_rejoin_loop(eps, 1, &opt, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", &r, &stop_flag,
                                                count_failure, NULL, &t, &e),
                         -ECANCELED);
        assert_int_equal(failures, 3);
        assert_string_equal(e.reason, "stopped");
        e = (ct_error) CT_ERROR_INIT;
        assert_int_equal(joinclient_rejoin_loop(eps, 0, &opt, "x", &r, NULL, NULL, NULL, &t, &e), -ENOENT);
        assert_string_equal(e.reason, "no-endpoints");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_attestation_config),
                cmocka_unit_test(test_updates),
                cmocka_unit_test(test_uuid_token_framing),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_rejoin_loop),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
