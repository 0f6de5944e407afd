/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest join-config sign --master-secret FILE --salt FILE --measurements FILE --version N [--out FILE]
 * constellation-attest join-config push --endpoint HOST:PORT --update FILE [--timeout S]
 *
 * Authenticated attestation config updates for the join service without Kubernetes (docs/node.md,
 * lib/joinconfig): `sign` makes {"version":N,"measurements":{...},"signature":...}, an HMAC-SHA256
 * with the data key "attestationConfigSigning" derived from the master secret (HKDF-SHA256, info
 * "key-attestationConfigSigning", as every Constellation data key), over the canonical encoding with
 * the version; the join service accepts it only if it verifies and N is greater than the version in
 * force. PCR 15 = 0 is added and enforced (a measurements file expecting another PCR 15 is refused).
 * `push` sends the signed file to a join service's update listener (:30091, plain gRPC: the update
 * authenticates itself); the service's refusal (signature-invalid, version-rollback, ...) is printed.
 *
 * The master secret and salt files hold hex (as derive and recover); they are read into locked
 * memory and never printed. Exit codes: 0 done, 1 refused (input or service), 2 usage, 3 file,
 * 4 unreachable. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/fileio.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "commands.h"
#include "crypto/hkdf.h"
#include "joinconfig/joinconfig.h"
#include "measurements/measurements.h"
#include "rpc/rpc.h"

static const char usage_text[] =
        "Usage: constellation-attest join-config sign --master-secret FILE --salt FILE --measurements FILE --version N [--out FILE]\n"
        "       constellation-attest join-config push --endpoint HOST:PORT --update FILE [--timeout SECONDS]\n"
        "  sign: a signed attestation config update for the join service (FILEs with the master secret and\n"
        "        its salt hold hex; the measurements file is Constellation's measurements JSON)\n"
        "  push: send it to a join service's update listener (default port 30091)\n";

static int read_hex(const char *opt, const char *path, secret_t **ret) {
        _cleanup_secret_ secret_t *raw = NULL;
        int r = secret_read_file(path, 64 * 1024, &raw);
        if (r < 0) {
                fprintf(stderr, "join-config: %s %s: %s\n", opt, path, strerror(-r));
                return ATTEST_EXIT_IO;
        }
        if (secret_from_hex((const char *) raw->data, raw->len, ret) < 0) {
                fprintf(stderr, "join-config: %s %s: not hex\n", opt, path);
                return ATTEST_EXIT_USAGE;
        }
        return 0;
}

static int cmd_sign(int argc, char **argv) {
        static const struct option opts[] = {
                { "master-secret", required_argument, NULL, 'm' }, { "salt", required_argument, NULL, 's' },
                { "measurements", required_argument, NULL, 'e' },  { "version", required_argument, NULL, 'v' },
                { "out", required_argument, NULL, 'o' },           { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *master_path = NULL, *salt_path = NULL, *meas_path = NULL, *out = NULL;
        unsigned long long version = 0;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'm': master_path = optarg; break;
                case 's': salt_path = optarg; break;
                case 'e': meas_path = optarg; break;
                case 'o': out = optarg; break;
                case 'v': {
                        char *end;
                        errno = 0;
                        version = strtoull(optarg, &end, 10);
                        if (errno || *end || optarg[0] == '-' || version < 1 || version > JOINCONFIG_MAX_VERSION) {
                                fprintf(stderr, "join-config sign: --version must be 1..2^53-1 and greater than "
                                                "the version in force\n");
                                return ATTEST_EXIT_USAGE;
                        }
                        break;
                }
                case 'h': fputs(usage_text, stdout); return 0;
                default: fputs(usage_text, stderr); return ATTEST_EXIT_USAGE;
                }
        if (!master_path || !salt_path || !meas_path || version == 0 || optind < argc) {
                fputs(usage_text, stderr);
                return ATTEST_EXIT_USAGE;
        }
        (void) process_harden_secrets();
        _cleanup_secret_ secret_t *master = NULL, *salt = NULL, *key = NULL;
        int r = read_hex("--master-secret", master_path, &master);
        if (r)
                return r;
        r = read_hex("--salt", salt_path, &salt);
        if (r)
                return r;
        if (master->len < 16 || salt->len < 32) {
                fprintf(stderr, "join-config sign: the master secret needs at least 16 bytes, the salt 32\n");
                return ATTEST_EXIT_USAGE;
        }
        _cleanup_free_ uint8_t *mbuf = NULL;
        size_t mlen = 0;
        r = read_full_file(meas_path, MEASUREMENTS_MAX_FILE, &mbuf, &mlen);
        if (r < 0) {
                fprintf(stderr, "join-config sign: --measurements %s: %s\n", meas_path, strerror(-r));
                return ATTEST_EXIT_IO;
        }
        measurements m;
        _cleanup_free_ char *why = NULL;
        if (measurements_parse(mbuf, mlen, &m, &why) < 0) {
                fprintf(stderr, "join-config sign: %s: %s\n", meas_path, why ?: "invalid");
                return ATTEST_EXIT_REJECTED;
        }
        if (kdf_data_key(master, salt, JOINCONFIG_SIGNING_KEY_ID, JOINCONFIG_SIGNING_KEY_LEN, &key) < 0) {
                fprintf(stderr, "join-config sign: key derivation failed\n");
                return ATTEST_EXIT_REJECTED;
        }
        ct_error err = CT_ERROR_INIT;
        _cleanup_free_ char *doc = NULL;
        if (joinconfig_update_sign(&m, version, key, &doc, &err) < 0) {
                char b[CT_ERROR_DETAIL_MAX + 64];
                fprintf(stderr, "join-config sign: %s: %s\n", meas_path, ct_error_format(&err, b, sizeof b));
                return ATTEST_EXIT_REJECTED;
        }
        if (out) {
                size_t n = strlen(doc);
                doc[n] = '\n';
                r = write_file_atomic(out, doc, n + 1, 0644);
                doc[n] = '\0';
                if (r < 0) {
                        fprintf(stderr, "join-config sign: --out %s: %s\n", out, strerror(-r));
                        return ATTEST_EXIT_IO;
                }
        } else
                printf("%s\n", doc);
        return 0;
}

static int cmd_push(int argc, char **argv) {
        static const struct option opts[] = {
                { "endpoint", required_argument, NULL, 'e' }, { "update", required_argument, NULL, 'u' },
                { "timeout", required_argument, NULL, 't' },  { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *endpoint = NULL, *path = NULL;
        long timeout = 30;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'e': endpoint = optarg; break;
                case 'u': path = optarg; break;
                case 't': {
                        char *end;
                        timeout = strtol(optarg, &end, 10);
                        if (*end || timeout < 1 || timeout > 3600) {
                                fprintf(stderr, "join-config push: --timeout must be 1..3600 seconds\n");
                                return ATTEST_EXIT_USAGE;
                        }
                        break;
                }
                case 'h': fputs(usage_text, stdout); return 0;
                default: fputs(usage_text, stderr); return ATTEST_EXIT_USAGE;
                }
        if (!endpoint || !path || optind < argc) {
                fputs(usage_text, stderr);
                return ATTEST_EXIT_USAGE;
        }
        _cleanup_free_ uint8_t *doc = NULL;
        size_t len = 0;
        int r = read_full_file(path, JOINCONFIG_MAX_SIZE, &doc, &len);
        if (r < 0 || len == 0) {
                fprintf(stderr, "join-config push: --update %s: %s\n", path, r < 0 ? strerror(-r) : "empty");
                return ATTEST_EXIT_IO;
        }
        /* UpdateAttestationConfigRequest { bytes signed_update = 1; } */
        _cleanup_free_ uint8_t *req = malloc(len + 8);
        if (!req)
                return ATTEST_EXIT_IO;
        size_t n = 0;
        req[n++] = 0x0a;
        for (size_t v = len;; v >>= 7) {
                req[n++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                if (v <= 0x7f)
                        break;
        }
        memcpy(req + n, doc, len);
        n += len;
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        if (rpc_channel_new(endpoint, NULL, NULL, &ch) < 0) {
                fprintf(stderr, "join-config push: %s: cannot make a channel\n", endpoint);
                return ATTEST_EXIT_UNREACHABLE;
        }
        uint8_t *resp = NULL;
        size_t resp_len = 0;
        rpc_status st = { 0 };
        r = rpc_unary(ch, "/joinconfig.API/UpdateAttestationConfig", req, n, timeout * 1000, &resp, &resp_len, &st);
        free(resp);
        if (r < 0 || st.code == GRPC_STATUS_UNAVAILABLE || st.code == GRPC_STATUS_DEADLINE_EXCEEDED) {
                fprintf(stderr, "join-config push: %s: no answer (%s)\n", endpoint,
                        r < 0 ? strerror(-r) : st.message ?: rpc_status_code_to_string(st.code));
                rpc_status_done(&st);
                return ATTEST_EXIT_UNREACHABLE;
        }
        if (st.code != GRPC_STATUS_OK) {
                fprintf(stderr, "join-config push: %s refused the update: %s: %s\n", endpoint,
                        rpc_status_code_to_string(st.code), st.message ?: "");
                rpc_status_done(&st);
                return ATTEST_EXIT_REJECTED;
        }
        rpc_status_done(&st);
        printf("%s: attestation config update accepted\n", endpoint);
        return 0;
}

int attest_cmd_join_config(int argc, char **argv) {
        if (argc >= 2 && streq(argv[1], "sign"))
                return cmd_sign(argc - 1, argv + 1);
        if (argc >= 2 && streq(argv[1], "push"))
                return cmd_push(argc - 1, argv + 1);
        if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "help"))) {
                fputs(usage_text, stdout);
                return 0;
        }
        fputs(usage_text, stderr);
        return ATTEST_EXIT_USAGE;
}
