/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "commands.h"
#include "output.h"

int attest_output(bool json, int exit_code, json_t *extra, const char *fmt, ...) {
        char msg[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (json) {
                json_t *o = extra ? extra : json_object();
                json_object_set_new(o, "ok", json_boolean(exit_code == 0));
                json_object_set_new(o, exit_code == 0 ? "verdict" : "reason", json_string(msg));
                char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
                puts(s ? s : "{}");
                free(s);
                json_decref(o);
        } else {
                fprintf(exit_code == 0 ? stdout : stderr, "%s\n", msg);
                json_decref(extra);
        }
        return exit_code;
}

int attest_read_file(const char *what, const char *path, size_t max, uint8_t **ret, size_t *ret_len) {
        int r = read_full_file(path, max, ret, ret_len);
        if (r < 0) {
                fprintf(stderr, "%s %s: %s\n", what, path, r == -EFBIG ? "file too large" : strerror(-r));
                return ATTEST_EXIT_IO;
        }
        return 0;
}

int attest_parse_timeout(const char *cmd, const char *arg, long max, long *ret) {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (errno != 0 || end == arg || *end || v <= 0 || v > max) {
                fprintf(stderr, "%s: --timeout %s: seconds, 1..%ld\n", cmd, arg, max);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}
