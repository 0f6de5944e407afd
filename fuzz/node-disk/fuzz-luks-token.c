/* SPDX-License-Identifier: Apache-2.0 */
/* LUKS2 token 0 JSON from the state disk's header (which the infrastructure controls): the strict
 * parser that decides whether a disk is initialized (and so never formatted). Anything accepted
 * must re-format to Constellation's exact token. */
#include <stdlib.h>

#include "luks/luks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        bool init = false;
        ct_error err = CT_ERROR_INIT;
        if (luks_token_parse((const char *) data, size, &init, &err) < 0)
                return 0;
        char *again = luks_token_format(init);
        bool back = !init;
        if (!again || luks_token_parse(again, strlen(again), &back, NULL) < 0 || back != init)
                abort();
        free(again);
        return 0;
}
