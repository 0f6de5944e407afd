/* SPDX-License-Identifier: Apache-2.0 */
/* A GetDataKeyRequest from the wire through the whole key service call (decode, checks, HKDF,
 * response encoding) with a fixed master secret. A success must answer field 1 with exactly the
 * requested length. */
#include <stdlib.h>
#include <string.h>

#include "keyservice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static kms *k;
        if (!k) {
                secret_t *m = secret_new(32), *s = secret_new(32);
                if (!m || !s || kms_open_cluster(m, s, &k, NULL) < 0)
                        abort();
                secret_free(m);
                secret_free(s);
        }
        if (size > KEYSERVICE_MAX_REQUEST)
                return 0;
        keyservice_request req;
        ct_error err = CT_ERROR_INIT;
        int dr = keyservice_request_decode(data, size, &req, &err);
        if (dr == 0 && req.data_key_id_len > size)
                abort();
        static uint8_t resp[KEYSERVICE_MAX_RESPONSE];
        size_t rlen = 0;
        ct_error e = CT_ERROR_INIT;
        int r = keyservice_get_data_key(k, data, size, resp, &rlen, &e);
        if (r == 0) {
                if (dr < 0 || rlen < 2 || resp[0] != 0x0a || req.length == 0 || rlen < req.length ||
                    rlen > req.length + 3)
                        abort();
        } else if (!e.reason)
                abort();
        return 0;
}
