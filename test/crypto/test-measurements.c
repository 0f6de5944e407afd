/* SPDX-License-Identifier: Apache-2.0 */
/* Measurement maps and release files from Constellation's tests; comparison verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "measurements/measurements.h"

static const char *datadir;

static uint8_t *load(const char *name, size_t *len) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", datadir, name);
        uint8_t *buf;
        assert_int_equal(read_full_file(path, 1 << 20, &buf, len), 0);
        return buf;
}

static void test_release_file(void **state) {
        size_t len;
        _cleanup_free_ uint8_t *buf = load("measurements.json", &len);
        measurements_release r;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(measurements_release_parse(buf, len, &r, &err), 0);
        assert_string_equal(r.version, "v1.0.0-test");
        assert_string_equal(r.ref, "-");
        assert_string_equal(r.stream, "stable");
        const measurements_entry *e = measurements_release_find(&r, "Unknown", "dummy");
        assert_non_null(e);
        assert_int_equal(e->m.n, 1);
        assert_int_equal(e->m.items[0].index, 0);
        assert_int_equal(e->m.items[0].len, 32);
        assert_false(e->m.items[0].warn_only);
        assert_null(measurements_release_find(&r, "QEMU", "qemu-vtpm"));
        measurements_release_done(&r);

        _cleanup_free_ uint8_t *gcp = load("measurements-gcp-sev-es.unsigned.json", &len);
        assert_int_equal(measurements_release_parse(gcp, len, &r, &err), 0);
        e = measurements_release_find(&r, "gcp", "gcp-sev-es");
        assert_non_null(e);
        bool some_warn = false;
        for (size_t i = 0; i < e->m.n; i++)
                some_warn = some_warn || e->m.items[i].warn_only;
        assert_true(some_warn);
        /* Round trip through our writer. */
        _cleanup_free_ char *js = measurements_release_to_json(&r);
        measurements_release r2;
        assert_int_equal(measurements_release_parse((const uint8_t *) js, strlen(js), &r2, NULL), 0);
        assert_int_equal(r2.n, r.n);
        assert_memory_equal(&r2.entries[0].m, &r.entries[0].m, sizeof(measurements));
        measurements_release_done(&r2);
        measurements_release_done(&r);

        /* not-json.txt is correctly signed but is not JSON: parsing must fail. */
        _cleanup_free_ uint8_t *nj = load("not-json.txt", &len);
        _cleanup_free_ char *err2 = NULL;
        assert_int_equal(measurements_release_parse(nj, len, &r, &err2), -EBADMSG);
        assert_non_null(strstr(err2, "not JSON"));
}

static void expect_map_error(const char *json, const char *reason) {
        measurements m;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(measurements_parse((const uint8_t *) json, strlen(json), &m, &err), -EBADMSG);
        if (!err || !strstr(err, reason))
                fail_msg("expected \"%s\", got \"%s\"", reason, err ?: "(null)");
}

#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"

static void test_map_forms_and_errors(void **state) {
        measurements m;
        const char *legacy = "{\"4\":\"" Z64 "\",\"11\":{\"expected\":\"" Z64 "\",\"warnOnly\":true}}";
        assert_int_equal(measurements_parse((const uint8_t *) legacy, strlen(legacy), &m, NULL), 0);
        assert_int_equal(m.n, 2);
        assert_false(measurements_get(&m, 4)->warn_only);
        assert_true(measurements_get(&m, 11)->warn_only);
        _cleanup_free_ char *out = measurements_to_json(&m, true);
        assert_non_null(strstr(out, "\"4\": {"));
        assert_true(strstr(out, "\"4\"") < strstr(out, "\"11\""));

        expect_map_error("{\"32\":\"" Z64 "\"}", "\"32\": not a PCR index");
        expect_map_error("{\"04\":\"" Z64 "\"}", "\"04\": not a PCR index");
        expect_map_error("{\"4\":\"00\"}", "\"4\".expected: must be 64 or 96 hex digits");
        expect_map_error("{\"4\":{\"warnOnly\":true}}", "\"4\".expected: missing or not a string");
        expect_map_error("{\"4\":{\"expected\":\"" Z64 "\",\"warnOnly\":\"yes\"}}", "\"4\".warnOnly: not a boolean");
        expect_map_error("{\"4\":{\"expected\":\"" Z64 "\",\"extra\":1}}", "unknown field \"extra\"");
        expect_map_error("{\"4\":\"" Z64 "\",\"5\":\"" Z64 Z64 "\"}", "");
        expect_map_error("[1]", "must be a JSON object");
}

static void test_compare(void **state) {
        measurements m = { 0 };
        uint8_t a[32], b[32];
        memset(a, 0xaa, 32);
        memset(b, 0xbb, 32);
        assert_int_equal(measurements_set(&m, 4, a, 32, false), 0);
        assert_int_equal(measurements_set(&m, 9, a, 32, true), 0);
        assert_int_equal(measurements_set(&m, 11, a, 32, false), 0);
        pcr_values v = { .len = 32 };
        for (int i = 0; i < 24; i++) {
                v.present[i] = true;
                memcpy(v.value[i], a, 32);
        }
        pcr_result res[32];
        size_t n;
        assert_int_equal(measurements_compare(&m, &v, res, &n, NULL), 0);
        assert_int_equal(n, 3);

        /* Warn-only mismatch: still OK, verdict says warn. */
        memcpy(v.value[9], b, 32);
        assert_int_equal(measurements_compare(&m, &v, res, &n, NULL), 0);
        assert_int_equal(res[1].verdict, PCR_MISMATCH_WARN);

        /* Enforced mismatch: error naming index, expected and actual. */
        memcpy(v.value[11], b, 32);
        _cleanup_free_ char *msg = NULL;
        assert_int_equal(measurements_compare(&m, &v, res, &n, &msg), -EBADMSG);
        assert_int_equal(res[2].verdict, PCR_MISMATCH_ENFORCED);
        assert_string_equal(msg, "PCR 11: expected aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, got "
                                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");

        /* Missing enforced PCR: error. Wrong bank length: counts as not provided. */
        memcpy(v.value[11], a, 32);
        v.present[4] = false;
        _cleanup_free_ char *msg2 = NULL;
        assert_int_equal(measurements_compare(&m, &v, res, &n, &msg2), -EBADMSG);
        assert_int_equal(res[0].verdict, PCR_NOT_PROVIDED);
        assert_non_null(strstr(msg2, "PCR 4: expected"));
        v.present[4] = true;
        v.len = 48;
        assert_int_equal(measurements_compare(&m, &v, res, &n, NULL), -EBADMSG);
}

int main(int argc, char **argv) {
        datadir = argc > 1 ? argv[1] : "data";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_release_file),
                cmocka_unit_test(test_map_forms_and_errors),
                cmocka_unit_test(test_compare),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
