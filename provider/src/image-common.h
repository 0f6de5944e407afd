/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the data sources that read a release from the CDN. */
#pragma once

#include "schema.h"

extern const char *const tf_attestation_variants[];
extern const char *const tf_csps[];
extern const char *const tf_csps_with_qemu[];
/* The attestation object of constellation_cluster (input) and constellation_attestation (output). */
extern const tf_attr tf_attestation_attrs_input[];
/* The image object input (version, reference, short_path, marketplace_image). */
extern const tf_attr tf_image_input_attrs[];

typedef struct tf_image_path {
        char ref[64], stream[64], version[64];
        char short_path[256];
} tf_image_path;

/* "vX.Y.Z" -> ref "-", stream "stable"; "ref/R/stream/S/V" -> R, S, V. */
int tf_image_short_path(const char *version, tf_image_path *ret);
/* <cdn>/constellation/v2/ref/<ref>/stream/<stream>/<version>/image/<file> */
int tf_image_url(const tf_provider_state *p, const tf_image_path *ip, const char *file, char **ret);
