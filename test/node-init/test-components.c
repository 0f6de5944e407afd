/* SPDX-License-Identifier: Apache-2.0 */
/* lib/components against a real loopback HTTP server and real tar.gz files made with tar(1):
 * a good download and a data: URL are installed; a wrong pin, an oversize body, an unreachable URL,
 * a 404 are refused before anything is written (the target stays empty); archives with "..",
 * absolute names, escaping symlinks and devices are refused before anything is extracted; shape
 * refusals (scheme, pin, path) name their reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "basic/fileio.h"
#include "components/components.h"
#include "init-test-util.h"

static char *tmp;
static char root[512];
static it_http http;
static const char *roots[2];
static components_options opts;

static void pin_of(const void *data, size_t len, char ret[72]) {
        uint8_t d[32];
        SHA256(data, len, d);
        _cleanup_free_ char *hex = hex_encode(d, 32);
        snprintf(ret, 72, "sha256:%s", hex);
}

static void expect_refused(const component_spec *c, const char *reason, const char *part, const char *dir_empty) {
        ct_error err = CT_ERROR_INIT;
        int r = components_install(c, 0, &opts, &err);
        char msg[700];
        if (r >= 0 || !err.reason || !streq(err.reason, reason) || (part && !strstr(err.detail, part)))
                fail_msg("expected %s (\"%s\"), got r=%d %s", reason, part ?: "", r, ct_error_format(&err, msg, sizeof msg));
        if (dir_empty)
                assert_true(it_dir_entries(dir_empty) <= 0);
}

static int setup(void **state) {
        (void) state;
        tmp = it_tmpdir();
        snprintf(root, sizeof root, "%s/state", tmp);
        mkdir(root, 0755);
        roots[0] = root;
        opts = (components_options){ .allowed_roots = roots, .max_size = 1024 * 1024, .timeout_ms = 20000 };
        it_http_start(&http);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        it_http_stop(&http);
        it_rmrf(tmp);
        free(tmp);
        return 0;
}

static void test_download_installed(void **state) {
        (void) state;
        static const uint8_t body[] = "#!/bin/sh\necho crictl\n";
        it_http_serve(&http, "/crictl", body, sizeof body - 1, false);
        char url[128], pin[72], path[600];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/crictl", http.port);
        pin_of(body, sizeof body - 1, pin);
        snprintf(path, sizeof path, "%s/bin/crictl", root);
        component_spec c = { url, pin, path, false };
        ct_error err = CT_ERROR_INIT;
        char msg[700];
        if (components_install(&c, 0, &opts, &err) < 0)
                fail_msg("%s", ct_error_format(&err, msg, sizeof msg));
        _cleanup_free_ uint8_t *got = NULL;
        size_t len;
        assert_int_equal(read_full_file(path, 4096, &got, &len), 0);
        assert_int_equal(len, sizeof body - 1);
        assert_memory_equal(got, body, len);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(it_dir_entries(root), 1); /* bin/, no temp files left */
        assert_int_equal(it_dir_entries(path) , -1);
        char bindir[600];
        snprintf(bindir, sizeof bindir, "%s/bin", root);
        assert_int_equal(it_dir_entries(bindir), 1);
        assert_int_equal(it_run(NULL, "rm -rf '%s/bin'", root), 0);
}

static void test_data_url(void **state) {
        (void) state;
        static const char json[] = "[{\"op\":\"replace\",\"path\":\"/spec/containers/0/image\",\"value\":\"x@sha256:00\"}]";
        _cleanup_free_ char *b64 = base64_encode(json, sizeof json - 1, BASE64_STD);
        _cleanup_free_ char *url = NULL;
        assert_true(asprintf(&url, "data:application/json;base64,%s", b64) > 0);
        char pin[72], path[600];
        pin_of(json, sizeof json - 1, pin);
        snprintf(path, sizeof path, "%s/opt/kubernetes/patches/kube-apiserver+json.json", root);
        component_spec c = { url, pin, path, false };
        ct_error err = CT_ERROR_INIT;
        char msg[700];
        if (components_install(&c, 0, &opts, &err) < 0)
                fail_msg("%s", ct_error_format(&err, msg, sizeof msg));
        _cleanup_free_ uint8_t *got = NULL;
        size_t len;
        assert_int_equal(read_full_file(path, 4096, &got, &len), 0);
        assert_int_equal(len, sizeof json - 1);
        assert_memory_equal(got, json, len);
        /* Percent-encoded data: URL, and a wrong pin on one. */
        uint8_t *d = NULL;
        size_t dl = 0;
        assert_int_equal(components_decode_data_url("data:,a%20b", 100, &d, &dl, NULL), 0);
        assert_int_equal(dl, 3);
        assert_memory_equal(d, "a b", 3);
        free(d);
        assert_int_equal(components_decode_data_url("data:,a%2", 100, &d, &dl, NULL), -EBADMSG);
        assert_int_equal(it_run(NULL, "rm -rf '%s/opt'", root), 0);
        char dpath[600];
        snprintf(dpath, sizeof dpath, "%s/patch.json", root);
        component_spec bad = { "data:,hello", pin, dpath, false };
        expect_refused(&bad, "hash-mismatch", "nothing was installed", root);
}

static void test_wrong_hash(void **state) {
        (void) state;
        static const uint8_t body[] = "the real kubelet";
        it_http_serve(&http, "/kubelet", body, sizeof body - 1, false);
        char url[128], pin[72], path[600];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/kubelet", http.port);
        pin_of("another kubelet", 15, pin);
        snprintf(path, sizeof path, "%s/kubelet", root);
        component_spec c = { url, pin, path, false };
        expect_refused(&c, "hash-mismatch", "pinned sha256:", root);
}

static void test_oversize(void **state) {
        (void) state;
        size_t big = 2 * 1024 * 1024;
        _cleanup_free_ uint8_t *body = calloc(1, big);
        it_http_serve(&http, "/big", body, big, false);
        char url[128], pin[72], path[600];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/big", http.port);
        pin_of(body, big, pin);
        snprintf(path, sizeof path, "%s/big", root);
        component_spec c = { url, pin, path, false };
        expect_refused(&c, "too-large", "larger than", root);
        it_http_serve(&http, NULL, NULL, 0, false);
}

static void test_unreachable_and_404(void **state) {
        (void) state;
        char url[128], path[600];
        static const char pin[] = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        snprintf(url, sizeof url, "http://127.0.0.1:%d/kubeadm", it_dead_port());
        snprintf(path, sizeof path, "%s/kubeadm", root);
        component_spec c = { url, pin, path, false };
        expect_refused(&c, "fetch-failed", "component 0", root);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/missing", http.port);
        component_spec c2 = { url, pin, path, false };
        expect_refused(&c2, "fetch-failed", "component 0", root);
}

static void test_shape_refusals(void **state) {
        (void) state;
        static const char pin[] = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        char inside[600];
        snprintf(inside, sizeof inside, "%s/x", root);
        struct {
                component_spec c;
                const char *reason;
        } cases[] = {
                { { "file:///etc/passwd", pin, inside, false }, "url-scheme" },
                { { "ftp://example.com/x", pin, inside, false }, "url-scheme" },
                { { "", pin, inside, false }, "url-malformed" },
                { { "http://", pin, inside, false }, "url-malformed" },
                { { "http://a b/x", pin, inside, false }, "url-malformed" },
                { { "https://example.com/x", "sha512:00", inside, false }, "hash-malformed" },
                { { "https://example.com/x", "sha256:00", inside, false }, "hash-malformed" },
                { { "https://example.com/x", "sha256:zz00000000000000000000000000000000000000000000000000000000000000", inside, false }, "hash-malformed" },
                { { "https://example.com/x", pin, "relative/path", false }, "path-invalid" },
                { { "https://example.com/x", pin, "/etc/passwd", false }, "path-outside-root" },
                { { "https://example.com/x", pin, root, false }, "path-outside-root" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ct_error err = CT_ERROR_INIT;
                int r = components_validate(&cases[i].c, i, &opts, &err);
                if (r >= 0 || !streq(err.reason, cases[i].reason))
                        fail_msg("case %zu: expected %s, got %d %s", i, cases[i].reason, r, err.reason ?: "(none)");
        }
        char dotdot[700];
        snprintf(dotdot, sizeof dotdot, "%s/../etc/passwd", root);
        component_spec c = { "https://example.com/x", pin, dotdot, false };
        ct_error err = CT_ERROR_INIT;
        assert_true(components_validate(&c, 0, &opts, &err) < 0);
        assert_string_equal(err.reason, "path-invalid");
}

/* A symlink planted on the install path must not redirect the write. */
static void test_symlink_on_path(void **state) {
        (void) state;
        static const uint8_t body[] = "x";
        it_http_serve(&http, "/x", body, 1, false);
        char outside[600], link[600], url[128], pin[72], path[700];
        snprintf(outside, sizeof outside, "%s/outside", tmp);
        mkdir(outside, 0755);
        snprintf(link, sizeof link, "%s/bin", root);
        assert_int_equal(symlink(outside, link), 0);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/x", http.port);
        pin_of(body, 1, pin);
        snprintf(path, sizeof path, "%s/bin/x", root);
        component_spec c = { url, pin, path, false };
        expect_refused(&c, "path-outside-root", "symlink", NULL);
        assert_int_equal(it_dir_entries(outside), 0);
        unlink(link);
}

/* tar.gz made by tar(1) (and python3 tarfile for entries tar refuses to write). */
static uint8_t *make_tar(const char *script, size_t *ret_len) {
        char out[600];
        snprintf(out, sizeof out, "%s/a.tar.gz", tmp);
        unlink(out);
        if (it_run(NULL, "cd '%s' && python3 -c '%s' '%s'", tmp, script, out) != 0)
                it_die("making a tar");
        uint8_t *buf = NULL;
        if (read_full_file(out, 16 * 1024 * 1024, &buf, ret_len) < 0)
                it_die("reading the tar");
        return buf;
}

#define PY_TAR_HEAD "import tarfile,io,sys; t=tarfile.open(sys.argv[1],\"w:gz\");\n"                          \
                    "def f(n,d=b\"data\",m=0o755):\n i=tarfile.TarInfo(n); i.size=len(d); i.mode=m; t.addfile(i,io.BytesIO(d))\n" \
                    "def l(n,target):\n i=tarfile.TarInfo(n); i.type=tarfile.SYMTYPE; i.linkname=target; t.addfile(i)\n"

static void extract_case(const char *script, const char *reason, const char *part) {
        size_t len = 0;
        _cleanup_free_ uint8_t *tar = make_tar(script, &len);
        _cleanup_free_ char *b64 = base64_encode(tar, len, BASE64_STD);
        _cleanup_free_ char *url = NULL;
        assert_true(asprintf(&url, "data:application/gzip;base64,%s", b64) > 0);
        char pin[72], dir[600];
        pin_of(tar, len, pin);
        snprintf(dir, sizeof dir, "%s/cni/bin", root);
        component_spec c = { url, pin, dir, true };
        if (!reason) {
                ct_error err = CT_ERROR_INIT;
                char msg[700];
                if (components_install(&c, 0, &opts, &err) < 0)
                        fail_msg("%s", ct_error_format(&err, msg, sizeof msg));
                return;
        }
        expect_refused(&c, reason, part, NULL);
        assert_true(it_dir_entries(dir) <= 0); /* nothing extracted */
        char escaped[600];
        snprintf(escaped, sizeof escaped, "%s/escaped", tmp);
        assert_int_equal(access(escaped, F_OK), -1);
}

static void test_tar(void **state) {
        (void) state;
        /* good: files, a directory, a relative symlink inside, a leading "./" */
        extract_case(PY_TAR_HEAD "f(\"./bridge\"); f(\"sub/loopback\", b\"lo\", 0o4755); l(\"sub/link\", \"../bridge\"); t.close()",
                     NULL, NULL);
        char p[700];
        snprintf(p, sizeof p, "%s/cni/bin/sub/loopback", root);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755); /* setuid dropped */
        snprintf(p, sizeof p, "%s/cni/bin/sub/link", root);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(it_run(NULL, "rm -rf '%s/cni'", root), 0);

        extract_case(PY_TAR_HEAD "f(\"ok\"); f(\"../../escaped\"); t.close()", "archive-unsafe", "\"..\"");
        extract_case(PY_TAR_HEAD "f(\"ok\"); f(\"/tmp/escaped\"); t.close()", "archive-unsafe", "absolute");
        extract_case(PY_TAR_HEAD "l(\"evil\", \"../../..\"); f(\"ok\"); t.close()", "archive-unsafe", "outside");
        extract_case(PY_TAR_HEAD "l(\"evil\", \"/etc\"); t.close()", "archive-unsafe", "outside");
        extract_case(PY_TAR_HEAD "f(\"ok\"); i=tarfile.TarInfo(\"dev\"); i.type=tarfile.CHRTYPE; i.devmajor=1; i.devminor=3; t.addfile(i); t.close()",
                     "archive-unsafe", "device");
        extract_case(PY_TAR_HEAD "f(\"ok\"); i=tarfile.TarInfo(\"hl\"); i.type=tarfile.LNKTYPE; i.linkname=\"ok\"; t.addfile(i); t.close()",
                     "archive-unsafe", "hard link");
        /* a symlinked directory followed by a file "through" it: refused when written */
        extract_case(PY_TAR_HEAD "l(\"d\", \".\"); f(\"d/x\"); t.close()", "archive-unsafe", "through a symlink");
        extract_case("import sys; open(sys.argv[1],\"wb\").write(b\"\\x1f\\x8b not gzip\")", "archive-malformed", NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_download_installed), cmocka_unit_test(test_data_url),
                cmocka_unit_test(test_wrong_hash),         cmocka_unit_test(test_oversize),
                cmocka_unit_test(test_unreachable_and_404), cmocka_unit_test(test_shape_refusals),
                cmocka_unit_test(test_symlink_on_path),    cmocka_unit_test(test_tar),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
