/* SPDX-License-Identifier: Apache-2.0 */
/* join.IssueJoinTicketRequest from an attested but otherwise untrusted joiner: strict unpack (no
 * unknown fields, no NUL in disk_uuid), the uuid's shape. An accepted request has a lower-case
 * 8-4-4-4-12 uuid and a non-empty CSR. */
#include <ctype.h>
#include <stdlib.h>

#include "joinservice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        join_request r = { 0 };
        ct_error err = CT_ERROR_INIT;
        if (join_request_parse(data, size, &r, &err) < 0) {
                if (!err.reason)
                        abort(); /* every refusal has its reason */
                return 0;
        }
        if (strlen(r.uuid) != JOIN_UUID_LEN || r.csr_len == 0)
                abort();
        for (size_t i = 0; i < JOIN_UUID_LEN; i++)
                if (isupper((unsigned char) r.uuid[i]))
                        abort();
        join_request_done(&r);
        return 0;
}
