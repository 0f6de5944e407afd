/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest measurements verify --file FILE --signature FILE --key PEM
 *     [--csp CSP --variant VARIANT] [--json]
 * Verifies the cosign signature of a measurements.json (release envelope or bare map) and that it
 * parses; with --csp/--variant also that the release has that entry. */
#include <getopt.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "commands.h"
#include "crypto/cosign.h"
#include "measurements/measurements.h"
#include "output.h"

static int verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "file", required_argument, NULL, 'f' },    { "signature", required_argument, NULL, 's' },
                { "key", required_argument, NULL, 'k' },     { "csp", required_argument, NULL, 'c' },
                { "variant", required_argument, NULL, 'v' }, { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        const char *file = NULL, *sig = NULL, *keyfile = NULL, *csp = NULL, *variant = NULL;
        bool json = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'f': file = optarg; break;
                case 's': sig = optarg; break;
                case 'k': keyfile = optarg; break;
                case 'c': csp = optarg; break;
                case 'v': variant = optarg; break;
                case 'j': json = true; break;
                case 'h':
                        puts("Usage: constellation-attest measurements verify --file FILE --signature FILE --key PEM "
                             "[--csp CSP --variant VARIANT] [--json]");
                        return 0;
                default:
                        return ATTEST_EXIT_USAGE;
                }
        if (!file || !sig || !keyfile || (!csp != !variant)) {
                fprintf(stderr, "measurements verify: --file, --signature and --key are required; --csp and --variant go together\n");
                return ATTEST_EXIT_USAGE;
        }
        _cleanup_free_ uint8_t *blob = NULL, *sigbuf = NULL, *pem = NULL;
        size_t bl, sl, pl;
        int r;
        if ((r = attest_read_file("measurements", file, MEASUREMENTS_MAX_FILE, &blob, &bl)) ||
            (r = attest_read_file("signature", sig, 64 * 1024, &sigbuf, &sl)) ||
            (r = attest_read_file("key", keyfile, 64 * 1024, &pem, &pl)))
                return r;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        r = cosign_load_public_key((const char *) pem, pl, &key);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", keyfile,
                                     r == -EKEYREJECTED ? "not an ECDSA P-256 public key" : "not a PEM public key");
        cosign_error e;
        if (cosign_verify_blob(blob, bl, (const char *) sigbuf, sl, key, &e) < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s (signature %s, key %s)", file,
                                     cosign_error_to_string(e), sig, keyfile);
        _cleanup_free_ char *err = NULL;
        measurements_release rel;
        measurements m;
        if (measurements_release_parse(blob, bl, &rel, &err) == 0) {
                json_t *extra = json_pack("{s:s,s:s,s:s,s:i}", "version", rel.version, "ref", rel.ref, "stream",
                                          rel.stream, "entries", (int) rel.n);
                if (csp && !measurements_release_find(&rel, csp, variant)) {
                        measurements_release_done(&rel);
                        return attest_output(json, ATTEST_EXIT_REJECTED, extra,
                                             "%s: signature valid, but no entry for csp %s, attestation variant %s", file,
                                             csp, variant);
                }
                int ex = attest_output(json, 0, extra, "%s: signature valid (%s); release %s, ref %s, stream %s, %zu entries",
                                       file, keyfile, rel.version, rel.ref, rel.stream, rel.n);
                measurements_release_done(&rel);
                return ex;
        }
        free(err);
        err = NULL;
        if (!csp && measurements_parse(blob, bl, &m, &err) == 0)
                return attest_output(json, 0, json_pack("{s:i}", "measurements", (int) m.n),
                                     "%s: signature valid (%s); %zu measurements", file, keyfile, m.n);
        return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: signature valid, but the content is not measurements: %s",
                             file, err ?: "not a release file");
}

int attest_cmd_measurements(int argc, char **argv) {
        if (argc >= 2 && streq(argv[1], "verify"))
                return verify(argc - 1, argv + 1);
        fprintf(stderr, "Usage: constellation-attest measurements verify --file FILE --signature FILE --key PEM\n");
        return ATTEST_EXIT_USAGE;
}
