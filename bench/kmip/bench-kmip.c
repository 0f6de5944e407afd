/* SPDX-License-Identifier: Apache-2.0 */
/* kms://kmip against kms://cluster-kms in the same run, with a real PyKMIP server on loopback
 * (test/kmip/pykmip.sh):
 *   - data keys per second from an open KMS: kms://kmip (derived locally after the one unwrap)
 *     against kms://cluster-kms (goal: the same within noise, >= 0.9x);
 *   - kms_open of kms://kmip per second: TLS handshake with client certificate + one Decrypt (what
 *     a key-service start, a join-service start or a recovery pays once);
 *   - Decrypt round trips per second over one kept TLS connection: what the alternative design (one
 *     KMIP call per data key) would cost per key, for comparison with the first line.
 * Data-key rates per CPU-second of the benchmark thread (interleaved, best of seven); the KMIP
 * round trips in wall-clock time (the server is another process). Usage: bench-kmip PYKMIP_SH [seconds, default 2]. */
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/log.h"
#include "kmip/wrap.h"
#include "kms/kms.h"

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void die(const char *what, const ct_error *err) {
        char buf[1024];
        fprintf(stderr, "bench-kmip: %s: %s\n", what, err ? ct_error_format(err, buf, sizeof(buf)) : "failed");
        exit(1);
}

/* CPU time of this thread: local derivation is pure computation, and the machine is shared. */
static double cpu_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double data_keys_per_second(kms *k, double secs) {
        unsigned long n = 0;
        char id[64];
        double t0 = cpu_now(), t;
        do {
                for (int i = 0; i < 200; i++, n++) {
                        snprintf(id, sizeof(id), "%08lx-0000-4000-8000-000000000000", n);
                        secret_t *key = NULL;
                        if (kms_get_data_key(k, id, 32, &key, NULL) < 0)
                                die("get data key", NULL);
                        secret_free(key);
                }
                t = cpu_now();
        } while (t - t0 < secs);
        return (double) n / (t - t0);
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: bench-kmip PYKMIP_SH [seconds]\n");
                return 2;
        }
        double secs = argc > 2 ? atof(argv[2]) : 2.0;
        log_set_max_level(LOG_LEVEL_WARN);
        char dir[PATH_MAX / 2] = "/tmp/bench-kmip-XXXXXX";
        if (!mkdtemp(dir))
                return 1;
        char cmd[PATH_MAX * 2], owner[32];
        snprintf(owner, sizeof(owner), "%d", (int) getpid());
        setenv("PYKMIP_OWNER_PID", owner, 1);
        snprintf(cmd, sizeof(cmd), "bash %s pki %s && bash %s start %s >/dev/null", argv[1], dir, argv[1], dir);
        if (system(cmd) != 0) {
                fprintf(stderr, "bench-kmip: PyKMIP did not start (pykmip-server installed?)\n");
                return 1;
        }
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/port", dir);
        FILE *f = fopen(p, "re");
        int port = 0;
        if (!f || fscanf(f, "%d", &port) != 1)
                return 1;
        fclose(f);

        char ep[64], cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
        snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
        snprintf(cert, sizeof(cert), "%s/client.pem", dir);
        snprintf(key, sizeof(key), "%s/client.key", dir);
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        kmip_uri_params up = { .endpoint = ep, .client_cert = cert, .client_key = key, .server_ca = ca };
        kmip_config cfg;
        ct_error err = CT_ERROR_INIT;
        kmip_client *c = NULL;
        if (kmip_config_from_params(&up, &cfg, &err) < 0 || kmip_client_new(&cfg, &c, &err) < 0)
                die("client", &err);
        kmip_config_done(&cfg);
        char *uid = NULL;
        if (kmip_create_aes_key(c, 256, KMIP_USAGE_ENCRYPT | KMIP_USAGE_DECRYPT, "bench", &uid, &err) < 0 ||
            kmip_activate(c, uid, &err) < 0)
                die("create KEK", &err);
        secret_t *master = secret_new(32), *salt = secret_new(32);
        RAND_bytes(master->data, 32);
        RAND_bytes(salt->data, 32);
        uint8_t *blob = NULL;
        size_t blob_len = 0;
        if (kmip_wrap_master_secret(c, uid, master, salt, &blob, &blob_len, &err) < 0)
                die("wrap", &err);
        kmip_uri_parts parts = { .endpoint = ep, .kek = uid, .client_cert = cert, .client_key = key, .server_ca = ca,
                                 .wrapped = blob, .wrapped_len = blob_len, .salt = salt };
        char *uri = NULL;
        if (kmip_uri_build(&parts, &uri, &err) < 0)
                die("uri", &err);

        kms *cluster = NULL, *kmip = NULL;
        if (kms_open_cluster(master, salt, &cluster, &err) < 0 || kms_open(uri, NULL, &kmip, &err) < 0)
                die("kms_open", &err);
        /* Interleaved, best of seven each: the neighbours' load comes and goes. */
        double base = 0, through = 0;
        for (int round = 0; round < 7; round++) {
                base = MAX(base, data_keys_per_second(cluster, secs / 7));
                through = MAX(through, data_keys_per_second(kmip, secs / 7));
        }
        printf("data keys per CPU-second from an open KMS: kms://kmip %.0f/s, kms://cluster-kms %.0f/s (%.2fx)\n",
               through, base, through / base);

        unsigned long n = 0;
        double t0 = now(), t;
        do {
                kms *k = NULL;
                if (kms_open(uri, NULL, &k, &err) < 0)
                        die("kms_open", &err);
                kms_free(k);
                n++;
                t = now();
        } while (t - t0 < secs);
        double opens = (double) n / (t - t0);
        printf("kms_open(kms://kmip) (TLS handshake + Decrypt): %.1f/s (%.2f ms)\n", opens, 1000.0 / opens);

        n = 0;
        t0 = now();
        do {
                secret_t *m = NULL;
                if (kmip_unwrap_master_secret(c, uid, blob, blob_len, salt, &m, &err) < 0)
                        die("unwrap", &err);
                secret_free(m);
                n++;
                t = now();
        } while (t - t0 < secs);
        double rt = (double) n / (t - t0);
        unsigned connects;
        kmip_client_stats(c, &connects, NULL);
        printf("Decrypt round trips/s on one kept connection: %.1f/s (%.2f ms; %u connection(s)); a KMIP call per "
               "data key would be %.0fx slower than local derivation\n",
               rt, 1000.0 / rt, connects, through / rt);

        kms_free(cluster);
        kms_free(kmip);
        kmip_client_free(c);
        erase_and_free(uri);
        free(uid);
        free(blob);
        secret_free(master);
        secret_free(salt);
        snprintf(cmd, sizeof(cmd), "bash %s stop %s; rm -rf %s", argv[1], dir, dir);
        if (system(cmd) != 0)
                fprintf(stderr, "bench-kmip: stopping PyKMIP or removing %s failed\n", dir);
        return 0;
}
