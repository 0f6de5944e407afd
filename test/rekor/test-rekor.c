/* SPDX-License-Identifier: Apache-2.0 */
/* Rekor entries from sigstore-conformance: the happy paths verify; each *_fail bundle fails with its
 * own reason; the body must name our artifact and key; the online lookup works against a local
 * stand-in server and fails closed when the log is unreachable or has no entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "crypto/cosign.h"
#include "rekor/rekor.h"

static const char *datadir, *server_script;

static uint8_t *load(const char *name, size_t *len) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", datadir, name);
        uint8_t *buf;
        assert_int_equal(read_full_file(path, 1 << 20, &buf, len), 0);
        return buf;
}

static EVP_PKEY *key(const char *name) {
        size_t len;
        _cleanup_free_ uint8_t *pem = load(name, &len);
        EVP_PKEY *k;
        assert_int_equal(cosign_load_public_key((const char *) pem, len, &k), 0);
        return k;
}

static rekor_reason verify_bundle(const char *name) {
        size_t len;
        _cleanup_free_ uint8_t *buf = load(name, &len);
        rekor_entry e;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(rekor_bundle_parse(buf, len, &e, &err), 0);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *log = key("rekor.pub");
        rekor_reason r = -1;
        _cleanup_free_ char *detail = NULL;
        int ret = rekor_verify_entry(&e, log, &r, &detail);
        assert_int_equal(ret, r == REKOR_OK ? 0 : -EBADMSG);
        if (r != REKOR_OK)
                assert_non_null(strstr(detail, rekor_reason_to_string(r)));
        rekor_entry_done(&e);
        return r;
}

static void test_bundles(void **state) {
        assert_int_equal(verify_bundle("bundle.sigstore.json"), REKOR_OK);
        assert_int_equal(verify_bundle("happy-path-v0.1.bundle.sigstore.json"), REKOR_OK);
        assert_int_equal(verify_bundle("happy-path-v0.3.bundle.sigstore.json"), REKOR_OK);
        assert_int_equal(verify_bundle("invalid-inclusion-proof_fail.bundle.sigstore.json"), REKOR_INCLUSION_PROOF_INVALID);
        assert_int_equal(verify_bundle("inclusion-proof-corrupted-hash_fail.bundle.sigstore.json"),
                         REKOR_INCLUSION_PROOF_INVALID);
        assert_int_equal(verify_bundle("checkpoint-wrong-roothash_fail.bundle.sigstore.json"),
                         REKOR_CHECKPOINT_ROOT_MISMATCH);
        assert_int_equal(verify_bundle("invalid-checkpoint-signature_fail.bundle.sigstore.json"),
                         REKOR_CHECKPOINT_SIGNATURE_INVALID);
        assert_int_equal(verify_bundle("set-invalid-signature_fail.bundle.sigstore.json"), REKOR_SET_INVALID);
}

static void test_wrong_log_key(void **state) {
        size_t len;
        _cleanup_free_ uint8_t *buf = load("bundle.sigstore.json", &len);
        rekor_entry e;
        assert_int_equal(rekor_bundle_parse(buf, len, &e, NULL), 0);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *other = key("key.pub");
        rekor_reason r;
        assert_int_equal(rekor_verify_entry(&e, other, &r, NULL), -EBADMSG);
        assert_int_equal(r, REKOR_LOG_ID_MISMATCH);
        rekor_entry_done(&e);
}

static void test_body(void **state) {
        size_t len, al, sl;
        _cleanup_free_ uint8_t *buf = load("bundle.sigstore.json", &len);
        _cleanup_free_ uint8_t *a = load("a.txt", &al);
        _cleanup_free_ uint8_t *sig = load("a.txt.sig", &sl);
        rekor_entry e;
        assert_int_equal(rekor_bundle_parse(buf, len, &e, NULL), 0);
        uint8_t digest[32];
        SHA256(a, al, digest);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *signer = key("key.pub");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *other = key("rekor.pub");
        rekor_reason r;
        assert_int_equal(rekor_verify_body(&e, digest, signer, (const char *) sig, &r), 0);
        assert_int_equal(r, REKOR_OK);
        assert_int_equal(rekor_verify_body(&e, digest, other, NULL, &r), -EBADMSG);
        assert_int_equal(r, REKOR_BODY_KEY_MISMATCH);
        digest[0] ^= 1;
        assert_int_equal(rekor_verify_body(&e, digest, signer, NULL, &r), -EBADMSG);
        assert_int_equal(r, REKOR_BODY_HASH_MISMATCH);
        digest[0] ^= 1;
        assert_int_equal(rekor_verify_body(&e, digest, signer, "MEUCIQ==", &r), -EBADMSG);
        assert_int_equal(r, REKOR_BODY_SIGNATURE_MISMATCH);
        rekor_entry_done(&e);
}

static void test_api_entry_and_malformed(void **state) {
        size_t len;
        _cleanup_free_ uint8_t *buf = load("rekor-entry.api.json", &len);
        rekor_entry e;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(rekor_api_entry_parse(buf, len, &e, &err), 0);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *log = key("rekor.pub");
        rekor_reason r;
        assert_int_equal(rekor_verify_entry(&e, log, &r, NULL), 0);
        rekor_entry_done(&e);

        _cleanup_free_ char *e1 = NULL, *e2 = NULL;
        assert_int_equal(rekor_bundle_parse((const uint8_t *) "{}", 2, &e, &e1), -EBADMSG);
        assert_string_equal(e1, "verificationMaterial.tlogEntries: no entry");
        assert_int_equal(rekor_api_entry_parse((const uint8_t *) "[]", 2, &e, &e2), -EBADMSG);
        assert_non_null(e2);
}

/* --- online, against a stand-in Rekor on loopback --- */

static pid_t server_pid = -1;
static int server_port, server_out = -1;

static int start_server(void **state) {
        char a_hash[65];
        size_t al;
        _cleanup_free_ uint8_t *a = load("a.txt", &al);
        uint8_t d[32];
        SHA256(a, al, d);
        for (int i = 0; i < 32; i++)
                snprintf(a_hash + 2 * i, 3, "%02x", d[i]);
        int out[2];
        if (pipe(out) < 0)
                return -1;
        char entry[512];
        snprintf(entry, sizeof(entry), "%s/rekor-entry.api.json", datadir);
        server_pid = fork();
        if (server_pid == 0) {
                dup2(out[1], STDOUT_FILENO);
                close(out[0]);
                execlp("python3", "python3", server_script, entry, a_hash,
                       "108e9186e8c5677a251d7335e207fb694536143ecff500072df1cae8f388a9c181794f31e1b2d42e", (char *) NULL);
                _exit(127);
        }
        close(out[1]);
        /* Read the whole first line; keep the pipe open while the server runs, or its late
         * writes would kill it with SIGPIPE. */
        char line[32] = "";
        size_t n = 0;
        while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
                ssize_t k = read(out[0], line + n, sizeof(line) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        server_out = out[0];
        if (n == 0) {
                fprintf(stderr, "the stand-in Rekor (python3 %s) did not start\n", server_script);
                return -1;
        }
        server_port = atoi(line);
        return server_port > 0 ? 0 : -1;
}

static int stop_server(void **state) {
        if (server_pid > 0) {
                kill(server_pid, SIGTERM);
                waitpid(server_pid, NULL, 0);
        }
        if (server_out >= 0)
                close(server_out);
        return 0;
}

static void test_online(void **state) {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", server_port);
        size_t al;
        _cleanup_free_ uint8_t *a = load("a.txt", &al);
        uint8_t d[32];
        SHA256(a, al, d);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *signer = key("key.pub");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *log = key("rekor.pub");
        rekor_reason r;
        _cleanup_free_ char *detail = NULL;
        if (rekor_lookup_and_verify(url, d, signer, log, &r, &detail) != 0)
                fail_msg("lookup against %s failed: %s", url, detail ?: "?");
        assert_int_equal(r, REKOR_OK);

        /* Another artifact: the log has no entry: an error, not a warning. */
        d[5] ^= 0xff;
        _cleanup_free_ char *d2 = NULL;
        assert_int_equal(rekor_lookup_and_verify(url, d, signer, log, &r, &d2), -EBADMSG);
        assert_int_equal(r, REKOR_NOT_FOUND);
        d[5] ^= 0xff;

        /* Unreachable log (nothing listens on the port after the server is gone). */
        _cleanup_free_ char *d3 = NULL;
        assert_int_equal(rekor_lookup_and_verify("http://127.0.0.1:1", d, signer, log, &r, &d3), -EBADMSG);
        assert_int_equal(r, REKOR_UNREACHABLE);
        assert_non_null(strstr(d3, "the log could not be reached: http://127.0.0.1:1/api/v1/index/retrieve"));
}


/* --- the lookup tries the index's entries until one is ours --- */

static pid_t scen_pid = -1;
static int scen_port, scen_out = -1;

static int start_scenarios(void **state) {
        (void) state;
        char a_hash[65];
        size_t al;
        _cleanup_free_ uint8_t *a = load("a.txt", &al);
        uint8_t d[32];
        SHA256(a, al, d);
        for (int i = 0; i < 32; i++)
                snprintf(a_hash + 2 * i, 3, "%02x", d[i]);
        int out[2];
        if (pipe(out) < 0)
                return -1;
        scen_pid = fork();
        if (scen_pid == 0) {
                dup2(out[1], STDOUT_FILENO);
                close(out[0]);
                execlp("python3", "python3", server_script, "--scenarios", datadir, a_hash, (char *) NULL);
                _exit(127);
        }
        close(out[1]);
        char line[32] = "";
        size_t n = 0;
        while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
                ssize_t k = read(out[0], line + n, sizeof(line) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        scen_out = out[0];
        if (n == 0) {
                fprintf(stderr, "the stand-in Rekor (python3 %s --scenarios) did not start\n", server_script);
                return -1;
        }
        scen_port = atoi(line);
        return scen_port > 0 ? 0 : -1;
}

static int stop_scenarios(void **state) {
        (void) state;
        if (scen_pid > 0) {
                kill(scen_pid, SIGTERM);
                waitpid(scen_pid, NULL, 0);
        }
        if (scen_out >= 0)
                close(scen_out);
        return 0;
}

static int lookup(const char *scenario, rekor_reason *r, char **detail) {
        char url[96];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", scen_port, scenario);
        size_t al;
        _cleanup_free_ uint8_t *a = load("a.txt", &al);
        uint8_t d[32];
        SHA256(a, al, d);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *signer = key("key.pub");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *log = key("rekor.pub");
        *r = (rekor_reason) -1;
        return rekor_lookup_and_verify(url, d, signer, log, r, detail);
}

/* Someone logged a.txt's hash under their own certificate (a genuine public-good entry) before
 * us: the index names theirs first. The lookup must go on to ours instead of failing closed on
 * theirs, which would let anyone block every apply of a release. */
static void test_foreign_entry_first(void **state) {
        (void) state;
        rekor_reason r;
        _cleanup_free_ char *d1 = NULL, *d2 = NULL, *d3 = NULL;
        if (lookup("ours", &r, &d1) != 0)
                fail_msg("ours: %s", d1 ?: "?");
        assert_int_equal(r, REKOR_OK);
        if (lookup("foreign-first", &r, &d2) != 0)
                fail_msg("foreign-first: %s", d2 ?: "?");
        assert_int_equal(r, REKOR_OK);
        assert_null(d2);
        /* A broken entry (bad SET) and a foreign one before ours. */
        if (lookup("broken-first", &r, &d3) != 0)
                fail_msg("broken-first: %s", d3 ?: "?");
        assert_int_equal(r, REKOR_OK);
}

static void test_all_entries_foreign(void **state) {
        (void) state;
        rekor_reason r;
        _cleanup_free_ char *d = NULL;
        assert_int_equal(lookup("all-foreign", &r, &d), -EBADMSG);
        assert_int_equal(r, REKOR_NO_VERIFIED_ENTRY);
        assert_non_null(strstr(d, "no entry for the artifact in the log verifies with the signer's key: 2 of 2 entries "
                                  "for sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf tried, "
                                  "none verifies with the signer's key; the first (00000000000f0000"));
        assert_non_null(strstr(d, "): entry was signed with a different public key"));

        /* 33 foreign entries before ours: the lookup stops at REKOR_MAX_LOOKUP_ENTRIES and says so. */
        _cleanup_free_ char *d2 = NULL;
        assert_int_equal(lookup("many-foreign", &r, &d2), -EBADMSG);
        assert_int_equal(r, REKOR_NO_VERIFIED_ENTRY);
        assert_int_equal(REKOR_MAX_LOOKUP_ENTRIES, 32);
        assert_non_null(strstr(d2, "32 of 34 entries for sha256:"));
        assert_non_null(strstr(d2, " tried (the limit), none verifies"));

        /* An index answer that is not a list. */
        _cleanup_free_ char *d3 = NULL;
        assert_int_equal(lookup("not-a-list", &r, &d3), -EBADMSG);
        assert_int_equal(r, REKOR_MALFORMED);
        assert_non_null(strstr(d3, "not a JSON array of entry UUIDs"));
}

int main(int argc, char **argv) {
        datadir = argc > 1 ? argv[1] : "data";
        server_script = argc > 2 ? argv[2] : "rekor-server.py";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bundles),
                cmocka_unit_test(test_wrong_log_key),
                cmocka_unit_test(test_body),
                cmocka_unit_test(test_api_entry_and_malformed),
                cmocka_unit_test_setup_teardown(test_online, start_server, stop_server),
                cmocka_unit_test_setup_teardown(test_foreign_entry_first, start_scenarios, stop_scenarios),
                cmocka_unit_test_setup_teardown(test_all_entries_foreign, start_scenarios, stop_scenarios),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
