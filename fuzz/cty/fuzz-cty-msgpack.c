/* SPDX-License-Identifier: Apache-2.0 */
/* Decodes outside msgpack against fixed schema types (an object like a resource schema, and
 * dynamic), re-encodes what decoded, decodes that again and checks the two values are equal. */
#include <stdlib.h>

#include "cty/cty.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const uint8_t *data, size_t size, cty_type *t) {
        cty_value *v = NULL;
        char *err = NULL;
        if (cty_msgpack_decode(data, size, t, &v, &err) < 0) {
                free(err);
                return;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        if (cty_msgpack_encode(v, t, &buf, &len) == 0) {
                cty_value *again = NULL;
                if (cty_msgpack_decode(buf, len, t, &again, NULL) < 0 || !cty_value_equal(v, again))
                        abort();
                cty_value_free(again);
                free(buf);
        }
        char *json = cty_json_encode(v);
        free(json);
        cty_value_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cty_type *list = cty_type_list(&cty_string);
        cty_type *map = cty_type_map(&cty_number);
        const char *inner_names[] = { "expected", "warn_only" };
        cty_type *inner_types[] = { &cty_string, &cty_bool };
        cty_type *inner = cty_type_object(2, inner_names, inner_types);
        cty_type *measurements = cty_type_map(inner);
        const char *names[] = { "csp", "count", "flag", "list", "map", "measurements", "any" };
        cty_type *types[] = { &cty_string, &cty_number, &cty_bool, list, map, measurements, &cty_dynamic };
        cty_type *obj = cty_type_object(7, names, types);

        roundtrip(data, size, obj);
        roundtrip(data, size, &cty_dynamic);
        roundtrip(data, size, list);

        cty_type_unref(obj);
        cty_type_unref(measurements);
        cty_type_unref(inner);
        cty_type_unref(map);
        cty_type_unref(list);
        return 0;
}
