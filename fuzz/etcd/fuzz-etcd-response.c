/* SPDX-License-Identifier: Apache-2.0 */
/* etcd's replies as lib/etcd parses them (outside bytes: whoever answers on the etcd endpoint).
 * The first byte picks the reply type (0 Range, 1 Put, 2 Txn of a compare-and-swap, 3 MemberList,
 * 4 MemberAdd), the rest is the message. Whatever is accepted must have the shape asked for. */
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "/constellation/joinservice/attestationConfig"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        const uint8_t *msg = data + 1;
        size_t len = size - 1;
        ct_error err = CT_ERROR_INIT;
        switch (data[0] % 5) {
        case 0: {
                secret_t *v = NULL;
                int64_t rev = 0;
                if (etcd_parse_range_response(msg, len, KEY, 4096, &v, &rev, &err) >= 0) {
                        if (!v || v->len > 4096 || rev <= 0)
                                abort();
                        secret_free(v);
                } else if (!err.reason || v)
                        abort();
                break;
        }
        case 1: {
                int64_t rev = 0;
                if (etcd_parse_put_response(msg, len, &rev, &err) >= 0 && rev <= 0)
                        abort();
                break;
        }
        case 2: {
                bool ok = false;
                int64_t rev = -1;
                if (etcd_parse_cas_response(msg, len, KEY, &ok, &rev, &err) >= 0 && (rev < 0 || (ok && rev == 0)))
                        abort();
                break;
        }
        default: {
                etcd_members m = { 0 };
                bool add = data[0] % 5 == 4;
                if (etcd_parse_members_response(msg, len, add, &m, &err) >= 0) {
                        if (m.n == 0 || m.n > ETCD_MAX_MEMBERS || (add && m.added_id == 0))
                                abort();
                        for (size_t i = 0; i < m.n; i++)
                                if (!m.items[i].name || !m.items[i].peer_urls || !m.items[i].peer_urls[0])
                                        abort();
                }
                etcd_members_done(&m);
                break;
        }
        }
        return 0;
}
