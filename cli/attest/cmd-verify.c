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
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>

#include "attestation/attdoc.h"
#include "basic/encoding.h"
#include "commands.h"
#include "crypto/hkdf.h"
#include "measurements/measurements.h"
#include "output.h"
#include "rpc/rpc.h"
#include "verify.pb-c.h"

#define VERIFY_METHOD "/verify.API/GetAttestation"
#define VERIFY_USER_DATA "VerifyService"
#define VERIFY_NONCE_SIZE 32
#define VERIFY_PCR_CLUSTER_ID 15 /* constellation.md §5.4 */
#define VERIFY_MAX_RESPONSE (16 * 1024 * 1024)

/* Stable tokens for messages and --json (attdoc_reason_to_string is a sentence). */
static const char *reason_token(attdoc_reason r) {
        switch (r) {
        case ATTDOC_OK: return "ok";
        case ATTDOC_MALFORMED: return "document-malformed";
        case ATTDOC_AK_INVALID: return "ak-invalid";
        case ATTDOC_AK_NOT_RESTRICTED: return "ak-not-restricted";
        case ATTDOC_NO_SHA256_QUOTE: return "no-sha256-quote";
        case ATTDOC_QUOTE_INVALID: return "quote-invalid";
        case ATTDOC_EVENTLOG_INVALID: return "eventlog-invalid";
        case ATTDOC_EVENTLOG_MISMATCH: return "eventlog-mismatch";
        case ATTDOC_MEASUREMENT_MISSING: return "measurement-missing";
        case ATTDOC_MEASUREMENT_MISMATCH: return "measurement-mismatch";
        case ATTDOC_USER_DATA_MISMATCH: return "user-data-mismatch";
        default: return "refused";
        }
}

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

static int get_attestation(const char *endpoint, const uint8_t *nonce, int64_t timeout_ms, uint8_t **ret_doc,
                           size_t *ret_len, char **ret_error) {
        Verify__GetAttestationRequest req = VERIFY__GET_ATTESTATION_REQUEST__INIT;
        req.nonce.data = (uint8_t *) nonce;
        req.nonce.len = VERIFY_NONCE_SIZE;
        uint8_t reqbuf[64];
        size_t reqlen = verify__get_attestation_request__pack(&req, reqbuf);

        rpc_channel_options opts = { .max_receive_message_length = VERIFY_MAX_RESPONSE };
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        int r = rpc_channel_new(endpoint, NULL, &opts, &ch);
        if (r < 0)
                return asprintf(ret_error, "%s: cannot create a gRPC channel: %s", endpoint, strerror(-r)) < 0 ? -ENOMEM : r;
        _cleanup_free_ uint8_t *resp = NULL;
        size_t resp_len = 0;
        rpc_status st = { 0 };
        r = rpc_unary(ch, VERIFY_METHOD, reqbuf, reqlen, timeout_ms, &resp, &resp_len, &st);
        if (r < 0 || st.code != GRPC_STATUS_OK) {
                int k = asprintf(ret_error, "%s %s: %s%s%s", endpoint, VERIFY_METHOD,
                                 r < 0 ? strerror(-r) : rpc_status_code_to_string(st.code), st.message ? ": " : "",
                                 st.message ?: "");
                rpc_status_done(&st);
                return k < 0 ? -ENOMEM : -EIO;
        }
        rpc_status_done(&st);
        Verify__GetAttestationResponse *m = verify__get_attestation_response__unpack(NULL, resp_len, resp);
        if (!m || m->attestation.len == 0) {
                if (m)
                        verify__get_attestation_response__free_unpacked(m, NULL);
                return asprintf(ret_error, "%s: GetAttestationResponse is malformed or empty", endpoint) < 0 ? -ENOMEM
                                                                                                             : -EBADMSG;
        }
        uint8_t *doc = malloc(m->attestation.len + 1);
        if (doc) {
                memcpy(doc, m->attestation.data, m->attestation.len);
                doc[m->attestation.len] = '\0';
                *ret_len = m->attestation.len;
        }
        verify__get_attestation_response__free_unpacked(m, NULL);
        if (!doc)
                return -ENOMEM;
        *ret_doc = doc;
        return 0;
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

        for (size_t i = 0; i < m.n; i++)
                if (m.items[i].len != 32)
                        return attest_output(json, ATTEST_EXIT_REJECTED, NULL,
                                             "%s: PCR %u: %zu-byte value, qemu-vtpm PCRs are 32-byte SHA-256", file,
                                             m.items[i].index, m.items[i].len);
        /* PCR 15 = the cluster ID, enforced (constellation verify does the same). */
        uint8_t pcr15[32];
        kdf_expected_pcr15(cluster_id, pcr15);
        if (measurements_set(&m, VERIFY_PCR_CLUSTER_ID, pcr15, sizeof pcr15, false) < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL,
                                     "%s: measurements are not 32-byte SHA-256 PCRs (PCR 15 cannot be added)", file);
        attdoc_measurement am[MEASUREMENTS_MAX_INDEX + 1];
        for (size_t i = 0; i < m.n; i++) {
                am[i] = (attdoc_measurement){ .index = m.items[i].index, .expected_len = m.items[i].len,
                                              .warn_only = m.items[i].warn_only };
                memcpy(am[i].expected, m.items[i].expected, m.items[i].len);
        }

        uint8_t nonce[VERIFY_NONCE_SIZE];
        if (RAND_bytes(nonce, sizeof nonce) != 1)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "verify: no random nonce (OpenSSL RAND_bytes)");
        _cleanup_free_ uint8_t *doc = NULL;
        _cleanup_free_ char *cerr = NULL;
        size_t doc_len = 0;
        r = get_attestation(endpoint, nonce, (int64_t) timeout_s * 1000, &doc, &doc_len, &cerr);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_UNREACHABLE, NULL, "%s", cerr ?: strerror(-r));

        attdoc_policy policy = { .measurements = am, .n_measurements = m.n };
        attdoc_verdict v = { 0 };
        r = attdoc_validate_qemu_vtpm((const char *) doc, doc_len, nonce, sizeof nonce,
                                      (const uint8_t *) VERIFY_USER_DATA, strlen(VERIFY_USER_DATA), &policy, &v);
        json_t *extra = json ? json_object() : NULL;
        if (extra) {
                json_object_set_new(extra, "endpoint", json_string(endpoint));
                _cleanup_free_ char *hex = hex_encode(cluster_id, sizeof cluster_id);
                json_object_set_new(extra, "cluster_id", json_string(hex ?: ""));
                if (v.warnings)
                        json_object_set_new(extra, "warnings", json_string(v.warnings));
        }
        if (r < 0) {
                bool pcr15_failed = (v.reason == ATTDOC_MEASUREMENT_MISMATCH || v.reason == ATTDOC_MEASUREMENT_MISSING) &&
                                    v.detail && (strstr(v.detail, "index 15 ") || strstr(v.detail, "PCR 15 "));
                if (extra)
                        json_object_set_new(extra, "check", json_string(reason_token(v.reason)));
                r = attest_output(json, ATTEST_EXIT_REJECTED, extra, "%s: %s: %s%s", endpoint, reason_token(v.reason),
                                  pcr15_failed ? "PCR 15 (the cluster ID) differs: " : "", v.detail ?: "refused");
                attdoc_verdict_done(&v);
                return r;
        }
        if (v.warnings && !json)
                fprintf(stderr, "%s", v.warnings);
        attdoc_verdict_done(&v);
        return attest_output(json, ATTEST_EXIT_OK, extra,
                             "%s: verified: measurements of %s and PCR 15 = cluster ID %s match", endpoint, file,
                             cluster_id_s);
}
