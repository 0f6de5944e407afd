/* SPDX-License-Identifier: Apache-2.0 */
/* One way to report a verdict: a single line on stdout (success) or stderr (failure), or with
 * --json a JSON object on stdout {"ok":bool,"verdict":"…","reason":"…",…extra}. */
#pragma once

#include <jansson.h>

#include "basic/macro.h"

/* Prints the verdict; takes ownership of extra (may be NULL). Returns exit_code. */
int attest_output(bool json, int exit_code, json_t *extra, const char *fmt, ...) _printf_(4, 5);
/* Reads a whole file for a command, printing "<file>: <reason>" on failure (exit code 3). */
int attest_read_file(const char *what, const char *path, size_t max, uint8_t **ret, size_t *ret_len);

/* Parses --timeout for a command: whole seconds in 1..max. Prints "<cmd>: --timeout <arg>: seconds,
 * 1..<max>" and returns -EINVAL on a bad value. */
int attest_parse_timeout(const char *cmd, const char *arg, long max, long *ret);
