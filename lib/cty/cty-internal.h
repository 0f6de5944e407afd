/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the cty codecs; not part of the public API. */
#pragma once

#include "cty/cty.h"

/* Nesting bound for decoders. msgpack-c's unpacker has a fixed stack of 32 containers, so msgpack
 * cannot go deeper anyway; JSON uses the same bound so both codecs accept the same values. */
#define CTY_MAX_DEPTH 32
/* Longest decimal text a number may have, in msgpack strings, JSON and the 'f' form we write. */
#define CTY_NUMBER_TEXT_MAX 1100
/* Largest msgpack or JSON text we decode or write; Terraform's gRPC messages are far smaller. */
#define CTY_WIRE_MAX (64u * 1024 * 1024)
/* Error paths are cut at this length. */
#define CTY_PATH_MAX 512

/* A decimal number as sign, significant digits (no leading or trailing zeros) and exponent:
 * value = (-1)^neg * digits * 10^exp. Zero has no digits. */
typedef struct cty_decimal {
        bool neg;
        size_t n;
        char digits[CTY_NUMBER_TEXT_MAX + 1];
        long exp;
} cty_decimal;

/* Parses decimal text the way go-cty's ParseNumberVal accepts it (sign, digits, optional
 * fraction, optional exponent); no hex, inf or nan. -EINVAL if malformed, -ERANGE if too long. */
int cty_decimal_parse(const char *s, size_t len, cty_decimal *ret);
/* The canonical number value for d: INT if integral and in int64, FLOAT if exactly a double,
 * else STRING with the text in Go's big.Float Text('f', -1) form. */
int cty_decimal_to_value(const cty_decimal *d, cty_value **ret);
/* Writes the number as go-cty's JSON marshaller does (Text('f', -1)); -ERANGE for infinities. */
int cty_number_text(const cty_value *v, char *buf, size_t size);
/* Numeric order of two known numbers: <0, 0, >0. */
int cty_number_cmp(const cty_value *a, const cty_value *b);

/* go-cty's set element order (cty setRules.Less): known non-null values first, strings bytewise,
 * numbers numerically, false before true; for other types we order by the canonical msgpack
 * encoding, which is stable (go-cty uses hash order there, which Terraform does not rely on). */
int cty_set_cmp(const cty_value *a, const cty_value *b);
/* Sorts a set's items and drops duplicates of wholly known values (go-cty SetVal semantics). */
int cty_set_normalize(cty_value *set);

/* Error path building shared by both decoders. */
typedef struct cty_path {
        char buf[CTY_PATH_MAX];
} cty_path;
size_t cty_path_push_attr(cty_path *p, const char *name);
size_t cty_path_push_key(cty_path *p, const char *key, size_t len);
size_t cty_path_push_index(cty_path *p, size_t i);
static inline void cty_path_pop(cty_path *p, size_t old) {
        p->buf[old] = 0;
}

/* Decoder helpers for maps: append without the sorted insert, then sort once and find duplicate
 * keys (-EEXIST, *ret_dup names the key). */
int cty_map_append_unsorted(cty_value *map, char *key, cty_value *item);
int cty_map_finish(cty_value *map, const char **ret_dup);

/* Copies outside text for an error message: printable ASCII only, at most 64 characters. */
#define CTY_SAFE_TEXT_SIZE 66
void cty_safe_text(const char *text, size_t len, char out[static CTY_SAFE_TEXT_SIZE]);
/* Appends to a list, set or tuple without ordering or checks (decoders; sets are normalized
 * afterwards). Does not take ownership on error. */
int cty_items_push(cty_value *coll, cty_value *item);

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, surrogates or values above
 * U+10FFFF), or 0. */
size_t cty_utf8_len(const unsigned char *p, size_t avail);
bool cty_utf8_valid(const char *s, size_t n);
