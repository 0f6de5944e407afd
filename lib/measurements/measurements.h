/* SPDX-License-Identifier: Apache-2.0 */
/* Constellation's measurement maps and release files (reference constellation.md §5.1):
 *   map:     {"4":{"expected":"<hex>","warnOnly":false}, ...}, or the legacy form {"4":"<hex>"}
 *            (bare hex = enforced); every value 32 (vTPM PCR) or 48 (TDX) bytes, all the same length
 *   release: {"version","ref","stream","list":[{"csp","attestationVariant","measurements":{map}}]}
 * and the comparison of expected against actual PCR values, PCR by PCR. */
#pragma once

#include <jansson.h>

#include "basic/macro.h"

#define MEASUREMENTS_MAX_INDEX 31
#define MEASUREMENTS_MAX_DIGEST 48
#define MEASUREMENTS_MAX_FILE (1024 * 1024)

typedef struct measurement {
        uint32_t index;
        uint8_t expected[MEASUREMENTS_MAX_DIGEST];
        size_t len;
        bool warn_only;
} measurement;

typedef struct measurements {
        size_t n;
        measurement items[MEASUREMENTS_MAX_INDEX + 1]; /* sorted by index, unique */
} measurements;

/* Parses a map (the JSON object itself). Errors name the key and field: "\"4\".expected: …". */
int measurements_parse_map(json_t *map, measurements *ret, char **ret_error);
/* Parses a file holding either a bare map or {"measurements": map}. */
int measurements_parse(const uint8_t *buf, size_t len, measurements *ret, char **ret_error);
/* {"measurements":{...}} with keys in numeric order, as Constellation writes it. */
char *measurements_to_json(const measurements *m, bool wrap);
json_t *measurements_to_json_object(const measurements *m);
const measurement *measurements_get(const measurements *m, uint32_t index);
int measurements_set(measurements *m, uint32_t index, const uint8_t *value, size_t len, bool warn_only);

typedef struct measurements_entry {
        char *csp;
        char *variant;
        measurements m;
} measurements_entry;

typedef struct measurements_release {
        char *version, *ref, *stream;
        size_t n;
        measurements_entry *entries;
} measurements_release;

int measurements_release_parse(const uint8_t *buf, size_t len, measurements_release *ret, char **ret_error);
void measurements_release_done(measurements_release *r);
/* Entry for csp (case-insensitive; "stackit" matches "OpenStack") and attestation variant. */
const measurements_entry *measurements_release_find(const measurements_release *r, const char *csp, const char *variant);
/* Adds or replaces an entry (publishing several variants into one release); keeps the list sorted
 * by csp, then variant, as Constellation's merge does. */
int measurements_release_put(measurements_release *r, const char *csp, const char *variant, const measurements *m);
char *measurements_release_to_json(const measurements_release *r);

typedef enum pcr_verdict {
        PCR_MATCH,
        PCR_MISMATCH_WARN,     /* differs, but warnOnly: a warning */
        PCR_MISMATCH_ENFORCED, /* differs and enforced: an error */
        PCR_NOT_PROVIDED,      /* expected, but no actual value given: an error unless warnOnly */
} pcr_verdict;

typedef struct pcr_result {
        uint32_t index;
        pcr_verdict verdict;
} pcr_result;

typedef struct pcr_values {
        bool present[MEASUREMENTS_MAX_INDEX + 1];
        uint8_t value[MEASUREMENTS_MAX_INDEX + 1][MEASUREMENTS_MAX_DIGEST];
        size_t len; /* digest length of the bank */
} pcr_values;

/* Compares every expected measurement against actual values. Returns 0 if nothing enforced
 * differs, -EBADMSG otherwise. ret_results gets one entry per expected measurement (may be NULL);
 * *ret_message (may be NULL) is a one-line report of the first failure, e.g.
 * "PCR 11: expected 71…, got 3d…". */
int measurements_compare(const measurements *expected, const pcr_values *actual, pcr_result *ret_results,
                         size_t *ret_n, char **ret_message);
