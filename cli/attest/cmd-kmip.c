/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest kmip ACTION: the operator's side of "hold your own key" (lib/kmip/README.md).
 *
 *   create-kek [--name NAME]                   AES-256 KEK (Encrypt|Decrypt) created and activated
 *                                              inside the KMIP server; prints its unique identifier
 *   check --kek UID                            connectivity (TLS, client certificate, pinned CA) and
 *                                              the KEK's state, algorithm, length and usage mask
 *   wrap-master-secret --kek UID --secret-file FILE --salt-file FILE [--inline] [--out FILE]
 *                                              wraps the master secret under the KEK (one Encrypt in
 *                                              the server), checks the round trip (one Decrypt) and
 *                                              prints the kms://kmip URI (or writes it, 0600)
 *   revoke --kek UID [--compromised]           Deactivated (or Compromised): the cluster's keys can no
 *                                              longer be unwrapped (crypto-shredding, reversible by no one)
 *   destroy --kek UID                          revokes if still Active, then destroys
 *
 * Connection options for every action: --endpoint HOST:PORT --client-cert FILE --client-key FILE
 * --server-ca FILE [--server-name NAME] [--timeout-ms N] [--json].
 *
 * The master secret and salt come from hex files ("-": standard input), never from the command
 * line (see cmd-derive.c). With --inline the URI carries the client certificate, key and CA in
 * base64url: it is then a credential and only written to --out FILE (mode 0600).
 * Exit codes: 0 ok, 1 refused (KMIP error, TLS refusal, KEK not usable), 2 usage, 3 file, 4 the
 * server could not be reached or did not answer. */
#include <getopt.h>
#include <stdio.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "commands.h"
#include "kmip/wrap.h"
#include "output.h"

#define KMIP_CLI_MAX_INPUT (64 * 1024)

static const char kmip_usage[] =
        "Usage: constellation-attest kmip ACTION --endpoint HOST:PORT --client-cert FILE --client-key FILE\n"
        "                                 --server-ca FILE [--server-name NAME] [--timeout-ms N] [--json]\n"
        "Actions:\n"
        "  create-kek [--name NAME]\n"
        "  check --kek UID\n"
        "  wrap-master-secret --kek UID --secret-file FILE --salt-file FILE [--inline] [--out FILE]\n"
        "  revoke --kek UID [--compromised]\n"
        "  destroy --kek UID\n";

struct kmip_opts {
        const char *endpoint, *client_cert, *client_key, *server_ca, *server_name, *timeout_ms;
        const char *kek, *name, *secret_file, *salt_file, *out;
        bool inline_creds, compromised, json;
};

/* Maps a kmip ct_error to an exit code and prints it once. */
static int report_error(const struct kmip_opts *o, const char *action, const ct_error *err) {
        char buf[1024];
        ct_error_format(err, buf, sizeof(buf));
        bool unreachable = err->reason && (streq(err->reason, "server-down") || streq(err->reason, "server-timeout"));
        json_t *extra = json_object();
        json_object_set_new(extra, "layer", json_string(err->layer ? err->layer : ""));
        json_object_set_new(extra, "kmip_reason", json_string(err->reason ? err->reason : ""));
        return attest_output(o->json, unreachable ? ATTEST_EXIT_UNREACHABLE : ATTEST_EXIT_REJECTED, extra,
                             "kmip %s: %s", action, buf);
}

static int connect_client(const struct kmip_opts *o, kmip_client **ret, ct_error *err) {
        kmip_uri_params p = { .endpoint = o->endpoint, .server_name = o->server_name, .client_cert = o->client_cert,
                              .client_key = o->client_key, .server_ca = o->server_ca,
                              .timeout_ms = o->timeout_ms };
        kmip_config cfg;
        int r = kmip_config_from_params(&p, &cfg, err);
        if (r < 0)
                return r;
        r = kmip_client_new(&cfg, ret, err);
        kmip_config_done(&cfg);
        return r;
}

static int read_hex_secret(const struct kmip_opts *o, const char *option, const char *path, secret_t **ret) {
        _cleanup_secret_ secret_t *raw = NULL;
        const char *shown = streq(path, "-") ? "(standard input)" : path;
        int r = secret_read_file(path, KMIP_CLI_MAX_INPUT, &raw);
        if (r < 0)
                return attest_output(o->json, ATTEST_EXIT_IO, NULL, "kmip wrap-master-secret: %s %s: %s", option,
                                     shown, strerror(-r));
        r = secret_from_hex((const char *) raw->data, raw->len, ret);
        if (r < 0)
                return attest_output(o->json, ATTEST_EXIT_USAGE, NULL,
                                     "kmip wrap-master-secret: %s %s: not hex", option, shown);
        return 0;
}

/* "base64:<base64url of the file>" for --inline. */
static int inline_ref(const struct kmip_opts *o, const char *option, const char *path, char **ret) {
        _cleanup_secret_ secret_t *data = NULL;
        int r = secret_read_file(path, KMIP_CLI_MAX_INPUT, &data);
        if (r < 0)
                return attest_output(o->json, ATTEST_EXIT_IO, NULL, "kmip wrap-master-secret: %s %s: %s", option,
                                     path, strerror(-r));
        _cleanup_erase_free_ char *b = base64_encode(data->data, data->len, BASE64_URL_RAW);
        if (!b || asprintf(ret, "base64:%s", b) < 0)
                return attest_output(o->json, ATTEST_EXIT_REJECTED, NULL, "kmip: out of memory");
        return 0;
}

static int do_wrap(const struct kmip_opts *o, kmip_client *c) {
        if (!o->kek || !o->secret_file || !o->salt_file) {
                fprintf(stderr, "kmip wrap-master-secret: --kek, --secret-file and --salt-file are required\n");
                return ATTEST_EXIT_USAGE;
        }
        if (streq(o->secret_file, "-") && streq(o->salt_file, "-")) {
                fprintf(stderr, "kmip wrap-master-secret: only one of --secret-file and --salt-file can be \"-\"\n");
                return ATTEST_EXIT_USAGE;
        }
        if (o->inline_creds && !o->out) {
                fprintf(stderr, "kmip wrap-master-secret: --inline puts the client key into the URI; write it with "
                                "--out FILE (0600), not to standard output\n");
                return ATTEST_EXIT_USAGE;
        }
        int r = process_harden_secrets();
        if (r < 0)
                return attest_output(o->json, ATTEST_EXIT_REJECTED, NULL,
                                     "kmip wrap-master-secret: cannot make the process non-dumpable (%s)", strerror(-r));
        _cleanup_secret_ secret_t *master = NULL, *salt = NULL, *back = NULL;
        if ((r = read_hex_secret(o, "--secret-file", o->secret_file, &master)) != 0 ||
            (r = read_hex_secret(o, "--salt-file", o->salt_file, &salt)) != 0)
                return r;
        if (salt->len < 32)
                return attest_output(o->json, ATTEST_EXIT_USAGE, NULL,
                                     "kmip wrap-master-secret: --salt-file: %zu bytes, at least 32 are needed", salt->len);
        ct_error err = CT_ERROR_INIT;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t blob_len = 0;
        r = kmip_wrap_master_secret(c, o->kek, master, salt, &blob, &blob_len, &err);
        if (r < 0)
                return report_error(o, "wrap-master-secret", &err);
        /* Round trip before anyone relies on the URI. */
        r = kmip_unwrap_master_secret(c, o->kek, blob, blob_len, salt, &back, &err);
        if (r < 0)
                return report_error(o, "wrap-master-secret (round trip)", &err);
        if (!ct_memeq(back->data, back->len, master->data, master->len))
                return attest_output(o->json, ATTEST_EXIT_REJECTED, NULL,
                                     "kmip wrap-master-secret: the server's Decrypt did not return the master secret");

        _cleanup_erase_free_ char *cert = NULL, *key = NULL, *ca = NULL;
        if (o->inline_creds) {
                if ((r = inline_ref(o, "--client-cert", o->client_cert, &cert)) != 0 ||
                    (r = inline_ref(o, "--client-key", o->client_key, &key)) != 0 ||
                    (r = inline_ref(o, "--server-ca", o->server_ca, &ca)) != 0)
                        return r;
        }
        kmip_uri_parts parts = {
                .endpoint = o->endpoint, .kek = o->kek,
                .client_cert = cert ? cert : o->client_cert, .client_key = key ? key : o->client_key,
                .server_ca = ca ? ca : o->server_ca, .server_name = o->server_name,
                .wrapped = blob, .wrapped_len = blob_len, .salt = salt,
        };
        _cleanup_erase_free_ char *uri = NULL;
        r = kmip_uri_build(&parts, &uri, &err);
        if (r < 0)
                return report_error(o, "wrap-master-secret", &err);
        if (o->out) {
                r = write_file_atomic(o->out, uri, strlen(uri), 0600);
                if (r < 0)
                        return attest_output(o->json, ATTEST_EXIT_IO, NULL, "kmip wrap-master-secret: --out %s: %s",
                                             o->out, strerror(-r));
                json_t *extra = json_pack("{s:s, s:s}", "kek", o->kek, "out", o->out);
                return attest_output(o->json, 0, extra, "kmip: wrapped the master secret under KEK %s; kms://kmip URI written to %s",
                                     o->kek, o->out);
        }
        /* Without --inline the URI holds file paths, the public wrapped blob and the salt. */
        json_t *extra = json_pack("{s:s, s:s}", "kek", o->kek, "kms_uri", uri);
        if (o->json)
                return attest_output(true, 0, extra, "wrapped");
        json_decref(extra);
        printf("%s\n", uri);
        return 0;
}

static int do_check(const struct kmip_opts *o, kmip_client *c) {
        if (!o->kek) {
                fprintf(stderr, "kmip check: --kek is required\n");
                return ATTEST_EXIT_USAGE;
        }
        ct_error err = CT_ERROR_INIT;
        kmip_key_info info;
        int r = kmip_get_key_info(c, o->kek, &info, &err);
        if (r < 0)
                return report_error(o, "check", &err);
        json_t *extra = json_pack("{s:s, s:s, s:i, s:i}", "kek", o->kek, "state", kmip_state_to_string(info.state),
                                  "length", info.length, "usage_mask", info.usage_mask);
        const char *problem = NULL;
        if (info.state != KMIP_STATE_ACTIVE)
                problem = "it is not Active";
        else if (info.algorithm != 3 || info.length != 256)
                problem = "it is not an AES-256 key";
        else if ((info.usage_mask & (KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT)) !=
                 (KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT))
                problem = "its usage mask lacks Encrypt or Decrypt";
        if (problem)
                return attest_output(o->json, ATTEST_EXIT_REJECTED, extra,
                                     "kmip check: KEK %s is %s: cannot wrap or unwrap: %s", o->kek,
                                     kmip_state_to_string(info.state), problem);
        return attest_output(o->json, 0, extra, "kmip: %s reachable, KEK %s Active, AES-256, Encrypt|Decrypt",
                             o->endpoint, o->kek);
}

int attest_cmd_kmip(int argc, char **argv) {
        static const struct option opts[] = {
                { "endpoint", required_argument, NULL, 'e' },    { "client-cert", required_argument, NULL, 'c' },
                { "client-key", required_argument, NULL, 'k' },  { "server-ca", required_argument, NULL, 'a' },
                { "server-name", required_argument, NULL, 'n' }, { "timeout-ms", required_argument, NULL, 't' },
                { "kek", required_argument, NULL, 'K' },         { "name", required_argument, NULL, 'N' },
                { "secret-file", required_argument, NULL, 's' }, { "salt-file", required_argument, NULL, 'S' },
                { "out", required_argument, NULL, 'o' },         { "inline", no_argument, NULL, 'i' },
                { "compromised", no_argument, NULL, 'C' },       { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },              {},
        };
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                fputs(kmip_usage, argc < 2 ? stderr : stdout);
                return argc < 2 ? ATTEST_EXIT_USAGE : 0;
        }
        const char *action = argv[1];
        struct kmip_opts o = { 0 };
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc - 1, argv + 1, "", opts, NULL)) >= 0)
                switch (ch) {
                case 'e': o.endpoint = optarg; break;
                case 'c': o.client_cert = optarg; break;
                case 'k': o.client_key = optarg; break;
                case 'a': o.server_ca = optarg; break;
                case 'n': o.server_name = optarg; break;
                case 't': o.timeout_ms = optarg; break;
                case 'K': o.kek = optarg; break;
                case 'N': o.name = optarg; break;
                case 's': o.secret_file = optarg; break;
                case 'S': o.salt_file = optarg; break;
                case 'o': o.out = optarg; break;
                case 'i': o.inline_creds = true; break;
                case 'C': o.compromised = true; break;
                case 'j': o.json = true; break;
                case 'h': fputs(kmip_usage, stdout); return 0;
                default: return ATTEST_EXIT_USAGE;
                }
        if (optind < argc - 1) {
                fprintf(stderr, "kmip: unexpected argument \"%s\"\n", argv[optind + 1]);
                return ATTEST_EXIT_USAGE;
        }
        static const char *const actions[] = { "create-kek", "check", "wrap-master-secret", "revoke", "destroy" };
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                known = known || streq(action, actions[i]);
        if (!known) {
                fprintf(stderr, "kmip: unknown action \"%s\"\n%s", action, kmip_usage);
                return ATTEST_EXIT_USAGE;
        }
        if (!o.endpoint || !o.client_cert || !o.client_key || !o.server_ca) {
                fprintf(stderr, "kmip %s: --endpoint, --client-cert, --client-key and --server-ca are required\n", action);
                return ATTEST_EXIT_USAGE;
        }
        ct_error err = CT_ERROR_INIT;
        _cleanup_(kmip_client_freep) kmip_client *c = NULL;
        int r = connect_client(&o, &c, &err);
        if (r < 0) {
                /* A file that cannot be read or is not PEM: exit 3 with what and where. */
                char buf[1024];
                return attest_output(o.json, ATTEST_EXIT_IO, NULL, "kmip %s: %s", action,
                                     ct_error_format(&err, buf, sizeof(buf)));
        }

        if (streq(action, "create-kek")) {
                _cleanup_free_ char *uid = NULL;
                r = kmip_create_aes_key(c, 256, KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT, o.name, &uid, &err);
                if (r >= 0)
                        r = kmip_activate(c, uid, &err);
                if (r < 0)
                        return report_error(&o, action, &err);
                if (!o.json) {
                        printf("%s\n", uid); /* scripts take the identifier from stdout */
                        return 0;
                }
                return attest_output(true, 0, json_pack("{s:s}", "kek", uid),
                                     "created and activated an AES-256 KEK (Encrypt|Decrypt)");
        }
        if (streq(action, "check"))
                return do_check(&o, c);
        if (streq(action, "wrap-master-secret"))
                return do_wrap(&o, c);
        if (!o.kek) {
                fprintf(stderr, "kmip %s: --kek is required\n", action);
                return ATTEST_EXIT_USAGE;
        }
        if (streq(action, "revoke")) {
                r = kmip_revoke(c, o.kek, o.compromised ? KMIP_REVOKE_KEY_COMPROMISE : KMIP_REVOKE_CESSATION_OF_OPERATION,
                                &err);
                if (r < 0)
                        return report_error(&o, action, &err);
                return attest_output(o.json, 0, json_pack("{s:s}", "kek", o.kek),
                                     "kmip: KEK %s revoked (%s): clusters wrapped under it can no longer unwrap their "
                                     "master secret",
                                     o.kek, o.compromised ? "Compromised" : "Deactivated");
        }
        /* destroy */
        kmip_key_info info;
        r = kmip_get_key_info(c, o.kek, &info, &err);
        if (r >= 0 && info.state == KMIP_STATE_ACTIVE)
                r = kmip_revoke(c, o.kek, KMIP_REVOKE_CESSATION_OF_OPERATION, &err);
        if (r >= 0)
                r = kmip_destroy(c, o.kek, &err);
        if (r < 0)
                return report_error(&o, action, &err);
        return attest_output(o.json, 0, json_pack("{s:s}", "kek", o.kek),
                             "kmip: KEK %s destroyed: data wrapped under it is crypto-shredded", o.kek);
}
