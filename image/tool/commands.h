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

/* Reads a UKI, or EFI/BOOT/BOOTX64.EFI from the ESP of a raw GPT disk image (decided by the
 * first bytes: "MZ" = UKI). On failure prints one message naming the file and returns an
 * IMAGE_EXIT_* code (> 0). */
int image_load_uki(const char *path, uint8_t **ret, size_t *ret_len);

/* Parses the measure options shared by measure and publish. Returns 1 if argv[*i] was consumed
 * (and maybe argv[*i+1]), 0 if not a measure option, < 0 on a bad value (message printed). */
int image_parse_measure_option(int argc, char **argv, int *i, pcr_uki_options *opts);

/* Predicts; prints a message naming path and returns IMAGE_EXIT_* on failure. */
int image_predict(const char *path, const pcr_uki_options *opts, pcr_log **ret);
