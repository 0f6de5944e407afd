/* SPDX-License-Identifier: Apache-2.0 */
/* terraform-provider-constellation: started by Terraform, never by hand. */
#include <malloc.h>
#include <stdio.h>

#include "basic/log.h"
#include "basic/process-util.h"
#include "plugin.h"
#include "qemuinfra/qemuinfra.h"

int main(int argc, char **argv) {
        /* QEMU runs "<provider> relay 127.X.Y.Z PORT" for each connection of a node to another
         * control plane (constellation_qemu_infrastructure, docs/qemu-infra.md): stdin/stdout/stderr
         * are the guest's connection, so nothing is ever printed. */
        if (argc == 4 && streq(argv[1], "relay")) {
                char *end;
                unsigned long port = strtoul(argv[3], &end, 10);
                if (*argv[3] == 0 || *end || port == 0 || port > 65535)
                        return 2;
                return qemuinfra_relay(0, 1, argv[2], (uint16_t) port) < 0 ? 1 : 0;
        }
        /* The provider holds master secrets (constellation_cluster): no core dumps, no ptrace or
         * /proc/<pid>/mem reads by other processes of this user. Before anything is read. */
        int r = process_harden_secrets();
        if (r < 0) {
                fprintf(stderr, "cannot protect the provider's memory from core dumps and ptrace: %s\n", strerror(-r));
                return 1;
        }
        /* One malloc arena: gRPC's threads and a handler thread per call would otherwise each get
         * an arena of their own; the provider serves one client, and one arena keeps its peak RSS
         * about 0.4 MB lower during a 50-read plan (README, Benchmarks). Before any thread. */
        (void) mallopt(M_ARENA_MAX, 1);
        /* Terraform shows provider stderr with TF_LOG / TF_LOG_PROVIDER (reference §1.3). */
        const char *level = getenv("TF_LOG_PROVIDER");
        log_setup_from_env(isempty(level) ? "TF_LOG" : "TF_LOG_PROVIDER", LOG_LEVEL_WARN);
        return plugin_serve();
}
