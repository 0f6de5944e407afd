/* SPDX-License-Identifier: Apache-2.0 */
/* lib/http: file:// read without libcurl (and libcurl not even loaded), and redirects against real
 * loopback servers (redirect-server.py: HTTPS with a certificate from a CA made here, and plain
 * HTTP): https -> https is followed, https -> http is refused with the reason, http -> https too
 * (no scheme change either way). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "basic/secret.h"
#include "http/http.h"
#include "x509/x509.h"

static const char *server_script;
static char dir[] = "/tmp/ct-test-http-XXXXXX";
static char ca_file[128];
static pid_t server_pid = -1;
static int server_out = -1;
static int https_port, http_port;

static bool maps_have_libcurl(void) {
        _cleanup_free_ uint8_t *maps = NULL;
        size_t len;
        assert_int_equal(read_full_file("/proc/self/maps", 64u << 20, &maps, &len), 0);
        return strstr((char *) maps, "libcurl") != NULL;
}

static void expect_error(const char *url, const http_options *o, int want, const char *reason) {
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_free_ char *err = NULL;
        size_t len = 0;
        int r = http_get(url, o, &body, &len, &err);
        if (r != want || !err || !strstr(err, reason))
                fail_msg("%s: got %d (%s), want %d with \"%s\"", url, r, err ?: "no message", want, reason);
        assert_null(body);
}

static void expect_body(const char *url, const http_options *o, const char *want) {
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_free_ char *err = NULL;
        size_t len = 0;
        int r = http_get(url, o, &body, &len, &err);
        if (r != 0)
                fail_msg("%s: %d (%s)", url, r, err ?: "no message");
        assert_int_equal(len, strlen(want));
        assert_memory_equal(body, want, len);
        assert_int_equal(body[len], 0);
}

/* Runs first: nothing in this process has loaded libcurl yet. */
static void test_file(void **state) {
        char path[256], url[300];
        snprintf(path, sizeof(path), "%s/a b.json", dir);
        assert_int_equal(write_file_atomic(path, "{\"x\":1}", 7, 0600), 0);

        snprintf(url, sizeof(url), "file://%s/a%%20b.json", dir);
        expect_body(url, NULL, "{\"x\":1}");
        snprintf(url, sizeof(url), "file://localhost%s/a%%20b.json", dir);
        expect_body(url, NULL, "{\"x\":1}");

        http_options small = { .max_size = 6 };
        snprintf(url, sizeof(url), "file://%s/a%%20b.json", dir);
        expect_error(url, &small, -EFBIG, "response larger than the limit of 6 bytes");
        snprintf(url, sizeof(url), "file://%s/missing.json", dir);
        expect_error(url, NULL, -ENOENT, "file not found or not readable");
        snprintf(url, sizeof(url), "file://%s", dir);
        expect_error(url, NULL, -EISDIR, "not a regular file");
        expect_error("file://relative/x.json", NULL, -EINVAL, "not a local absolute file URL");
        expect_error("file:///tmp/%00x", NULL, -EINVAL, "not a local absolute file URL");
        expect_error("file:///tmp/%zz", NULL, -EINVAL, "not a local absolute file URL");
        expect_error("ftp://127.0.0.1/x", NULL, -EINVAL, "unsupported URL");

        /* A FIFO neither hangs nor is read. */
        snprintf(path, sizeof(path), "%s/fifo", dir);
        assert_int_equal(mkfifo(path, 0600), 0);
        snprintf(url, sizeof(url), "file://%s", path);
        expect_error(url, NULL, -EISDIR, "not a regular file");

        /* file:// never needs libcurl: it is not loaded. */
        assert_false(http_libcurl_loaded());
        assert_false(maps_have_libcurl());
}

static void test_https_redirects(void **state) {
        http_options o = { .ca_file = ca_file, .timeout_ms = 20000 };
        char url[128];
        snprintf(url, sizeof(url), "https://localhost:%d/final", https_port);
        expect_body(url, &o, "final https");
        assert_true(http_libcurl_loaded());
        assert_true(maps_have_libcurl());

        /* https -> https is followed. */
        snprintf(url, sizeof(url), "https://localhost:%d/to-https", https_port);
        expect_body(url, &o, "final https");

        /* https -> http is a downgrade: refused, and the message says where it would have gone. */
        char reason[160];
        snprintf(reason, sizeof(reason),
                 "redirect to http://127.0.0.1:%d/final refused: a https:// URL may only redirect to https://", http_port);
        snprintf(url, sizeof(url), "https://localhost:%d/to-http", https_port);
        expect_error(url, &o, -EPROTO, reason);

        /* Too many redirects, a 404, and an untrusted server certificate. */
        snprintf(url, sizeof(url), "https://localhost:%d/loop", https_port);
        expect_error(url, &o, -ELOOP, "more than 5 redirects");
        snprintf(url, sizeof(url), "https://localhost:%d/missing", https_port);
        expect_error(url, &o, -ENOENT, "HTTP status 404 (not found)");
        http_options system_roots = { .timeout_ms = 20000 };
        snprintf(url, sizeof(url), "https://localhost:%d/final", https_port);
        expect_error(url, &system_roots, -EIO, "certificate");
}

static void test_http_redirects(void **state) {
        http_options o = { .ca_file = ca_file, .timeout_ms = 20000 };
        char url[128], reason[160];
        /* Plain http on loopback may redirect to plain http ... */
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/to-http", http_port);
        expect_body(url, &o, "final http");
        /* ... but not change the scheme, not even upwards. */
        snprintf(reason, sizeof(reason),
                 "redirect to https://localhost:%d/final refused: a http:// URL may only redirect to http://", https_port);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/to-https", http_port);
        expect_error(url, &o, -EPROTO, reason);
}

static int write_pem(const char *name, const char *pem, char *ret_path, size_t size) {
        snprintf(ret_path, size, "%s/%s", dir, name);
        return write_file_atomic(ret_path, pem, strlen(pem), 0600);
}

static int start_servers(void **state) {
        if (!mkdtemp(dir))
                return -1;
        const char *const sans[] = { "localhost", NULL };
        x509_params ca_params = { .common_name = "test-http CA", .is_ca = true, .not_before_offset_s = -60,
                                  .lifetime_s = 3600 };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = NULL;
        _cleanup_(X509_freep) X509 *ca = NULL;
        _cleanup_free_ char *ca_pem = NULL, *cert_pem = NULL;
        _cleanup_erase_free_ char *ca_key_pem = NULL, *key_pem = NULL;
        if (x509_issue(&ca_params, &ca_key, &ca, &ca_key_pem, &ca_pem) < 0)
                return -1;
        x509_params srv = { .common_name = "localhost", .dns_names = sans, .server_auth = true,
                            .not_before_offset_s = -60, .lifetime_s = 3600, .issuer_key = ca_key, .issuer_cert = ca };
        if (x509_issue(&srv, NULL, NULL, &key_pem, &cert_pem) < 0)
                return -1;
        char cert_file[128], key_file[128];
        if (write_pem("ca.pem", ca_pem, ca_file, sizeof(ca_file)) < 0 ||
            write_pem("server.pem", cert_pem, cert_file, sizeof(cert_file)) < 0 ||
            write_pem("server.key", key_pem, key_file, sizeof(key_file)) < 0)
                return -1;

        int out[2];
        if (pipe(out) < 0)
                return -1;
        server_pid = fork();
        if (server_pid == 0) {
                dup2(out[1], STDOUT_FILENO);
                close(out[0]);
                execlp("python3", "python3", server_script, cert_file, key_file, (char *) NULL);
                _exit(127);
        }
        close(out[1]);
        /* Keep the pipe open while the servers run (a late write must not kill them). */
        char line[64] = "";
        size_t n = 0;
        while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
                ssize_t k = read(out[0], line + n, sizeof(line) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        server_out = out[0];
        if (sscanf(line, "%d %d", &https_port, &http_port) != 2) {
                fprintf(stderr, "the loopback servers (python3 %s) did not start\n", server_script);
                return -1;
        }
        return 0;
}

static int stop_servers(void **state) {
        if (server_pid > 0) {
                kill(server_pid, SIGTERM);
                waitpid(server_pid, NULL, 0);
        }
        if (server_out >= 0)
                close(server_out);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
        server_script = argc > 1 ? argv[1] : "redirect-server.py";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_file),
                cmocka_unit_test(test_https_redirects),
                cmocka_unit_test(test_http_redirects),
        };
        return cmocka_run_group_tests(tests, start_servers, stop_servers);
}
