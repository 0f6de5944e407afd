/* SPDX-License-Identifier: Apache-2.0 */
/* Hex and base64 (RFC 4648) codecs for outside input: strict, bounded, negative errno on error. */
#pragma once

#include "basic/macro.h"

/* Value of one hex digit (either case), or -1 (also for percent-decoding URLs). */
int hex_digit_value(int c);
/* Lower-case hex of len bytes; NULL on allocation failure. Caller frees. */
char *hex_encode(const void *data, size_t len);
/* Decodes exactly strlen(hex)/2 bytes; upper and lower case accepted. -EINVAL on an odd length or
 * a non-hex character. On success *ret is malloc'd (never NULL, even for ""). */
int hex_decode(const char *hex, size_t hex_len, uint8_t **ret, size_t *ret_len);
/* Decodes into a fixed buffer: -EINVAL unless hex is exactly 2*len characters of hex. */
int hex_decode_exact(const char *hex, void *out, size_t len);

enum base64_alphabet {
        BASE64_STD,     /* + / with padding */
        BASE64_STD_RAW, /* + / without padding (Go base64.RawStdEncoding) */
        BASE64_URL,     /* - _ with padding */
        BASE64_URL_RAW, /* - _ without padding */
};

char *base64_encode(const void *data, size_t len, enum base64_alphabet alphabet);
/* Accepts padded or unpadded input in the given alphabet; ignores nothing (no whitespace).
 * -EINVAL on any invalid character or impossible length. */
int base64_decode(const char *s, size_t s_len, enum base64_alphabet alphabet, uint8_t **ret,
                  size_t *ret_len);
