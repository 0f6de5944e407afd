/* SPDX-License-Identifier: Apache-2.0 */
/* cty <-> JSON as go-cty's ctyjson does it (Terraform state attributes; UpgradeResourceState
 * raw_state.json; terraform-plugin-protocol.md §6.1). A small parser of our own rather than
 * jansson, because jansson turns numbers into int64/double: state numbers like 0.1 or
 * 12345678901234567890 must keep every digit (go-cty reads them into 512-bit big.Float). */
#include <stdio.h>

#include "basic/secret.h"
#include "cty-internal.h"


struct jdec {
        const char *p, *end;
        cty_path path;
        char *error;
};

static int jfail(struct jdec *d, const char *what) {
        if (!d->error && asprintf(&d->error, "%s: %s", d->path.buf[0] ? d->path.buf : "(root)", what) < 0)
                d->error = NULL;
        return -EBADMSG;
}

static void skip_ws(struct jdec *d) {
        while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
                d->p++;
}

static bool eat(struct jdec *d, char c) {
        skip_ws(d);
        if (d->p < d->end && *d->p == c) {
                d->p++;
                return true;
        }
        return false;
}

static bool eat_word(struct jdec *d, const char *w) {
        size_t n = strlen(w);
        if ((size_t) (d->end - d->p) < n || memcmp(d->p, w, n) != 0)
                return false;
        d->p += n;
        return true;
}

static int hex4(const char *p, uint32_t *ret) {
        uint32_t x = 0;
        for (int i = 0; i < 4; i++) {
                char c = p[i];
                x <<= 4;
                if (c >= '0' && c <= '9')
                        x |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        x |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        x |= (uint32_t) (c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *ret = x;
        return 0;
}

static size_t put_utf8(char *out, uint32_t cp) {
        if (cp < 0x80) {
                out[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char) (0xc0 | cp >> 6);
                out[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char) (0xe0 | cp >> 12);
                out[1] = (char) (0x80 | (cp >> 6 & 0x3f));
                out[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char) (0xf0 | cp >> 18);
        out[1] = (char) (0x80 | (cp >> 12 & 0x3f));
        out[2] = (char) (0x80 | (cp >> 6 & 0x3f));
        out[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

/* A JSON string (RFC 8259 §7) at d->p, unescaped into a new buffer (NUL-terminated; may contain
 * NUL). Lone surrogate escapes become U+FFFD, as Go's decoder does. */
static int parse_string(struct jdec *d, char **ret, size_t *ret_len) {
        if (d->p >= d->end || *d->p != '"')
                return jfail(d, "string expected");
        d->p++;
        /* Unescaped text is never longer than the escaped text. */
        const char *q = d->p;
        while (q < d->end && *q != '"') {
                if (*q == '\\' && q + 1 < d->end)
                        q++;
                q++;
        }
        if (q >= d->end)
                return jfail(d, "unterminated string");
        size_t cap = (size_t) (q - d->p) + 1, n = 0;
        char *out = malloc(cap);
        int r;
        if (!out)
                return -ENOMEM;
        while (*d->p != '"') {
                unsigned char c = (unsigned char) *d->p;
                if (c < 0x20) {
                        r = jfail(d, "control character in string");
                        goto fail;
                }
                if (c != '\\') {
                        size_t l = cty_utf8_len((const unsigned char *) d->p, (size_t) (d->end - d->p));
                        if (l == 0) {
                                r = jfail(d, "invalid UTF-8 in string");
                                goto fail;
                        }
                        memcpy(out + n, d->p, l);
                        n += l;
                        d->p += l;
                        continue;
                }
                d->p++;
                char e = *d->p++;
                switch (e) {
                case '"': out[n++] = '"'; break;
                case '\\': out[n++] = '\\'; break;
                case '/': out[n++] = '/'; break;
                case 'b': out[n++] = '\b'; break;
                case 'f': out[n++] = '\f'; break;
                case 'n': out[n++] = '\n'; break;
                case 'r': out[n++] = '\r'; break;
                case 't': out[n++] = '\t'; break;
                case 'u': {
                        uint32_t cp, lo;
                        if (d->end - d->p < 4 || hex4(d->p, &cp) < 0) {
                                r = jfail(d, "invalid \\u escape");
                                goto fail;
                        }
                        d->p += 4;
                        if (cp >= 0xd800 && cp <= 0xdbff && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u' &&
                            hex4(d->p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                d->p += 6;
                        } else if (cp >= 0xd800 && cp <= 0xdfff)
                                cp = 0xfffd;
                        /* "\uXXXX" is 6 bytes of input, at most 3 of output (a pair: 12 -> 4). */
                        n += put_utf8(out + n, cp);
                        break;
                }
                default:
                        r = jfail(d, "invalid escape in string");
                        goto fail;
                }
        }
        d->p++;
        out[n] = 0;
        *ret = out;
        *ret_len = n;
        return 0;
fail:
        /* Whatever was unescaped so far may be part of a secret. */
        erase_memory(out, cap);
        free(out);
        return r;
}

/* A JSON number token (RFC 8259 §6); returns its span. */
static int parse_number_token(struct jdec *d, const char **ret, size_t *ret_len) {
        const char *s = d->p, *p = d->p;
        if (p < d->end && *p == '-')
                p++;
        if (p >= d->end || *p < '0' || *p > '9')
                return jfail(d, "invalid number");
        if (*p == '0')
                p++;
        else
                while (p < d->end && *p >= '0' && *p <= '9')
                        p++;
        if (p < d->end && *p == '.') {
                p++;
                if (p >= d->end || *p < '0' || *p > '9')
                        return jfail(d, "invalid number");
                while (p < d->end && *p >= '0' && *p <= '9')
                        p++;
        }
        if (p < d->end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < d->end && (*p == '+' || *p == '-'))
                        p++;
                if (p >= d->end || *p < '0' || *p > '9')
                        return jfail(d, "invalid number");
                while (p < d->end && *p >= '0' && *p <= '9')
                        p++;
        }
        d->p = p;
        *ret = s;
        *ret_len = (size_t) (p - s);
        return 0;
}

/* Skips one JSON value (validating it), for the value of a dynamic wrapper whose type may come
 * after it. */
static int skip_value(struct jdec *d, unsigned depth) {
        skip_ws(d);
        if (depth > CTY_MAX_DEPTH)
                return jfail(d, "value nested too deeply");
        if (d->p >= d->end)
                return jfail(d, "unexpected end of JSON");
        int r;
        switch (*d->p) {
        case '"': {
                char *s = NULL;
                size_t n;
                r = parse_string(d, &s, &n);
                if (s)
                        erase_memory(s, n);
                free(s);
                return r;
        }
        case '[':
                d->p++;
                if (eat(d, ']'))
                        return 0;
                do {
                        if ((r = skip_value(d, depth + 1)) < 0)
                                return r;
                } while (eat(d, ','));
                return eat(d, ']') ? 0 : jfail(d, "expected ',' or ']'");
        case '{':
                d->p++;
                if (eat(d, '}'))
                        return 0;
                do {
                        _cleanup_free_ char *k = NULL;
                        size_t n;
                        skip_ws(d);
                        if ((r = parse_string(d, &k, &n)) < 0)
                                return r;
                        if (!eat(d, ':'))
                                return jfail(d, "expected ':'");
                        if ((r = skip_value(d, depth + 1)) < 0)
                                return r;
                } while (eat(d, ','));
                return eat(d, '}') ? 0 : jfail(d, "expected ',' or '}'");
        default:
                if (eat_word(d, "true") || eat_word(d, "false") || eat_word(d, "null"))
                        return 0;
                const char *t;
                size_t n;
                return parse_number_token(d, &t, &n);
        }
}

static int jdecode(struct jdec *d, cty_type *t, unsigned depth, cty_value **ret);

/* go-cty's convert of a string to number/bool (ctyjson unmarshalPrimitive). */
static int number_from_text(struct jdec *d, const char *s, size_t n, cty_value **ret) {
        int r = cty_number_from_string(s, n, ret);
        if (r == -EINVAL)
                return jfail(d, "a number is required");
        if (r == -ERANGE)
                return jfail(d, "number has too many digits");
        return r;
}

static int jdecode_primitive(struct jdec *d, cty_type *t, cty_value **ret) {
        const char *tok;
        size_t n;
        int r;
        char c = *d->p;
        if (c == '"') {
                _cleanup_free_ char *s = NULL;
                if ((r = parse_string(d, &s, &n)) < 0)
                        return r;
                if (t->kind == CTY_STRING) {
                        *ret = cty_string_newn(s, n);
                        erase_memory(s, n);
                        return *ret ? 0 : -ENOMEM;
                }
                if (t->kind == CTY_NUMBER)
                        return number_from_text(d, s, n, ret);
                /* bool: go-cty's string conversion accepts these spellings. */
                if (streq(s, "true") || streq(s, "1"))
                        *ret = cty_bool_new(true);
                else if (streq(s, "false") || streq(s, "0"))
                        *ret = cty_bool_new(false);
                else
                        return jfail(d, "a bool is required");
                return *ret ? 0 : -ENOMEM;
        }
        bool b = false;
        if ((b = eat_word(d, "true")) || eat_word(d, "false")) {
                if (t->kind == CTY_BOOL)
                        *ret = cty_bool_new(b);
                else if (t->kind == CTY_STRING)
                        *ret = cty_string_new(b ? "true" : "false");
                else
                        return jfail(d, "number is required");
                return *ret ? 0 : -ENOMEM;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
                if ((r = parse_number_token(d, &tok, &n)) < 0)
                        return r;
                if (t->kind == CTY_NUMBER)
                        return number_from_text(d, tok, n, ret);
                if (t->kind == CTY_STRING) {
                        /* The number's text as written (json.Number). */
                        *ret = cty_string_newn(tok, n);
                        return *ret ? 0 : -ENOMEM;
                }
                return jfail(d, "bool is required");
        }
        return jfail(d, t->kind == CTY_STRING ? "string is required" : t->kind == CTY_NUMBER ? "number is required"
                                                                                         : "bool is required");
}

static int jdecode_array(struct jdec *d, cty_type *t, unsigned depth, cty_value **ret) {
        int r;
        if (!eat(d, '['))
                return jfail(d, t->kind == CTY_LIST  ? "need JSON array for list"
                                : t->kind == CTY_SET ? "need JSON array for set"
                                                     : "need JSON array for tuple");
        _cleanup_(cty_value_freep) cty_value *v = cty_collection_new(t);
        if (!v)
                return -ENOMEM;
        if (!eat(d, ']')) {
                do {
                        if (t->kind == CTY_TUPLE && v->c.n >= t->n) {
                                char msg[64];
                                snprintf(msg, sizeof(msg), "too many tuple elements (need %zu)", t->n);
                                return jfail(d, msg);
                        }
                        size_t old = cty_path_push_index(&d->path, v->c.n);
                        cty_value *item;
                        r = jdecode(d, t->kind == CTY_TUPLE ? t->types[v->c.n] : t->elem, depth + 1, &item);
                        if (r < 0)
                                return r;
                        cty_path_pop(&d->path, old);
                        /* Plain append; a set is sorted once below. */
                        if ((r = cty_items_push(v, item)) < 0) {
                                cty_value_free(item);
                                return r;
                        }
                } while (eat(d, ','));
                if (!eat(d, ']'))
                        return jfail(d, "expected ',' or ']'");
        }
        if (t->kind == CTY_TUPLE && v->c.n != t->n) {
                char msg[64];
                snprintf(msg, sizeof(msg), "not enough tuple elements (need %zu)", t->n);
                return jfail(d, msg);
        }
        if (t->kind == CTY_SET && (r = cty_set_normalize(v)) < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

static int jdecode_map(struct jdec *d, cty_type *t, unsigned depth, cty_value **ret) {
        int r;
        if (!eat(d, '{'))
                return jfail(d, "need JSON object for map");
        _cleanup_(cty_value_freep) cty_value *v = cty_collection_new(t);
        if (!v)
                return -ENOMEM;
        if (!eat(d, '}')) {
                do {
                        _cleanup_free_ char *key = NULL;
                        size_t klen;
                        skip_ws(d);
                        if ((r = parse_string(d, &key, &klen)) < 0)
                                return r;
                        size_t old = cty_path_push_key(&d->path, key, klen);
                        if (strlen(key) != klen)
                                return jfail(d, "map key contains NUL");
                        if (!eat(d, ':'))
                                return jfail(d, "expected ':'");
                        cty_value *item;
                        if ((r = jdecode(d, t->elem, depth + 1, &item)) < 0)
                                return r;
                        cty_path_pop(&d->path, old);
                        if ((r = cty_map_append_unsorted(v, key, item)) < 0) {
                                cty_value_free(item);
                                return r;
                        }
                        TAKE_PTR(key);
                } while (eat(d, ','));
                if (!eat(d, '}'))
                        return jfail(d, "expected ',' or '}'");
        }
        const char *dup = NULL;
        r = cty_map_finish(v, &dup);
        if (r == -EEXIST) {
                /* Go keeps the last; a document saying two things about one key is refused. */
                cty_path_push_key(&d->path, dup, strlen(dup));
                return jfail(d, "duplicate map key");
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

static int jdecode_object(struct jdec *d, cty_type *t, unsigned depth, cty_value **ret) {
        int r;
        if (!eat(d, '{'))
                return jfail(d, "need JSON object for object");
        /* Attributes the document leaves out stay null (§6.1). */
        _cleanup_(cty_value_freep) cty_value *v = cty_object_new(t);
        _cleanup_free_ bool *seen = calloc(t->n + 1, sizeof(bool));
        if (!v || !seen)
                return -ENOMEM;
        if (eat(d, '}')) {
                *ret = TAKE_PTR(v);
                return 0;
        }
        do {
                _cleanup_free_ char *key = NULL;
                size_t klen;
                skip_ws(d);
                if ((r = parse_string(d, &key, &klen)) < 0)
                        return r;
                ssize_t idx = strlen(key) == klen ? cty_type_attr_index(t, key) : -1;
                if (idx < 0) {
                        /* go-cty's wording, at the object's path (§6.1: "unsupported attribute"). */
                        char safe[CTY_SAFE_TEXT_SIZE], msg[CTY_SAFE_TEXT_SIZE + 32];
                        cty_safe_text(key, klen, safe);
                        snprintf(msg, sizeof(msg), "unsupported attribute \"%s\"", safe);
                        return jfail(d, msg);
                }
                size_t old = cty_path_push_attr(&d->path, key);
                if (seen[idx])
                        return jfail(d, "duplicate attribute");
                seen[idx] = true;
                if (!eat(d, ':'))
                        return jfail(d, "expected ':'");
                cty_value *item;
                if ((r = jdecode(d, t->types[idx], depth + 1, &item)) < 0)
                        return r;
                cty_path_pop(&d->path, old);
                cty_value_free(v->c.items[idx]);
                v->c.items[idx] = item;
        } while (eat(d, ','));
        if (!eat(d, '}'))
                return jfail(d, "expected ',' or '}'");
        *ret = TAKE_PTR(v);
        return 0;
}

/* {"value": V, "type": T} in either order (go-cty marshalDynamic writes value first). */
static int jdecode_dynamic(struct jdec *d, unsigned depth, cty_value **ret) {
        int r;
        if (!eat(d, '{'))
                return jfail(d, "need JSON object for dynamically-typed value");
        const char *vstart = NULL, *vend = NULL;
        _cleanup_(cty_type_unrefp) cty_type *t = NULL;
        if (!eat(d, '}')) {
                do {
                        _cleanup_free_ char *key = NULL;
                        size_t klen;
                        skip_ws(d);
                        if ((r = parse_string(d, &key, &klen)) < 0)
                                return r;
                        if (!eat(d, ':'))
                                return jfail(d, "expected ':'");
                        skip_ws(d);
                        const char *start = d->p;
                        if ((r = skip_value(d, depth + 1)) < 0)
                                return r;
                        if (streq(key, "type") && strlen(key) == klen && !t) {
                                if (cty_type_from_json(start, (size_t) (d->p - start), &t) < 0)
                                        return jfail(d, "invalid type in dynamically-typed value");
                        } else if (streq(key, "value") && strlen(key) == klen && !vstart) {
                                vstart = start;
                                vend = d->p;
                        } else {
                                char safe[CTY_SAFE_TEXT_SIZE], msg[CTY_SAFE_TEXT_SIZE + 48];
                                cty_safe_text(key, klen, safe);
                                snprintf(msg, sizeof(msg), "invalid key \"%s\" in dynamically-typed value", safe);
                                return jfail(d, msg);
                        }
                } while (eat(d, ','));
                if (!eat(d, '}'))
                        return jfail(d, "expected ',' or '}'");
        }
        if (!t)
                return jfail(d, "missing type in dynamically-typed value");
        if (!vstart)
                return jfail(d, "missing value in dynamically-typed value");
        if (t->kind == CTY_DYNAMIC)
                return jfail(d, "dynamically-typed value cannot have type dynamic");
        const char *p = d->p, *end = d->end;
        d->p = vstart;
        d->end = vend;
        r = jdecode(d, t, depth + 1, ret);
        d->p = p;
        d->end = end;
        return r;
}

static int jdecode(struct jdec *d, cty_type *t, unsigned depth, cty_value **ret) {
        if (depth > CTY_MAX_DEPTH)
                return jfail(d, "value nested too deeply");
        skip_ws(d);
        if (d->p >= d->end)
                return jfail(d, "unexpected end of JSON");
        if (eat_word(d, "null")) {
                *ret = cty_null(t);
                return *ret ? 0 : -ENOMEM;
        }
        switch (t->kind) {
        case CTY_STRING:
        case CTY_NUMBER:
        case CTY_BOOL:
                return jdecode_primitive(d, t, ret);
        case CTY_LIST:
        case CTY_SET:
        case CTY_TUPLE:
                return jdecode_array(d, t, depth, ret);
        case CTY_MAP:
                return jdecode_map(d, t, depth, ret);
        case CTY_OBJECT:
                return jdecode_object(d, t, depth, ret);
        case CTY_DYNAMIC:
                return jdecode_dynamic(d, depth, ret);
        }
        return jfail(d, "unsupported type");
}

int cty_json_decode(const uint8_t *buf, size_t len, cty_type *type, cty_value **ret, char **ret_error) {
        struct jdec d = { .p = (const char *) buf, .end = (const char *) buf + len };
        cty_value *v = NULL;
        int r;

        if (!buf || len == 0)
                r = jfail(&d, "empty JSON document");
        else if (len > CTY_WIRE_MAX)
                r = jfail(&d, "JSON document too large");
        else {
                r = jdecode(&d, type, 0, &v);
                if (r >= 0) {
                        skip_ws(&d);
                        if (d.p != d.end) {
                                cty_value_free(v);
                                v = NULL;
                                d.path.buf[0] = 0;
                                r = jfail(&d, "extra data after the JSON value");
                        }
                }
        }
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(d.error);
                free(d.error);
                return r;
        }
        *ret = v;
        return 0;
}

/* ---- encoding ---- */

struct jbuf {
        char *data;
        size_t len, cap;
        int err;
        cty_path path;
        char *error;
};

static void put(struct jbuf *b, const char *s, size_t n) {
        if (b->err)
                return;
        if (n > CTY_WIRE_MAX || b->len > CTY_WIRE_MAX - n) {
                b->err = -E2BIG;
                return;
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                /* Not realloc: the text may hold secrets, so the old copy is wiped first. */
                char *p = malloc(cap);
                if (!p) {
                        b->err = -ENOMEM;
                        return;
                }
                if (b->data) {
                        memcpy(p, b->data, b->len);
                        erase_memory(b->data, b->len);
                        free(b->data);
                }
                b->data = p;
                b->cap = cap;
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
}

static void puts_(struct jbuf *b, const char *s) {
        put(b, s, strlen(s));
}

static void efail(struct jbuf *b, const char *what) {
        if (b->err)
                return;
        b->err = -EINVAL;
        if (asprintf(&b->error, "%s: %s", b->path.buf[0] ? b->path.buf : "(root)", what) < 0)
                b->error = NULL;
}

/* Go's json.Marshal string form (go-cty ctyjson uses it): HTML-safe escapes for <, >, &, U+2028 and
 * U+2029, \uFFFD for invalid UTF-8. */
static void put_string(struct jbuf *b, const char *s, size_t n) {
        static const char hexd[] = "0123456789abcdef";
        put(b, "\"", 1);
        size_t i = 0, start = 0;
        while (i < n) {
                unsigned char c = (unsigned char) s[i];
                const char *esc = NULL;
                char u[7];
                size_t l = 1;
                if (c == '"')
                        esc = "\\\"";
                else if (c == '\\')
                        esc = "\\\\";
                else if (c == '\n')
                        esc = "\\n";
                else if (c == '\r')
                        esc = "\\r";
                else if (c == '\t')
                        esc = "\\t";
                else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                        snprintf(u, sizeof(u), "\\u00%c%c", hexd[c >> 4], hexd[c & 15]);
                        esc = u;
                } else if (c >= 0x80) {
                        l = cty_utf8_len((const unsigned char *) s + i, n - i);
                        if (l == 0) {
                                esc = "\\ufffd";
                                l = 1;
                        } else if (l == 3 && c == 0xe2 && (unsigned char) s[i + 1] == 0x80 &&
                                   ((unsigned char) s[i + 2] == 0xa8 || (unsigned char) s[i + 2] == 0xa9))
                                esc = (unsigned char) s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
                }
                if (esc) {
                        put(b, s + start, i - start);
                        puts_(b, esc);
                        i += l;
                        start = i;
                } else
                        i += l;
        }
        put(b, s + start, n - start);
        put(b, "\"", 1);
}

static void jencode(struct jbuf *b, const cty_value *v, const cty_type *t, unsigned depth);

static void jencode_known(struct jbuf *b, const cty_value *v, unsigned depth) {
        const cty_type *t = v->type;
        switch (t->kind) {
        case CTY_STRING:
                put_string(b, v->s.str, v->s.len);
                return;
        case CTY_BOOL:
                puts_(b, v->b ? "true" : "false");
                return;
        case CTY_NUMBER: {
                char text[CTY_NUMBER_TEXT_MAX + 1];
                if (cty_number_text(v, text, sizeof(text)) < 0)
                        return efail(b, "number cannot be written as JSON (infinity)");
                puts_(b, text);
                return;
        }
        case CTY_LIST:
        case CTY_SET:
        case CTY_TUPLE:
                if (t->kind == CTY_TUPLE && v->c.n != t->n)
                        return efail(b, "tuple has the wrong number of elements");
                put(b, "[", 1);
                for (size_t i = 0; i < v->c.n; i++) {
                        if (i > 0)
                                put(b, ",", 1);
                        size_t old = cty_path_push_index(&b->path, i);
                        jencode(b, v->c.items[i], t->kind == CTY_TUPLE ? t->types[i] : t->elem, depth + 1);
                        cty_path_pop(&b->path, old);
                }
                put(b, "]", 1);
                return;
        case CTY_MAP:
                put(b, "{", 1);
                for (size_t i = 0; i < v->c.n; i++) {
                        if (i > 0)
                                put(b, ",", 1);
                        put_string(b, v->c.keys[i], strlen(v->c.keys[i]));
                        put(b, ":", 1);
                        size_t old = cty_path_push_key(&b->path, v->c.keys[i], strlen(v->c.keys[i]));
                        jencode(b, v->c.items[i], t->elem, depth + 1);
                        cty_path_pop(&b->path, old);
                }
                put(b, "}", 1);
                return;
        case CTY_OBJECT:
                if (v->c.n != t->n)
                        return efail(b, "object has the wrong number of attributes");
                put(b, "{", 1);
                for (size_t i = 0; i < t->n; i++) {
                        if (i > 0)
                                put(b, ",", 1);
                        put_string(b, t->names[i], strlen(t->names[i]));
                        put(b, ":", 1);
                        size_t old = cty_path_push_attr(&b->path, t->names[i]);
                        jencode(b, v->c.items[i], t->types[i], depth + 1);
                        cty_path_pop(&b->path, old);
                }
                put(b, "}", 1);
                return;
        case CTY_DYNAMIC:
                return efail(b, "known value without a type");
        }
}

static void jencode(struct jbuf *b, const cty_value *v, const cty_type *t, unsigned depth) {
        if (b->err)
                return;
        if (depth > CTY_MAX_DEPTH)
                return efail(b, "value nested too deeply");
        if (!v) {
                puts_(b, "null");
                return;
        }
        /* go-cty marshalDynamic: a concrete value in a dynamic slot carries its type. */
        if (t && t->kind == CTY_DYNAMIC && v->type->kind != CTY_DYNAMIC) {
                _cleanup_free_ char *tj = cty_type_to_json(v->type);
                if (!tj) {
                        b->err = -ENOMEM;
                        return;
                }
                puts_(b, "{\"value\":");
                jencode(b, v, v->type, depth + 1);
                puts_(b, ",\"type\":");
                puts_(b, tj);
                puts_(b, "}");
                return;
        }
        if (v->null) {
                puts_(b, "null");
                return;
        }
        if (v->unknown) /* JSON cannot express unknown values (§6.1); go-cty refuses too */
                return efail(b, "value is not known");
        if (t && !cty_type_equal(t, v->type))
                return efail(b, "value does not have the slot's type");
        jencode_known(b, v, depth);
}

int cty_json_encode_as(const cty_value *v, const cty_type *type, char **ret, char **ret_error) {
        struct jbuf b = {};
        jencode(&b, v, type, 0);
        if (b.err) {
                if (b.data)
                        erase_memory(b.data, b.len);
                free(b.data);
                if (ret_error)
                        *ret_error = TAKE_PTR(b.error);
                free(b.error);
                return b.err;
        }
        *ret = b.data;
        return 0;
}

char *cty_json_encode(const cty_value *v) {
        char *s = NULL;
        if (cty_json_encode_as(v, v ? v->type : NULL, &s, NULL) < 0)
                return NULL;
        return s;
}
