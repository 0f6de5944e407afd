/* SPDX-License-Identifier: Apache-2.0 */
#include "basic/log.h"

#include <stdio.h>
#include <strings.h>

static enum log_level max_level = LOG_LEVEL_INFO;
static const char *log_prefix;
static bool journal_style;

/* sd-daemon(3) SD_ERR .. SD_DEBUG */
static const char *const journal_priorities[] = {
        [LOG_LEVEL_TRACE] = "<7>", [LOG_LEVEL_DEBUG] = "<7>", [LOG_LEVEL_INFO] = "<6>",
        [LOG_LEVEL_WARN] = "<4>",  [LOG_LEVEL_ERROR] = "<3>", [LOG_LEVEL_OFF] = "",
};

static const char *const level_names[] = {
        [LOG_LEVEL_TRACE] = "TRACE", [LOG_LEVEL_DEBUG] = "DEBUG", [LOG_LEVEL_INFO] = "INFO",
        [LOG_LEVEL_WARN] = "WARN",   [LOG_LEVEL_ERROR] = "ERROR", [LOG_LEVEL_OFF] = "OFF",
};

void log_set_max_level(enum log_level level) {
        max_level = level;
}

enum log_level log_get_max_level(void) {
        return max_level;
}

void log_set_prefix(const char *prefix) {
        log_prefix = prefix;
}

void log_set_journal_style(bool on) {
        journal_style = on;
}

int log_level_from_string(const char *s, enum log_level *ret) {
        if (!s)
                return -EINVAL;
        if (strcasecmp(s, "JSON") == 0) {
                *ret = LOG_LEVEL_TRACE;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0) {
                        *ret = (enum log_level) i;
                        return 0;
                }
        return -EINVAL;
}

void log_setup_from_env(const char *name, enum log_level fallback) {
        enum log_level level;
        const char *v = getenv(name);

        if (isempty(v) || log_level_from_string(v, &level) < 0)
                level = fallback;
        log_set_max_level(level);
}

void log_emitv(enum log_level level, const char *fmt, va_list ap) {
        if (level < max_level || level >= LOG_LEVEL_OFF)
                return;
        /* One write per line so concurrent writers do not interleave mid-line. */
        char buf[4096];
        int n = journal_style ? snprintf(buf, sizeof(buf), "%s%s%s", journal_priorities[level],
                                         log_prefix ?: "", log_prefix ? ": " : "")
                              : snprintf(buf, sizeof(buf), "[%s] %s%s", level_names[level], log_prefix ?: "",
                                         log_prefix ? ": " : "");
        if (n < 0 || (size_t) n >= sizeof(buf))
                n = 0;
        int m = vsnprintf(buf + n, sizeof(buf) - (size_t) n - 1, fmt, ap);
        size_t len = (size_t) n + (m < 0 ? 0 : (size_t) m);
        if (len > sizeof(buf) - 2)
                len = sizeof(buf) - 2;
        buf[len++] = '\n';
        (void) !write(STDERR_FILENO, buf, len);
}

void log_emit(enum log_level level, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_emitv(level, fmt, ap);
        va_end(ap);
}

int log_emit_errno(enum log_level level, int error, const char *fmt, ...) {
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_emit(level, "%s: %s", msg, strerror(error < 0 ? -error : error));
        return error < 0 ? error : -error;
}
