/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-image: measure, sign and publish node images. Thin dispatcher (STYLE.md: the
 * work is in lib/pe and lib/pcr; each command parses arguments and maps errors to exit codes). */
#include <stdio.h>

#include "commands.h"

struct command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
};

static const struct command commands[] = {
        { "measure", image_cmd_measure, "predict PCRs 4, 8, 9, 11, 12, 13, 15 of a UKI or raw disk image" },
        { "sign", image_cmd_sign, "cosign-compatible blob signature of a measurements file" },
        { "verify", image_cmd_verify, "verify a cosign blob signature" },
        { "publish", image_cmd_publish, "write a release directory laid out like Constellation's CDN" },
};

static int usage(FILE *f) {
        fputs("Usage: constellation-image COMMAND [OPTIONS]\n\nCommands:\n", f);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
        fputs("\nRun 'constellation-image COMMAND --help' for the options of a command.\n", f);
        return f == stdout ? 0 : IMAGE_EXIT_USAGE;
}

int main(int argc, char **argv) {
        if (argc < 2)
                return usage(stderr);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(stdout);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[1], commands[i].name))
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "constellation-image: unknown command \"%s\"\n", argv[1]);
        return usage(stderr);
}
