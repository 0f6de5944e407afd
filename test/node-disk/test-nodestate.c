/* SPDX-License-Identifier: Apache-2.0 */
/* node_state.json: Constellation's exact bytes round-trip, write mode and atomicity, and every
 * refusal with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "nodestate/nodestate.h"
#include "node-disk-util.h"

/* 32 bytes 00..1f in padded standard base64. */
#define SALT_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static void test_parse_constellation(void **state) {
        const char *doc = "{\"Role\":\"ControlPlane\",\"MeasurementSalt\":\"" SALT_B64 "\"}";
        nodestate s;
        assert_int_equal(nodestate_parse(doc, strlen(doc), &s, NULL), 0);
        assert_int_equal(s.role, NODESTATE_ROLE_CONTROL_PLANE);
        for (int i = 0; i < 32; i++)
                assert_int_equal(s.measurement_salt[i], i);
        _cleanup_free_ char *out = nodestate_format(&s);
        assert_string_equal(out, doc);

        const char *w = "{\"MeasurementSalt\":\"" SALT_B64 "\", \"Role\":\"Worker\"}\n";
        assert_int_equal(nodestate_parse(w, strlen(w), &s, NULL), 0);
        assert_int_equal(s.role, NODESTATE_ROLE_WORKER);
}

static void test_round_trip_file(void **state) {
        _cleanup_free_ char *dir = nd_tmpdir();
        char path[256];
        snprintf(path, sizeof path, "%s/state/constellation/node_state.json", dir);
        nodestate s = { .role = NODESTATE_ROLE_WORKER };
        for (int i = 0; i < 32; i++)
                s.measurement_salt[i] = (uint8_t) (0xa0 + i);
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(nodestate_write(path, &s, &err), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        nodestate t;
        assert_int_equal(nodestate_read(path, &t, &err), 0);
        assert_int_equal(t.role, s.role);
        assert_memory_equal(t.measurement_salt, s.measurement_salt, 32);
        /* Overwrite: replaced atomically, no temporary file left behind. */
        s.role = NODESTATE_ROLE_CONTROL_PLANE;
        assert_int_equal(nodestate_write(path, &s, &err), 0);
        assert_int_equal(nodestate_read(path, &t, &err), 0);
        assert_int_equal(t.role, NODESTATE_ROLE_CONTROL_PLANE);
        char *ls = NULL;
        char sub[300];
        snprintf(sub, sizeof sub, "%s/state/constellation", dir);
        assert_int_equal(nd_run(&ls, "ls -A '%s'", sub), 0);
        assert_string_equal(ls, "node_state.json\n");
        free(ls);
        /* Python's json reads what we wrote as Constellation's Go struct would. */
        char *py = NULL;
        assert_int_equal(nd_run(&py, "/usr/bin/python3 -c 'import json,base64,sys; d=json.load(open(sys.argv[1])); "
                                     "print(d[\"Role\"], base64.b64decode(d[\"MeasurementSalt\"]).hex())' '%s'",
                                path),
                         0);
        assert_string_equal(py, "ControlPlane a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n");
        free(py);

        /* Missing and oversized files. */
        snprintf(path, sizeof path, "%s/none.json", dir);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(nodestate_read(path, &t, &err), -ENOENT);
        assert_string_equal(err.reason, "missing");
        snprintf(path, sizeof path, "%s/big.json", dir);
        _cleanup_free_ char *big = malloc(NODESTATE_MAX_SIZE + 10);
        memset(big, ' ', NODESTATE_MAX_SIZE + 10);
        assert_int_equal(write_file_atomic(path, big, NODESTATE_MAX_SIZE + 10, 0600), 0);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(nodestate_read(path, &t, &err), -EBADMSG);
        assert_string_equal(err.reason, "too-large");
        nd_rmrf(dir);
}

static void expect_reason(const char *doc, const char *reason) {
        ct_error err = CT_ERROR_INIT;
        nodestate s;
        memset(&s, 0x5a, sizeof s);
        nodestate before = s;
        int r = nodestate_parse(doc, strlen(doc), &s, &err);
        if (r != -EBADMSG)
                fail_msg("accepted or wrong code %d: %s", r, doc);
        if (!streq(err.reason, reason))
                fail_msg("%s: reason %s, want %s", doc, err.reason, reason);
        assert_string_equal(err.layer, "nodestate");
        assert_memory_equal(&s, &before, sizeof s); /* ret untouched on failure */
}

static void test_refusals(void **state) {
        expect_reason("", "json-invalid");
        expect_reason("null", "json-invalid");
        expect_reason("[]", "json-invalid");
        expect_reason("{\"Role\":\"Worker\"", "json-invalid");
        expect_reason("{\"Role\":\"Worker\"}", "missing-key");
        expect_reason("{\"MeasurementSalt\":\"" SALT_B64 "\"}", "missing-key");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"" SALT_B64 "\",\"Extra\":1}", "unknown-key");
        expect_reason("{\"role\":\"Worker\",\"MeasurementSalt\":\"" SALT_B64 "\"}", "unknown-key");
        expect_reason("{\"Role\":\"Worker\",\"Role\":\"ControlPlane\",\"MeasurementSalt\":\"" SALT_B64 "\"}",
                      "json-invalid");
        expect_reason("{\"Role\":\"Admin\",\"MeasurementSalt\":\"" SALT_B64 "\"}", "role-invalid");
        expect_reason("{\"Role\":\"worker\",\"MeasurementSalt\":\"" SALT_B64 "\"}", "role-invalid");
        expect_reason("{\"Role\":\"Unknown\",\"MeasurementSalt\":\"" SALT_B64 "\"}", "role-invalid");
        expect_reason("{\"Role\":1,\"MeasurementSalt\":\"" SALT_B64 "\"}", "role-invalid");
        expect_reason("{\"Role\":\"Worker\\u0000\",\"MeasurementSalt\":\"" SALT_B64 "\"}", "json-invalid");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":null}", "salt-invalid");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":[0,1]}", "salt-invalid");
        /* base64url, unpadded, whitespace: not what Go writes. */
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
                      "salt-invalid");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"-_-_AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
                      "salt-invalid");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"AAEC AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}",
                      "salt-invalid");
        /* Valid base64, wrong length: 31, 33, 0 bytes. */
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\"}",
                      "salt-length");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\"}",
                      "salt-length");
        expect_reason("{\"Role\":\"Worker\",\"MeasurementSalt\":\"\"}", "salt-length");

        ct_error err = CT_ERROR_INIT;
        nodestate s;
        assert_int_equal(nodestate_parse("{}\0", 3, &s, &err), -EBADMSG);
        assert_string_equal(err.reason, "json-invalid");
        char *big = malloc(NODESTATE_MAX_SIZE + 1);
        memset(big, ' ', NODESTATE_MAX_SIZE + 1);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(nodestate_parse(big, NODESTATE_MAX_SIZE + 1, &s, &err), -EBADMSG);
        assert_string_equal(err.reason, "too-large");
        free(big);
        nodestate bad = { .role = (nodestate_role) 7 };
        assert_null(nodestate_format(&bad));
}

int main(void) {
        nd_require_tool("/usr/bin/python3");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_constellation),
                cmocka_unit_test(test_round_trip_file),
                cmocka_unit_test(test_refusals),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
