/* SPDX-License-Identifier: Apache-2.0 */
/* lib/kms: kms:// and storage:// URIs exactly as Constellation encodes and decodes them
 * (internal/kms/uri), every refusal with its reason, and the cluster KMS against Constellation's
 * HKDF vectors (constellation.md §6). Also the key service's GetDataKeyRequest decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/encoding.h"
#include "keyservice.h"
#include "kms/kms.h"

static char *cluster_uri(const uint8_t *key, size_t klen, const uint8_t *salt, size_t slen) {
        _cleanup_free_ char *k = base64_encode(key, klen, BASE64_URL), *s = base64_encode(salt, slen, BASE64_URL);
        char *u = NULL;
        assert_true(asprintf(&u, "kms://cluster-kms?key=%s&salt=%s", k, s) > 0);
        return u;
}

static void expect_key(kms *k, const char *id, const char *hex) {
        _cleanup_secret_ secret_t *key = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kms_get_data_key(k, id, 32, &key, &err), 0);
        _cleanup_free_ char *got = hex_encode(key->data, key->len);
        assert_string_equal(got, hex);
}

static void test_vectors(void **state) {
        uint8_t zero[32] = { 0 }, ff[32], ms[32], salt[32];
        memset(ff, 0xff, sizeof ff);
        for (int i = 0; i < 32; i++) {
                ms[i] = (uint8_t) (0x40 + i);
                salt[i] = (uint8_t) (0x60 + i);
        }
        struct {
                const uint8_t *key, *salt;
                const char *id, *want;
        } v[] = {
                { zero, zero, "00000000-0000-0000-0000-000000000000",
                  "2b5c829f691bfd4232f8aac464bccc07e605c7c8e82cbca09837e86d0b6d0665" },
                { ff, ff, "ffffffff-ffff-ffff-ffff-ffffffffffff",
                  "1484aa39d3415e906e07940ff215d8b1eee705d3027dba93306af4abff4f70be" },
                { ms, salt, "measurementSecret", "4790578891f3fe6cc22cb661ecdc1b7e33121b1287546a52ba33a9136719c213" },
        };
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                _cleanup_free_ char *uri = cluster_uri(v[i].key, 32, v[i].salt, 32);
                _cleanup_(kms_freep) kms *k = NULL;
                ct_error err = CT_ERROR_INIT;
                assert_int_equal(kms_open(uri, KMS_URI_NO_STORE, &k, &err), 0);
                assert_string_equal(kms_backend_name(k), "cluster-kms");
                expect_key(k, v[i].id, v[i].want);

                _cleanup_(kms_freep) kms *k2 = NULL;
                _cleanup_secret_ secret_t *a = secret_new_copy(v[i].key, 32), *b = secret_new_copy(v[i].salt, 32);
                assert_int_equal(kms_open_cluster(a, b, &k2, &err), 0);
                expect_key(k2, v[i].id, v[i].want);
        }
}

/* Go: url.Values.Get unescapes once, getQueryParameter once more; '+' is a space; storage may be
 * NULL, "" or storage://no-store (with or without a trailing slash); scheme is case-insensitive. */
static void test_uri_forms(void **state) {
        uint8_t zero[32] = { 0 };
        /* base64url of 32 zero bytes: "AAAA...A=" */
        _cleanup_free_ char *b = base64_encode(zero, 32, BASE64_URL);
        char uri[512];
        const char *forms[] = { "kms://cluster-kms?key=%s&salt=%s", "KMS://cluster-kms/?salt=%2$s&key=%1$s",
                                "kms://cluster-kms?key=%s&&salt=%s&extra=1" };
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                snprintf(uri, sizeof uri, forms[i], b, b);
#pragma GCC diagnostic pop
                _cleanup_(kms_freep) kms *k = NULL;
                ct_error err = CT_ERROR_INIT;
                assert_int_equal(kms_open(uri, i == 0 ? NULL : "storage://no-store/", &k, &err), 0);
                expect_key(k, "00000000-0000-0000-0000-000000000000",
                           "2b5c829f691bfd4232f8aac464bccc07e605c7c8e82cbca09837e86d0b6d0665");
        }
        /* '=' escaped once (%3D) and twice (%253D) decodes to the same key. */
        _cleanup_free_ char *once = strdup(b), *twice = NULL;
        once[strlen(once) - 1] = '\0';
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s%%3D&salt=%s%%253D", once, once);
        _cleanup_(kms_freep) kms *k = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kms_open(uri, "", &k, &err), 0);
        expect_key(k, "00000000-0000-0000-0000-000000000000",
                   "2b5c829f691bfd4232f8aac464bccc07e605c7c8e82cbca09837e86d0b6d0665");

        _cleanup_(kms_uri_freep) kms_uri *u = NULL;
        assert_int_equal(kms_uri_parse("kms://kmip?host=a+b&port=%2535&x", &u, &err), 0);
        assert_string_equal(kms_uri_scheme(u), "kms");
        assert_string_equal(kms_uri_host(u), "kmip");
        assert_string_equal(kms_uri_get(u, "host"), "a b");
        assert_string_equal(kms_uri_get(u, "port"), "5");
        assert_string_equal(kms_uri_get(u, "x"), "");
        assert_null(kms_uri_get(u, "y"));
}

static void expect_refused(const char *uri, const char *storage, const char *reason, const char *in_detail) {
        _cleanup_(kms_freep) kms *k = NULL;
        ct_error err = CT_ERROR_INIT;
        int r = kms_open(uri, storage, &k, &err);
        if (r >= 0 || !err.reason || !streq(err.reason, reason) || (in_detail && !strstr(err.detail, in_detail)))
                fail_msg("%s (storage %s): expected %s (%s), got %d %s: %s", uri, storage ?: "NULL", reason,
                         in_detail ?: "", r, err.reason ?: "-", err.detail);
        assert_null(k);
        assert_string_equal(err.layer, "kms");
}

static void test_refusals(void **state) {
        uint8_t zero[32] = { 0 };
        _cleanup_free_ char *b = base64_encode(zero, 32, BASE64_URL), *b31 = base64_encode(zero, 31, BASE64_URL),
                            *b15 = base64_encode(zero, 15, BASE64_URL), *std = base64_encode("\xfb\xff", 2, BASE64_STD);
        char uri[512];
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s&salt=%s", b, b);
        const char *good = strdupa(uri);

        expect_refused(good, "storage://aws?bucket=x", KMS_REASON_STORAGE_UNSUPPORTED, "storage://aws");
        expect_refused(good, "storage://no-store?x=1", KMS_REASON_STORAGE_UNSUPPORTED, NULL);
        expect_refused(good, "kms://no-store", KMS_REASON_URI_SCHEME, "storage://");
        expect_refused(good, "no-store", KMS_REASON_URI_MALFORMED, "storage URI");
        expect_refused("kms://aws?keyPolicy=p&kekID=k", NULL, KMS_REASON_BACKEND_UNKNOWN, "kms://aws");
        expect_refused("kms://gcp?project=p", NULL, KMS_REASON_BACKEND_UNKNOWN, "cluster-kms");
        expect_refused("storage://cluster-kms?key=a", NULL, KMS_REASON_URI_SCHEME, "kms://");
        expect_refused("cluster-kms?key=a", NULL, KMS_REASON_URI_MALFORMED, NULL);
        expect_refused("kms://cluster-kms/path?key=a", NULL, KMS_REASON_URI_MALFORMED, "path");
        expect_refused("kms://cluster-kms?key=a#frag", NULL, KMS_REASON_URI_MALFORMED, "fragment");
        expect_refused("kms://user@cluster-kms?key=a", NULL, KMS_REASON_URI_MALFORMED, "host");
        expect_refused("kms://cluster-kms?key=a;b", NULL, KMS_REASON_URI_MALFORMED, "';'");
        expect_refused("kms://cluster-kms?key=%zz", NULL, KMS_REASON_URI_MALFORMED, "\"key\"");
        expect_refused("kms://cluster-kms?key=%25zz", NULL, KMS_REASON_URI_MALFORMED, "\"key\"");
        expect_refused("kms://cluster-kms?key=a%00b", NULL, KMS_REASON_URI_MALFORMED, "NUL");
        expect_refused("kms://cluster-kms?key=a\nb", NULL, KMS_REASON_URI_MALFORMED, "control");
        expect_refused("kms://cluster-kms", NULL, KMS_REASON_PARAMETER_MISSING, "\"key\"");
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s", b);
        expect_refused(uri, NULL, KMS_REASON_PARAMETER_MISSING, "\"salt\"");
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s&salt=", b);
        expect_refused(uri, NULL, KMS_REASON_PARAMETER_MISSING, "\"salt\"");
        /* Go's URLEncoding needs the padding and the URL alphabet */
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%.43s&salt=%s", b, b);
        expect_refused(uri, NULL, KMS_REASON_PARAMETER_INVALID, "\"key\"");
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s&salt=%s", std, b);
        expect_refused(uri, NULL, KMS_REASON_PARAMETER_INVALID, "\"key\"");
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s&salt=%s", b15, b);
        expect_refused(uri, NULL, KMS_REASON_MASTER_SECRET_SHORT, "15 bytes");
        snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s&salt=%s", b, b31);
        expect_refused(uri, NULL, KMS_REASON_SALT_SHORT, "31 bytes");
        /* secrets never in a detail */
        {
                uint8_t key[32];
                memset(key, 0x5a, sizeof key);
                _cleanup_free_ char *kb = base64_encode(key, sizeof key, BASE64_URL);
                snprintf(uri, sizeof uri, "kms://cluster-kms?key=%s&salt=%s", kb, b31);
                _cleanup_(kms_freep) kms *k = NULL;
                ct_error err = CT_ERROR_INIT;
                assert_true(kms_open(uri, NULL, &k, &err) < 0);
                assert_null(strstr(err.detail, "WlpaWl"));
        }
        char *huge = malloc(KMS_MAX_URI + 10);
        memset(huge, 'a', KMS_MAX_URI + 9);
        memcpy(huge, "kms://cluster-kms?key=", 22);
        huge[KMS_MAX_URI + 9] = '\0';
        expect_refused(huge, NULL, KMS_REASON_URI_MALFORMED, "longer");
        free(huge);
}

static void test_get_data_key_limits(void **state) {
        uint8_t zero[32] = { 0 };
        _cleanup_secret_ secret_t *a = secret_new_copy(zero, 32), *b = secret_new_copy(zero, 32);
        _cleanup_(kms_freep) kms *k = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kms_open_cluster(a, b, &k, &err), 0);
        struct {
                const char *id;
                size_t len;
                const char *reason;
        } c[] = {
                { "", 32, KMS_REASON_KEY_ID_EMPTY },
                { "x", 0, KMS_REASON_LENGTH_INVALID },
                { "x", KMS_MAX_DATA_KEY_LENGTH + 1, KMS_REASON_LENGTH_INVALID },
                { "x", SIZE_MAX, KMS_REASON_LENGTH_INVALID },
        };
        for (size_t i = 0; i < ELEMENTSOF(c); i++) {
                _cleanup_secret_ secret_t *key = NULL;
                ct_error e = CT_ERROR_INIT;
                assert_int_equal(kms_get_data_key(k, c[i].id, c[i].len, &key, &e), -EINVAL);
                assert_string_equal(e.reason, c[i].reason);
                assert_null(key);
        }
        char long_id[KMS_MAX_KEY_ID + 2];
        memset(long_id, 'a', sizeof long_id - 1);
        long_id[sizeof long_id - 1] = '\0';
        _cleanup_secret_ secret_t *key = NULL;
        ct_error e = CT_ERROR_INIT;
        assert_int_equal(kms_get_data_key(k, long_id, 32, &key, &e), -EINVAL);
        assert_string_equal(e.reason, KMS_REASON_KEY_ID_INVALID);
        long_id[KMS_MAX_KEY_ID] = '\0';
        assert_int_equal(kms_get_data_key(k, long_id, KMS_MAX_DATA_KEY_LENGTH, &key, &e), 0);
        assert_int_equal(key->len, KMS_MAX_DATA_KEY_LENGTH);
}

static void test_request_decode(void **state) {
        keyservice_request req;
        ct_error err = CT_ERROR_INIT;
        /* empty message: proto3 defaults */
        assert_int_equal(keyservice_request_decode(NULL, 0, &req, &err), 0);
        assert_int_equal(req.data_key_id_len, 0);
        assert_int_equal(req.length, 0);
        /* uint32 takes the low 32 bits of a 64-bit varint (Go does the same) */
        const uint8_t big[] = { 0x0a, 0x01, 'k', 0x10, 0xa0, 0x80, 0x80, 0x80, 0x10 };
        assert_int_equal(keyservice_request_decode(big, sizeof big, &req, &err), 0);
        assert_int_equal(req.length, 32);
        assert_int_equal(req.data_key_id_len, 1);
        struct {
                const char *bytes;
                size_t len;
        } bad[] = {
                { "\x0a", 1 },                                          /* tag without length */
                { "\x0a\x05" "ab", 4 },                                 /* length past the end */
                { "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11 }, /* 2^64-1 length */
                { "\x08\x01", 2 },                                      /* field 1 as varint */
                { "\x12\x01x", 3 },                                     /* field 2 length-delimited */
                { "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11 }, /* 11-byte varint */
                { "\x0b", 1 },                                          /* group */
                { "\x02\x00", 2 },                                      /* field 0 */
                { "\x1d\x01\x02", 3 },                                  /* fixed32 truncated */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ct_error e = CT_ERROR_INIT;
                assert_int_equal(keyservice_request_decode((const uint8_t *) bad[i].bytes, bad[i].len, &req, &e),
                                 -EBADMSG);
                assert_string_equal(e.reason, "request-malformed");
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vectors),
                cmocka_unit_test(test_uri_forms),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_get_data_key_limits),
                cmocka_unit_test(test_request_decode),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
