/* SPDX-License-Identifier: Apache-2.0 */
/* Runs cli/attest/cmd-snp.c without the constellation-attest dispatcher, so the command's CLI
 * tests run before (and independently of) cli/attest/attest.c: `snp-cli-harness snp verify ...`
 * behaves as `constellation-attest snp verify ...`. */
#include "basic/macro.h"

int attest_cmd_snp(int argc, char **argv);

int main(int argc, char **argv) {
        return attest_cmd_snp(argc - 1, argv + 1);
}
