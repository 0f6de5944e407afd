/* SPDX-License-Identifier: Apache-2.0 */
/* Step A of Init (bootstrapper_check_request, no I/O) on the fuzz seeds of fuzz/node-init: the good
 * requests pass every check (so the fuzz target reaches the derivations), each bad one is refused
 * with its reason; a worker is refused before the secret is looked at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "bootstrapper.h"

static const char *corpus;
static const char *const roots[] = { "/run/state", "/opt", NULL };
static bootstrapper_config cfg = {
        .component_roots = roots,
        .md = { .name = (char *) "cp-0", .role = METADATA_ROLE_CONTROL_PLANE, .vpc_ip = (char *) "10.0.0.2",
                .init_secret_hash = (char *) "$2a$04$abcdefghijklmnopqrstuuknLfvexuv1N5kbFddtXm6vCStFg3f6K" },
};

static void check(const char *seed, const char *layer, const char *reason) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", corpus, seed);
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(path, 1 << 20, &buf, &len), 0);
        ct_error err = CT_ERROR_INIT;
        char msg[700];
        int r = bootstrapper_check_request(&cfg, buf, len, &err);
        if (!reason) {
                if (r < 0)
                        fail_msg("%s: %s", seed, ct_error_format(&err, msg, sizeof msg));
                return;
        }
        if (r >= 0 || !streq(err.layer, layer) || !streq(err.reason, reason))
                fail_msg("%s: expected %s: %s, got %d %s", seed, layer, reason, r, ct_error_format(&err, msg, sizeof msg));
}

static void test_seeds(void **state) {
        (void) state;
        check("good-empty", NULL, NULL);
        check("good-components", NULL, NULL);
        check("wrong-secret", "init", "wrong-init-secret");
        check("short-salt", "init", "measurement-salt-length");
        check("bad-kms", "kms", "parameter-invalid");
        check("bad-path", "components", "path-outside-root");
        check("bad-san", "init", "bad-san");
        check("truncated", "init", "request-malformed");
}

static void test_worker_refused(void **state) {
        (void) state;
        bootstrapper_config w = cfg;
        w.md.role = METADATA_ROLE_WORKER;
        w.md.init_secret_hash = NULL;
        char path[1024];
        snprintf(path, sizeof path, "%s/good-empty", corpus);
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(path, 1 << 20, &buf, &len), 0);
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(bootstrapper_check_request(&w, buf, len, &err), -EBUSY);
        assert_string_equal(err.reason, "not-control-plane");
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
                return 2;
        }
        corpus = argv[1];
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_seeds), cmocka_unit_test(test_worker_refused) };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
