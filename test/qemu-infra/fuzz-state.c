/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the state document (qemuinfra_state_from_json), which comes back from
 * Terraform's state or an operator's file. An accepted document must serialize, parse again to
 * the same serialization, and give every node a metadata document or a clean refusal. */
#include <stdio.h>

#include "qemuinfra/qemuinfra.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        if (qemuinfra_state_from_json((const char *) data, size, &c, &err) < 0)
                return 0;
        char *a = NULL, *b = NULL;
        qemuinfra_cluster *c2 = NULL;
        if (qemuinfra_state_to_json(c, &a, &err) < 0 || qemuinfra_state_from_json(a, strlen(a), &c2, &err) < 0 ||
            qemuinfra_state_to_json(c2, &b, &err) < 0 || strcmp(a, b) != 0)
                abort(); /* an accepted state must round-trip */
        for (size_t i = 0; i < c->n_nodes; i++) {
                char *md = NULL;
                ct_error e2 = CT_ERROR_INIT;
                if (qemuinfra_node_metadata(c, &c->nodes[i], &md, &e2) == 0)
                        free(md);
                char reason[256];
                (void) qemuinfra_node_alive(&c->nodes[i], reason, sizeof reason);
        }
        free(a);
        free(b);
        qemuinfra_cluster_free(c);
        qemuinfra_cluster_free(c2);
        return 0;
}
