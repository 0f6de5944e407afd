/* SPDX-License-Identifier: Apache-2.0 */
/* lib/service over aTLS with the real qemu-vtpm issuer: a service with info.atls attests from a
 * private swtpm given by --tpm; a client with the qemu-vtpm validator (PCR 0 enforced, as swtpm
 * has it) gets through and its call is answered; a client expecting another PCR 0 is refused with
 * evidence-measurements; a service whose TPM is unreachable refuses the handshake (the client sees
 * a failed handshake, the service logs the reason). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "atls/qemu-vtpm.h"
#include "service/service.h"
#include "swtpm-util.h"

static swtpm tpm;

static const service_info info = {
        .name = "test-service-vtpm",
        .default_listen = "127.0.0.1:0",
        .atls = true,
};

static void echo(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        rpc_call_reply(call, req, len);
}

static void *run_thread(void *p) {
        return (void *) (intptr_t) service_run(p);
}

/* The policy, validator and config must outlive the connection (atls.h). */
struct client {
        attdoc_measurement m;
        atls_qemu_vtpm_policy policy;
        atls_validator val;
        atls_config cfg;
};

static int dial(service *s, struct client *c, uint8_t pcr0_byte, atls_conn **ret, atls_error *err) {
        c->m = (attdoc_measurement){ .index = 0, .expected_len = 32 };
        memset(c->m.expected, pcr0_byte, 32);
        c->policy = (atls_qemu_vtpm_policy){ .measurements = &c->m, .n_measurements = 1 };
        c->val = atls_qemu_vtpm_validator(&c->policy);
        c->cfg = (atls_config){ .validators = &c->val, .n_validators = 1, .handshake_timeout_ms = 60000 };
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", service_port(s));
        return atls_dial(target, &c->cfg, NULL, ret, err);
}

static void test_atls_qemu_vtpm(void **state) {
        char *argv[] = { (char *) "test-service-vtpm", (char *) "--tpm", tpm.tcti, NULL };
        _cleanup_(service_freep) service *s = NULL;
        assert_int_equal(service_new(&info, 3, argv, &s), 0);
        assert_string_equal(service_tpm(s), tpm.tcti);
        assert_int_equal(service_register(s, "/test.API/Echo", echo, NULL), 0);
        assert_int_equal(service_start(s), 0);
        pthread_t t;
        pthread_create(&t, NULL, run_thread, s);

        static struct client good, wrong;
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        int r = dial(s, &good, 0x00, &conn, &err);
        if (r < 0)
                fail_msg("dial: %s: %s", atls_reason_to_string(err.reason), err.detail);
        _cleanup_free_ uint8_t *resp = NULL;
        size_t len = 0;
        rpc_status st = { 0 };
        assert_int_equal(rpc_unary(atls_conn_channel(conn), "/test.API/Echo", "attested", 8, 60000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_OK);
        assert_memory_equal(resp, "attested", 8);
        rpc_status_done(&st);

        _cleanup_(atls_conn_freep) atls_conn *bad = NULL;
        atls_error berr = { 0 };
        assert_true(dial(s, &wrong, 0xab, &bad, &berr) < 0);
        assert_int_equal(berr.reason, ATLS_REASON_EVIDENCE_MEASUREMENTS);

        service_request_stop(s);
        void *ret;
        pthread_join(t, &ret);
        assert_int_equal((int) (intptr_t) ret, 0);
}

static void test_atls_tpm_unreachable(void **state) {
        char *argv[] = { (char *) "test-service-vtpm", (char *) "--tpm", (char *) "swtpm:host=127.0.0.1,port=1", NULL };
        _cleanup_(service_freep) service *s = NULL;
        assert_int_equal(service_new(&info, 3, argv, &s), 0);
        assert_int_equal(service_start(s), 0);
        pthread_t t;
        pthread_create(&t, NULL, run_thread, s);
        static struct client c;
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error err = { 0 };
        assert_true(dial(s, &c, 0x00, &conn, &err) < 0);
        service_request_stop(s);
        void *ret;
        pthread_join(t, &ret);
}

static int setup(void **state) {
        return swtpm_start(&tpm) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        swtpm_stop(&tpm);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_atls_qemu_vtpm),
                cmocka_unit_test(test_atls_tpm_unreachable),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
