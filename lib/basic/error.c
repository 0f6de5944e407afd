/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include "basic/error.h"

int ct_error_setv(ct_error *err, int code, const char *layer, const char *reason, const char *fmt, va_list ap) {
        if (code >= 0)
                code = -EIO; /* an error always carries a negative errno */
        if (!err || err->code != 0)
                return code;
        err->code = code;
        err->layer = layer ? layer : "unknown";
        err->reason = reason ? reason : "unspecified";
        if (fmt)
                vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        else
                err->detail[0] = '\0';
        return code;
}

int ct_error_set(ct_error *err, int code, const char *layer, const char *reason, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = ct_error_setv(err, code, layer, reason, fmt, ap);
        va_end(ap);
        return r;
}

void ct_error_prefix(ct_error *err, const char *fmt, ...) {
        if (!ct_error_is_set(err) || !fmt)
                return;
        char prefix[CT_ERROR_DETAIL_MAX], old[CT_ERROR_DETAIL_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(old, err->detail, sizeof(old));
        /* Truncation is fine here: the detail is a bounded message for humans. */
        size_t n = strnlen(prefix, sizeof(err->detail) - 1);
        memcpy(err->detail, prefix, n);
        size_t rest = sizeof(err->detail) - 1 - n;
        const char *sep = ": ";
        size_t s = MIN(strlen(sep), rest);
        memcpy(err->detail + n, sep, s);
        rest -= s;
        size_t o = MIN(strnlen(old, sizeof(old)), rest);
        memcpy(err->detail + n + s, old, o);
        err->detail[n + s + o] = '\0';
}

const char *ct_error_format(const ct_error *err, char *buf, size_t size) {
        if (size == 0)
                return buf;
        if (!ct_error_is_set(err)) {
                buf[0] = '\0';
                return buf;
        }
        if (err->detail[0])
                snprintf(buf, size, "%s: %s: %s", err->layer, err->reason, err->detail);
        else
                snprintf(buf, size, "%s: %s", err->layer, err->reason);
        return buf;
}
