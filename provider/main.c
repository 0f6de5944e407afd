/* SPDX-License-Identifier: Apache-2.0 */
/* terraform-provider-constellation: started by Terraform, never by hand. */
#include "basic/log.h"
#include "plugin.h"

int main(int argc, char **argv) {
        /* Terraform shows provider stderr with TF_LOG / TF_LOG_PROVIDER (reference §1.3). */
        const char *level = getenv("TF_LOG_PROVIDER");
        log_setup_from_env(isempty(level) ? "TF_LOG" : "TF_LOG_PROVIDER", LOG_LEVEL_WARN);
        return plugin_serve();
}
