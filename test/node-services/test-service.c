/* SPDX-License-Identifier: Apache-2.0 */
/* lib/service: arguments (common and program options, usage errors), the ct_error -> gRPC status
 * map, sd_notify's datagram (path and abstract socket), serving plainly and over aTLS (dummy
 * issuer; the qemu-vtpm issuer is covered with swtpm in test-node-verification's sibling tests),
 * service_call_fail's status and message, and service_request_stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "service/service.h"

static const char *arg_file;
static bool arg_flag;
static const service_option options[] = {
        { "file", "FILE", "a file", &arg_file, NULL, true },
        { "flag", NULL, "a flag", NULL, &arg_flag, false },
};

static service_info plain_info = {
        .name = "test-service",
        .summary = "test",
        .default_listen = "127.0.0.1:0",
        .options = options,
        .n_options = ELEMENTSOF(options),
};

static int new_service(const service_info *info, service **ret, ...) {
        char *argv[16] = { (char *) "test-service" };
        int argc = 1;
        va_list ap;
        va_start(ap, ret);
        const char *a;
        while ((a = va_arg(ap, const char *)) && argc < 15)
                argv[argc++] = (char *) a;
        va_end(ap);
        arg_file = NULL;
        arg_flag = false;
        return service_new(info, argc, argv, ret);
}

static void test_arguments(void **state) {
        _cleanup_(service_freep) service *s = NULL;
        assert_int_equal(new_service(&plain_info, &s, "--file", "x", "--flag", "--listen", "127.0.0.1:0", NULL), 0);
        assert_string_equal(arg_file, "x");
        assert_true(arg_flag);
        assert_string_equal(service_listen_address(s), "127.0.0.1:0");
        assert_null(service_tpm(s)); /* no --tpm for a program without TPM */
        service_free(TAKE_PTR(s));

        assert_int_equal(new_service(&plain_info, &s, NULL), -EINVAL);          /* --file required */
        assert_int_equal(new_service(&plain_info, &s, "--file", NULL), -EINVAL); /* value missing */
        assert_int_equal(new_service(&plain_info, &s, "--file", "x", "--tpm", "t", NULL), -EINVAL);
        assert_int_equal(new_service(&plain_info, &s, "--file", "x", "extra", NULL), -EINVAL);
        assert_int_equal(new_service(&plain_info, &s, "--file", "x", "--log-level", "loud", NULL), -EINVAL);
        assert_int_equal(new_service(&plain_info, &s, "--help", NULL), -ECANCELED);
        assert_null(s);
        assert_int_equal(service_exit_code(-EINVAL), SERVICE_EXIT_USAGE);
        assert_int_equal(service_exit_code(-ECANCELED), SERVICE_EXIT_OK);
        assert_int_equal(service_exit_code(-EIO), SERVICE_EXIT_FAILURE);

        service_info tpm_info = plain_info;
        tpm_info.tpm = true;
        assert_int_equal(new_service(&tpm_info, &s, "--file", "x", NULL), 0);
        assert_string_equal(service_tpm(s), "device:/dev/tpmrm0");
        service_free(TAKE_PTR(s));
        assert_int_equal(new_service(&tpm_info, &s, "--file", "x", "--tpm", "swtpm:port=1", NULL), 0);
        assert_string_equal(service_tpm(s), "swtpm:port=1");
        service_free(TAKE_PTR(s));
        assert_int_equal(new_service(&tpm_info, &s, "--file", "x", "--tpm", "", NULL), -EINVAL);
}

static void test_status_map(void **state) {
        struct {
                int code;
                grpc_status_code want;
        } m[] = {
                { -EINVAL, GRPC_STATUS_INVALID_ARGUMENT },   { -EBADMSG, GRPC_STATUS_INVALID_ARGUMENT },
                { -EPERM, GRPC_STATUS_PERMISSION_DENIED },   { -EACCES, GRPC_STATUS_PERMISSION_DENIED },
                { -ENOENT, GRPC_STATUS_NOT_FOUND },          { -EEXIST, GRPC_STATUS_ALREADY_EXISTS },
                { -EBUSY, GRPC_STATUS_FAILED_PRECONDITION }, { -ETIMEDOUT, GRPC_STATUS_DEADLINE_EXCEEDED },
                { -ECONNREFUSED, GRPC_STATUS_UNAVAILABLE },  { -ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED },
                { -EOPNOTSUPP, GRPC_STATUS_UNIMPLEMENTED },  { -ECANCELED, GRPC_STATUS_CANCELLED },
                { -EIO, GRPC_STATUS_INTERNAL },
        };
        for (size_t i = 0; i < ELEMENTSOF(m); i++) {
                ct_error e = CT_ERROR_INIT;
                ct_error_set(&e, m[i].code, "x", "y", NULL);
                assert_int_equal(service_status_from_error(&e), m[i].want);
        }
        ct_error unset = CT_ERROR_INIT;
        assert_int_equal(service_status_from_error(&unset), GRPC_STATUS_OK);
}

static int notify_socket(const char *path, bool abstract) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        memcpy(sa.sun_path, path, len);
        if (abstract)
                sa.sun_path[0] = '\0';
        assert_int_equal(bind(fd, (struct sockaddr *) &sa,
                              (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (abstract ? 0 : 1))),
                         0);
        struct timeval tv = { .tv_sec = 30 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
}

static void test_notify(void **state) {
        unsetenv("NOTIFY_SOCKET");
        assert_int_equal(service_notify("READY=1"), 0);
        char dir[] = "/tmp/ct-notify-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[64];
        snprintf(path, sizeof path, "%s/notify", dir);
        int fd = notify_socket(path, false);
        setenv("NOTIFY_SOCKET", path, 1);
        assert_int_equal(service_notify("READY=1\nSTATUS=x"), 1);
        char buf[128];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        assert_int_equal(n, 16);
        buf[n] = '\0';
        assert_string_equal(buf, "READY=1\nSTATUS=x");
        close(fd);
        unlink(path);
        rmdir(dir);

        char abstract[64];
        snprintf(abstract, sizeof abstract, "@ct-test-notify-%d", getpid());
        fd = notify_socket(abstract, true);
        setenv("NOTIFY_SOCKET", abstract, 1);
        assert_int_equal(service_notify("STOPPING=1"), 1);
        n = recv(fd, buf, sizeof buf - 1, 0);
        assert_int_equal(n, 10);
        close(fd);

        setenv("NOTIFY_SOCKET", "relative/path", 1);
        assert_int_equal(service_notify("READY=1"), -EINVAL);
        unsetenv("NOTIFY_SOCKET");
}

static void echo(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        if (len > 0 && req[0] == 'E') {
                ct_error e = CT_ERROR_INIT;
                ct_error_set(&e, -EPERM, "test", "wrong-secret", "the %s did not match", "init secret");
                service_call_fail(call, &e);
                return;
        }
        if (len > 0 && req[0] == 'S') {
                rpc_call_reply(call, "bye", 3);
                service_request_stop(userdata);
                return;
        }
        rpc_call_reply(call, req, len);
}

static void *run_thread(void *p) {
        return (void *) (intptr_t) service_run(p);
}

static void exercise(service *s, rpc_channel *ch) {
        _cleanup_free_ uint8_t *resp = NULL;
        size_t len = 0;
        rpc_status st = { 0 };
        assert_int_equal(rpc_unary(ch, "/test.API/Echo", "hello", 5, 30000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_OK);
        assert_memory_equal(resp, "hello", 5);
        rpc_status_done(&st);
        free(TAKE_PTR(resp));
        assert_int_equal(rpc_unary(ch, "/test.API/Echo", "E", 1, 30000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_PERMISSION_DENIED);
        assert_string_equal(st.message, "test: wrong-secret: the init secret did not match");
        rpc_status_done(&st);
        assert_int_equal(rpc_unary(ch, "/test.API/Echo", "S", 1, 30000, &resp, &len, &st), 0);
        assert_int_equal(st.code, GRPC_STATUS_OK);
        rpc_status_done(&st);
}

static void test_serve_plain(void **state) {
        _cleanup_(service_freep) service *s = NULL;
        assert_int_equal(new_service(&plain_info, &s, "--file", "x", NULL), 0);
        assert_int_equal(service_register(s, "/test.API/Echo", echo, s), 0);
        assert_int_equal(service_start(s), 0);
        assert_true(service_port(s) > 0);
        assert_int_equal(service_register(s, "/test.API/Late", echo, s), -EBUSY);
        pthread_t t;
        pthread_create(&t, NULL, run_thread, s);
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", service_port(s));
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(target, NULL, NULL, &ch), 0);
        exercise(s, ch);
        void *ret;
        pthread_join(t, &ret);
        assert_int_equal((int) (intptr_t) ret, 0);
}

static void test_serve_atls(void **state) {
        static atls_issuer issuer;
        issuer = atls_dummy_issuer();
        service_info info = plain_info;
        info.atls = true;
        info.issuer = &issuer;
        _cleanup_(service_freep) service *s = NULL;
        assert_int_equal(new_service(&info, &s, "--file", "x", NULL), 0);
        assert_int_equal(service_register(s, "/test.API/Echo", echo, s), 0);
        assert_int_equal(service_start(s), 0);
        pthread_t t;
        pthread_create(&t, NULL, run_thread, s);
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", service_port(s));
        atls_validator val = atls_dummy_validator();
        atls_config cfg = { .validators = &val, .n_validators = 1 };
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        atls_error aerr = { 0 };
        assert_int_equal(atls_dial(target, &cfg, NULL, &conn, &aerr), 0);
        exercise(s, atls_conn_channel(conn));
        void *ret;
        pthread_join(t, &ret);
        assert_int_equal((int) (intptr_t) ret, 0);
}

static void test_signal_stops(void **state) {
        _cleanup_(service_freep) service *s = NULL;
        assert_int_equal(new_service(&plain_info, &s, "--file", "x", NULL), 0);
        pthread_t t;
        pthread_create(&t, NULL, run_thread, s);
        /* SIGTERM is blocked in every thread; the signalfd in service_run takes it. */
        usleep(100 * 1000);
        kill(getpid(), SIGTERM);
        void *ret;
        pthread_join(t, &ret);
        assert_int_equal((int) (intptr_t) ret, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_arguments),    cmocka_unit_test(test_status_map),
                cmocka_unit_test(test_notify),       cmocka_unit_test(test_serve_plain),
                cmocka_unit_test(test_serve_atls),   cmocka_unit_test(test_signal_stops),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
