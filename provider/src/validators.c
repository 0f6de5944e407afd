/* SPDX-License-Identifier: Apache-2.0 */
#include <regex.h>
#include <stdio.h>

#include "validators.h"

/* The attribute named by its full path (network_config.ip_cidr_node): Terraform points nested
 * attributes at the enclosing block, so the message itself must say which one. */
static const char *path_name(const tf_attr *a, const tf_path *path, char *buf, size_t size) {
        if (!path || path->n == 0)
                return a->name;
        tf_path_format(path, buf, size);
        return buf;
}

void tf_validate_one_of(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags) {
        char name[256];
        const char *const *allowed = a->validate_arg;
        const char *s;
        if (cty_value_get_string(v, &s, NULL) < 0)
                return;
        char list[512] = "";
        for (size_t i = 0; allowed[i]; i++) {
                if (streq(allowed[i], s))
                        return;
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s\"%s\"", i ? ", " : "", allowed[i]);
        }
        tf_error(diags, path, "Invalid attribute value", "Attribute %s value must be one of: [%s], got: \"%s\".",
                 path_name(a, path, name, sizeof(name)), list, s);
}

static bool is_hex(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!strchr("0123456789abcdefABCDEF", s[i]) || s[i] == 0)
                        return false;
        return true;
}

void tf_validate_hex64(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags) {
        char name[256];
        const char *s;
        size_t len;
        if (cty_value_get_string(v, &s, &len) < 0)
                return;
        /* Say what is wrong without echoing the (secret) value: length and character class only. */
        if (len != 64 || !is_hex(s, len))
                tf_error(diags, path, "Invalid attribute value",
                         "Attribute %s must be exactly 64 hexadecimal characters (32 bytes), got %zu characters%s. "
                         "Generate one with, for example, random_bytes { length = 32 } and its .hex attribute.",
                         path_name(a, path, name, sizeof(name)), len, is_hex(s, len) ? "" : " including non-hex characters");
}

void tf_validate_hex(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags) {
        char name[256];
        const char *s;
        size_t len;
        if (cty_value_get_string(v, &s, &len) < 0)
                return;
        if (len % 2 != 0 || !is_hex(s, len))
                tf_error(diags, path, "Invalid attribute value",
                         "Attribute %s must be a hexadecimal string with an even number of digits.",
                         path_name(a, path, name, sizeof(name)));
}

void tf_validate_regex(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags) {
        char name[256];
        const char *s;
        if (cty_value_get_string(v, &s, NULL) < 0)
                return;
        regex_t re;
        if (regcomp(&re, a->validate_arg, REG_EXTENDED | REG_NOSUB) != 0)
                return;
        bool ok = regexec(&re, s, 0, NULL, 0) == 0;
        regfree(&re);
        if (!ok)
                tf_error(diags, path, "Invalid attribute value",
                         "Attribute %s value must match the pattern %s, got: \"%s\".", path_name(a, path, name, sizeof(name)),
                         (const char *) a->validate_arg, s);
}

void tf_validate_pcr_keys(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags) {
        char name[256];
        for (size_t i = 0; i < v->c.n; i++) {
                const char *k = v->c.keys[i];
                char *end;
                long idx = strtol(k, &end, 10);
                if (*k == 0 || *end != 0 || idx < 0 || idx > 31 || (k[0] == '0' && k[1] != 0)) {
                        char step[64];
                        snprintf(step, sizeof(step), "[%s]", k);
                        tf_path p = tf_path_child(path, step);
                        tf_error(diags, &p, "Invalid measurement index",
                                 "Keys of %s are PCR indexes from 0 to 31 written in decimal, got \"%s\".",
                                 path_name(a, path, name, sizeof(name)), k);
                }
        }
}
