/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest snp verify --report FILE --cert FILE [--chain FILE] [--at RFC3339]
 *     [--min-tcb [FMC:]BL:TEE:SNP:UCODE] [--allow-debug] [--vmpl N]... [--report-data HEX]
 *     [--measurement HEX] [--id-key-digest HEX]... [--json]
 *
 * Verifies a raw 1184-byte SEV-SNP report (or an Azure HCL report, recognised by its "HCLA"
 * magic) with its VCEK/VLEK (DER or PEM) and the KDS cert_chain (ASK/ASVK + ARK, PEM) against the
 * AMD roots pinned in lib/snp (without --chain: the
 * chain built into lib/snp for the certificate's product). Prints one line (or a JSON object) on success; on failure names
 * the file and field at fault and exits 1. Usage errors exit 2, unreadable files 3. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include <jansson.h>

#include "basic/encoding.h"
#include "commands.h"
#include "output.h"
#include "snp/snp-binding.h"
#include "snp/snp.h"

/* commands.h declares it only when CMake found ct-snp; declare it for the -Wmissing-prototypes check. */
int attest_cmd_snp(int argc, char **argv);
#define SNP_REPORT_FILE_MAX (64u * 1024)

static void usage(FILE *f) {
        fputs("Usage: constellation-attest snp verify --report FILE --cert FILE [--chain FILE]\n"
              "           [--at RFC3339] [--min-tcb [FMC:]BL:TEE:SNP:UCODE] [--allow-debug]\n"
              "           [--vmpl N]... [--report-data HEX] [--measurement HEX]\n"
              "           [--id-key-digest HEX]... [--json]\n"
              "\n"
              "  --report FILE       raw 1184-byte SEV-SNP report, or an Azure HCL report\n"
              "  --cert FILE         VCEK or VLEK certificate (DER or PEM)\n"
              "  --chain FILE        AMD KDS cert_chain: ASK or ASVK, and ARK (PEM); default: the\n"
              "                      built-in AMD chain for the certificate's product\n"
              "  --at TIME           verify certificate validity at TIME (e.g. 2025-06-15T00:00:00Z)\n"
              "  --min-tcb SPEC      minimum TCB, e.g. 3:0:8:115 (Turin: FMC:BL:TEE:SNP:UCODE)\n"
              "  --allow-debug       accept a guest policy that allows debugging\n"
              "  --vmpl N            accept VMPL N (repeatable; default only 0)\n"
              "  --report-data HEX   expected REPORT_DATA (up to 64 bytes, zero-padded)\n"
              "  --measurement HEX   expected launch measurement (48 bytes)\n"
              "  --id-key-digest HEX accepted ID key digest (48 bytes; repeatable, up to 16)\n"
              "  --json              print the result as JSON\n",
              f);
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int parse_rfc3339(const char *s, time_t *ret) {
        int y, mo, d, h, mi, sec, n = 0;
        if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
                return -EINVAL;
        const char *p = s + n;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        long offset = 0;
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int oh, om, m = 0;
                if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh > 23 || om > 59)
                        return -EINVAL;
                offset = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
                p += 6;
        } else
                return -EINVAL;
        if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
        time_t t = timegm(&tm);
        if (t == (time_t) -1 || tm.tm_mday != d) /* timegm normalises 2025-02-30 */
                return -EINVAL;
        *ret = t - offset;
        return 0;
}

static int parse_u8(const char *s, size_t len, uint8_t *ret) {
        if (len == 0 || len > 3)
                return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        if (v > 255)
                return -EINVAL;
        *ret = (uint8_t) v;
        return 0;
}

/* BL:TEE:SNP:UCODE, or FMC:BL:TEE:SNP:UCODE (Turin). */
static int parse_min_tcb(const char *s, struct snp_tcb *ret) {
        uint8_t parts[5];
        size_t n = 0;
        const char *p = s;
        for (;;) {
                const char *colon = strchr(p, ':');
                size_t len = colon ? (size_t) (colon - p) : strlen(p);
                if (n == ELEMENTSOF(parts) || parse_u8(p, len, &parts[n]) < 0)
                        return -EINVAL;
                n++;
                if (!colon)
                        break;
                p = colon + 1;
        }
        if (n == 4)
                *ret = (struct snp_tcb) { .bootloader = parts[0], .tee = parts[1], .snp = parts[2], .microcode = parts[3] };
        else if (n == 5)
                *ret = (struct snp_tcb) {
                        .has_fmc = true, .fmc = parts[0], .bootloader = parts[1], .tee = parts[2], .snp = parts[3],
                        .microcode = parts[4],
                };
        else
                return -EINVAL;
        return 0;
}

static json_t *json_hex(const uint8_t *d, size_t n) {
        _cleanup_free_ char *h = hex_encode(d, n);
        return json_string(h ? h : "");
}

static json_t *json_tcb(const struct snp_tcb *t) {
        json_t *o = json_pack("{s:i,s:i,s:i,s:i}", "bootloader", t->bootloader, "tee", t->tee, "snp", t->snp, "microcode",
                              t->microcode);
        if (o && t->has_fmc)
                json_object_set_new(o, "fmc", json_integer(t->fmc));
        return o;
}

/* "<what> <file>: <field: expected vs got> (<reason>)"; with --json also file, snp_reason, detail. */
static int fail(bool json, const char *what, const char *path, const struct snp_verdict *v) {
        json_t *extra = json_pack("{s:s,s:s,s:s}", "file", path, "snp_reason", snp_reason_to_string(v->reason), "detail",
                                  v->detail);
        return attest_output(json, v->reason == SNP_REASON_INTERNAL ? ATTEST_EXIT_IO : ATTEST_EXIT_REJECTED, extra,
                             "%s %s: %s (%s)", what, path, v->detail[0] ? v->detail : "rejected",
                             snp_reason_to_string(v->reason));
}

static int verify(int argc, char **argv) {
        static const struct option longopts[] = {
                { "report", required_argument, NULL, 'r' },
                { "cert", required_argument, NULL, 'c' },
                { "chain", required_argument, NULL, 'k' },
                { "at", required_argument, NULL, 't' },
                { "min-tcb", required_argument, NULL, 'm' },
                { "allow-debug", no_argument, NULL, 'D' },
                { "vmpl", required_argument, NULL, 'V' },
                { "report-data", required_argument, NULL, 'R' },
                { "measurement", required_argument, NULL, 'M' },
                { "id-key-digest", required_argument, NULL, 'I' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *report_path = NULL, *cert_path = NULL, *chain_path = NULL;
        bool json = false;
        struct snp_options o = {};
        uint8_t report_data[64] = {}, measurement[48];
        static uint8_t id_key_digests[16][48]; /* static: 768 bytes off the stack */
        size_t n_id_key_digests = 0;

        optind = 0; /* re-initialise getopt: the dispatcher may have used it */
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'r':
                        report_path = optarg;
                        break;
                case 'c':
                        cert_path = optarg;
                        break;
                case 'k':
                        chain_path = optarg;
                        break;
                case 't':
                        if (parse_rfc3339(optarg, &o.time) < 0) {
                                fprintf(stderr, "--at %s: not an RFC 3339 time (e.g. 2025-06-15T00:00:00Z)\n", optarg);
                                return ATTEST_EXIT_USAGE;
                        }
                        o.time_set = true;
                        break;
                case 'm':
                        if (parse_min_tcb(optarg, &o.min_tcb) < 0) {
                                fprintf(stderr, "--min-tcb %s: expected BL:TEE:SNP:UCODE or FMC:BL:TEE:SNP:UCODE, each 0-255\n",
                                        optarg);
                                return ATTEST_EXIT_USAGE;
                        }
                        o.min_tcb_set = true;
                        break;
                case 'D':
                        o.allow_debug = true;
                        break;
                case 'V': {
                        uint8_t n;
                        if (parse_u8(optarg, strlen(optarg), &n) < 0 || n > 3) {
                                fprintf(stderr, "--vmpl %s: expected 0, 1, 2 or 3\n", optarg);
                                return ATTEST_EXIT_USAGE;
                        }
                        o.allowed_vmpls |= (uint8_t) (1u << n);
                        break;
                }
                case 'R': {
                        size_t n = strlen(optarg);
                        if (n % 2 || n > 128 || hex_decode_exact(optarg, report_data, n / 2) < 0) {
                                fprintf(stderr, "--report-data: expected up to 128 hex digits\n");
                                return ATTEST_EXIT_USAGE;
                        }
                        o.expected_report_data = report_data;
                        break;
                }
                case 'M':
                        if (hex_decode_exact(optarg, measurement, sizeof(measurement)) < 0) {
                                fprintf(stderr, "--measurement: expected 96 hex digits\n");
                                return ATTEST_EXIT_USAGE;
                        }
                        o.expected_measurement = measurement;
                        break;
                case 'I':
                        if (n_id_key_digests >= ELEMENTSOF(id_key_digests) ||
                            hex_decode_exact(optarg, id_key_digests[n_id_key_digests], 48) < 0) {
                                fprintf(stderr, "--id-key-digest: expected 96 hex digits, at most %zu times\n",
                                        ELEMENTSOF(id_key_digests));
                                return ATTEST_EXIT_USAGE;
                        }
                        n_id_key_digests++;
                        o.accepted_id_key_digests = (const uint8_t(*)[48]) id_key_digests;
                        o.n_accepted_id_key_digests = n_id_key_digests;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return ATTEST_EXIT_USAGE;
                }
        }
        if (optind != argc || !report_path || !cert_path) {
                fprintf(stderr, "snp verify: --report and --cert are required%s\n",
                        optind != argc ? "; no positional arguments" : "");
                usage(stderr);
                return ATTEST_EXIT_USAGE;
        }

        _cleanup_free_ uint8_t *report = NULL, *cert = NULL, *chain = NULL;
        size_t report_len, cert_len;
        size_t chain_len = 0;
        int io = attest_read_file("report", report_path, SNP_REPORT_FILE_MAX, &report, &report_len);
        if (io == 0)
                io = attest_read_file("certificate", cert_path, SNP_CERT_MAX_SIZE, &cert, &cert_len);
        if (io == 0 && chain_path)
                io = attest_read_file("chain", chain_path, SNP_CHAIN_MAX_SIZE, &chain, &chain_len);
        if (io != 0)
                return io;

        struct snp_verdict v = {};
        const uint8_t *raw = report;
        size_t raw_len = report_len;
        bool hcl = report_len >= 4 && memcmp(report, "HCLA", 4) == 0;
        if (hcl) {
                struct snp_azure_hcl h;
                if (snp_azure_hcl_parse(report, report_len, &h, &v) < 0)
                        return fail(json, "report", report_path, &v);
                raw = h.report;
                raw_len = SNP_REPORT_SIZE;
        }

        _cleanup_(snp_chain_freep) snp_chain *ch = NULL;
        if (chain_path) {
                if (snp_chain_new(chain, chain_len, &o, &ch, &v) < 0)
                        return fail(json, "chain", chain_path, &v);
        } else {
                /* The built-in AMD chain: product from the certificate, VCEK/VLEK from the report. */
                struct snp_report parsed;
                struct snp_cert_info info;
                if (snp_report_parse(raw, raw_len, &parsed, &v) < 0)
                        return fail(json, "report", report_path, &v);
                if (snp_cert_info_parse(cert, cert_len, &info, &v) < 0)
                        return fail(json, "certificate", cert_path, &v);
                if (snp_chain_new_builtin(info.product, parsed.signer, &o, &ch, &v) < 0)
                        return fail(json, "built-in chain for", info.product_name, &v);
        }
        _cleanup_(snp_signer_freep) snp_signer *signer = NULL;
        if (snp_signer_new(ch, cert, cert_len, &o, &signer, &v) < 0)
                return fail(json, "certificate", cert_path, &v);
        struct snp_report r;
        if (snp_signer_verify_report(signer, raw, raw_len, &o, &r, &v) < 0)
                return fail(json, "report", report_path, &v);

        char tcb[64];
        _cleanup_free_ char *meas = hex_encode(r.measurement, sizeof(r.measurement));
        char policy[24], firmware[16];
        (void) snprintf(policy, sizeof(policy), "0x%" PRIx64, r.policy);
        (void) snprintf(firmware, sizeof(firmware), "%u.%u.%u", r.current_major, r.current_minor, r.current_build);
        json_t *extra = NULL;
        if (json) {
                extra = json_pack("{s:s,s:s,s:i,s:s,s:i,s:i,s:s,s:b,s:s}", "file", report_path, "product",
                                  snp_product_to_string(r.product), "version", (int) r.version, "signer",
                                  snp_signer_kind_to_string(r.signer), "vmpl", (int) r.vmpl, "guest_svn", (int) r.guest_svn,
                                  "policy", policy, "azure_hcl", hcl, "firmware", firmware);
                if (extra) {
                        json_object_set_new(extra, "reported_tcb", json_tcb(&r.reported_tcb));
                        json_object_set_new(extra, "current_tcb", json_tcb(&r.current_tcb));
                        json_object_set_new(extra, "committed_tcb", json_tcb(&r.committed_tcb));
                        json_object_set_new(extra, "launch_tcb", json_tcb(&r.launch_tcb));
                        json_object_set_new(extra, "measurement", json_hex(r.measurement, sizeof(r.measurement)));
                        json_object_set_new(extra, "report_data", json_hex(r.report_data, sizeof(r.report_data)));
                        json_object_set_new(extra, "host_data", json_hex(r.host_data, sizeof(r.host_data)));
                        json_object_set_new(extra, "id_key_digest", json_hex(r.id_key_digest, sizeof(r.id_key_digest)));
                        json_object_set_new(extra, "chip_id", json_hex(r.chip_id, sizeof(r.chip_id)));
                }
        }
        return attest_output(json, ATTEST_EXIT_OK, extra,
                             "OK %s: SEV-SNP %s report v%" PRIu32 " signed by %s, vmpl %" PRIu32 ", reported_tcb %s, measurement %s",
                             report_path, snp_product_to_string(r.product), r.version, snp_signer_kind_to_string(r.signer),
                             r.vmpl, snp_tcb_format(&r.reported_tcb, tcb, sizeof(tcb)), meas ? meas : "");
}

int attest_cmd_snp(int argc, char **argv) {
        /* Accept both argv = {"snp", "verify", ...} and {"verify", ...}. */
        if (argc > 0 && streq(argv[0], "snp")) {
                argc--;
                argv++;
        }
        if (argc < 1 || streq(argv[0], "--help") || streq(argv[0], "-h")) {
                usage(argc < 1 ? stderr : stdout);
                return argc < 1 ? ATTEST_EXIT_USAGE : 0;
        }
        if (streq(argv[0], "verify"))
                return verify(argc, argv);
        fprintf(stderr, "snp: unknown subcommand '%s'\n", argv[0]);
        usage(stderr);
        return ATTEST_EXIT_USAGE;
}
