/* SPDX-License-Identifier: Apache-2.0 */
/* The verification service's two ways in: the bytes as a GetAttestationRequest (protobuf-c) and
 * as the value of the HTTP nonce parameter (padded base64url). Accepted nonces are within bounds;
 * the response and HTTP body builders run on the input as a stand-in document. */
#include <stdlib.h>
#include <string.h>

#include "verification.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 64 * 1024)
                return 0;
        uint8_t *nonce = NULL;
        size_t nlen = 0;
        ct_error err = CT_ERROR_INIT;
        if (verification_grpc_nonce(data, size, &nonce, &nlen, &err) == 0) {
                if (nlen < VERIFICATION_NONCE_MIN || nlen > VERIFICATION_NONCE_MAX)
                        abort();
                free(nonce);
        } else if (!err.reason)
                abort();

        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        ct_error e2 = CT_ERROR_INIT;
        if (verification_http_nonce(s, &nonce, &nlen, &e2) == 0) {
                if (nlen < VERIFICATION_NONCE_MIN || nlen > VERIFICATION_NONCE_MAX)
                        abort();
                free(nonce);
        } else if (!e2.reason)
                abort();

        uint8_t *resp = NULL;
        size_t rlen = 0;
        if (verification_grpc_response(s, size, &resp, &rlen) == 0)
                free(resp);
        free(verification_http_body(s, size));
        free(s);
        return 0;
}
