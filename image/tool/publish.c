/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-image publish: placeholder until the release layout lands. */
#include <stdio.h>

#include "commands.h"

int image_cmd_publish(int argc, char **argv) {
        (void) argc;
        (void) argv;
        fprintf(stderr, "publish: not implemented yet\n");
        return IMAGE_EXIT_USAGE;
}
