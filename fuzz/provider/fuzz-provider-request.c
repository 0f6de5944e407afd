/* SPDX-License-Identifier: Apache-2.0 */
/* Every protobuf request the provider decodes: byte 0 selects the tfplugin6 method, the rest is
 * the serialized request, handled exactly as a gRPC call would be (tfplugin_handle). */
#include "fuzz-common.h"
#include "provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        tf_provider_state p = { .cdn_url = (char *) FUZZ_CDN, .configured = true };
        const char *method = fuzz_methods[data[0] % ELEMENTSOF(fuzz_methods)];
        uint8_t *resp = NULL;
        char *msg = NULL;
        size_t len = 0;
        (void) tfplugin_handle(&p, method, data + 1, size - 1, &resp, &len, &msg);
        free(resp);
        free(msg);
        return 0;
}
