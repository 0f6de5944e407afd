/* SPDX-License-Identifier: Apache-2.0 */
/* join.IssueRejoinTicketRequest (a rejoining node's only input) and the attestation config update
 * request framing (UpdateAttestationConfigRequest, from the network without attestation). */
#include <stdlib.h>

#include "joinservice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char uuid[JOIN_UUID_LEN + 1];
        ct_error err = CT_ERROR_INIT;
        if (join_rejoin_request_parse(data, size, uuid, &err) == 0 && strlen(uuid) != JOIN_UUID_LEN)
                abort();
        const uint8_t *doc;
        size_t len;
        ct_error e2 = CT_ERROR_INIT;
        if (join_update_request_parse(data, size, &doc, &len, &e2) == 0 &&
            (doc < data || len == 0 || (size_t) (doc - data) + len != size))
                abort();
        return 0;
}
