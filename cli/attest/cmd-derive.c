/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest derive --secret-file FILE --salt-file FILE --info STRING [--length N] [--json]
 * HKDF-SHA256 exactly as Constellation derives keys (data keys use --info key-<id>); the result is
 * printed in hex.
 *
 * The secret and the salt are read from files ("-": standard input), never from the command line:
 * any user on the machine can read a process's arguments (/proc/PID/cmdline, ps), and shells keep
 * them in their history. Both files hold hex; a trailing newline is fine. They are read into locked
 * memory, the process is made non-dumpable first, and every copy is wiped. */
#include <getopt.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "commands.h"
#include "crypto/hkdf.h"
#include "output.h"

#define DERIVE_MAX_INPUT_FILE (64 * 1024) /* hex of a secret or salt; Constellation's are 32 bytes */

static const char derive_usage[] =
        "Usage: constellation-attest derive --secret-file FILE --salt-file FILE --info STRING [--length N] [--json]\n"
        "  FILE holds hex (a trailing newline is fine); \"-\" reads it from standard input.\n";

/* Reads one hex input file into a secret; prints "<option> <file>: <reason>" and returns the exit
 * code on failure. */
static int read_hex_input(bool json, const char *option, const char *path, secret_t **ret) {
        _cleanup_secret_ secret_t *raw = NULL;
        const char *shown = streq(path, "-") ? "(standard input)" : path;
        int r = secret_read_file(path, DERIVE_MAX_INPUT_FILE, &raw);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "derive: %s %s: %s", option, shown,
                                     r == -EFBIG ? "file too large (more than 64 KiB)" : strerror(-r));
        r = secret_from_hex((const char *) raw->data, raw->len, ret);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_USAGE, NULL,
                                     "derive: %s %s: not hex (an even number of 0-9a-f digits, then optional whitespace)",
                                     option, shown);
        return 0;
}

int attest_cmd_derive(int argc, char **argv) {
        enum { OPT_SECRET = 0x100, OPT_SALT };
        static const struct option opts[] = {
                { "secret-file", required_argument, NULL, 's' }, { "salt-file", required_argument, NULL, 'a' },
                { "info", required_argument, NULL, 'i' },        { "length", required_argument, NULL, 'l' },
                { "json", no_argument, NULL, 'j' },              { "help", no_argument, NULL, 'h' },
                /* Refused with a message saying why (see the top of this file). */
                { "secret", required_argument, NULL, OPT_SECRET }, { "salt", required_argument, NULL, OPT_SALT },
                {},
        };
        const char *secret_path = NULL, *salt_path = NULL, *info = NULL;
        long length = 32;
        bool json = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 's': secret_path = optarg; break;
                case 'a': salt_path = optarg; break;
                case 'i': info = optarg; break;
                case 'l': {
                        char *end;
                        length = strtol(optarg, &end, 10);
                        if (*end || length < 1 || length > KDF_MAX_LENGTH) {
                                fprintf(stderr, "derive: --length must be 1..%d\n", KDF_MAX_LENGTH);
                                return ATTEST_EXIT_USAGE;
                        }
                        break;
                }
                case 'j': json = true; break;
                case 'h':
                        fputs(derive_usage, stdout);
                        return 0;
                case OPT_SECRET:
                case OPT_SALT:
                        /* Overwrite our copy of the argument at least; the kernel's copy that
                         * others could read has been visible since exec, so it must not be used. */
                        erase_memory(optarg, strlen(optarg));
                        fprintf(stderr,
                                "derive: %s on the command line is refused: other users can read a process's "
                                "arguments (/proc/PID/cmdline) and shells keep them in history; put the hex in a "
                                "0600 file and pass %s-file FILE, or %s-file - to read it from standard input\n",
                                c == OPT_SECRET ? "--secret" : "--salt", c == OPT_SECRET ? "--secret" : "--salt",
                                c == OPT_SECRET ? "--secret" : "--salt");
                        return ATTEST_EXIT_USAGE;
                default:
                        return ATTEST_EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "derive: unexpected argument \"%s\"\n", argv[optind]);
                return ATTEST_EXIT_USAGE;
        }
        if (!secret_path || !salt_path || !info) {
                fprintf(stderr, "derive: --secret-file, --salt-file and --info are required\n");
                return ATTEST_EXIT_USAGE;
        }
        if (streq(secret_path, "-") && streq(salt_path, "-")) {
                fprintf(stderr, "derive: only one of --secret-file and --salt-file can be \"-\" (standard input)\n");
                return ATTEST_EXIT_USAGE;
        }

        /* Before any secret is read: no core dump, no ptrace or /proc/PID/mem by other processes. */
        int r = process_harden_secrets();
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL,
                                     "derive: cannot make the process non-dumpable (%s); refusing to read secrets",
                                     strerror(-r));

        _cleanup_secret_ secret_t *secret = NULL, *salt = NULL;
        if ((r = read_hex_input(json, "--secret-file", secret_path, &secret)) != 0 ||
            (r = read_hex_input(json, "--salt-file", salt_path, &salt)) != 0)
                return r;

        _cleanup_secret_ secret_t *key = NULL;
        r = hkdf_sha256(secret->data, secret->len, salt->data, salt->len, info, strlen(info), (size_t) length, &key);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "derive: %s", strerror(-r));

        /* The output is assembled in locked memory and written with write(2), so no unwiped copy
         * stays in a stdio or JSON buffer. */
        _cleanup_secret_ secret_t *out = secret_new(2 * key->len + 128);
        if (!out)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "derive: out of memory");
        size_t n = 0;
        if (json)
                n += (size_t) snprintf((char *) out->data, out->len, "{\n  \"key\": \"");
        for (size_t i = 0; i < key->len; i++)
                n += (size_t) snprintf((char *) out->data + n, out->len - n, "%02x", key->data[i]);
        if (json)
                n += (size_t) snprintf((char *) out->data + n, out->len - n,
                                       "\",\n  \"length\": %ld,\n  \"ok\": true,\n  \"verdict\": \"derived\"\n}", length);
        n += (size_t) snprintf((char *) out->data + n, out->len - n, "\n");
        fflush(stdout);
        r = loop_write(STDOUT_FILENO, out->data, n);
        if (r < 0) {
                fprintf(stderr, "derive: writing the key to standard output: %s\n", strerror(-r));
                return ATTEST_EXIT_IO;
        }
        return 0;
}
