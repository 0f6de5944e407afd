/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: a peer's HTTP/2 byte stream through the aTLS relay's message size limit
 * (lib/atls/h2-limit.h). The first byte picks the side and the split size, so frame and prefix
 * boundaries fall everywhere; the verdict must not depend on the split. */

#include "atls/h2-limit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        bool preface = data[0] & 1;
        size_t step = (size_t) (data[0] >> 1) + 1;
        data++, size--;

        atls_h2_limit *whole = NULL, *split = NULL;
        if (atls_h2_limit_new(1024, preface, &whole) < 0 || atls_h2_limit_new(1024, preface, &split) < 0) {
                atls_h2_limit_free(whole);
                return 0;
        }
        char d1[200], d2[200];
        int r1 = atls_h2_limit_feed(whole, data, size, d1, sizeof(d1));
        int r2 = 0;
        for (size_t off = 0; off < size && r2 == 0; off += step)
                r2 = atls_h2_limit_feed(split, data + off, size - off < step ? size - off : step, d2, sizeof(d2));
        /* Not assert(): the replay runs in release builds too (NDEBUG). */
        if (r1 != r2 || !(r1 == 0 || r1 == -EMSGSIZE || r1 == -EPROTO || r1 == -ENOBUFS || r1 == -ENOMEM))
                abort();
        atls_h2_limit_free(whole);
        atls_h2_limit_free(split);
        return 0;
}
