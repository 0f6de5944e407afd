/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest quote verify --ak FILE --quote FILE --signature FILE --pcrs FILE --nonce HEX
 *     [--bank sha1|sha256|sha384|sha512] [--eventlog FILE] [--json]
 *
 * Verifies a TPM 2.0 quote (TPMS_ATTEST + TPMT_SIGNATURE) with the AK (PEM SubjectPublicKeyInfo,
 * TPMT_PUBLIC or TPM2B_PUBLIC), the expected qualifying data, and the PCR values of one bank given as
 * a JSON object {"0":"hex",...}. The bank is the one of the values' length unless --bank says it; the
 * quote must cover exactly that bank (no quote-bank confusion) and exactly the PCRs given (values for
 * PCRs the quote does not select are refused, not ignored). With --eventlog the TCG event log is replayed
 * against the verified PCRs. One line on success; on failure the file and the reason, exit 1. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include <jansson.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "commands.h"
#include "output.h"
#include "tpm/eventlog.h"
#include "tpm/quote.h"

/* commands.h declares it only when CMake found ct-tpm; declare it for -Wmissing-prototypes. */
int attest_cmd_quote(int argc, char **argv);

#define QUOTE_FILE_MAX (64u * 1024)
#define PCRS_FILE_MAX (64u * 1024)

static void usage(FILE *f) {
        fputs("Usage: constellation-attest quote verify --ak FILE --quote FILE --signature FILE\n"
              "           --pcrs FILE --nonce HEX [--bank ALG] [--eventlog FILE] [--json]\n"
              "\n"
              "  --ak FILE         attestation key: PEM public key, TPMT_PUBLIC or TPM2B_PUBLIC\n"
              "                    (tpm2_createak -u, tpm2_readpublic -o)\n"
              "  --quote FILE      TPMS_ATTEST (tpm2_quote -m)\n"
              "  --signature FILE  TPMT_SIGNATURE (tpm2_quote -s)\n"
              "  --pcrs FILE       JSON object of PCR index -> hex value, one bank; exactly\n"
              "                    the PCRs the quote selects\n"
              "  --nonce HEX       expected qualifying data (\"\" for none)\n"
              "  --bank ALG        bank of the PCR values: sha1, sha256, sha384, sha512\n"
              "                    (default: from the values' length)\n"
              "  --eventlog FILE   TCG PC Client event log to replay against the quoted PCRs\n"
              "  --json            print the result as JSON\n",
              f);
}

static uint16_t alg_for_size(size_t n) {
        switch (n) {
        case 20: return TPM_ALG_SHA1;
        case 32: return TPM_ALG_SHA256;
        case 48: return TPM_ALG_SHA384;
        case 64: return TPM_ALG_SHA512;
        default: return 0;
        }
}

/* {"0":"hex",...}: every value the same length; *err names the entry at fault. */
static int parse_pcrs(const uint8_t *buf, size_t len, uint16_t bank, tpmq_pcr_bank *ret, char *err, size_t err_len) {
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
                snprintf(err, err_len, "not JSON: %.100s (line %d)", jerr.text, jerr.line);
                return -EINVAL;
        }
        if (!json_is_object(j) || json_object_size(j) == 0) {
                snprintf(err, err_len, "expected a non-empty object of PCR index -> hex value");
                return -EINVAL;
        }
        tpmq_pcr_bank b = { .alg = bank };
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) {
                char *end = NULL;
                errno = 0;
                unsigned long idx = strtoul(key, &end, 10);
                if (errno || end == key || *end || key[0] == '-' || key[0] == '+' || idx >= TPMQ_NUM_PCRS) {
                        snprintf(err, err_len, "key \"%.16s\": not a PCR index 0-23", key);
                        return -EINVAL;
                }
                const char *hex = json_string_value(val);
                size_t hl = hex ? strlen(hex) : 0;
                uint16_t alg = alg_for_size(hl / 2);
                if (!hex || hl % 2 || !alg) {
                        snprintf(err, err_len, "PCR %lu: expected 40, 64, 96 or 128 hex digits", idx);
                        return -EINVAL;
                }
                if (b.alg == 0)
                        b.alg = alg;
                if (alg != b.alg) {
                        snprintf(err, err_len, "PCR %lu: %zu-byte value, but the bank is %s (%zu bytes)", idx, hl / 2,
                                 tpmq_alg_name(b.alg), tpmq_digest_size(b.alg));
                        return -EINVAL;
                }
                if (hex_decode_exact(hex, b.value[idx], hl / 2) < 0) {
                        snprintf(err, err_len, "PCR %lu: not hex", idx);
                        return -EINVAL;
                }
                b.present[idx] = true;
        }
        *ret = b;
        return 0;
}

static int verify(int argc, char **argv) {
        static const struct option longopts[] = {
                { "ak", required_argument, NULL, 'a' },
                { "quote", required_argument, NULL, 'q' },
                { "signature", required_argument, NULL, 's' },
                { "pcrs", required_argument, NULL, 'p' },
                { "nonce", required_argument, NULL, 'n' },
                { "bank", required_argument, NULL, 'b' },
                { "eventlog", required_argument, NULL, 'e' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *ak_path = NULL, *quote_path = NULL, *sig_path = NULL, *pcrs_path = NULL, *nonce_hex = NULL,
                   *log_path = NULL;
        uint16_t bank = 0;
        bool json = false;

        optind = 0; /* re-initialise getopt: the dispatcher may have used it */
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'a': ak_path = optarg; break;
                case 'q': quote_path = optarg; break;
                case 's': sig_path = optarg; break;
                case 'p': pcrs_path = optarg; break;
                case 'n': nonce_hex = optarg; break;
                case 'e': log_path = optarg; break;
                case 'b':
                        bank = tpmq_alg_from_name(optarg);
                        if (!bank) {
                                fprintf(stderr, "--bank %s: expected sha1, sha256, sha384 or sha512\n", optarg);
                                return ATTEST_EXIT_USAGE;
                        }
                        break;
                case 'j': json = true; break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return ATTEST_EXIT_USAGE;
                }
        }
        if (optind != argc || !ak_path || !quote_path || !sig_path || !pcrs_path || !nonce_hex) {
                fprintf(stderr, "quote verify: --ak, --quote, --signature, --pcrs and --nonce are required%s\n",
                        optind != argc ? "; no positional arguments" : "");
                usage(stderr);
                return ATTEST_EXIT_USAGE;
        }
        _cleanup_free_ uint8_t *nonce = NULL;
        size_t nonce_len = 0;
        if (strlen(nonce_hex) > 2 * TPMQ_MAX_TPM2B_DATA ||
            hex_decode(nonce_hex, strlen(nonce_hex), &nonce, &nonce_len) < 0) {
                fprintf(stderr, "--nonce: expected up to %u hex digits\n", 2 * TPMQ_MAX_TPM2B_DATA);
                return ATTEST_EXIT_USAGE;
        }

        _cleanup_free_ uint8_t *ak_buf = NULL, *quote = NULL, *sig = NULL, *pcrs_buf = NULL, *log_buf = NULL;
        size_t ak_len, quote_len, sig_len, pcrs_len, log_len = 0;
        int io = attest_read_file("ak", ak_path, QUOTE_FILE_MAX, &ak_buf, &ak_len);
        if (io == 0)
                io = attest_read_file("quote", quote_path, QUOTE_FILE_MAX, &quote, &quote_len);
        if (io == 0)
                io = attest_read_file("signature", sig_path, QUOTE_FILE_MAX, &sig, &sig_len);
        if (io == 0)
                io = attest_read_file("pcrs", pcrs_path, PCRS_FILE_MAX, &pcrs_buf, &pcrs_len);
        if (io == 0 && log_path)
                io = attest_read_file("eventlog", log_path, EVENTLOG_MAX_SIZE, &log_buf, &log_len);
        if (io != 0)
                return io;

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        int r = tpmq_load_ak(ak_buf, ak_len, &ak, NULL, NULL);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, json_pack("{s:s}", "file", ak_path),
                                     "ak %s: %s", ak_path,
                                     r == -EOPNOTSUPP ? "unsupported key type" : "neither a PEM public key nor a TPMT_PUBLIC/TPM2B_PUBLIC");
        tpmq_pcr_bank pcrs;
        char err[160];
        if (parse_pcrs(pcrs_buf, pcrs_len, bank, &pcrs, err, sizeof err) < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, json_pack("{s:s}", "file", pcrs_path), "pcrs %s: %s",
                                     pcrs_path, err);

        tpmq_reason reason;
        _cleanup_free_ char *detail = NULL;
        r = tpmq_verify_quote(quote, quote_len, sig, sig_len, ak, &pcrs, nonce, nonce_len, &reason, &detail);
        if (r < 0) {
                const char *file = reason == TPMQ_MALFORMED_SIGNATURE || reason == TPMQ_BAD_KEY ? sig_path :
                                   reason == TPMQ_PCR_MISSING || reason == TPMQ_PCR_DIGEST_MISMATCH || reason == TPMQ_PCR_NOT_QUOTED ? pcrs_path :
                                                                                                     quote_path;
                return attest_output(json, ATTEST_EXIT_REJECTED,
                                     json_pack("{s:s,s:s,s:s}", "file", file, "tpm_reason", tpmq_reason_to_string(reason),
                                               "detail", detail ?: ""),
                                     "quote %s: %s", quote_path, detail ?: tpmq_reason_to_string(reason));
        }
        tpmq_attest a;
        (void) tpmq_attest_parse(quote, quote_len, &a); /* verified above: cannot fail */
        unsigned n_quoted = (unsigned) __builtin_popcount(a.selections[0].mask);

        char log_summary[96] = "";
        json_t *log_json = NULL;
        if (log_path) {
                _cleanup_(eventlog_freep) eventlog *el = NULL;
                _cleanup_free_ char *lerr = NULL;
                r = eventlog_parse(log_buf, log_len, &el, &lerr);
                if (r < 0)
                        return attest_output(json, ATTEST_EXIT_REJECTED, json_pack("{s:s}", "file", log_path),
                                             "eventlog %s: %s", log_path, lerr ?: strerror(-r));
                eventlog_pcr_verdict v[TPMQ_NUM_PCRS];
                uint32_t mismatch = 0;
                r = eventlog_compare(el, &pcrs, v, &mismatch);
                if (r == -EOPNOTSUPP)
                        return attest_output(json, ATTEST_EXIT_REJECTED, json_pack("{s:s}", "file", log_path),
                                             "eventlog %s: no %s digests in the log", log_path, tpmq_alg_name(pcrs.alg));
                if (r < 0) {
                        unsigned first = (unsigned) __builtin_ctz(mismatch);
                        return attest_output(json, ATTEST_EXIT_REJECTED,
                                             json_pack("{s:s,s:i}", "file", log_path, "pcr", (int) first),
                                             "eventlog %s: PCR %u (%s): %s%s", log_path, first, tpmq_alg_name(pcrs.alg),
                                             eventlog_pcr_verdict_to_string(v[first]),
                                             mismatch & (mismatch - 1) ? " (and more PCRs)" : "");
                }
                unsigned matched = 0;
                log_json = json_object();
                for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                        char k[4];
                        snprintf(k, sizeof k, "%u", i);
                        if (v[i] == EVENTLOG_PCR_MATCH)
                                matched++;
                        if (log_json)
                                json_object_set_new(log_json, k, json_string(eventlog_pcr_verdict_to_string(v[i])));
                }
                snprintf(log_summary, sizeof log_summary, "; event log: %zu events, %u PCRs match the replay",
                         eventlog_n_events(el), matched);
        }

        json_t *extra = NULL;
        if (json) {
                char fw[24];
                snprintf(fw, sizeof fw, "0x%016" PRIx64, a.firmware_version);
                extra = json_pack("{s:s,s:s,s:i,s:I,s:s,s:i}", "file", quote_path, "bank", tpmq_alg_name(pcrs.alg),
                                  "pcrs_quoted", (int) n_quoted, "clock", (json_int_t) a.clock, "firmware_version", fw,
                                  "reset_count", (int) a.reset_count);
                if (extra && log_json)
                        json_object_set_new(extra, "eventlog", TAKE_PTR(log_json));
        }
        json_decref(log_json);
        return attest_output(json, ATTEST_EXIT_OK, extra,
                             "OK %s: %s quote over %u PCRs, signature, nonce and PCR digest verified%s", quote_path,
                             tpmq_alg_name(pcrs.alg), n_quoted, log_summary);
}

int attest_cmd_quote(int argc, char **argv) {
        /* Accept both argv = {"quote", "verify", ...} and {"verify", ...}. */
        if (argc > 0 && streq(argv[0], "quote")) {
                argc--;
                argv++;
        }
        if (argc < 1 || streq(argv[0], "--help") || streq(argv[0], "-h")) {
                usage(argc < 1 ? stderr : stdout);
                return argc < 1 ? ATTEST_EXIT_USAGE : 0;
        }
        if (streq(argv[0], "verify"))
                return verify(argc, argv);
        fprintf(stderr, "quote: unknown subcommand '%s'\n", argv[0]);
        usage(stderr);
        return ATTEST_EXIT_USAGE;
}
