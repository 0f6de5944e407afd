/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz-gpt-fat: the GPT + FAT reader on an arbitrary disk image: through the GPT (CRC-checked),
 * and straight at a FAT volume at offset 0 so that FAT parsing is reached without a valid GPT. */
#include "pcr/disk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        gpt_source src;
        gpt_source_memory(&src, data, size);
        uint8_t *buf = NULL;
        size_t len = 0;
        const char *reason = NULL;
        if (gpt_read_esp_file(&src, "EFI/BOOT/BOOTX64.EFI", 1 << 20, &buf, &len, &reason) == 0)
                free(buf);
        buf = NULL;
        if (fat_read_file(&src, 0, size, "EFI/BOOT/BOOTX64.EFI", 1 << 20, &buf, &len, &reason) == 0)
                free(buf);
        return 0;
}
