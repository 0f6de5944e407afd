/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "basic/encoding.h"
#include "measurements/measurements.h"

_printf_(2, 3) static int failf(char **ret_error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        if (ret_error && vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return -EBADMSG;
}

static int parse_index(const char *key, uint32_t *ret) {
        /* Decimal, no sign, no leading zeros, 0..31. */
        if (!*key || strlen(key) > 2 || (key[0] == '0' && key[1]))
                return -EINVAL;
        for (const char *p = key; *p; p++)
                if (*p < '0' || *p > '9')
                        return -EINVAL;
        unsigned long v = strtoul(key, NULL, 10);
        if (v > MEASUREMENTS_MAX_INDEX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

const measurement *measurements_get(const measurements *m, uint32_t index) {
        for (size_t i = 0; i < m->n; i++)
                if (m->items[i].index == index)
                        return &m->items[i];
        return NULL;
}

int measurements_set(measurements *m, uint32_t index, const uint8_t *value, size_t len, bool warn_only) {
        if (index > MEASUREMENTS_MAX_INDEX || (len != 32 && len != 48))
                return -EINVAL;
        size_t i = 0;
        while (i < m->n && m->items[i].index < index)
                i++;
        if (i == m->n || m->items[i].index != index) {
                if (m->n > MEASUREMENTS_MAX_INDEX)
                        return -E2BIG;
                memmove(&m->items[i + 1], &m->items[i], (m->n - i) * sizeof(measurement));
                m->n++;
        }
        m->items[i] = (measurement){ .index = index, .len = len, .warn_only = warn_only };
        memcpy(m->items[i].expected, value, len);
        return 0;
}

int measurements_parse_map(json_t *map, measurements *ret, char **ret_error) {
        measurements m = { 0 };
        const char *key;
        json_t *val;
        size_t want_len = 0;
        if (!json_is_object(map))
                return failf(ret_error, "measurements must be a JSON object keyed by PCR index%s%s", "", "");
        json_object_foreach(map, key, val) {
                uint32_t idx;
                if (parse_index(key, &idx) < 0)
                        return failf(ret_error, "\"%s\": not a PCR index (0 to 31 in decimal)%s", key, "");
                const char *hex;
                bool warn_only = false;
                if (json_is_string(val)) /* legacy bare hex: enforced */
                        hex = json_string_value(val);
                else if (json_is_object(val)) {
                        json_t *e = json_object_get(val, "expected"), *w = json_object_get(val, "warnOnly");
                        if (!json_is_string(e))
                                return failf(ret_error, "\"%s\".expected: missing or not a string%s", key, "");
                        if (w && !json_is_boolean(w))
                                return failf(ret_error, "\"%s\".warnOnly: not a boolean%s", key, "");
                        const char *k2;
                        json_t *v2;
                        json_object_foreach(val, k2, v2) if (!streq(k2, "expected") && !streq(k2, "warnOnly")) return failf(
                                ret_error, "\"%s\": unknown field \"%s\"", key, k2);
                        hex = json_string_value(e);
                        warn_only = w && json_is_true(w);
                } else
                        return failf(ret_error, "\"%s\": must be an object {expected, warnOnly} or a hex string%s", key, "");
                size_t hl = strlen(hex);
                uint8_t value[MEASUREMENTS_MAX_DIGEST];
                if ((hl != 64 && hl != 96) || hex_decode_exact(hex, value, hl / 2) < 0)
                        return failf(ret_error, "\"%s\".expected: must be 64 or 96 hex digits (32 or 48 bytes)%s", key, "");
                if (want_len && hl / 2 != want_len)
                        return failf(ret_error, "\"%s\".expected: all measurements must have the same length%s", key, "");
                want_len = hl / 2;
                int r = measurements_set(&m, idx, value, hl / 2, warn_only);
                if (r < 0)
                        return r;
        }
        *ret = m;
        return 0;
}

int measurements_parse(const uint8_t *buf, size_t len, measurements *ret, char **ret_error) {
        json_error_t err;
        if (len > MEASUREMENTS_MAX_FILE)
                return failf(ret_error, "file larger than %s%s", "1 MiB", "");
        _cleanup_(json_decrefp) json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &err);
        if (!j) {
                char pos[64];
                snprintf(pos, sizeof(pos), "line %d column %d", err.line, err.column);
                return failf(ret_error, "not JSON (%s): %s", pos, err.text);
        }
        json_t *inner = json_object_get(j, "measurements");
        return measurements_parse_map(inner ? inner : j, ret, ret_error);
}

json_t *measurements_to_json_object(const measurements *m) {
        json_t *o = json_object();
        for (size_t i = 0; i < m->n; i++) {
                char key[4];
                snprintf(key, sizeof(key), "%u", m->items[i].index);
                char *hex = hex_encode(m->items[i].expected, m->items[i].len);
                json_object_set_new(o, key, json_pack("{s:s,s:b}", "expected", hex, "warnOnly", m->items[i].warn_only));
                free(hex);
        }
        return o;
}

/* Keys in numeric order, the way Constellation's encoder (a Go map of uint32) writes them. */
static char *dump_numeric(json_t *o, size_t flags) {
        return json_dumps(o, flags | JSON_PRESERVE_ORDER);
}

char *measurements_to_json(const measurements *m, bool wrap) {
        json_t *o = measurements_to_json_object(m);
        if (wrap)
                o = json_pack("{s:o}", "measurements", o);
        char *s = dump_numeric(o, JSON_INDENT(2));
        json_decref(o);
        return s;
}

void measurements_release_done(measurements_release *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->entries[i].csp);
                free(r->entries[i].variant);
        }
        free(r->entries);
        free(r->version);
        free(r->ref);
        free(r->stream);
        *r = (measurements_release){ 0 };
}

int measurements_release_parse(const uint8_t *buf, size_t len, measurements_release *ret, char **ret_error) {
        json_error_t err;
        if (len > MEASUREMENTS_MAX_FILE)
                return failf(ret_error, "file larger than %s%s", "1 MiB", "");
        _cleanup_(json_decrefp) json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return failf(ret_error, "not JSON: %s%s", err.text, "");
        const char *fields[] = { "version", "ref", "stream" };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (!json_is_string(json_object_get(j, fields[i])))
                        return failf(ret_error, "%s: missing or not a string%s", fields[i], "");
        json_t *list = json_object_get(j, "list");
        if (!json_is_array(list))
                return failf(ret_error, "list: missing or not an array%s%s", "", "");
        measurements_release r = {
                .version = strdup(json_string_value(json_object_get(j, "version"))),
                .ref = strdup(json_string_value(json_object_get(j, "ref"))),
                .stream = strdup(json_string_value(json_object_get(j, "stream"))),
        };
        r.entries = calloc(json_array_size(list) + 1, sizeof(*r.entries));
        if (!r.version || !r.ref || !r.stream || !r.entries) {
                measurements_release_done(&r);
                return -ENOMEM;
        }
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
                const char *csp = json_string_value(json_object_get(e, "csp"));
                const char *variant = json_string_value(json_object_get(e, "attestationVariant"));
                char where[32];
                snprintf(where, sizeof(where), "list[%zu]", i);
                if (!csp || !variant) {
                        measurements_release_done(&r);
                        return failf(ret_error, "%s: csp and attestationVariant must be strings%s", where, "");
                }
                _cleanup_free_ char *inner = NULL;
                measurements m;
                if (measurements_parse_map(json_object_get(e, "measurements"), &m, &inner) < 0) {
                        measurements_release_done(&r);
                        return failf(ret_error, "%s.measurements: %s", where, inner ?: "invalid");
                }
                r.entries[r.n++] = (measurements_entry){ .csp = strdup(csp), .variant = strdup(variant), .m = m };
        }
        *ret = r;
        return 0;
}

static bool csp_equal(const char *a, const char *b) {
        if (strcasecmp(a, "stackit") == 0)
                a = "openstack";
        if (strcasecmp(b, "stackit") == 0)
                b = "openstack";
        return strcasecmp(a, b) == 0;
}

const measurements_entry *measurements_release_find(const measurements_release *r, const char *csp,
                                                    const char *variant) {
        for (size_t i = 0; i < r->n; i++)
                if (csp_equal(r->entries[i].csp, csp) && streq(r->entries[i].variant, variant))
                        return &r->entries[i];
        return NULL;
}

int measurements_release_put(measurements_release *r, const char *csp, const char *variant, const measurements *m) {
        for (size_t i = 0; i < r->n; i++)
                if (streq(r->entries[i].csp, csp) && streq(r->entries[i].variant, variant)) {
                        r->entries[i].m = *m;
                        return 0;
                }
        measurements_entry *n = realloc(r->entries, (r->n + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        r->entries = n;
        size_t i = r->n;
        while (i > 0 && (strcmp(n[i - 1].csp, csp) > 0 || (streq(n[i - 1].csp, csp) && strcmp(n[i - 1].variant, variant) > 0))) {
                n[i] = n[i - 1];
                i--;
        }
        n[i] = (measurements_entry){ .csp = strdup(csp), .variant = strdup(variant), .m = *m };
        r->n++;
        return n[i].csp && n[i].variant ? 0 : -ENOMEM;
}

char *measurements_release_to_json(const measurements_release *r) {
        json_t *list = json_array();
        for (size_t i = 0; i < r->n; i++)
                json_array_append_new(list, json_pack("{s:s,s:s,s:o}", "csp", r->entries[i].csp, "attestationVariant",
                                                      r->entries[i].variant, "measurements",
                                                      measurements_to_json_object(&r->entries[i].m)));
        json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "version", r->version ?: "", "ref", r->ref ?: "-", "stream",
                              r->stream ?: "stable", "list", list);
        char *s = dump_numeric(o, JSON_INDENT(2));
        json_decref(o);
        return s;
}

int measurements_compare(const measurements *expected, const pcr_values *actual, pcr_result *ret_results,
                         size_t *ret_n, char **ret_message) {
        int r = 0;
        size_t n = 0;
        for (size_t i = 0; i < expected->n; i++) {
                const measurement *e = &expected->items[i];
                pcr_verdict v;
                if (!actual->present[e->index] || actual->len != e->len)
                        v = PCR_NOT_PROVIDED;
                else if (memcmp(actual->value[e->index], e->expected, e->len) == 0)
                        v = PCR_MATCH;
                else
                        v = e->warn_only ? PCR_MISMATCH_WARN : PCR_MISMATCH_ENFORCED;
                if (ret_results)
                        ret_results[n] = (pcr_result){ e->index, v };
                n++;
                bool fatal = v == PCR_MISMATCH_ENFORCED || (v == PCR_NOT_PROVIDED && !e->warn_only);
                if (fatal && r == 0) {
                        r = -EBADMSG;
                        if (ret_message) {
                                _cleanup_free_ char *want = hex_encode(e->expected, e->len);
                                _cleanup_free_ char *got = v == PCR_NOT_PROVIDED ? NULL
                                                                                  : hex_encode(actual->value[e->index], e->len);
                                if (asprintf(ret_message, "PCR %u: expected %s, %s%s", e->index, want,
                                             got ? "got " : "no value of that length was provided", got ?: "") < 0)
                                        *ret_message = NULL;
                        }
                }
        }
        if (ret_n)
                *ret_n = n;
        return r;
}
