/* SPDX-License-Identifier: Apache-2.0 */
/* TTLV codec and KMIP response parser units: encoding per KMIP 1.4 §9.1 (known bytes), round
 * trips, and every rejection of the decoder asserted by its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "kmip/kmip.h"
#include "kmip/wrap.h"
#include "kmip/ttlv.h"

/* KMIP 1.4 §9.1.2 examples: an Integer 8 with tag 0x420020 encodes as
 * 42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00, a Text String "Hello World" as
 * 42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00, and a Structure
 * holding an Enumeration 254 and an Integer 255. */
static void test_spec_examples(void **state) {
        ttlv_enc e;
        ttlv_enc_init(&e);
        ttlv_enc_begin(&e, 0x420020);
        ttlv_enc_enum(&e, 0x420004, 254);
        ttlv_enc_int(&e, 0x420005, 255);
        ttlv_enc_end(&e);
        const uint8_t *out;
        size_t len;
        assert_int_equal(ttlv_enc_finish(&e, &out, &len), 0);
        static const uint8_t want[] = { 0x42, 0x00, 0x20, 0x01, 0x00, 0x00, 0x00, 0x20, 0x42, 0x00, 0x04,
                                        0x05, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0xFE, 0x00, 0x00,
                                        0x00, 0x00, 0x42, 0x00, 0x05, 0x02, 0x00, 0x00, 0x00, 0x04, 0x00,
                                        0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00 };
        assert_int_equal(len, sizeof(want));
        assert_memory_equal(out, want, sizeof(want));
        ttlv_enc_done(&e);

        ttlv_enc_init(&e);
        ttlv_enc_text(&e, 0x420020, "Hello World", 11);
        assert_int_equal(ttlv_enc_finish(&e, &out, &len), 0);
        static const uint8_t hello[] = { 0x42, 0x00, 0x20, 0x07, 0x00, 0x00, 0x00, 0x0B, 'H', 'e', 'l', 'l',
                                         'o',  ' ',  'W',  'o',  'r',  'l',  'd',  0,    0,   0,   0,   0 };
        assert_int_equal(len, sizeof(hello));
        assert_memory_equal(out, hello, sizeof(hello));
        ttlv_enc_done(&e);
}

static void test_roundtrip(void **state) {
        ttlv_enc e;
        ttlv_enc_init(&e);
        ttlv_enc_begin(&e, 0x42007B);
        ttlv_enc_int(&e, 0x42000D, -7);
        ttlv_enc_long(&e, 0x420001, 1234567890123LL);
        ttlv_enc_bool(&e, 0x420006, true);
        ttlv_enc_bytes(&e, 0x4200C2, "\x01\x02\x03", 3);
        ttlv_enc_text(&e, 0x420094, "", 0);
        ttlv_enc_datetime(&e, 0x420092, 1700000000);
        ttlv_enc_begin(&e, 0x42000F);
        ttlv_enc_enum(&e, 0x42005C, 0x20);
        ttlv_enc_end(&e);
        ttlv_enc_begin(&e, 0x42000F);
        ttlv_enc_end(&e);
        ttlv_enc_end(&e);
        const uint8_t *out;
        size_t len;
        assert_int_equal(ttlv_enc_finish(&e, &out, &len), 0);
        assert_int_equal(len % 8, 0);

        ttlv_tree *t = NULL;
        enum ttlv_error te;
        assert_int_equal(ttlv_decode(out, len, &t, &te), 0);
        assert_int_equal(te, TTLV_OK);
        int32_t i;
        assert_int_equal(ttlv_get_int(t, 0, 0x42000D, &i), 0);
        assert_int_equal(i, -7);
        const uint8_t *b;
        size_t bl;
        assert_int_equal(ttlv_get_bytes(t, 0, 0x4200C2, &b, &bl), 0);
        assert_int_equal(bl, 3);
        assert_memory_equal(b, "\x01\x02\x03", 3);
        const char *s;
        assert_int_equal(ttlv_get_text(t, 0, 0x420094, &s, &bl), 0);
        assert_int_equal(bl, 0);
        size_t item = ttlv_child(t, 0, 0x42000F);
        assert_true(item != TTLV_NONE);
        uint32_t op;
        assert_int_equal(ttlv_get_enum(t, item, 0x42005C, &op), 0);
        assert_int_equal(op, 0x20);
        size_t second = ttlv_next_same(t, item);
        assert_true(second != TTLV_NONE);
        assert_int_equal(t->items[second].first_child, TTLV_NONE);
        assert_int_equal(ttlv_next_same(t, second), TTLV_NONE);
        /* Wrong type is "missing". */
        assert_int_equal(ttlv_get_enum(t, 0, 0x42000D, &op), -EBADMSG);
        char *d = ttlv_dump(t);
        assert_non_null(d);
        assert_non_null(strstr(d, "bytes (3 bytes)"));
        free(d);
        ttlv_tree_free(t);
        ttlv_enc_done(&e);
}

static void expect_bad(const uint8_t *buf, size_t len, enum ttlv_error want) {
        ttlv_tree *t = NULL;
        enum ttlv_error te = TTLV_OK;
        assert_int_equal(ttlv_decode(buf, len, &t, &te), -EBADMSG);
        assert_null(t);
        if (te != want)
                fail_msg("decoder said \"%s\", expected \"%s\"", ttlv_error_to_string(te), ttlv_error_to_string(want));
}

static void test_rejections(void **state) {
        /* Truncated header, truncated value. */
        static const uint8_t shorthdr[] = { 0x42, 0x00, 0x7B, 0x01, 0x00, 0x00 };
        expect_bad(shorthdr, sizeof(shorthdr), TTLV_ERR_TRUNCATED);
        static const uint8_t trunc[] = { 0x42, 0x00, 0x7B, 0x01, 0x00, 0x00, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0 };
        expect_bad(trunc, sizeof(trunc), TTLV_ERR_TRUNCATED);
        /* A length near UINT32_MAX must not wrap the bounds check. */
        static const uint8_t huge[] = { 0x42, 0x00, 0x7B, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0 };
        expect_bad(huge, sizeof(huge), TTLV_ERR_TRUNCATED);
        /* Integer of length 8. */
        static const uint8_t badlen[] = { 0x42, 0x00, 0x0D, 0x02, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 0 };
        expect_bad(badlen, sizeof(badlen), TTLV_ERR_BAD_LENGTH);
        /* Non-zero padding after an Integer. */
        static const uint8_t pad[] = { 0x42, 0x00, 0x0D, 0x02, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 9, 0 };
        expect_bad(pad, sizeof(pad), TTLV_ERR_BAD_PADDING);
        /* Type 0x0B does not exist. */
        static const uint8_t type[] = { 0x42, 0x00, 0x0D, 0x0B, 0x00, 0x00, 0x00, 0x00 };
        expect_bad(type, sizeof(type), TTLV_ERR_BAD_TYPE);
        /* Tag outside 0x42xxxx / 0x54xxxx. */
        static const uint8_t tag[] = { 0x13, 0x00, 0x0D, 0x02, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0 };
        expect_bad(tag, sizeof(tag), TTLV_ERR_BAD_TAG);
        /* Boolean 2. */
        static const uint8_t boo[] = { 0x42, 0x00, 0x06, 0x06, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 2 };
        expect_bad(boo, sizeof(boo), TTLV_ERR_BAD_BOOLEAN);
        /* Trailing bytes after the top-level item. */
        static const uint8_t trail[] = { 0x42, 0x00, 0x7B, 0x01, 0x00, 0x00, 0x00, 0x00, 0x42, 0, 0, 0, 0, 0, 0, 0 };
        expect_bad(trail, sizeof(trail), TTLV_ERR_TRAILING);
        /* A member longer than its structure. */
        static const uint8_t over[] = { 0x42, 0x00, 0x7B, 0x01, 0x00, 0x00, 0x00, 0x10, 0x42, 0x00, 0x0D, 0x08,
                                        0x00, 0x00, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0 };
        expect_bad(over, sizeof(over), TTLV_ERR_STRUCTURE_OVERRUN);

        /* Nesting: TTLV_MAX_DEPTH structures are fine, one more is not. */
        for (unsigned depth = TTLV_MAX_DEPTH; depth <= TTLV_MAX_DEPTH + 1; depth++) {
                size_t n = depth * 8;
                uint8_t *buf = calloc(1, n);
                for (unsigned k = 0; k < depth; k++) {
                        uint8_t *h = buf + k * 8;
                        h[0] = 0x42;
                        h[2] = 0x01;
                        h[3] = TTLV_STRUCTURE;
                        uint32_t l = (uint32_t) (n - (k + 1) * 8);
                        h[4] = l >> 24;
                        h[5] = l >> 16;
                        h[6] = l >> 8;
                        h[7] = l;
                }
                ttlv_tree *t = NULL;
                enum ttlv_error te;
                int r = ttlv_decode(buf, n, &t, &te);
                if (depth == TTLV_MAX_DEPTH) {
                        assert_int_equal(r, 0);
                        ttlv_tree_free(t);
                } else {
                        assert_int_equal(r, -EBADMSG);
                        assert_int_equal(te, TTLV_ERR_TOO_DEEP);
                }
                free(buf);
        }

        /* Item count: a structure of TTLV_MAX_ITEMS empty structures is one too many. */
        size_t n = 8 + (size_t) TTLV_MAX_ITEMS * 8;
        uint8_t *many = calloc(1, n);
        many[0] = 0x42;
        many[2] = 0x7B;
        many[3] = TTLV_STRUCTURE;
        uint32_t l = (uint32_t) (n - 8);
        many[4] = l >> 24;
        many[5] = l >> 16;
        many[6] = l >> 8;
        many[7] = l;
        for (size_t k = 1; k <= TTLV_MAX_ITEMS; k++) {
                many[k * 8] = 0x42;
                many[k * 8 + 2] = 0x0F;
                many[k * 8 + 3] = TTLV_STRUCTURE;
        }
        expect_bad(many, n, TTLV_ERR_TOO_MANY_ITEMS);
        free(many);

        /* Header peek: not a structure; beyond the maximum. */
        size_t sz;
        static const uint8_t h1[] = { 0x42, 0x00, 0x7B, 0x02, 0x00, 0x00, 0x00, 0x04 };
        assert_int_equal(ttlv_peek_message_size(h1, &sz), -EBADMSG);
        static const uint8_t h2[] = { 0x42, 0x00, 0x7B, 0x01, 0x00, 0x10, 0x00, 0x00 };
        assert_int_equal(ttlv_peek_message_size(h2, &sz), -EBADMSG);
        static const uint8_t h3[] = { 0x42, 0x00, 0x7B, 0x01, 0x00, 0x00, 0x01, 0x00 };
        assert_int_equal(ttlv_peek_message_size(h3, &sz), 0);
        assert_int_equal(sz, 8 + 256);
}

/* A Response Message with one batch item, built with the encoder. */
static void build_response(ttlv_enc *e, uint32_t op, uint32_t status, uint32_t reason, const char *msg,
                           int batch_count) {
        ttlv_enc_init(e);
        ttlv_enc_begin(e, KMIP_TAG_RESPONSE_MESSAGE);
        ttlv_enc_begin(e, KMIP_TAG_RESPONSE_HEADER);
        ttlv_enc_begin(e, KMIP_TAG_PROTOCOL_VERSION);
        ttlv_enc_int(e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
        ttlv_enc_int(e, KMIP_TAG_PROTOCOL_VERSION_MINOR, 4);
        ttlv_enc_end(e);
        ttlv_enc_datetime(e, 0x420092, 1700000000);
        ttlv_enc_int(e, KMIP_TAG_BATCH_COUNT, batch_count);
        ttlv_enc_end(e);
        ttlv_enc_begin(e, KMIP_TAG_BATCH_ITEM);
        ttlv_enc_enum(e, KMIP_TAG_OPERATION, op);
        ttlv_enc_enum(e, KMIP_TAG_RESULT_STATUS, status);
        if (status != 0) {
                ttlv_enc_enum(e, KMIP_TAG_RESULT_REASON, reason);
                ttlv_enc_text(e, KMIP_TAG_RESULT_MESSAGE, msg, strlen(msg));
        } else {
                ttlv_enc_begin(e, KMIP_TAG_RESPONSE_PAYLOAD);
                ttlv_enc_text(e, KMIP_TAG_UNIQUE_IDENTIFIER, "42", 2);
                ttlv_enc_end(e);
        }
        ttlv_enc_end(e);
        ttlv_enc_end(e);
}

static void test_response_parser(void **state) {
        ttlv_enc e;
        const uint8_t *out;
        size_t len, payload;
        ttlv_tree *t = NULL;

        build_response(&e, KMIP_OP_DESTROY, 0, 0, "", 1);
        assert_int_equal(ttlv_enc_finish(&e, &out, &len), 0);
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(kmip_parse_response(out, len, KMIP_OP_DESTROY, &t, &payload, &err), 0);
        assert_true(payload != TTLV_NONE);
        ttlv_tree_free(t);
        t = NULL;
        /* Answer to another operation. */
        assert_int_equal(kmip_parse_response(out, len, KMIP_OP_DECRYPT, &t, &payload, &err), -EBADMSG);
        assert_string_equal(err.reason, "protocol-error");
        ttlv_enc_done(&e);

        /* Failure results map to reason tokens and carry the Result Message (sanitised). */
        static const struct {
                uint32_t reason;
                const char *token;
                int code;
        } map[] = {
                { KMIP_REASON_ITEM_NOT_FOUND, "item-not-found", -ENOENT },
                { KMIP_REASON_PERMISSION_DENIED, "permission-denied", -EACCES },
                { KMIP_REASON_AUTHENTICATION_NOT_SUCCESSFUL, "authentication-failed", -EACCES },
                { KMIP_REASON_INVALID_FIELD, "invalid-field", -EINVAL },
                { KMIP_REASON_OPERATION_NOT_SUPPORTED, "operation-not-supported", -EOPNOTSUPP },
                { KMIP_REASON_GENERAL_FAILURE, "general-failure", -EIO },
                { 0x15, "operation-failed", -EIO },
        };
        for (size_t k = 0; k < ELEMENTSOF(map); k++) {
                build_response(&e, KMIP_OP_DECRYPT, 1, map[k].reason, "no\x01such\nobject", 1);
                assert_int_equal(ttlv_enc_finish(&e, &out, &len), 0);
                ct_error fe = CT_ERROR_INIT;
                assert_int_equal(kmip_parse_response(out, len, KMIP_OP_DECRYPT, &t, &payload, &fe), map[k].code);
                assert_string_equal(fe.layer, "kmip");
                assert_string_equal(fe.reason, map[k].token);
                assert_non_null(strstr(fe.detail, "no?such?object"));
                ttlv_enc_done(&e);
        }

        /* Two batch items announced. */
        build_response(&e, KMIP_OP_DESTROY, 0, 0, "", 2);
        assert_int_equal(ttlv_enc_finish(&e, &out, &len), 0);
        ct_error be = CT_ERROR_INIT;
        assert_int_equal(kmip_parse_response(out, len, KMIP_OP_DESTROY, &t, &payload, &be), -EBADMSG);
        assert_string_equal(be.reason, "protocol-error");
        ttlv_enc_done(&e);

        /* Not TTLV at all. */
        ct_error ne = CT_ERROR_INIT;
        assert_int_equal(kmip_parse_response((const uint8_t *) "HTTP/1.1 400 Bad", 16, KMIP_OP_DESTROY, &t, &payload,
                                             &ne),
                         -EBADMSG);
        assert_string_equal(ne.reason, "protocol-error");
}

static void test_endpoint(void **state) {
        char *h = NULL;
        uint16_t p;
        assert_int_equal(kmip_parse_endpoint("127.0.0.1:5696", &h, &p), 0);
        assert_string_equal(h, "127.0.0.1");
        assert_int_equal(p, 5696);
        free(h);
        assert_int_equal(kmip_parse_endpoint("kms.example", &h, &p), 0);
        assert_string_equal(h, "kms.example");
        assert_int_equal(p, KMIP_DEFAULT_PORT);
        free(h);
        assert_int_equal(kmip_parse_endpoint("[::1]:7000", &h, &p), 0);
        assert_string_equal(h, "::1");
        assert_int_equal(p, 7000);
        free(h);
        const char *bad[] = { "", ":5696", "h:0", "h:65536", "h:x", "::1", "[::1", "[]:1", "h:-1", "h:1 " };
        for (size_t k = 0; k < ELEMENTSOF(bad); k++)
                assert_int_equal(kmip_parse_endpoint(bad[k], &h, &p), -EINVAL);
}

static void expect_cfg_error(const kmip_uri_params *p, const char *needle) {
        kmip_config c;
        ct_error err = CT_ERROR_INIT;
        assert_true(kmip_config_from_params(p, &c, &err) < 0);
        assert_string_equal(err.layer, "kmip");
        assert_string_equal(err.reason, "bad-config");
        if (!strstr(err.detail, needle))
                fail_msg("detail \"%s\" does not name \"%s\"", err.detail, needle);
}

/* The kms://kmip parameters: every bad value refused as bad-config naming the parameter; the URI
 * builder encodes as lib/kms decodes and refuses references it could not round-trip. */
static void test_uri_and_config(void **state) {
        char dir[] = "/tmp/test-kmip-cfg-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char pem[sizeof(dir) + 16], notpem[sizeof(dir) + 16];
        snprintf(pem, sizeof(pem), "%s/x.pem", dir);
        snprintf(notpem, sizeof(notpem), "%s/x.txt", dir);
        FILE *f = fopen(pem, "w");
        fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
        fclose(f);
        f = fopen(notpem, "w");
        fputs("hello\n", f);
        fclose(f);

        kmip_uri_params p = { .endpoint = "127.0.0.1:5696", .client_cert = pem, .client_key = pem, .server_ca = pem };
        kmip_config c;
        assert_int_equal(kmip_config_from_params(&p, &c, NULL), 0);
        assert_string_equal(c.host, "127.0.0.1");
        assert_int_equal(c.port, 5696);
        kmip_config_done(&c);

        kmip_uri_params b = p;
        b.endpoint = "127.0.0.1:99999";
        expect_cfg_error(&b, "endpoint");
        b = p;
        b.client_cert = "relative/path.pem";
        expect_cfg_error(&b, "client-cert");
        b = p;
        b.client_key = "/nonexistent/key.pem";
        expect_cfg_error(&b, "client-key");
        b = p;
        b.server_ca = notpem;
        expect_cfg_error(&b, "server-ca: not PEM");
        b = p;
        b.server_ca = "base64:!!!";
        expect_cfg_error(&b, "server-ca: inline value is not base64url");
        b = p;
        b.timeout_ms = "0";
        expect_cfg_error(&b, "timeout-ms");
        b = p;
        b.attempts = "21";
        expect_cfg_error(&b, "attempts");
        /* A certificate that is PEM-shaped but not a certificate is refused when the client is made. */
        assert_int_equal(kmip_config_from_params(&p, &c, NULL), 0);
        kmip_client *k = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_true(kmip_client_new(&c, &k, &err) < 0);
        assert_string_equal(err.reason, "bad-config");
        assert_non_null(strstr(err.detail, "client-cert"));
        kmip_config_done(&c);

        /* The builder. */
        uint8_t blob[KMIP_WRAP_OVERHEAD + 32] = { KMIP_WRAP_VERSION };
        secret_t *salt = secret_new(32);
        kmip_uri_parts parts = { .endpoint = "kms.example:5696", .kek = "a b&c", .client_cert = "/etc/kmip/c.pem",
                                 .client_key = "/etc/kmip/c.key", .server_ca = "base64:LS0tLS1C",
                                 .wrapped = blob, .wrapped_len = sizeof(blob), .salt = salt,
                                 .server_name = "kms.example" };
        char *uri = NULL;
        assert_int_equal(kmip_uri_build(&parts, &uri, &err), 0);
        assert_non_null(strstr(uri, "kms://kmip?endpoint=kms.example:5696&kek=a%20b%26c&wrapped="));
        assert_non_null(strstr(uri, "&salt=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=&client-cert=/etc/kmip/c.pem"));
        assert_non_null(strstr(uri, "&server-name=kms.example"));
        erase_and_free(uri);
        static const char *const bad_refs[] = { "etc/c.pem", "/etc/a b.pem", "/etc/a+b.pem", "/etc/a%41.pem",
                                                "base64:a+b" };
        for (size_t i = 0; i < ELEMENTSOF(bad_refs); i++) {
                kmip_uri_parts q = parts;
                q.client_key = bad_refs[i];
                ct_error e2 = CT_ERROR_INIT;
                assert_int_equal(kmip_uri_build(&q, &uri, &e2), -EINVAL);
                assert_string_equal(e2.reason, "bad-config");
                assert_non_null(strstr(e2.detail, "client-key"));
        }
        kmip_uri_parts q = parts;
        q.endpoint = "kms.example:0";
        assert_int_equal(kmip_uri_build(&q, &uri, NULL), -EINVAL);
        secret_free(salt);
        unlink(pem);
        unlink(notpem);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec_examples),  cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_rejections),     cmocka_unit_test(test_response_parser),
                cmocka_unit_test(test_endpoint),       cmocka_unit_test(test_uri_and_config),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
