/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest rekor verify --bundle FILE --rekor-key PEM [--artifact FILE --key PEM] [--json]
 * Verifies a Sigstore bundle's Rekor entry offline (logID, signed entry timestamp, inclusion proof,
 * checkpoint); with --artifact and --key also that the entry is for that file signed by that key. */
#include <getopt.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "commands.h"
#include "crypto/cosign.h"
#include "output.h"
#include "rekor/rekor.h"

static int load_key(bool json, const char *path, EVP_PKEY **ret) {
        _cleanup_free_ uint8_t *pem = NULL;
        size_t len;
        int r = attest_read_file("key", path, 64 * 1024, &pem, &len);
        if (r)
                return r;
        if (cosign_load_public_key((const char *) pem, len, ret) < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: not an ECDSA P-256 public key (PEM)", path);
        return 0;
}

static int verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "bundle", required_argument, NULL, 'b' },   { "rekor-key", required_argument, NULL, 'r' },
                { "artifact", required_argument, NULL, 'a' }, { "key", required_argument, NULL, 'k' },
                { "json", no_argument, NULL, 'j' },           { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *bundle = NULL, *rekor_key = NULL, *artifact = NULL, *keyfile = NULL;
        bool json = false;
        int c, r;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'b': bundle = optarg; break;
                case 'r': rekor_key = optarg; break;
                case 'a': artifact = optarg; break;
                case 'k': keyfile = optarg; break;
                case 'j': json = true; break;
                case 'h':
                        puts("Usage: constellation-attest rekor verify --bundle FILE --rekor-key PEM "
                             "[--artifact FILE --key PEM] [--json]");
                        return 0;
                default:
                        return ATTEST_EXIT_USAGE;
                }
        if (!bundle || !rekor_key || (!artifact != !keyfile)) {
                fprintf(stderr, "rekor verify: --bundle and --rekor-key are required; --artifact and --key go together\n");
                return ATTEST_EXIT_USAGE;
        }
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        if ((r = attest_read_file("bundle", bundle, REKOR_MAX_DOCUMENT, &buf, &len)))
                return r;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *log = NULL, *signer = NULL;
        if ((r = load_key(json, rekor_key, &log)) || (keyfile && (r = load_key(json, keyfile, &signer))))
                return r;
        rekor_entry e;
        _cleanup_free_ char *err = NULL, *detail = NULL;
        if (rekor_bundle_parse(buf, len, &e, &err) < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", bundle, err ?: "not a Sigstore bundle");
        rekor_reason reason;
        int ex;
        if (rekor_verify_entry(&e, log, &reason, &detail) < 0)
                ex = attest_output(json, ATTEST_EXIT_REJECTED, json_pack("{s:s}", "check", "entry"), "%s: %s", bundle,
                                   detail ?: rekor_reason_to_string(reason));
        else if (artifact) {
                _cleanup_free_ uint8_t *data = NULL;
                size_t dl;
                if ((r = attest_read_file("artifact", artifact, 1u << 30, &data, &dl))) {
                        rekor_entry_done(&e);
                        return r;
                }
                uint8_t digest[32];
                SHA256(data, dl, digest);
                if (rekor_verify_body(&e, digest, signer, NULL, &reason) < 0)
                        ex = attest_output(json, ATTEST_EXIT_REJECTED, json_pack("{s:s}", "check", "body"), "%s: %s (%s)",
                                           bundle, rekor_reason_to_string(reason), artifact);
                else
                        ex = attest_output(json, 0, json_pack("{s:I}", "logIndex", (json_int_t) e.log_index),
                                           "%s: entry %" PRId64 " verified and records %s signed by %s", bundle,
                                           e.log_index, artifact, keyfile);
        } else
                ex = attest_output(json, 0, json_pack("{s:I}", "logIndex", (json_int_t) e.log_index),
                                   "%s: entry %" PRId64 " verified (SET, inclusion proof, checkpoint)", bundle, e.log_index);
        rekor_entry_done(&e);
        return ex;
}

int attest_cmd_rekor(int argc, char **argv) {
        if (argc >= 2 && streq(argv[1], "verify"))
                return verify(argc - 1, argv + 1);
        fprintf(stderr, "Usage: constellation-attest rekor verify --bundle FILE --rekor-key PEM\n");
        return ATTEST_EXIT_USAGE;
}
