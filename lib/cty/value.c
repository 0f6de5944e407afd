/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>

#include "basic/secret.h"
#include "cty-internal.h"

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
                        if (v->num.text)
                                erase_memory(v->num.text, strlen(v->num.text));
                        free(v->num.text);
                        break;
                default:
                        if (is_collection(v->type->kind)) {
                                for (size_t i = 0; i < v->c.n; i++) {
                                        cty_value_free(v->c.items[i]);
                                        if (v->c.keys && v->c.keys[i]) {
                                                erase_memory(v->c.keys[i], strlen(v->c.keys[i]));
                                                free(v->c.keys[i]);
                                        }
                                }
                                free(v->c.items);
                                free(v->c.keys);
                        }
                }
        }
        if (v->refinements) /* a refined unknown's string prefix may be part of a secret */
                erase_memory(v->refinements, v->refinements_len);
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
        if (len > 0)
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
        if (isnan(f)) /* cty has no NaN (go-cty panics on it) */
                return NULL;
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

/* A value fits a slot of type `slot` if the types are equal, the slot is dynamic, or it is a null
 * or unknown value whose type was never known (dynamic). */
static bool conforms(const cty_type *slot, const cty_value *v) {
        if (slot->kind == CTY_DYNAMIC || cty_type_equal(slot, v->type))
                return true;
        return (v->null || v->unknown) && v->type->kind == CTY_DYNAMIC;
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
        if (i < 0 || !value || !conforms(obj->type->types[i], value)) {
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

/* Room for one more item; capacity doubles so decoding n items costs O(n). */
static int grow(cty_value *c) {
        if (c->c.n < c->c.cap)
                return 0;
        size_t cap = c->c.n < 4 ? 8 : c->c.n * 2;
        if (cap > SIZE_MAX / 2 / sizeof(void *))
                return -ENOMEM;
        cty_value **items = realloc(c->c.items, cap * sizeof(*items));
        if (!items)
                return -ENOMEM;
        c->c.items = items;
        if (c->type->kind == CTY_MAP) {
                char **keys = realloc(c->c.keys, cap * sizeof(*keys));
                if (!keys)
                        return -ENOMEM;
                c->c.keys = keys;
        }
        c->c.cap = cap;
        return 0;
}

int cty_collection_append(cty_value *c, cty_value *item) {
        if (!c || !item || c->null || c->unknown ||
            !(c->type->kind == CTY_LIST || c->type->kind == CTY_SET || c->type->kind == CTY_TUPLE)) {
                cty_value_free(item);
                return -EINVAL;
        }
        const cty_type *slot = c->type->kind == CTY_TUPLE ? (c->c.n < c->type->n ? c->type->types[c->c.n] : NULL)
                                                          : c->type->elem;
        if (!slot || !conforms(slot, item)) {
                cty_value_free(item);
                return -EINVAL;
        }
        if (grow(c) < 0) {
                cty_value_free(item);
                return -ENOMEM;
        }
        if (c->type->kind != CTY_SET) {
                c->c.items[c->c.n++] = item;
                return 0;
        }
        /* Sets stay sorted and free of duplicates, as go-cty keeps them (cty.SetVal). */
        size_t pos = c->c.n;
        int cmp = 1;
        while (pos > 0 && (cmp = cty_set_cmp(c->c.items[pos - 1], item)) > 0)
                pos--;
        if (pos > 0 && cmp == 0 && !cty_value_has_unknown(item) && !cty_value_has_unknown(c->c.items[pos - 1]) &&
            cty_value_equal(c->c.items[pos - 1], item)) {
                cty_value_free(item);
                return 0;
        }
        memmove(c->c.items + pos + 1, c->c.items + pos, (c->c.n - pos) * sizeof(*c->c.items));
        c->c.items[pos] = item;
        c->c.n++;
        return 0;
}

static ssize_t map_find(const cty_value *c, const char *key, size_t *ret_pos) {
        size_t lo = 0, hi = c->c.n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int r = strcmp(c->c.keys[mid], key);
                if (r == 0)
                        return (ssize_t) mid;
                if (r < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (ret_pos)
                *ret_pos = lo;
        return -1;
}

int cty_map_put(cty_value *c, const char *key, cty_value *item) {
        if (!c || !key || !item || c->null || c->unknown || c->type->kind != CTY_MAP || !conforms(c->type->elem, item)) {
                cty_value_free(item);
                return -EINVAL;
        }
        /* Keys stay sorted bytewise: that is the order go-cty iterates and writes them in. */
        size_t pos = 0;
        ssize_t i = map_find(c, key, &pos);
        if (i >= 0) {
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
        memmove(c->c.items + pos + 1, c->c.items + pos, (c->c.n - pos) * sizeof(*c->c.items));
        memmove(c->c.keys + pos + 1, c->c.keys + pos, (c->c.n - pos) * sizeof(*c->c.keys));
        c->c.keys[pos] = k;
        c->c.items[pos] = item;
        c->c.n++;
        return 0;
}

int cty_items_push(cty_value *c, cty_value *item) {
        if (grow(c) < 0)
                return -ENOMEM;
        c->c.items[c->c.n++] = item;
        return 0;
}

int cty_map_append_unsorted(cty_value *c, char *key, cty_value *item) {
        if (grow(c) < 0)
                return -ENOMEM;
        c->c.keys[c->c.n] = key;
        c->c.items[c->c.n++] = item;
        return 0;
}

static int key_order(const void *a, const void *b, void *userdata) {
        const cty_value *c = userdata;
        size_t i = *(const size_t *) a, j = *(const size_t *) b;
        return strcmp(c->c.keys[i], c->c.keys[j]);
}

int cty_map_finish(cty_value *c, const char **ret_dup) {
        if (c->c.n < 2)
                return 0;
        _cleanup_free_ size_t *order = calloc(c->c.n, sizeof(size_t));
        _cleanup_free_ cty_value **items = calloc(c->c.n, sizeof(cty_value *));
        _cleanup_free_ char **keys = calloc(c->c.n, sizeof(char *));
        if (!order || !items || !keys)
                return -ENOMEM;
        for (size_t i = 0; i < c->c.n; i++)
                order[i] = i;
        qsort_r(order, c->c.n, sizeof(size_t), key_order, c);
        for (size_t i = 0; i < c->c.n; i++) {
                items[i] = c->c.items[order[i]];
                keys[i] = c->c.keys[order[i]];
        }
        memcpy(c->c.items, items, c->c.n * sizeof(*items));
        memcpy(c->c.keys, keys, c->c.n * sizeof(*keys));
        for (size_t i = 1; i < c->c.n; i++)
                if (streq(c->c.keys[i - 1], c->c.keys[i])) {
                        if (ret_dup)
                                *ret_dup = c->c.keys[i];
                        return -EEXIST;
                }
        return 0;
}

cty_value *cty_map_get(const cty_value *map, const char *key) {
        if (!map || !key || map->null || map->unknown || map->type->kind != CTY_MAP)
                return NULL;
        ssize_t i = map_find(map, key, NULL);
        return i < 0 ? NULL : map->c.items[i];
}

cty_value *cty_index_get(const cty_value *coll, size_t index) {
        if (!coll || coll->null || coll->unknown || !is_collection(coll->type->kind) || index >= coll->c.n)
                return NULL;
        return coll->c.items[index];
}

int cty_value_length(const cty_value *v, size_t *ret) {
        if (!v || v->null || v->unknown || !is_collection(v->type->kind))
                return -EINVAL;
        *ret = v->c.n;
        return 0;
}

struct set_item {
        cty_value *v;
        size_t idx;
        uint8_t *enc; /* canonical msgpack of non-primitive items, for ordering */
        size_t enc_len;
};

static bool is_primitive(cty_kind k) {
        return k == CTY_STRING || k == CTY_NUMBER || k == CTY_BOOL;
}

static int set_item_cmp(const struct set_item *a, const struct set_item *b) {
        const cty_value *x = a->v, *y = b->v;
        if (x->null || y->null)
                return (int) x->null - (int) y->null; /* nulls last */
        if (x->unknown || y->unknown)
                return (int) x->unknown - (int) y->unknown; /* then unknowns */
        if (x->type->kind != y->type->kind)
                return x->type->kind < y->type->kind ? -1 : 1;
        switch (x->type->kind) {
        case CTY_STRING: {
                size_t m = x->s.len < y->s.len ? x->s.len : y->s.len;
                int c = memcmp(x->s.str, y->s.str, m);
                return c != 0 ? c : x->s.len < y->s.len ? -1 : x->s.len > y->s.len;
        }
        case CTY_BOOL:
                return (int) x->b - (int) y->b;
        case CTY_NUMBER:
                return cty_number_cmp(x, y);
        default:
                if (!a->enc || !b->enc)
                        return 0;
                size_t m = a->enc_len < b->enc_len ? a->enc_len : b->enc_len;
                int c = memcmp(a->enc, b->enc, m);
                return c != 0 ? c : a->enc_len < b->enc_len ? -1 : a->enc_len > b->enc_len;
        }
}

static void set_item_encode(struct set_item *it) {
        if (it->v->null || it->v->unknown || is_primitive(it->v->type->kind))
                return;
        if (cty_msgpack_encode(it->v, it->v->type, &it->enc, &it->enc_len) < 0)
                it->enc = NULL;
}

int cty_set_cmp(const cty_value *a, const cty_value *b) {
        struct set_item x = { .v = (cty_value *) a }, y = { .v = (cty_value *) b };
        set_item_encode(&x);
        set_item_encode(&y);
        int r = set_item_cmp(&x, &y);
        free(x.enc);
        free(y.enc);
        return r;
}

static int set_order(const void *a, const void *b) {
        const struct set_item *x = a, *y = b;
        int r = set_item_cmp(x, y);
        return r != 0 ? r : x->idx < y->idx ? -1 : x->idx > y->idx; /* stable */
}

int cty_set_normalize(cty_value *set) {
        size_t n = set->c.n;
        if (n < 2)
                return 0;
        struct set_item *items = calloc(n, sizeof(*items));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                items[i] = (struct set_item) { .v = set->c.items[i], .idx = i };
                set_item_encode(&items[i]);
        }
        qsort(items, n, sizeof(*items), set_order);
        size_t out = 0;
        for (size_t i = 0; i < n; i++) {
                /* Two values are the same set element only if both are wholly known and equal
                 * (go-cty setRules.Equivalent: unknowns never are). */
                if (out > 0 && set_item_cmp(&items[i], &items[out - 1]) == 0 && !cty_value_has_unknown(items[i].v) &&
                    !cty_value_has_unknown(items[out - 1].v) && cty_value_equal(items[i].v, items[out - 1].v)) {
                        cty_value_free(items[i].v);
                        free(items[i].enc);
                        continue;
                }
                items[out++] = items[i];
        }
        for (size_t i = 0; i < out; i++) {
                set->c.items[i] = items[i].v;
                free(items[i].enc);
        }
        set->c.n = out;
        free(items);
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
                n->c.cap = v->c.n;
        }
        return n;
}

static bool number_equal(const cty_value *a, const cty_value *b) {
        /* Numbers are kept in one canonical form per value, so forms compare directly; the
         * general comparison covers values someone built by hand. */
        if (a->num.form == b->num.form) {
                switch (a->num.form) {
                case CTY_NUM_INT:
                        return a->num.i == b->num.i;
                case CTY_NUM_FLOAT:
                        return a->num.f == b->num.f;
                case CTY_NUM_STRING:
                        return a->num.text && b->num.text && streq(a->num.text, b->num.text);
                }
        }
        return cty_number_cmp(a, b) == 0;
}

/* Sets match regardless of order. Decoded and appended sets are kept sorted, so the positional
 * pass decides nearly always; the quadratic fallback covers sets whose items were changed in place
 * and is bounded to stay cheap. */
#define SET_UNORDERED_MAX 1024
static bool set_equal(const cty_value *a, const cty_value *b) {
        bool same = true;
        for (size_t i = 0; i < a->c.n && same; i++)
                same = cty_value_equal(a->c.items[i], b->c.items[i]);
        if (same || a->c.n > SET_UNORDERED_MAX)
                return same;
        _cleanup_free_ bool *used = calloc(b->c.n + 1, sizeof(bool));
        if (!used)
                return false;
        for (size_t i = 0; i < a->c.n; i++) {
                size_t j = 0;
                while (j < b->c.n && (used[j] || !cty_value_equal(a->c.items[i], b->c.items[j])))
                        j++;
                if (j == b->c.n)
                        return false;
                used[j] = true;
        }
        return true;
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
                        /* Map keys are kept sorted: look each key up. */
                        for (size_t i = 0; i < a->c.n; i++) {
                                const cty_value *other = cty_map_get(b, a->c.keys[i]);
                                if (!other || !cty_value_equal(a->c.items[i], other))
                                        return false;
                        }
                        return true;
                }
                if (a->type->kind == CTY_SET)
                        return set_equal(a, b);
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

int cty_value_get_double(const cty_value *v, double *ret) {
        if (!v || v->null || v->unknown || v->type->kind != CTY_NUMBER)
                return -EINVAL;
        switch (v->num.form) {
        case CTY_NUM_INT:
                /* Exact only up to 2^53 in magnitude; the round trip tells. */
                if ((double) v->num.i >= 9223372036854775808.0 || (int64_t) (double) v->num.i != v->num.i)
                        return -ERANGE;
                *ret = (double) v->num.i;
                return 0;
        case CTY_NUM_FLOAT:
                *ret = v->num.f;
                return 0;
        case CTY_NUM_STRING:
                return -ERANGE; /* canonical STRING numbers are never exactly a double */
        }
        return -EINVAL;
}

#define PATH_KEY_MAX 256

cty_value *cty_value_at(const cty_value *v, const char *path) {
        const char *p = path;
        if (!p)
                return NULL;
        while (v && *p) {
                if (*p == '.') {
                        char name[PATH_KEY_MAX];
                        size_t n = strcspn(p + 1, ".[");
                        if (n == 0 || n >= sizeof(name))
                                return NULL;
                        memcpy(name, p + 1, n);
                        name[n] = 0;
                        v = cty_object_get(v, name);
                        p += 1 + n;
                } else if (p[0] == '[' && p[1] == '"') {
                        char key[PATH_KEY_MAX];
                        size_t n = 0;
                        p += 2;
                        while (*p && *p != '"') {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (n + 1 >= sizeof(key))
                                        return NULL;
                                key[n++] = *p++;
                        }
                        key[n] = 0;
                        if (p[0] != '"' || p[1] != ']')
                                return NULL;
                        p += 2;
                        v = cty_map_get(v, key);
                } else if (*p == '[') {
                        char *end;
                        if (p[1] < '0' || p[1] > '9')
                                return NULL;
                        errno = 0;
                        unsigned long long i = strtoull(p + 1, &end, 10);
                        if (errno != 0 || *end != ']' || i > SIZE_MAX)
                                return NULL;
                        if (v->null || v->unknown || v->type->kind == CTY_OBJECT || v->type->kind == CTY_MAP)
                                return NULL;
                        v = cty_index_get(v, (size_t) i);
                        p = end + 1;
                } else
                        return NULL;
                if (v && (v->null || v->unknown) && *p)
                        return NULL;
        }
        return (cty_value *) v;
}
