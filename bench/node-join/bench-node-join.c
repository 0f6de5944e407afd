/* SPDX-License-Identifier: Apache-2.0 */
/* bench-node-join: N joiners at once against the real constellation-joinservice process (aTLS, the
 * joiner attests with the qemu-vtpm issuer of a swtpm, the service validates the document, signs
 * the kubelet CSR, derives the keys from a cluster KMS URI); every join must succeed. Prints join
 * tickets/s, p50 and p99 of one join (dial + handshake + call).
 *
 * Evidence: one swtpm executes one command at a time, so N joiners on one swtpm measure the swtpm.
 * The joiners share S swtpms (default 4; joiner i quotes on swtpm i mod S), all started alike so the
 * service's attestation config (PCRs 0-7, PCR 15 = 0) fits every one; each handshake still gets a
 * fresh quote over the server's nonce, as on real nodes (one vTPM each). The baseline in the same
 * run is the evidence alone: N documents issued on the same S swtpms with the same concurrency
 * (the floor any join needs), so the ratio says what the join service adds.
 *
 *   build/<dir>/bench/node-join/bench-node-join build/<dir>/node/joinservice/constellation-joinservice [N] [S]
 * Not a ctest test: figures depend on the machine. It exits 1 if any join failed or if the service
 * did not stop cleanly (under ASan: a leak). */
#include <math.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "atls/qemu-vtpm.h"
#include "basic/cleanup-openssl.h"
#include "join-test-util.h"
#include "join.pb-c.h"
#include "joinclient/joinclient.h"

#define MAX_TPMS 16

static jt_cluster cl;
static swtpm tpms[MAX_TPMS];
static atls_issuer issuers[MAX_TPMS];
static int n_tpms = 4;
static unsigned n_joins = 100;
static char endpoint[64];
static pthread_barrier_t start_line;

typedef struct job {
        int i;
        double ms;
        int ok;
        char why[256];
} job;

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *joiner(void *p) {
        job *j = p;
        char name[32], uuid[40];
        snprintf(name, sizeof name, "worker-%d", j->i);
        snprintf(uuid, sizeof uuid, "%08x-0000-4000-8000-%012x", (unsigned) j->i, (unsigned) j->i);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *csr = NULL;
        size_t csr_len = 0;
        ct_error err = CT_ERROR_INIT;
        if (joinclient_csr_new(name, NULL, 0, &key, &csr, &csr_len, &err) < 0) {
                ct_error_format(&err, j->why, sizeof j->why);
                return NULL;
        }
        pthread_barrier_wait(&start_line);
        double t0 = now_ms();
        joinclient_options opt = { .issuer = &issuers[j->i % n_tpms], .handshake_timeout_ms = 600000,
                                   .call_timeout_ms = 600000 };
        joinclient_join_request jr = { .disk_uuid = uuid, .csr = csr, .csr_len = csr_len };
        _cleanup_secret_ secret_t *resp = NULL;
        grpc_status_code st;
        if (joinclient_issue_join(endpoint, &opt, &jr, &resp, &st, &err) < 0) {
                ct_error_format(&err, j->why, sizeof j->why);
                return NULL;
        }
        j->ms = now_ms() - t0;
        Join__IssueJoinTicketResponse *t =
                join__issue_join_ticket_response__unpack(&rpc_wiping_allocator, resp->len, resp->data);
        j->ok = t && t->state_disk_key.len == 32 && t->kubelet_cert.len > 0;
        if (t)
                join__issue_join_ticket_response__free_unpacked(t, &rpc_wiping_allocator);
        return NULL;
}

static void *issuer_only(void *p) {
        job *j = p;
        uint8_t ud[32], nonce[32];
        RAND_bytes(ud, 32);
        RAND_bytes(nonce, 32);
        pthread_barrier_wait(&start_line);
        double t0 = now_ms();
        const atls_issuer *is = &issuers[j->i % n_tpms];
        uint8_t *doc = NULL;
        size_t len = 0;
        atls_error err = { 0 };
        j->ok = is->issue(is->userdata, ud, 32, nonce, 32, &doc, &len, &err) == 0;
        j->ms = now_ms() - t0;
        free(doc);
        return NULL;
}

/* utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15). */
static double cpu_seconds(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return NAN;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return NAN;
        return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Runs n jobs at once; returns wall seconds; prints p50/p99. */
static double run(const char *what, void *(*fn)(void *), int *ret_errors) {
        job *jobs = calloc((size_t) n_joins, sizeof *jobs);
        pthread_t *th = calloc((size_t) n_joins, sizeof *th);
        pthread_barrier_init(&start_line, NULL, n_joins + 1);
        for (unsigned i = 0; i < n_joins; i++) {
                jobs[i].i = (int) i;
                pthread_create(&th[i], NULL, fn, &jobs[i]);
        }
        pthread_barrier_wait(&start_line);
        double t0 = now_ms();
        for (unsigned i = 0; i < n_joins; i++)
                pthread_join(th[i], NULL);
        double wall = (now_ms() - t0) / 1e3;
        double *lat = calloc((size_t) n_joins, sizeof *lat);
        int errors = 0, n = 0;
        for (unsigned i = 0; i < n_joins; i++) {
                if (!jobs[i].ok) {
                        if (errors++ < 3)
                                fprintf(stderr, "%s %d failed: %s\n", what, i, jobs[i].why);
                } else
                        lat[n++] = jobs[i].ms;
        }
        qsort(lat, (size_t) n, sizeof *lat, cmp);
        double p50 = n ? lat[n / 2] : NAN, p99 = n ? lat[(int) ceil(n * 0.99) - 1] : NAN;
        printf("%-34s %4u at once, %d errors: %.1f/s, p50 %.0f ms, p99 %.0f ms (wall %.2f s)\n", what, n_joins,
               errors, n / wall, p50, p99, wall);
        free(lat);
        free(jobs);
        free(th);
        pthread_barrier_destroy(&start_line);
        *ret_errors = errors;
        return n / wall;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s CONSTELLATION-JOINSERVICE [JOINS] [SWTPMS]\n", argv[0]);
                return 2;
        }
        if (argc > 2)
                n_joins = (unsigned) strtoul(argv[2], NULL, 10);
        if (argc > 3)
                n_tpms = atoi(argv[3]);
        if (n_joins < 1 || n_joins > 10000 || n_tpms < 1 || n_tpms > MAX_TPMS)
                return 2;
        for (int i = 0; i < n_tpms; i++) {
                if (swtpm_start(&tpms[i]) < 0)
                        return 1;
                issuers[i] = atls_qemu_vtpm_issuer(tpms[i].tcti);
        }
        jt_cluster_setup(&cl, tpms[0].tcti);
        jt_start(&cl, argv[1]);
        snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", cl.port);
        double load[3] = { 0 };
        getloadavg(load, 3);
        printf("bench-node-join: %d joiners, %d swtpm(s), load average %.1f\n", n_joins, n_tpms, load[0]);
        int e1 = 0, e2 = 0;
        double floor_rate = run("evidence only (qemu-vtpm issue)", issuer_only, &e1);
        double cpu0 = cpu_seconds(cl.pid);
        double join_rate = run("join tickets (constellation-joinservice)", joiner, &e2);
        double cpu = cpu_seconds(cl.pid) - cpu0;
        printf("service CPU: %.1f ms per join ticket (%.0f tickets per CPU-second: validation, CSR signing, keys, TLS)\n",
               cpu * 1e3 / n_joins, n_joins / cpu);
        printf("ratio: %.2fx the evidence floor\n", join_rate / floor_rate);
        int st = jt_stop(&cl);
        if (st != 0)
                fprintf(stderr, "joinservice exited with %d (see %s)\n", st, cl.log_path);
        else
                jt_cluster_done(&cl);
        for (int i = 0; i < n_tpms; i++)
                swtpm_stop(&tpms[i]);
        return e1 || e2 || st ? 1 : 0;
}
