/* SPDX-License-Identifier: Apache-2.0 */
/* An InitRequest from the network (any aTLS client that passed the handshake): unpack and every
 * check of step A of Init (init secret against a bcrypt hash, salt, names, component shapes, KMS
 * URI, derivations). No TPM or disk is touched by these checks. */
#include "basic/log.h"
#include "bootstrapper.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const roots[] = { "/run/state", "/opt", NULL };
        /* bcrypt("fuzz-secret") at cost 4 ($2a$ as Go writes it) */
        static bootstrapper_config cfg = {
                .component_roots = roots,
                .md = { .name = (char *) "cp-0", .role = METADATA_ROLE_CONTROL_PLANE, .vpc_ip = (char *) "10.0.0.2",
                        .init_secret_hash = (char *) "$2a$04$abcdefghijklmnopqrstuuknLfvexuv1N5kbFddtXm6vCStFg3f6K" },
        };
        log_set_max_level(LOG_LEVEL_OFF); /* step A logs its progress; not wanted per input */
        ct_error err = CT_ERROR_INIT;
        (void) bootstrapper_check_request(&cfg, data, size, &err);
        return 0;
}
