/* SPDX-License-Identifier: Apache-2.0 */
/* recoverproto.RecoverMessage from the network (the recovery server's only input before the KMS):
 * strict unpack; accepted URIs are non-empty printable ASCII within the bound. */
#include <stdlib.h>

#include "basic/secret.h"
#include "disk-mapper.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *kms = NULL, *storage = NULL;
        ct_error err = CT_ERROR_INIT;
        if (dm_recover_parse(data, size, &kms, &storage, &err) < 0)
                return 0;
        size_t k = strlen(kms), s = strlen(storage);
        if (k == 0 || s == 0 || k > DM_URI_MAX || s > DM_URI_MAX)
                abort();
        for (size_t i = 0; i < k; i++)
                if ((unsigned char) kms[i] <= 0x20 || (unsigned char) kms[i] >= 0x7f)
                        abort();
        erase_and_free(kms);
        erase_and_free(storage);
        return 0;
}
