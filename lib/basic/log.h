/* SPDX-License-Identifier: Apache-2.0 */
/* Logging for programs at the edge. Library code logs at debug level only (STYLE.md); the
 * program that owns the error logs it once with the reason and the object.
 *
 * Lines go to stderr as "[LEVEL] message", the form go-plugin/Terraform parse into log levels
 * (reference: terraform-plugin-protocol.md §1.3). Never pass a secret to these functions. */
#pragma once

#include <stdarg.h>

#include "basic/macro.h"

enum log_level {
        LOG_LEVEL_TRACE = 0,
        LOG_LEVEL_DEBUG,
        LOG_LEVEL_INFO,
        LOG_LEVEL_WARN,
        LOG_LEVEL_ERROR,
        LOG_LEVEL_OFF,
};

void log_set_max_level(enum log_level level);
enum log_level log_get_max_level(void);
/* Parses TRACE|DEBUG|INFO|WARN|ERROR|OFF|JSON (case-insensitive; JSON means TRACE as Terraform
 * uses it). Returns -EINVAL for anything else. */
int log_level_from_string(const char *s, enum log_level *ret);
/* Reads the level from the environment variable `name` (e.g. TF_LOG); keeps the default when unset. */
void log_setup_from_env(const char *name, enum log_level fallback);
/* Sets a prefix printed before every message (program name). */
void log_set_prefix(const char *prefix);
/* Journal style (node services under systemd): lines start with the syslog priority journald
 * reads from a stream, "<3>" error, "<4>" warning, "<6>" info, "<7>" debug/trace (sd-daemon(3)),
 * instead of "[LEVEL] ". Off by default (the provider's go-plugin form). */
void log_set_journal_style(bool on);

void log_emitv(enum log_level level, const char *fmt, va_list ap) _printf_(2, 0);
void log_emit(enum log_level level, const char *fmt, ...) _printf_(2, 3);
/* Logs and returns `error` (a negative errno), adding ": <strerror>" (systemd log_*_errno). */
int log_emit_errno(enum log_level level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_trace(...) log_emit(LOG_LEVEL_TRACE, __VA_ARGS__)
#define log_debug(...) log_emit(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_emit(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_debug_errno(e, ...) log_emit_errno(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
#define log_warn_errno(e, ...) log_emit_errno(LOG_LEVEL_WARN, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_emit_errno(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
