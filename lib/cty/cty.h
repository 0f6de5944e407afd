/* SPDX-License-Identifier: Apache-2.0 */
/* Terraform's cty values and their wire encodings: msgpack (DynamicValue.msgpack, as go-cty's
 * msgpack package writes it) and JSON (state, DynamicValue.json), plus the JSON encoding of
 * types used in schemas. Facts: terraform-plugin-protocol.md §6.
 *
 * Types are immutable and reference counted. Values own their children; every string is wiped
 * when its value is freed, because master secrets and keys travel through these values. */
#pragma once

#include "basic/macro.h"

typedef enum cty_kind {
        CTY_STRING,
        CTY_NUMBER,
        CTY_BOOL,
        CTY_LIST,
        CTY_SET,
        CTY_MAP,
        CTY_OBJECT,
        CTY_TUPLE,
        CTY_DYNAMIC,
} cty_kind;

typedef struct cty_type cty_type;
struct cty_type {
        cty_kind kind;
        unsigned refs;
        cty_type *elem; /* list, set, map */
        size_t n;       /* object attributes (sorted by name), tuple elements */
        char **names;   /* object only */
        cty_type **types;
};

extern cty_type cty_string, cty_number, cty_bool, cty_dynamic; /* static, never freed */

cty_type *cty_type_ref(cty_type *t);
void cty_type_unref(cty_type *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(cty_type *, cty_type_unref);
/* Collection types; take a reference to elem. */
cty_type *cty_type_list(cty_type *elem);
cty_type *cty_type_set(cty_type *elem);
cty_type *cty_type_map(cty_type *elem);
/* Object type from parallel arrays (any order; stored sorted); takes references to the types. */
cty_type *cty_type_object(size_t n, const char *const *names, cty_type *const *types);
cty_type *cty_type_tuple(size_t n, cty_type *const *types);
/* Index of an object attribute, or -1. */
ssize_t cty_type_attr_index(const cty_type *t, const char *name);
bool cty_type_equal(const cty_type *a, const cty_type *b);
/* JSON type encoding: "string", ["list","string"], ["object",{...}], ... */
char *cty_type_to_json(const cty_type *t);
int cty_type_from_json(const char *json, size_t len, cty_type **ret);

typedef enum cty_number_form {
        CTY_NUM_INT,    /* fits int64 */
        CTY_NUM_FLOAT,  /* exactly a double */
        CTY_NUM_STRING, /* decimal text (big or inexact numbers, as go-cty writes them) */
} cty_number_form;

typedef struct cty_value cty_value;
struct cty_value {
        cty_type *type; /* the value's own type (for dynamic slots: the concrete type) */
        bool null;
        bool unknown;
        uint8_t *refinements; /* raw ext-12 payload of a refined unknown, or NULL */
        size_t refinements_len;
        union {
                struct {
                        char *str;
                        size_t len;
                } s;
                bool b;
                struct {
                        cty_number_form form;
                        int64_t i;
                        double f;
                        char *text;
                } num;
                struct {
                        size_t n;
                        cty_value **items; /* object: in type order; set: sorted, no duplicates */
                        char **keys;       /* map only, sorted bytewise */
                        size_t cap;        /* allocated items (internal) */
                } c;
        };
};

void cty_value_free(cty_value *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(cty_value *, cty_value_free);
cty_value *cty_value_copy(const cty_value *v);
/* Deep equality: types equal, null == null, unknown == unknown (refinements ignored, as Terraform
 * does when comparing plans), numbers by value, sets regardless of order, maps by key. */
bool cty_value_equal(const cty_value *a, const cty_value *b);
/* True if v or anything inside it is unknown. */
bool cty_value_has_unknown(const cty_value *v);

cty_value *cty_null(cty_type *t);
cty_value *cty_unknown(cty_type *t);
cty_value *cty_string_new(const char *s);
cty_value *cty_string_newn(const char *s, size_t len);
cty_value *cty_bool_new(bool b);
cty_value *cty_number_int(int64_t i);
/* Integral values in int64 become CTY_NUM_INT; NULL for NaN (cty has no NaN). */
cty_value *cty_number_float(double f);
/* A number from decimal text (sign, digits, fraction, exponent; no hex/inf/nan), kept exactly:
 * -EINVAL if not a decimal number, -ERANGE if its plain decimal form exceeds 1100 characters. */
int cty_number_from_string(const char *text, size_t len, cty_value **ret);
/* A known object with every attribute null. */
cty_value *cty_object_new(cty_type *t);
/* Replaces attribute `name` (takes ownership of value; frees it on error). -EINVAL if there is no
 * such attribute or value's type is not the attribute's (dynamic attributes take anything; a null
 * or unknown of type dynamic fits everywhere). */
int cty_object_set(cty_value *obj, const char *name, cty_value *value);
/* Attribute of a known object, or NULL if obj is null/unknown or has no such attribute. */
cty_value *cty_object_get(const cty_value *obj, const char *name);
/* A known, empty list/set/map/tuple of type t; then append (list, set, tuple) or put (map).
 * Both take ownership of item (freed on error) and return -EINVAL if item does not fit the
 * element type (or a tuple is full). Sets keep go-cty's order and drop duplicates of wholly known
 * values (the duplicate is freed, return 0); maps keep keys sorted and replace on equal keys. */
cty_value *cty_collection_new(cty_type *t);
int cty_collection_append(cty_value *coll, cty_value *item);
int cty_map_put(cty_value *map, const char *key, cty_value *item);
/* Element access on known collections (NULL if null, unknown, wrong kind or absent). For maps,
 * index i is the i-th key in sorted order (keys in coll->c.keys). */
cty_value *cty_map_get(const cty_value *map, const char *key);
cty_value *cty_index_get(const cty_value *coll, size_t index);
/* Element/attribute count of a known list, set, map, tuple or object; -EINVAL otherwise. */
int cty_value_length(const cty_value *v, size_t *ret);
/* Follows a path like `.image.version`, `.nodes["worker"].count`, `.list[0]` from v. NULL if a
 * step is absent or passes through a null or unknown value; the last value may itself be null or
 * unknown. */
cty_value *cty_value_at(const cty_value *v, const char *path);

/* Accessors: -EINVAL if not a known value of that kind, -ERANGE if a number does not fit
 * exactly (get_double: integers beyond 2^53, decimal-text numbers). */
int cty_value_get_string(const cty_value *v, const char **ret, size_t *ret_len);
int cty_value_get_bool(const cty_value *v, bool *ret);
int cty_value_get_int64(const cty_value *v, int64_t *ret);
int cty_value_get_double(const cty_value *v, double *ret);
/* Any number as decimal text, as go-cty writes it in JSON (Text('f', -1)); -ERANGE for ±Inf. */
int cty_value_get_number_text(const cty_value *v, char **ret);
/* True if v is a known, non-null string (the common "is set" check for attributes). */
bool cty_value_is_known_string(const cty_value *v);

/* msgpack as go-cty writes and reads it. Decoding validates against `type` and is bounded
 * (depth, sizes). On error returns -EBADMSG and a message naming the path in *ret_error. */
int cty_msgpack_decode(const uint8_t *buf, size_t len, cty_type *type, cty_value **ret, char **ret_error);
/* `type` is the schema type of the slot (dynamic slots are wrapped as [type-json, value]). */
int cty_msgpack_encode(const cty_value *v, const cty_type *type, uint8_t **ret, size_t *ret_len);

/* JSON as go-cty's ctyjson reads it (Terraform state attributes, UpgradeResourceState
 * raw_state.json): missing object attributes become null; an attribute the type does not have is
 * an error naming it; numbers keep every digit; strings accept numbers and bools, numbers and
 * bools accept their string forms (go-cty's conversions); dynamic slots are
 * {"value":…,"type":…}. Bounded like the msgpack decoder; -EBADMSG with a path in *ret_error. */
int cty_json_decode(const uint8_t *buf, size_t len, cty_type *type, cty_value **ret, char **ret_error);
/* JSON as go-cty's ctyjson.Marshal writes it for slot type `type` (dynamic slots wrapped).
 * -EINVAL (with *ret_error) for unknown values (JSON cannot express them) or ±Inf. */
int cty_json_encode_as(const cty_value *v, const cty_type *type, char **ret, char **ret_error);
/* Shorthand: cty_json_encode_as(v, v->type); NULL on error. */
char *cty_json_encode(const cty_value *v);
