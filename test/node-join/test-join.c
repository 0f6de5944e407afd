/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-joinservice on the host, for real: the service binary with a cluster PKI (lib/pki),
 * a cluster KMS URI, the attestation configuration built from a swtpm's PCRs 0-7 (PCR 15 omitted:
 * the service must enforce it anyway); joiners attest over aTLS with the qemu-vtpm issuer of their
 * own swtpm. Keys are checked against HKDF computed by python3 (not our lib/crypto), certificates
 * and the CA hash with OpenSSL from the outside. Every refusal asserts its reason: the client's gRPC
 * status, or, for aTLS refusals (which end the handshake), the reason the service logged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ctype.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>

#include "atls/qemu-vtpm.h"
#include "basic/cleanup-openssl.h"
#include "join-test-util.h"
#include "join.pb-c.h"
#include "joinclient/joinclient.h"
#include "rpc/rpc.h"

static const char *binary;
static swtpm tpm_good, tpm_pcr15, tpm_changed;
static jt_cluster cl;
static atls_issuer issuer_good;
static char endpoint[64];

static const char *uuid_upper = "0A1B2C3D-4E5F-4a6b-8c7d-9E0F1A2B3C4D";
static const char *uuid_lower = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

static void expect_key(const char *id, const uint8_t *got, size_t len) {
        uint8_t want[32];
        char info[128];
        snprintf(info, sizeof info, "key-%s", id);
        assert_int_equal(it_hkdf_python(cl.master, 32, cl.master_salt, 32, info, want), 0);
        assert_int_equal(len, 32);
        assert_memory_equal(got, want, 32);
}

static int csr_for_ip(const char *name, const char *ip, uint8_t **der, size_t *len) {
        const char *ips[] = { ip };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        ct_error err = CT_ERROR_INIT;
        return joinclient_csr_new(name, ips, 1, &key, der, len, &err);
}

static int csr_for(const char *name, uint8_t **der, size_t *len) {
        const char *ips[] = { "10.9.8.11" };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        ct_error err = CT_ERROR_INIT;
        return joinclient_csr_new(name, ips, 1, &key, der, len, &err);
}

static int join(const atls_issuer *issuer, const uint8_t *csr, size_t csr_len, const char *uuid, bool cp,
                Join__IssueJoinTicketResponse **ret, grpc_status_code *status, ct_error *err) {
        joinclient_options opt = { .issuer = issuer, .handshake_timeout_ms = 60000, .call_timeout_ms = 60000 };
        joinclient_join_request jr = { .disk_uuid = uuid, .csr = csr, .csr_len = csr_len, .control_plane = cp };
        _cleanup_secret_ secret_t *resp = NULL;
        int r = joinclient_issue_join(endpoint, &opt, &jr, &resp, status, err);
        if (r < 0)
                return r;
        *ret = join__issue_join_ticket_response__unpack(&rpc_wiping_allocator, resp->len, resp->data);
        return *ret ? 0 : -EBADMSG;
}

static void good_join(bool control_plane) {
        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        assert_int_equal(csr_for("worker-0", &csr, &csr_len), 0);
        Join__IssueJoinTicketResponse *t = NULL;
        ct_error err = CT_ERROR_INIT;
        grpc_status_code st;
        int r = join(&issuer_good, csr, csr_len, uuid_upper, control_plane, &t, &st, &err);
        if (r < 0) {
                char b[700];
                fail_msg("join: %s", ct_error_format(&err, b, sizeof b));
        }
        expect_key(uuid_lower, t->state_disk_key.data, t->state_disk_key.len);
        expect_key("measurementSecret", t->measurement_secret.data, t->measurement_secret.len);
        assert_int_equal(t->measurement_salt.len, 32);
        assert_memory_equal(t->measurement_salt.data, cl.msalt, 32);
        assert_string_equal(t->api_server_endpoint, "10.9.8.7:6443");
        /* kubeadm's token shape */
        assert_int_equal(strlen(t->token), 23);
        for (int i = 0; i < 23; i++)
                assert_true(i == 6 ? t->token[i] == '.' : (islower((unsigned char) t->token[i]) || isdigit((unsigned char) t->token[i])));
        /* CA hash as kubeadm computes it, by the openssl CLI */
        _cleanup_free_ char *hash = NULL;
        assert_int_equal(it_run(&hash, "openssl x509 -in '%s/ca.crt' -pubkey -noout | openssl pkey -pubin -outform der | "
                                       "sha256sum | cut -c1-64", cl.pki_dir), 0);
        assert_true(strncmp(t->discovery_token_ca_cert_hash, "sha256:", 7) == 0);
        assert_memory_equal(t->discovery_token_ca_cert_hash + 7, hash, 64);
        /* the kubelet certificate: verified by openssl against the CA, subject and EKU */
        char path[300], cmd_out[300];
        snprintf(path, sizeof path, "%s/kubelet.der", cl.tmp);
        it_write(path, t->kubelet_cert.data, t->kubelet_cert.len, 0600);
        _cleanup_free_ char *out = NULL;
        assert_int_equal(it_run(&out, "openssl x509 -inform der -in '%s' -out '%s.pem' && openssl verify -CAfile '%s/ca.crt' "
                                      "'%s.pem' && openssl x509 -in '%s.pem' -noout -subject -ext extendedKeyUsage,subjectAltName",
                                path, path, cl.pki_dir, path, path),
                         0);
        snprintf(cmd_out, sizeof cmd_out, "%s", out);
        assert_non_null(strstr(out, "O = system:nodes, CN = system:node:worker-0"));
        assert_non_null(strstr(out, "TLS Web Client Authentication"));
        assert_non_null(strstr(out, "IP Address:10.9.8.11"));
        if (control_plane) {
                static const char *names[] = { "ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key",
                                               "ca.crt", "sa.pub", "front-proxy-ca.crt", "etcd/ca.crt" };
                assert_int_equal(t->n_control_plane_files, 8);
                for (size_t i = 0; i < 8; i++) {
                        assert_string_equal(t->control_plane_files[i]->name, names[i]);
                        snprintf(path, sizeof path, "%s/%s", cl.pki_dir, names[i]);
                        _cleanup_free_ uint8_t *f = NULL;
                        size_t flen = 0;
                        assert_int_equal(read_full_file(path, 1 << 20, &f, &flen), 0);
                        assert_int_equal(t->control_plane_files[i]->data.len, flen);
                        assert_memory_equal(t->control_plane_files[i]->data.data, f, flen);
                }
        } else
                assert_int_equal(t->n_control_plane_files, 0);
        join__issue_join_ticket_response__free_unpacked(t, &rpc_wiping_allocator);
}

static void test_join_worker(void **state) {
        good_join(false);
}

static void test_join_control_plane(void **state) {
        good_join(true);
}

static void test_rejoin(void **state) {
        joinclient_options opt = { .issuer = &issuer_good, .handshake_timeout_ms = 60000 };
        const char *eps[] = { "127.0.0.1:1", endpoint }; /* the first is down: the next one answers */
        joinclient_rejoin_ticket t = { 0 };
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(joinclient_rejoin(eps, 2, &opt, uuid_lower, &t, &err), 0);
        expect_key(uuid_lower, t.state_disk_key->data, t.state_disk_key->len);
        expect_key("measurementSecret", t.measurement_secret->data, t.measurement_secret->len);
        joinclient_rejoin_ticket_done(&t);
        /* a malformed uuid is refused with its reason */
        ct_error e2 = CT_ERROR_INIT;
        assert_true(joinclient_rejoin(eps + 1, 1, &opt, "not-a-uuid", &t, &e2) < 0);
        assert_string_equal(e2.reason, "rpc-status");
        assert_non_null(strstr(e2.detail, "INVALID_ARGUMENT"));
        assert_non_null(strstr(e2.detail, "join: uuid-invalid"));
}

static void expect_status_cp(const uint8_t *csr, size_t csr_len, const char *uuid, bool cp, grpc_status_code want,
                             const char *reason) {
        Join__IssueJoinTicketResponse *t = NULL;
        ct_error err = CT_ERROR_INIT;
        grpc_status_code st = GRPC_STATUS_OK;
        size_t from = jt_log_size(&cl);
        assert_true(join(&issuer_good, csr, csr_len, uuid, cp, &t, &st, &err) < 0);
        assert_int_equal(st, want);
        if (!strstr(err.detail, reason))
                fail_msg("expected %s in: %s", reason, err.detail);
        /* logged once with its reason */
        _cleanup_free_ char *line = jt_wait_log(&cl, from, "IssueJoinTicket", reason);
        assert_non_null(line);
}

static void expect_status(const uint8_t *csr, size_t csr_len, const char *uuid, grpc_status_code want,
                          const char *reason) {
        expect_status_cp(csr, csr_len, uuid, false, want, reason);
}

/* The control-plane files only for a joiner at one of the infrastructure's control-plane addresses
 * (--control-plane-ips here, the metadata's control_plane_ips on a node): a worker's address asking
 * for them is refused and gets nothing; as a worker it still joins. */
static void test_join_control_plane_refused(void **state) {
        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        assert_int_equal(csr_for_ip("worker-5", "10.9.8.12", &csr, &csr_len), 0);
        expect_status_cp(csr, csr_len, uuid_lower, true, GRPC_STATUS_PERMISSION_DENIED,
                         "join: not-control-plane: node worker-5 (10.9.8.12) asked for the control-plane files, but "
                         "10.9.8.12 is not a control plane");
        Join__IssueJoinTicketResponse *t = NULL;
        ct_error err = CT_ERROR_INIT;
        grpc_status_code st;
        assert_int_equal(join(&issuer_good, csr, csr_len, uuid_lower, false, &t, &st, &err), 0);
        assert_int_equal(t->n_control_plane_files, 0);
        join__issue_join_ticket_response__free_unpacked(t, &rpc_wiping_allocator);
}

/* A CSR made by hand: any key, any subject. */
static void make_csr(EVP_PKEY *key, const char *o, const char *cn, uint8_t **ret, size_t *ret_len) {
        X509_REQ *req = X509_REQ_new();
        X509_NAME *name = X509_NAME_new();
        if (o)
                X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) o, -1, -1, 0);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0);
        X509_REQ_set_subject_name(req, name);
        X509_REQ_set_pubkey(req, key);
        assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
        uint8_t *der = NULL;
        int n = i2d_X509_REQ(req, &der);
        assert_true(n > 0);
        *ret = malloc((size_t) n);
        memcpy(*ret, der, (size_t) n);
        *ret_len = (size_t) n;
        OPENSSL_free(der);
        X509_NAME_free(name);
        X509_REQ_free(req);
}

static void test_bad_requests(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256"),
                                            *p384 = EVP_EC_gen("P-384");
        _cleanup_free_ uint8_t *c1 = NULL, *c2 = NULL, *c3 = NULL, *c4 = NULL, *good = NULL;
        size_t l1, l2, l3, l4, lg;
        make_csr(rsa, "system:nodes", "system:node:worker-1", &c1, &l1);
        expect_status(c1, l1, uuid_lower, GRPC_STATUS_PERMISSION_DENIED, "pki: csr-key-type: key is RSA");
        make_csr(p384, "system:nodes", "system:node:worker-1", &c4, &l4);
        expect_status(c4, l4, uuid_lower, GRPC_STATUS_PERMISSION_DENIED, "pki: csr-key-type");
        make_csr(ec, "system:masters", "system:node:worker-1", &c2, &l2);
        expect_status(c2, l2, uuid_lower, GRPC_STATUS_PERMISSION_DENIED, "pki: csr-subject: subject O is not system:nodes");
        make_csr(ec, "system:nodes", "kubernetes-admin", &c3, &l3);
        expect_status(c3, l3, uuid_lower, GRPC_STATUS_PERMISSION_DENIED, "pki: csr-subject");
        /* a corrupted CSR signature */
        assert_int_equal(csr_for("worker-1", &good, &lg), 0);
        uint8_t *bad = malloc(lg);
        memcpy(bad, good, lg);
        bad[lg - 3] ^= 0x01;
        expect_status(bad, lg, uuid_lower, GRPC_STATUS_PERMISSION_DENIED, "pki: csr-signature");
        free(bad);
        expect_status(good, lg - 1, uuid_lower, GRPC_STATUS_INVALID_ARGUMENT, "pki: csr-malformed");
        /* uuids */
        expect_status(good, lg, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4", GRPC_STATUS_INVALID_ARGUMENT, "uuid-invalid");
        expect_status(good, lg, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4g", GRPC_STATUS_INVALID_ARGUMENT, "uuid-invalid");
        expect_status(good, lg, "../../etc/passwd-0000-0000-000000000", GRPC_STATUS_INVALID_ARGUMENT, "uuid-invalid");
}

/* aTLS refusals: the client's handshake fails; the service logs the reason. */
static void expect_atls_refusal(const atls_issuer *issuer, const char *reason, const char *detail) {
        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        assert_int_equal(csr_for("worker-2", &csr, &csr_len), 0);
        size_t from = jt_log_size(&cl);
        Join__IssueJoinTicketResponse *t = NULL;
        ct_error err = CT_ERROR_INIT;
        grpc_status_code st;
        assert_true(join(issuer, csr, csr_len, uuid_lower, false, &t, &st, &err) < 0);
        assert_string_equal(err.reason, "unreachable");
        _cleanup_free_ char *line = jt_wait_log(&cl, from, reason, detail);
        if (!line)
                fail_msg("the service did not log \"%s\" / \"%s\"", reason, detail ?: "");
        /* never a secret in the log: the master secret and salt (hex and base64url) */
        _cleanup_free_ char *mh = hex_encode(cl.master, 32);
        assert_null(strstr(line, mh));
}

static void test_pcr15_set(void **state) {
        atls_issuer i = atls_qemu_vtpm_issuer(tpm_pcr15.tcti);
        expect_atls_refusal(&i, "evidence-measurements", "at index 15 (expected 0000000000000000000000000000000000000000000000000000000000000000)");
}

static void test_changed_measurement(void **state) {
        atls_issuer i = atls_qemu_vtpm_issuer(tpm_changed.tcti);
        expect_atls_refusal(&i, "evidence-measurements", "at index 4");
}

static void test_wrong_variant(void **state) {
        atls_issuer i = atls_dummy_issuer();
        expect_atls_refusal(&i, "no-evidence", NULL);
}

/* A captured document replayed: the issuer hands out the first document it made (bound to the
 * first server's nonce) for every later handshake. */
static uint8_t *captured;
static size_t captured_len;
static int replay_issue(void *userdata, const uint8_t *ud, size_t ud_len, const uint8_t *nonce, size_t nonce_len,
                        uint8_t **ret, size_t *ret_len, atls_error *err) {
        if (!captured) {
                int r = issuer_good.issue(issuer_good.userdata, ud, ud_len, nonce, nonce_len, &captured, &captured_len, err);
                if (r < 0)
                        return r;
        }
        *ret = malloc(captured_len);
        memcpy(*ret, captured, captured_len);
        *ret_len = captured_len;
        return 0;
}

static void test_replay(void **state) {
        atls_issuer i = issuer_good;
        i.issue = replay_issue;
        /* first handshake: the document is fresh, the join succeeds */
        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        assert_int_equal(csr_for("worker-3", &csr, &csr_len), 0);
        Join__IssueJoinTicketResponse *t = NULL;
        ct_error err = CT_ERROR_INIT;
        grpc_status_code st;
        assert_int_equal(join(&i, csr, csr_len, uuid_lower, false, &t, &st, &err), 0);
        join__issue_join_ticket_response__free_unpacked(t, &rpc_wiping_allocator);
        /* second: the same document against a new server nonce */
        expect_atls_refusal(&i, "evidence-nonce", NULL);
        free(captured);
        captured = NULL;
}

/* Clients that connect and never finish the handshake do not stall a good joiner. */
static void test_stalled_clients(void **state) {
        int fds[16];
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) cl.port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                assert_int_equal(connect(fds[i], (struct sockaddr *) &a, sizeof a), 0);
                if (i % 2)
                        assert_int_equal(write(fds[i], "\x16\x03\x01\x02\x00\x01", 6), 6); /* half a ClientHello */
        }
        good_join(false);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}

/* Tests that run a second service on the same cluster files swap it into `cl` and `endpoint`;
 * restore_cluster (their cmocka teardown) stops it and puts the group's service back even when an
 * assertion ended the test early, so one failing test cannot make the following ones fail too. */
static jt_cluster saved_cl;
static char saved_endpoint[64];
static bool swapped;

static void swap_cluster(void) {
        saved_cl = cl;
        memcpy(saved_endpoint, endpoint, sizeof saved_endpoint);
        swapped = true;
        cl.pid = -1;
}

static int stop_swapped(void) {
        int st = jt_stop(&cl);
        cl = saved_cl;
        memcpy(endpoint, saved_endpoint, sizeof endpoint);
        swapped = false;
        return st;
}

static int restore_cluster(void **state) {
        (void) state;
        if (swapped)
                (void) stop_swapped();
        return 0;
}

/* The bounds: with 4 connections at most and a 1 s handshake bound, 4 clients that never finish
 * their handshake fill the service; a fifth connection is closed at accept (too-many-connections,
 * logged); the stalled ones are cut after the bound (timeout, logged), and a good joiner gets its
 * ticket while the stalled sockets are still open on the client side. */
static void test_bounds(void **state) {
        /* a second service on the same cluster files */
        swap_cluster();
        snprintf(cl.log_path, sizeof cl.log_path, "%s/joinservice-bounds.log", cl.tmp);
        snprintf(cl.notify_path, sizeof cl.notify_path, "%s/notify2", cl.tmp);
        jt_start_args(&cl, binary, "--max-connections", "4", "--handshake-timeout", "1000");
        snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", cl.port);
        int fds[4];
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) cl.port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                assert_int_equal(connect(fds[i], (struct sockaddr *) &a, sizeof a), 0);
        }
        /* every slot is taken until the bound cuts them */
        _cleanup_free_ char *full = NULL;
        for (int attempt = 0; attempt < 100 && !full; attempt++) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) cl.port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                assert_int_equal(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
                char b;
                (void) !read(fd, &b, 1); /* closed by the service */
                close(fd);
                full = jt_wait_log(&cl, 0, "too-many-connections: 4 connections open", NULL);
        }
        assert_non_null(full);
        _cleanup_free_ char *cut = jt_wait_log(&cl, 0, "timeout: aTLS handshake did not finish within 1000 ms", NULL);
        assert_non_null(cut);
        good_join(false);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
        assert_int_equal(stop_swapped(), 0);
}

/* --kubeadm: the bootstrap token is registered with `kubeadm token create <token> --ttl 15m0s
 * --kubeconfig <admin.conf>` before the ticket goes out (a stand-in kubeadm records its arguments);
 * a kubeadm that fails makes the join fail with token-failed and no ticket; no kubeadm at the path
 * (no Kubernetes layer) gives a ticket without a token. */
static void test_kubeadm_token(void **state) {
        char script[300], args[300], fail_flag[300];
        swap_cluster();
        snprintf(script, sizeof script, "%s/kubeadm", cl.tmp);
        snprintf(args, sizeof args, "%s/kubeadm.args", cl.tmp);
        snprintf(fail_flag, sizeof fail_flag, "%s/kubeadm.fail", cl.tmp);
        char body[1200];
        int n = snprintf(body, sizeof body, "#!/bin/sh\necho \"$*\" >> '%s'\n[ -e '%s' ] && exit 1\nexit 0\n", args,
                         fail_flag);
        it_write(script, body, (size_t) n, 0755);
        snprintf(cl.log_path, sizeof cl.log_path, "%s/joinservice-kubeadm.log", cl.tmp);
        snprintf(cl.notify_path, sizeof cl.notify_path, "%s/notify3", cl.tmp);
        jt_start_args(&cl, binary, "--kubeadm", script, "--kubeconfig", "/etc/kubernetes/admin.conf");
        snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", cl.port);

        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        assert_int_equal(csr_for("worker-9", &csr, &csr_len), 0);
        Join__IssueJoinTicketResponse *t = NULL;
        ct_error err = CT_ERROR_INIT;
        grpc_status_code st;
        assert_int_equal(join(&issuer_good, csr, csr_len, uuid_lower, false, &t, &st, &err), 0);
        _cleanup_free_ uint8_t *rec = NULL;
        size_t rec_len = 0;
        assert_int_equal(read_full_file(args, 4096, &rec, &rec_len), 0);
        char want[200];
        snprintf(want, sizeof want, "token create %s --ttl 15m0s --kubeconfig /etc/kubernetes/admin.conf\n", t->token);
        assert_string_equal((char *) rec, want);
        join__issue_join_ticket_response__free_unpacked(t, &rpc_wiping_allocator);

        it_write(fail_flag, "", 0, 0600);
        expect_status(csr, csr_len, uuid_lower, GRPC_STATUS_INTERNAL, "join: token-failed");

        /* no kubeadm at the path (Init installed no Kubernetes layer): the ticket carries no token,
         * and the log says why */
        assert_int_equal(unlink(script), 0);
        assert_int_equal(join(&issuer_good, csr, csr_len, uuid_lower, false, &t, &st, &err), 0);
        assert_string_equal(t->token, "");
        assert_true(t->state_disk_key.len > 0);
        join__issue_join_ticket_response__free_unpacked(t, &rpc_wiping_allocator);
        _cleanup_free_ uint8_t *log = NULL;
        size_t log_len = 0;
        assert_int_equal(read_full_file(cl.log_path, 1 << 20, &log, &log_len), 0);
        assert_non_null(strstr((char *) log, "carries no bootstrap token"));
        assert_int_equal(stop_swapped(), 0);
}

/* ---- attestation config updates ---- */

static int push_update(const char *doc, size_t len, rpc_status *st) {
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", cl.update_port);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(target, NULL, NULL, &ch), 0);
        size_t n = len + 8;
        uint8_t *req = malloc(n), *p = req;
        *p++ = 0x0a;
        size_t v = len;
        do {
                *p++ = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v);
        memcpy(p, doc, len);
        p += len;
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        int r = rpc_unary(ch, "/joinconfig.API/UpdateAttestationConfig", req, (size_t) (p - req), 30000, &resp,
                          &resp_len, st);
        free(req);
        free(resp);
        return r;
}

static void expect_update(const char *doc, grpc_status_code want, const char *reason) {
        rpc_status st = { 0 };
        size_t from = jt_log_size(&cl);
        assert_int_equal(push_update(doc, strlen(doc), &st), 0);
        assert_int_equal(st.code, want);
        if (reason) {
                assert_non_null(st.message);
                if (!strstr(st.message, reason))
                        fail_msg("expected %s in: %s", reason, st.message);
                _cleanup_free_ char *line = jt_wait_log(&cl, from, "UpdateAttestationConfig", reason);
                assert_non_null(line);
        }
        rpc_status_done(&st);
}

static secret_t *signing_key(void) {
        uint8_t k[32];
        assert_int_equal(it_hkdf_python(cl.master, 32, cl.master_salt, 32, "key-attestationConfigSigning", k), 0);
        return secret_new_copy(k, 32);
}

static char *signed_update(const measurements *m, uint64_t version, const secret_t *key) {
        char *doc = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(joinconfig_update_sign(m, version, key, &doc, &err), 0);
        return doc;
}

static void test_config_updates(void **state) {
        _cleanup_secret_ secret_t *key = signing_key();
        measurements changed = cl.m;
        uint8_t other[32];
        memset(other, 0x44, 32);
        measurements_set(&changed, 4, other, 32, false);

        /* unsigned, tampered, signed with another cluster's key, rolled back to 0: refused */
        _cleanup_free_ char *v1 = signed_update(&changed, 1, key);
        json_t *j = json_loads(v1, 0, NULL);
        json_object_del(j, "signature");
        _cleanup_free_ char *unsigned_doc = json_dumps(j, 0);
        json_decref(j);
        expect_update(unsigned_doc, GRPC_STATUS_PERMISSION_DENIED, "signature-missing");
        j = json_loads(v1, 0, NULL);
        json_object_set_new(json_object_get(json_object_get(j, "measurements"), "4"), "warnOnly", json_true());
        _cleanup_free_ char *tampered = json_dumps(j, 0);
        json_decref(j);
        expect_update(tampered, GRPC_STATUS_PERMISSION_DENIED, "signature-invalid");
        uint8_t wk[32];
        RAND_bytes(wk, 32);
        _cleanup_secret_ secret_t *wrong = secret_new_copy(wk, 32);
        _cleanup_free_ char *foreign = signed_update(&changed, 5, wrong);
        expect_update(foreign, GRPC_STATUS_PERMISSION_DENIED, "signature-invalid");
        /* a PCR 15 other than zero cannot even be signed; forge the document to check the service */
        measurements bad15 = cl.m;
        memset(other, 0x15, 32);
        measurements_set(&bad15, 15, other, 32, false);
        _cleanup_free_ uint8_t *canon = NULL;
        size_t canon_len = 0;
        assert_int_equal(joinconfig_update_canonical(&bad15, 9, &canon, &canon_len), 0);
        uint8_t mac[32];
        unsigned mlen = 0;
        HMAC(EVP_sha256(), key->data, 32, canon, canon_len, mac, &mlen);
        _cleanup_free_ char *sig = base64_encode(mac, 32, BASE64_STD);
        json_t *o = json_pack("{s:i,s:o,s:s}", "version", 9, "measurements", measurements_to_json_object(&bad15),
                              "signature", sig);
        _cleanup_free_ char *doc15 = json_dumps(o, 0);
        json_decref(o);
        expect_update(doc15, GRPC_STATUS_INVALID_ARGUMENT, "pcr15-invalid");
        expect_update("{\"version\":1", GRPC_STATUS_INVALID_ARGUMENT, "json-invalid");

        /* the joiner still gets in: nothing changed */
        good_join(false);

        /* accepted: v1 expects another PCR 4, enforced at once and stored */
        expect_update(v1, GRPC_STATUS_OK, NULL);
        atls_issuer i = issuer_good;
        expect_atls_refusal(&i, "evidence-measurements", "at index 4");
        char path[300];
        snprintf(path, sizeof path, "%s/attestationConfig", cl.config_dir);
        _cleanup_free_ uint8_t *stored = NULL;
        size_t stored_len = 0;
        assert_int_equal(read_full_file(path, 1 << 20, &stored, &stored_len), 0);
        assert_int_equal(stored_len, strlen(v1));
        assert_memory_equal(stored, v1, stored_len);

        /* the same version again, and an older one: rollbacks */
        expect_update(v1, GRPC_STATUS_PERMISSION_DENIED, "version-rollback");

        /* v2 restores the measurements; a restart keeps v2 and still refuses v1 */
        _cleanup_free_ char *v2 = signed_update(&cl.m, 2, key);
        expect_update(v2, GRPC_STATUS_OK, NULL);
        good_join(false);
        assert_int_equal(jt_stop(&cl), 0);
        jt_start(&cl, binary);
        snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", cl.port);
        expect_update(v1, GRPC_STATUS_PERMISSION_DENIED, "version-rollback");
        good_join(false);
}

static int setup(void **state) {
        if (swtpm_start(&tpm_good) < 0 || swtpm_start(&tpm_pcr15) < 0 || swtpm_start(&tpm_changed) < 0)
                return -1;
        issuer_good = atls_qemu_vtpm_issuer(tpm_good.tcti);
        jt_cluster_setup(&cl, tpm_good.tcti);
        /* PCR 15 as after init/join (TPM2_PCR_Event with a cluster ID); PCR 4 as another boot chain */
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        uint8_t id[32];
        RAND_bytes(id, 32);
        assert_int_equal(tpm_open(tpm_pcr15.tcti, &t, NULL), 0);
        assert_int_equal(tpm_mark_bootstrapped(t, id, 32), 0);
        _cleanup_(tpm_closep) tpm_ctx *t2 = NULL;
        assert_int_equal(tpm_open(tpm_changed.tcti, &t2, NULL), 0);
        assert_int_equal(tpm_pcr_event(t2, 4, (const uint8_t *) "another kernel", 14), 0);
        jt_start(&cl, binary);
        snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", cl.port);
        return 0;
}

static int teardown(void **state) {
        int st = jt_stop(&cl);
        if (st != 0)
                fprintf(stderr, "joinservice exited with %d (see %s)\n", st, cl.log_path);
        jt_cluster_done(&cl);
        swtpm_stop(&tpm_good);
        swtpm_stop(&tpm_pcr15);
        swtpm_stop(&tpm_changed);
        return st == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s CONSTELLATION-JOINSERVICE\n", argv[0]);
                return 2;
        }
        binary = argv[1];
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_join_worker),     cmocka_unit_test(test_join_control_plane),
                cmocka_unit_test(test_join_control_plane_refused),
                cmocka_unit_test(test_rejoin),          cmocka_unit_test(test_bad_requests),
                cmocka_unit_test(test_pcr15_set),       cmocka_unit_test(test_changed_measurement),
                cmocka_unit_test(test_wrong_variant),   cmocka_unit_test(test_replay),
                cmocka_unit_test(test_stalled_clients), cmocka_unit_test_teardown(test_bounds, restore_cluster),
                cmocka_unit_test_teardown(test_kubeadm_token, restore_cluster),
                cmocka_unit_test(test_config_updates),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
