/* SPDX-License-Identifier: Apache-2.0 */
/* lib/etcd against a real etcd (Debian's 3.4, 127.0.0.1, mTLS from a lib/pki etcd CA), and what the
 * node plane keeps in it: Put/Range/compare-and-swap Txn, MemberList, the refusals (a client
 * certificate of another CA, a server of another CA, a value over the caller's bound), the join
 * service's store (lib/joinconfig on etcd: init-only store, a signed update by CAS, a concurrent
 * stale update refused) and the key service's configuration read from etcd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "etcd-test-util.h"
#include "joinconfig/joinconfig.h"
#include "keyservice.h"
#include "kms/kms.h"

static etcd_test etcd;
static char tmp[64] = "/tmp/ct-etcd-XXXXXX";
static char other_pki[128];

static const char *reason(const ct_error *e) {
        return e->reason ? e->reason : "";
}

static etcd_client *client(void) {
        etcd_client *c = NULL;
        ct_error err = CT_ERROR_INIT;
        if (etcd_test_client(&etcd, NULL, NULL, NULL, &c, &err) < 0)
                etcd_test_die("client", err.detail);
        return c;
}

/* The ID of the member that answers c (the only voter here). */
static uint64_t etcd_test_member_id_self(etcd_client *c) {
        etcd_members m = { 0 };
        ct_error err = CT_ERROR_INIT;
        uint64_t id = 0;
        if (etcd_member_list(c, &m, &err) < 0)
                etcd_test_die("member list", err.detail);
        for (size_t i = 0; i < m.n; i++)
                if (!m.items[i].learner)
                        id = m.items[i].id;
        etcd_members_done(&m);
        return id;
}

static int setup(void **state) {
        (void) state;
        if (!mkdtemp(tmp))
                etcd_test_die("mkdtemp", NULL);
        char pki[128];
        snprintf(pki, sizeof pki, "%s/pki", tmp);
        snprintf(other_pki, sizeof other_pki, "%s/other-pki", tmp);
        ct_error err = CT_ERROR_INIT;
        const char *ips[] = { "127.0.0.1" };
        if (pki_create(pki, &err) < 0 || pki_etcd_certs(pki, "etcd-test", ips, 1, &err) < 0 ||
            pki_create(other_pki, &err) < 0 || pki_etcd_certs(other_pki, "etcd-test", ips, 1, &err) < 0)
                etcd_test_die("pki", err.detail);
        etcd_test_start(&etcd, tmp, pki, 21100);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        etcd_test_stop(&etcd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmp);
        return 0;
}

static void test_put_get(void **state) {
        (void) state;
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        ct_error err = CT_ERROR_INIT;
        int64_t rev = 0, mod = 0;
        assert_int_equal(etcd_put(c, "/test/a", "hello", 5, &rev, &err), 0);
        assert_true(rev > 0);
        _cleanup_secret_ secret_t *v = NULL;
        assert_int_equal(etcd_get(c, "/test/a", 64, &v, &mod, &err), 0);
        assert_int_equal(v->len, 5);
        assert_memory_equal(v->data, "hello", 5);
        assert_int_equal(mod, rev);

        /* Binary values with NULs are kept byte for byte. */
        uint8_t bin[300];
        RAND_bytes(bin, sizeof bin);
        bin[7] = 0;
        assert_int_equal(etcd_put(c, "/test/bin", bin, sizeof bin, NULL, &err), 0);
        _cleanup_secret_ secret_t *b = NULL;
        assert_int_equal(etcd_get(c, "/test/bin", sizeof bin, &b, &mod, &err), 0);
        assert_int_equal(b->len, sizeof bin);
        assert_memory_equal(b->data, bin, sizeof bin);

        /* A missing key; a value over the caller's bound. */
        ct_error e1 = CT_ERROR_INIT, e2 = CT_ERROR_INIT;
        secret_t *none = NULL;
        assert_int_equal(etcd_get(c, "/test/missing", 64, &none, &mod, &e1), -ENOENT);
        assert_string_equal(reason(&e1), "not-found");
        assert_null(none);
        assert_int_equal(etcd_get(c, "/test/bin", sizeof bin - 1, &none, &mod, &e2), -EFBIG);
        assert_string_equal(reason(&e2), "too-large");
        assert_null(none);
        /* /test/a's neighbours are not mistaken for it (a single-key Range). */
        assert_int_equal(etcd_put(c, "/test/ab", "x", 1, NULL, &err), 0);
        _cleanup_secret_ secret_t *again = NULL;
        assert_int_equal(etcd_get(c, "/test/a", 64, &again, &mod, &err), 0);
        assert_memory_equal(again->data, "hello", 5);
}

static void test_cas(void **state) {
        (void) state;
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        ct_error err = CT_ERROR_INIT;
        int64_t r1 = 0, r2 = 0, cur = -1, mod = 0;
        /* Create only if absent. */
        assert_int_equal(etcd_cas(c, "/test/cas", 0, "one", 3, &r1, NULL, &err), 0);
        ct_error e = CT_ERROR_INIT;
        assert_int_equal(etcd_cas(c, "/test/cas", 0, "dup", 3, NULL, &cur, &e), -ESTALE);
        assert_string_equal(reason(&e), "compare-failed");
        assert_int_equal(cur, r1);
        /* Replace at the revision read. */
        assert_int_equal(etcd_cas(c, "/test/cas", r1, "two", 3, &r2, NULL, &err), 0);
        assert_true(r2 > r1);
        /* A second writer that also read r1 is refused, and the value stays the first writer's. */
        ct_error e2 = CT_ERROR_INIT;
        cur = -1;
        assert_int_equal(etcd_cas(c, "/test/cas", r1, "three", 5, NULL, &cur, &e2), -ESTALE);
        assert_string_equal(reason(&e2), "compare-failed");
        assert_int_equal(cur, r2);
        _cleanup_secret_ secret_t *v = NULL;
        assert_int_equal(etcd_get(c, "/test/cas", 64, &v, &mod, &err), 0);
        assert_int_equal(v->len, 3);
        assert_memory_equal(v->data, "two", 3);
        assert_int_equal(mod, r2);
        /* A compare against a key that does not exist at a non-zero revision fails with current 0. */
        ct_error e3 = CT_ERROR_INIT;
        cur = -1;
        assert_int_equal(etcd_cas(c, "/test/absent", r2, "x", 1, NULL, &cur, &e3), -ESTALE);
        assert_int_equal(cur, 0);
}

static void test_members(void **state) {
        (void) state;
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        ct_error err = CT_ERROR_INIT;
        etcd_members m = { 0 };
        assert_int_equal(etcd_member_list(c, &m, &err), 0);
        assert_int_equal(m.n, 1);
        assert_string_equal(m.items[0].name, "etcd-test");
        char peer[64];
        snprintf(peer, sizeof peer, "https://127.0.0.1:%d", etcd.peer_port);
        assert_string_equal(m.items[0].peer_urls[0], peer);
        etcd_members_done(&m);
}

static int reports_promoted, reports_removed;
static void count_report(void *userdata, uint64_t id, const char *peer_url, bool promoted, const ct_error *why) {
        (void) userdata;
        (void) id;
        (void) peer_url;
        (void) why;
        if (promoted)
                reports_promoted++;
        else
                reports_removed++;
}

/* A control-plane joiner's membership: added as a learner (the quorum stays the running member's:
 * writes go on), an earlier incarnation of the same peer URL replaced, a second learner refused
 * (etcd 3.4 allows one), a learner that never starts not promotable and removed after the timeout,
 * MemberRemove of an unknown member not-found. */
static void test_learners(void **state) {
        (void) state;
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        ct_error err = CT_ERROR_INIT;
        char url[64], url2[64];
        /* Peer ports nobody serves: these members never start. */
        snprintf(url, sizeof url, "https://127.0.0.1:%d", etcd.peer_port + 40);
        snprintf(url2, sizeof url2, "https://127.0.0.1:%d", etcd.peer_port + 41);
        _cleanup_free_ char *ic = NULL, *ic2 = NULL;
        uint64_t id = 0, id2 = 0;
        assert_int_equal(etcd_join_learner(c, "cp-9", url, &ic, &id, &err), 0);
        char want[160];
        snprintf(want, sizeof want, "cp-9=%s", url);
        assert_non_null(strstr(ic, want));
        snprintf(want, sizeof want, "etcd-test=https://127.0.0.1:%d", etcd.peer_port);
        assert_non_null(strstr(ic, want));
        etcd_members m = { 0 };
        assert_int_equal(etcd_member_list(c, &m, &err), 0);
        assert_int_equal(m.n, 2);
        for (size_t i = 0; i < m.n; i++)
                assert_true(m.items[i].learner == (m.items[i].id == id));
        etcd_members_done(&m);
        /* Quorum is the one voter's: a write lands at once. */
        assert_int_equal(etcd_put(c, "/test/with-learner", "v", 1, NULL, &err), 0);

        /* Not in sync (never started): promote refused with its reason. */
        ct_error e1 = CT_ERROR_INIT;
        assert_int_equal(etcd_member_promote(c, id, NULL, &e1), -EAGAIN);
        assert_string_equal(reason(&e1), "learner-not-ready");
        /* The same node again (a retry, a reformatted node): its earlier member is replaced. */
        int jr = etcd_join_learner(c, "cp-9", url, &ic2, &id2, &err);
        if (jr != 1)
                fail_msg("join again: %d %s: %s", jr, reason(&err), err.detail);
        assert_true(id2 != id);
        ct_error e2 = CT_ERROR_INIT;
        assert_int_equal(etcd_member_remove(c, id, NULL, &e2), -ENOENT);
        assert_string_equal(reason(&e2), "not-found");
        /* Another control plane at the same time: etcd 3.4 has room for one learner. */
        _cleanup_free_ char *ic3 = NULL;
        ct_error e3 = CT_ERROR_INIT;
        assert_int_equal(etcd_join_learner(c, "cp-8", url2, &ic3, NULL, &e3), -EBUSY);
        assert_string_equal(reason(&e3), "too-many-learners");
        ct_error e4 = CT_ERROR_INIT;
        assert_int_equal(etcd_member_promote(c, etcd_test_member_id_self(c), NULL, &e4), -EALREADY);
        assert_string_equal(reason(&e4), "not-learner");

        /* The learner tender: within the timeout the learner stays pending, then it is removed. */
        etcd_learners t = { 0 };
        reports_promoted = reports_removed = 0;
        assert_int_equal(etcd_tend_learners(c, &t, 1000, 60000, count_report, NULL, &err), 1);
        assert_int_equal(etcd_tend_learners(c, &t, 30000, 60000, count_report, NULL, &err), 1);
        assert_int_equal(reports_removed, 0);
        assert_int_equal(etcd_tend_learners(c, &t, 61000, 60000, count_report, NULL, &err), 0);
        assert_int_equal(reports_removed, 1);
        assert_int_equal(reports_promoted, 0);
        assert_int_equal(etcd_member_list(c, &m, &err), 0);
        assert_int_equal(m.n, 1);
        assert_false(m.items[0].learner);
        etcd_members_done(&m);
        /* Nothing left to tend. */
        assert_int_equal(etcd_tend_learners(c, &t, 62000, 60000, count_report, NULL, &err), 0);
}

static void test_refusals(void **state) {
        (void) state;
        char cert[256], key[256], ca[256];
        snprintf(cert, sizeof cert, "%s/%s", other_pki, ETCD_PKI_CLIENT_CERT);
        snprintf(key, sizeof key, "%s/%s", other_pki, ETCD_PKI_CLIENT_KEY);
        snprintf(ca, sizeof ca, "%s/%s", other_pki, ETCD_PKI_CA);
        ct_error err = CT_ERROR_INIT;
        /* A client certificate of another cluster's etcd CA: etcd refuses the handshake. */
        _cleanup_(etcd_client_freep) etcd_client *wrong_cert = NULL;
        assert_int_equal(etcd_test_client(&etcd, NULL, cert, key, &wrong_cert, &err), 0);
        secret_t *v = NULL;
        int64_t mod;
        ct_error e1 = CT_ERROR_INIT;
        assert_int_equal(etcd_get(wrong_cert, "/test/a", 64, &v, &mod, &e1), -ECONNREFUSED);
        assert_string_equal(reason(&e1), "unreachable");
        assert_non_null(strstr(e1.detail, etcd.endpoint));
        fprintf(stderr, "wrong client certificate: %s: %s\n", reason(&e1), e1.detail);
        ct_error e1b = CT_ERROR_INIT;
        assert_int_equal(etcd_put(wrong_cert, "/test/a", "evil", 4, NULL, &e1b), -ECONNREFUSED);
        /* We trust only our CA: a server of another CA (here: ours, seen from the other cluster). */
        _cleanup_(etcd_client_freep) etcd_client *wrong_ca = NULL;
        assert_int_equal(etcd_test_client(&etcd, ca, cert, key, &wrong_ca, &err), 0);
        ct_error e2 = CT_ERROR_INIT;
        assert_int_equal(etcd_get(wrong_ca, "/test/a", 64, &v, &mod, &e2), -ECONNREFUSED);
        assert_string_equal(reason(&e2), "tls-refused");
        fprintf(stderr, "server of another CA: %s: %s\n", reason(&e2), e2.detail);
        /* Nothing changed. */
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        _cleanup_secret_ secret_t *a = NULL;
        assert_int_equal(etcd_get(c, "/test/a", 64, &a, &mod, &err), 0);
        assert_memory_equal(a->data, "hello", 5);
        /* Missing client key file; a bad endpoint. */
        ct_error e3 = CT_ERROR_INIT, e4 = CT_ERROR_INIT;
        etcd_client *none = NULL;
        assert_int_equal(etcd_test_client(&etcd, NULL, NULL, "/nonexistent/key.pem", &none, &e3), -ENOENT);
        assert_string_equal(reason(&e3), "config");
        etcd_client_config bad = { .endpoint = "no-port", .ca_file = ca, .cert_file = cert, .key_file = key };
        assert_int_equal(etcd_client_new(&bad, &none, &e4), -EINVAL);
        assert_string_equal(reason(&e4), "config");
        /* Nobody listening: unreachable within the deadline. */
        etcd_test dead = etcd;
        snprintf(dead.endpoint, sizeof dead.endpoint, "127.0.0.1:%d", etcd.peer_port + 2000);
        _cleanup_(etcd_client_freep) etcd_client *d = NULL;
        assert_int_equal(etcd_test_client(&dead, NULL, NULL, NULL, &d, &err), 0);
        ct_error e5 = CT_ERROR_INIT;
        int r = etcd_get(d, "/x", 8, &v, &mod, &e5);
        assert_true(r == -ECONNREFUSED || r == -ETIMEDOUT);
}

#define HEX32(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static secret_t *signing_key(void) {
        uint8_t k[32];
        memset(k, 0x42, sizeof k);
        return secret_new_copy(k, sizeof k);
}

static char *signed_update(uint64_t version, const char *hex4) {
        measurements m = { 0 };
        uint8_t v[32];
        size_t n = 0;
        _cleanup_free_ uint8_t *b = NULL;
        assert_int_equal(hex_decode(hex4, 64, &b, &n), 0);
        memcpy(v, b, 32);
        measurements_set(&m, 4, v, 32, false);
        _cleanup_secret_ secret_t *key = signing_key();
        char *doc = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(joinconfig_update_sign(&m, version, key, &doc, &err), 0);
        return doc;
}

/* Two join services' views of one etcd store: the init configuration stored once, an update by
 * CAS, a concurrent stale update refused, the loser taking the winner's configuration. */
static void test_joinconfig_store(void **state) {
        (void) state;
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        joinconfig_store st = joinconfig_store_etcd(c);
        _cleanup_secret_ secret_t *key = signing_key();
        ct_error err = CT_ERROR_INIT;
        const char *init = "{\"measurements\":{\"4\":{\"expected\":\"" HEX32("a") "\",\"warnOnly\":false}}}";
        uint8_t salt[32];
        RAND_bytes(salt, sizeof salt);
        assert_int_equal(joinconfig_store_init(&st, (const uint8_t *) init, strlen(init), salt, &err), 0);

        joinconfig a, b;
        assert_int_equal(joinconfig_load(&st, key, &a, &err), 0);
        assert_int_equal(joinconfig_load(&st, key, &b, &err), 0);
        assert_int_equal(a.version, 0);
        assert_true(a.revision > 0);
        assert_memory_equal(a.salt, salt, 32);

        /* Storing the init configuration again (a restarted bootstrapper) changes nothing. */
        const char *other = "{\"measurements\":{\"4\":{\"expected\":\"" HEX32("c") "\",\"warnOnly\":false}}}";
        uint8_t salt2[32] = { 1 };
        assert_int_equal(joinconfig_store_init(&st, (const uint8_t *) other, strlen(other), salt2, &err), 0);
        joinconfig again;
        assert_int_equal(joinconfig_load(&st, key, &again, &err), 0);
        assert_int_equal(again.revision, a.revision);
        assert_memory_equal(again.salt, salt, 32);

        /* A takes update v1. */
        _cleanup_free_ char *v1 = signed_update(1, HEX32("b"));
        bool refreshed = true;
        assert_int_equal(joinconfig_apply_update(&st, key, &a, (const uint8_t *) v1, strlen(v1), &refreshed, &err), 0);
        assert_false(refreshed);
        assert_int_equal(a.version, 1);

        /* B, still at version 0, gets another v1 (a concurrent update): its CAS fails, it loads A's
         * and the update is now a rollback; B enforces A's v1 afterwards. */
        _cleanup_free_ char *v1b = signed_update(1, HEX32("d"));
        ct_error e = CT_ERROR_INIT;
        refreshed = false;
        assert_int_equal(joinconfig_apply_update(&st, key, &b, (const uint8_t *) v1b, strlen(v1b), &refreshed, &e),
                         -EPERM);
        assert_string_equal(reason(&e), "version-rollback");
        assert_true(refreshed);
        assert_int_equal(b.version, 1);
        assert_int_equal(b.revision, a.revision);
        assert_memory_equal(measurements_get(&b.m, 4)->expected, measurements_get(&a.m, 4)->expected, 32);
        /* The store holds A's document byte for byte. */
        _cleanup_secret_ secret_t *stored = NULL;
        int64_t mod = 0;
        assert_int_equal(etcd_get(c, JOINCONFIG_ETCD_PREFIX JOINCONFIG_ATTESTATION_CONFIG, JOINCONFIG_MAX_SIZE, &stored,
                                  &mod, &err),
                         0);
        assert_int_equal(stored->len, strlen(v1));
        assert_memory_equal(stored->data, v1, strlen(v1));

        /* B, now current, takes v2 by CAS; A (stale) sees it through refresh. */
        _cleanup_free_ char *v2 = signed_update(2, HEX32("e"));
        assert_int_equal(joinconfig_apply_update(&st, key, &b, (const uint8_t *) v2, strlen(v2), &refreshed, &err), 0);
        bool changed = false;
        assert_int_equal(joinconfig_refresh(&st, key, &a, &changed, &err), 0);
        assert_true(changed);
        assert_int_equal(a.version, 2);
        assert_int_equal(joinconfig_refresh(&st, key, &a, &changed, &err), 0);
        assert_false(changed);

        /* A stale v2 at A with a newer version (v3) from a stale view still lands: the CAS retry
         * verifies it against what the store holds. */
        joinconfig stale = b;
        stale.version = 1;
        stale.revision = 1;
        _cleanup_free_ char *v3 = signed_update(3, HEX32("f"));
        refreshed = false;
        assert_int_equal(joinconfig_apply_update(&st, key, &stale, (const uint8_t *) v3, strlen(v3), &refreshed, &err),
                         0);
        assert_true(refreshed);
        assert_int_equal(stale.version, 3);

        /* A tampered document in etcd is refused on load (the signature is checked every time). */
        char *t = strdup(v3);
        char *p = strstr(t, "ffff");
        p[0] = 'e';
        assert_int_equal(etcd_put(c, JOINCONFIG_ETCD_PREFIX JOINCONFIG_ATTESTATION_CONFIG, t, strlen(t), NULL, &err), 0);
        free(t);
        ct_error e2 = CT_ERROR_INIT;
        joinconfig bad;
        assert_int_equal(joinconfig_load(&st, key, &bad, &e2), -EPERM);
        assert_string_equal(reason(&e2), "signature-invalid");
        assert_int_equal(etcd_put(c, JOINCONFIG_ETCD_PREFIX JOINCONFIG_ATTESTATION_CONFIG, v3, strlen(v3), NULL, &err), 0);
}

static void test_keyservice_config(void **state) {
        (void) state;
        _cleanup_(etcd_client_freep) etcd_client *c = client();
        ct_error err = CT_ERROR_INIT;
        uint8_t master[32], salt[32];
        RAND_bytes(master, sizeof master);
        RAND_bytes(salt, sizeof salt);
        ct_error e0 = CT_ERROR_INIT;
        kms *k = NULL;
        assert_int_equal(keyservice_open_etcd(c, &k, &e0), -ENOENT);
        assert_string_equal(reason(&e0), "config-missing");
        assert_int_equal(etcd_put(c, KEYSERVICE_ETCD_PREFIX "mastersecret", master, 32, NULL, &err), 0);
        assert_int_equal(etcd_put(c, KEYSERVICE_ETCD_PREFIX "salt", salt, 32, NULL, &err), 0);
        assert_int_equal(keyservice_open_etcd(c, &k, &err), 0);
        /* The same keys as kms://cluster-kms with the same secrets. */
        _cleanup_secret_ secret_t *ms = secret_new_copy(master, 32), *ss = secret_new_copy(salt, 32);
        kms *ref = NULL;
        assert_int_equal(kms_open_cluster(ms, ss, &ref, &err), 0);
        _cleanup_secret_ secret_t *d1 = NULL, *d2 = NULL;
        assert_int_equal(kms_get_data_key(k, "measurementSecret", 32, &d1, &err), 0);
        assert_int_equal(kms_get_data_key(ref, "measurementSecret", 32, &d2, &err), 0);
        assert_memory_equal(d1->data, d2->data, 32);
        kms_free(k);
        kms_free(ref);
        /* A kms-uri beside them is ambiguous; a short salt refused. */
        assert_int_equal(etcd_put(c, KEYSERVICE_ETCD_PREFIX "kms-uri", "kms://cluster-kms?x", 19, NULL, &err), 0);
        ct_error e1 = CT_ERROR_INIT;
        k = NULL;
        assert_int_equal(keyservice_open_etcd(c, &k, &e1), -EINVAL);
        assert_string_equal(reason(&e1), "config-ambiguous");
        assert_int_equal(etcd_put(c, KEYSERVICE_ETCD_PREFIX "kms-uri", "", 0, NULL, &err), 0);
        ct_error e2 = CT_ERROR_INIT;
        assert_int_equal(keyservice_open_etcd(c, &k, &e2), -EINVAL);
        assert_string_equal(reason(&e2), "file-too-short");
}

static uint8_t *slurp(const char *dir, const char *name, size_t *len) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        uint8_t *buf = NULL;
        assert_int_equal(read_full_file(path, 65536, &buf, len), 0);
        return buf;
}

/* pki_etcd_certs keeps valid certificates of its CA, renews one that expires within 30 days or was
 * issued by another CA, and its certificates say what etcd needs (SANs, EKUs, subject). */
static void test_pki_etcd_certs(void **state) {
        (void) state;
        char dir[128], cmd[4096];
        snprintf(dir, sizeof dir, "%s/pki3", tmp);
        ct_error err = CT_ERROR_INIT;
        const char *ips[] = { "10.0.0.7" };
        assert_int_equal(pki_create(dir, &err), 0);
        assert_int_equal(pki_etcd_certs(dir, "cp-3", ips, 1, &err), 0);
        size_t n1, n2;
        _cleanup_free_ uint8_t *a = slurp(dir, "etcd/server.crt", &n1);
        assert_int_equal(pki_etcd_certs(dir, "cp-3", ips, 1, &err), 0);
        _cleanup_free_ uint8_t *b = slurp(dir, "etcd/server.crt", &n2);
        assert_true(n1 == n2 && memcmp(a, b, n1) == 0); /* kept */
        snprintf(cmd, sizeof cmd,
                 "openssl x509 -in %s/etcd/server.crt -noout -ext subjectAltName,extendedKeyUsage -subject "
                 "| tr -d ' \n' > %s/server.txt && openssl x509 -in %s/etcd/constellation-client.crt -noout -subject "
                 "-ext extendedKeyUsage | tr -d ' \n' > %s/client.txt && openssl verify -CAfile %s/etcd/ca.crt "
                 "%s/etcd/server.crt %s/etcd/peer.crt %s/etcd/constellation-client.crt %s/apiserver-etcd-client.crt "
                 "> /dev/null",
                 dir, dir, dir, dir, dir, dir, dir, dir, dir);
        assert_int_equal(system(cmd), 0);
        size_t sl, cl;
        _cleanup_free_ uint8_t *st = slurp(dir, "server.txt", &sl), *ct = slurp(dir, "client.txt", &cl);
        assert_non_null(strstr((char *) st, "DNS:localhost,DNS:cp-3,IPAddress:127.0.0.1,IPAddress:0:0:0:0:0:0:0:1,"
                                            "IPAddress:10.0.0.7"));
        assert_non_null(strstr((char *) st, "TLSWebServerAuthentication,TLSWebClientAuthentication"));
        assert_non_null(strstr((char *) st, "CN=cp-3"));
        assert_non_null(strstr((char *) ct, "O=constellation,CN=constellation-node-services"));
        assert_null(strstr((char *) ct, "ServerAuthentication"));
        /* A certificate of this CA that expires tomorrow is renewed. */
        snprintf(cmd, sizeof cmd,
                 "cd %s/etcd && openssl req -new -key server.key -subj /CN=cp-3 -out s.csr 2>/dev/null && "
                 "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -days 1 -out server.crt 2>/dev/null", dir);
        assert_int_equal(system(cmd), 0);
        _cleanup_free_ uint8_t *c = slurp(dir, "etcd/server.crt", &n1);
        assert_int_equal(pki_etcd_certs(dir, "cp-3", ips, 1, &err), 0);
        _cleanup_free_ uint8_t *d = slurp(dir, "etcd/server.crt", &n2);
        assert_false(n1 == n2 && memcmp(c, d, n1) == 0);
        snprintf(cmd, sizeof cmd, "openssl x509 -in %s/etcd/server.crt -noout -checkend 2592000 >/dev/null", dir);
        assert_int_equal(system(cmd), 0);
        /* One of another CA is replaced too. */
        snprintf(cmd, sizeof cmd, "cp %s/etcd/constellation-client.crt %s/etcd/constellation-client.crt && "
                                  "cp %s/etcd/constellation-client.key %s/etcd/constellation-client.key",
                 other_pki, dir, other_pki, dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(pki_etcd_certs(dir, "cp-3", ips, 1, &err), 0);
        snprintf(cmd, sizeof cmd, "openssl verify -CAfile %s/etcd/ca.crt %s/etcd/constellation-client.crt >/dev/null",
                 dir, dir);
        assert_int_equal(system(cmd), 0);
        /* Refusals: a name that is no DNS-1123 name, an address that is no IP. */
        ct_error e1 = CT_ERROR_INIT, e2 = CT_ERROR_INIT;
        const char *bad[] = { "not-an-ip" };
        assert_int_equal(pki_etcd_certs(dir, "Bad_Name", ips, 1, &e1), -EINVAL);
        assert_string_equal(reason(&e1), "bad-argument");
        assert_int_equal(pki_etcd_certs(dir, "cp-3", bad, 1, &e2), -EINVAL);
        assert_string_equal(reason(&e2), "bad-argument");
}

/* The fuzz seeds are etcd's reply shapes, not noise: each parses as the reply it stands for. */
static uint8_t *seed(const char *name, size_t *len) {
        const char *src = getenv("CT_SOURCE_DIR");
        assert_non_null(src);
        char path[512];
        snprintf(path, sizeof path, "%s/fuzz/etcd/corpus/fuzz-etcd-response/%s", src, name);
        uint8_t *buf = NULL;
        assert_int_equal(read_full_file(path, 65536, &buf, len), 0);
        return buf;
}

static void test_seed_shapes(void **state) {
        (void) state;
        const char *key = "/constellation/joinservice/attestationConfig";
        ct_error err = CT_ERROR_INIT;
        size_t n;
        size_t rf_len;
        _cleanup_free_ uint8_t *rf = seed("range-found", &rf_len);
        _cleanup_secret_ secret_t *v = NULL;
        int64_t rev = 0;
        assert_int_equal(etcd_parse_range_response(rf + 1, rf_len - 1, key, 4096, &v, &rev, &err), 0);
        assert_int_equal(rev, 7);
        assert_int_equal(v->len, strlen("{\"measurements\":{}}"));
        ct_error e1 = CT_ERROR_INIT, e2 = CT_ERROR_INIT, e3 = CT_ERROR_INIT, e4 = CT_ERROR_INIT;
        secret_t *none = NULL;
        _cleanup_free_ uint8_t *ro = seed("range-other-key", &n);
        assert_int_equal(etcd_parse_range_response(ro + 1, n - 1, key, 4096, &none, &rev, &e1), -EBADMSG);
        assert_string_equal(reason(&e1), "response-malformed");
        _cleanup_free_ uint8_t *r2 = seed("range-two", &n);
        assert_int_equal(etcd_parse_range_response(r2 + 1, n - 1, key, 4096, &none, &rev, &e2), -EBADMSG);
        _cleanup_free_ uint8_t *tr = seed("truncated", &n);
        assert_int_equal(etcd_parse_range_response(tr + 1, n - 1, key, 4096, &none, &rev, &e3), -EBADMSG);
        assert_int_equal(etcd_parse_range_response(rf + 1, rf_len - 1, key, 4, &none, &rev, &e4), -EFBIG);
        assert_string_equal(reason(&e4), "too-large");
        bool ok = true;
        _cleanup_free_ uint8_t *tf = seed("txn-failed", &n);
        assert_int_equal(etcd_parse_cas_response(tf + 1, n - 1, key, &ok, &rev, &err), 0);
        assert_false(ok);
        assert_int_equal(rev, 6);
        _cleanup_free_ uint8_t *ts = seed("txn-succeeded", &n);
        assert_int_equal(etcd_parse_cas_response(ts + 1, n - 1, key, &ok, &rev, &err), 0);
        assert_true(ok);
        assert_int_equal(rev, 7);
        _cleanup_free_ uint8_t *ma = seed("member-add", &n);
        etcd_members m = { 0 };
        assert_int_equal(etcd_parse_members_response(ma + 1, n - 1, true, &m, &err), 0);
        assert_int_equal(m.n, 2);
        assert_int_equal(m.added_id, 0x1111);
        etcd_members_done(&m);
        _cleanup_free_ uint8_t *pn = seed("put-no-header", &n);
        ct_error e5 = CT_ERROR_INIT;
        assert_int_equal(etcd_parse_put_response(pn + 1, n - 1, &rev, &e5), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_put_get),       cmocka_unit_test(test_cas),
                cmocka_unit_test(test_members),       cmocka_unit_test(test_learners),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_joinconfig_store), cmocka_unit_test(test_keyservice_config),
                cmocka_unit_test(test_seed_shapes),   cmocka_unit_test(test_pki_etcd_certs),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
