/* SPDX-License-Identifier: Apache-2.0 */
#include "basic/process-util.h"

#include <sys/prctl.h>
#include <sys/resource.h>

int process_harden_secrets(void) {
        int r = 0;

        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                r = -errno;

        const struct rlimit none = { .rlim_cur = 0, .rlim_max = 0 };
        if (setrlimit(RLIMIT_CORE, &none) < 0 && r == 0)
                r = -errno;

        return r;
}
