/* SPDX-License-Identifier: Apache-2.0 */
/* The disk-mapper's parts: RecoverMessage parsing (every refusal with its reason), the keys from a
 * cluster-kms URI against Constellation's HKDF vectors, the unlock race (first key that opens
 * keyslot 0 wins, wrong keys and late offers refused), unit-name escaping against systemd-escape,
 * the CSP disk table, and the runtime units (checked by systemd-analyze verify when it can). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/encoding.h"
#include "disk-mapper.h"
#include "node-disk-util.h"
#include "recover.pb-c.h"

static size_t pack_recover(const char *kms, const char *storage, uint8_t *buf) {
        Recoverproto__RecoverMessage m = RECOVERPROTO__RECOVER_MESSAGE__INIT;
        m.kms_uri = (char *) kms;
        m.storage_uri = (char *) storage;
        return recoverproto__recover_message__pack(&m, buf);
}

static void expect_parse_refused(const uint8_t *buf, size_t len, const char *detail_part) {
        ct_error err = CT_ERROR_INIT;
        char *k = (char *) 0x1, *s = (char *) 0x1;
        assert_int_equal(dm_recover_parse(buf, len, &k, &s, &err), -EBADMSG);
        assert_string_equal(err.layer, "recover");
        assert_string_equal(err.reason, "request-invalid");
        if (detail_part && !strstr(err.detail, detail_part))
                fail_msg("detail \"%s\" lacks \"%s\"", err.detail, detail_part);
        assert_ptr_equal(k, (char *) 0x1); /* outputs untouched on failure */
        assert_ptr_equal(s, (char *) 0x1);
}

static void test_recover_parse(void **state) {
        uint8_t buf[DM_MAX_REQUEST + 64];
        size_t n = pack_recover("kms://cluster-kms?key=AAAA&salt=BBBB", "storage://no-store", buf);
        char *k = NULL, *s = NULL;
        assert_int_equal(dm_recover_parse(buf, n, &k, &s, NULL), 0);
        assert_string_equal(k, "kms://cluster-kms?key=AAAA&salt=BBBB");
        assert_string_equal(s, "storage://no-store");
        erase_and_free(k);
        erase_and_free(s);

        /* Empty message, one URI missing. */
        expect_parse_refused((const uint8_t *) "", 0, "kms_uri is empty");
        n = pack_recover("kms://x", NULL, buf);
        expect_parse_refused(buf, n, "storage_uri is empty");
        n = pack_recover(NULL, "storage://no-store", buf);
        expect_parse_refused(buf, n, "kms_uri is empty");
        /* The removed fields 1 (state_disk_key) and 2 (measurement_secret). */
        static const uint8_t old1[] = { 0x0a, 0x02, 'k', 'k', 0x1a, 0x01, 'x', 0x22, 0x01, 'y' };
        expect_parse_refused(old1, sizeof old1, "removed field 1");
        static const uint8_t old2[] = { 0x12, 0x01, 'm', 0x1a, 0x01, 'x', 0x22, 0x01, 'y' };
        expect_parse_refused(old2, sizeof old2, "removed field 2");
        /* Unknown field 5 (varint). */
        static const uint8_t unk[] = { 0x1a, 0x01, 'x', 0x22, 0x01, 'y', 0x28, 0x01 };
        expect_parse_refused(unk, sizeof unk, "field 5");
        /* Truncated, wrong wire type. */
        static const uint8_t trunc[] = { 0x1a, 0x05, 'x' };
        expect_parse_refused(trunc, sizeof trunc, "does not decode");
        static const uint8_t wt[] = { 0x18, 0x01 };
        expect_parse_refused(wt, sizeof wt, NULL);
        /* Control characters, spaces, non-ASCII. */
        n = pack_recover("kms://cluster-kms?key=AA\nAA", "storage://no-store", buf);
        expect_parse_refused(buf, n, "printable ASCII");
        n = pack_recover("kms://cluster-kms?key=AA AA", "storage://no-store", buf);
        expect_parse_refused(buf, n, "printable ASCII");
        n = pack_recover("kms://cluster-kms?key=\xc3\xa9", "storage://no-store", buf);
        expect_parse_refused(buf, n, "printable ASCII");
        /* An embedded NUL: protobuf-c keeps the C string up to it, so check the wire bytes too. */
        static const uint8_t nul[] = { 0x1a, 0x03, 'x', 0x00, 'y', 0x22, 0x01, 'y' };
        expect_parse_refused(nul, sizeof nul, NULL);
        /* A URI over the bound, and a message over the bound. */
        char *big = malloc(DM_URI_MAX + 2);
        memset(big, 'a', DM_URI_MAX + 1);
        big[DM_URI_MAX + 1] = '\0';
        n = pack_recover(big, "storage://no-store", buf);
        expect_parse_refused(buf, n, "at most");
        free(big);
        memset(buf, 0, sizeof buf);
        expect_parse_refused(buf, DM_MAX_REQUEST + 1, "at most");
}

static char *cluster_uri(const uint8_t *key, size_t klen, const uint8_t *salt, size_t slen) {
        _cleanup_free_ char *k = base64_encode(key, klen, BASE64_URL), *s = base64_encode(salt, slen, BASE64_URL);
        char *u;
        assert_true(asprintf(&u, "kms://cluster-kms?key=%s&salt=%s", k, s) > 0);
        return u;
}

static void test_keys_from_kms(void **state) {
        /* Constellation's HKDFZero and HKDFMeasurementSecret vectors (constellation.md §6). */
        uint8_t zero[32] = { 0 };
        _cleanup_free_ char *uri = cluster_uri(zero, 32, zero, 32);
        dm_keys keys = { 0 };
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(dm_keys_from_kms(uri, "storage://no-store", "00000000-0000-0000-0000-000000000000", &keys, &err), 0);
        _cleanup_free_ char *hex = hex_encode(keys.disk_key->data, keys.disk_key->len);
        assert_string_equal(hex, "2b5c829f691bfd4232f8aac464bccc07e605c7c8e82cbca09837e86d0b6d0665");
        dm_keys_done(&keys);

        uint8_t m[32], s[32];
        for (int i = 0; i < 32; i++) {
                m[i] = (uint8_t) (0x40 + i);
                s[i] = (uint8_t) (0x60 + i);
        }
        _cleanup_free_ char *uri2 = cluster_uri(m, 32, s, 32);
        assert_int_equal(dm_keys_from_kms(uri2, "storage://no-store", "x", &keys, &err), 0);
        _cleanup_free_ char *hex2 = hex_encode(keys.measurement_secret->data, keys.measurement_secret->len);
        assert_string_equal(hex2, "4790578891f3fe6cc22cb661ecdc1b7e33121b1287546a52ba33a9136719c213");
        dm_keys_done(&keys);
        dm_keys_done(&keys); /* idempotent */

        /* KMS refusals come through with the KMS's reason. */
        err = (ct_error) CT_ERROR_INIT;
        assert_true(dm_keys_from_kms("kms://aws?x=1", "storage://no-store", "x", &keys, &err) < 0);
        assert_string_equal(err.layer, "kms");
        assert_null(keys.disk_key);
        err = (ct_error) CT_ERROR_INIT;
        assert_true(dm_keys_from_kms(uri, "storage://aws", "x", &keys, &err) < 0);
        assert_string_equal(err.layer, "kms");
}

/* ---- the unlock race ---- */

typedef struct race {
        dm_unlock *u;
        const uint8_t *key;
        int r;
        const char *reason;
} race;

static void *offer_thread(void *p) {
        race *x = p;
        dm_keys k = { secret_new_copy(x->key, 32), secret_new_copy(x->key, 32) };
        ct_error err = CT_ERROR_INIT;
        x->r = dm_unlock_offer(x->u, &k, &err);
        if (x->r == 0)
                dm_unlock_notify(x->u);
        x->reason = err.reason;
        dm_keys_done(&k);
        return NULL;
}

static int done_calls;
static void on_done(void *userdata) {
        done_calls++;
}

static void test_unlock_race(void **state) {
        _cleanup_free_ char *dir = nd_tmpdir();
        char disk[256], keyf[256];
        snprintf(disk, sizeof disk, "%s/disk.img", dir);
        snprintf(keyf, sizeof keyf, "%s/key", dir);
        nd_blank_file(disk, NODE_DISK_SIZE);
        uint8_t good[32], bad[32];
        memset(good, 0x11, 32);
        memset(bad, 0x22, 32);
        assert_int_equal(write_file_atomic(keyf, good, 32, 0600), 0);
        assert_int_equal(nd_run(NULL,
                                "cryptsetup luksFormat -q --type luks2 --pbkdf argon2id --pbkdf-force-iterations 4 "
                                "--pbkdf-memory 32 --pbkdf-parallel 1 --key-slot 0 --key-file '%s' '%s'",
                                keyf, disk),
                         0);
        _cleanup_free_ char *before = nd_hash_prefix(disk, NODE_DISK_HEADER_AREA);
        ct_error err = CT_ERROR_INIT;
        _cleanup_(luks_closep) luks_disk *d = NULL;
        assert_int_equal(luks_open(disk, &d, &err), 0);
        dm_unlock u;
        assert_int_equal(dm_unlock_init(&u, d, &err), 0);
        u.on_done = on_done;
        done_calls = 0;

        /* Wrong keys first: refused, nothing taken. */
        race w = { &u, bad };
        offer_thread(&w);
        assert_int_equal(w.r, -EPERM);
        assert_string_equal(w.reason, "wrong-key");
        assert_false(u.done);

        /* Four at once, two good and two bad: exactly one wins, the other good one is late. */
        race xs[4] = { { &u, good }, { &u, bad }, { &u, good }, { &u, bad } };
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&t[i], NULL, offer_thread, &xs[i]), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        int wins = 0, late = 0;
        for (int i = 0; i < 4; i++) {
                if (xs[i].key == bad) {
                        /* A bad key offered after the win is "already-unlocked", before it "wrong-key". */
                        assert_true(xs[i].r == -EPERM || xs[i].r == -EALREADY);
                        continue;
                }
                if (xs[i].r == 0)
                        wins++;
                else {
                        assert_int_equal(xs[i].r, -EALREADY);
                        assert_string_equal(xs[i].reason, "already-unlocked");
                        late++;
                }
        }
        assert_int_equal(wins, 1);
        assert_int_equal(late, 1);
        assert_int_equal(done_calls, 1);
        assert_true(u.done);
        assert_memory_equal(u.keys.disk_key->data, good, 32);
        /* Incomplete keys are refused. */
        dm_keys half = { secret_new_copy(good, 32), NULL };
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(dm_unlock_offer(&u, &half, &err), -EINVAL);
        dm_keys_done(&half);
        dm_unlock_done(&u);
        _cleanup_free_ char *after = nd_hash_prefix(disk, NODE_DISK_HEADER_AREA);
        assert_string_equal(before, after);
        nd_rmrf(dir);
}

static void test_rejoin_seam(void **state) {
        dm_keys k = { 0 };
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(dm_rejoin_unsupported(NULL, "uuid", &k, &err), -EOPNOTSUPP);
        assert_string_equal(err.layer, "rejoin");
        assert_string_equal(err.reason, "not-implemented");
        assert_null(k.disk_key);
}

static void test_escape_and_csp(void **state) {
        static const char *paths[] = { "/dev/vdb", "/dev/disk/by-id/google-state-disk", "/dev/disk/azure/scsi1/lun0",
                                       "/dev/sdb", "/tmp/a b/x.img", "/run//state/", "/dev/.hidden", "/" };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                _cleanup_free_ char *ours = dm_unit_escape_path(paths[i]);
                char *theirs = NULL;
                assert_int_equal(nd_run(&theirs, "systemd-escape --path '%s'", paths[i]), 0);
                theirs[strcspn(theirs, "\n")] = '\0';
                if (!streq(ours, theirs))
                        fail_msg("%s: ours %s, systemd-escape %s", paths[i], ours, theirs);
                free(theirs);
        }
        assert_string_equal(dm_state_disk_path("qemu"), "/dev/vdb");
        assert_string_equal(dm_state_disk_path("openstack"), "/dev/vdb");
        assert_string_equal(dm_state_disk_path("gcp"), "/dev/disk/by-id/google-state-disk");
        assert_string_equal(dm_state_disk_path("azure"), "/dev/disk/azure/scsi1/lun0");
        assert_string_equal(dm_state_disk_path("aws"), "/dev/sdb");
        assert_null(dm_state_disk_path("stackit"));
        assert_null(dm_state_disk_path(NULL));
}

static void test_units(void **state) {
        _cleanup_free_ char *dir = nd_tmpdir();
        char units[256];
        snprintf(units, sizeof units, "%s/units", dir);
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(dm_write_units(units, "/dev/vdb", "/run/cryptsetup-keys.d/state.key", &err), 0);
        /* Twice: idempotent (a second boot of the same initrd run, links replaced). */
        assert_int_equal(dm_write_units(units, "/dev/vdb", "/run/cryptsetup-keys.d/state.key", &err), 0);
        char *out = NULL;
        assert_int_equal(nd_run(&out, "cd '%s' && find . | sort", units), 0);
        assert_string_equal(out, ".\n"
                                 "./constellation-state-dirs.service\n"
                                 "./cryptsetup.target.requires\n"
                                 "./cryptsetup.target.requires/systemd-cryptsetup@state.service\n"
                                 "./dev-mapper-state.device.d\n"
                                 "./dev-mapper-state.device.d/40-device-timeout.conf\n"
                                 "./dev-mapper-state.device.requires\n"
                                 "./dev-mapper-state.device.requires/systemd-cryptsetup@state.service\n"
                                 "./etc-cni.mount\n"
                                 "./etc-kubernetes.mount\n"
                                 "./local-fs.target.requires\n"
                                 "./local-fs.target.requires/etc-cni.mount\n"
                                 "./local-fs.target.requires/etc-kubernetes.mount\n"
                                 "./local-fs.target.requires/opt.mount\n"
                                 "./local-fs.target.requires/run-state.mount\n"
                                 "./local-fs.target.requires/var.mount\n"
                                 "./opt.mount\n"
                                 "./run-state.mount\n"
                                 "./systemd-cryptsetup@state.service\n"
                                 "./var.mount\n");
        free(out);
        char path[512];
        snprintf(path, sizeof path, "%s/systemd-cryptsetup@state.service", units);
        uint8_t *buf;
        size_t len;
        assert_int_equal(read_full_file(path, 65536, &buf, &len), 0);
        assert_non_null(strstr((char *) buf, "BindsTo=dev-vdb.device\n"));
        assert_non_null(strstr((char *) buf, "ExecStart=/usr/lib/systemd/systemd-cryptsetup attach 'state' '/dev/vdb' "
                                             "'/run/cryptsetup-keys.d/state.key' 'cipher=aes-xts-plain64,integrity=hmac-sha256'\n"));
        free(buf);
        snprintf(path, sizeof path, "%s/var.mount", units);
        assert_int_equal(read_full_file(path, 65536, &buf, &len), 0);
        assert_non_null(strstr((char *) buf, "What=/run/state/var\nWhere=/var\nType=none\nOptions=bind\n"));
        free(buf);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);

        /* systemd's own parser accepts every unit (no unknown keys or bad syntax). */
        nd_require_tool("systemd-analyze");
        char *log = NULL;
        int rc = nd_run(&log, "cd '%s' && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "
                              "./systemd-cryptsetup@state.service ./systemd-makefs@dev-mapper-state.service ./run-state.mount "
                              "./constellation-state-dirs.service ./var.mount ./etc-kubernetes.mount ./etc-cni.mount ./opt.mount 2>&1",
                        units);
        /* On the host the referenced binaries and devices may be absent; only syntax errors count. */
        if (log && (strstr(log, "Unknown key") || strstr(log, "Unknown section") || strstr(log, "Failed to parse") ||
                    strstr(log, "bad-setting")))
                fail_msg("systemd-analyze verify (rc %d):\n%s", rc, log);
        print_message("systemd-analyze verify (rc %d): %s\n", rc, log && *log ? log : "(no findings)");
        free(log);

        /* Paths that would break the unit syntax are refused. */
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(dm_write_units(units, "/dev/v db", "/k", &err), -EINVAL);
        assert_string_equal(err.reason, "unit-write");
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(dm_write_units(units, "/dev/vdb", "relative/key", &err), -EINVAL);
        err = (ct_error) CT_ERROR_INIT;
        assert_int_equal(dm_write_units(units, "/dev/vdb'", "/k", &err), -EINVAL);
        nd_rmrf(dir);
}

static void test_cluster_id(void **state) {
        /* Constellation's cluster-ID vector: secret 00..1f, salt 20..3f -> 128c1643... */
        uint8_t sec[32];
        nodestate ns = { .role = NODESTATE_ROLE_WORKER };
        for (int i = 0; i < 32; i++) {
                sec[i] = (uint8_t) i;
                ns.measurement_salt[i] = (uint8_t) (0x20 + i);
        }
        _cleanup_secret_ secret_t *s = secret_new_copy(sec, 32);
        uint8_t id[32];
        assert_int_equal(dm_cluster_id(s, &ns, id, NULL), 0);
        _cleanup_free_ char *hex = hex_encode(id, 32);
        assert_string_equal(hex, "128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6");
}

int main(void) {
        nd_require_tool("cryptsetup");
        nd_require_tool("systemd-escape");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_recover_parse),  cmocka_unit_test(test_keys_from_kms),
                cmocka_unit_test(test_unlock_race),    cmocka_unit_test(test_rejoin_seam),
                cmocka_unit_test(test_escape_and_csp), cmocka_unit_test(test_units),
                cmocka_unit_test(test_cluster_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
