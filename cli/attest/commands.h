/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest subcommands. Each gets argv[0] = its own word ("snp", "derive", ...) and
 * returns the process exit code: */
#pragma once

#define ATTEST_EXIT_OK 0
#define ATTEST_EXIT_REJECTED 1 /* the evidence, signature or input was checked and refused */
#define ATTEST_EXIT_USAGE 2    /* bad command line */
#define ATTEST_EXIT_IO 3       /* a file could not be read */
#define ATTEST_EXIT_UNREACHABLE 4 /* verify, recover, init: the endpoint could not be reached or did not answer */

int attest_cmd_derive(int argc, char **argv);
int attest_cmd_measurements(int argc, char **argv);
int attest_cmd_snp(int argc, char **argv);
int attest_cmd_quote(int argc, char **argv);
int attest_cmd_rekor(int argc, char **argv);
int attest_cmd_verify(int argc, char **argv);
int attest_cmd_recover(int argc, char **argv);
int attest_cmd_kmip(int argc, char **argv);
int attest_cmd_init(int argc, char **argv);
int attest_cmd_join_config(int argc, char **argv);
