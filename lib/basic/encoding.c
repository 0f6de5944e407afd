/* SPDX-License-Identifier: Apache-2.0 */
#include "basic/encoding.h"

#include <stdio.h>

int hex_digit_value(int c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

char *hex_encode(const void *data, size_t len) {
        static const char digits[] = "0123456789abcdef";
        const uint8_t *p = data;
        char *out = malloc(len * 2 + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[len * 2] = 0;
        return out;
}

int hex_decode(const char *hex, size_t hex_len, uint8_t **ret, size_t *ret_len) {
        if (hex_len % 2 != 0)
                return -EINVAL;
        uint8_t *out = malloc(hex_len / 2 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < hex_len / 2; i++) {
                int hi = hex_digit_value(hex[2 * i]), lo = hex_digit_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0) {
                        free(out);
                        return -EINVAL;
                }
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret = out;
        *ret_len = hex_len / 2;
        return 0;
}

int hex_decode_exact(const char *hex, void *out, size_t len) {
        uint8_t *o = out;
        if (!hex || strlen(hex) != len * 2)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int hi = hex_digit_value(hex[2 * i]), lo = hex_digit_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                o[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

static const char *alphabet_chars(enum base64_alphabet a) {
        return (a == BASE64_URL || a == BASE64_URL_RAW)
                       ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                       : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

static bool alphabet_padded(enum base64_alphabet a) {
        return a == BASE64_STD || a == BASE64_URL;
}

char *base64_encode(const void *data, size_t len, enum base64_alphabet alphabet) {
        const char *chars = alphabet_chars(alphabet);
        const uint8_t *p = data;
        if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
                return NULL;
        char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
        if (!out)
                return NULL;
        size_t i = 0;
        for (; len - i >= 3; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
                *o++ = chars[v >> 18 & 63];
                *o++ = chars[v >> 12 & 63];
                *o++ = chars[v >> 6 & 63];
                *o++ = chars[v & 63];
        }
        if (len - i == 1) {
                uint32_t v = (uint32_t) p[i] << 16;
                *o++ = chars[v >> 18 & 63];
                *o++ = chars[v >> 12 & 63];
                if (alphabet_padded(alphabet)) {
                        *o++ = '=';
                        *o++ = '=';
                }
        } else if (len - i == 2) {
                uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8;
                *o++ = chars[v >> 18 & 63];
                *o++ = chars[v >> 12 & 63];
                *o++ = chars[v >> 6 & 63];
                if (alphabet_padded(alphabet))
                        *o++ = '=';
        }
        *o = 0;
        return out;
}

int base64_decode(const char *s, size_t s_len, enum base64_alphabet alphabet, uint8_t **ret,
                  size_t *ret_len) {
        const char *chars = alphabet_chars(alphabet);
        int8_t map[256];
        memset(map, -1, sizeof(map));
        for (int i = 0; i < 64; i++)
                map[(uint8_t) chars[i]] = (int8_t) i;

        /* Strip at most two '=' of padding, only if the length is a multiple of 4. */
        size_t n = s_len;
        if (n % 4 == 0 && n > 0 && s[n - 1] == '=') {
                n--;
                if (s[n - 1] == '=')
                        n--;
        }
        if (n % 4 == 1)
                return -EINVAL;

        uint8_t *out = malloc(n / 4 * 3 + 3), *o = out;
        if (!out)
                return -ENOMEM;
        uint32_t acc = 0;
        unsigned bits = 0;
        for (size_t i = 0; i < n; i++) {
                int8_t v = map[(uint8_t) s[i]];
                if (v < 0) {
                        free(out);
                        return -EINVAL;
                }
                acc = acc << 6 | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        *o++ = (uint8_t) (acc >> bits);
                }
        }
        /* Non-canonical trailing bits (RFC 4648 §3.5) are rejected. */
        if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
                free(out);
                return -EINVAL;
        }
        *ret = out;
        *ret_len = (size_t) (o - out);
        return 0;
}
