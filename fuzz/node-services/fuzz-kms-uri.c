/* SPDX-License-Identifier: Apache-2.0 */
/* kms_open on arbitrary kms_uri bytes (and the first line as storage_uri when there is a
 * newline): URI parsing, %-unescaping twice, base64url, backend dispatch. A derived key must be
 * the same on a second call. */
#include <stdlib.h>
#include <string.h>

#include "kms/kms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > KMS_MAX_URI * 2)
                return 0;
        char *buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        const char *storage = NULL, *uri = buf;
        char *nl = strchr(buf, '\n');
        if (nl) {
                *nl = '\0';
                storage = buf;
                uri = nl + 1;
        }
        kms *k = NULL;
        ct_error err = CT_ERROR_INIT;
        if (kms_open(uri, storage, &k, &err) == 0) {
                secret_t *a = NULL, *b = NULL;
                ct_error e = CT_ERROR_INIT;
                if (kms_get_data_key(k, "fuzz", 32, &a, &e) == 0 && kms_get_data_key(k, "fuzz", 32, &b, &e) == 0 &&
                    (a->len != 32 || !ct_memeq(a->data, a->len, b->data, b->len)))
                        abort();
                secret_free(a);
                secret_free(b);
                kms_free(k);
        } else if (!err.reason || !err.layer || strcmp(err.layer, "kms") != 0)
                abort(); /* every refusal carries its reason */
        kms_uri *u = NULL;
        if (kms_uri_parse(uri, &u, NULL) == 0) {
                (void) kms_uri_get(u, "key");
                kms_uri_free(u);
        }
        free(buf);
        return 0;
}
