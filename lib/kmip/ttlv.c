/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP TTLV codec (OASIS KMIP Specification v1.4 §9.1). See ttlv.h for the validation stages. */
#include "kmip/ttlv.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/secret.h"

const char *ttlv_error_to_string(enum ttlv_error e) {
        switch (e) {
        case TTLV_OK:
                return "ok";
        case TTLV_ERR_TRUNCATED:
                return "truncated";
        case TTLV_ERR_TOO_LARGE:
                return "message too large";
        case TTLV_ERR_TRAILING:
                return "trailing bytes after the message";
        case TTLV_ERR_BAD_TYPE:
                return "unknown item type";
        case TTLV_ERR_BAD_LENGTH:
                return "length not allowed for the item type";
        case TTLV_ERR_BAD_PADDING:
                return "non-zero padding";
        case TTLV_ERR_BAD_BOOLEAN:
                return "boolean other than 0 or 1";
        case TTLV_ERR_BAD_TAG:
                return "tag outside the KMIP ranges";
        case TTLV_ERR_TOO_DEEP:
                return "nesting too deep";
        case TTLV_ERR_TOO_MANY_ITEMS:
                return "too many items";
        case TTLV_ERR_STRUCTURE_OVERRUN:
                return "member runs past its structure";
        }
        return "unknown";
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p) {
        return (uint64_t) be32(p) << 32 | be32(p + 4);
}

/* Padded size of a value of len bytes: the next multiple of 8 (§9.1.1.3). len <= UINT32_MAX, so
 * this cannot overflow a size_t. */
static size_t padded(uint32_t len) {
        return ((size_t) len + 7) & ~(size_t) 7;
}

static bool tag_ok(uint32_t tag) {
        return (tag >> 16) == 0x42 || (tag >> 16) == 0x54;
}

int ttlv_peek_message_size(const uint8_t header[TTLV_HEADER_SIZE], size_t *ret_size) {
        if (header[3] != TTLV_STRUCTURE)
                return -EBADMSG;
        uint32_t len = be32(header + 4);
        if (len % 8 != 0 || len > TTLV_MAX_MESSAGE - TTLV_HEADER_SIZE)
                return -EBADMSG;
        *ret_size = TTLV_HEADER_SIZE + (size_t) len;
        return 0;
}

/* Length rules per type (§9.1.1.4). */
static enum ttlv_error check_length(uint8_t type, uint32_t len) {
        switch (type) {
        case TTLV_INTEGER:
        case TTLV_ENUMERATION:
        case TTLV_INTERVAL:
                return len == 4 ? TTLV_OK : TTLV_ERR_BAD_LENGTH;
        case TTLV_LONG_INTEGER:
        case TTLV_BOOLEAN:
        case TTLV_DATE_TIME:
                return len == 8 ? TTLV_OK : TTLV_ERR_BAD_LENGTH;
        case TTLV_BIG_INTEGER:
                return len % 8 == 0 ? TTLV_OK : TTLV_ERR_BAD_LENGTH;
        case TTLV_STRUCTURE:
                return len % 8 == 0 ? TTLV_OK : TTLV_ERR_BAD_LENGTH;
        case TTLV_TEXT_STRING:
        case TTLV_BYTE_STRING:
                return TTLV_OK;
        default:
                return TTLV_ERR_BAD_TYPE;
        }
}

struct decoder {
        const uint8_t *buf;
        ttlv_item *items;
        size_t n, cap;
        enum ttlv_error error;
};

static int fail(struct decoder *d, enum ttlv_error e) {
        if (d->error == TTLV_OK)
                d->error = e;
        return -EBADMSG;
}

static int push_item(struct decoder *d, size_t *ret_index) {
        if (d->n >= TTLV_MAX_ITEMS)
                return fail(d, TTLV_ERR_TOO_MANY_ITEMS);
        if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 32;
                if (cap > TTLV_MAX_ITEMS)
                        cap = TTLV_MAX_ITEMS;
                ttlv_item *n = reallocarray(d->items, cap, sizeof(*n));
                if (!n)
                        return -ENOMEM;
                d->items = n;
                d->cap = cap;
        }
        *ret_index = d->n++;
        return 0;
}

/* Decodes the items in buf[off, end) as members of `parent` (TTLV_NONE for the top level, where
 * exactly one item is allowed). The offset advances only after an item validated completely. */
static int decode_items(struct decoder *d, size_t off, size_t end, size_t parent, unsigned depth) {
        size_t prev = TTLV_NONE;
        while (off < end) {
                if (depth > TTLV_MAX_DEPTH)
                        return fail(d, TTLV_ERR_TOO_DEEP);
                /* Stage 1: the fixed header. */
                if (!bounds_ok(end, off, TTLV_HEADER_SIZE))
                        return fail(d, parent == TTLV_NONE ? TTLV_ERR_TRUNCATED : TTLV_ERR_STRUCTURE_OVERRUN);
                const uint8_t *h = d->buf + off;
                uint32_t tag = (uint32_t) h[0] << 16 | (uint32_t) h[1] << 8 | h[2];
                uint8_t type = h[3];
                uint32_t len = be32(h + 4);
                if (!tag_ok(tag))
                        return fail(d, TTLV_ERR_BAD_TAG);
                enum ttlv_error le = check_length(type, len);
                if (le != TTLV_OK)
                        return fail(d, le);
                /* Stage 2: the padded value lies within the enclosing structure. */
                size_t vlen = padded(len);
                size_t voff = off + TTLV_HEADER_SIZE;
                if (!bounds_ok(end, voff, vlen))
                        return fail(d, parent == TTLV_NONE ? TTLV_ERR_TRUNCATED : TTLV_ERR_STRUCTURE_OVERRUN);
                for (size_t i = len; i < vlen; i++)
                        if (d->buf[voff + i] != 0)
                                return fail(d, TTLV_ERR_BAD_PADDING);
                if (type == TTLV_BOOLEAN && be64(d->buf + voff) > 1)
                        return fail(d, TTLV_ERR_BAD_BOOLEAN);

                size_t idx;
                int r = push_item(d, &idx);
                if (r < 0)
                        return r;
                d->items[idx] = (ttlv_item) {
                        .tag = tag,
                        .type = type,
                        .len = len,
                        .value = d->buf + voff,
                        .first_child = TTLV_NONE,
                        .next_sibling = TTLV_NONE,
                };
                if (prev != TTLV_NONE)
                        d->items[prev].next_sibling = idx;
                else if (parent != TTLV_NONE)
                        d->items[parent].first_child = idx;
                prev = idx;

                /* Stage 3: members of a structure. */
                if (type == TTLV_STRUCTURE) {
                        r = decode_items(d, voff, voff + vlen, idx, depth + 1);
                        if (r < 0)
                                return r;
                }
                off = voff + vlen;
                if (parent == TTLV_NONE && off != end)
                        return fail(d, TTLV_ERR_TRAILING);
        }
        return 0;
}

int ttlv_decode(const uint8_t *buf, size_t len, ttlv_tree **ret, enum ttlv_error *ret_error) {
        struct decoder d = { .buf = buf };
        if (len > TTLV_MAX_MESSAGE) {
                fail(&d, TTLV_ERR_TOO_LARGE);
                goto bad;
        }
        if (len < TTLV_HEADER_SIZE) {
                fail(&d, TTLV_ERR_TRUNCATED);
                goto bad;
        }
        int r = decode_items(&d, 0, len, TTLV_NONE, 1);
        if (r == -ENOMEM) {
                free(d.items);
                return r;
        }
        if (r < 0)
                goto bad;
        ttlv_tree *t = calloc(1, sizeof(*t));
        if (!t) {
                free(d.items);
                return -ENOMEM;
        }
        t->items = d.items;
        t->n_items = d.n;
        if (ret_error)
                *ret_error = TTLV_OK;
        *ret = t;
        return 0;
bad:
        free(d.items);
        if (ret_error)
                *ret_error = d.error;
        return -EBADMSG;
}

void ttlv_tree_free(ttlv_tree *t) {
        if (!t)
                return;
        free(t->items);
        free(t);
}

size_t ttlv_child(const ttlv_tree *t, size_t parent, uint32_t tag) {
        if (parent >= t->n_items || t->items[parent].type != TTLV_STRUCTURE)
                return TTLV_NONE;
        for (size_t i = t->items[parent].first_child; i != TTLV_NONE; i = t->items[i].next_sibling)
                if (t->items[i].tag == tag)
                        return i;
        return TTLV_NONE;
}

size_t ttlv_child_typed(const ttlv_tree *t, size_t parent, uint32_t tag, uint8_t type) {
        size_t i = ttlv_child(t, parent, tag);
        return i != TTLV_NONE && t->items[i].type == type ? i : TTLV_NONE;
}

size_t ttlv_next_same(const ttlv_tree *t, size_t after) {
        if (after >= t->n_items)
                return TTLV_NONE;
        uint32_t tag = t->items[after].tag;
        for (size_t i = t->items[after].next_sibling; i != TTLV_NONE; i = t->items[i].next_sibling)
                if (t->items[i].tag == tag)
                        return i;
        return TTLV_NONE;
}

int ttlv_get_enum(const ttlv_tree *t, size_t parent, uint32_t tag, uint32_t *ret) {
        size_t i = ttlv_child_typed(t, parent, tag, TTLV_ENUMERATION);
        if (i == TTLV_NONE)
                return -EBADMSG;
        *ret = be32(t->items[i].value);
        return 0;
}

int ttlv_get_int(const ttlv_tree *t, size_t parent, uint32_t tag, int32_t *ret) {
        size_t i = ttlv_child_typed(t, parent, tag, TTLV_INTEGER);
        if (i == TTLV_NONE)
                return -EBADMSG;
        *ret = (int32_t) be32(t->items[i].value);
        return 0;
}

int ttlv_get_bytes(const ttlv_tree *t, size_t parent, uint32_t tag, const uint8_t **ret, size_t *ret_len) {
        size_t i = ttlv_child_typed(t, parent, tag, TTLV_BYTE_STRING);
        if (i == TTLV_NONE)
                return -EBADMSG;
        *ret = t->items[i].value;
        *ret_len = t->items[i].len;
        return 0;
}

int ttlv_get_text(const ttlv_tree *t, size_t parent, uint32_t tag, const char **ret, size_t *ret_len) {
        size_t i = ttlv_child_typed(t, parent, tag, TTLV_TEXT_STRING);
        if (i == TTLV_NONE)
                return -EBADMSG;
        *ret = (const char *) t->items[i].value;
        *ret_len = t->items[i].len;
        return 0;
}

/* ---- encoder ---- */

void ttlv_enc_init(ttlv_enc *e) {
        *e = (ttlv_enc) { 0 };
}

void ttlv_enc_done(ttlv_enc *e) {
        if (e->buf) {
                erase_memory(e->buf, e->cap);
                free(e->buf);
        }
        *e = (ttlv_enc) { 0 };
}

static uint8_t *enc_reserve(ttlv_enc *e, size_t need) {
        if (e->error < 0)
                return NULL;
        if (need > TTLV_MAX_MESSAGE || e->len > TTLV_MAX_MESSAGE - need) {
                e->error = -E2BIG;
                return NULL;
        }
        if (e->cap - e->len < need) {
                size_t cap = e->cap ? e->cap : 256;
                while (cap - e->len < need)
                        cap *= 2;
                /* Not realloc: the old buffer may hold a secret and must be wiped. */
                uint8_t *n = malloc(cap);
                if (!n) {
                        e->error = -ENOMEM;
                        return NULL;
                }
                if (e->buf) {
                        memcpy(n, e->buf, e->len);
                        erase_memory(e->buf, e->cap);
                        free(e->buf);
                }
                e->buf = n;
                e->cap = cap;
        }
        uint8_t *p = e->buf + e->len;
        e->len += need;
        return p;
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = v >> 24;
        p[1] = v >> 16;
        p[2] = v >> 8;
        p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v) {
        put_be32(p, v >> 32);
        put_be32(p + 4, (uint32_t) v);
}

static uint8_t *enc_item(ttlv_enc *e, uint32_t tag, uint8_t type, size_t len) {
        if (len > UINT32_MAX) {
                if (e->error == 0)
                        e->error = -E2BIG;
                return NULL;
        }
        size_t vlen = padded((uint32_t) len);
        if (vlen > SIZE_MAX - TTLV_HEADER_SIZE) {
                e->error = -E2BIG;
                return NULL;
        }
        uint8_t *p = enc_reserve(e, TTLV_HEADER_SIZE + vlen);
        if (!p)
                return NULL;
        p[0] = tag >> 16;
        p[1] = tag >> 8;
        p[2] = tag;
        p[3] = type;
        put_be32(p + 4, (uint32_t) len);
        memset(p + TTLV_HEADER_SIZE, 0, vlen);
        return p + TTLV_HEADER_SIZE;
}

void ttlv_enc_begin(ttlv_enc *e, uint32_t tag) {
        if (e->error < 0)
                return;
        if (e->depth >= TTLV_MAX_DEPTH) {
                e->error = -E2BIG;
                return;
        }
        size_t at = e->len;
        if (!enc_item(e, tag, TTLV_STRUCTURE, 0))
                return;
        e->open[e->depth++] = at;
}

void ttlv_enc_end(ttlv_enc *e) {
        if (e->error < 0)
                return;
        if (e->depth == 0) {
                e->error = -EINVAL;
                return;
        }
        size_t at = e->open[--e->depth];
        size_t len = e->len - at - TTLV_HEADER_SIZE;
        put_be32(e->buf + at + 4, (uint32_t) len);
}

void ttlv_enc_int(ttlv_enc *e, uint32_t tag, int32_t v) {
        uint8_t *p = enc_item(e, tag, TTLV_INTEGER, 4);
        if (p)
                put_be32(p, (uint32_t) v);
}

void ttlv_enc_long(ttlv_enc *e, uint32_t tag, int64_t v) {
        uint8_t *p = enc_item(e, tag, TTLV_LONG_INTEGER, 8);
        if (p)
                put_be64(p, (uint64_t) v);
}

void ttlv_enc_enum(ttlv_enc *e, uint32_t tag, uint32_t v) {
        uint8_t *p = enc_item(e, tag, TTLV_ENUMERATION, 4);
        if (p)
                put_be32(p, v);
}

void ttlv_enc_bool(ttlv_enc *e, uint32_t tag, bool v) {
        uint8_t *p = enc_item(e, tag, TTLV_BOOLEAN, 8);
        if (p)
                put_be64(p, v ? 1 : 0);
}

void ttlv_enc_text(ttlv_enc *e, uint32_t tag, const char *s, size_t len) {
        uint8_t *p = enc_item(e, tag, TTLV_TEXT_STRING, len);
        if (p && len > 0)
                memcpy(p, s, len);
}

void ttlv_enc_bytes(ttlv_enc *e, uint32_t tag, const void *data, size_t len) {
        uint8_t *p = enc_item(e, tag, TTLV_BYTE_STRING, len);
        if (p && len > 0)
                memcpy(p, data, len);
}

void ttlv_enc_datetime(ttlv_enc *e, uint32_t tag, int64_t unix_seconds) {
        uint8_t *p = enc_item(e, tag, TTLV_DATE_TIME, 8);
        if (p)
                put_be64(p, (uint64_t) unix_seconds);
}

int ttlv_enc_finish(ttlv_enc *e, const uint8_t **ret, size_t *ret_len) {
        if (e->error < 0)
                return e->error;
        if (e->depth != 0 || e->len == 0)
                return -EINVAL;
        *ret = e->buf;
        *ret_len = e->len;
        return 0;
}

/* ---- dump ---- */

struct strbuf {
        char *s;
        size_t len, cap;
        bool failed;
};

_printf_(2, 3) static void sb_printf(struct strbuf *b, const char *fmt, ...) {
        if (b->failed)
                return;
        for (;;) {
                va_list ap;
                va_start(ap, fmt);
                size_t room = b->cap - b->len;
                int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        b->failed = true;
                        return;
                }
                if ((size_t) n < room) {
                        b->len += (size_t) n;
                        return;
                }
                size_t cap = MAX(b->cap * 2, b->len + (size_t) n + 64);
                char *s = realloc(b->s, cap);
                if (!s) {
                        b->failed = true;
                        return;
                }
                b->s = s;
                b->cap = cap;
        }
}

static void dump_item(const ttlv_tree *t, size_t i, unsigned depth, struct strbuf *b) {
        const ttlv_item *it = &t->items[i];
        sb_printf(b, "%*s%06" PRIx32 " ", (int) depth * 2, "", it->tag);
        switch (it->type) {
        case TTLV_STRUCTURE:
                sb_printf(b, "{\n");
                for (size_t c = it->first_child; c != TTLV_NONE; c = t->items[c].next_sibling)
                        dump_item(t, c, depth + 1, b);
                sb_printf(b, "%*s}\n", (int) depth * 2, "");
                return;
        case TTLV_INTEGER:
        case TTLV_INTERVAL:
                sb_printf(b, "int %" PRId32 "\n", (int32_t) be32(it->value));
                return;
        case TTLV_ENUMERATION:
                sb_printf(b, "enum 0x%" PRIx32 "\n", be32(it->value));
                return;
        case TTLV_LONG_INTEGER:
        case TTLV_DATE_TIME:
                sb_printf(b, "long %" PRId64 "\n", (int64_t) be64(it->value));
                return;
        case TTLV_BOOLEAN:
                sb_printf(b, "bool %s\n", be64(it->value) ? "true" : "false");
                return;
        case TTLV_TEXT_STRING:
                sb_printf(b, "text (%" PRIu32 " bytes)\n", it->len);
                return;
        case TTLV_BYTE_STRING:
        case TTLV_BIG_INTEGER:
                sb_printf(b, "bytes (%" PRIu32 " bytes)\n", it->len);
                return;
        default:
                sb_printf(b, "?\n");
        }
}

char *ttlv_dump(const ttlv_tree *t) {
        struct strbuf b = { 0 };
        if (t->n_items > 0)
                dump_item(t, 0, 0, &b);
        else
                sb_printf(&b, "(empty)\n");
        if (b.failed) {
                free(b.s);
                return NULL;
        }
        return b.s;
}
