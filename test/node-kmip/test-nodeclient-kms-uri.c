/* SPDX-License-Identifier: Apache-2.0 */
/* lib/nodeclient's Init from a ready kms:// URI (nodeclient_init_params.kms_uri): exactly one of it
 * and master_secret+salt, its shape checked before anything is dialled, the reason "request" for
 * every refusal and no refusal quoting the URI. A well-formed URI gets past the request checks to
 * the dial (127.0.0.1:1, where nothing listens: "unreachable", nothing sent). The Init itself is
 * test-node-kmip's (constellation-attest init --kms-uri-file against the host bootstrapper). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "nodeclient/nodeclient.h"

static const char uri_text[] = "kms://kmip?endpoint=10.0.2.100:5696&kek=1&client-key=base64:U0VDUkVU&wrapped=AQ";

static secret_t *s_(const char *text, size_t len) {
        secret_t *s = secret_new_copy(text, len);
        assert_non_null(s);
        return s;
}

/* nodeclient_init with the given KMS sources; the rest valid. Returns r, the error in *err. */
static int init_with(const secret_t *master, const secret_t *salt, const secret_t *uri, nodeclient_init_result *res,
                     ct_error *err) {
        static const uint8_t msalt[32] = { 1 };
        _cleanup_secret_ secret_t *ms = s_((const char *) msalt, sizeof msalt);
        _cleanup_secret_ secret_t *is = s_("init", 4);
        static const attdoc_measurement m = { .index = 0, .expected_len = 32 };
        static atls_qemu_vtpm_policy policy = { .measurements = &m, .n_measurements = 1 };
        atls_validator v = atls_qemu_vtpm_validator(&policy);
        nodeclient_init_params p = { .master_secret = master, .salt = salt, .kms_uri = uri, .measurement_salt = ms,
                                     .init_secret = is, .handshake_timeout_ms = 5000, .call_timeout_ms = 5000 };
        *res = (nodeclient_init_result){ 0 };
        return nodeclient_init("127.0.0.1:1", &v, &p, res, err);
}

static void expect_request_refusal(const secret_t *master, const secret_t *salt, const secret_t *uri, const char *want) {
        ct_error err = CT_ERROR_INIT;
        nodeclient_init_result res;
        int r = init_with(master, salt, uri, &res, &err);
        assert_int_equal(r, -EINVAL);
        assert_string_equal(err.reason, NODECLIENT_REASON_REQUEST);
        if (!strstr(err.detail, want))
                fail_msg("detail \"%s\" lacks \"%s\"", err.detail, want);
        assert_null(strstr(err.detail, "U0VDUkVU"));
        assert_false(res.connected);
        nodeclient_init_result_done(&res);
}

static void test_exactly_one_source(void **state) {
        (void) state;
        uint8_t b[32] = { 7 };
        _cleanup_secret_ secret_t *master = s_((const char *) b, 32), *salt = s_((const char *) b, 32);
        _cleanup_secret_ secret_t *uri = s_(uri_text, strlen(uri_text));
        expect_request_refusal(master, salt, uri, "give one of the two");
        expect_request_refusal(master, NULL, uri, "give one of the two");
        expect_request_refusal(NULL, salt, uri, "give one of the two");
        expect_request_refusal(NULL, NULL, NULL, "master secret: 0 bytes");
        expect_request_refusal(master, NULL, NULL, "salt: 0 bytes");
}

static void test_uri_shape(void **state) {
        (void) state;
        _cleanup_secret_ secret_t *http = s_("https://kmip.test/?kek=1", 24);
        expect_request_refusal(NULL, NULL, http, "does not start with kms://");
        _cleanup_secret_ secret_t *empty = s_("", 0);
        expect_request_refusal(NULL, NULL, empty, "does not start with kms://");
        char nul[sizeof uri_text];
        memcpy(nul, uri_text, sizeof uri_text);
        nul[20] = 0;
        _cleanup_secret_ secret_t *with_nul = s_(nul, sizeof uri_text - 1);
        expect_request_refusal(NULL, NULL, with_nul, "NUL");
        char big[NODECLIENT_MAX_KMS_URI + 1];
        memset(big, 'a', sizeof big);
        memcpy(big, "kms://kmip?", 11);
        _cleanup_secret_ secret_t *too_long = s_(big, sizeof big);
        expect_request_refusal(NULL, NULL, too_long, "4097 bytes (at most 4096)");
}

static void test_uri_reaches_the_dial(void **state) {
        (void) state;
        _cleanup_secret_ secret_t *uri = s_(uri_text, strlen(uri_text));
        ct_error err = CT_ERROR_INIT;
        nodeclient_init_result res;
        int r = init_with(NULL, NULL, uri, &res, &err);
        assert_int_equal(r, -ECONNREFUSED);
        assert_string_equal(err.reason, NODECLIENT_REASON_UNREACHABLE);
        assert_false(res.connected);
        assert_null(strstr(err.detail, "U0VDUkVU"));
        nodeclient_init_result_done(&res);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exactly_one_source),
                cmocka_unit_test(test_uri_shape),
                cmocka_unit_test(test_uri_reaches_the_dial),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
