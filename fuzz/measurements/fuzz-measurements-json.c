/* SPDX-License-Identifier: Apache-2.0 */
/* measurements.json from a CDN: parse as a release and as a bare map; what parses must survive a
 * write/parse round trip unchanged. */
#include <stdlib.h>

#include "measurements/measurements.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        measurements_release r;
        char *err = NULL;
        if (measurements_release_parse(data, size, &r, &err) == 0) {
                char *js = measurements_release_to_json(&r);
                measurements_release r2;
                if (!js || measurements_release_parse((const uint8_t *) js, strlen(js), &r2, NULL) < 0 || r2.n != r.n)
                        abort();
                for (size_t i = 0; i < r.n; i++)
                        if (memcmp(&r.entries[i].m, &r2.entries[i].m, sizeof(measurements)) != 0)
                                abort();
                measurements_release_done(&r2);
                free(js);
                measurements_release_done(&r);
        }
        free(err);
        err = NULL;
        measurements m;
        if (measurements_parse(data, size, &m, &err) == 0) {
                char *js = measurements_to_json(&m, true);
                free(js);
        }
        free(err);
        return 0;
}
