/* SPDX-License-Identifier: Apache-2.0 */
/* cty <-> msgpack, as go-cty's msgpack package does it (terraform-plugin-protocol.md §6.2/§6.3). */
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>

#include "basic/secret.h"
#include "cty-internal.h"

#define CTY_REFINEMENT_EXT 12

/* msgpack-c allocates an array's element table before reading the elements, so a 5-byte
 * "array of 4 billion" would ask for 64 GiB. Walk the headers first and refuse any count that the
 * remaining bytes cannot possibly hold (each element needs at least one byte). Stage 1 of the
 * STYLE.md validation order: sizes before allocation. */
static int prescan(const uint8_t *p, size_t len) {
        size_t off = 0, pending = 1;
        while (pending > 0) {
                if (off >= len)
                        return -EBADMSG;
                uint8_t b = p[off++];
                pending--;
                uint64_t count = 0, skip = 0;
                size_t need = 0; /* bytes of length field */
                if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
                        continue;
                if ((b & 0xf0) == 0x80) {
                        count = 2u * (b & 0x0f);
                } else if ((b & 0xf0) == 0x90) {
                        count = b & 0x0f;
                } else if ((b & 0xe0) == 0xa0) {
                        skip = b & 0x1f;
                } else {
                        switch (b) {
                        case 0xcc: case 0xd0: skip = 1; break;
                        case 0xcd: case 0xd1: skip = 2; break;
                        case 0xce: case 0xd2: case 0xca: skip = 4; break;
                        case 0xcf: case 0xd3: case 0xcb: skip = 8; break;
                        case 0xd4: skip = 2; break;
                        case 0xd5: skip = 3; break;
                        case 0xd6: skip = 5; break;
                        case 0xd7: skip = 9; break;
                        case 0xd8: skip = 17; break;
                        case 0xc4: case 0xd9: need = 1; break;
                        case 0xc5: case 0xda: need = 2; break;
                        case 0xc6: case 0xdb: need = 4; break;
                        case 0xc7: need = 1; break;
                        case 0xc8: need = 2; break;
                        case 0xc9: need = 4; break;
                        case 0xdc: case 0xde: need = 2; break;
                        case 0xdd: case 0xdf: need = 4; break;
                        default:
                                return -EBADMSG; /* 0xc1 is never used */
                        }
                        if (need > 0) {
                                if (!bounds_ok(len, off, need))
                                        return -EBADMSG;
                                uint64_t n = 0;
                                for (size_t i = 0; i < need; i++)
                                        n = n << 8 | p[off + i];
                                off += need;
                                if (b == 0xdc || b == 0xdd)
                                        count = n;
                                else if (b == 0xde || b == 0xdf)
                                        count = 2 * n;
                                else if (b >= 0xc7 && b <= 0xc9)
                                        skip = n + 1; /* ext type byte + payload */
                                else
                                        skip = n;
                        }
                }
                if (skip > len - off)
                        return -EBADMSG;
                off += skip;
                if (count > len - off || count > SIZE_MAX - pending)
                        return -EBADMSG;
                pending += count;
        }
        return off == len ? 0 : -EBADMSG;
}

void cty_safe_text(const char *text, size_t len, char out[static CTY_SAFE_TEXT_SIZE]) {
        size_t n = 0;
        /* Names and keys from outside end up in diagnostics: keep them printable and short. */
        for (size_t i = 0; i < len && n < CTY_SAFE_TEXT_SIZE - 2; i++)
                out[n++] = (text[i] >= 0x20 && text[i] < 0x7f && text[i] != '"' && text[i] != '\\') ? text[i] : '?';
        if (len > CTY_SAFE_TEXT_SIZE - 2)
                out[n - 1] = '~';
        out[n] = 0;
}

static size_t path_append(cty_path *p, bool key, const char *text, size_t len) {
        size_t old = strlen(p->buf);
        char safe[CTY_SAFE_TEXT_SIZE];
        cty_safe_text(text, len, safe);
        if (key)
                snprintf(p->buf + old, sizeof(p->buf) - old, "[\"%s\"]", safe);
        else
                snprintf(p->buf + old, sizeof(p->buf) - old, ".%s", safe);
        return old;
}

size_t cty_path_push_attr(cty_path *p, const char *name) {
        return path_append(p, false, name, strlen(name));
}

size_t cty_path_push_key(cty_path *p, const char *key, size_t len) {
        return path_append(p, true, key, len);
}

size_t cty_path_push_index(cty_path *p, size_t i) {
        size_t old = strlen(p->buf);
        snprintf(p->buf + old, sizeof(p->buf) - old, "[%zu]", i);
        return old;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * or 0. */
size_t cty_utf8_len(const unsigned char *p, size_t avail) {
        if (p[0] < 0x80)
                return 1;
        size_t n;
        uint32_t cp, min;
        if ((p[0] & 0xe0) == 0xc0)
                n = 2, cp = p[0] & 0x1f, min = 0x80;
        else if ((p[0] & 0xf0) == 0xe0)
                n = 3, cp = p[0] & 0x0f, min = 0x800;
        else if ((p[0] & 0xf8) == 0xf0)
                n = 4, cp = p[0] & 0x07, min = 0x10000;
        else
                return 0;
        if (avail < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

bool cty_utf8_valid(const char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                size_t l = cty_utf8_len((const unsigned char *) s + i, n - i);
                if (l == 0)
                        return false;
                i += l;
        }
        return true;
}

/* msgpack-c leaves ptr NULL for empty str/bin/ext bodies; library calls want a real pointer. */
#define BODY(x) ((x).ptr ? (x).ptr : "")

struct dec {
        cty_path path;
        char *error;
};

static int fail(struct dec *d, const char *what) {
        if (!d->error && asprintf(&d->error, "%s: %s", d->path.buf[0] ? d->path.buf : "(root)", what) < 0)
                d->error = NULL;
        return -EBADMSG;
}

static int decode(struct dec *d, const msgpack_object *o, cty_type *t, unsigned depth, cty_value **ret);

static int decode_number(struct dec *d, const msgpack_object *o, cty_value **ret) {
        cty_value *v = NULL;
        int r;
        switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                if (o->via.u64 <= INT64_MAX)
                        v = cty_number_int((int64_t) o->via.u64);
                else {
                        /* Above int64: exact as a double (e.g. 2^63) or else decimal text. */
                        char buf[32];
                        snprintf(buf, sizeof(buf), "%" PRIu64, o->via.u64);
                        if ((r = cty_number_from_string(buf, strlen(buf), &v)) < 0)
                                return r == -ENOMEM ? r : fail(d, "number out of range");
                }
                break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                v = cty_number_int(o->via.i64);
                break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                if (isnan(o->via.f64))
                        return fail(d, "NaN is not a number value");
                v = cty_number_float(o->via.f64);
                break;
        case MSGPACK_OBJECT_STR:
                /* go-cty writes numbers it cannot hold exactly as decimal strings (§6.2). */
                r = cty_number_from_string(BODY(o->via.str), o->via.str.size, &v);
                if (r == -EINVAL)
                        return fail(d, "string is not a decimal number");
                if (r == -ERANGE)
                        return fail(d, "number has too many digits");
                if (r < 0)
                        return r;
                break;
        default:
                return fail(d, "number expected");
        }
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

static int decode_dynamic(struct dec *d, const msgpack_object *o, unsigned depth, cty_value **ret) {
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
                return fail(d, "dynamic value must be [type, value]");
        const msgpack_object *to = &o->via.array.ptr[0];
        const char *tj;
        size_t tl;
        if (to->type == MSGPACK_OBJECT_BIN) {
                tj = BODY(to->via.bin);
                tl = to->via.bin.size;
        } else if (to->type == MSGPACK_OBJECT_STR) {
                tj = BODY(to->via.str);
                tl = to->via.str.size;
        } else
                return fail(d, "dynamic value type must be bytes");
        _cleanup_(cty_type_unrefp) cty_type *t = NULL;
        if (cty_type_from_json(tj, tl, &t) < 0)
                return fail(d, "dynamic value has an invalid type");
        if (t->kind == CTY_DYNAMIC)
                return fail(d, "dynamic value cannot have type dynamic");
        return decode(d, &o->via.array.ptr[1], t, depth + 1, ret);
}

static int decode(struct dec *d, const msgpack_object *o, cty_type *t, unsigned depth, cty_value **ret) {
        int r;
        if (depth > CTY_MAX_DEPTH)
                return fail(d, "value nested too deeply");
        if (o->type == MSGPACK_OBJECT_NIL) {
                *ret = cty_null(t);
                return *ret ? 0 : -ENOMEM;
        }
        if (o->type == MSGPACK_OBJECT_EXT) {
                /* Any ext of length <= 1 is unknown; type 12 carries refinements (§6.3). */
                cty_value *v = cty_unknown(t);
                if (!v)
                        return -ENOMEM;
                if (o->via.ext.size > 1) {
                        if (o->via.ext.type != CTY_REFINEMENT_EXT) {
                                cty_value_free(v);
                                return fail(d, "unsupported extension type");
                        }
                        v->refinements = malloc(o->via.ext.size);
                        if (!v->refinements) {
                                cty_value_free(v);
                                return -ENOMEM;
                        }
                        memcpy(v->refinements, BODY(o->via.ext), o->via.ext.size);
                        v->refinements_len = o->via.ext.size;
                }
                *ret = v;
                return 0;
        }

        switch (t->kind) {
        case CTY_DYNAMIC:
                return decode_dynamic(d, o, depth, ret);
        case CTY_STRING:
                if (o->type != MSGPACK_OBJECT_STR)
                        return fail(d, "string expected");
                /* cty strings are Unicode text; Terraform only sends UTF-8 (§6.2). */
                if (!cty_utf8_valid(BODY(o->via.str), o->via.str.size))
                        return fail(d, "string is not valid UTF-8");
                *ret = cty_string_newn(BODY(o->via.str), o->via.str.size);
                return *ret ? 0 : -ENOMEM;
        case CTY_BOOL:
                if (o->type != MSGPACK_OBJECT_BOOLEAN)
                        return fail(d, "bool expected");
                *ret = cty_bool_new(o->via.boolean);
                return *ret ? 0 : -ENOMEM;
        case CTY_NUMBER:
                return decode_number(d, o, ret);
        case CTY_LIST:
        case CTY_SET:
        case CTY_TUPLE: {
                if (o->type != MSGPACK_OBJECT_ARRAY)
                        return fail(d, "array expected");
                if (t->kind == CTY_TUPLE && o->via.array.size != t->n)
                        return fail(d, "tuple has the wrong number of elements");
                _cleanup_(cty_value_freep) cty_value *v = cty_collection_new(t);
                if (!v)
                        return -ENOMEM;
                v->c.items = calloc(o->via.array.size + 1, sizeof(cty_value *));
                if (!v->c.items)
                        return -ENOMEM;
                v->c.cap = o->via.array.size + 1;
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        size_t old = cty_path_push_index(&d->path, i);
                        r = decode(d, &o->via.array.ptr[i], t->kind == CTY_TUPLE ? t->types[i] : t->elem, depth + 1,
                                   &v->c.items[i]);
                        if (r < 0)
                                return r;
                        cty_path_pop(&d->path, old);
                        v->c.n = i + 1;
                }
                /* go-cty builds sets with SetVal: sorted, duplicates merged (§6.3). */
                if (t->kind == CTY_SET && (r = cty_set_normalize(v)) < 0)
                        return r;
                *ret = TAKE_PTR(v);
                return 0;
        }
        case CTY_MAP: {
                if (o->type != MSGPACK_OBJECT_MAP)
                        return fail(d, "map expected");
                _cleanup_(cty_value_freep) cty_value *v = cty_collection_new(t);
                if (!v)
                        return -ENOMEM;
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];
                        if (kv->key.type != MSGPACK_OBJECT_STR)
                                return fail(d, "map key must be a string");
                        size_t old = cty_path_push_key(&d->path, BODY(kv->key.via.str), kv->key.via.str.size);
                        if (memchr(BODY(kv->key.via.str), 0, kv->key.via.str.size))
                                return fail(d, "map key contains NUL");
                        if (!cty_utf8_valid(BODY(kv->key.via.str), kv->key.via.str.size))
                                return fail(d, "map key is not valid UTF-8");
                        _cleanup_free_ char *key = strndup(BODY(kv->key.via.str), kv->key.via.str.size);
                        if (!key)
                                return -ENOMEM;
                        cty_value *item;
                        if ((r = decode(d, &kv->val, t->elem, depth + 1, &item)) < 0)
                                return r;
                        cty_path_pop(&d->path, old);
                        if ((r = cty_map_append_unsorted(v, key, item)) < 0) {
                                cty_value_free(item);
                                return r;
                        }
                        TAKE_PTR(key);
                }
                const char *dup = NULL;
                r = cty_map_finish(v, &dup);
                if (r == -EEXIST) {
                        cty_path_push_key(&d->path, dup, strlen(dup));
                        return fail(d, "duplicate map key");
                }
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(v);
                return 0;
        }
        case CTY_OBJECT: {
                if (o->type != MSGPACK_OBJECT_MAP)
                        return fail(d, "object expected");
                if (o->via.map.size != t->n) {
                        char msg[96];
                        snprintf(msg, sizeof(msg), "an object with %zu attributes is required (%u given)", t->n,
                                 o->via.map.size);
                        return fail(d, msg);
                }
                _cleanup_(cty_value_freep) cty_value *v = cty_object_new(t);
                if (!v)
                        return -ENOMEM;
                _cleanup_free_ bool *seen = calloc(t->n + 1, sizeof(bool));
                if (!seen)
                        return -ENOMEM;
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];
                        if (kv->key.type != MSGPACK_OBJECT_STR)
                                return fail(d, "object key must be a string");
                        _cleanup_free_ char *key = strndup(BODY(kv->key.via.str), kv->key.via.str.size);
                        if (!key)
                                return -ENOMEM;
                        ssize_t idx = cty_type_attr_index(t, key);
                        if (idx < 0 || strlen(key) != kv->key.via.str.size) {
                                /* go-cty's wording, at the object's path. */
                                char safe[CTY_SAFE_TEXT_SIZE], msg[CTY_SAFE_TEXT_SIZE + 32];
                                cty_safe_text(BODY(kv->key.via.str), kv->key.via.str.size, safe);
                                snprintf(msg, sizeof(msg), "unsupported attribute \"%s\"", safe);
                                return fail(d, msg);
                        }
                        size_t old = cty_path_push_attr(&d->path, key);
                        if (seen[idx])
                                return fail(d, "duplicate attribute");
                        seen[idx] = true;
                        cty_value *item;
                        if ((r = decode(d, &kv->val, t->types[idx], depth + 1, &item)) < 0)
                                return r;
                        cty_path_pop(&d->path, old);
                        cty_value_free(v->c.items[idx]);
                        v->c.items[idx] = item;
                }
                *ret = TAKE_PTR(v);
                return 0;
        }
        }
        return fail(d, "unsupported type");
}

int cty_msgpack_decode(const uint8_t *buf, size_t len, cty_type *type, cty_value **ret, char **ret_error) {
        struct dec d = {};
        msgpack_unpacked result;
        size_t off = 0;
        int r;

        if (!buf || len == 0) {
                /* Empty DynamicValue: null of the schema type (§6.1). */
                *ret = cty_null(type);
                return *ret ? 0 : -ENOMEM;
        }
        if (len > CTY_WIRE_MAX) {
                if (ret_error)
                        *ret_error = strdup("msgpack value too large");
                return -EBADMSG;
        }
        if (prescan(buf, len) < 0) {
                if (ret_error)
                        *ret_error = strdup("malformed or truncated msgpack");
                return -EBADMSG;
        }
        msgpack_unpacked_init(&result);
        msgpack_unpack_return ur = msgpack_unpack_next(&result, (const char *) buf, len, &off);
        if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
                msgpack_unpacked_destroy(&result);
                if (ret_error)
                        *ret_error = strdup(ur == MSGPACK_UNPACK_NOMEM_ERROR ? "msgpack value too large or nested too deeply"
                                                                             : "malformed msgpack");
                return -EBADMSG;
        }
        r = decode(&d, &result.data, type, 0, ret);
        msgpack_unpacked_destroy(&result);
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(d.error);
        }
        free(d.error);
        return r;
}

static int encode(msgpack_packer *pk, const cty_value *v, const cty_type *t);

static int encode_known(msgpack_packer *pk, const cty_value *v) {
        const cty_type *t = v->type;
        int r;
        switch (t->kind) {
        case CTY_STRING:
                msgpack_pack_str(pk, v->s.len);
                msgpack_pack_str_body(pk, v->s.str, v->s.len);
                return 0;
        case CTY_BOOL:
                return v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        case CTY_NUMBER:
                switch (v->num.form) {
                case CTY_NUM_INT:
                        /* msgpack-c picks the smallest format, uint codes for positives (§6.2). */
                        return msgpack_pack_int64(pk, v->num.i);
                case CTY_NUM_FLOAT:
                        return msgpack_pack_double(pk, v->num.f);
                case CTY_NUM_STRING: {
                        size_t n = strlen(v->num.text);
                        msgpack_pack_str(pk, n);
                        return msgpack_pack_str_body(pk, v->num.text, n);
                }
                }
                return -EINVAL;
        case CTY_LIST:
        case CTY_SET:
        case CTY_TUPLE:
                if (t->kind == CTY_TUPLE && v->c.n != t->n)
                        return -EINVAL;
                msgpack_pack_array(pk, v->c.n);
                for (size_t i = 0; i < v->c.n; i++)
                        if ((r = encode(pk, v->c.items[i], t->kind == CTY_TUPLE ? t->types[i] : t->elem)) < 0)
                                return r;
                return 0;
        case CTY_MAP:
                /* Keys are kept sorted: the order go-cty iterates map elements in. */
                msgpack_pack_map(pk, v->c.n);
                for (size_t i = 0; i < v->c.n; i++) {
                        const char *k = v->c.keys[i];
                        msgpack_pack_str(pk, strlen(k));
                        msgpack_pack_str_body(pk, k, strlen(k));
                        if ((r = encode(pk, v->c.items[i], t->elem)) < 0)
                                return r;
                }
                return 0;
        case CTY_OBJECT:
                if (v->c.n != t->n)
                        return -EINVAL;
                msgpack_pack_map(pk, t->n);
                for (size_t i = 0; i < t->n; i++) {
                        msgpack_pack_str(pk, strlen(t->names[i]));
                        msgpack_pack_str_body(pk, t->names[i], strlen(t->names[i]));
                        if ((r = encode(pk, v->c.items[i], t->types[i])) < 0)
                                return r;
                }
                return 0;
        case CTY_DYNAMIC:
                return -EINVAL; /* a known value always has a concrete type */
        }
        return -EINVAL;
}

static int encode(msgpack_packer *pk, const cty_value *v, const cty_type *t) {
        if (!v)
                return msgpack_pack_nil(pk);
        /* go-cty wraps every value in a dynamic slot whose own type is concrete, null and unknown
         * ones too ([type, nil]); only values of type dynamic itself are bare (§6.2). */
        if (t && t->kind == CTY_DYNAMIC && v->type->kind != CTY_DYNAMIC) {
                _cleanup_free_ char *tj = cty_type_to_json(v->type);
                if (!tj)
                        return -ENOMEM;
                msgpack_pack_array(pk, 2);
                msgpack_pack_bin(pk, strlen(tj));
                msgpack_pack_bin_body(pk, tj, strlen(tj));
                t = v->type;
        }
        if (v->unknown) {
                if (v->refinements && v->refinements_len > 1) {
                        msgpack_pack_ext(pk, v->refinements_len, CTY_REFINEMENT_EXT);
                        return msgpack_pack_ext_body(pk, v->refinements, v->refinements_len);
                }
                static const uint8_t zero = 0;
                msgpack_pack_ext(pk, 1, 0);
                return msgpack_pack_ext_body(pk, &zero, 1);
        }
        if (v->null)
                return msgpack_pack_nil(pk);
        if (t && !cty_type_equal(t, v->type))
                return -EINVAL;
        return encode_known(pk, v);
}

/* Output buffer for the packer. Encoded values may hold secrets, so growing never leaves a copy
 * behind in freed memory (realloc would), and the size is bounded. */
struct wbuf {
        uint8_t *data;
        size_t len, cap;
        int err;
};

static int wbuf_write(void *userdata, const char *buf, size_t len) {
        struct wbuf *w = userdata;
        if (w->err)
                return -1;
        if (len > CTY_WIRE_MAX || w->len > CTY_WIRE_MAX - len) {
                w->err = -E2BIG;
                return -1;
        }
        if (w->len + len > w->cap) {
                size_t cap = w->cap ? w->cap : 256;
                while (cap < w->len + len)
                        cap *= 2;
                uint8_t *n = malloc(cap);
                if (!n) {
                        w->err = -ENOMEM;
                        return -1;
                }
                if (w->data) {
                        memcpy(n, w->data, w->len);
                        erase_memory(w->data, w->len);
                        free(w->data);
                }
                w->data = n;
                w->cap = cap;
        }
        memcpy(w->data + w->len, buf, len);
        w->len += len;
        return 0;
}

int cty_msgpack_encode(const cty_value *v, const cty_type *type, uint8_t **ret, size_t *ret_len) {
        struct wbuf w = {};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &w, wbuf_write);
        int r = encode(&pk, v, type);
        if (r >= 0 && w.err < 0)
                r = w.err;
        if (r < 0 || !w.data) {
                if (w.data)
                        erase_memory(w.data, w.len);
                free(w.data);
                return r < 0 ? r : -EINVAL;
        }
        *ret = w.data;
        *ret_len = w.len;
        return 0;
}
