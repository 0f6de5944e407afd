/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>

#include "cty/cty.h"

/* Static primitive types: refs never reach zero (UINT_MAX/2 start, never freed). */
#define STATIC_REFS (1u << 30)
cty_type cty_string = { .kind = CTY_STRING, .refs = STATIC_REFS };
cty_type cty_number = { .kind = CTY_NUMBER, .refs = STATIC_REFS };
cty_type cty_bool = { .kind = CTY_BOOL, .refs = STATIC_REFS };
cty_type cty_dynamic = { .kind = CTY_DYNAMIC, .refs = STATIC_REFS };

static bool is_static(const cty_type *t) {
        return t == &cty_string || t == &cty_number || t == &cty_bool || t == &cty_dynamic;
}

cty_type *cty_type_ref(cty_type *t) {
        if (t && !is_static(t))
                __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
        return t;
}

void cty_type_unref(cty_type *t) {
        if (!t || is_static(t))
                return;
        if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
                return;
        cty_type_unref(t->elem);
        for (size_t i = 0; i < t->n; i++) {
                if (t->names)
                        free(t->names[i]);
                cty_type_unref(t->types[i]);
        }
        free(t->names);
        free(t->types);
        free(t);
}

static cty_type *collection(cty_kind kind, cty_type *elem) {
        if (!elem)
                return NULL;
        cty_type *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->kind = kind;
        t->refs = 1;
        t->elem = cty_type_ref(elem);
        return t;
}

cty_type *cty_type_list(cty_type *elem) {
        return collection(CTY_LIST, elem);
}
cty_type *cty_type_set(cty_type *elem) {
        return collection(CTY_SET, elem);
}
cty_type *cty_type_map(cty_type *elem) {
        return collection(CTY_MAP, elem);
}

cty_type *cty_type_object(size_t n, const char *const *names, cty_type *const *types) {
        cty_type *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->kind = CTY_OBJECT;
        t->refs = 1;
        t->n = n;
        t->names = calloc(n ? n : 1, sizeof(char *));
        t->types = calloc(n ? n : 1, sizeof(cty_type *));
        if (!t->names || !t->types) {
                t->n = 0;
                cty_type_unref(t);
                return NULL;
        }
        /* Insertion sort by name: go-cty and Terraform order object attributes bytewise. */
        for (size_t i = 0; i < n; i++) {
                size_t j = i;
                while (j > 0 && strcmp(t->names[j - 1], names[i]) > 0) {
                        t->names[j] = t->names[j - 1];
                        t->types[j] = t->types[j - 1];
                        j--;
                }
                t->names[j] = strdup(names[i]);
                t->types[j] = cty_type_ref(types[i]);
                if (!t->names[j] || !t->types[j] || (j > 0 && streq(t->names[j - 1], names[i]))) {
                        t->n = i + 1;
                        cty_type_unref(t);
                        return NULL;
                }
        }
        return t;
}

cty_type *cty_type_tuple(size_t n, cty_type *const *types) {
        cty_type *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->kind = CTY_TUPLE;
        t->refs = 1;
        t->types = calloc(n ? n : 1, sizeof(cty_type *));
        if (!t->types) {
                free(t);
                return NULL;
        }
        t->n = n;
        for (size_t i = 0; i < n; i++)
                t->types[i] = cty_type_ref(types[i]);
        return t;
}

ssize_t cty_type_attr_index(const cty_type *t, const char *name) {
        if (!t || t->kind != CTY_OBJECT)
                return -1;
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(t->names[mid], name);
                if (c == 0)
                        return (ssize_t) mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

bool cty_type_equal(const cty_type *a, const cty_type *b) {
        if (a == b)
                return true;
        if (!a || !b || a->kind != b->kind)
                return false;
        switch (a->kind) {
        case CTY_LIST:
        case CTY_SET:
        case CTY_MAP:
                return cty_type_equal(a->elem, b->elem);
        case CTY_OBJECT:
        case CTY_TUPLE:
                if (a->n != b->n)
                        return false;
                for (size_t i = 0; i < a->n; i++) {
                        if (a->kind == CTY_OBJECT && !streq(a->names[i], b->names[i]))
                                return false;
                        if (!cty_type_equal(a->types[i], b->types[i]))
                                return false;
                }
                return true;
        default:
                return true;
        }
}

static json_t *type_to_json(const cty_type *t) {
        switch (t->kind) {
        case CTY_STRING:
                return json_string("string");
        case CTY_NUMBER:
                return json_string("number");
        case CTY_BOOL:
                return json_string("bool");
        case CTY_DYNAMIC:
                return json_string("dynamic");
        case CTY_LIST:
        case CTY_SET:
        case CTY_MAP:
                return json_pack("[so]", t->kind == CTY_LIST ? "list" : t->kind == CTY_SET ? "set" : "map",
                                 type_to_json(t->elem));
        case CTY_OBJECT: {
                json_t *attrs = json_object();
                for (size_t i = 0; i < t->n; i++)
                        json_object_set_new(attrs, t->names[i], type_to_json(t->types[i]));
                return json_pack("[so]", "object", attrs);
        }
        case CTY_TUPLE: {
                json_t *elems = json_array();
                for (size_t i = 0; i < t->n; i++)
                        json_array_append_new(elems, type_to_json(t->types[i]));
                return json_pack("[so]", "tuple", elems);
        }
        }
        return NULL;
}

char *cty_type_to_json(const cty_type *t) {
        json_t *j = type_to_json(t);
        if (!j)
                return NULL;
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_decref(j);
        return s;
}

#define CTY_TYPE_MAX_DEPTH 32

static int type_from_json(json_t *j, unsigned depth, cty_type **ret) {
        if (depth > CTY_TYPE_MAX_DEPTH)
                return -EBADMSG;
        if (json_is_string(j)) {
                const char *s = json_string_value(j);
                cty_type *t = streq(s, "string")    ? &cty_string
                              : streq(s, "number")  ? &cty_number
                              : streq(s, "bool")    ? &cty_bool
                              : streq(s, "dynamic") ? &cty_dynamic
                                                    : NULL;
                if (!t)
                        return -EBADMSG;
                *ret = t;
                return 0;
        }
        if (!json_is_array(j) || json_array_size(j) < 2)
                return -EBADMSG;
        const char *kind = json_string_value(json_array_get(j, 0));
        json_t *arg = json_array_get(j, 1);
        if (!kind)
                return -EBADMSG;
        if (streq(kind, "list") || streq(kind, "set") || streq(kind, "map")) {
                if (json_array_size(j) != 2)
                        return -EBADMSG;
                _cleanup_(cty_type_unrefp) cty_type *elem = NULL;
                int r = type_from_json(arg, depth + 1, &elem);
                if (r < 0)
                        return r;
                cty_type *t = collection(streq(kind, "list") ? CTY_LIST : streq(kind, "set") ? CTY_SET : CTY_MAP, elem);
                if (!t)
                        return -ENOMEM;
                *ret = t;
                return 0;
        }
        if (streq(kind, "object")) {
                /* A third element lists optional attributes: Terraform strips it for wire types. */
                if (!json_is_object(arg) || json_array_size(j) > 3)
                        return -EBADMSG;
                if (json_array_size(j) == 3) {
                        json_t *opt = json_array_get(j, 2), *o;
                        size_t k;
                        if (!json_is_array(opt))
                                return -EBADMSG;
                        json_array_foreach(opt, k, o)
                                if (!json_is_string(o) || !json_object_get(arg, json_string_value(o)))
                                        return -EBADMSG;
                }
                size_t n = json_object_size(arg), i = 0;
                _cleanup_free_ const char **names = calloc(n + 1, sizeof(char *));
                _cleanup_free_ cty_type **types = calloc(n + 1, sizeof(cty_type *));
                if (!names || !types)
                        return -ENOMEM;
                const char *key;
                json_t *val;
                int r = 0;
                json_object_foreach(arg, key, val) {
                        names[i] = key;
                        r = type_from_json(val, depth + 1, &types[i]);
                        if (r < 0)
                                break;
                        i++;
                }
                cty_type *t = r < 0 ? NULL : cty_type_object(n, names, types);
                for (size_t k = 0; k < i; k++)
                        cty_type_unref(types[k]);
                if (r < 0)
                        return r;
                if (!t)
                        return -ENOMEM;
                *ret = t;
                return 0;
        }
        if (streq(kind, "tuple")) {
                if (!json_is_array(arg) || json_array_size(j) != 2)
                        return -EBADMSG;
                size_t n = json_array_size(arg), i = 0;
                _cleanup_free_ cty_type **types = calloc(n + 1, sizeof(cty_type *));
                if (!types)
                        return -ENOMEM;
                int r = 0;
                for (; i < n; i++)
                        if ((r = type_from_json(json_array_get(arg, i), depth + 1, &types[i])) < 0)
                                break;
                cty_type *t = r < 0 ? NULL : cty_type_tuple(n, types);
                for (size_t k = 0; k < i; k++)
                        cty_type_unref(types[k]);
                if (r < 0)
                        return r;
                if (!t)
                        return -ENOMEM;
                *ret = t;
                return 0;
        }
        return -EBADMSG;
}

int cty_type_from_json(const char *s, size_t len, cty_type **ret) {
        json_error_t err;
        json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return -EBADMSG;
        int r = type_from_json(j, 0, ret);
        json_decref(j);
        return r;
}
