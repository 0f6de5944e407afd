/* SPDX-License-Identifier: Apache-2.0 */
/* Read-only access to a raw GPT disk image without the kernel (no loop device, no mount): find
 * the EFI System Partition in the GUID partition table (UEFI 2.10 §5.3) and read a file from its
 * FAT12/16/32 file system (Microsoft FAT specification, "fatgen103": boot sector/BPB, FAT entry
 * encoding, directory entries, long-name entries). Every offset read from the image is checked
 * against the image, the partition and the volume before use; every buffer has a maximum.
 * Errors: -EBADMSG with *ret_reason a static string naming what was wrong ("GPT: bad header
 * CRC32", "FAT: cluster chain loops", "EFI/BOOT/BOOTX64.EFI: not found"), -EIO on read errors. */
#pragma once

#include "basic/macro.h"

/* The image, read through a callback so that multi-GiB images stay on disk. read() returns 0
 * after reading exactly len bytes at offset, or a negative errno. */
typedef struct gpt_source {
        int (*read)(const struct gpt_source *src, uint64_t offset, void *buf, size_t len);
        void *userdata; /* for custom read callbacks */
        const uint8_t *mem;
        int fd;
        uint64_t size;
} gpt_source;

/* Memory-backed source (tests, fuzzing): data must outlive src. */
void gpt_source_memory(gpt_source *src, const uint8_t *data, size_t len);
/* fd-backed source (pread); size from fstat. The fd stays owned by the caller. */
int gpt_source_fd(gpt_source *src, int fd);

/* The ESP as a byte range of the image. Tries 512-byte then 4096-byte logical blocks. */
int gpt_find_esp(const gpt_source *src, uint64_t *ret_offset, uint64_t *ret_size, const char **ret_reason);

/* Reads `path` ('/'-separated, case-insensitive, long names allowed) from the FAT file system at
 * [offset, offset+size) of src. -EFBIG beyond max_size; -ENOENT (with a reason) if a path
 * component is missing. *ret is malloc'd (non-NULL even for empty files). */
int fat_read_file(const gpt_source *src, uint64_t offset, uint64_t size, const char *path, size_t max_size,
                  uint8_t **ret, size_t *ret_len, const char **ret_reason);

/* gpt_find_esp + fat_read_file. */
int gpt_read_esp_file(const gpt_source *src, const char *path, size_t max_size, uint8_t **ret, size_t *ret_len,
                      const char **ret_reason);
