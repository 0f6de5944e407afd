/* SPDX-License-Identifier: Apache-2.0 */
/* Schema types shared by the cty fuzz targets: a resource-like object (every kind of attribute,
 * nested blocks, a dynamic attribute), dynamic itself, and a set of objects. */
#pragma once

#include <stdlib.h>

#include "cty/cty.h"

struct fuzz_types {
        cty_type *list, *map, *inner, *measurements, *set, *tuple, *setobj, *obj;
};

static inline void fuzz_types_init(struct fuzz_types *f) {
        f->list = cty_type_list(&cty_string);
        f->map = cty_type_map(&cty_number);
        const char *inner_names[] = { "expected", "warn_only" };
        cty_type *inner_types[] = { &cty_string, &cty_bool };
        f->inner = cty_type_object(2, inner_names, inner_types);
        f->measurements = cty_type_map(f->inner);
        f->set = cty_type_set(&cty_number);
        cty_type *tt[] = { &cty_string, &cty_dynamic };
        f->tuple = cty_type_tuple(2, tt);
        f->setobj = cty_type_set(f->inner);
        const char *names[] = { "any", "count", "csp", "flag", "list", "map", "measurements", "nums", "pair", "rules" };
        cty_type *types[] = { &cty_dynamic, &cty_number, &cty_string, &cty_bool, f->list,
                              f->map,       f->measurements, f->set, f->tuple, f->setobj };
        f->obj = cty_type_object(10, names, types);
        if (!f->obj)
                abort();
}

static inline void fuzz_types_done(struct fuzz_types *f) {
        cty_type_unref(f->obj);
        cty_type_unref(f->setobj);
        cty_type_unref(f->tuple);
        cty_type_unref(f->set);
        cty_type_unref(f->measurements);
        cty_type_unref(f->inner);
        cty_type_unref(f->map);
        cty_type_unref(f->list);
}

/* Every value that encodes must decode to an equal value, in both codecs. */
static inline void fuzz_check_roundtrips(const cty_value *v, cty_type *t) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (cty_msgpack_encode(v, t, &buf, &len) == 0) {
                cty_value *again = NULL;
                if (cty_msgpack_decode(buf, len, t, &again, NULL) < 0 || !cty_value_equal(v, again))
                        abort();
                cty_value_free(again);
                free(buf);
        }
        char *json = NULL;
        if (cty_json_encode_as(v, t, &json, NULL) == 0) {
                cty_value *again = NULL;
                char *json2 = NULL;
                if (cty_json_decode((const uint8_t *) json, strlen(json), t, &again, NULL) < 0 ||
                    !cty_value_equal(v, again))
                        abort();
                /* ... and writes the same text again. */
                if (cty_json_encode_as(again, t, &json2, NULL) < 0 || strcmp(json, json2) != 0)
                        abort();
                free(json2);
                cty_value_free(again);
                free(json);
        }
        cty_value *copy = cty_value_copy(v);
        if (!copy || !cty_value_equal(v, copy))
                abort();
        cty_value_free(copy);
}
