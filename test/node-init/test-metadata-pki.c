/* SPDX-License-Identifier: Apache-2.0 */
/* lib/metadata: good documents and every refusal with its reason. lib/pki: kubeadm's layout with
 * 0600 keys, idempotent re-run, half a CA refused, the kubeconfig's certificate chains (openssl
 * verify), and kubelet CSR signing (CSRs made by the openssl CLI) with every refusal's reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/x509v3.h>

#include "basic/fileio.h"
#include "basic/secret.h"
#include "init-test-util.h"
#include "metadata/metadata.h"
#include "pki/pki.h"

#define HASH "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"

static void md_bad(const char *json, const char *reason, const char *part) {
        metadata m = { 0 };
        ct_error err = CT_ERROR_INIT;
        int r = metadata_parse(json, strlen(json), &m, &err);
        if (r >= 0 || !streq(err.reason, reason) || (part && !strstr(err.detail, part)))
                fail_msg("%s: expected %s (%s), got %d %s: %s", json, reason, part ?: "", r, err.reason ?: "", err.detail);
        assert_null(m.name);
}

static void test_metadata(void **state) {
        (void) state;
        const char *good = "{\"name\":\"cp-0.example\",\"role\":\"control-plane\",\"vpc_ip\":\"10.0.0.2\","
                           "\"init_secret_hash\":\"" HASH "\",\"join_endpoints\":[\"10.0.0.3:30090\",\"[fd00::1]:30090\","
                           "\"lb.example.com:30090\"],\"uid\":\"abc-123\",\"endpoint\":\"192.0.2.1\"}";
        metadata m = { 0 };
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(metadata_parse(good, strlen(good), &m, &err), 0);
        assert_string_equal(m.name, "cp-0.example");
        assert_int_equal(m.role, METADATA_ROLE_CONTROL_PLANE);
        assert_string_equal(m.vpc_ip, "10.0.0.2");
        assert_string_equal(m.init_secret_hash, HASH);
        assert_int_equal(m.n_join_endpoints, 3);
        assert_string_equal(m.join_endpoints[1], "[fd00::1]:30090");
        assert_string_equal(m.endpoint, "192.0.2.1");
        metadata_done(&m);
        const char *v6 = "{\"name\":\"w\",\"role\":\"worker\",\"vpc_ip\":\"fd00::5\",\"endpoint\":\"fd00::1\"}";
        assert_int_equal(metadata_parse(v6, strlen(v6), &m, NULL), 0);
        assert_string_equal(m.endpoint, "fd00::1");
        metadata_done(&m);
        md_bad("{\"name\":\"w\",\"role\":\"worker\",\"vpc_ip\":\"fd00::5\",\"endpoint\":\"h:6443\"}", "bad-field", "endpoint");
        const char *worker = "{\"name\":\"w\",\"role\":\"worker\",\"vpc_ip\":\"fd00::5\"}";
        assert_int_equal(metadata_parse(worker, strlen(worker), &m, NULL), 0);
        assert_int_equal(m.role, METADATA_ROLE_WORKER);
        assert_null(m.init_secret_hash);
        metadata_done(&m);

        md_bad("", "not-json", NULL);
        md_bad("[]", "not-object", NULL);
        md_bad("{\"name\":\"a\",\"name\":\"b\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\"}", "not-json", "duplicate");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\",\"extra\":1}", "unknown-field", "extra");
        md_bad("{\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\"}", "missing-field", "name");
        md_bad("{\"name\":\"a\",\"role\":\"control-plane\",\"vpc_ip\":\"10.0.0.1\"}", "missing-field", "init_secret_hash");
        md_bad("{\"name\":\"A_b\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\"}", "bad-field", "name");
        md_bad("{\"name\":\"a\\u0000b\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\"}", "not-json", NULL);
        md_bad("{\"name\":\"a\",\"role\":\"master\",\"vpc_ip\":\"10.0.0.1\"}", "bad-field", "role");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.300\"}", "bad-field", "vpc_ip");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":1}", "bad-field", "vpc_ip");
        md_bad("{\"name\":\"a\",\"role\":\"control-plane\",\"vpc_ip\":\"10.0.0.1\",\"init_secret_hash\":\"$1$abc\"}",
               "bad-field", "bcrypt");
        md_bad("{\"name\":\"a\",\"role\":\"control-plane\",\"vpc_ip\":\"10.0.0.1\",\"init_secret_hash\":"
               "\"$2a$03$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"}",
               "bad-field", "bcrypt");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\",\"join_endpoints\":[\"10.0.0.1\"]}", "bad-field",
               "join_endpoints");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\",\"join_endpoints\":[\"h:0\"]}", "bad-field",
               "join_endpoints");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\",\"join_endpoints\":[\"h:65536\"]}", "bad-field",
               "join_endpoints");
        md_bad("{\"name\":\"a\",\"role\":\"worker\",\"vpc_ip\":\"10.0.0.1\",\"join_endpoints\":\"h:1\"}", "bad-field",
               "join_endpoints");
        char big[METADATA_MAX_SIZE + 10];
        memset(big, ' ', sizeof big);
        big[sizeof big - 1] = 0;
        md_bad(big, "too-large", NULL);

        /* reader: path override and a missing file */
        char *tmp = it_tmpdir(), p[600];
        snprintf(p, sizeof p, "%s/md.json", tmp);
        it_write(p, worker, strlen(worker), 0644);
        assert_int_equal(metadata_read(p, &m, NULL), 0);
        metadata_done(&m);
        setenv(METADATA_PATH_ENV, p, 1);
        assert_int_equal(metadata_read(NULL, &m, NULL), 0);
        metadata_done(&m);
        unsetenv(METADATA_PATH_ENV);
        snprintf(p, sizeof p, "%s/missing.json", tmp);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(metadata_read(p, &m, &err), -ENOENT);
        assert_string_equal(err.reason, "unreadable");
        it_rmrf(tmp);
        free(tmp);
}

static char *tmp;
static char pki[600];

static int setup(void **state) {
        (void) state;
        tmp = it_tmpdir();
        snprintf(pki, sizeof pki, "%s/pki", tmp);
        return 0;
}
static int teardown(void **state) {
        (void) state;
        it_rmrf(tmp);
        free(tmp);
        return 0;
}

static void test_pki_layout(void **state) {
        (void) state;
        ct_error err = CT_ERROR_INIT;
        char msg[700];
        if (pki_create(pki, &err) < 0)
                fail_msg("%s", ct_error_format(&err, msg, sizeof msg));
        static const char *const keys[] = { "ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key" };
        static const char *const pubs[] = { "ca.crt", "sa.pub", "front-proxy-ca.crt", "etcd/ca.crt" };
        _cleanup_free_ char *before = NULL, *after = NULL;
        assert_int_equal(it_run(&before, "cd '%s' && sha256sum ca.crt ca.key sa.key sa.pub front-proxy-ca.* etcd/ca.*", pki), 0);
        for (size_t i = 0; i < 4; i++) {
                char p[700];
                struct stat st;
                snprintf(p, sizeof p, "%s/%s", pki, keys[i]);
                assert_int_equal(stat(p, &st), 0);
                assert_int_equal(st.st_mode & 0777, 0600);
                snprintf(p, sizeof p, "%s/%s", pki, pubs[i]);
                assert_int_equal(stat(p, &st), 0);
                assert_int_equal(st.st_mode & 0777, 0644);
        }
        assert_int_equal(it_run(NULL, "openssl x509 -in '%s/ca.crt' -noout -text | grep -q 'CA:TRUE'", pki), 0);
        assert_int_equal(it_run(NULL, "openssl x509 -in '%s/etcd/ca.crt' -noout -subject | grep -q etcd-ca", pki), 0);
        assert_int_equal(it_run(NULL, "openssl pkey -in '%s/sa.key' -pubout | cmp -s - '%s/sa.pub'", pki, pki), 0);
        /* idempotent: a second run keeps every file */
        assert_int_equal(pki_create(pki, NULL), 0);
        assert_int_equal(it_run(&after, "cd '%s' && sha256sum ca.crt ca.key sa.key sa.pub front-proxy-ca.* etcd/ca.*", pki), 0);
        assert_string_equal(before, after);
        /* half a CA is refused, not replaced */
        char p[700], q[700];
        snprintf(p, sizeof p, "%s/front-proxy-ca.key", pki);
        snprintf(q, sizeof q, "%s/front-proxy-ca.key.bak", pki);
        assert_int_equal(rename(p, q), 0);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(pki_create(pki, &err), -EEXIST);
        assert_string_equal(err.reason, "pki-inconsistent");
        assert_int_equal(rename(q, p), 0);
        /* a key that does not belong to its certificate */
        assert_int_equal(it_run(NULL, "cp '%s/ca.key' '%s/x.key' && cp '%s/front-proxy-ca.key' '%s/ca.key'", pki, tmp, pki, pki), 0);
        pki_ca ca = { 0 };
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(pki_load_ca(pki, PKI_CA_KUBERNETES, &ca, &err), -EBADMSG);
        assert_string_equal(err.reason, "pki-inconsistent");
        assert_int_equal(it_run(NULL, "cp '%s/x.key' '%s/ca.key'", tmp, pki), 0);
}

static void test_kubeconfig(void **state) {
        (void) state;
        pki_ca ca = { 0 };
        assert_int_equal(pki_load_ca(pki, PKI_CA_KUBERNETES, &ca, NULL), 0);
        char *yaml = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(pki_admin_kubeconfig(&ca, "my-cluster", "fd00::10", &yaml, &err), 0);
        char kc[700], cl[700];
        snprintf(kc, sizeof kc, "%s/kc", tmp);
        snprintf(cl, sizeof cl, "%s/cl.pem", tmp);
        it_write(kc, yaml, strlen(yaml), 0600);
        erase_and_free(yaml);
        _cleanup_free_ char *server = NULL;
        assert_int_equal(it_run(&server, "kubectl config view --kubeconfig '%s' -o jsonpath='{.clusters[0].cluster.server}'", kc), 0);
        assert_string_equal(server, "https://[fd00::10]:6443");
        assert_int_equal(it_run(NULL, "kubectl config view --kubeconfig '%s' --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d > '%s'", kc, cl), 0);
        assert_int_equal(it_run(NULL, "openssl verify -CAfile '%s/ca.crt' '%s' >/dev/null", pki, cl), 0);
        assert_int_equal(it_run(NULL, "openssl x509 -in '%s' -noout -ext extendedKeyUsage | grep -q 'Client Authentication'", cl), 0);
        /* YAML-unsafe names are refused */
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(pki_admin_kubeconfig(&ca, "a\nb: c", "10.0.0.1", &yaml, &err), -EINVAL);
        assert_int_equal(pki_admin_kubeconfig(&ca, "ok", "evil\"host", &yaml, NULL), -EINVAL);
        pki_ca_done(&ca);
}

/* A CSR from the openssl CLI (DER). */
static uint8_t *csr(const char *keyopt, const char *subj, const char *ext, size_t *ret_len) {
        char out[700];
        snprintf(out, sizeof out, "%s/req.der", tmp);
        unlink(out);
        if (it_run(NULL, "openssl req -new -newkey %s -nodes -keyout /dev/null -subj '%s' %s%s%s -outform DER -out '%s' 2>/dev/null",
                   keyopt, subj, ext ? "-addext '" : "", ext ?: "", ext ? "'" : "", out) != 0)
                it_die("openssl req");
        uint8_t *buf = NULL;
        if (read_full_file(out, 16384, &buf, ret_len) < 0)
                it_die("read csr");
        return buf;
}

#define P256 "ec -pkeyopt ec_paramgen_curve:P-256"

static void sign_bad(const pki_ca *ca, const uint8_t *der, size_t len, const char *expected, const char *reason,
                     const char *part) {
        uint8_t *out = NULL;
        size_t ol = 0;
        ct_error err = CT_ERROR_INIT;
        int r = pki_sign_node_csr(ca, der, len, expected, time(NULL), &out, &ol, &err);
        if (r >= 0 || !streq(err.reason, reason) || (part && !strstr(err.detail, part)))
                fail_msg("expected %s (%s), got %d %s: %s", reason, part ?: "", r, err.reason ?: "", err.detail);
        assert_null(out);
}

static void test_sign_csr(void **state) {
        (void) state;
        pki_ca ca = { 0 };
        assert_int_equal(pki_load_ca(pki, PKI_CA_KUBERNETES, &ca, NULL), 0);
        size_t len;
        _cleanup_free_ uint8_t *good = csr(P256, "/O=system:nodes/CN=system:node:worker-0", "subjectAltName=IP:10.0.0.5", &len);
        uint8_t *der = NULL;
        size_t dl = 0;
        ct_error err = CT_ERROR_INIT;
        char msg[700];
        time_t now = time(NULL);
        if (pki_sign_node_csr(&ca, good, len, "worker-0", now, &der, &dl, &err) < 0)
                fail_msg("%s", ct_error_format(&err, msg, sizeof msg));
        const uint8_t *p = der;
        X509 *cert = d2i_X509(NULL, &p, (long) dl);
        assert_non_null(cert);
        /* validity now-2h .. now+1y */
        int days, secs;
        assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
        assert_int_equal((int64_t) days * 86400 + secs, PKI_NODE_CERT_BACKDATE_S + PKI_NODE_CERT_LIFETIME_S);
        char pem[700], out[700];
        snprintf(out, sizeof out, "%s/kubelet.der", tmp);
        it_write(out, der, dl, 0644);
        snprintf(pem, sizeof pem, "%s/ca.crt", pki);
        assert_int_equal(it_run(NULL, "openssl x509 -inform DER -in '%s' -out '%s.pem' && openssl verify -CAfile '%s' '%s.pem' >/dev/null",
                                out, out, pem, out), 0);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(it_run(&text, "openssl x509 -inform DER -in '%s' -noout -text", out), 0);
        assert_non_null(strstr(text, "IP Address:10.0.0.5"));
        assert_non_null(strstr(text, "O = system:nodes, CN = system:node:worker-0"));
        assert_non_null(strstr(text, "CA:FALSE"));
        X509_free(cert);
        free(der);

        /* refusals */
        sign_bad(&ca, good, len, "worker-1", "csr-subject", "expected \"worker-1\"");
        sign_bad(&ca, good, 0, NULL, "csr-malformed", NULL);
        _cleanup_free_ uint8_t *trail = malloc(len + 1);
        memcpy(trail, good, len);
        trail[len] = 0;
        sign_bad(&ca, trail, len + 1, NULL, "csr-malformed", "trailing");
        _cleanup_free_ uint8_t *tampered = malloc(len);
        memcpy(tampered, good, len);
        tampered[len - 5] ^= 0x01; /* in the signature */
        sign_bad(&ca, tampered, len, NULL, "csr-signature", NULL);
        size_t l2;
        _cleanup_free_ uint8_t *rsa = csr("rsa:2048", "/O=system:nodes/CN=system:node:worker-0", NULL, &l2);
        sign_bad(&ca, rsa, l2, NULL, "csr-key-type", "P-256");
        _cleanup_free_ uint8_t *p384 = csr("ec -pkeyopt ec_paramgen_curve:P-384", "/O=system:nodes/CN=system:node:w", NULL, &l2);
        sign_bad(&ca, p384, l2, NULL, "csr-key-type", "secp384r1");
        _cleanup_free_ uint8_t *org = csr(P256, "/O=system:masters/CN=system:node:w", NULL, &l2);
        sign_bad(&ca, org, l2, NULL, "csr-subject", "O is not");
        _cleanup_free_ uint8_t *cn = csr(P256, "/O=system:nodes/CN=kubernetes-admin", NULL, &l2);
        sign_bad(&ca, cn, l2, NULL, "csr-subject", "CN does not start");
        _cleanup_free_ uint8_t *extra = csr(P256, "/O=system:nodes/OU=x/CN=system:node:w", NULL, &l2);
        sign_bad(&ca, extra, l2, NULL, "csr-subject", "3 attributes");
        _cleanup_free_ uint8_t *badname = csr(P256, "/O=system:nodes/CN=system:node:Bad_Name", NULL, &l2);
        sign_bad(&ca, badname, l2, NULL, "csr-subject", "DNS-1123");
        _cleanup_free_ uint8_t *dns = csr(P256, "/O=system:nodes/CN=system:node:w", "subjectAltName=DNS:evil.example", &l2);
        sign_bad(&ca, dns, l2, NULL, "csr-extensions", "not an IP address");
        _cleanup_free_ uint8_t *bc = csr(P256, "/O=system:nodes/CN=system:node:w", "basicConstraints=CA:TRUE", &l2);
        sign_bad(&ca, bc, l2, NULL, "csr-extensions", "basicConstraints");
        pki_ca_done(&ca);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_metadata),
                cmocka_unit_test(test_pki_layout),
                cmocka_unit_test(test_kubeconfig),
                cmocka_unit_test(test_sign_csr),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
