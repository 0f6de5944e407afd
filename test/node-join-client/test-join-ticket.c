/* SPDX-License-Identifier: Apache-2.0 */
/* The joiner's check of a control-plane ticket's etcd/initial-cluster (bootstrapper_check_initial_cluster):
 * the join service is not authenticated and the value goes into etcd.env, so anything but
 * "name=https://ip:port,..." with this node's own entry is refused before the node is locked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "join.h"

static const bootstrapper_config cfg = { .md = { .name = "control-plane-1", .vpc_ip = "10.42.1.101" } };
static const bootstrapper_config cfg6 = { .md = { .name = "cp-6", .vpc_ip = "fd00::6" } };
static const bootstrapper_etcd_options opt = { .peer_port = 2380 };

static int check(const bootstrapper_config *c, const char *v) {
        ct_error err = CT_ERROR_INIT;
        int r = bootstrapper_check_initial_cluster(c, &opt, (const uint8_t *) v, strlen(v), &err);
        if (r < 0) {
                assert_string_equal(err.layer, "join");
                assert_string_equal(err.reason, "ticket-invalid");
        }
        return r;
}

static void test_good(void **state) {
        (void) state;
        assert_int_equal(check(&cfg, "control-plane-1=https://10.42.1.101:2380"), 0);
        assert_int_equal(check(&cfg, "control-plane-0=https://10.42.1.100:2380,control-plane-1=https://10.42.1.101:2380"),
                         0);
        assert_int_equal(check(&cfg6, "cp-0=https://[fd00::5]:2380,cp-6=https://[fd00::6]:2380"), 0);
}

static void test_refused(void **state) {
        (void) state;
        /* this node's own entry missing, or at another URL / name */
        assert_true(check(&cfg, "control-plane-0=https://10.42.1.100:2380") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.102:2380") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2381") < 0);
        assert_true(check(&cfg, "control-plane-2=https://10.42.1.101:2380") < 0);
        /* injection into etcd.env */
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380\nETCD_DATA_DIR=/") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380,x=https://10.0.0.1:1\nA=b") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380 ") < 0);
        /* shapes */
        assert_true(check(&cfg, "") < 0);
        assert_true(check(&cfg, ",") < 0);
        assert_true(check(&cfg, "control-plane-1=http://10.42.1.101:2380") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380,evil=https://etcd.example.com:2380") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380,Bad_Name=https://10.0.0.1:2380") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380,noequals") < 0);
        assert_true(check(&cfg, "control-plane-1=https://10.42.1.101:2380,a=b=https://10.0.0.1:2380") < 0);
        ct_error err = CT_ERROR_INIT;
        assert_true(bootstrapper_check_initial_cluster(&cfg, &opt, (const uint8_t *) "a\0b", 3, &err) < 0);
        /* more than 64 members */
        char big[8192] = "control-plane-1=https://10.42.1.101:2380";
        for (int i = 0; i < 64; i++) {
                char e[64];
                snprintf(e, sizeof e, ",n%d=https://10.0.0.%d:2380", i, i + 1);
                strcat(big, e);
        }
        assert_true(check(&cfg, big) < 0);
}

int main(void) {
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_good), cmocka_unit_test(test_refused) };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
