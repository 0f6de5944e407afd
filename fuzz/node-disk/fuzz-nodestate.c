/* SPDX-License-Identifier: Apache-2.0 */
/* node_state.json from the state disk: strict parse; anything accepted round-trips through
 * nodestate_format to the same state. */
#include <stdlib.h>

#include "nodestate/nodestate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        nodestate s, t;
        ct_error err = CT_ERROR_INIT;
        if (nodestate_parse(data, size, &s, &err) < 0)
                return 0;
        char *json = nodestate_format(&s);
        if (!json || nodestate_parse(json, strlen(json), &t, NULL) < 0 || t.role != s.role ||
            memcmp(t.measurement_salt, s.measurement_salt, sizeof s.measurement_salt) != 0)
                abort();
        free(json);
        return 0;
}
