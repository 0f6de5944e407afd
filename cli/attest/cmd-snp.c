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

#if __has_include("commands.h")
#include "commands.h"
#endif
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "snp/snp-binding.h"
#include "snp/snp.h"

int attest_cmd_snp(int argc, char **argv);

#define EXIT_REJECTED 1
#define EXIT_USAGE 2
#define EXIT_IO 3
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

static int read_file(const char *what, const char *path, size_t max, uint8_t **ret, size_t *ret_len) {
        int r = read_full_file(path, max, ret, ret_len);
        if (r < 0)
                fprintf(stderr, "%s %s: cannot read: %s\n", what, path, r == -EFBIG ? "file too large" : strerror(-r));
        return r;
}

static void json_hex(FILE *f, const char *key, const uint8_t *d, size_t n, bool last) {
        _cleanup_free_ char *h = hex_encode(d, n);
        fprintf(f, "\"%s\":\"%s\"%s", key, h ? h : "", last ? "" : ",");
}

static void json_tcb(FILE *f, const char *key, const struct snp_tcb *t) {
        fprintf(f, "\"%s\":{", key);
        if (t->has_fmc)
                fprintf(f, "\"fmc\":%u,", t->fmc);
        fprintf(f, "\"bootloader\":%u,\"tee\":%u,\"snp\":%u,\"microcode\":%u},", t->bootloader, t->tee, t->snp,
                t->microcode);
}

/* Detail strings come from lib/snp (fixed text, hex, numbers) and hold no quotes or backslashes
 * from outside input except certificate names; escape them anyway. */
static void json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20 || c > 0x7e)
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

static int fail(bool json, const char *what, const char *path, const struct snp_verdict *v) {
        fprintf(stderr, "%s %s: %s (%s)\n", what, path, v->detail[0] ? v->detail : "rejected", snp_reason_to_string(v->reason));
        if (json) {
                printf("{\"verified\":false,\"file\":");
                json_string(stdout, path);
                printf(",\"reason\":\"%s\",\"detail\":", snp_reason_to_string(v->reason));
                json_string(stdout, v->detail);
                printf("}\n");
        }
        return v->reason == SNP_REASON_INTERNAL ? EXIT_IO : EXIT_REJECTED;
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
                                return EXIT_USAGE;
                        }
                        o.time_set = true;
                        break;
                case 'm':
                        if (parse_min_tcb(optarg, &o.min_tcb) < 0) {
                                fprintf(stderr, "--min-tcb %s: expected BL:TEE:SNP:UCODE or FMC:BL:TEE:SNP:UCODE, each 0-255\n",
                                        optarg);
                                return EXIT_USAGE;
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
                                return EXIT_USAGE;
                        }
                        o.allowed_vmpls |= (uint8_t) (1u << n);
                        break;
                }
                case 'R': {
                        size_t n = strlen(optarg);
                        if (n % 2 || n > 128 || hex_decode_exact(optarg, report_data, n / 2) < 0) {
                                fprintf(stderr, "--report-data: expected up to 128 hex digits\n");
                                return EXIT_USAGE;
                        }
                        o.expected_report_data = report_data;
                        break;
                }
                case 'M':
                        if (hex_decode_exact(optarg, measurement, sizeof(measurement)) < 0) {
                                fprintf(stderr, "--measurement: expected 96 hex digits\n");
                                return EXIT_USAGE;
                        }
                        o.expected_measurement = measurement;
                        break;
                case 'I':
                        if (n_id_key_digests >= ELEMENTSOF(id_key_digests) ||
                            hex_decode_exact(optarg, id_key_digests[n_id_key_digests], 48) < 0) {
                                fprintf(stderr, "--id-key-digest: expected 96 hex digits, at most %zu times\n",
                                        ELEMENTSOF(id_key_digests));
                                return EXIT_USAGE;
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
                        return EXIT_USAGE;
                }
        }
        if (optind != argc || !report_path || !cert_path) {
                fprintf(stderr, "snp verify: --report and --cert are required%s\n",
                        optind != argc ? "; no positional arguments" : "");
                usage(stderr);
                return EXIT_USAGE;
        }

        _cleanup_free_ uint8_t *report = NULL, *cert = NULL, *chain = NULL;
        size_t report_len, cert_len;
        size_t chain_len = 0;
        if (read_file("report", report_path, SNP_REPORT_FILE_MAX, &report, &report_len) < 0 ||
            read_file("certificate", cert_path, SNP_CERT_MAX_SIZE, &cert, &cert_len) < 0 ||
            (chain_path && read_file("chain", chain_path, SNP_CHAIN_MAX_SIZE, &chain, &chain_len) < 0))
                return EXIT_IO;

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
        if (json) {
                printf("{\"verified\":true,\"product\":\"%s\",\"version\":%" PRIu32 ",\"signer\":\"%s\",\"vmpl\":%" PRIu32
                       ",\"guest_svn\":%" PRIu32 ",\"policy\":\"0x%" PRIx64 "\",\"azure_hcl\":%s,\"firmware\":\"%u.%u.%u\",",
                       snp_product_to_string(r.product), r.version, snp_signer_kind_to_string(r.signer), r.vmpl,
                       r.guest_svn, r.policy, hcl ? "true" : "false", r.current_major, r.current_minor, r.current_build);
                json_tcb(stdout, "reported_tcb", &r.reported_tcb);
                json_tcb(stdout, "current_tcb", &r.current_tcb);
                json_tcb(stdout, "committed_tcb", &r.committed_tcb);
                json_tcb(stdout, "launch_tcb", &r.launch_tcb);
                json_hex(stdout, "measurement", r.measurement, sizeof(r.measurement), false);
                json_hex(stdout, "report_data", r.report_data, sizeof(r.report_data), false);
                json_hex(stdout, "host_data", r.host_data, sizeof(r.host_data), false);
                json_hex(stdout, "id_key_digest", r.id_key_digest, sizeof(r.id_key_digest), false);
                json_hex(stdout, "chip_id", r.chip_id, sizeof(r.chip_id), true);
                printf("}\n");
        } else
                printf("OK %s: SEV-SNP %s report v%" PRIu32 " signed by %s, vmpl %" PRIu32 ", reported_tcb %s, measurement %s\n",
                       report_path, snp_product_to_string(r.product), r.version, snp_signer_kind_to_string(r.signer),
                       r.vmpl, snp_tcb_format(&r.reported_tcb, tcb, sizeof(tcb)), meas ? meas : "");
        return 0;
}

int attest_cmd_snp(int argc, char **argv) {
        /* Accept both argv = {"snp", "verify", ...} and {"verify", ...}. */
        if (argc > 0 && streq(argv[0], "snp")) {
                argc--;
                argv++;
        }
        if (argc < 1 || streq(argv[0], "--help") || streq(argv[0], "-h")) {
                usage(argc < 1 ? stderr : stdout);
                return argc < 1 ? EXIT_USAGE : 0;
        }
        if (streq(argv[0], "verify"))
                return verify(argc, argv);
        fprintf(stderr, "snp: unknown subcommand '%s'\n", argv[0]);
        usage(stderr);
        return EXIT_USAGE;
}
