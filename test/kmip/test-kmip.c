/* SPDX-License-Identifier: Apache-2.0 */
/* lib/kmip and kms://kmip against a real KMIP server: PyKMIP's pykmip-server on 127.0.0.1 with
 * TLS client-certificate authentication (test/kmip/pykmip.sh makes the PKI and runs the server).
 *
 * Proves: the KEK is created inside the server and stays there (its bytes, read from PyKMIP's
 * database, appear in no file, log or output we write); data keys through kms://kmip equal the
 * cluster-kms derivation, are the same for two KMS instances ("two control planes"), for separate
 * processes and across a server restart; every refusal says why (wrong client certificate, wrong
 * server CA, wrong server name, another tenant, server down, server silent, tampered blob, KEK
 * revoked, KEK destroyed), and after revoke/destroy a fresh kms_open cannot get the data key.
 *
 * argv[1] = pykmip.sh, argv[2] = fake-kmip.py (a scripted server for the key states PyKMIP cannot
 * show and for the retry rules). Responses are captured into <dir>/capture (seeds for fuzz/kmip). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "crypto/hkdf.h"
#include "kmip/kmip.h"
#include "kmip/wrap.h"
#include "kms/kms.h"

static const char *harness, *fake_server;
static char dir[PATH_MAX / 2];
static int port;
static int saved_stderr = -1;
static unsigned n_captured;
static char *kek_uids[16];
static size_t n_kek_uids;

_printf_(1, 2) static int sh(const char *fmt, ...) {
        char cmd[2 * PATH_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        int s = system(cmd);
        return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

static int read_port(void) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/port", dir);
        uint8_t *d = NULL;
        size_t n;
        if (read_full_file(p, 64, &d, &n) < 0)
                return -1;
        int v = atoi((char *) d);
        free(d);
        return v;
}

static int server_start(int want_port) {
        if (want_port > 0)
                (void) sh("bash %s start %s %d >/dev/null", harness, dir, want_port);
        else
                (void) sh("bash %s start %s >/dev/null", harness, dir);
        port = read_port();
        return port > 0 ? 0 : -1;
}

static void server_stop(void) {
        (void) sh("bash %s stop %s", harness, dir);
}

static int group_setup(void **state) {
        const char *bin = getenv("CT_BINARY_DIR");
        snprintf(dir, sizeof(dir), "%s/kmip-test-XXXXXX", bin ? bin : "/tmp");
        if (!mkdtemp(dir)) {
                fprintf(stderr, "mkdtemp %s: %m\n", dir);
                return -1;
        }
        char owner[32];
        snprintf(owner, sizeof(owner), "%d", (int) getpid());
        setenv("PYKMIP_OWNER_PID", owner, 1);
        int rc = sh("bash %s pki %s", harness, dir);
        if (rc != 0) {
                fprintf(stderr, "test-kmip: making the test PKI failed (%d); is pykmip-server installed?\n", rc);
                return -1;
        }
        if (server_start(0) < 0) {
                fprintf(stderr, "test-kmip: pykmip-server did not start (see %s/server.log)\n", dir);
                return -1;
        }
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/capture", dir);
        (void) mkdir(p, 0700);
        /* Everything this process and its children log goes to a file in the test directory, which
         * the last test searches for the KEK's bytes; teardown copies it back to stderr. */
        snprintf(p, sizeof(p), "%s/test-stderr.log", dir);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -1;
        fflush(stderr);
        saved_stderr = dup(2);
        dup2(fd, 2);
        close(fd);
        log_set_max_level(LOG_LEVEL_TRACE);
        return 0;
}

static int group_teardown(void **state) {
        server_stop();
        if (saved_stderr >= 0) {
                fflush(stderr);
                dup2(saved_stderr, 2);
                close(saved_stderr);
                (void) sh("cat %s/test-stderr.log >&2", dir);
        }
        for (size_t i = 0; i < n_kek_uids; i++)
                free(kek_uids[i]);
        if (getenv("KMIP_TEST_KEEP"))
                fprintf(stderr, "test-kmip: kept %s\n", dir);
        else
                (void) sh("rm -rf %s", dir);
        return 0;
}

static void capture(void *userdata, uint32_t op, const uint8_t *msg, size_t len) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/capture/op%02x-%03u.ttlv", dir, op, n_captured++);
        (void) write_file_atomic(p, msg, len, 0600);
}

static char *path_of(const char *name) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void load_config(kmip_config *c, const char *client, const char *ca) {
        char cert[64], key[64], cap[64], ep[64];
        snprintf(cert, sizeof(cert), "%s.pem", client);
        snprintf(key, sizeof(key), "%s.key", client);
        snprintf(cap, sizeof(cap), "%s.pem", ca);
        snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
        _cleanup_free_ char *pc = path_of(cert), *pk = path_of(key), *pa = path_of(cap);
        kmip_uri_params p = { .endpoint = ep, .client_cert = pc, .client_key = pk, .server_ca = pa };
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kmip_config_from_params(&p, c, &err), 0);
}

static kmip_client *client_for(const char *client, const char *ca) {
        kmip_config c;
        load_config(&c, client, ca);
        kmip_client *k = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kmip_client_new(&c, &k, &err), 0);
        kmip_config_done(&c);
        kmip_client_set_response_hook(k, capture, NULL);
        return k;
}

static void expect_error(int r, const ct_error *err, const char *layer, const char *reason) {
        char buf[1024];
        if (r >= 0)
                fail_msg("expected %s: %s, got success", layer, reason);
        if (!ct_error_is_set(err) || !streq(err->layer, layer) || !streq(err->reason, reason))
                fail_msg("expected %s: %s, got %d \"%s\"", layer, reason, r, ct_error_format(err, buf, sizeof(buf)));
        /* For the log: what an operator would read. */
        fprintf(stderr, "refused as expected: %s\n", ct_error_format(err, buf, sizeof(buf)));
}

static char *make_kek(kmip_client *c, const char *name) {
        char *uid = NULL;
        ct_error err = CT_ERROR_INIT;
        char buf[1024];
        int r = kmip_create_aes_key(c, 256, KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT, name, &uid, &err);
        if (r < 0)
                fail_msg("create: %s", ct_error_format(&err, buf, sizeof(buf)));
        r = kmip_activate(c, uid, &err);
        if (r < 0)
                fail_msg("activate: %s", ct_error_format(&err, buf, sizeof(buf)));
        assert_true(n_kek_uids < ELEMENTSOF(kek_uids));
        kek_uids[n_kek_uids++] = strdup(uid);
        return uid;
}

struct wrapped {
        char *uid;
        secret_t *master, *salt;
        uint8_t *blob;
        size_t blob_len;
};

static void wrapped_done(struct wrapped *w) {
        free(w->uid);
        secret_free(w->master);
        secret_free(w->salt);
        free(w->blob);
}

static void make_wrapped(kmip_client *c, const char *name, struct wrapped *w) {
        *w = (struct wrapped) { 0 };
        w->uid = make_kek(c, name);
        w->master = secret_new(32);
        w->salt = secret_new(32);
        assert_int_equal(RAND_bytes(w->master->data, 32), 1);
        assert_int_equal(RAND_bytes(w->salt->data, 32), 1);
        ct_error err = CT_ERROR_INIT;
        char buf[1024];
        int r = kmip_wrap_master_secret(c, w->uid, w->master, w->salt, &w->blob, &w->blob_len, &err);
        if (r < 0)
                fail_msg("wrap: %s", ct_error_format(&err, buf, sizeof(buf)));
        assert_int_equal(w->blob_len, KMIP_WRAP_OVERHEAD + 32);
}

static char *uri_for(const struct wrapped *w, const uint8_t *blob, size_t blob_len, const secret_t *salt,
                     const char *client, const char *ca, const char *extra) {
        char cert[64], key[64], cap[64], ep[64];
        snprintf(cert, sizeof(cert), "%s.pem", client);
        snprintf(key, sizeof(key), "%s.key", client);
        snprintf(cap, sizeof(cap), "%s.pem", ca);
        snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
        _cleanup_free_ char *pc = path_of(cert), *pk = path_of(key), *pa = path_of(cap);
        kmip_uri_parts parts = {
                .endpoint = ep, .kek = w->uid, .client_cert = pc, .client_key = pk, .server_ca = pa,
                .wrapped = blob ? blob : w->blob, .wrapped_len = blob ? blob_len : w->blob_len,
                .salt = salt ? salt : w->salt,
        };
        char *uri = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kmip_uri_build(&parts, &uri, &err), 0);
        if (extra) {
                char *u2 = NULL;
                assert_true(asprintf(&u2, "%s%s", uri, extra) > 0);
                free(uri);
                uri = u2;
        }
        return uri;
}

static void assert_data_key(kms *k, const struct wrapped *w, const char *id) {
        secret_t *got = NULL, *want = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kms_get_data_key(k, id, 32, &got, &err), 0);
        assert_int_equal(kdf_data_key(w->master, w->salt, id, 32, &want), 0);
        assert_true(ct_memeq(got->data, got->len, want->data, want->len));
        secret_free(got);
        secret_free(want);
}

static void test_create_and_state(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        ct_error err = CT_ERROR_INIT;
        char *uid = NULL;
        assert_int_equal(kmip_create_aes_key(c, 256, KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT, "cluster-kek", &uid,
                                             &err),
                         0);
        kek_uids[n_kek_uids++] = strdup(uid);
        kmip_key_info info;
        assert_int_equal(kmip_get_key_info(c, uid, &info, &err), 0);
        assert_int_equal(info.state, KMIP_STATE_PRE_ACTIVE);
        assert_int_equal(info.algorithm, 3);
        assert_int_equal(info.length, 256);
        assert_int_equal(info.usage_mask, KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT);

        /* A Pre-Active KEK does not wrap. */
        _cleanup_secret_ secret_t *m = secret_new(32), *s = secret_new(32);
        uint8_t *blob = NULL;
        size_t bl;
        int r = kmip_wrap_master_secret(c, uid, m, s, &blob, &bl, &err);
        expect_error(r, &err, "kmip", "permission-denied");

        assert_int_equal(kmip_activate(c, uid, NULL), 0);
        assert_int_equal(kmip_get_key_info(c, uid, &info, NULL), 0);
        assert_int_equal(info.state, KMIP_STATE_ACTIVE);

        /* No such object. */
        ct_error e2 = CT_ERROR_INIT;
        r = kmip_get_key_info(c, "999999", &info, &e2);
        expect_error(r, &e2, "kmip", "item-not-found");

        /* One TLS connection served all of this. */
        unsigned connects, requests;
        kmip_client_stats(c, &connects, &requests);
        assert_int_equal(connects, 1);
        assert_true(requests >= 6);
        free(uid);
}

static void test_wrap_open_derive(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        struct wrapped w;
        make_wrapped(c, "wrap-open-derive", &w);
        _cleanup_erase_free_ char *uri = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);

        /* Two control planes: two KMS instances from the same URI. */
        kms *a = NULL, *b = NULL;
        ct_error err = CT_ERROR_INIT;
        char buf[1024];
        if (kms_open(uri, KMS_URI_NO_STORE, &a, &err) < 0)
                fail_msg("kms_open: %s", ct_error_format(&err, buf, sizeof(buf)));
        assert_int_equal(kms_open(uri, NULL, &b, &err), 0);
        assert_string_equal(kms_backend_name(a), "kmip");
        static const char *const ids[] = { "measurementSecret", "ca_emergency_ssh",
                                           "3c5e6f2a-9d1b-4c7e-8a0f-1b2c3d4e5f60" };
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                assert_data_key(a, &w, ids[i]);
                assert_data_key(b, &w, ids[i]);
        }
        kms_free(a);
        kms_free(b);

        /* The unwrap itself, on the test's client (its responses are captured as fuzz seeds). */
        _cleanup_secret_ secret_t *m = NULL;
        if (kmip_unwrap_master_secret(c, w.uid, w.blob, w.blob_len, w.salt, &m, &err) < 0)
                fail_msg("unwrap: %s", ct_error_format(&err, buf, sizeof(buf)));
        assert_true(ct_memeq(m->data, m->len, w.master->data, w.master->len));

        /* The same through inline base64 credentials and an IP server-name. */
        _cleanup_free_ char *pc = path_of("client.pem"), *pk = path_of("client.key"), *pa = path_of("ca.pem");
        uint8_t *d;
        size_t n;
        const char *files[] = { pc, pk, pa };
        char *inl[3];
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(read_full_file(files[i], 65536, &d, &n), 0);
                char *b64 = base64_encode(d, n, BASE64_URL_RAW);
                assert_true(asprintf(&inl[i], "base64:%s", b64) > 0);
                erase_and_free(b64);
                erase_memory(d, n);
                free(d);
        }
        char ep[64];
        snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
        kmip_uri_parts parts = { .endpoint = ep, .kek = w.uid, .client_cert = inl[0], .client_key = inl[1],
                                 .server_ca = inl[2], .server_name = "127.0.0.1", .wrapped = w.blob,
                                 .wrapped_len = w.blob_len, .salt = w.salt };
        _cleanup_erase_free_ char *uri2 = NULL;
        assert_int_equal(kmip_uri_build(&parts, &uri2, &err), 0);
        for (size_t i = 0; i < 3; i++)
                erase_and_free(inl[i]);
        if (kms_open(uri2, NULL, &a, &err) < 0)
                fail_msg("kms_open (inline): %s", ct_error_format(&err, buf, sizeof(buf)));
        assert_data_key(a, &w, "measurementSecret");
        kms_free(a);

        /* A DNS server-name the certificate carries. */
        _cleanup_erase_free_ char *uri3 = uri_for(&w, NULL, 0, NULL, "client", "ca", "&server-name=kmip.test");
        assert_int_equal(kms_open(uri3, NULL, &a, &err), 0);
        kms_free(a);
        wrapped_done(&w);
}

/* kms_open in a child process; the child reports SHA-256 of the data key through a pipe. */
static int child_key_hash(const char *uri, const char *id, uint8_t ret[32]) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(p[0]);
                kms *k = NULL;
                secret_t *key = NULL;
                uint8_t h[32];
                if (kms_open(uri, NULL, &k, NULL) < 0 || kms_get_data_key(k, id, 32, &key, NULL) < 0)
                        _exit(3);
                SHA256(key->data, key->len, h);
                secret_free(key);
                kms_free(k);
                _exit(write(p[1], h, 32) == 32 ? 0 : 4);
        }
        close(p[1]);
        ssize_t n = read(p[0], ret, 32);
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 && n == 32 ? 0 : -1;
}

static void test_processes_and_restart(void **state) {
        struct wrapped w;
        {
                _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
                make_wrapped(c, "processes-restart", &w);
        }
        _cleanup_erase_free_ char *uri = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        _cleanup_secret_ secret_t *want = NULL;
        assert_int_equal(kdf_data_key(w.master, w.salt, "measurementSecret", 32, &want), 0);
        uint8_t want_hash[32], h1[32], h2[32], h3[32];
        SHA256(want->data, want->len, want_hash);
        assert_int_equal(child_key_hash(uri, "measurementSecret", h1), 0);
        assert_int_equal(child_key_hash(uri, "measurementSecret", h2), 0);
        assert_memory_equal(h1, want_hash, 32);
        assert_memory_equal(h2, want_hash, 32);

        /* A client holding a connection across a server restart reconnects by itself. */
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        kmip_key_info info;
        assert_int_equal(kmip_get_key_info(c, w.uid, &info, NULL), 0);
        int old_port = port;
        server_stop();
        assert_int_equal(server_start(old_port), 0);
        if (port != old_port) {
                /* The port was taken meanwhile: rebuild the URI (the KEK and blob are unchanged). */
                erase_and_free(uri);
                uri = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        } else {
                ct_error err = CT_ERROR_INIT;
                char buf[1024];
                if (kmip_get_key_info(c, w.uid, &info, &err) < 0)
                        fail_msg("after restart: %s", ct_error_format(&err, buf, sizeof(buf)));
                unsigned connects;
                kmip_client_stats(c, &connects, NULL);
                assert_int_equal(connects, 2);
        }
        assert_int_equal(child_key_hash(uri, "measurementSecret", h3), 0);
        assert_memory_equal(h3, want_hash, 32);
        wrapped_done(&w);
}

static void expect_open_refused(const char *uri, const char *layer, const char *reason) {
        kms *k = NULL;
        ct_error err = CT_ERROR_INIT;
        int r = kms_open(uri, NULL, &k, &err);
        assert_null(k);
        expect_error(r, &err, layer, reason);
}

static void test_tampered(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        struct wrapped w;
        make_wrapped(c, "tampered", &w);
        uint8_t *blob = malloc(w.blob_len);
        /* A flipped ciphertext byte, a flipped tag byte, a flipped nonce byte. */
        size_t at[] = { w.blob_len - 1, 1 + KMIP_GCM_NONCE_SIZE, 1 };
        for (size_t i = 0; i < ELEMENTSOF(at); i++) {
                memcpy(blob, w.blob, w.blob_len);
                blob[at[i]] ^= 0x01;
                _cleanup_erase_free_ char *uri = uri_for(&w, blob, w.blob_len, NULL, "client", "ca", NULL);
                expect_open_refused(uri, "kmip", "unwrap-failed");
        }
        {
                _cleanup_secret_ secret_t *m = NULL;
                ct_error err = CT_ERROR_INIT;
                int r = kmip_unwrap_master_secret(c, w.uid, blob, w.blob_len, w.salt, &m, &err);
                expect_error(r, &err, "kmip", "unwrap-failed");
                assert_null(m);
        }
        /* The right blob with another salt: the AAD binds the salt. */
        _cleanup_secret_ secret_t *salt2 = secret_new_copy(w.salt->data, w.salt->len);
        salt2->data[0] ^= 0x80;
        _cleanup_erase_free_ char *u1 = uri_for(&w, NULL, 0, salt2, "client", "ca", NULL);
        expect_open_refused(u1, "kmip", "unwrap-failed");
        /* Unknown version; truncated. */
        memcpy(blob, w.blob, w.blob_len);
        blob[0] = 0x02;
        _cleanup_erase_free_ char *u2 = uri_for(&w, blob, w.blob_len, NULL, "client", "ca", NULL);
        expect_open_refused(u2, "kmip", "bad-wrapped");
        _cleanup_erase_free_ char *u3 = uri_for(&w, w.blob, KMIP_WRAP_OVERHEAD + 8, NULL, "client", "ca", NULL);
        expect_open_refused(u3, "kmip", "bad-wrapped");
        /* The blob under another KEK id (a second KEK of the same owner). */
        _cleanup_free_ char *other = make_kek(c, "other-kek");
        struct wrapped w2 = w;
        w2.uid = other;
        _cleanup_erase_free_ char *u4 = uri_for(&w2, NULL, 0, NULL, "client", "ca", NULL);
        expect_open_refused(u4, "kmip", "unwrap-failed");
        /* Missing parameters are the kms layer's. */
        expect_open_refused("kms://kmip?endpoint=127.0.0.1:1&kek=1", "kms", "parameter-missing");
        free(blob);
        wrapped_done(&w);
}

static void test_tls_refusals(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        struct wrapped w;
        make_wrapped(c, "tls-refusals", &w);
        /* A client certificate from a CA the server does not trust. */
        _cleanup_erase_free_ char *u1 = uri_for(&w, NULL, 0, NULL, "rogue-client", "ca", NULL);
        expect_open_refused(u1, "kmip", "tls-client-cert-refused");
        /* A server CA that did not issue the server's certificate. */
        _cleanup_erase_free_ char *u2 = uri_for(&w, NULL, 0, NULL, "client", "rogue-ca", NULL);
        expect_open_refused(u2, "kmip", "server-ca-mismatch");
        /* The right CA, but a name the server certificate does not carry. */
        _cleanup_erase_free_ char *u3 = uri_for(&w, NULL, 0, NULL, "client", "ca", "&server-name=kms.example.com");
        expect_open_refused(u3, "kmip", "server-name-mismatch");
        _cleanup_erase_free_ char *u4 = uri_for(&w, NULL, 0, NULL, "client", "ca", "&server-name=127.0.0.2");
        expect_open_refused(u4, "kmip", "server-name-mismatch");
        /* The right CA, but a certificate not meant for client authentication (EKU serverAuth
         * only): the server's TLS stack refuses it (alert unsupported certificate). */
        _cleanup_erase_free_ char *u6 = uri_for(&w, NULL, 0, NULL, "no-client-eku", "ca", NULL);
        expect_open_refused(u6, "kmip", "tls-client-cert-refused");
        /* Another tenant of the same server: authenticated, but not the KEK's owner. */
        _cleanup_erase_free_ char *u5 = uri_for(&w, NULL, 0, NULL, "other", "ca", NULL);
        expect_open_refused(u5, "kmip", "permission-denied");
        /* The refusals were not retried: no extra connections were made on the good client. */
        wrapped_done(&w);
}

static void test_server_down_and_silent(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        struct wrapped w;
        make_wrapped(c, "server-down", &w);
        /* A port nobody listens on. */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);
        assert_int_equal(bind(s, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *) &a, &al), 0);
        int dead_port = ntohs(a.sin_port);
        close(s);
        int real_port = port;
        port = dead_port;
        _cleanup_erase_free_ char *u1 = uri_for(&w, NULL, 0, NULL, "client", "ca", "&attempts=3");
        {
                kms *k = NULL;
                ct_error err = CT_ERROR_INIT;
                int r = kms_open(u1, NULL, &k, &err);
                expect_error(r, &err, "kmip", "server-down");
                assert_non_null(strstr(err.detail, "3 attempts")); /* transport failures are retried */
        }

        /* A server that accepts TCP and then says nothing: bounded by timeout-ms per attempt. */
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        a.sin_port = 0;
        assert_int_equal(bind(s, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(s, 8), 0);
        al = sizeof(a);
        assert_int_equal(getsockname(s, (struct sockaddr *) &a, &al), 0);
        port = ntohs(a.sin_port);
        _cleanup_erase_free_ char *u2 = uri_for(&w, NULL, 0, NULL, "client", "ca", "&timeout-ms=300&attempts=2");
        expect_open_refused(u2, "kmip", "server-timeout");
        close(s);
        port = real_port;

        /* The real server is down: stop it, refuse, start it again on the same port. */
        server_stop();
        _cleanup_erase_free_ char *u3 = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        expect_open_refused(u3, "kmip", "server-down");
        assert_int_equal(server_start(real_port), 0);
        wrapped_done(&w);
}

static void test_revoke_shreds(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        struct wrapped w;
        make_wrapped(c, "revoked", &w);
        _cleanup_erase_free_ char *uri = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        kms *k = NULL;
        assert_int_equal(kms_open(uri, NULL, &k, NULL), 0);
        assert_data_key(k, &w, "measurementSecret");
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kmip_revoke(c, w.uid, KMIP_REVOKE_CESSATION_OF_OPERATION, &err), 0);
        /* A running instance keeps what it unwrapped (documented); a fresh open cannot. */
        assert_data_key(k, &w, "measurementSecret");
        kms_free(k);
        expect_open_refused(uri, "kmip", "kek-revoked");
        {
                /* A KMIP error result is never retried: exactly the Decrypt and the Get Attributes
                 * that explains it, on the same connection. */
                unsigned connects0, requests0, connects1, requests1;
                kmip_client_stats(c, &connects0, &requests0);
                _cleanup_secret_ secret_t *m = NULL;
                ct_error e2 = CT_ERROR_INIT;
                int r = kmip_unwrap_master_secret(c, w.uid, w.blob, w.blob_len, w.salt, &m, &e2);
                expect_error(r, &e2, "kmip", "kek-revoked");
                kmip_client_stats(c, &connects1, &requests1);
                assert_int_equal(connects1, connects0);
                assert_int_equal(requests1 - requests0, 2);
        }
        kmip_key_info info;
        assert_int_equal(kmip_get_key_info(c, w.uid, &info, NULL), 0);
        assert_int_equal(info.state, KMIP_STATE_DEACTIVATED);

        /* Key Compromise: Compromised, refused the same way. */
        struct wrapped w2;
        make_wrapped(c, "compromised", &w2);
        _cleanup_erase_free_ char *uri2 = uri_for(&w2, NULL, 0, NULL, "client", "ca", NULL);
        assert_int_equal(kmip_revoke(c, w2.uid, KMIP_REVOKE_KEY_COMPROMISE, NULL), 0);
        expect_open_refused(uri2, "kmip", "kek-revoked");
        wrapped_done(&w);
        wrapped_done(&w2);
}

static void test_destroy_shreds(void **state) {
        _cleanup_(kmip_client_freep) kmip_client *c = client_for("client", "ca");
        struct wrapped w;
        make_wrapped(c, "destroyed", &w);
        _cleanup_erase_free_ char *uri = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        kms *k = NULL;
        assert_int_equal(kms_open(uri, NULL, &k, NULL), 0);
        kms_free(k);
        ct_error err = CT_ERROR_INIT;
        /* An Active key is not destroyed (KMIP §4.21): revoke first. */
        int r = kmip_destroy(c, w.uid, &err);
        expect_error(r, &err, "kmip", "permission-denied");
        assert_int_equal(kmip_revoke(c, w.uid, KMIP_REVOKE_CESSATION_OF_OPERATION, NULL), 0);
        assert_int_equal(kmip_destroy(c, w.uid, NULL), 0);
        /* PyKMIP deletes a destroyed object; servers that keep it say Destroyed (kek-destroyed). */
        expect_open_refused(uri, "kmip", "item-not-found");
        wrapped_done(&w);
}

static int fake_pipe = -1;

/* Starts fake-kmip.py in `mode`; returns its pid and sets the global port. */
static pid_t fake_start(const char *mode) {
        assert_non_null(fake_server);
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(p[1], 1);
                execl("/usr/bin/python3", "python3", fake_server, dir, mode, (char *) NULL);
                _exit(127);
        }
        close(p[1]);
        /* Up to the newline; the pipe stays open until fake_stop (a closed pipe would kill the
         * server with EPIPE on any later write to its stdout). */
        char line[32] = "";
        size_t got = 0;
        while (got < sizeof(line) - 1 && !memchr(line, '\n', got)) {
                ssize_t n = read(p[0], line + got, sizeof(line) - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        fake_pipe = p[0];
        port = atoi(line);
        assert_true(port > 0);
        return pid;
}

static void fake_stop(pid_t pid) {
        if (fake_pipe >= 0)
                close(fake_pipe);
        fake_pipe = -1;
        kill(pid, SIGTERM);
        int st;
        (void) waitpid(pid, &st, 0);
}

static int fake_count(void) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/fake-count", dir);
        uint8_t *d = NULL;
        size_t n;
        if (read_full_file(p, 64, &d, &n) < 0)
                return 0;
        int v = atoi((char *) d);
        free(d);
        return v; /* requests the fake server has read so far */
}

/* What PyKMIP cannot show: a server that keeps destroyed objects (State Destroyed), a Pre-Active
 * KEK, and the retry rules on a server that hangs up after reading a request. */
static void test_scripted_server(void **state) {
        int real_port = port;
        struct wrapped w = { .uid = strdup("1") };
        w.salt = secret_new(32);
        w.blob_len = KMIP_WRAP_OVERHEAD + 32;
        w.blob = calloc(1, w.blob_len);
        w.blob[0] = KMIP_WRAP_VERSION;

        pid_t pid = fake_start("destroyed");
        _cleanup_erase_free_ char *u1 = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        expect_open_refused(u1, "kmip", "kek-destroyed");
        fake_stop(pid);

        pid = fake_start("preactive");
        _cleanup_erase_free_ char *u2 = uri_for(&w, NULL, 0, NULL, "client", "ca", NULL);
        expect_open_refused(u2, "kmip", "kek-not-active");
        fake_stop(pid);

        pid = fake_start("close");
        (void) fake_count();
        kmip_config cfg;
        load_config(&cfg, "client", "ca");
        cfg.attempts = 3;
        cfg.backoff_ms = 10;
        kmip_client *c = NULL;
        assert_int_equal(kmip_client_new(&cfg, &c, NULL), 0);
        kmip_config_done(&cfg);
        /* Create reached the server: never repeated (it could create a second key). */
        char *uid = NULL;
        ct_error err = CT_ERROR_INIT;
        int r = kmip_create_aes_key(c, 256, KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT, NULL, &uid, &err);
        expect_error(r, &err, "kmip", "server-down");
        assert_non_null(strstr(err.detail, "1 attempt"));
        assert_int_equal(fake_count(), 1);
        /* Get Attributes is idempotent: all three attempts. */
        kmip_key_info info;
        ct_error e2 = CT_ERROR_INIT;
        r = kmip_get_key_info(c, "1", &info, &e2);
        expect_error(r, &e2, "kmip", "server-down");
        assert_non_null(strstr(e2.detail, "3 attempts"));
        assert_int_equal(fake_count(), 1 + 3);
        kmip_client_free(c);
        fake_stop(pid);
        port = real_port;
        wrapped_done(&w);
}

/* Reads every regular file under path (recursively) except PyKMIP's database and checks that
 * none contains the needle. */
static void scan_dir(const char *path, const uint8_t *needle, size_t nlen, const char *what, unsigned *n_files) {
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                char p[PATH_MAX];
                snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
                struct stat st;
                assert_int_equal(lstat(p, &st), 0);
                if (S_ISDIR(st.st_mode)) {
                        scan_dir(p, needle, nlen, what, n_files);
                        continue;
                }
                if (!S_ISREG(st.st_mode) || streq(de->d_name, "pykmip.db") || strncmp(de->d_name, "pykmip.db-", 10) == 0)
                        continue;
                uint8_t *data = NULL;
                size_t len = 0;
                assert_int_equal(read_full_file(p, 64 << 20, &data, &len), 0);
                if (memmem(data, len, needle, nlen))
                        fail_msg("%s of a KEK found in %s", what, p);
                free(data);
                (*n_files)++;
        }
        closedir(d);
}

static void test_kek_never_leaves_server(void **state) {
        /* The CLI ran in test-kmip-cli; here: this process's and its children's stderr, the
         * captured responses, the PKI, the server's own log and config. */
        fflush(stderr);
        for (size_t i = 0; i < n_kek_uids; i++) {
                /* Read the KEK from PyKMIP's database through a pipe (no file of ours holds it). */
                char cmd[2 * PATH_MAX];
                snprintf(cmd, sizeof(cmd),
                         "/usr/bin/python3 -c 'import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute("
                         "\"select hex(value) from managed_objects where uid=?\",(int(sys.argv[2]),)).fetchone();"
                         " print(r[0] if r else \"\")' %s/pykmip.db %s",
                         dir, kek_uids[i]);
                FILE *pf = popen(cmd, "re");
                assert_non_null(pf);
                uint8_t *hex = calloc(1, 4096);
                size_t hl = fread(hex, 1, 4095, pf);
                assert_int_equal(pclose(pf), 0);
                while (hl > 0 && (hex[hl - 1] == '\n'))
                        hex[--hl] = 0;
                if (hl == 0) {
                        free(hex); /* destroyed: nothing left to look for */
                        continue;
                }
                assert_int_equal(hl, 64);
                uint8_t raw[32];
                assert_int_equal(hex_decode_exact((char *) hex, raw, 32), 0);
                char *lower = hex_encode(raw, 32);
                char *b64 = base64_encode(raw, 32, BASE64_STD);
                char *b64u = base64_encode(raw, 32, BASE64_URL_RAW);
                unsigned n_files = 0;
                scan_dir(dir, raw, 32, "raw bytes", &n_files);
                scan_dir(dir, hex, 64, "upper-case hex", &n_files);
                scan_dir(dir, (uint8_t *) lower, 64, "lower-case hex", &n_files);
                scan_dir(dir, (uint8_t *) b64, strlen(b64) - 1, "base64", &n_files);
                scan_dir(dir, (uint8_t *) b64u, strlen(b64u) - 1, "base64url", &n_files);
                assert_true(n_files > 20);
                erase_memory(raw, sizeof(raw));
                erase_and_free((char *) hex);
                erase_and_free(lower);
                erase_and_free(b64);
                erase_and_free(b64u);
        }
        /* The captured responses are the fuzz seeds; there must be some of every kind. */
        assert_true(n_captured > 20);
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: test-kmip pykmip.sh fake-kmip.py\n");
                return 2;
        }
        harness = argv[1];
        fake_server = argc > 2 ? argv[2] : NULL;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_create_and_state),
                cmocka_unit_test(test_wrap_open_derive),
                cmocka_unit_test(test_processes_and_restart),
                cmocka_unit_test(test_tampered),
                cmocka_unit_test(test_tls_refusals),
                cmocka_unit_test(test_server_down_and_silent),
                cmocka_unit_test(test_revoke_shreds),
                cmocka_unit_test(test_destroy_shreds),
                cmocka_unit_test(test_scripted_server),
                cmocka_unit_test(test_kek_never_leaves_server),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
