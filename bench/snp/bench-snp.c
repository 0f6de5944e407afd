/* SPDX-License-Identifier: Apache-2.0 */
/* SEV-SNP verification throughput with a cached chain + signer, against OpenSSL's own ECDSA
 * P-384 verify rate (`openssl speed -seconds 3 ecdsap384`) measured in the same run. One
 * report verification is one SHA-384 over 672 bytes, one ECDSA P-384 verification and the field
 * checks, so the ratio shows the overhead of everything around the signature.
 *
 * Usage: bench-snp [DATA_DIR] [SECONDS]   (DATA_DIR defaults to test/snp/data of the source tree) */
#include <stdio.h>
#include <time.h>

#include "basic/fileio.h"
#include "snp/snp.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int load(const char *dir, const char *rel, uint8_t **ret, size_t *ret_len) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", dir, rel) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        int r = read_full_file(path, 1u << 20, ret, ret_len);
        if (r < 0)
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
        return r;
}

/* Runs `openssl speed` and returns the verify/s column of the ecdsa (nistp384) line. */
static double openssl_verify_rate(unsigned seconds) {
        char cmd[128];
        (void) snprintf(cmd, sizeof(cmd), "openssl speed -seconds %u ecdsap384 2>/dev/null", seconds);
        FILE *p = popen(cmd, "r");
        if (!p)
                return -1;
        char line[512];
        double rate = -1;
        while (fgets(line, sizeof(line), p)) {
                double sign_t, verify_t, sign_rate, verify_rate;
                const char *at = strstr(line, "ecdsa (nistp384)");
                if (at && sscanf(at + strlen("ecdsa (nistp384)"), " %lfs %lfs %lf %lf", &sign_t, &verify_t, &sign_rate,
                                 &verify_rate) == 4)
                        rate = verify_rate;
        }
        if (pclose(p) != 0)
                return -1;
        return rate;
}

static double snp_rate(snp_signer *signer, const uint8_t *report, size_t len, const struct snp_options *o,
                       double seconds, unsigned long *ret_count) {
        unsigned long n = 0;
        double start = now_s(), elapsed;
        do {
                struct snp_verdict v;
                for (int i = 0; i < 64; i++, n++)
                        if (snp_signer_verify_report(signer, report, len, o, NULL, &v) != 0) {
                                fprintf(stderr, "verification failed: %s: %s\n", snp_reason_to_string(v.reason), v.detail);
                                return -1;
                        }
                elapsed = now_s() - start;
        } while (elapsed < seconds);
        *ret_count = n;
        return (double) n / elapsed;
}

/* The same through the thread-safe snp_verifier cache (cache lookup = SHA-256 of the VCEK and
 * chain bytes, plus a mutex). */
static double verifier_rate(snp_verifier *vf, const uint8_t *report, size_t len, const uint8_t *cert, size_t cert_len,
                            const uint8_t *chain, size_t chain_len, const struct snp_options *o, double seconds) {
        unsigned long n = 0;
        double start = now_s(), elapsed;
        do {
                struct snp_verdict v;
                for (int i = 0; i < 64; i++, n++)
                        if (snp_verifier_verify(vf, report, len, cert, cert_len, chain, chain_len, o, NULL, &v) != 0) {
                                fprintf(stderr, "verification failed: %s: %s\n", snp_reason_to_string(v.reason), v.detail);
                                return -1;
                        }
                elapsed = now_s() - start;
        } while (elapsed < seconds);
        return (double) n / elapsed;
}

int main(int argc, char **argv) {
        const char *dir = argc > 1 ? argv[1] : SNP_BENCH_DATA_DIR;
        unsigned seconds = argc > 2 ? (unsigned) atoi(argv[2]) : 3;
        if (seconds == 0)
                seconds = 3;

        _cleanup_free_ uint8_t *report = NULL, *cert = NULL, *chain = NULL;
        size_t report_len, cert_len, chain_len;
        if (load(dir, "snp-msft-milan-genoa-turin/milan_attestation_report.bin", &report, &report_len) < 0 ||
            load(dir, "snp-msft-milan-genoa-turin/milan_vcek.pem", &cert, &cert_len) < 0 ||
            load(dir, "snp-msft-milan-genoa-turin/ask_ark_milan.pem", &chain, &chain_len) < 0)
                return 1;

        /* 2026-06-01: inside the VCEK's validity. */
        struct snp_options o = { .time_set = true, .time = 1780272000 };
        struct snp_verdict v;
        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
        _cleanup_(snp_signer_freep) snp_signer *s = NULL;
        double t0 = now_s();
        if (snp_chain_new(chain, chain_len, &o, &c, &v) < 0 || snp_signer_new(c, cert, cert_len, &o, &s, &v) < 0) {
                fprintf(stderr, "chain: %s: %s\n", snp_reason_to_string(v.reason), v.detail);
                return 1;
        }
        double setup = now_s() - t0;

        /* Ours, OpenSSL's, ours again: the mean of the two brackets drift from other load. */
        unsigned long n1 = 0, n2 = 0;
        double r1 = snp_rate(s, report, report_len, &o, seconds, &n1);
        double ossl = openssl_verify_rate(seconds);
        double r2 = snp_rate(s, report, report_len, &o, seconds, &n2);
        _cleanup_(snp_verifier_freep) snp_verifier *vf = NULL;
        if (snp_verifier_new(&vf) < 0)
                return 1;
        double rv = verifier_rate(vf, report, report_len, cert, cert_len, chain, chain_len, &o, seconds);
        if (r1 < 0 || r2 < 0 || rv < 0)
                return 1;
        if (ossl <= 0) {
                fprintf(stderr, "could not run or parse `openssl speed -seconds %u ecdsap384`\n", seconds);
                return 1;
        }
        double ours = (r1 + r2) / 2;
        printf("chain + signer setup (ARK pin, 2x RSA-4096-PSS, VCEK parse): %.2f ms (once)\n", setup * 1e3);
        printf("snp verifications/s (chain cached): %.1f  (%lu + %lu runs, %.1f and %.1f/s)\n", ours, n1, n2, r1, r2);
        printf("openssl speed ecdsap384 verify/s:   %.1f\n", ossl);
        printf("ratio: %.3f (goal >= 0.85)\n", ours / ossl);
        printf("snp_verifier (thread-safe cache) verifications/s: %.1f (ratio %.3f)\n", rv, rv / ossl);
        return 0;
}
