/* SPDX-License-Identifier: Apache-2.0 */
/* go-cty conformance of the codecs beyond the reference's vectors: canonical numbers (go-cty
 * msgpack/marshal.go: int64, else exact float64, else Text('f', -1)), sets (sorted, deduplicated
 * as cty.SetVal does), dynamic wrapping of null/unknown, ctyjson decoding and encoding, path
 * accessors, and every rejection with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>

#include "basic/encoding.h"
#include "cty/cty.h"

static uint8_t *unhex(const char *hex, size_t *len) {
        uint8_t *out;
        assert_int_equal(hex_decode(hex, strlen(hex), &out, len), 0);
        return out;
}

static char *hexstr(const char *s) {
        return hex_encode(s, strlen(s));
}

/* Decodes hex_in as type t, re-encodes, and expects hex_out (NULL: same bytes). */
static cty_value *mp_roundtrip(cty_type *t, const char *hex_in, const char *hex_out) {
        size_t len;
        _cleanup_free_ uint8_t *in = unhex(hex_in, &len);
        cty_value *v = NULL;
        _cleanup_free_ char *err = NULL;
        if (cty_msgpack_decode(in, len, t, &v, &err) < 0)
                fail_msg("decoding %s failed: %s", hex_in, err);
        _cleanup_free_ uint8_t *out = NULL;
        size_t olen;
        assert_int_equal(cty_msgpack_encode(v, t, &out, &olen), 0);
        _cleanup_free_ char *hex = hex_encode(out, olen);
        if (strcmp(hex, hex_out ?: hex_in) != 0)
                fail_msg("%s re-encoded as %s, expected %s", hex_in, hex, hex_out ?: hex_in);
        /* The re-encoding decodes to an equal value. */
        _cleanup_(cty_value_freep) cty_value *again = NULL;
        assert_int_equal(cty_msgpack_decode(out, olen, t, &again, NULL), 0);
        assert_true(cty_value_equal(v, again));
        return v;
}

static void mp_reject(cty_type *t, const char *hex, const char *reason) {
        size_t len;
        _cleanup_free_ uint8_t *b = unhex(hex, &len);
        cty_value *v = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(cty_msgpack_decode(b, len, t, &v, &err), -EBADMSG);
        assert_null(v);
        if (!err || strcmp(err, reason) != 0)
                fail_msg("%s: expected \"%s\", got \"%s\"", hex, reason, err);
}

static char *mp_str_hex(const char *s) {
        /* msgpack str header + bytes, for texts up to 65535 bytes */
        size_t n = strlen(s);
        char head[32];
        if (n < 32)
                snprintf(head, sizeof(head), "%02zx", 0xa0 + n);
        else if (n < 256)
                snprintf(head, sizeof(head), "d9%02zx", n);
        else
                snprintf(head, sizeof(head), "da%04zx", n);
        _cleanup_free_ char *body = hexstr(s);
        char *out;
        assert_true(asprintf(&out, "%s%s", head, body) > 0);
        return out;
}

static void test_canonical_numbers(void **state) {
        cty_value *v;
        /* Decimal strings that are really ints or exact floats take go-cty's shorter forms. */
        _cleanup_free_ char *s15 = mp_str_hex("1.50");
        v = mp_roundtrip(&cty_number, s15, "cb3ff8000000000000");
        assert_int_equal(v->num.form, CTY_NUM_FLOAT);
        _cleanup_(cty_value_freep) cty_value *f15 = cty_number_float(1.5);
        assert_true(cty_value_equal(v, f15));
        cty_value_free(v);
        _cleanup_free_ char *s1e3 = mp_str_hex("1e3");
        cty_value_free(mp_roundtrip(&cty_number, s1e3, "cd03e8"));
        _cleanup_free_ char *sneg = mp_str_hex("-200");
        cty_value_free(mp_roundtrip(&cty_number, sneg, "d1ff38"));
        _cleanup_free_ char *szero = mp_str_hex("-0.000");
        cty_value_free(mp_roundtrip(&cty_number, szero, "00"));
        /* float32 1.5 is written back as float64, as go-cty does. */
        cty_value_free(mp_roundtrip(&cty_number, "ca3fc00000", "cb3ff8000000000000"));
        /* Integral floats in int64 are ints (compact ints). */
        cty_value_free(mp_roundtrip(&cty_number, "cb4045000000000000", "2a"));
        /* 2^63 as uint64 is above int64 but exactly a double. */
        v = mp_roundtrip(&cty_number, "cf8000000000000000", "cb43e0000000000000");
        assert_int_equal(v->num.form, CTY_NUM_FLOAT);
        int64_t i;
        assert_int_equal(cty_value_get_int64(v, &i), -ERANGE);
        cty_value_free(v);
        /* int64 extremes. */
        cty_value_free(mp_roundtrip(&cty_number, "d38000000000000000", NULL));
        cty_value_free(mp_roundtrip(&cty_number, "cf7fffffffffffffff", NULL));
        /* 12345678901234567890 fits uint64 but not int64 or a double: a string (§6.2). */
        _cleanup_free_ char *big = mp_str_hex("12345678901234567890");
        cty_value_free(mp_roundtrip(&cty_number, "cfab54a98ceb1f0ad2", big));
        /* 1e300 is the full expansion from Text('f', -1) (§6.2). */
        char e300[302] = "1";
        memset(e300 + 1, '0', 300);
        e300[301] = 0;
        _cleanup_free_ char *e300hex = mp_str_hex(e300);
        _cleanup_free_ char *e300in = mp_str_hex("1e300");
        v = mp_roundtrip(&cty_number, e300in, e300hex);
        assert_int_equal(v->num.form, CTY_NUM_STRING);
        assert_string_equal(v->num.text, e300);
        double d;
        assert_int_equal(cty_value_get_double(v, &d), -ERANGE);
        cty_value_free(v);
        /* 0.1 is no binary float: it stays the string "0.1", also when written as "0.10". */
        _cleanup_free_ char *p1 = mp_str_hex("0.1"), *p10 = mp_str_hex("0.10");
        cty_value_free(mp_roundtrip(&cty_number, p10, p1));
        /* ±Inf are float64 infinities (§6.2). */
        v = mp_roundtrip(&cty_number, "cb7ff0000000000000", NULL);
        assert_true(isinf(v->num.f));
        _cleanup_free_ char *jerr = NULL;
        char *js = NULL;
        assert_int_equal(cty_json_encode_as(v, &cty_number, &js, &jerr), -EINVAL);
        assert_string_equal(jerr, "(root): number cannot be written as JSON (infinity)");
        cty_value_free(v);
        cty_value_free(mp_roundtrip(&cty_number, "cbfff0000000000000", NULL));

        /* Rejections. */
        mp_reject(&cty_number, "cb7ff8000000000000", "(root): NaN is not a number value");
        _cleanup_free_ char *hex16 = mp_str_hex("0x10"), *inf = mp_str_hex("inf"), *sp = mp_str_hex(" 1"),
                            *e = mp_str_hex("1e"), *dots = mp_str_hex("1.2.3"), *empty = mp_str_hex("");
        mp_reject(&cty_number, hex16, "(root): string is not a decimal number");
        mp_reject(&cty_number, inf, "(root): string is not a decimal number");
        mp_reject(&cty_number, sp, "(root): string is not a decimal number");
        mp_reject(&cty_number, e, "(root): string is not a decimal number");
        mp_reject(&cty_number, dots, "(root): string is not a decimal number");
        mp_reject(&cty_number, empty, "(root): string is not a decimal number");
        char many[2001];
        memset(many, '7', 2000);
        many[2000] = 0;
        _cleanup_free_ char *manyhex = mp_str_hex(many);
        mp_reject(&cty_number, manyhex, "(root): number has too many digits");
        _cleanup_free_ char *hugeexp = mp_str_hex("1e5000");
        mp_reject(&cty_number, hugeexp, "(root): number has too many digits");
        mp_reject(&cty_number, "c3", "(root): number expected");
}

static void test_number_accessors(void **state) {
        _cleanup_(cty_value_freep) cty_value *a = NULL, *b = NULL, *c = NULL, *big = NULL, *f = cty_number_float(0.1);
        assert_int_equal(cty_number_from_string("0.1", 3, &a), 0);
        assert_int_equal(a->num.form, CTY_NUM_STRING);
        /* The double 0.1 is not the decimal 0.1. */
        assert_false(cty_value_equal(a, f));
        double d;
        assert_int_equal(cty_value_get_double(a, &d), -ERANGE);
        assert_int_equal(cty_value_get_double(f, &d), 0);
        assert_true(d == 0.1);
        /* The double 0.1 is written with its exact value, so it reads back as the same double. */
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;
        assert_int_equal(cty_value_get_number_text(f, &t1), 0);
        assert_string_equal(t1, "0.1000000000000000055511151231257827021181583404541015625");
        _cleanup_(cty_value_freep) cty_value *f2 = NULL;
        assert_int_equal(cty_number_from_string(t1, strlen(t1), &f2), 0);
        assert_int_equal(f2->num.form, CTY_NUM_FLOAT);
        assert_true(cty_value_equal(f, f2));
        assert_int_equal(cty_number_from_string("-1.25e-5", 8, &b), 0);
        assert_int_equal(cty_value_get_number_text(b, &t2), 0);
        assert_string_equal(t2, "-0.0000125");
        assert_int_equal(cty_number_from_string("9007199254740993", 16, &c), 0); /* 2^53 + 1 */
        int64_t i;
        assert_int_equal(cty_value_get_int64(c, &i), 0);
        assert_true(i == 9007199254740993LL);
        assert_int_equal(cty_value_get_double(c, &d), -ERANGE);
        assert_int_equal(cty_number_from_string("-9223372036854775809", 20, &big), 0);
        assert_int_equal(big->num.form, CTY_NUM_STRING);
        assert_int_equal(cty_value_get_number_text(big, &t3), 0);
        assert_string_equal(t3, "-9223372036854775809");
        assert_int_equal(cty_value_get_int64(big, &i), -ERANGE);
        cty_value *x = NULL;
        assert_int_equal(cty_number_from_string("1_000", 5, &x), -EINVAL);
        assert_int_equal(cty_number_from_string("nan", 3, &x), -EINVAL);
        assert_null(cty_number_float(NAN));
        assert_int_equal(cty_value_get_int64(f, &i), -ERANGE);
        _cleanup_(cty_value_freep) cty_value *s = cty_string_new("1");
        assert_int_equal(cty_value_get_int64(s, &i), -EINVAL);
}

/* Every finite double written as text reads back as the same double (covers both the 128-bit
 * fast path and the full expansion of the exact decimal value). */
static void test_double_text_roundtrip(void **state) {
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        double fixed[] = { 0.1, 1e-300, 5e-324, 1.7976931348623157e308, 1e23, 3.0e-8, -2.5, 0x1p63, 0x1p-27,
                           0x1p-28, 123456.789 };
        for (size_t i = 0; i < 20000 + ELEMENTSOF(fixed); i++) {
                double f;
                if (i < ELEMENTSOF(fixed))
                        f = fixed[i];
                else {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        memcpy(&f, &x, sizeof(f));
                        if (!isfinite(f))
                                continue;
                        if (i % 2) /* also short-exponent values, the common case */
                                f = ldexp((double) (x >> 11), (int) (x % 80) - 60);
                }
                _cleanup_(cty_value_freep) cty_value *v = cty_number_float(f), *back = NULL;
                _cleanup_free_ char *text = NULL;
                assert_int_equal(cty_value_get_number_text(v, &text), 0);
                assert_int_equal(cty_number_from_string(text, strlen(text), &back), 0);
                if (!cty_value_equal(v, back))
                        fail_msg("%a written as %s did not read back", f, text);
        }
}

static void test_sets(void **state) {
        _cleanup_(cty_type_unrefp) cty_type *ss = cty_type_set(&cty_string);
        _cleanup_(cty_type_unrefp) cty_type *sn = cty_type_set(&cty_number);
        _cleanup_(cty_type_unrefp) cty_type *sb = cty_type_set(&cty_bool);
        /* go-cty writes set elements sorted and merges duplicates: ["b","a","b"] -> ["a","b"]. */
        cty_value *v = mp_roundtrip(ss, "93a162a161a162", "92a161a162");
        size_t n;
        assert_int_equal(cty_value_length(v, &n), 0);
        assert_int_equal(n, 2);
        cty_value_free(v);
        /* Numbers numerically (10 after 9, 1.5 and "1.50" are one element), false before true. */
        _cleanup_free_ char *s150 = mp_str_hex("1.50");
        char in[128];
        snprintf(in, sizeof(in), "940a09cb3ff8000000000000%s", s150);
        cty_value_free(mp_roundtrip(sn, in, "93cb3ff8000000000000090a"));
        cty_value_free(mp_roundtrip(sb, "93c3c2c3", "92c2c3"));
        /* Nulls merge and sort last; unknowns are never merged and sort after known values. */
        cty_value_free(mp_roundtrip(ss, "95c0d40000a178c0d40000", "94a178d40000d40000c0"));

        /* Appending keeps the same order and drops duplicates. */
        _cleanup_(cty_value_freep) cty_value *a = cty_collection_new(ss), *b = cty_collection_new(ss);
        assert_int_equal(cty_collection_append(a, cty_string_new("zeta")), 0);
        assert_int_equal(cty_collection_append(a, cty_string_new("alpha")), 0);
        assert_int_equal(cty_collection_append(a, cty_string_new("zeta")), 0);
        assert_int_equal(cty_collection_append(b, cty_string_new("alpha")), 0);
        assert_int_equal(cty_collection_append(b, cty_string_new("zeta")), 0);
        assert_int_equal(a->c.n, 2);
        assert_string_equal(a->c.items[0]->s.str, "alpha");
        assert_true(cty_value_equal(a, b));
        /* Equality is order-independent even if someone reorders items in place. */
        cty_value *tmp = b->c.items[0];
        b->c.items[0] = b->c.items[1];
        b->c.items[1] = tmp;
        assert_true(cty_value_equal(a, b));
        assert_int_equal(cty_collection_append(a, cty_number_int(1)), -EINVAL); /* wrong element type */

        /* Sets of objects: duplicates merged by value. */
        const char *names[] = { "k" };
        cty_type *types[] = { &cty_string };
        _cleanup_(cty_type_unrefp) cty_type *ot = cty_type_object(1, names, types);
        _cleanup_(cty_type_unrefp) cty_type *so = cty_type_set(ot);
        cty_value_free(mp_roundtrip(so, "9381a16ba16281a16ba16181a16ba162", "9281a16ba16181a16ba162"));
}

static void test_dynamic_wrapping(void **state) {
        /* go-cty wraps every concretely typed value in a dynamic slot, null and unknown too. */
        _cleanup_free_ char *tj = hexstr("\"string\"");
        char want[128];
        _cleanup_(cty_value_freep) cty_value *n = cty_null(&cty_string), *u = cty_unknown(&cty_string);
        _cleanup_free_ uint8_t *b1 = NULL, *b2 = NULL;
        size_t l1, l2;
        assert_int_equal(cty_msgpack_encode(n, &cty_dynamic, &b1, &l1), 0);
        _cleanup_free_ char *h1 = hex_encode(b1, l1);
        snprintf(want, sizeof(want), "92c408%sc0", tj);
        assert_string_equal(h1, want);
        assert_int_equal(cty_msgpack_encode(u, &cty_dynamic, &b2, &l2), 0);
        _cleanup_free_ char *h2 = hex_encode(b2, l2);
        snprintf(want, sizeof(want), "92c408%sd40000", tj);
        assert_string_equal(h2, want);
        /* ... and decoding keeps the type. */
        _cleanup_(cty_value_freep) cty_value *back = NULL;
        assert_int_equal(cty_msgpack_decode(b1, l1, &cty_dynamic, &back, NULL), 0);
        assert_true(back->null);
        assert_int_equal(back->type->kind, CTY_STRING);
        /* Values of type dynamic itself stay bare (§6.2), also an unknown with a 1-byte ext of
         * another type code (§6.3: any ext of length <= 1 is unknown). */
        cty_value_free(mp_roundtrip(&cty_dynamic, "c0", NULL));
        cty_value_free(mp_roundtrip(&cty_dynamic, "d40500", "d40000"));
        /* The type may be a str instead of bin; re-encoding writes bin. */
        _cleanup_free_ char *num = hexstr("\"number\"");
        char in[128], out[128];
        snprintf(in, sizeof(in), "92a8%s2a", num);
        snprintf(out, sizeof(out), "92c408%s2a", num);
        cty_value_free(mp_roundtrip(&cty_dynamic, in, out));

        mp_reject(&cty_dynamic, "2a", "(root): dynamic value must be [type, value]");
        mp_reject(&cty_dynamic, "922a2a", "(root): dynamic value type must be bytes");
        _cleanup_free_ char *dyn = hexstr("\"dynamic\""), *bad = hexstr("[\"list\"]");
        snprintf(in, sizeof(in), "92c409%sc0", dyn);
        mp_reject(&cty_dynamic, in, "(root): dynamic value cannot have type dynamic");
        snprintf(in, sizeof(in), "92c408%sc0", bad);
        mp_reject(&cty_dynamic, in, "(root): dynamic value has an invalid type");
        snprintf(in, sizeof(in), "92c408%sa178", num);
        mp_reject(&cty_dynamic, in, "(root): string is not a decimal number");
}

static void test_collections_msgpack(void **state) {
        _cleanup_(cty_type_unrefp) cty_type *mt = cty_type_map(&cty_number);
        /* Keys written sorted bytewise whatever order they came in. */
        cty_value *v = mp_roundtrip(mt, "82a16202a16101", "82a16101a16202");
        int64_t i;
        assert_int_equal(cty_value_get_int64(cty_map_get(v, "b"), &i), 0);
        assert_int_equal(i, 2);
        assert_null(cty_map_get(v, "c"));
        cty_value_free(v);
        cty_value_free(mp_roundtrip(mt, "80", NULL));
        mp_reject(mt, "82a16101a16102", "[\"a\"]: duplicate map key");
        mp_reject(mt, "81a161c3", "[\"a\"]: number expected");
        mp_reject(mt, "8101a161", "(root): map key must be a string");
        mp_reject(mt, "81a2610001", "[\"a?\"]: map key contains NUL");
        mp_reject(mt, "90", "(root): map expected");

        cty_type *tt[] = { &cty_string, &cty_bool };
        _cleanup_(cty_type_unrefp) cty_type *tup = cty_type_tuple(2, tt);
        cty_value_free(mp_roundtrip(tup, "92a178c3", NULL));
        mp_reject(tup, "91a178", "(root): tuple has the wrong number of elements");
        mp_reject(tup, "92a178a178", "[1]: bool expected");
        _cleanup_(cty_value_freep) cty_value *t = cty_collection_new(tup);
        assert_int_equal(cty_collection_append(t, cty_bool_new(true)), -EINVAL); /* slot 0 is a string */
        assert_int_equal(cty_collection_append(t, cty_string_new("x")), 0);
        assert_int_equal(cty_collection_append(t, cty_bool_new(true)), 0);
        assert_int_equal(cty_collection_append(t, cty_bool_new(true)), -EINVAL); /* full */

        /* Nested blocks as Terraform sends them (§6.3): empty list block 90, empty map block 80,
         * absent single block c0, absent group block {"y": nil}. */
        const char *yn[] = { "y" };
        cty_type *yt[] = { &cty_string };
        _cleanup_(cty_type_unrefp) cty_type *blk = cty_type_object(1, yn, yt);
        _cleanup_(cty_type_unrefp) cty_type *lb = cty_type_list(blk);
        _cleanup_(cty_type_unrefp) cty_type *mb = cty_type_map(blk);
        const char *bn[] = { "blk", "grp", "mp", "one" };
        cty_type *bt[] = { lb, blk, mb, blk };
        _cleanup_(cty_type_unrefp) cty_type *res = cty_type_object(4, bn, bt);
        _cleanup_free_ char *h_blk = hexstr("blk"), *h_grp = hexstr("grp"), *h_mp = hexstr("mp"), *h_one = hexstr("one");
        char in[256];
        snprintf(in, sizeof(in), "84a3%s90a3%s81a179c0a2%s80a3%sc0", h_blk, h_grp, h_mp, h_one);
        v = mp_roundtrip(res, in, NULL);
        assert_int_equal(cty_value_length(cty_object_get(v, "blk"), &(size_t){ 0 }), 0);
        assert_true(cty_object_get(v, "one")->null);
        assert_true(cty_value_at(v, ".grp.y")->null);
        cty_value_free(v);
        snprintf(in, sizeof(in), "84a3%s9181a179a161a3%s81a179c0a2%s81a16c81a179a162a3%s81a179a163", h_blk, h_grp, h_mp,
                 h_one);
        v = mp_roundtrip(res, in, NULL);
        const char *s;
        assert_int_equal(cty_value_get_string(cty_value_at(v, ".blk[0].y"), &s, NULL), 0);
        assert_string_equal(s, "a");
        assert_int_equal(cty_value_get_string(cty_value_at(v, ".mp[\"l\"].y"), &s, NULL), 0);
        assert_string_equal(s, "b");
        assert_int_equal(cty_value_get_string(cty_value_at(v, ".one.y"), &s, NULL), 0);
        assert_string_equal(s, "c");
        assert_null(cty_value_at(v, ".blk[1].y"));
        assert_null(cty_value_at(v, ".grp.y.z"));
        assert_null(cty_value_at(v, ".nope"));
        assert_null(cty_value_at(v, "blk"));
        assert_null(cty_value_at(v, ".mp[\"l\""));
        assert_true(cty_value_at(v, "") == v);
        cty_value_free(v);
        /* Error paths name the attribute, key and index. */
        snprintf(in, sizeof(in), "84a3%s9181a17901a3%s81a179c0a2%s80a3%sc0", h_blk, h_grp, h_mp, h_one);
        mp_reject(res, in, ".blk[0].y: string expected");
        snprintf(in, sizeof(in), "84a3%s90a3%s81a179c0a2%s81a16c81a17a01a3%sc0", h_blk, h_grp, h_mp, h_one);
        mp_reject(res, in, ".mp[\"l\"]: unsupported attribute \"z\"");
        snprintf(in, sizeof(in), "84a3%s90a3%sc0a3%s80a3%sc0", h_blk, h_grp, h_grp, h_one);
        mp_reject(res, in, ".grp: duplicate attribute");
}

static void test_msgpack_bounds(void **state) {
        /* Truncated, overlong and oversized counts fail before any allocation. */
        mp_reject(&cty_string, "d9", "malformed or truncated msgpack");
        mp_reject(&cty_string, "da0005616263", "malformed or truncated msgpack");
        mp_reject(&cty_string, "c6ffffffff", "malformed or truncated msgpack");
        mp_reject(&cty_string, "dfffffffff", "malformed or truncated msgpack");
        mp_reject(&cty_string, "c1", "malformed or truncated msgpack");
        mp_reject(&cty_string, "a161a162", "malformed or truncated msgpack");
        mp_reject(&cty_string, "c70500", "malformed or truncated msgpack");
        /* Nesting deeper than the bound is refused with a reason, not a crash. */
        cty_type *t = cty_type_ref(&cty_string);
        char hex[256] = "";
        for (int i = 0; i < 40; i++) {
                cty_type *l = cty_type_list(t);
                cty_type_unref(t);
                t = l;
                strcat(hex, "91");
        }
        strcat(hex, "a178");
        size_t len;
        _cleanup_free_ uint8_t *b = unhex(hex, &len);
        cty_value *v = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(cty_msgpack_decode(b, len, t, &v, &err), -EBADMSG);
        assert_non_null(err);
        assert_true(strstr(err, "nested too deeply") || strstr(err, "malformed msgpack"));
        cty_type_unref(t);
        /* Ext payloads longer than 1 byte must be type 12 (§6.3). */
        mp_reject(&cty_string, "d5010000", "(root): unsupported extension type");
        mp_reject(&cty_bool, "a0", "(root): bool expected");
        mp_reject(&cty_string, "a2c328", "(root): string is not valid UTF-8");
        _cleanup_(cty_type_unrefp) cty_type *ms = cty_type_map(&cty_string);
        mp_reject(ms, "81a1ffa0", "[\"?\"]: map key is not valid UTF-8");
        mp_reject(&cty_string, "c3", "(root): string expected");
        _cleanup_(cty_type_unrefp) cty_type *lt = cty_type_list(&cty_string);
        mp_reject(lt, "80", "(root): array expected");
}

static cty_value *json_ok(cty_type *t, const char *json, const char *want) {
        cty_value *v = NULL;
        _cleanup_free_ char *err = NULL, *out = NULL;
        if (cty_json_decode((const uint8_t *) json, strlen(json), t, &v, &err) < 0)
                fail_msg("%s: %s", json, err);
        assert_int_equal(cty_json_encode_as(v, t, &out, NULL), 0);
        if (strcmp(out, want ?: json) != 0)
                fail_msg("%s re-encoded as %s, expected %s", json, out, want ?: json);
        return v;
}

static void json_reject(cty_type *t, const char *json, const char *reason) {
        cty_value *v = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(cty_json_decode((const uint8_t *) json, strlen(json), t, &v, &err), -EBADMSG);
        assert_null(v);
        if (!err || strcmp(err, reason) != 0)
                fail_msg("%s: expected \"%s\", got \"%s\"", json, reason, err);
}

static void test_json_numbers(void **state) {
        /* State numbers keep every digit (ctyjson reads them as big.Float). */
        cty_value *v = json_ok(&cty_number, "0.1", NULL);
        assert_int_equal(v->num.form, CTY_NUM_STRING);
        _cleanup_free_ uint8_t *mp = NULL;
        size_t len;
        assert_int_equal(cty_msgpack_encode(v, &cty_number, &mp, &len), 0);
        _cleanup_free_ char *h = hex_encode(mp, len);
        assert_string_equal(h, "a3302e31"); /* what go-cty sends for 0.1 (§6.2) */
        cty_value_free(v);
        cty_value_free(json_ok(&cty_number, "12345678901234567890", NULL));
        cty_value_free(json_ok(&cty_number, "-9223372036854775808", NULL));
        cty_value_free(json_ok(&cty_number, "1.5E+2", "150"));
        cty_value_free(json_ok(&cty_number, "2.50", "2.5"));
        v = json_ok(&cty_number, "-0.25", NULL);
        assert_int_equal(v->num.form, CTY_NUM_FLOAT);
        cty_value_free(v);
        cty_value_free(json_ok(&cty_number, "1e-3", "0.001"));
        /* Strings convert to numbers and back as ctyjson does. */
        cty_value_free(json_ok(&cty_number, "\"42\"", "42"));
        cty_value_free(json_ok(&cty_string, "42.50", "\"42.50\""));
        cty_value_free(json_ok(&cty_string, "true", "\"true\""));
        cty_value_free(json_ok(&cty_bool, "\"false\"", "false"));
        cty_value_free(json_ok(&cty_bool, "\"1\"", "true"));
        json_reject(&cty_number, "\"x\"", "(root): a number is required");
        json_reject(&cty_number, "true", "(root): number is required");
        json_reject(&cty_number, "01", "(root): extra data after the JSON value");
        json_reject(&cty_number, "-", "(root): invalid number");
        json_reject(&cty_number, "1.", "(root): invalid number");
        json_reject(&cty_number, "[1]", "(root): number is required");
        json_reject(&cty_bool, "1", "(root): bool is required");
        json_reject(&cty_bool, "\"yes\"", "(root): a bool is required");
        json_reject(&cty_string, "{}", "(root): string is required");
}

static void test_json_strings(void **state) {
        /* Escapes decode; Go's encoder escapes <, >, & and U+2028 and writes other UTF-8 as is. */
        cty_value *v = json_ok(&cty_string, "\"a\\u003cb\\/\\u00e9\\ud83d\\ude00\\n\\\"\"",
                               "\"a\\u003cb/\xc3\xa9\xf0\x9f\x98\x80\\n\\\"\"");
        assert_int_equal(v->s.len, 12);
        cty_value_free(v);
        cty_value_free(json_ok(&cty_string, "\"<&>\xe2\x80\xa8\"", "\"\\u003c\\u0026\\u003e\\u2028\""));
        /* A lone surrogate becomes U+FFFD, as in Go. */
        cty_value_free(json_ok(&cty_string, "\"\\ud800x\"", "\"\xef\xbf\xbdx\""));
        /* NUL inside a string is a valid cty string. */
        v = json_ok(&cty_string, "\"a\\u0000b\"", NULL);
        assert_int_equal(v->s.len, 3);
        cty_value_free(v);
        json_reject(&cty_string, "\"a\x01\"", "(root): control character in string");
        json_reject(&cty_string, "\"\xc3\x28\"", "(root): invalid UTF-8 in string");
        json_reject(&cty_string, "\"\xed\xa0\x80\"", "(root): invalid UTF-8 in string"); /* encoded surrogate */
        json_reject(&cty_string, "\"\xc0\xaf\"", "(root): invalid UTF-8 in string");     /* overlong */
        json_reject(&cty_string, "\"abc", "(root): unterminated string");
        json_reject(&cty_string, "\"\\x\"", "(root): invalid escape in string");
        json_reject(&cty_string, "\"\\u12\"", "(root): invalid \\u escape");
        json_reject(&cty_string, "", "(root): empty JSON document");
        json_reject(&cty_string, "  ", "(root): unexpected end of JSON");
        json_reject(&cty_string, "\"a\" \"b\"", "(root): extra data after the JSON value");
}

static void test_json_state(void **state) {
        /* A resource-like object as Terraform stores it in state (UpgradeResourceState). */
        _cleanup_(cty_type_unrefp) cty_type *ls = cty_type_list(&cty_string);
        _cleanup_(cty_type_unrefp) cty_type *ss = cty_type_set(&cty_string);
        _cleanup_(cty_type_unrefp) cty_type *mn = cty_type_map(&cty_number);
        cty_type *tt[] = { &cty_string, &cty_number };
        _cleanup_(cty_type_unrefp) cty_type *tup = cty_type_tuple(2, tt);
        const char *names[] = { "any", "count", "list", "map", "name", "set", "tup" };
        cty_type *types[] = { &cty_dynamic, &cty_number, ls, mn, &cty_string, ss, tup };
        _cleanup_(cty_type_unrefp) cty_type *t = cty_type_object(7, names, types);
        const char *in = "{\"set\":[\"b\",\"a\",\"b\"],\"name\":\"x\",\"map\":{\"z\":1,\"a\":0.5},"
                         "\"any\":{\"type\":[\"list\",\"bool\"],\"value\":[true]},\"tup\":[\"s\",1]}";
        cty_value *v = json_ok(t, in,
                               "{\"any\":{\"value\":[true],\"type\":[\"list\",\"bool\"]},\"count\":null,\"list\":null,"
                               "\"map\":{\"a\":0.5,\"z\":1},\"name\":\"x\",\"set\":[\"a\",\"b\"],\"tup\":[\"s\",1]}");
        /* Same value through msgpack and back. */
        _cleanup_free_ uint8_t *mp = NULL;
        size_t len;
        assert_int_equal(cty_msgpack_encode(v, t, &mp, &len), 0);
        _cleanup_(cty_value_freep) cty_value *back = NULL;
        assert_int_equal(cty_msgpack_decode(mp, len, t, &back, NULL), 0);
        assert_true(cty_value_equal(v, back));
        /* Unknown values cannot be written as JSON: the error names the path. */
        assert_int_equal(cty_object_set(v, "name", cty_unknown(&cty_string)), 0);
        char *js = NULL;
        _cleanup_free_ char *err = NULL;
        assert_int_equal(cty_json_encode_as(v, t, &js, &err), -EINVAL);
        assert_string_equal(err, ".name: value is not known");
        assert_null(cty_json_encode(v));
        cty_value_free(v);

        json_reject(t, "{\"nope\":1}", "(root): unsupported attribute \"nope\"");
        json_reject(t, "{\"name\":\"a\",\"name\":\"b\"}", ".name: duplicate attribute");
        json_reject(t, "{\"map\":{\"a\":1,\"a\":2}}", ".map[\"a\"]: duplicate map key");
        json_reject(t, "{\"map\":{\"a\":\"x\"}}", ".map[\"a\"]: a number is required");
        json_reject(t, "{\"list\":[\"a\",[]]}", ".list[1]: string is required");
        json_reject(t, "{\"list\":{}}", ".list: need JSON array for list");
        json_reject(t, "{\"set\":1}", ".set: need JSON array for set");
        json_reject(t, "{\"map\":[]}", ".map: need JSON object for map");
        json_reject(t, "{\"tup\":[\"a\"]}", ".tup: not enough tuple elements (need 2)");
        json_reject(t, "{\"tup\":[\"a\",1,2]}", ".tup: too many tuple elements (need 2)");
        json_reject(t, "[]", "(root): need JSON object for object");
        json_reject(t, "{\"list\":[\"a\"", ".list: expected ',' or ']'");
        json_reject(t, "{\"name\" \"a\"}", ".name: expected ':'");
        json_reject(t, "{\"name\":\"a\",}", "(root): string expected");
        json_reject(t, "{\"any\":{\"value\":1}}", ".any: missing type in dynamically-typed value");
        json_reject(t, "{\"any\":{\"type\":\"number\"}}", ".any: missing value in dynamically-typed value");
        json_reject(t, "{\"any\":{\"type\":\"number\",\"value\":1,\"x\":2}}",
                    ".any: invalid key \"x\" in dynamically-typed value");
        json_reject(t, "{\"any\":{\"type\":\"numbr\",\"value\":1}}", ".any: invalid type in dynamically-typed value");
        json_reject(t, "{\"any\":{\"type\":\"number\",\"value\":\"x\"}}", ".any: a number is required");
        json_reject(t, "{\"any\":1}", ".any: need JSON object for dynamically-typed value");
        /* Deep nesting is refused with a reason. */
        _cleanup_free_ char *deep = malloc(200);
        memset(deep, '[', 100);
        memset(deep + 100, ']', 100);
        cty_value *x = NULL;
        _cleanup_free_ char *derr = NULL;
        _cleanup_free_ char *wrapped = NULL;
        assert_true(asprintf(&wrapped, "{\"any\":{\"type\":\"string\",\"value\":%.*s}}", 200, deep) > 0);
        assert_int_equal(cty_json_decode((const uint8_t *) wrapped, strlen(wrapped), t, &x, &derr), -EBADMSG);
        assert_string_equal(derr, ".any: value nested too deeply");
}

static void test_types_json(void **state) {
        static const char *good[] = {
                "\"string\"", "\"number\"", "\"bool\"", "\"dynamic\"", "[\"list\",\"string\"]",
                "[\"map\",[\"list\",\"number\"]]", "[\"set\",\"bool\"]", "[\"tuple\",[]]",
                "[\"tuple\",[\"string\",[\"list\",\"dynamic\"]]]", "[\"object\",{}]",
                "[\"object\",{\"a\":\"string\",\"b\":[\"object\",{\"c\":\"number\"}]}]",
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(cty_type_unrefp) cty_type *t = NULL;
                assert_int_equal(cty_type_from_json(good[i], strlen(good[i]), &t), 0);
                _cleanup_free_ char *back = cty_type_to_json(t);
                assert_string_equal(back, good[i]);
        }
        /* Optional-attribute markers are accepted and stripped (§6.6); attributes come out sorted. */
        const char *opt = "[\"object\",{\"z\":\"string\",\"a\":\"bool\"},[\"z\"]]";
        _cleanup_(cty_type_unrefp) cty_type *t = NULL;
        assert_int_equal(cty_type_from_json(opt, strlen(opt), &t), 0);
        _cleanup_free_ char *back = cty_type_to_json(t);
        assert_string_equal(back, "[\"object\",{\"a\":\"bool\",\"z\":\"string\"}]");
        static const char *bad[] = {
                "", "\"strin\"", "[\"list\"]", "[\"list\",\"string\",\"x\"]", "[\"tuple\",\"string\"]",
                "[\"object\",[\"a\"]]", "[\"object\",{\"a\":\"x\"}]", "{\"a\":\"string\"}", "[\"lst\",\"string\"]",
                "[1,\"string\"]", "[\"object\",{\"a\":\"string\",\"a\":\"bool\"}]", "[\"object\",{},[1]]",
                "[\"object\",{\"a\":\"string\"},[\"b\"]]",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                cty_type *x = NULL;
                if (cty_type_from_json(bad[i], strlen(bad[i]), &x) != -EBADMSG)
                        fail_msg("type %s was accepted", bad[i]);
        }
        /* Depth bound. */
        char deep[1024] = "";
        for (int i = 0; i < 40; i++)
                strcat(deep, "[\"list\",");
        strcat(deep, "\"string\"");
        for (int i = 0; i < 40; i++)
                strcat(deep, "]");
        cty_type *x = NULL;
        assert_int_equal(cty_type_from_json(deep, strlen(deep), &x), -EBADMSG);
}

static void test_values_api(void **state) {
        const char *names[] = { "master_secret", "n", "tags" };
        _cleanup_(cty_type_unrefp) cty_type *tags = cty_type_map(&cty_string);
        cty_type *types[] = { &cty_string, &cty_number, tags };
        _cleanup_(cty_type_unrefp) cty_type *t = cty_type_object(3, names, types);
        _cleanup_(cty_value_freep) cty_value *o = cty_object_new(t);
        assert_int_equal(cty_object_set(o, "master_secret", cty_string_new("s3cr3t")), 0);
        assert_int_equal(cty_object_set(o, "n", cty_string_new("1")), -EINVAL); /* wrong type */
        assert_int_equal(cty_object_set(o, "nope", cty_number_int(1)), -EINVAL);
        assert_int_equal(cty_object_set(o, "n", cty_unknown(&cty_dynamic)), 0); /* untyped unknown fits */
        cty_value *m = cty_collection_new(tags);
        assert_int_equal(cty_map_put(m, "b", cty_string_new("2")), 0);
        assert_int_equal(cty_map_put(m, "a", cty_string_new("1")), 0);
        assert_int_equal(cty_map_put(m, "b", cty_string_new("3")), 0); /* replaces */
        assert_int_equal(cty_map_put(m, "c", cty_number_int(3)), -EINVAL);
        assert_int_equal(cty_object_set(o, "tags", m), 0);
        size_t n;
        assert_int_equal(cty_value_length(cty_object_get(o, "tags"), &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(cty_value_at(o, ".tags[\"b\"]")->s.str, "3");
        assert_null(cty_index_get(cty_object_get(o, "tags"), 2));
        assert_string_equal(cty_index_get(cty_object_get(o, "tags"), 0)->s.str, "1"); /* sorted by key */

        _cleanup_(cty_value_freep) cty_value *c = cty_value_copy(o);
        assert_true(cty_value_equal(o, c));
        assert_int_equal(cty_map_put(cty_object_get(c, "tags"), "a", cty_string_new("x")), 0);
        assert_false(cty_value_equal(o, c));
        assert_true(cty_value_has_unknown(c));
        /* Null and unknown compare by kind; types must match. */
        _cleanup_(cty_value_freep) cty_value *n1 = cty_null(&cty_string), *n2 = cty_null(&cty_number);
        assert_false(cty_value_equal(n1, n2));
        assert_true(cty_value_equal(NULL, NULL));
        cty_value_free(NULL);
        cty_type_unref(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_canonical_numbers), cmocka_unit_test(test_number_accessors),
                cmocka_unit_test(test_sets),              cmocka_unit_test(test_dynamic_wrapping),
                cmocka_unit_test(test_collections_msgpack), cmocka_unit_test(test_msgpack_bounds),
                cmocka_unit_test(test_json_numbers),      cmocka_unit_test(test_json_strings),
                cmocka_unit_test(test_json_state),        cmocka_unit_test(test_types_json),
                cmocka_unit_test(test_values_api),        cmocka_unit_test(test_double_text_roundtrip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
