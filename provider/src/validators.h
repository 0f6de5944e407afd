/* SPDX-License-Identifier: Apache-2.0 */
/* Attribute validators shared by resources and data sources. Each adds an error diagnostic at the
 * attribute's path that names the attribute, says what was wrong and what is expected. None of
 * them echoes the value of a sensitive attribute. */
#pragma once

#include "schema.h"

/* validate_arg: NULL-terminated array of allowed strings. */
void tf_validate_one_of(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags);
/* Exactly 64 hex characters (32 bytes), as Constellation requires for secrets and salts. */
void tf_validate_hex64(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags);
/* validate_arg: a POSIX extended regex the whole string must match. */
void tf_validate_regex(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags);
/* Any even-length hex string. */
void tf_validate_hex(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags);
/* Map keys are PCR indexes 0..31 (decimal). */
void tf_validate_pcr_keys(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags);
