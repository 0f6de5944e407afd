/* SPDX-License-Identifier: Apache-2.0 */
/* provider/src/math-shim.c (the static provider's pow, log2, nan, nanf, which replace libm.so.6)
 * against glibc's libm: every special case of C11 Annex F with its sign and errno, exact powers
 * of two, nan payloads, and at most 1 ulp over a sample of ordinary arguments. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "math-shim.h"

static int64_t ordinal(double d) {
        int64_t i;
        memcpy(&i, &d, sizeof(i));
        return i < 0 ? INT64_MIN - i : i;
}

/* Distance in units in the last place; two NaNs are 0 apart when their sign bits agree. */
static uint64_t ulps(double a, double b) {
        if (isnan(a) || isnan(b))
                return isnan(a) && isnan(b) && signbit(a) == signbit(b) ? 0 : UINT64_MAX;
        if (a == b)
                return signbit(a) == signbit(b) ? 0 : UINT64_MAX;
        int64_t d = ordinal(a) - ordinal(b);
        return d < 0 ? (uint64_t) -d : (uint64_t) d;
}

static const double specials[] = { 0.0,      -0.0,     1.0,      -1.0,      0.5,    -0.5,       2.0,
                                   -2.0,     3.0,      -3.0,     INFINITY,  -INFINITY, NAN,    1e308,
                                   1e-308,   0x1p53,   -0x1p53,  0x1p-1074, 1.5,       -1.5,   -0x1.8p52 };

static void test_pow_special_cases(void **state) {
        size_t n = sizeof(specials) / sizeof(specials[0]);
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                        double x = specials[i], y = specials[j];
                        errno = 0;
                        double want = pow(x, y);
                        int want_errno = errno;
                        errno = 0;
                        double got = ct_pow(x, y);
                        if (ulps(want, got) > 1 || errno != want_errno)
                                fail_msg("pow(%a, %a): libm %a (errno %d), shim %a (errno %d)", x, y, want, want_errno,
                                         got, errno);
                }
}

static void test_log2_special_cases(void **state) {
        for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
                double x = specials[i];
                errno = 0;
                double want = log2(x);
                int want_errno = errno;
                errno = 0;
                double got = ct_log2(x);
                if (ulps(want, got) != 0 || errno != want_errno)
                        fail_msg("log2(%a): libm %a (errno %d), shim %a (errno %d)", x, want, want_errno, got, errno);
        }
}

static void test_powers_of_two(void **state) {
        /* gRPC's flow control computes pow(2, x) of log2(bdp): exact where libm is. */
        for (int e = -1074; e < 1024; e++) {
                assert_true(ct_log2(ldexp(1.0, e)) == (double) e);
                assert_true(ct_pow(2.0, e) == ldexp(1.0, e));
        }
        errno = 0;
        assert_true(isinf(ct_pow(2.0, 1024)));
        assert_int_equal(errno, ERANGE);
        errno = 0;
        assert_true(ct_pow(2.0, -1100) == 0.0);
        assert_int_equal(errno, ERANGE);
}

static void test_ordinary_arguments(void **state) {
        srandom(11);
        for (int i = 0; i < 200000; i++) {
                double x = ldexp((double) random() / RAND_MAX, (int) (random() % 80) - 40);
                double y = i % 3 ? ((double) random() / RAND_MAX - 0.5) * 64 : (double) (random() % 200 - 100);
                if (i % 5 == 0)
                        x = -x;
                if (ulps(pow(x, y), ct_pow(x, y)) > 1)
                        fail_msg("pow(%a, %a): libm %a, shim %a", x, y, pow(x, y), ct_pow(x, y));
                double z = ldexp(1.0 + (double) random() / RAND_MAX, (int) (random() % 2000) - 1000);
                if (ulps(log2(z), ct_log2(z)) > 1)
                        fail_msg("log2(%a): libm %a, shim %a", z, log2(z), ct_log2(z));
        }
}

static void test_nan_payloads(void **state) {
        const char *tags[] = { "", "1", "0x10", "077", "abc", "12x", "_", "0xfffffffffffffffff", "(" };
        for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
                double want = nan(tags[i]), got = ct_nan(tags[i]);
                float wantf = nanf(tags[i]), gotf = ct_nanf(tags[i]);
                if (memcmp(&want, &got, sizeof(got)) != 0 || memcmp(&wantf, &gotf, sizeof(gotf)) != 0)
                        fail_msg("nan(\"%s\"): libm %a / %a, shim %a / %a", tags[i], want, (double) wantf, got,
                                 (double) gotf);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pow_special_cases), cmocka_unit_test(test_log2_special_cases),
                cmocka_unit_test(test_powers_of_two),     cmocka_unit_test(test_ordinary_arguments),
                cmocka_unit_test(test_nan_payloads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
