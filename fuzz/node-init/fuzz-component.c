/* SPDX-License-Identifier: Apache-2.0 */
/* A components.Component's strings from an InitRequest / join ticket: "url\nhash\ninstall_path\nX"
 * (X = '1' for extract): shape validation, pin parsing and data: URL decoding. */
#include <stdio.h>

#include "components/components.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        char *fields[4] = { s, (char *) "", (char *) "", (char *) "" };
        char *p = s;
        for (int i = 1; i < 4 && (p = strchr(p, '\n')); i++) {
                *p++ = 0;
                fields[i] = p;
        }
        static const char *const roots[] = { "/run/state", "/opt", NULL };
        components_options o = { .allowed_roots = roots, .max_size = 1 << 20 };
        component_spec c = { fields[0], fields[1], fields[2], fields[3][0] == '1' };
        (void) components_validate(&c, 0, &o, NULL);
        uint8_t pin[32];
        (void) components_parse_hash(fields[1], pin, NULL);
        uint8_t *out = NULL;
        size_t len = 0;
        if (components_decode_data_url(fields[0], 1 << 20, &out, &len, NULL) >= 0)
                free(out);
        free(s);
        return 0;
}
