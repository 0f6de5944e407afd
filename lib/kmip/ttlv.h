/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP TTLV (Tag-Type-Length-Value) encoding and decoding, OASIS KMIP Specification v1.4 §9.1.
 *
 * Every item is a 3-byte tag (0x42xxxx for KMIP's own tags), a 1-byte type, a 4-byte big-endian
 * length of the value, and the value padded with zeros to a multiple of 8 bytes (§9.1.1.3). A
 * Structure's value is the concatenation of its members.
 *
 * Decoding validates in stages (STYLE.md "Untrusted input"): the fixed 8-byte header and the
 * advertised length against the buffer and TTLV_MAX_MESSAGE first; then every item's header,
 * type, declared length for its type and padding, with overflow-free bounds checks; nesting depth
 * is limited to TTLV_MAX_DEPTH and the item count to TTLV_MAX_ITEMS. The result is a flat,
 * read-only tree whose byte values point into the caller's buffer (which must outlive it). */
#pragma once

#include "basic/macro.h"

#define TTLV_MAX_MESSAGE (1U << 20) /* 1 MiB: our responses are a few hundred bytes */
#define TTLV_MAX_DEPTH 16
#define TTLV_MAX_ITEMS 4096
#define TTLV_HEADER_SIZE 8

/* §9.1.1.2 Item Type */
enum ttlv_type {
        TTLV_STRUCTURE = 0x01,
        TTLV_INTEGER = 0x02,
        TTLV_LONG_INTEGER = 0x03,
        TTLV_BIG_INTEGER = 0x04,
        TTLV_ENUMERATION = 0x05,
        TTLV_BOOLEAN = 0x06,
        TTLV_TEXT_STRING = 0x07,
        TTLV_BYTE_STRING = 0x08,
        TTLV_DATE_TIME = 0x09,
        TTLV_INTERVAL = 0x0A,
};

/* Why a decode failed (tests assert these; fuzzing checks none is a crash). */
enum ttlv_error {
        TTLV_OK = 0,
        TTLV_ERR_TRUNCATED,      /* fewer bytes than a header or a declared length */
        TTLV_ERR_TOO_LARGE,      /* message beyond TTLV_MAX_MESSAGE */
        TTLV_ERR_TRAILING,       /* bytes after the top-level item */
        TTLV_ERR_BAD_TYPE,       /* unknown item type */
        TTLV_ERR_BAD_LENGTH,     /* length not allowed for the type (Integer != 4, ...) */
        TTLV_ERR_BAD_PADDING,    /* non-zero padding bytes */
        TTLV_ERR_BAD_BOOLEAN,    /* Boolean other than 0 or 1 */
        TTLV_ERR_BAD_TAG,        /* tag outside 0x420000-0x42FFFF or 0x540000-0x54FFFF */
        TTLV_ERR_TOO_DEEP,       /* nesting beyond TTLV_MAX_DEPTH */
        TTLV_ERR_TOO_MANY_ITEMS, /* more than TTLV_MAX_ITEMS items */
        TTLV_ERR_STRUCTURE_OVERRUN, /* a member runs past its structure's end */
};
const char *ttlv_error_to_string(enum ttlv_error e);

#define TTLV_NONE ((size_t) -1)

typedef struct ttlv_item {
        uint32_t tag;
        uint8_t type;
        uint32_t len;         /* value length as declared (without padding) */
        const uint8_t *value; /* points into the decoded buffer */
        size_t first_child;   /* Structures: index of the first member, TTLV_NONE if empty */
        size_t next_sibling;  /* next member of the same structure, TTLV_NONE if last */
} ttlv_item;

typedef struct ttlv_tree {
        ttlv_item *items; /* items[0] is the top-level item */
        size_t n_items;
} ttlv_tree;

/* Reads the 8-byte header only: the total message size (header + padded value) it announces.
 * -EBADMSG if the header is not a Structure or the size exceeds TTLV_MAX_MESSAGE. Used by the
 * transport to know how much to read before anything is allocated. */
int ttlv_peek_message_size(const uint8_t header[TTLV_HEADER_SIZE], size_t *ret_size);

/* Decodes exactly one top-level item that spans all of buf. -EBADMSG on malformed input with
 * *ret_error (if non-NULL) saying why, -ENOMEM on allocation failure. */
int ttlv_decode(const uint8_t *buf, size_t len, ttlv_tree **ret, enum ttlv_error *ret_error);
void ttlv_tree_free(ttlv_tree *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(ttlv_tree *, ttlv_tree_free);

/* Lookups. Each returns TTLV_NONE when there is no such member or it has another type. */
size_t ttlv_child(const ttlv_tree *t, size_t parent, uint32_t tag);
size_t ttlv_child_typed(const ttlv_tree *t, size_t parent, uint32_t tag, uint8_t type);
/* Next member with the same tag after `after` (for repeated members such as Batch Item). */
size_t ttlv_next_same(const ttlv_tree *t, size_t after);
/* Value accessors: -EBADMSG if the member is missing or of another type. */
int ttlv_get_enum(const ttlv_tree *t, size_t parent, uint32_t tag, uint32_t *ret);
int ttlv_get_int(const ttlv_tree *t, size_t parent, uint32_t tag, int32_t *ret);
int ttlv_get_bytes(const ttlv_tree *t, size_t parent, uint32_t tag, const uint8_t **ret, size_t *ret_len);
/* Text String members are not NUL-terminated on the wire; this returns a pointer and length. */
int ttlv_get_text(const ttlv_tree *t, size_t parent, uint32_t tag, const char **ret, size_t *ret_len);

/* Encoder: a growing buffer with a hard maximum (TTLV_MAX_MESSAGE). Structures are opened and
 * closed; their lengths are patched on close. The buffer may hold secrets (Data of an Encrypt
 * request), so it is wiped when freed. Errors are sticky: check ttlv_enc_finish() once. */
typedef struct ttlv_enc {
        uint8_t *buf;
        size_t len, cap;
        size_t open[TTLV_MAX_DEPTH]; /* offsets of open structures' headers */
        size_t depth;
        int error; /* first error, negative errno */
} ttlv_enc;

void ttlv_enc_init(ttlv_enc *e);
void ttlv_enc_done(ttlv_enc *e); /* wipes and frees */
void ttlv_enc_begin(ttlv_enc *e, uint32_t tag);
void ttlv_enc_end(ttlv_enc *e);
void ttlv_enc_int(ttlv_enc *e, uint32_t tag, int32_t v);
void ttlv_enc_long(ttlv_enc *e, uint32_t tag, int64_t v);
void ttlv_enc_enum(ttlv_enc *e, uint32_t tag, uint32_t v);
void ttlv_enc_bool(ttlv_enc *e, uint32_t tag, bool v);
void ttlv_enc_text(ttlv_enc *e, uint32_t tag, const char *s, size_t len);
void ttlv_enc_bytes(ttlv_enc *e, uint32_t tag, const void *data, size_t len);
void ttlv_enc_datetime(ttlv_enc *e, uint32_t tag, int64_t unix_seconds);
/* 0 and the encoded message if all structures were closed and nothing failed. */
int ttlv_enc_finish(ttlv_enc *e, const uint8_t **ret, size_t *ret_len);

/* Debug rendering for tests and the fuzz target (exercises every accessor); never logs values of
 * Byte Strings (they may be key material): prints their length only. Caller frees. */
char *ttlv_dump(const ttlv_tree *t);
