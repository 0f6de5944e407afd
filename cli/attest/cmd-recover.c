/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest recover --endpoint HOST:PORT (--master-secret FILE --salt FILE | --kms-uri-file FILE)
 *     --measurements FILE [--timeout SECONDS] [--json]
 *
 * Constellation's `constellation recover` against one node's disk-mapper (:9999): dial aTLS and
 * validate the node's qemu-vtpm attestation against the measurements (nothing is sent to a node
 * that does not attest), then /recoverproto.API/Recover{kms_uri, storage_uri} with
 *   kms_uri     = kms://cluster-kms?key=<base64url(master secret)>&salt=<base64url(salt)>
 *   storage_uri = storage://no-store
 * exactly as Constellation's CLI builds them (uri.MasterSecret.EncodeToURI: base64.URLEncoding
 * with padding, unescaped in the query). lib/kms (E1) decodes these; it has no encoder yet, so
 * recover_kms_uri() below is the one encoder (move it to lib/kms as kms_uri_cluster when it exists).
 * With --kms-uri-file the file holds the kms:// URI itself (a kms://kmip URI from `constellation-attest
 * kmip wrap-master-secret --inline --out FILE`: the node's disk-mapper unwraps the master secret at
 * the user's KMIP server, so the operator never holds it); its shape is checked and it is sent as
 * it is, with storage://no-store.
 *
 * The master secret and the salt are files of hex (as `derive`), never arguments; the URI that
 * carries them lives in wiped memory and is never printed. Exit codes: 0 the node unlocked its
 * state disk; 1 refused (the node's attestation, or the node refused the key: wrong-key); 2 usage;
 * 3 a file could not be read; 4 the endpoint could not be reached or did not answer. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "atls/atls.h"
#include "atls/qemu-vtpm.h"
#include "basic/encoding.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "commands.h"
#include "kms/kms.h"
#include "measurements/measurements.h"
#include "output.h"
#include "recover.pb-c.h"
#include "rpc/rpc.h"

#define RECOVER_METHOD "/recoverproto.API/Recover"
#define RECOVER_MAX_INPUT_FILE (64 * 1024)

static void usage(FILE *f) {
        fputs("Usage: constellation-attest recover --endpoint HOST:PORT\n"
              "           (--master-secret FILE --salt FILE | --kms-uri-file FILE)\n"
              "           --measurements FILE [--timeout SECONDS] [--json]\n"
              "Sends the KMS URI to a node's recovery server (disk-mapper, port 9999) over aTLS, after\n"
              "validating the node's qemu-vtpm attestation against the measurements. FILEs of the secret\n"
              "and the salt hold hex (\"-\": standard input for one of them); --kms-uri-file holds a kms://\n"
              "URI, e.g. kms://kmip?... from `constellation-attest kmip wrap-master-secret --inline --out`.\n",
              f);
}

/* kms://cluster-kms?key=…&salt=… (Constellation uri.MasterSecret.EncodeToURI). Wiped-on-free. */
static char *recover_kms_uri(const secret_t *master, const secret_t *salt) {
        _cleanup_erase_free_ char *k = base64_encode(master->data, master->len, BASE64_URL);
        _cleanup_erase_free_ char *s = base64_encode(salt->data, salt->len, BASE64_URL);
        if (!k || !s)
                return NULL;
        char *uri;
        if (asprintf(&uri, "kms://cluster-kms?key=%s&salt=%s", k, s) < 0)
                return NULL;
        return uri;
}

/* A kms:// URI from a file: one trailing newline dropped, no NUL, the shape of a kms:// URI (the
 * node refuses anything else; saying so here is clearer). The detail never quotes the URI (it may
 * carry the KMIP client key). */
static int read_kms_uri_file(bool json, const char *path, secret_t **ret) {
        _cleanup_secret_ secret_t *raw = NULL;
        const char *shown = streq(path, "-") ? "(standard input)" : path;
        int r = secret_read_file(path, KMS_MAX_URI + 2, &raw);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "recover: --kms-uri-file %s: %s", shown,
                                     r == -EFBIG ? "file too large (a kms:// URI has at most 4096 bytes)" : strerror(-r));
        if (raw->len > 0 && raw->data[raw->len - 1] == '\n')
                raw->data[--raw->len] = 0;
        if (raw->len > 0 && raw->data[raw->len - 1] == '\r')
                raw->data[--raw->len] = 0;
        if (memchr(raw->data, 0, raw->len))
                return attest_output(json, ATTEST_EXIT_USAGE, NULL, "recover: --kms-uri-file %s: contains a NUL byte", shown);
        /* A shape check only (the node parses it with lib/kms, which this program does not link):
         * kms://<backend>?<query>, printable ASCII without spaces. */
        const char *u = (const char *) raw->data;
        bool printable = true;
        for (size_t i = 0; i < raw->len; i++)
                printable &= raw->data[i] > 0x20 && raw->data[i] < 0x7f;
        const char *q = strchr(u, '?');
        if (!printable || strncmp(u, "kms://", 6) != 0 || !q || q == u + strlen("kms://"))
                return attest_output(json, ATTEST_EXIT_USAGE, NULL,
                                     "recover: --kms-uri-file %s: not a kms:// URI (kms://kmip?... or "
                                     "kms://cluster-kms?..., printable, no spaces)",
                                     shown);
        *ret = TAKE_PTR(raw);
        return 0;
}

static int read_hex(bool json, const char *option, const char *path, secret_t **ret) {
        _cleanup_secret_ secret_t *raw = NULL;
        const char *shown = streq(path, "-") ? "(standard input)" : path;
        int r = secret_read_file(path, RECOVER_MAX_INPUT_FILE, &raw);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "recover: %s %s: %s", option, shown,
                                     r == -EFBIG ? "file too large (more than 64 KiB)" : strerror(-r));
        r = secret_from_hex((const char *) raw->data, raw->len, ret);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_USAGE, NULL,
                                     "recover: %s %s: not hex (an even number of 0-9a-f digits, then optional whitespace)",
                                     option, shown);
        return 0;
}

int attest_cmd_recover(int argc, char **argv) {
        static const struct option opts[] = {
                { "endpoint", required_argument, NULL, 'e' },   { "master-secret", required_argument, NULL, 's' },
                { "salt", required_argument, NULL, 'a' },       { "measurements", required_argument, NULL, 'm' },
                { "timeout", required_argument, NULL, 't' },    { "json", no_argument, NULL, 'j' },
                { "kms-uri-file", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *endpoint = NULL, *secret_path = NULL, *salt_path = NULL, *mfile = NULL, *uri_path = NULL;
        long timeout_s = 60;
        bool json = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'e': endpoint = optarg; break;
                case 's': secret_path = optarg; break;
                case 'a': salt_path = optarg; break;
                case 'm': mfile = optarg; break;
                case 'u': uri_path = optarg; break;
                case 't':
                        if (attest_parse_timeout("recover", optarg, 3600, &timeout_s) < 0)
                                return ATTEST_EXIT_USAGE;
                        break;
                case 'j': json = true; break;
                case 'h': usage(stdout); return ATTEST_EXIT_OK;
                default: usage(stderr); return ATTEST_EXIT_USAGE;
                }
        if (optind < argc || !endpoint || !mfile || (uri_path ? (secret_path || salt_path) : (!secret_path || !salt_path))) {
                fprintf(stderr, "recover: --endpoint, --measurements and either --master-secret and --salt, or "
                                "--kms-uri-file, are required\n");
                usage(stderr);
                return ATTEST_EXIT_USAGE;
        }
        if (!uri_path && streq(secret_path, "-") && streq(salt_path, "-")) {
                fprintf(stderr, "recover: only one of --master-secret and --salt can be standard input\n");
                return ATTEST_EXIT_USAGE;
        }
        int r = process_harden_secrets();
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "recover: cannot protect the process (%s)", strerror(-r));

        /* The KMS URI, in wiped memory. */
        _cleanup_secret_ secret_t *uri = NULL;
        if (uri_path) {
                if ((r = read_kms_uri_file(json, uri_path, &uri)) != 0)
                        return r;
        } else {
                _cleanup_secret_ secret_t *master = NULL, *salt = NULL;
                if ((r = read_hex(json, "--master-secret", secret_path, &master)) != 0 ||
                    (r = read_hex(json, "--salt", salt_path, &salt)) != 0)
                        return r;
                /* The node's KMS refuses these too; saying so here is clearer than a remote error. */
                if (master->len < KMS_MASTER_SECRET_MIN)
                        return attest_output(json, ATTEST_EXIT_USAGE, NULL,
                                             "recover: --master-secret: %zu bytes (at least %d)", master->len,
                                             KMS_MASTER_SECRET_MIN);
                if (salt->len < KMS_SALT_MIN)
                        return attest_output(json, ATTEST_EXIT_USAGE, NULL, "recover: --salt: %zu bytes (at least %d)",
                                             salt->len, KMS_SALT_MIN);
                _cleanup_erase_free_ char *s = recover_kms_uri(master, salt);
                if (!s || !(uri = secret_new_copy(s, strlen(s))))
                        return attest_output(json, ATTEST_EXIT_IO, NULL, "recover: out of memory");
        }

        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        r = attest_read_file("measurements", mfile, MEASUREMENTS_MAX_FILE, &buf, &len);
        if (r)
                return r;
        measurements m = { 0 };
        _cleanup_free_ char *perr = NULL;
        r = measurements_parse(buf, len, &m, &perr);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", mfile, perr ?: strerror(-r));
        attdoc_measurement am[MEASUREMENTS_MAX_INDEX + 1];
        for (size_t i = 0; i < m.n; i++) {
                if (m.items[i].len != 32)
                        return attest_output(json, ATTEST_EXIT_REJECTED, NULL,
                                             "%s: PCR %u: %zu-byte value, qemu-vtpm PCRs are 32-byte SHA-256", mfile,
                                             m.items[i].index, m.items[i].len);
                am[i] = (attdoc_measurement){ .index = m.items[i].index, .expected_len = 32,
                                              .warn_only = m.items[i].warn_only };
                memcpy(am[i].expected, m.items[i].expected, 32);
        }
        atls_qemu_vtpm_policy policy = { .measurements = am, .n_measurements = m.n };
        atls_validator validator = atls_qemu_vtpm_validator(&policy);
        atls_config cfg = { .validators = &validator, .n_validators = 1,
                            .handshake_timeout_ms = (int64_t) timeout_s * 1000 };

        /* The request, packed into wiped memory. */
        Recoverproto__RecoverMessage req = RECOVERPROTO__RECOVER_MESSAGE__INIT;
        req.kms_uri = (char *) uri->data;
        req.storage_uri = (char *) KMS_URI_NO_STORE;
        size_t req_len = recoverproto__recover_message__get_packed_size(&req);
        _cleanup_secret_ secret_t *packed = secret_new(req_len);
        if (!packed)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "recover: out of memory");
        recoverproto__recover_message__pack(&req, packed->data);

        atls_error aerr = { 0 };
        _cleanup_(atls_conn_freep) atls_conn *conn = NULL;
        r = atls_dial(endpoint, &cfg, NULL, &conn, &aerr);
        if (r < 0) {
                bool refused = aerr.reason >= ATLS_REASON_NO_CERTIFICATE && aerr.reason <= ATLS_REASON_EVIDENCE_POLICY;
                return attest_output(json, refused ? ATTEST_EXIT_REJECTED : ATTEST_EXIT_UNREACHABLE, NULL,
                                     "%s: %s, nothing was sent: %s: %s", endpoint,
                                     refused ? "the node was not accepted" : "no aTLS connection to the node",
                                     atls_reason_to_string(aerr.reason), aerr.detail);
        }
        _cleanup_free_ uint8_t *resp = NULL;
        size_t resp_len = 0;
        rpc_status st = { 0 };
        r = rpc_unary(atls_conn_channel(conn), RECOVER_METHOD, packed->data, packed->len, (int64_t) timeout_s * 1000,
                      &resp, &resp_len, &st);
        if (r < 0) {
                rpc_status_done(&st);
                return attest_output(json, ATTEST_EXIT_UNREACHABLE, NULL, "%s %s: %s", endpoint, RECOVER_METHOD,
                                     strerror(-r));
        }
        if (st.code != GRPC_STATUS_OK) {
                bool unreachable = st.code == GRPC_STATUS_UNAVAILABLE || st.code == GRPC_STATUS_DEADLINE_EXCEEDED;
                json_t *extra = json ? json_pack("{s:s}", "status", rpc_status_code_to_string(st.code)) : NULL;
                r = attest_output(json, unreachable ? ATTEST_EXIT_UNREACHABLE : ATTEST_EXIT_REJECTED, extra,
                                  "%s %s: %s: %s", endpoint, RECOVER_METHOD, rpc_status_code_to_string(st.code),
                                  st.message ?: "(no message)");
                rpc_status_done(&st);
                return r;
        }
        rpc_status_done(&st);
        return attest_output(json, ATTEST_EXIT_OK, NULL,
                             "%s: recovered: the node's state disk opens with the key from the %s", endpoint,
                             uri_path ? "KMS URI" : "master secret");
}
