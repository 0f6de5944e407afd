/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-image subcommands; each gets argv[0] = its own word and returns the exit code. */
#pragma once

#include "basic/macro.h"
#include "pcr/pcr.h"

#define IMAGE_EXIT_OK 0
#define IMAGE_EXIT_REJECTED 1 /* malformed image/UKI, bad signature */
#define IMAGE_EXIT_USAGE 2
#define IMAGE_EXIT_IO 3

int image_cmd_measure(int argc, char **argv);
int image_cmd_sign(int argc, char **argv);
int image_cmd_verify(int argc, char **argv);
int image_cmd_publish(int argc, char **argv);

/* The bytes of a UKI: a read-only mapping of a UKI file, or a copy read from a disk image's ESP. */
typedef struct image_uki {
        uint8_t *data;
        size_t len;
        size_t map_len; /* > 0: data is mmap'd (munmap), else malloc'd (free) */
} image_uki;

void image_uki_done(image_uki *uki);

/* Loads a UKI, or EFI/BOOT/BOOTX64.EFI from the ESP of a raw GPT disk image (decided by the
 * first bytes: "MZ" = UKI). A UKI file is mapped, not read: one pass over the page cache by the
 * hashing threads instead of a copy first (bench/image). On failure prints one message naming
 * the file and returns an IMAGE_EXIT_* code (> 0); *ret is set only on success. */
int image_load_uki(const char *path, image_uki *ret);

/* Parses the measure options shared by measure and publish. Returns 1 if argv[*i] was consumed
 * (and maybe argv[*i+1]), 0 if not a measure option, < 0 on a bad value (message printed). */
int image_parse_measure_option(int argc, char **argv, int *i, pcr_uki_options *opts);

/* Predicts; prints a message naming path and returns IMAGE_EXIT_* on failure. */
int image_predict(const char *path, const pcr_uki_options *opts, pcr_log **ret);
