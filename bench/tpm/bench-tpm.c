/* SPDX-License-Identifier: Apache-2.0 */
/* Quote verification throughput (real GCE quote, SHA-256 bank, 24 PCRs) against two baselines
 * measured in the same run: OpenSSL's raw RSA-2048 PKCS#1 v1.5 verify of the same signature (goal:
 * >= 0.7x) and one tpm2_checkquote process per quote (goal: >= 100x). Also whole qemu-vtpm
 * attestation-document validations per second (what an aTLS handshake pays). Event log parsing:
 * zero-padded crafted logs (a Spec ID header, zeros, one 0x01 byte: issue 12 measured 4 min 18 s of
 * CPU for 700 KiB with the old quadratic padding check) at 700 KiB and at the 8 MiB limit, against
 * the real GCE log's throughput measured in the same run (goal: linear, i.e. the same MB/s within
 * a small factor, and 8 MiB / 700 KiB costing about 11.7x, not 140x). Rates are per CPU second.
 * Usage: bench-tpm [seconds per measurement, default 2]. */
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <tss2/tss2_tpm2_types.h>

#include "attestation/issue.h"
#include "tpm/eventlog.h"
#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "tpm/quote.h"

extern char **environ;

/* CPU time of this process and its waited-for children: the machine is shared (load from other
 * builds), so wall time would measure the neighbours. tpm2_checkquote's cost is its CPU time plus
 * ours for spawning it. */
static double now(void) {
        struct rusage self, kids;
        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &kids);
        return (double) (self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
               (double) (self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) /
                       1e6;
}

static uint8_t *load(const char *rel, size_t *len) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", TPM_BENCH_DATA_DIR, rel);
        uint8_t *b = NULL;
        if (read_full_file(p, 1 << 20, &b, len) < 0) {
                fprintf(stderr, "cannot read %s\n", p);
                exit(1);
        }
        return b;
}


/* Parses of buf per CPU second (each parse may fail: the crafted logs are refused). */
static double parses_per_second(const uint8_t *buf, size_t len, double secs) {
        unsigned long n = 0;
        double t0 = now(), t;
        do {
                eventlog *log = NULL;
                char *err = NULL;
                (void) eventlog_parse(buf, len, &log, &err);
                eventlog_free(log);
                free(err);
                n++;
        } while ((t = now() - t0) < secs);
        return (double) n / t;
}

/* A Spec ID header (SHA-256 only), zeros, 0x01 as the last byte: the issue-12 log. */
static uint8_t *crafted_log(size_t len) {
        static const uint8_t h[] = {
                0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                33, 0, 0, 0, 'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0,
                0, 0, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0x0b, 0, 32, 0, 0,
        };
        uint8_t *b = calloc(1, len);
        if (!b)
                exit(1);
        memcpy(b, h, sizeof h);
        b[len - 1] = 0x01;
        return b;
}

int main(int argc, char **argv) {
        double secs = argc > 1 ? atof(argv[1]) : 2.0;
        size_t al, sl, kl, pl;
        _cleanup_free_ uint8_t *attest = load("tpm-gce-vtpm/nonce9009.quote_sha256.tpms_attest.bin", &al);
        _cleanup_free_ uint8_t *sig = load("tpm-gce-vtpm/nonce9009.quote_sha256.tpmt_signature.bin", &sl);
        _cleanup_free_ uint8_t *pub = load("tpm-gce-vtpm/nonce9009.ak_pub.tpmt_public.bin", &kl);
        _cleanup_free_ uint8_t *pcrs_txt = load("tpm-gce-vtpm/nonce9009.pcrs_sha256.txt", &pl);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        tpmq_pcr_bank bank;
        if (tpmq_public_parse(pub, kl, &ak) < 0 ||
            tpmq_pcr_bank_parse_text((const char *) pcrs_txt, pl, TPM_ALG_SHA256, &bank, NULL) < 0)
                return 1;
        static const uint8_t nonce[] = { 0x90, 0x09 };

        /* 1. Our quote verification (parse + signature + nonce + PCR digest). */
        unsigned long n = 0;
        double t0 = now(), t;
        do {
                for (int i = 0; i < 100; i++) {
                        tpmq_reason r;
                        if (tpmq_verify_quote(attest, al, sig, sl, ak, &bank, nonce, sizeof nonce, &r, NULL) < 0)
                                return 1;
                }
                n += 100;
        } while ((t = now() - t0) < secs);
        double ours = (double) n / t;

        /* 2. Raw RSA-2048 verify of the same signature over the same bytes (EVP, SHA-256). */
        n = 0;
        t0 = now();
        do {
                for (int i = 0; i < 100; i++) {
                        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                        if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, ak) != 1 ||
                            EVP_DigestVerify(ctx, sig + 6, sl - 6, attest, al) != 1)
                                return 1;
                }
                n += 100;
        } while ((t = now() - t0) < secs);
        double raw = (double) n / t;

        /* 2b. AK import from TPMT_PUBLIC (what every attestation document costs on top). */
        n = 0;
        t0 = now();
        do {
                for (int i = 0; i < 100; i++) {
                        EVP_PKEY *k = NULL;
                        if (tpmq_public_parse(pub, kl, &k) < 0)
                                return 1;
                        EVP_PKEY_free(k);
                }
                n += 100;
        } while ((t = now() - t0) < secs);
        double imports = (double) n / t;

        /* 3. Whole attestation documents (JSON, base64, AK, SHA-256 quote, measurements). */
        double docs = 0;
        uint8_t *doc = NULL;
        size_t dl = 0;
        if (read_full_file(TPM_BENCH_DOC, 1 << 20, &doc, &dl) == 0) {
                static const uint8_t dn[] = "fuzz nonce";
                attdoc_measurement m = { .index = 15, .expected_len = 32 };
                attdoc_policy pol = { &m, 1, false };
                n = 0;
                t0 = now();
                do {
                        for (int i = 0; i < 20; i++) {
                                attdoc_verdict v;
                                int r = attdoc_validate_qemu_vtpm((const char *) doc, dl, dn, sizeof dn, (const uint8_t *) "userdata",
                                                                  8, &pol, &v);
                                attdoc_verdict_done(&v);
                                if (r < 0) {
                                        fprintf(stderr, "document does not validate: %d\n", r);
                                        return 1;
                                }
                        }
                        n += 20;
                } while ((t = now() - t0) < secs);
                docs = (double) n / t;
                free(doc);
        }

        /* 4. tpm2_checkquote, one process per quote, with the PCR values (serialized format). */
        char dir[] = "/tmp/ct-bench-tpm-XXXXXX";
        double tools = 0;
        if (mkdtemp(dir)) {
                char msg[64], sgn[64], key[64], pcr[64];
                snprintf(msg, sizeof msg, "%s/q.msg", dir);
                snprintf(sgn, sizeof sgn, "%s/q.sig", dir);
                snprintf(key, sizeof key, "%s/ak.pem", dir);
                snprintf(pcr, sizeof pcr, "%s/q.pcrs", dir);
                TPML_PCR_SELECTION sel = { .count = 1 };
                sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
                sel.pcrSelections[0].sizeofSelect = 3;
                memset(sel.pcrSelections[0].pcrSelect, 0xff, 3);
                UINT32 count = 3;
                TPML_DIGEST d[3];
                memset(d, 0, sizeof d);
                for (unsigned i = 0; i < 24; i++) {
                        d[i / 8].count = 8;
                        d[i / 8].digests[i % 8].size = 32;
                        memcpy(d[i / 8].digests[i % 8].buffer, bank.value[i], 32);
                }
                uint8_t ser[sizeof sel + sizeof count + sizeof d];
                memcpy(ser, &sel, sizeof sel);
                memcpy(ser + sizeof sel, &count, sizeof count);
                memcpy(ser + sizeof sel + sizeof count, d, sizeof d);
                size_t pem_len;
                _cleanup_free_ uint8_t *pem = load("tpm-gce-vtpm/nonce9009.ak_pub.pem", &pem_len);
                if (write_file_atomic(msg, attest, al, 0600) < 0 || write_file_atomic(sgn, sig, sl, 0600) < 0 ||
                    write_file_atomic(key, pem, pem_len, 0600) < 0 || write_file_atomic(pcr, ser, sizeof ser, 0600) < 0)
                        return 1;
                char *args[] = { "tpm2_checkquote", "-u", key, "-m", msg, "-s", sgn, "-f", pcr, "-g", "sha256", "-q", "9009", NULL };
                posix_spawn_file_actions_t fa;
                posix_spawn_file_actions_init(&fa);
                posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
                n = 0;
                t0 = now();
                do {
                        pid_t pid;
                        int st;
                        if (posix_spawnp(&pid, "tpm2_checkquote", &fa, NULL, args, environ) != 0 ||
                            waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                                fprintf(stderr, "tpm2_checkquote failed or is missing\n");
                                n = 0;
                                break;
                        }
                        n++;
                } while ((t = now() - t0) < secs);
                posix_spawn_file_actions_destroy(&fa);
                tools = n ? (double) n / t : 0;
                unlink(msg), unlink(sgn), unlink(key), unlink(pcr), rmdir(dir);
        }

        /* 5. Event log parsing: linear in the size, crafted or not. */
        size_t gl;
        _cleanup_free_ uint8_t *gce_log = load("tpm-gce-vtpm/nonce9009.event_log.bin", &gl);
        const size_t small = 700 * 1024, big = EVENTLOG_MAX_SIZE;
        _cleanup_free_ uint8_t *c700 = crafted_log(small), *c8m = crafted_log(big);
        double gce_rate = parses_per_second(gce_log, gl, secs);
        double r700 = parses_per_second(c700, small, secs), r8m = parses_per_second(c8m, big, secs);

        printf("quote verify (ct-tpm, GCE sha256 quote, 24 PCRs): %10.0f /s\n", ours);
        printf("raw RSA-2048 PKCS#1 v1.5 verify (OpenSSL EVP):     %10.0f /s   ours = %.2fx (goal >= 0.7x)\n", raw,
               ours / raw);
        printf("AK import (TPMT_PUBLIC -> EVP_PKEY):               %10.0f /s\n", imports);
        if (tools > 0)
                printf("tpm2_checkquote, one process per quote:           %10.1f /s   ours = %.0fx (goal >= 100x)\n",
                       tools, ours / tools);
        if (docs > 0)
                printf("qemu-vtpm attestation document validate (JSON):    %10.0f /s\n", docs);
        double mb = 1024.0 * 1024.0;
        printf("event log parse, real GCE log (%zu B, 44 events):   %10.1f MB/s (baseline)\n", gl, gce_rate * (double) gl / mb);
        printf("event log parse, crafted zero-padded 700 KiB:      %10.1f MB/s   %.2f ms per parse (issue 12: 4 min 18 s)\n",
               r700 * (double) small / mb, 1e3 / r700);
        printf("event log parse, crafted zero-padded 8 MiB (limit): %9.1f MB/s   %.2f ms per parse; 8 MiB/700 KiB cost "
               "%.1fx (linear: %.1fx, quadratic: %.0fx)\n",
               r8m * (double) big / mb, 1e3 / r8m, r700 / r8m, (double) big / (double) small,
               ((double) big / (double) small) * ((double) big / (double) small));
        return 0;
}
