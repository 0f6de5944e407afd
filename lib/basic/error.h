/* SPDX-License-Identifier: Apache-2.0 */
/* One way of carrying an error and its reason across layers (node plane, KMS, LUKS, KMIP).
 *
 * A fallible function returns a negative errno and, if the caller passed a ct_error, fills it
 * with the layer it came from ("tpm", "kms", "luks", "kmip", "atls", "init", ...), a stable
 * reason token ("wrong-init-secret", "pcr15-set", "kek-revoked") that tests assert and programs
 * map (to a gRPC status, an exit code, a Terraform diagnostic), and a human detail naming the
 * object (file, field, PCR, URI parameter). The innermost error wins: once set, outer layers do
 * not overwrite it (they may prepend context with ct_error_prefix). Details never contain secrets.
 *
 * Modules that predate this (atls_error, attdoc_verdict, per-module reason enums) keep their
 * types; ct_error_from() style adapters translate at the boundary. */
#pragma once
#include <stdarg.h>
#include "basic/macro.h"

#define CT_ERROR_DETAIL_MAX 512

typedef struct ct_error {
        int code;             /* negative errno, 0 = no error */
        const char *layer;    /* static string: "kms", "luks", ... */
        const char *reason;   /* static string: stable token for tests and mapping */
        char detail[CT_ERROR_DETAIL_MAX];
} ct_error;

#define CT_ERROR_INIT { 0, NULL, NULL, { 0 } }

/* Sets *err (if err is non-NULL and not yet set) and returns `code` (a negative errno), so
 * `return ct_error_set(err, -EPERM, "init", "wrong-init-secret", "…");` reads naturally. */
int ct_error_set(ct_error *err, int code, const char *layer, const char *reason, const char *fmt, ...)
        _printf_(5, 6);
int ct_error_setv(ct_error *err, int code, const char *layer, const char *reason, const char *fmt, va_list ap)
        _printf_(5, 0);
/* Prepends "context: " to the detail of an already set error (no-op if err is NULL or unset). */
void ct_error_prefix(ct_error *err, const char *fmt, ...) _printf_(2, 3);
static inline bool ct_error_is_set(const ct_error *err) {
        return err && err->code != 0;
}
/* "layer: reason: detail" into buf (always NUL-terminated); "" for an unset error. */
const char *ct_error_format(const ct_error *err, char *buf, size_t size);
