/* SPDX-License-Identifier: Apache-2.0 */
/* bench-node: /kms.API/GetDataKey requests per second (32-byte keys, HKDF-SHA256) against a bare
 * gRPC C core echo server (lib/rpc, a handler that echoes the request) measured in the same run,
 * with the same client (lib/rpc unary calls from BENCH_THREADS threads over one channel each) and
 * p50/p99 latency. Three servers: the echo baseline and the key service's handler, both in this
 * process; then the real constellation-keyservice binary (path in argv[1]) as a separate process.
 * Rounds alternate echo/key so that machine noise hits both. Not a ctest test. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "keyservice.h"
#include "rpc/rpc.h"

#define BENCH_THREADS 4
#define BENCH_SECONDS 3
#define BENCH_ROUNDS 3
#define BENCH_MAX_SAMPLES 2000000

static const uint8_t request[] = "\x0a\x24" "00000000-0000-0000-0000-000000000000" "\x10\x20";
#define REQUEST_LEN (sizeof(request) - 1)

static void echo(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        rpc_call_reply(call, req, len);
}

static void get_data_key(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        /* as node/keyservice/main.c */
        uint8_t resp[KEYSERVICE_MAX_RESPONSE];
        CLEANUP_ERASE(resp);
        size_t resp_len = 0;
        ct_error err = CT_ERROR_INIT;
        if (keyservice_get_data_key(userdata, req, len, resp, &resp_len, &err) < 0)
                rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, err.reason);
        else
                rpc_call_reply(call, resp, resp_len);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

struct worker {
        const char *target;
        const char *method;
        double until;
        double *lat;
        size_t n, cap;
        unsigned errors;
};

static void *work(void *p) {
        struct worker *w = p;
        rpc_channel *ch = NULL;
        if (rpc_channel_new(w->target, NULL, NULL, &ch) < 0)
                return NULL;
        while (now_s() < w->until) {
                uint8_t *resp = NULL;
                size_t len = 0;
                rpc_status st = { 0 };
                double t0 = now_s();
                int r = rpc_unary(ch, w->method, request, REQUEST_LEN, 10000, &resp, &len, &st);
                double t1 = now_s();
                if (r < 0 || st.code != GRPC_STATUS_OK)
                        w->errors++;
                else if (w->n < w->cap)
                        w->lat[w->n++] = t1 - t0;
                rpc_status_done(&st);
                free(resp);
        }
        rpc_channel_free(ch);
        return NULL;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

struct result {
        double rps, p50, p99;
        size_t n;
        unsigned errors;
};

static struct result run(const char *target, const char *method) {
        struct worker w[BENCH_THREADS];
        pthread_t t[BENCH_THREADS];
        double start = now_s();
        for (int i = 0; i < BENCH_THREADS; i++) {
                w[i] = (struct worker){ .target = target, .method = method, .until = start + BENCH_SECONDS,
                                        .cap = BENCH_MAX_SAMPLES / BENCH_THREADS };
                w[i].lat = malloc(w[i].cap * sizeof(double));
                pthread_create(&t[i], NULL, work, &w[i]);
        }
        size_t total = 0;
        struct result res = { 0 };
        for (int i = 0; i < BENCH_THREADS; i++) {
                pthread_join(t[i], NULL);
                total += w[i].n;
                res.errors += w[i].errors;
        }
        double elapsed = now_s() - start;
        double *all = malloc((total ? total : 1) * sizeof(double));
        size_t k = 0;
        for (int i = 0; i < BENCH_THREADS; i++) {
                memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
                k += w[i].n;
                free(w[i].lat);
        }
        qsort(all, total, sizeof(double), cmp);
        res.n = total;
        res.rps = (double) total / elapsed;
        res.p50 = total ? all[total / 2] * 1e6 : 0;
        res.p99 = total ? all[(size_t) ((double) total * 0.99)] * 1e6 : 0;
        free(all);
        return res;
}

static void print(const char *what, const struct result *r) {
        printf("  %-34s %9.0f req/s   p50 %7.0f us   p99 %7.0f us   (%zu calls, %u errors)\n", what, r->rps, r->p50,
               r->p99, r->n, r->errors);
}

/* The real binary: start it with our NOTIFY_SOCKET and read the port from READY=1's STATUS. */
static pid_t start_binary(const char *bin, const char *dir, char *ret_target, size_t target_size) {
        char path[100], ms[128], salt[128];
        snprintf(path, sizeof path, "%s/notify", dir);
        snprintf(ms, sizeof ms, "%s/mastersecret", dir);
        snprintf(salt, sizeof salt, "%s/salt", dir);
        uint8_t zero[32] = { 0 };
        FILE *f = fopen(ms, "w");
        fwrite(zero, 1, 32, f);
        fclose(f);
        f = fopen(salt, "w");
        fwrite(zero, 1, 32, f);
        fclose(f);
        chmod(ms, 0600);
        chmod(salt, 0600);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -1;
        pid_t pid = fork();
        if (pid == 0) {
                setenv("NOTIFY_SOCKET", path, 1);
                execl(bin, bin, "--listen", "127.0.0.1:0", "--master-secret", ms, "--salt", salt, "--log-level",
                      "error", (char *) NULL);
                _exit(127);
        }
        char buf[512];
        struct timeval tv = { .tv_sec = 30 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        const char *g = strstr(buf, "grpc=");
        if (!g)
                return -1;
        snprintf(ret_target, target_size, "%.*s", (int) strcspn(g + 5, " \n"), g + 5);
        return pid;
}

int main(int argc, char **argv) {
        secret_t *m = secret_new(32), *s = secret_new(32);
        kms *k = NULL;
        if (kms_open_cluster(m, s, &k, NULL) < 0)
                return 1;
        rpc_server *srv = NULL;
        int port = 0;
        if (rpc_server_new(NULL, &srv) < 0 || rpc_server_register(srv, "/bench.Echo/Echo", echo, NULL) < 0 ||
            rpc_server_register(srv, KEYSERVICE_METHOD, get_data_key, k) < 0 ||
            rpc_server_listen(srv, "127.0.0.1:0", NULL, &port) < 0 || rpc_server_start(srv) < 0)
                return 1;
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", port);
        printf("bench-node: %d client threads, %d s per run, %d rounds (request %zu bytes, 32-byte key)\n",
               BENCH_THREADS, BENCH_SECONDS, BENCH_ROUNDS, REQUEST_LEN);
        (void) run(target, "/bench.Echo/Echo"); /* warm-up */
        struct result best_echo = { 0 }, best_key = { 0 };
        for (int r = 0; r < BENCH_ROUNDS; r++) {
                struct result e = run(target, "/bench.Echo/Echo");
                struct result g = run(target, KEYSERVICE_METHOD);
                print("echo (bare gRPC C core)", &e);
                print("GetDataKey (key service handler)", &g);
                if (e.rps > best_echo.rps)
                        best_echo = e;
                if (g.rps > best_key.rps)
                        best_key = g;
        }
        printf("best: GetDataKey %.0f req/s (p99 %.0f us) vs echo %.0f req/s (p99 %.0f us): %.2fx\n", best_key.rps,
               best_key.p99, best_echo.rps, best_echo.p99, best_key.rps / best_echo.rps);
        rpc_server_free(srv);

        if (argc > 1) {
                char dir[] = "/tmp/ct-bench-node-XXXXXX";
                if (!mkdtemp(dir))
                        return 1;
                char bt[64];
                pid_t pid = start_binary(argv[1], dir, bt, sizeof bt);
                if (pid < 0) {
                        fprintf(stderr, "bench-node: %s did not start\n", argv[1]);
                        return 1;
                }
                struct result b = { 0 };
                for (int r = 0; r < BENCH_ROUNDS; r++) {
                        struct result x = run(bt, KEYSERVICE_METHOD);
                        print("constellation-keyservice process", &x);
                        if (x.rps > b.rps)
                                b = x;
                }
                printf("best: constellation-keyservice %.0f req/s (p99 %.0f us): %.2fx of in-process echo\n", b.rps,
                       b.p99, b.rps / best_echo.rps);
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                char cmd[128];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                (void) !system(cmd);
        }
        kms_free(k);
        secret_free(m);
        secret_free(s);
        return 0;
}
