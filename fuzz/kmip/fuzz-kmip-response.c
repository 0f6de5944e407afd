/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP responses from outside (the KMIP server is the user's, reached over the network): the TTLV
 * decoder with its limits, the debug dump, every accessor, and the Response Message parser for
 * each operation the client sends. Seeds are real PyKMIP responses captured by test-kmip
 * (op<operation>-<n>.ttlv) plus named regression files. */
#include <stdlib.h>

#include "kmip/kmip.h"
#include "kmip/ttlv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const ttlv_tree *t, size_t i, unsigned depth) {
        if (depth > TTLV_MAX_DEPTH + 1)
                abort(); /* the decoder promised a bound */
        for (size_t c = t->items[i].first_child; c != TTLV_NONE; c = t->items[c].next_sibling) {
                uint32_t e;
                int32_t v;
                const uint8_t *b;
                const char *s;
                size_t n;
                (void) ttlv_get_enum(t, i, t->items[c].tag, &e);
                (void) ttlv_get_int(t, i, t->items[c].tag, &v);
                (void) ttlv_get_bytes(t, i, t->items[c].tag, &b, &n);
                (void) ttlv_get_text(t, i, t->items[c].tag, &s, &n);
                (void) ttlv_next_same(t, c);
                if (t->items[c].type == TTLV_STRUCTURE)
                        walk(t, c, depth + 1);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ttlv_tree *t = NULL;
        enum ttlv_error te;
        if (size >= TTLV_HEADER_SIZE) {
                size_t announced;
                (void) ttlv_peek_message_size(data, &announced);
        }
        if (ttlv_decode(data, size, &t, &te) == 0) {
                if (t->items[0].type == TTLV_STRUCTURE)
                        walk(t, 0, 1);
                free(ttlv_dump(t));
                ttlv_tree_free(t);
        }
        static const uint32_t ops[] = { KMIP_OP_CREATE, KMIP_OP_GET_ATTRIBUTES, KMIP_OP_ACTIVATE, KMIP_OP_REVOKE,
                                        KMIP_OP_DESTROY, KMIP_OP_ENCRYPT, KMIP_OP_DECRYPT };
        for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
                ct_error err = CT_ERROR_INIT;
                size_t payload;
                t = NULL;
                if (kmip_parse_response(data, size, ops[k], &t, &payload, &err) == 0)
                        ttlv_tree_free(t);
        }
        return 0;
}
