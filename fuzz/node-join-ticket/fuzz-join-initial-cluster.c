/* SPDX-License-Identifier: Apache-2.0 */
/* bootstrapper_check_initial_cluster: a control-plane ticket's etcd/initial-cluster, from an
 * unauthenticated join service, written into etcd.env once accepted. An accepted value never holds
 * a byte that could end or extend the environment line. */
#include <stdlib.h>
#include <string.h>

#include "join.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const bootstrapper_config cfg = { .md = { .name = "control-plane-1", .vpc_ip = "10.42.1.101" } };
        static const bootstrapper_etcd_options opt = { .peer_port = 2380 };
        ct_error err = CT_ERROR_INIT;
        if (bootstrapper_check_initial_cluster(&cfg, &opt, data, size, &err) == 0)
                for (size_t i = 0; i < size; i++)
                        if (data[i] < 0x21 || data[i] > 0x7e || data[i] == '"' || data[i] == '\'' || data[i] == '\\' ||
                            data[i] == '$' || data[i] == '#')
                                abort();
        return 0;
}
