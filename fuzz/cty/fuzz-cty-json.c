/* SPDX-License-Identifier: Apache-2.0 */
/* Decodes outside JSON (UpgradeResourceState raw_state.json, DynamicValue.json) against fixed
 * schema types, then checks that what decoded survives msgpack and JSON round trips unchanged.
 * The first byte picks the type so the corpus can aim at each. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        struct fuzz_types f;
        fuzz_types_init(&f);
        cty_type *types[] = { f.obj, &cty_dynamic, f.setobj, &cty_number, &cty_string, f.tuple };
        cty_type *t = types[data[0] % (sizeof(types) / sizeof(types[0]))];
        cty_value *v = NULL;
        char *err = NULL;
        if (cty_json_decode(data + 1, size - 1, t, &v, &err) < 0) {
                if (!err)
                        abort();
                free(err);
        } else {
                fuzz_check_roundtrips(v, t);
                cty_value_free(v);
        }
        fuzz_types_done(&f);
        return 0;
}
