/* SPDX-License-Identifier: Apache-2.0 */
/* The node metadata document from the infrastructure (QEMU fw_cfg). */
#include "metadata/metadata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        metadata m = { 0 };
        if (metadata_parse((const char *) data, size, &m, NULL) >= 0)
                metadata_done(&m);
        return 0;
}
