/* SPDX-License-Identifier: Apache-2.0 */
/* pow, log2, nan and nanf for the static provider, so that it does not load libm.so.6 at all.
 *
 * These four are the only libm functions the static link needs (gRPC's chttp2 flow control:
 * pow(2, x) and log2(bdp) for its window heuristics; abseil: log2 for sampling, nan/nanf when
 * parsing "nan(...)"); everything else it uses is in libc. Loading libm.so.6 for them cost about
 * 0.5 MB of each provider process's RSS (its ifunc resolvers and symbol tables, mapped in 64 KB
 * fault-around windows) for a few calls per plan (README, Benchmarks). Linked into the static
 * provider only (provider/CMakeLists.txt): defined in the executable, they satisfy the references
 * before libm.so.6 is seen, and --as-needed then leaves libm.so.6 out. A dlopen()ed library
 * (libcurl) binds to libm.so.6 as usual: the executable does not export these.
 *
 * pow and log2 use the x87 unit's extended precision (fyl2x, f2xm1, fscale), as glibc's i386 libm
 * did: log2 is faithfully rounded; pow's error stays below 1 ulp for results in double's range.
 * Special cases and errno follow C11 Annex F.10.3.11 / F.10.4.4 and glibc. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "math-shim.h"

#if !defined(__x86_64__) && !defined(__i386__)
#error "math-shim.c uses x87 instructions; link libm on this architecture instead"
#endif

/* The NaN of an invalid operation, as glibc returns it (0/0: x86's default NaN, sign bit set;
 * raises FE_INVALID). */
static double invalid(void) {
        volatile double z = 0.0;
        errno = EDOM;
        return z / z;
}

/* log2(x) for finite x > 0, in extended precision. */
static long double x87_log2(long double x) {
        long double r;
        __asm__("fyl2x" : "=t"(r) : "0"(x), "u"(1.0L) : "st(1)");
        return r;
}

/* 2^t for finite t, in extended precision: 2^i * 2^f with i = rint(t), |f| <= 0.5. */
static long double x87_exp2(long double t) {
        long double i, r;
        __asm__("frndint" : "=t"(i) : "0"(t));
        long double f = t - i;
        __asm__("f2xm1" : "=t"(r) : "0"(f));
        r += 1.0L;
        __asm__("fscale" : "=t"(r) : "0"(r), "u"(i));
        return r;
}

double ct_log2(double x) {
        if (isnan(x))
                return x + x;
        if (x == 0) {
                errno = ERANGE; /* pole error */
                return -HUGE_VAL;
        }
        if (x < 0)
                return invalid();
        if (isinf(x))
                return x;
        return (double) x87_log2(x);
}

/* 0: y is not an integer; 1: an odd integer; 2: an even integer. Without nearbyint() (libm). */
static int integer_kind(double y) {
        if (!isfinite(y))
                return 0;
        if (fabs(y) >= 0x1p53)
                return 2; /* every double from 2^53 on is an even integer */
        int64_t i = (int64_t) y;
        if ((double) i != y)
                return 0;
        return (i & 1) ? 1 : 2;
}

double ct_pow(double x, double y) {
        if (y == 0 || x == 1)
                return 1.0;
        if (isnan(x) || isnan(y))
                return x + y;
        int k = integer_kind(y);
        if (x == 0) {
                if (isinf(y))
                        return y < 0 ? HUGE_VAL : 0.0;
                if (y < 0) {
                        errno = ERANGE; /* pole error */
                        return k == 1 ? copysign(HUGE_VAL, x) : HUGE_VAL;
                }
                return k == 1 ? x : 0.0;
        }
        if (isinf(y)) {
                double ax = fabs(x);
                if (ax == 1)
                        return 1.0;
                return (ax < 1) == (y < 0) ? HUGE_VAL : 0.0;
        }
        if (isinf(x)) {
                if (x < 0) {
                        if (y < 0)
                                return k == 1 ? -0.0 : 0.0;
                        return k == 1 ? -HUGE_VAL : HUGE_VAL;
                }
                return y < 0 ? 0.0 : HUGE_VAL;
        }
        double sign = 1.0;
        if (x < 0) {
                if (k == 0)
                        return invalid();
                if (k == 1)
                        sign = -1.0;
                x = -x;
        }
        long double t = (long double) y * x87_log2(x);
        if (t >= 1024.0L) {
                errno = ERANGE;
                return sign * HUGE_VAL;
        }
        if (t < -1080.0L) {
                errno = ERANGE;
                return sign * 0.0;
        }
        double r = (double) x87_exp2(t);
        if (r == 0 || isinf(r))
                errno = ERANGE;
        return sign * r;
}

/* glibc's nan(tagp): the quiet NaN, with the number tagp spells (strtoull, base 0) in its
 * payload when all of tagp is such a number. */
static uint64_t nan_payload(const char *tagp, bool *ret_ok) {
        const char *p = tagp;
        while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')
                p++;
        *ret_ok = false;
        if (*p)
                return 0;
        char *end;
        unsigned long long m = strtoull(tagp, &end, 0);
        *ret_ok = end == p;
        return m;
}

double ct_nan(const char *tagp) {
        union {
                double d;
                uint64_t u;
        } v = { .d = __builtin_nan("") };
        bool ok;
        uint64_t m = nan_payload(tagp, &ok);
        if (ok)
                v.u |= m & ((UINT64_C(1) << 51) - 1);
        return v.d;
}

float ct_nanf(const char *tagp) {
        union {
                float f;
                uint32_t u;
        } v = { .f = __builtin_nanf("") };
        bool ok;
        uint64_t m = nan_payload(tagp, &ok);
        if (ok)
                v.u |= (uint32_t) (m & ((UINT32_C(1) << 22) - 1));
        return v.f;
}

#ifdef CT_MATH_SHIM_EXPORT
/* In the static provider: the libm names themselves. */
double pow(double x, double y) __attribute__((alias("ct_pow")));
double log2(double x) __attribute__((alias("ct_log2")));
double nan(const char *tagp) __attribute__((alias("ct_nan")));
float nanf(const char *tagp) __attribute__((alias("ct_nanf")));
#endif
