/* SPDX-License-Identifier: Apache-2.0 */
/* Decodes outside msgpack (DynamicValue.msgpack) against fixed schema types, then checks that
 * what decoded survives msgpack and JSON round trips unchanged. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size, cty_type *t) {
        cty_value *v = NULL;
        char *err = NULL;
        if (cty_msgpack_decode(data, size, t, &v, &err) < 0) {
                if (!err) /* every rejection carries a reason */
                        abort();
                free(err);
                return;
        }
        fuzz_check_roundtrips(v, t);
        cty_value_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct fuzz_types f;
        fuzz_types_init(&f);
        one(data, size, f.obj);
        one(data, size, &cty_dynamic);
        one(data, size, f.list);
        one(data, size, f.setobj);
        fuzz_types_done(&f);
        return 0;
}
