/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest verify --endpoint HOST:PORT --cluster-id ID
 *     (--measurements FILE | --attestation-config FILE) [--timeout SECONDS] [--json]
 *
 * Constellation's `constellation verify` against a node's verification service: a fresh 32-byte
 * nonce to /verify.API/GetAttestation (plain gRPC, :30081), then the qemu-vtpm document is
 * validated: quote over the nonce and user data "VerifyService", the expected measurements, and
 * PCR 15 = SHA-256(0^32 || SHA-256(cluster ID)) (reference constellation.md §5.4), which this
 * command adds as an enforced measurement (replacing any PCR 15 entry of the file).
 *
 * The cluster ID is 32 bytes as 64 hex digits, or standard base64 as Constellation prints it
 * (constellation-id.json "clusterID"). --measurements takes a measurement map or
 * {"measurements": map} (measurements.json); --attestation-config takes the provider's
 * `attestation` object ({"variant":"qemu-vtpm","measurements":{"4":{"expected":..,"warn_only":..}}}),
 * e.g. `terraform output -json attestation`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/encoding.h"
#include "commands.h"
#include "measurements/measurements.h"
#include "output.h"
#include "verifyclient/verifyclient.h"

static void usage(FILE *f) {
        fputs("Usage: constellation-attest verify --endpoint HOST:PORT --cluster-id ID\n"
              "           (--measurements FILE | --attestation-config FILE) [--timeout SECONDS] [--json]\n"
              "Asks a node's verification service for its attestation with a fresh nonce and checks it\n"
              "against the measurements and PCR 15 = the cluster ID (64 hex digits or base64).\n",
              f);
}

static int parse_cluster_id(const char *s, uint8_t ret[32]) {
        if (strlen(s) == 64)
                return hex_decode_exact(s, ret, 32);
        _cleanup_free_ uint8_t *b = NULL;
        size_t n = 0;
        if (base64_decode(s, strlen(s), BASE64_STD, &b, &n) < 0 || n != 32)
                return -EINVAL;
        memcpy(ret, b, 32);
        return 0;
}

/* The provider's attestation object: variant must be qemu-vtpm; measurements with warn_only. */
static int parse_attestation_config(const uint8_t *buf, size_t len, measurements *ret, char **ret_error) {
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(j))
                return asprintf(ret_error, "not a JSON object (%s)", j ? "another JSON value" : jerr.text) < 0
                               ? -ENOMEM
                               : -EBADMSG;
        json_t *variant = json_object_get(j, "variant");
        if (variant && !json_is_null(variant) &&
            (!json_is_string(variant) || !streq(json_string_value(variant), "qemu-vtpm")))
                return asprintf(ret_error, "variant: \"%s\" is not supported (qemu-vtpm only)",
                                json_is_string(variant) ? json_string_value(variant) : "?") < 0
                               ? -ENOMEM
                               : -EOPNOTSUPP;
        json_t *m = json_object_get(j, "measurements");
        if (!json_is_object(m))
                return asprintf(ret_error, "measurements: missing or not an object") < 0 ? -ENOMEM : -EBADMSG;
        /* Terraform's warn_only -> measurements.json's warnOnly */
        _cleanup_(json_decrefp) json_t *map = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v) {
                json_t *e = json_is_object(v) ? json_deep_copy(v) : json_incref(v);
                json_t *w = json_is_object(e) ? json_object_get(e, "warn_only") : NULL;
                if (w) {
                        json_object_set(e, "warnOnly", w);
                        json_object_del(e, "warn_only");
                }
                json_object_set_new(map, k, e);
        }
        return measurements_parse_map(map, ret, ret_error);
}

int attest_cmd_verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "endpoint", required_argument, NULL, 'e' },
                { "cluster-id", required_argument, NULL, 'c' },
                { "measurements", required_argument, NULL, 'm' },
                { "attestation-config", required_argument, NULL, 'a' },
                { "timeout", required_argument, NULL, 't' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *endpoint = NULL, *cluster_id_s = NULL, *mfile = NULL, *afile = NULL;
        long timeout_s = 30;
        bool json = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'e': endpoint = optarg; break;
                case 'c': cluster_id_s = optarg; break;
                case 'm': mfile = optarg; break;
                case 'a': afile = optarg; break;
                case 't':
                        if (attest_parse_timeout("verify", optarg, 3600, &timeout_s) < 0)
                                return ATTEST_EXIT_USAGE;
                        break;
                case 'j': json = true; break;
                case 'h': usage(stdout); return ATTEST_EXIT_OK;
                default: usage(stderr); return ATTEST_EXIT_USAGE;
                }
        if (optind < argc || !endpoint || !cluster_id_s || !mfile == !afile) {
                fprintf(stderr, "verify: --endpoint, --cluster-id and one of --measurements or --attestation-config "
                                "are required\n");
                usage(stderr);
                return ATTEST_EXIT_USAGE;
        }
        uint8_t cluster_id[32];
        if (parse_cluster_id(cluster_id_s, cluster_id) < 0) {
                fprintf(stderr, "verify: --cluster-id: not 32 bytes as 64 hex digits or base64\n");
                return ATTEST_EXIT_USAGE;
        }

        const char *file = mfile ?: afile;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = attest_read_file(mfile ? "measurements" : "attestation config", file, MEASUREMENTS_MAX_FILE, &buf, &len);
        if (r)
                return r;
        measurements m = { 0 };
        _cleanup_free_ char *perr = NULL;
        r = mfile ? measurements_parse(buf, len, &m, &perr) : parse_attestation_config(buf, len, &m, &perr);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", file, perr ?: strerror(-r));

        /* lib/verifyclient: a fresh nonce, the document validated against m and PCR 15 = the cluster ID
         * (replacing any PCR 15 entry of the file), as the provider's constellation_cluster does. */
        ct_error err = CT_ERROR_INIT;
        _cleanup_free_ char *warnings = NULL;
        r = verifyclient_verify(endpoint, &m, cluster_id, (int64_t) timeout_s * 1000, &warnings, &err);
        if (r < 0 && streq(err.reason ?: "", VERIFYCLIENT_REASON_MEASUREMENTS))
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", file, err.detail);
        if (r < 0 && (!ct_error_is_set(&err) || streq(err.reason, VERIFYCLIENT_REASON_UNREACHABLE) ||
                      streq(err.reason, VERIFYCLIENT_REASON_RPC_STATUS) || streq(err.reason, VERIFYCLIENT_REASON_PROTOCOL)))
                return attest_output(json, ATTEST_EXIT_UNREACHABLE, NULL, "%s", ct_error_is_set(&err) ? err.detail : strerror(-r));
        json_t *extra = json ? json_object() : NULL;
        if (extra) {
                json_object_set_new(extra, "endpoint", json_string(endpoint));
                _cleanup_free_ char *hex = hex_encode(cluster_id, sizeof cluster_id);
                json_object_set_new(extra, "cluster_id", json_string(hex ?: ""));
                if (warnings)
                        json_object_set_new(extra, "warnings", json_string(warnings));
        }
        if (r < 0) {
                bool pcr15_failed = verifyclient_refused_pcr(&err) == VERIFYCLIENT_PCR_CLUSTER_ID;
                if (extra)
                        json_object_set_new(extra, "check", json_string(err.reason));
                return attest_output(json, ATTEST_EXIT_REJECTED, extra, "%s: %s: %s%s", endpoint, err.reason,
                                     pcr15_failed ? "PCR 15 (the cluster ID) differs: " : "", err.detail);
        }
        if (warnings && !json)
                fprintf(stderr, "%s", warnings);
        return attest_output(json, ATTEST_EXIT_OK, extra,
                             "%s: verified: measurements of %s and PCR 15 = cluster ID %s match", endpoint, file,
                             cluster_id_s);
}
