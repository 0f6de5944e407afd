/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <sys/types.h>

#include "basic/macro.h"

/* Reads a whole file of at most max_size bytes (-EFBIG beyond). The buffer is NUL-terminated one
 * byte past *ret_len. O_CLOEXEC. */
int read_full_file(const char *path, size_t max_size, uint8_t **ret, size_t *ret_len);
/* Same, from an open fd. */
int read_full_fd(int fd, size_t max_size, uint8_t **ret, size_t *ret_len);
/* Writes data to path atomically (temp file + rename) with the given mode (0600 for secrets). */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* write(2) until done or error; EINTR retried. */
int loop_write(int fd, const void *data, size_t len);
/* Creates the directories above path that are missing: ancestors 0755, the directory that will
 * hold path 0700 (for files that hold secrets). Existing directories are left as they are. */
int mkdir_parents_private(const char *path);
