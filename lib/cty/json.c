/* SPDX-License-Identifier: Apache-2.0 */
/* cty <-> JSON as Terraform stores attribute values in state (UpgradeResourceState raw_state). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>

#include "cty/cty.h"

#define CTY_JSON_MAX_DEPTH 32

struct jdec {
        char path[512];
        char *error;
};

static int jfail(struct jdec *d, const char *what) {
        if (!d->error && asprintf(&d->error, "%s: %s", d->path[0] ? d->path : "(root)", what) < 0)
                d->error = NULL;
        return -EBADMSG;
}

static int jdecode(struct jdec *d, json_t *j, cty_type *t, unsigned depth, cty_value **ret);

static int jdecode_items(struct jdec *d, json_t *j, cty_type *t, unsigned depth, cty_value **ret) {
        if (!json_is_array(j))
                return jfail(d, "array expected");
        if (t->kind == CTY_TUPLE && json_array_size(j) != t->n)
                return jfail(d, "tuple has the wrong number of elements");
        _cleanup_(cty_value_freep) cty_value *v = cty_collection_new(t);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(j); i++) {
                size_t old = strlen(d->path);
                snprintf(d->path + old, sizeof(d->path) - old, "[%zu]", i);
                cty_value *item;
                int r = jdecode(d, json_array_get(j, i), t->kind == CTY_TUPLE ? t->types[i] : t->elem, depth + 1, &item);
                if (r < 0)
                        return r;
                d->path[old] = 0;
                if ((r = cty_collection_append(v, item)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int jdecode(struct jdec *d, json_t *j, cty_type *t, unsigned depth, cty_value **ret) {
        int r;
        if (depth > CTY_JSON_MAX_DEPTH)
                return jfail(d, "value nested too deeply");
        if (!j || json_is_null(j)) {
                *ret = cty_null(t);
                return *ret ? 0 : -ENOMEM;
        }
        switch (t->kind) {
        case CTY_STRING:
                if (!json_is_string(j))
                        return jfail(d, "string expected");
                *ret = cty_string_newn(json_string_value(j), json_string_length(j));
                return *ret ? 0 : -ENOMEM;
        case CTY_BOOL:
                if (!json_is_boolean(j))
                        return jfail(d, "bool expected");
                *ret = cty_bool_new(json_is_true(j));
                return *ret ? 0 : -ENOMEM;
        case CTY_NUMBER:
                if (json_is_integer(j))
                        *ret = cty_number_int(json_integer_value(j));
                else if (json_is_real(j))
                        *ret = cty_number_float(json_real_value(j));
                else
                        return jfail(d, "number expected");
                return *ret ? 0 : -ENOMEM;
        case CTY_LIST:
        case CTY_SET:
        case CTY_TUPLE:
                return jdecode_items(d, j, t, depth, ret);
        case CTY_MAP: {
                if (!json_is_object(j))
                        return jfail(d, "object expected for map");
                _cleanup_(cty_value_freep) cty_value *v = cty_collection_new(t);
                if (!v)
                        return -ENOMEM;
                const char *key;
                json_t *val;
                json_object_foreach(j, key, val) {
                        size_t old = strlen(d->path);
                        snprintf(d->path + old, sizeof(d->path) - old, "[\"%s\"]", key);
                        cty_value *item;
                        if ((r = jdecode(d, val, t->elem, depth + 1, &item)) < 0)
                                return r;
                        d->path[old] = 0;
                        if ((r = cty_map_put(v, key, item)) < 0)
                                return r;
                }
                *ret = TAKE_PTR(v);
                return 0;
        }
        case CTY_OBJECT: {
                if (!json_is_object(j))
                        return jfail(d, "object expected");
                _cleanup_(cty_value_freep) cty_value *v = cty_object_new(t);
                if (!v)
                        return -ENOMEM;
                const char *key;
                json_t *val;
                json_object_foreach(j, key, val) {
                        ssize_t idx = cty_type_attr_index(t, key);
                        size_t old = strlen(d->path);
                        snprintf(d->path + old, sizeof(d->path) - old, ".%s", key);
                        if (idx < 0)
                                return jfail(d, "unsupported attribute");
                        cty_value *item;
                        if ((r = jdecode(d, val, t->types[idx], depth + 1, &item)) < 0)
                                return r;
                        d->path[old] = 0;
                        cty_value_free(v->c.items[idx]);
                        v->c.items[idx] = item;
                }
                *ret = TAKE_PTR(v);
                return 0;
        }
        case CTY_DYNAMIC: {
                /* Terraform's JSON for dynamic values: {"value": V, "type": T}. */
                json_t *jt = json_object_get(j, "type"), *jv = json_object_get(j, "value");
                if (!jt || !json_is_object(j) || json_object_size(j) != 2 || !jv)
                        return jfail(d, "dynamic value must be {\"value\":…,\"type\":…}");
                _cleanup_free_ char *ts = json_dumps(jt, JSON_COMPACT | JSON_ENCODE_ANY);
                _cleanup_(cty_type_unrefp) cty_type *ct = NULL;
                if (!ts || cty_type_from_json(ts, strlen(ts), &ct) < 0 || ct->kind == CTY_DYNAMIC)
                        return jfail(d, "dynamic value has an invalid type");
                return jdecode(d, jv, ct, depth + 1, ret);
        }
        }
        return jfail(d, "unsupported type");
}

int cty_json_decode(const uint8_t *buf, size_t len, cty_type *type, cty_value **ret, char **ret_error) {
        json_error_t err;
        struct jdec d = { .path = "" };
        json_t *j = json_loadb((const char *) buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
        if (!j) {
                if (ret_error && asprintf(ret_error, "invalid JSON at line %d column %d: %s", err.line, err.column,
                                          err.text) < 0)
                        *ret_error = NULL;
                return -EBADMSG;
        }
        int r = jdecode(&d, j, type, 0, ret);
        json_decref(j);
        if (r < 0 && ret_error)
                *ret_error = TAKE_PTR(d.error);
        free(d.error);
        return r;
}

static json_t *jencode(const cty_value *v) {
        if (!v || v->null || v->unknown) /* JSON cannot express unknown (§6.1) */
                return json_null();
        const cty_type *t = v->type;
        switch (t->kind) {
        case CTY_STRING:
                return json_stringn(v->s.str, v->s.len);
        case CTY_BOOL:
                return json_boolean(v->b);
        case CTY_NUMBER:
                switch (v->num.form) {
                case CTY_NUM_INT:
                        return json_integer(v->num.i);
                case CTY_NUM_FLOAT:
                        return json_real(v->num.f);
                case CTY_NUM_STRING:
                        return json_real(v->num.f);
                }
                return NULL;
        case CTY_LIST:
        case CTY_SET:
        case CTY_TUPLE: {
                json_t *a = json_array();
                for (size_t i = 0; i < v->c.n; i++)
                        json_array_append_new(a, jencode(v->c.items[i]));
                return a;
        }
        case CTY_MAP: {
                json_t *o = json_object();
                for (size_t i = 0; i < v->c.n; i++)
                        json_object_set_new(o, v->c.keys[i], jencode(v->c.items[i]));
                return o;
        }
        case CTY_OBJECT: {
                json_t *o = json_object();
                for (size_t i = 0; i < t->n; i++)
                        json_object_set_new(o, t->names[i], jencode(v->c.items[i]));
                return o;
        }
        case CTY_DYNAMIC:
                return json_null();
        }
        return NULL;
}

char *cty_json_encode(const cty_value *v) {
        json_t *j = jencode(v);
        if (!j)
                return NULL;
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_decref(j);
        return s;
}
