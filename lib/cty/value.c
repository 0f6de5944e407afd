/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>

#include "basic/secret.h"
#include "cty/cty.h"

static cty_value *value_alloc(cty_type *t) {
        cty_value *v = calloc(1, sizeof(*v));
        if (!v)
                return NULL;
        v->type = cty_type_ref(t);
        return v;
}

static bool is_collection(cty_kind k) {
        return k == CTY_LIST || k == CTY_SET || k == CTY_MAP || k == CTY_OBJECT || k == CTY_TUPLE;
}

void cty_value_free(cty_value *v) {
        if (!v)
                return;
        if (!v->null && !v->unknown) {
                switch (v->type->kind) {
                case CTY_STRING:
                        /* Strings may carry secrets (master secret, salts, keys): wipe them. */
                        erase_memory(v->s.str, v->s.len);
                        free(v->s.str);
                        break;
                case CTY_NUMBER:
                        free(v->num.text);
                        break;
                default:
                        if (is_collection(v->type->kind)) {
                                for (size_t i = 0; i < v->c.n; i++) {
                                        cty_value_free(v->c.items[i]);
                                        if (v->c.keys)
                                                free(v->c.keys[i]);
                                }
                                free(v->c.items);
                                free(v->c.keys);
                        }
                }
        }
        free(v->refinements);
        cty_type_unref(v->type);
        free(v);
}

cty_value *cty_null(cty_type *t) {
        cty_value *v = value_alloc(t);
        if (v)
                v->null = true;
        return v;
}

cty_value *cty_unknown(cty_type *t) {
        cty_value *v = value_alloc(t);
        if (v)
                v->unknown = true;
        return v;
}

cty_value *cty_string_newn(const char *s, size_t len) {
        cty_value *v = value_alloc(&cty_string);
        if (!v)
                return NULL;
        v->s.str = malloc(len + 1);
        if (!v->s.str)
                return mfree(v);
        memcpy(v->s.str, s, len);
        v->s.str[len] = 0;
        v->s.len = len;
        return v;
}

cty_value *cty_string_new(const char *s) {
        return cty_string_newn(s, strlen(s));
}

cty_value *cty_bool_new(bool b) {
        cty_value *v = value_alloc(&cty_bool);
        if (v)
                v->b = b;
        return v;
}

cty_value *cty_number_int(int64_t i) {
        cty_value *v = value_alloc(&cty_number);
        if (v) {
                v->num.form = CTY_NUM_INT;
                v->num.i = i;
        }
        return v;
}

cty_value *cty_number_float(double f) {
        cty_value *v = value_alloc(&cty_number);
        if (!v)
                return NULL;
        /* Canonical form: integral values that fit int64 are ints (go-cty compact ints). */
        if (isfinite(f) && f == trunc(f) && f >= -9223372036854775808.0 && f < 9223372036854775808.0) {
                v->num.form = CTY_NUM_INT;
                v->num.i = (int64_t) f;
        } else {
                v->num.form = CTY_NUM_FLOAT;
                v->num.f = f;
        }
        return v;
}

cty_value *cty_collection_new(cty_type *t) {
        if (!t || !is_collection(t->kind) || t->kind == CTY_OBJECT)
                return NULL;
        return value_alloc(t);
}

cty_value *cty_object_new(cty_type *t) {
        if (!t || t->kind != CTY_OBJECT)
                return NULL;
        cty_value *v = value_alloc(t);
        if (!v)
                return NULL;
        v->c.items = calloc(t->n ? t->n : 1, sizeof(cty_value *));
        if (!v->c.items) {
                cty_value_free(v);
                return NULL;
        }
        for (size_t i = 0; i < t->n; i++) {
                v->c.items[i] = cty_null(t->types[i]);
                v->c.n = i + 1;
                if (!v->c.items[i]) {
                        cty_value_free(v);
                        return NULL;
                }
        }
        v->c.n = t->n;
        return v;
}

int cty_object_set(cty_value *obj, const char *name, cty_value *value) {
        ssize_t i = obj && !obj->null && !obj->unknown ? cty_type_attr_index(obj->type, name) : -1;
        if (i < 0 || !value) {
                cty_value_free(value);
                return -EINVAL;
        }
        cty_value_free(obj->c.items[i]);
        obj->c.items[i] = value;
        return 0;
}

cty_value *cty_object_get(const cty_value *obj, const char *name) {
        if (!obj || obj->null || obj->unknown)
                return NULL;
        ssize_t i = cty_type_attr_index(obj->type, name);
        return i < 0 ? NULL : obj->c.items[i];
}

static int grow(cty_value *c) {
        cty_value **items = realloc(c->c.items, (c->c.n + 1) * sizeof(*items));
        if (!items)
                return -ENOMEM;
        c->c.items = items;
        if (c->type->kind == CTY_MAP) {
                char **keys = realloc(c->c.keys, (c->c.n + 1) * sizeof(*keys));
                if (!keys)
                        return -ENOMEM;
                c->c.keys = keys;
        }
        return 0;
}

int cty_collection_append(cty_value *c, cty_value *item) {
        if (!c || !item || c->null || c->unknown ||
            !(c->type->kind == CTY_LIST || c->type->kind == CTY_SET || c->type->kind == CTY_TUPLE)) {
                cty_value_free(item);
                return -EINVAL;
        }
        if (grow(c) < 0) {
                cty_value_free(item);
                return -ENOMEM;
        }
        c->c.items[c->c.n++] = item;
        return 0;
}

int cty_map_put(cty_value *c, const char *key, cty_value *item) {
        if (!c || !item || c->null || c->unknown || c->type->kind != CTY_MAP) {
                cty_value_free(item);
                return -EINVAL;
        }
        for (size_t i = 0; i < c->c.n; i++)
                if (streq(c->c.keys[i], key)) {
                        cty_value_free(c->c.items[i]);
                        c->c.items[i] = item;
                        return 0;
                }
        char *k = strdup(key);
        if (!k || grow(c) < 0) {
                free(k);
                cty_value_free(item);
                return -ENOMEM;
        }
        c->c.keys[c->c.n] = k;
        c->c.items[c->c.n++] = item;
        return 0;
}

cty_value *cty_value_copy(const cty_value *v) {
        if (!v)
                return NULL;
        cty_value *n = value_alloc(v->type);
        if (!n)
                return NULL;
        n->null = v->null;
        n->unknown = v->unknown;
        if (v->refinements) {
                n->refinements = malloc(v->refinements_len);
                if (!n->refinements) {
                        cty_value_free(n);
                        return NULL;
                }
                memcpy(n->refinements, v->refinements, v->refinements_len);
                n->refinements_len = v->refinements_len;
        }
        if (v->null || v->unknown)
                return n;
        switch (v->type->kind) {
        case CTY_STRING:
                n->s.str = malloc(v->s.len + 1);
                if (!n->s.str) {
                        cty_value_free(n);
                        return NULL;
                }
                memcpy(n->s.str, v->s.str, v->s.len + 1);
                n->s.len = v->s.len;
                break;
        case CTY_BOOL:
                n->b = v->b;
                break;
        case CTY_NUMBER:
                n->num = v->num;
                if (v->num.text && !(n->num.text = strdup(v->num.text))) {
                        cty_value_free(n);
                        return NULL;
                }
                break;
        default:
                n->c.items = calloc(v->c.n ? v->c.n : 1, sizeof(cty_value *));
                if (!n->c.items || (v->c.keys && !(n->c.keys = calloc(v->c.n ? v->c.n : 1, sizeof(char *))))) {
                        cty_value_free(n);
                        return NULL;
                }
                for (size_t i = 0; i < v->c.n; i++) {
                        n->c.items[i] = cty_value_copy(v->c.items[i]);
                        if (v->c.keys)
                                n->c.keys[i] = strdup(v->c.keys[i]);
                        n->c.n = i + 1;
                        if (!n->c.items[i] || (v->c.keys && !n->c.keys[i])) {
                                cty_value_free(n);
                                return NULL;
                        }
                }
        }
        return n;
}

static bool number_equal(const cty_value *a, const cty_value *b) {
        if (a->num.form == CTY_NUM_STRING || b->num.form == CTY_NUM_STRING)
                return a->num.form == b->num.form && streq(a->num.text, b->num.text);
        double fa = a->num.form == CTY_NUM_INT ? (double) a->num.i : a->num.f;
        double fb = b->num.form == CTY_NUM_INT ? (double) b->num.i : b->num.f;
        if (a->num.form == CTY_NUM_INT && b->num.form == CTY_NUM_INT)
                return a->num.i == b->num.i;
        return fa == fb;
}

bool cty_value_equal(const cty_value *a, const cty_value *b) {
        if (!a || !b)
                return a == b;
        if (!cty_type_equal(a->type, b->type))
                return false;
        if (a->null || b->null)
                return a->null == b->null;
        if (a->unknown || b->unknown)
                return a->unknown == b->unknown;
        switch (a->type->kind) {
        case CTY_STRING:
                return a->s.len == b->s.len && memcmp(a->s.str, b->s.str, a->s.len) == 0;
        case CTY_BOOL:
                return a->b == b->b;
        case CTY_NUMBER:
                return number_equal(a, b);
        case CTY_DYNAMIC:
                return true;
        default:
                if (a->c.n != b->c.n)
                        return false;
                if (a->type->kind == CTY_MAP) {
                        /* Maps are unordered: match by key. */
                        for (size_t i = 0; i < a->c.n; i++) {
                                size_t j = 0;
                                while (j < b->c.n && !streq(a->c.keys[i], b->c.keys[j]))
                                        j++;
                                if (j == b->c.n || !cty_value_equal(a->c.items[i], b->c.items[j]))
                                        return false;
                        }
                        return true;
                }
                for (size_t i = 0; i < a->c.n; i++) {
                        if (!cty_value_equal(a->c.items[i], b->c.items[i]))
                                return false;
                }
                return true;
        }
}

bool cty_value_has_unknown(const cty_value *v) {
        if (!v || v->null)
                return false;
        if (v->unknown)
                return true;
        if (is_collection(v->type->kind))
                for (size_t i = 0; i < v->c.n; i++)
                        if (cty_value_has_unknown(v->c.items[i]))
                                return true;
        return false;
}

int cty_value_get_string(const cty_value *v, const char **ret, size_t *ret_len) {
        if (!v || v->null || v->unknown || v->type->kind != CTY_STRING)
                return -EINVAL;
        *ret = v->s.str;
        if (ret_len)
                *ret_len = v->s.len;
        return 0;
}

bool cty_value_is_known_string(const cty_value *v) {
        return v && !v->null && !v->unknown && v->type->kind == CTY_STRING;
}

int cty_value_get_bool(const cty_value *v, bool *ret) {
        if (!v || v->null || v->unknown || v->type->kind != CTY_BOOL)
                return -EINVAL;
        *ret = v->b;
        return 0;
}

int cty_value_get_int64(const cty_value *v, int64_t *ret) {
        if (!v || v->null || v->unknown || v->type->kind != CTY_NUMBER)
                return -EINVAL;
        switch (v->num.form) {
        case CTY_NUM_INT:
                *ret = v->num.i;
                return 0;
        case CTY_NUM_FLOAT:
                return -ERANGE; /* not integral (canonical form would be INT otherwise) */
        case CTY_NUM_STRING: {
                char *end;
                errno = 0;
                long long x = strtoll(v->num.text, &end, 10);
                if (errno != 0 || *end != 0)
                        return -ERANGE;
                *ret = x;
                return 0;
        }
        }
        return -EINVAL;
}
