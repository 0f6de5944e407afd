/* SPDX-License-Identifier: Apache-2.0 */
/* Exact cty numbers. go-cty keeps numbers as 512-bit big.Float and writes them to msgpack as an int
 * if integral and in int64, else a float64 if exactly representable, else the decimal text
 * Text('f', -1) (go-cty msgpack/marshal.go; terraform-plugin-protocol.md §6.2). We keep each
 * number in exactly that canonical form, so equal numbers have equal forms and re-encoding writes
 * the bytes go-cty would. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "cty-internal.h"

/* Exponents beyond this are refused before any arithmetic; far outside both double range and
 * CTY_NUMBER_TEXT_MAX, so nothing representable is lost. */
#define EXP_LIMIT 100000L

int cty_decimal_parse(const char *s, size_t len, cty_decimal *ret) {
        size_t i = 0;
        long adjust = 0;
        bool dot = false, any = false;

        if (!s)
                return -EINVAL;
        ret->neg = false;
        ret->n = 0;
        if (i < len && (s[i] == '-' || s[i] == '+'))
                ret->neg = s[i++] == '-';
        for (; i < len; i++) {
                char c = s[i];
                if (c == '.') {
                        if (dot)
                                return -EINVAL;
                        dot = true;
                        continue;
                }
                if (c < '0' || c > '9')
                        break;
                any = true;
                if (ret->n == 0 && c == '0') {
                        /* Leading zero: only its position after the point matters. */
                        if (dot)
                                adjust--;
                        continue;
                }
                if (ret->n >= CTY_NUMBER_TEXT_MAX) {
                        /* More significant digits than we keep: only zeros before the point may
                         * still follow harmlessly, and even those make the text too long. */
                        return -ERANGE;
                }
                ret->digits[ret->n++] = c;
                if (dot)
                        adjust--;
        }
        if (!any)
                return -EINVAL;
        long e = 0;
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                bool eneg = false, edigit = false;
                i++;
                if (i < len && (s[i] == '-' || s[i] == '+'))
                        eneg = s[i++] == '-';
                for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                        edigit = true;
                        if (e <= EXP_LIMIT)
                                e = e * 10 + (s[i] - '0');
                }
                if (!edigit)
                        return -EINVAL;
                if (e > EXP_LIMIT)
                        return -ERANGE;
                if (eneg)
                        e = -e;
        }
        if (i != len)
                return -EINVAL;
        /* Strip trailing zeros into the exponent so each value has one representation. */
        while (ret->n > 0 && ret->digits[ret->n - 1] == '0') {
                ret->n--;
                adjust++;
        }
        ret->digits[ret->n] = 0;
        if (ret->n == 0) {
                ret->neg = false; /* -0 is 0: go-cty's Int64() of -0 is exact 0 */
                ret->exp = 0;
                return 0;
        }
        ret->exp = adjust + e;
        return 0;
}

/* Text('f', -1) of the decimal: no exponent, no trailing zeros after the point. */
static int decimal_format_f(const cty_decimal *d, char *buf, size_t size) {
        size_t need, pos = 0;
        if (d->n == 0) {
                if (size < 2)
                        return -ERANGE;
                memcpy(buf, "0", 2);
                return 0;
        }
        if (d->exp >= 0)
                need = d->n + (size_t) d->exp;
        else if ((long) d->n > -d->exp)
                need = d->n + 1;
        else
                need = 2 + (size_t) (-d->exp);
        need += d->neg ? 1 : 0;
        if (need > CTY_NUMBER_TEXT_MAX || need >= size)
                return -ERANGE;
        if (d->neg)
                buf[pos++] = '-';
        if (d->exp >= 0) {
                memcpy(buf + pos, d->digits, d->n);
                pos += d->n;
                memset(buf + pos, '0', (size_t) d->exp);
                pos += (size_t) d->exp;
        } else if ((long) d->n > -d->exp) {
                size_t ip = d->n - (size_t) (-d->exp);
                memcpy(buf + pos, d->digits, ip);
                pos += ip;
                buf[pos++] = '.';
                memcpy(buf + pos, d->digits + ip, d->n - ip);
                pos += d->n - ip;
        } else {
                size_t zeros = (size_t) (-d->exp) - d->n;
                buf[pos++] = '0';
                buf[pos++] = '.';
                memset(buf + pos, '0', zeros);
                pos += zeros;
                memcpy(buf + pos, d->digits, d->n);
                pos += d->n;
        }
        buf[pos] = 0;
        return 0;
}

static bool decimal_equal(const cty_decimal *a, const cty_decimal *b) {
        return a->neg == b->neg && a->n == b->n && a->exp == b->exp && memcmp(a->digits, b->digits, a->n) == 0;
}

/* The exact decimal value of a finite double. A double's exact expansion has at most 767
 * significant digits; glibc prints exact digits, so %.770e loses nothing. */
static int decimal_from_double(double f, cty_decimal *ret) {
        /* Fast path, exact as well: f = m * 2^e with m odd. For 0 <= e and m * 2^e < 2^128 the
         * value is that integer; for -27 <= e < 0 it is (m * 5^-e) * 10^e, and m * 5^27 < 2^116. */
        int e2;
        double fr = frexp(fabs(f), &e2);
        uint64_t m = (uint64_t) ldexp(fr, 53);
        e2 -= 53;
        while (m != 0 && (m & 1) == 0) {
                m >>= 1;
                e2++;
        }
        if (m == 0 || (e2 >= 0 && e2 <= 64) || (e2 < 0 && e2 >= -27)) {
                unsigned __int128 x = m;
                long exp10 = 0;
                if (e2 >= 0)
                        x <<= e2;
                else
                        for (int i = 0; i < -e2; i++, exp10--)
                                x *= 5;
                char digits[48], buf[80];
                size_t n = sizeof(digits);
                digits[--n] = 0;
                do {
                        digits[--n] = (char) ('0' + (int) (x % 10));
                        x /= 10;
                } while (x != 0);
                int k = snprintf(buf, sizeof(buf), "%s%se%ld", signbit(f) ? "-" : "", digits + n, exp10);
                return cty_decimal_parse(buf, (size_t) k, ret);
        }
        char buf[800];
        int k = snprintf(buf, sizeof(buf), "%.770e", f);
        if (k < 0 || (size_t) k >= sizeof(buf))
                return -ERANGE;
        return cty_decimal_parse(buf, (size_t) k, ret);
}

static int decimal_from_number(const cty_value *v, cty_decimal *ret) {
        char buf[32];
        switch (v->num.form) {
        case CTY_NUM_INT:
                snprintf(buf, sizeof(buf), "%" PRId64, v->num.i);
                return cty_decimal_parse(buf, strlen(buf), ret);
        case CTY_NUM_FLOAT:
                if (!isfinite(v->num.f))
                        return -ERANGE;
                return decimal_from_double(v->num.f, ret);
        case CTY_NUM_STRING:
                return v->num.text ? cty_decimal_parse(v->num.text, strlen(v->num.text), ret) : -EINVAL;
        }
        return -EINVAL;
}

int cty_decimal_to_value(const cty_decimal *d, cty_value **ret) {
        cty_value *v;

        if (d->n == 0) {
                v = cty_number_int(0);
                goto done;
        }
        if (d->exp >= 0 && d->n + (size_t) d->exp <= 19) {
                /* At most 19 digits: fits uint64 without overflow (10^19 - 1 < 2^64). */
                uint64_t u = 0;
                for (size_t i = 0; i < d->n; i++)
                        u = u * 10 + (uint64_t) (d->digits[i] - '0');
                for (long i = 0; i < d->exp; i++)
                        u *= 10;
                if (!d->neg && u <= (uint64_t) INT64_MAX) {
                        v = cty_number_int((int64_t) u);
                        goto done;
                }
                if (d->neg && u <= (uint64_t) INT64_MAX + 1) {
                        v = cty_number_int(u == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) u);
                        goto done;
                }
        }

        char etext[CTY_NUMBER_TEXT_MAX + 32];
        snprintf(etext, sizeof(etext), "%s%se%ld", d->neg ? "-" : "", d->digits, d->exp);
        double f = strtod(etext, NULL);
        /* A fraction digits*10^exp (exp < 0, last digit non-zero) is a binary fraction only if
         * digits is a multiple of 5^-exp, so its last digit is 5: skips the costly exact expansion
         * for the usual decimal strings such as "0.1". */
        bool maybe_exact = d->exp >= 0 || d->digits[d->n - 1] == '5';
        if (maybe_exact && isfinite(f) && f != 0) {
                cty_decimal exact;
                if (decimal_from_double(f, &exact) >= 0 && decimal_equal(&exact, d)) {
                        v = cty_number_float(f);
                        goto done;
                }
        }

        char text[CTY_NUMBER_TEXT_MAX + 1];
        int r = decimal_format_f(d, text, sizeof(text));
        if (r < 0)
                return r;
        v = cty_number_int(0);
        if (!v)
                return -ENOMEM;
        v->num.form = CTY_NUM_STRING;
        v->num.f = f;
        v->num.text = strdup(text);
        if (!v->num.text) {
                cty_value_free(v);
                return -ENOMEM;
        }
done:
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

int cty_number_from_string(const char *text, size_t len, cty_value **ret) {
        cty_decimal d;
        int r = cty_decimal_parse(text, len, &d);
        if (r < 0)
                return r;
        return cty_decimal_to_value(&d, ret);
}

int cty_number_text(const cty_value *v, char *buf, size_t size) {
        cty_decimal d;
        int r;
        switch (v->num.form) {
        case CTY_NUM_INT:
        case CTY_NUM_STRING:
                r = decimal_from_number(v, &d);
                break;
        case CTY_NUM_FLOAT:
                /* The double's exact value. go-cty writes a float64-born number (53-bit big.Float)
                 * as its shortest round-trip text instead, which reads back as a different,
                 * decimal number; the exact text keeps JSON round trips lossless and is the same
                 * text for the short decimals (1.5, 0.25) HCL literals produce. */
                if (!isfinite(v->num.f))
                        return -ERANGE;
                r = decimal_from_double(v->num.f, &d);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        return decimal_format_f(&d, buf, size);
}

int cty_value_get_number_text(const cty_value *v, char **ret) {
        char buf[CTY_NUMBER_TEXT_MAX + 1];
        if (!v || v->null || v->unknown || v->type->kind != CTY_NUMBER)
                return -EINVAL;
        int r = cty_number_text(v, buf, sizeof(buf));
        if (r < 0)
                return r;
        char *s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int decimal_cmp(const cty_decimal *a, const cty_decimal *b) {
        int sa = a->n == 0 ? 0 : a->neg ? -1 : 1;
        int sb = b->n == 0 ? 0 : b->neg ? -1 : 1;
        if (sa != sb)
                return sa < sb ? -1 : 1;
        if (sa == 0)
                return 0;
        /* Same sign: compare magnitudes by the leading digit's position, then digit by digit. */
        long la = (long) a->n + a->exp, lb = (long) b->n + b->exp;
        int mag;
        if (la != lb)
                mag = la < lb ? -1 : 1;
        else {
                size_t m = a->n < b->n ? a->n : b->n;
                int c = memcmp(a->digits, b->digits, m);
                mag = c != 0 ? (c < 0 ? -1 : 1) : a->n == b->n ? 0 : a->n < b->n ? -1 : 1;
        }
        return sa * mag;
}

int cty_number_cmp(const cty_value *a, const cty_value *b) {
        if (a->num.form == CTY_NUM_INT && b->num.form == CTY_NUM_INT)
                return a->num.i < b->num.i ? -1 : a->num.i > b->num.i;
        /* Doubles, and ints within 2^53, compare exactly as doubles. */
        if (a->num.form != CTY_NUM_STRING && b->num.form != CTY_NUM_STRING &&
            (a->num.form == CTY_NUM_FLOAT || (a->num.i > -(INT64_C(1) << 53) && a->num.i < (INT64_C(1) << 53))) &&
            (b->num.form == CTY_NUM_FLOAT || (b->num.i > -(INT64_C(1) << 53) && b->num.i < (INT64_C(1) << 53)))) {
                double fa = a->num.form == CTY_NUM_FLOAT ? a->num.f : (double) a->num.i;
                double fb = b->num.form == CTY_NUM_FLOAT ? b->num.f : (double) b->num.i;
                return fa < fb ? -1 : fa > fb;
        }
        bool ainf = a->num.form == CTY_NUM_FLOAT && isinf(a->num.f);
        bool binf = b->num.form == CTY_NUM_FLOAT && isinf(b->num.f);
        if (ainf || binf) {
                double fa = ainf ? a->num.f : 0, fb = binf ? b->num.f : 0;
                return fa < fb ? -1 : fa > fb;
        }
        cty_decimal da, db;
        if (decimal_from_number(a, &da) < 0 || decimal_from_number(b, &db) < 0)
                return 0;
        return decimal_cmp(&da, &db);
}
