/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest derive --secret HEX --salt HEX --info STRING [--length N] [--json]
 * HKDF-SHA256 exactly as Constellation derives keys (data keys use --info key-<id>). The secret is
 * read from the command line here for scripting and tests; the result is printed in hex. */
#include <getopt.h>
#include <stdio.h>

#include "basic/encoding.h"
#include "basic/secret.h"
#include "commands.h"
#include "crypto/hkdf.h"
#include "output.h"

int attest_cmd_derive(int argc, char **argv) {
        static const struct option opts[] = {
                { "secret", required_argument, NULL, 's' }, { "salt", required_argument, NULL, 'a' },
                { "info", required_argument, NULL, 'i' },   { "length", required_argument, NULL, 'l' },
                { "json", no_argument, NULL, 'j' },         { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *secret_hex = NULL, *salt_hex = NULL, *info = NULL;
        long length = 32;
        bool json = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 's': secret_hex = optarg; break;
                case 'a': salt_hex = optarg; break;
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
                        puts("Usage: constellation-attest derive --secret HEX --salt HEX --info STRING [--length N] [--json]");
                        return 0;
                default:
                        return ATTEST_EXIT_USAGE;
                }
        if (!secret_hex || !salt_hex || !info) {
                fprintf(stderr, "derive: --secret, --salt and --info are required\n");
                return ATTEST_EXIT_USAGE;
        }
        _cleanup_free_ uint8_t *secret = NULL, *salt = NULL;
        size_t secret_len, salt_len;
        if (hex_decode(secret_hex, strlen(secret_hex), &secret, &secret_len) < 0)
                return attest_output(json, ATTEST_EXIT_USAGE, NULL, "derive: --secret is not hex (even number of 0-9a-f digits)");
        if (hex_decode(salt_hex, strlen(salt_hex), &salt, &salt_len) < 0) {
                erase_memory(secret, secret_len);
                return attest_output(json, ATTEST_EXIT_USAGE, NULL, "derive: --salt is not hex (even number of 0-9a-f digits)");
        }
        _cleanup_secret_ secret_t *key = NULL;
        int r = hkdf_sha256(secret, secret_len, salt, salt_len, info, strlen(info), (size_t) length, &key);
        erase_memory(secret, secret_len);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "derive: %s", strerror(-r));
        _cleanup_erase_free_ char *hex = hex_encode(key->data, key->len);
        if (!hex)
                return ATTEST_EXIT_REJECTED;
        if (json)
                return attest_output(true, 0, json_pack("{s:s,s:i}", "key", hex, "length", (int) length), "derived");
        puts(hex);
        return 0;
}
