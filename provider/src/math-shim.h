/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* The static provider's pow, log2, nan and nanf (math-shim.c: no libm.so.6 in the process). */

double ct_pow(double x, double y);
double ct_log2(double x);
double ct_nan(const char *tagp);
float ct_nanf(const char *tagp);
