/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest: verification and key-derivation tool for operators and release pipelines.
 * Thin dispatcher; each subcommand lives in cmd-<name>.c. */
#include <stdio.h>

#include "basic/macro.h"
#include "commands.h"

struct command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
};

static const struct command commands[] = {
        { "derive", attest_cmd_derive, "derive a key with HKDF-SHA256 as Constellation does" },
        { "measurements", attest_cmd_measurements, "verify a signed measurements.json" },
        { "snp", attest_cmd_snp, "verify an AMD SEV-SNP attestation report" },
        { "quote", attest_cmd_quote, "verify a TPM 2.0 quote" },
        { "rekor", attest_cmd_rekor, "verify a Rekor transparency-log bundle" },
        { "verify", attest_cmd_verify, "verify a node's attestation from its verification service" },
        { "recover", attest_cmd_recover, "send the master secret to a node's recovery server (aTLS)" },
        { "init", attest_cmd_init, "initialise a node through its bootstrapper (aTLS), print the cluster ID" },
        { "join-config", attest_cmd_join_config, "sign or push an attestation config update for the join service" },
        { "kmip", attest_cmd_kmip, "hold your own key: KEKs on a KMIP server, kms://kmip URIs" },
};

static int usage(FILE *f) {
        fputs("Usage: constellation-attest COMMAND [OPTIONS]\n\nCommands:\n", f);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
        fputs("\nRun 'constellation-attest COMMAND --help' for the options of a command.\n", f);
        return f == stdout ? 0 : ATTEST_EXIT_USAGE;
}

int main(int argc, char **argv) {
        if (argc < 2)
                return usage(stderr);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(stdout);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[1], commands[i].name))
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "constellation-attest: unknown command \"%s\"\n", argv[1]);
        return usage(stderr);
}
