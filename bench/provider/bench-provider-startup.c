/* SPDX-License-Identifier: Apache-2.0 */
/* Starts terraform-provider-constellation the way Terraform does (magic cookie, protocol versions,
 * PLUGIN_CLIENT_CERT), and measures exec-to-handshake time, then one GetProviderSchema over
 * AutoMTLS and Shutdown, and the process's peak RSS (wait4 ru_maxrss). Baseline in the same run:
 * exec of /bin/true (the cost of fork+exec itself). Usage: bench-provider-startup PROVIDER [N] */
#include <poll.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/encoding.h"
#include "basic/secret.h"
#include "rpc/rpc.h"
#include "tfplugin6.pb-c.h"
#include "x509/x509.h"

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double exec_true(void) {
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid == 0) {
                execl("/bin/true", "true", (char *) NULL);
                _exit(127);
        }
        waitpid(pid, NULL, 0);
        return now_ms() - t0;
}

static int run_once(const char *provider, const char *client_key, const char *client_cert, double *ret_handshake_ms,
                    double *ret_schema_ms, double *ret_exit_ms, long *ret_maxrss_kb) {
        int out[2];
        if (pipe(out) < 0)
                return -errno;
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid == 0) {
                dup2(out[1], STDOUT_FILENO);
                close(out[0]);
                close(out[1]);
                setenv("TF_PLUGIN_MAGIC_COOKIE", "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2", 1);
                setenv("PLUGIN_PROTOCOL_VERSIONS", "5,6", 1);
                setenv("PLUGIN_CLIENT_CERT", client_cert, 1);
                execl(provider, provider, (char *) NULL);
                _exit(127);
        }
        close(out[1]);
        char line[4096];
        size_t len = 0;
        while (len < sizeof(line) - 1) {
                ssize_t k = read(out[0], line + len, sizeof(line) - 1 - len);
                if (k <= 0)
                        break;
                len += (size_t) k;
                if (memchr(line, '\n', len))
                        break;
        }
        *ret_handshake_ms = now_ms() - t0;
        line[len] = 0;
        /* 1|6|unix|/path|grpc|CERT */
        char *f[6] = { 0 };
        char *save = NULL, *s = strtok_r(line, "|\n", &save);
        for (int i = 0; i < 6 && s; i++, s = strtok_r(NULL, "|\n", &save))
                f[i] = s;
        if (!f[3] || !f[5]) {
                fprintf(stderr, "bad handshake line\n");
                return -EPROTO;
        }
        uint8_t *der;
        size_t der_len;
        if (base64_decode(f[5], strlen(f[5]), BASE64_STD_RAW, &der, &der_len) < 0)
                return -EBADMSG;
        const unsigned char *p = der;
        X509 *server_cert = d2i_X509(NULL, &p, (long) der_len);
        free(der);
        char *server_pem = NULL;
        x509_to_pem(server_cert, &server_pem);
        X509_free(server_cert);

        char target[512];
        snprintf(target, sizeof(target), "unix:%s", f[3]);
        rpc_tls_config tls = { .key_pem = client_key, .cert_pem = client_cert, .root_pem = server_pem,
                               .target_name = "localhost" };
        rpc_channel *ch;
        rpc_channel_new(target, &tls, NULL, &ch);
        double t1 = now_ms();
        Tfplugin6__GetProviderSchema__Request req = TFPLUGIN6__GET_PROVIDER_SCHEMA__REQUEST__INIT;
        uint8_t buf[8];
        size_t n = protobuf_c_message_pack(&req.base, buf);
        uint8_t *resp = NULL;
        size_t rlen = 0;
        rpc_status st = { 0 };
        rpc_unary(ch, "/tfplugin6.Provider/GetProviderSchema", buf, n, 5000, &resp, &rlen, &st);
        *ret_schema_ms = now_ms() - t1;
        int ok = st.code == GRPC_STATUS_OK;
        free(resp);
        rpc_status_done(&st);
        /* go-plugin's Kill(): Shutdown, close the connection, wait for the process (up to 2 s):
         * every millisecond of the provider's exit is a millisecond of Terraform's. */
        double t2 = now_ms();
        rpc_unary(ch, "/plugin.GRPCController/Shutdown", "", 0, 5000, NULL, NULL, &st);
        rpc_status_done(&st);
        rpc_channel_free(ch);
        free(server_pem);
        struct rusage ru;
        int status;
        wait4(pid, &status, 0, &ru);
        *ret_exit_ms = now_ms() - t2;
        close(out[0]);
        *ret_maxrss_kb = ru.ru_maxrss;
        return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s PATH-TO-terraform-provider-constellation [RUNS]\n", argv[0]);
                return 2;
        }
        int runs = argc > 2 ? atoi(argv[2]) : 20;
        if (runs < 1 || runs > 1000)
                runs = 20;
        /* A client certificate like Terraform's (P-521, CA:TRUE, SAN localhost). */
        const char *const sans[] = { "localhost", NULL };
        x509_params cp = { .common_name = "localhost", .organization = "HashiCorp", .dns_names = sans, .is_ca = true,
                           .client_auth = true, .server_auth = true, .curve = "P-521", .not_before_offset_s = -30,
                           .lifetime_s = 3600 };
        char *key = NULL, *cert = NULL;
        if (x509_issue(&cp, NULL, NULL, &key, &cert) < 0)
                return 1;
        double hs[1000], sc[1000], tr[1000], ex[1000];
        long rss_max = 0;
        for (int i = 0; i < runs; i++) {
                long rss = 0;
                if (run_once(argv[1], key, cert, &hs[i], &sc[i], &ex[i], &rss) < 0) {
                        fprintf(stderr, "run %d failed\n", i);
                        return 1;
                }
                if (rss > rss_max)
                        rss_max = rss;
                tr[i] = exec_true();
        }
        qsort(hs, (size_t) runs, sizeof(double), cmp);
        qsort(sc, (size_t) runs, sizeof(double), cmp);
        qsort(tr, (size_t) runs, sizeof(double), cmp);
        qsort(ex, (size_t) runs, sizeof(double), cmp);
        printf("provider exec-to-handshake: median %.2f ms (min %.2f) over %d runs [goal: <= 0.5x the Go peer, bench-peer.sh]\n", hs[runs / 2],
               hs[0], runs);
        printf("baseline fork+exec of /bin/true: median %.2f ms\n", tr[runs / 2]);
        printf("GetProviderSchema over AutoMTLS (incl. TLS handshake): median %.2f ms\n", sc[runs / 2]);
        printf("Shutdown call to process exit: median %.2f ms\n", ex[runs / 2]);
        printf("provider peak RSS: %.1f MB [goal: <= 0.6x the Go peer, bench-peer.sh]\n", rss_max / 1024.0);
        erase_and_free(key);
        free(cert);
        return 0;
}
