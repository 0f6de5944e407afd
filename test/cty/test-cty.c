/* SPDX-License-Identifier: Apache-2.0 */
/* Byte-exact vectors from go-cty's msgpack encoding as Terraform 1.11 sends it
 * (terraform-plugin-protocol.md §6.2, hex verified there), plus rejections with their reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "basic/encoding.h"
#include "cty/cty.h"

static uint8_t *unhex(const char *hex, size_t *len) {
        uint8_t *out;
        assert_int_equal(hex_decode(hex, strlen(hex), &out, len), 0);
        return out;
}

static cty_type *probe_thing_type(void) {
        const char *names[] = { "id", "name", "size", "value" };
        cty_type *types[] = { &cty_string, &cty_string, &cty_number, &cty_string };
        return cty_type_object(4, names, types);
}

/* `84 a2"id" c0 a4"name" a5"alpha" a4"size" c0 a5"value" d4 00 00` (§6.2). */
static const char *probe_hex = "84a2696400c0a46e616d65a5616c706861a473697a65c0a576616c7565d40000";

static void test_object_roundtrip(void **state) {
        /* The reference writes `a2"id"` without the key bytes' position; build the real bytes. */
        _cleanup_(cty_type_unrefp) cty_type *t = probe_thing_type();
        _cleanup_(cty_value_freep) cty_value *v = cty_object_new(t);
        assert_int_equal(cty_object_set(v, "name", cty_string_new("alpha")), 0);
        assert_int_equal(cty_object_set(v, "value", cty_unknown(&cty_string)), 0);
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        assert_int_equal(cty_msgpack_encode(v, t, &buf, &len), 0);
        _cleanup_free_ char *hex = hex_encode(buf, len);
        assert_string_equal(hex, "84a26964c0a46e616d65a5616c706861a473697a65c0a576616c7565d40000");

        _cleanup_(cty_value_freep) cty_value *back = NULL;
        assert_int_equal(cty_msgpack_decode(buf, len, t, &back, NULL), 0);
        assert_true(cty_value_equal(v, back));
        assert_true(cty_object_get(back, "id")->null);
        assert_true(cty_object_get(back, "value")->unknown);
        assert_true(cty_value_has_unknown(back));
        (void) probe_hex;
}

static void test_numbers(void **state) {
        static const struct {
                const char *hex;
                int64_t i;
        } ints[] = { { "2a", 42 }, { "cd012c", 300 }, { "ce00011170", 70000 }, { "fd", -3 }, { "d1ff38", -200 } };
        for (size_t k = 0; k < ELEMENTSOF(ints); k++) {
                _cleanup_(cty_value_freep) cty_value *v = cty_number_int(ints[k].i);
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;
                assert_int_equal(cty_msgpack_encode(v, &cty_number, &buf, &len), 0);
                _cleanup_free_ char *hex = hex_encode(buf, len);
                assert_string_equal(hex, ints[k].hex);
                _cleanup_(cty_value_freep) cty_value *back = NULL;
                assert_int_equal(cty_msgpack_decode(buf, len, &cty_number, &back, NULL), 0);
                int64_t x;
                assert_int_equal(cty_value_get_int64(back, &x), 0);
                assert_int_equal(x, ints[k].i);
        }
        /* 1.5 is float64 cb 3ff8...; 0.1 arrives as the string "0.1" and must survive exactly. */
        _cleanup_(cty_value_freep) cty_value *f = cty_number_float(1.5);
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        assert_int_equal(cty_msgpack_encode(f, &cty_number, &buf, &len), 0);
        _cleanup_free_ char *hex = hex_encode(buf, len);
        assert_string_equal(hex, "cb3ff8000000000000");

        size_t slen;
        _cleanup_free_ uint8_t *s = unhex("a3302e31", &slen);
        _cleanup_(cty_value_freep) cty_value *dec = NULL;
        assert_int_equal(cty_msgpack_decode(s, slen, &cty_number, &dec, NULL), 0);
        assert_int_equal(dec->num.form, CTY_NUM_STRING);
        _cleanup_free_ uint8_t *re = NULL;
        size_t relen;
        assert_int_equal(cty_msgpack_encode(dec, &cty_number, &re, &relen), 0);
        assert_int_equal(relen, slen);
        assert_memory_equal(re, s, slen);

        /* 12345678901234567890 (above int64) as uint64 cf...: kept as exact text. */
        size_t blen;
        _cleanup_free_ uint8_t *big = unhex("cfab54a98ceb1f0ad2", &blen);
        _cleanup_(cty_value_freep) cty_value *bv = NULL;
        assert_int_equal(cty_msgpack_decode(big, blen, &cty_number, &bv, NULL), 0);
        assert_string_equal(bv->num.text, "12345678901234567890");
        int64_t x;
        assert_int_equal(cty_value_get_int64(bv, &x), -ERANGE);
}

static void test_refined_unknown(void **state) {
        /* `c7 0c 0c 82 01 c2 02 a7 "static-"`: refinements kept byte for byte. */
        size_t len;
        _cleanup_free_ uint8_t *b = unhex("c70c0c8201c202a77374617469632d", &len);
        _cleanup_(cty_value_freep) cty_value *v = NULL;
        assert_int_equal(cty_msgpack_decode(b, len, &cty_string, &v, NULL), 0);
        assert_true(v->unknown);
        assert_int_equal(v->refinements_len, 12);
        _cleanup_free_ uint8_t *re = NULL;
        size_t relen;
        assert_int_equal(cty_msgpack_encode(v, &cty_string, &re, &relen), 0);
        assert_int_equal(relen, len);
        assert_memory_equal(re, b, len);
}

static void test_dynamic(void **state) {
        /* `92 c4 32 ["object",{"a":"number","b":["tuple",["string"]]}] 82 a1"a" 01 a1"b" 91 a1"x"` */
        const char *tj = "[\"object\",{\"a\":\"number\",\"b\":[\"tuple\",[\"string\"]]}]";
        char hex[512] = "92c432";
        _cleanup_free_ char *tjhex = hex_encode(tj, strlen(tj));
        strcat(hex, tjhex);
        strcat(hex, "82a16101a16291a178");
        size_t len;
        _cleanup_free_ uint8_t *b = unhex(hex, &len);
        _cleanup_(cty_value_freep) cty_value *v = NULL;
        assert_int_equal(cty_msgpack_decode(b, len, &cty_dynamic, &v, NULL), 0);
        assert_int_equal(v->type->kind, CTY_OBJECT);
        int64_t a;
        assert_int_equal(cty_value_get_int64(cty_object_get(v, "a"), &a), 0);
        assert_int_equal(a, 1);
        _cleanup_free_ uint8_t *re = NULL;
        size_t relen;
        assert_int_equal(cty_msgpack_encode(v, &cty_dynamic, &re, &relen), 0);
        assert_int_equal(relen, len);
        assert_memory_equal(re, b, len);

        /* Null and unknown dynamic values are bare. */
        _cleanup_(cty_value_freep) cty_value *n = NULL;
        assert_int_equal(cty_msgpack_decode((const uint8_t *) "\xc0", 1, &cty_dynamic, &n, NULL), 0);
        assert_true(n->null);
}

static void test_collections_and_json(void **state) {
        _cleanup_(cty_type_unrefp) cty_type *lt = cty_type_list(&cty_string);
        _cleanup_(cty_type_unrefp) cty_type *mt = cty_type_map(&cty_bool);
        const char *names[] = { "list", "map", "n" };
        cty_type *types[] = { lt, mt, &cty_number };
        _cleanup_(cty_type_unrefp) cty_type *ot = cty_type_object(3, names, types);
        _cleanup_free_ char *tjson = cty_type_to_json(ot);
        assert_string_equal(tjson, "[\"object\",{\"list\":[\"list\",\"string\"],\"map\":[\"map\",\"bool\"],\"n\":\"number\"}]");
        _cleanup_(cty_type_unrefp) cty_type *parsed = NULL;
        assert_int_equal(cty_type_from_json(tjson, strlen(tjson), &parsed), 0);
        assert_true(cty_type_equal(parsed, ot));

        const char *state_json = "{\"list\":[\"a\",\"b\"],\"map\":{\"z\":true,\"a\":false}}";
        _cleanup_(cty_value_freep) cty_value *v = NULL;
        assert_int_equal(cty_json_decode((const uint8_t *) state_json, strlen(state_json), ot, &v, NULL), 0);
        assert_true(cty_object_get(v, "n")->null); /* missing attribute -> null */
        _cleanup_free_ uint8_t *mp = NULL;
        size_t len;
        assert_int_equal(cty_msgpack_encode(v, ot, &mp, &len), 0);
        _cleanup_(cty_value_freep) cty_value *back = NULL;
        assert_int_equal(cty_msgpack_decode(mp, len, ot, &back, NULL), 0);
        assert_true(cty_value_equal(v, back));
        _cleanup_free_ char *js = cty_json_encode(back);
        assert_string_equal(js, "{\"list\":[\"a\",\"b\"],\"map\":{\"a\":false,\"z\":true},\"n\":null}");

        _cleanup_free_ char *err = NULL;
        cty_value *bad;
        const char *unknown_attr = "{\"nope\":1}";
        assert_int_equal(cty_json_decode((const uint8_t *) unknown_attr, strlen(unknown_attr), ot, &bad, &err), -EBADMSG);
        assert_string_equal(err, "(root): unsupported attribute \"nope\"");
}

static void expect_reject(cty_type *t, const char *hex, const char *reason) {
        size_t len;
        _cleanup_free_ uint8_t *b = unhex(hex, &len);
        cty_value *v = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(cty_msgpack_decode(b, len, t, &v, &err), -EBADMSG);
        assert_null(v);
        assert_non_null(err);
        if (strcmp(err, reason) != 0)
                fail_msg("expected \"%s\", got \"%s\"", reason, err);
}

static void test_rejections(void **state) {
        _cleanup_(cty_type_unrefp) cty_type *t = probe_thing_type();
        /* Three of four attributes: Terraform's own wording. */
        expect_reject(t, "83a26964c0a46e616d65c0a473697a65c0", "(root): an object with 4 attributes is required (3 given)");
        expect_reject(t, "84a26964c0a46e616d65c0a473697a65c0a3626164c0", "(root): unsupported attribute \"bad\"");
        expect_reject(t, "84a26964c0a46e616d6501a473697a65c0a576616c7565c0", ".name: string expected");
        expect_reject(&cty_string, "d50d0000", "(root): unsupported extension type");
        expect_reject(&cty_string, "a5616263", "malformed or truncated msgpack"); /* truncated */
        expect_reject(&cty_string, "dd7fffffff", "malformed or truncated msgpack"); /* huge array */
        expect_reject(&cty_string, "c0c0", "malformed or truncated msgpack"); /* trailing bytes */
        expect_reject(&cty_number, "a3616263", "(root): string is not a decimal number");
        _cleanup_(cty_type_unrefp) cty_type *bad = NULL;
        assert_int_equal(cty_type_from_json("[\"list\"]", 8, &bad), -EBADMSG);
        assert_int_equal(cty_type_from_json("\"strin\"", 7, &bad), -EBADMSG);
}

static void test_empty_is_null(void **state) {
        _cleanup_(cty_type_unrefp) cty_type *t = probe_thing_type();
        _cleanup_(cty_value_freep) cty_value *v = NULL;
        assert_int_equal(cty_msgpack_decode(NULL, 0, t, &v, NULL), 0);
        assert_true(v->null);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_object_roundtrip),     cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_refined_unknown),      cmocka_unit_test(test_dynamic),
                cmocka_unit_test(test_collections_and_json), cmocka_unit_test(test_rejections),
                cmocka_unit_test(test_empty_is_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
