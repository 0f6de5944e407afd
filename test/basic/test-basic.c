/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "wipe-check.h"

static void test_hex_roundtrip(void **state) {
        const uint8_t in[] = { 0x00, 0x7f, 0xab, 0xff };
        _cleanup_free_ char *hex = hex_encode(in, sizeof(in));
        assert_string_equal(hex, "007fabff");
        _cleanup_free_ uint8_t *out = NULL;
        size_t len;
        assert_int_equal(hex_decode("007FABff", 8, &out, &len), 0);
        assert_int_equal(len, 4);
        assert_memory_equal(in, out, 4);
}

static void test_hex_rejects(void **state) {
        uint8_t *out = NULL;
        size_t len;
        uint8_t fixed[2];
        assert_int_equal(hex_decode("abc", 3, &out, &len), -EINVAL);
        assert_int_equal(hex_decode("zz", 2, &out, &len), -EINVAL);
        assert_int_equal(hex_decode_exact("abcd", fixed, 2), 0);
        assert_int_equal(hex_decode_exact("abcdef", fixed, 2), -EINVAL);
        assert_int_equal(hex_decode_exact("abc", fixed, 2), -EINVAL);
}

/* RFC 4648 §10 test vectors. */
static void test_base64_rfc4648(void **state) {
        static const struct {
                const char *in, *std, *raw;
        } v[] = {
                { "", "", "" },           { "f", "Zg==", "Zg" },          { "fo", "Zm8=", "Zm8" },
                { "foo", "Zm9v", "Zm9v" }, { "foob", "Zm9vYg==", "Zm9vYg" }, { "fooba", "Zm9vYmE=", "Zm9vYmE" },
                { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
        };
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_free_ char *e = base64_encode(v[i].in, strlen(v[i].in), BASE64_STD);
                _cleanup_free_ char *r = base64_encode(v[i].in, strlen(v[i].in), BASE64_STD_RAW);
                assert_string_equal(e, v[i].std);
                assert_string_equal(r, v[i].raw);
                _cleanup_free_ uint8_t *d = NULL;
                size_t len;
                assert_int_equal(base64_decode(v[i].std, strlen(v[i].std), BASE64_STD, &d, &len), 0);
                assert_int_equal(len, strlen(v[i].in));
                assert_memory_equal(d, v[i].in, len);
        }
}

static void test_base64_rejects(void **state) {
        uint8_t *d = NULL;
        size_t len;
        assert_int_equal(base64_decode("Zg=", 3, BASE64_STD, &d, &len), -EINVAL);
        assert_int_equal(base64_decode("Z", 1, BASE64_STD, &d, &len), -EINVAL);
        assert_int_equal(base64_decode("Zh==", 4, BASE64_STD, &d, &len), -EINVAL); /* non-canonical */
        assert_int_equal(base64_decode("a-_b", 4, BASE64_STD, &d, &len), -EINVAL);
        assert_int_equal(base64_decode("a-_b", 4, BASE64_URL, &d, &len), 0);
        free(d);
}

static void test_ct_memeq(void **state) {
        assert_true(ct_memeq("abc", 3, "abc", 3));
        assert_false(ct_memeq("abc", 3, "abd", 3));
        assert_false(ct_memeq("abc", 3, "ab", 2));
        assert_true(ct_memeq("", 0, "", 0));
}

static void test_secret(void **state) {
        _cleanup_secret_ secret_t *s = secret_new_copy("topsecret", 9);
        assert_non_null(s);
        assert_int_equal(s->len, 9);
        assert_string_equal((char *) s->data, "topsecret");
        secret_free(NULL);
}

/* Every secret owns whole pages: munlock of one cannot unlock another's page. */
static void test_secret_pages(void **state) {
        size_t ps = (size_t) sysconf(_SC_PAGESIZE);
        _cleanup_secret_ secret_t *a = secret_new(32), *b = secret_new(32), *c = secret_new(ps), *z = secret_new(0);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_non_null(z);
        assert_int_equal((uintptr_t) a->data % ps, 0);
        assert_int_equal((uintptr_t) b->data % ps, 0);
        assert_int_equal((uintptr_t) c->data % ps, 0);
        assert_int_equal((uintptr_t) z->data % ps, 0);
        /* Distinct page-aligned blocks of at least a page each: no page holds two secrets. */
        uintptr_t pa = (uintptr_t) a->data / ps, pb = (uintptr_t) b->data / ps;
        assert_true(pa != pb);
        /* len + NUL does not fit one page for len == page size: two pages, NUL still there. */
        assert_int_equal(c->data[ps], 0);
        assert_true(malloc_usable_size(c->data) >= 2 * ps);
        assert_true(malloc_usable_size(a->data) >= ps);
        assert_int_equal(z->len, 0);
        assert_int_equal(z->data[0], 0);
}

/* The checker itself: plain free() of a marked buffer is seen, the wiping frees are not. */
static void test_erase_and_free_wipes(void **state) {
        static const char marker[] = "MARKER-basic-7f3a9c";
        wipe_check_arm(marker);
        char *plain = strdup(marker);
        free(plain);
        assert_int_equal(wipe_check_disarm(), 1);

        wipe_check_arm(marker);
        uint8_t *buf = malloc(100);
        memset(buf, 'x', 100);
        memcpy(buf + 50, marker, strlen(marker));
        erase_and_free_sized(buf, 100);
        erase_and_free(strdup(marker));
        secret_free(secret_new_copy(marker, strlen(marker)));
        erase_and_free_sized(NULL, 5);
        assert_int_equal(wipe_check_disarm(), 0);
}

static void test_secret_from_hex(void **state) {
        _cleanup_secret_ secret_t *s = NULL;
        assert_int_equal(secret_from_hex("00ffAB7f\n", 9, &s), 0);
        assert_int_equal(s->len, 4);
        assert_memory_equal(s->data, "\x00\xff\xab\x7f", 4);
        assert_int_equal((uintptr_t) s->data % (size_t) sysconf(_SC_PAGESIZE), 0);
        secret_t *bad = NULL;
        assert_int_equal(secret_from_hex("abc", 3, &bad), -EINVAL);
        assert_int_equal(secret_from_hex("zz", 2, &bad), -EINVAL);
        assert_int_equal(secret_from_hex("a b", 3, &bad), -EINVAL);
        assert_null(bad);
        _cleanup_secret_ secret_t *empty = NULL;
        assert_int_equal(secret_from_hex("\n", 1, &empty), 0);
        assert_int_equal(empty->len, 0);
}

static void test_secret_read_file(void **state) {
        char dir[] = "/tmp/ct-basic-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[64];
        snprintf(path, sizeof(path), "%s/s", dir);
        assert_int_equal(write_file_atomic(path, "0011aabb\n", 9, 0600), 0);
        _cleanup_secret_ secret_t *s = NULL;
        assert_int_equal(secret_read_file(path, 64, &s), 0);
        assert_int_equal(s->len, 9);
        assert_memory_equal(s->data, "0011aabb\n", 9);
        secret_t *t = NULL;
        assert_int_equal(secret_read_file(path, 8, &t), -EFBIG);
        assert_int_equal(secret_read_file("/nonexistent/ct-secret", 8, &t), -ENOENT);
        assert_null(t);

        /* "-" is standard input. */
        int saved = dup(STDIN_FILENO), p[2];
        assert_true(saved >= 0);
        assert_int_equal(pipe(p), 0);
        assert_int_equal(write(p[1], "cafe", 4), 4);
        close(p[1]);
        assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
        close(p[0]);
        _cleanup_secret_ secret_t *in = NULL;
        int r = secret_read_file("-", 64, &in);
        assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
        close(saved);
        assert_int_equal(r, 0);
        assert_int_equal(in->len, 4);
        assert_memory_equal(in->data, "cafe", 4);
        unlink(path);
        rmdir(dir);
}

static void test_fileio(void **state) {
        char dir[] = "/tmp/ct-basic-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[64];
        snprintf(path, sizeof(path), "%s/f", dir);
        assert_int_equal(write_file_atomic(path, "hello", 5, 0600), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        assert_int_equal(read_full_file(path, 100, &buf, &len), 0);
        assert_int_equal(len, 5);
        assert_string_equal((char *) buf, "hello");
        assert_int_equal(read_full_file(path, 4, &buf, &len), -EFBIG);
        unlink(path);
        rmdir(dir);
}

/* process_harden_secrets() in a child (so the rest of this test keeps its limits): the dumpable
 * flag reads back 0, the core limit reads back 0/0, and a grandchild inherits the core limit. */
static void test_process_harden_secrets(void **state) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
                        _exit(10); /* precondition: a normal process is dumpable */
                if (process_harden_secrets() != 0)
                        _exit(11);
                if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
                        _exit(12);
                struct rlimit rl;
                if (getrlimit(RLIMIT_CORE, &rl) < 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
                        _exit(13);
                /* The hard limit is 0 too: an unprivileged process cannot raise it again. */
                struct rlimit up = { .rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY };
                if (geteuid() != 0 && setrlimit(RLIMIT_CORE, &up) == 0)
                        _exit(14);
                pid_t g = fork();
                if (g < 0)
                        _exit(15);
                if (g == 0) {
                        struct rlimit grl;
                        _exit(getrlimit(RLIMIT_CORE, &grl) == 0 && grl.rlim_max == 0 ? 0 : 1);
                }
                int gst;
                if (waitpid(g, &gst, 0) != g || !WIFEXITED(gst) || WEXITSTATUS(gst) != 0)
                        _exit(16);
                _exit(0);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
}

/* process_run: exit status, argv passed through, the deadline kills and reaps, death by signal,
 * a missing program, a relative path, and signals unblocked in the child even when the caller
 * blocks them (as lib/service does). */
static void test_process_run(void **state) {
        const char *const ok[] = { "/bin/sh", "-c", "exit 0", NULL };
        assert_int_equal(process_run(ok, 0, NULL), 0);
        const char *const seven[] = { "/bin/sh", "-c", "exit \"$0\"", "7", NULL };
        assert_int_equal(process_run(seven, 5000, NULL), 7);
        const char *const slow[] = { "/bin/sleep", "30", NULL };
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(process_run(slow, 200, NULL), -ETIMEDOUT);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_true(b.tv_sec - a.tv_sec < 10);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* reaped: no child left */
        assert_int_equal(errno, ECHILD);
        const char *const killed[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };
        int sig = 0;
        assert_int_equal(process_run(killed, 5000, &sig), -ECHILD);
        assert_int_equal(sig, SIGTERM);
        const char *const missing[] = { "/nonexistent/program", NULL };
        assert_int_equal(process_run(missing, 1000, NULL), -ENOENT);
        const char *const relative[] = { "sh", "-c", "exit 0", NULL };
        assert_int_equal(process_run(relative, 1000, NULL), -EINVAL);
        /* With SIGTERM blocked here, the child still dies of it. */
        sigset_t term, old;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        assert_int_equal(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
        sig = 0;
        assert_int_equal(process_run(killed, 5000, &sig), -ECHILD);
        assert_int_equal(sig, SIGTERM);
        assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_process_run),
                cmocka_unit_test(test_hex_roundtrip),  cmocka_unit_test(test_hex_rejects),
                cmocka_unit_test(test_base64_rfc4648), cmocka_unit_test(test_base64_rejects),
                cmocka_unit_test(test_ct_memeq),       cmocka_unit_test(test_secret),
                cmocka_unit_test(test_fileio),        cmocka_unit_test(test_process_harden_secrets),
                cmocka_unit_test(test_secret_pages),  cmocka_unit_test(test_erase_and_free_wipes),
                cmocka_unit_test(test_secret_from_hex), cmocka_unit_test(test_secret_read_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
