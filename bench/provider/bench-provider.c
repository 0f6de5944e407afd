/* SPDX-License-Identifier: Apache-2.0 */
/* The provider's cost as Terraform sees it (item 11 of the provider issue):
 *   1. `terraform plan` of 50 constellation_image reads (file:// CDN) against `terraform plan` of
 *      50 terraform_data resources (built into Terraform: the floor), alternated in the same run,
 *      medians, as a ratio. Goal <= 1.3x.
 *   2. Peak RSS of every provider process Terraform starts during one such plan (this program
 *      stands in for the provider, forks the real one and reads its rusage). Goal (issue 11):
 *      <= 0.6x the Go peer's, compared in one run by bench-peer.sh.
 *   3. exec-to-handshake: from before exec to the handshake line on stdout, with AutoMTLS on
 *      (PLUGIN_CLIENT_CERT set, as Terraform does), measured standalone and under Terraform.
 *      Goal (issue 11): <= 0.5x the Go peer's (bench-peer.sh).
 *   4. The provider's CPU time over one plan (independent of machine load, unlike wall times).
 * bench-provider-startup (same directory) measures one process in isolation; this program measures
 * what Terraform actually runs.
 * Prints figures; not a ctest test (they depend on the machine).
 *
 * Usage: bench-provider [PROVIDER_DIR] [ROUNDS]
 *   PROVIDER_DIR holds terraform-provider-constellation (default: this build's provider/);
 *   ROUNDS plans of each kind (default 5). Needs terraform (1.11.4) on PATH or in $TERRAFORM. */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/secret.h"
#include "plugin.h"
#include "x509/x509.h"

#define N_READS 50
#define N_HANDSHAKES 30
#define WRAP_ENV_REAL "CT_BENCH_REAL_PROVIDER"
#define WRAP_ENV_LOG "CT_BENCH_LOG"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Spawns the provider (or the wrapped one) with stdout on a pipe and reads up to the end of the
 * handshake line. Returns the child's pid; *ret_fd is the pipe's read end, positioned after the
 * line; the line is copied to `line`. */
static pid_t spawn_until_handshake(const char *path, char *const *argv, char *line, size_t line_size,
                                   double *ret_seconds, int *ret_fd) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        double start = now_s();
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (dup2(p[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execv(path, argv);
                _exit(127);
        }
        close(p[1]);
        size_t n = 0;
        while (n + 1 < line_size) {
                ssize_t k = read(p[0], line + n, 1);
                if (k <= 0)
                        break;
                n++;
                if (line[n - 1] == '\n')
                        break;
        }
        line[n] = 0;
        *ret_seconds = now_s() - start;
        *ret_fd = p[0];
        return pid;
}

/* Wrapper mode: Terraform starts us as terraform-provider-constellation. Run the real provider,
 * pass its handshake line and everything after it through, and log peak RSS and handshake time. */
static int wrapper_main(int argc, char **argv) {
        const char *real = getenv(WRAP_ENV_REAL), *log = getenv(WRAP_ENV_LOG);
        (void) argc;
        signal(SIGINT, SIG_IGN); /* like the provider: Terraform stops us itself */
        char line[4096];
        double hs;
        int fd;
        pid_t pid = spawn_until_handshake(real, argv, line, sizeof(line), &hs, &fd);
        if (pid < 0)
                return 1;
        (void) loop_write(STDOUT_FILENO, line, strlen(line));
        char buf[4096];
        ssize_t k;
        while ((k = read(fd, buf, sizeof(buf))) > 0)
                (void) loop_write(STDOUT_FILENO, buf, (size_t) k);
        close(fd);
        int status = 0;
        struct rusage ru = { 0 };
        if (wait4(pid, &status, 0, &ru) < 0)
                return 1;
        FILE *f = fopen(log, "ae");
        if (f) {
                fprintf(f, "%ld %.6f %.6f\n", ru.ru_maxrss, hs,
                        (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                                (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
                fclose(f);
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Runs `terraform plan` in dir with output to dir/out.log; returns wall seconds or -1. */
static double terraform_plan(const char *terraform, const char *dir) {
        char log[4096];
        snprintf(log, sizeof(log), "%s/out.log", dir);
        double start = now_s();
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0 || chdir(dir) < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                execlp(terraform, terraform, "plan", "-no-color", "-input=false", (char *) NULL);
                _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0)
                return -1;
        double t = now_s() - start;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "terraform plan failed in %s; its output:\n", dir);
                _cleanup_free_ uint8_t *out = NULL;
                size_t len;
                if (read_full_file(log, 1 << 20, &out, &len) == 0)
                        fwrite(out, 1, len, stderr);
                return -1;
        }
        return t;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(path);
}

static int write_text(const char *dir, const char *name, const char *text) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return write_file_atomic(path, text, strlen(text), 0644);
}

static int mkdirs(const char *dir, const char *rel) {
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, rel);
        if (n < 0 || (size_t) n >= sizeof(path))
                return -ENAMETOOLONG;
        for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
                *s = 0;
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int setup(const char *work, const char *provider_dir, const char *self) {
        char buf[8192];
        int r;
        if ((r = mkdirs(work, "cdn/constellation/v2/ref/-/stream/stable/v2.25.0/image")) < 0 ||
            (r = mkdirs(work, "image")) < 0 || (r = mkdirs(work, "floor")) < 0 || (r = mkdirs(work, "wrap")) < 0 ||
            (r = mkdirs(work, "sock")) < 0)
                return r;
        if ((r = write_text(work, "cdn/constellation/v2/ref/-/stream/stable/v2.25.0/image/info.json",
                            "{\"ref\":\"-\",\"stream\":\"stable\",\"version\":\"v2.25.0\",\"list\":[\n"
                            " {\"csp\":\"QEMU\",\"attestationVariant\":\"qemu-vtpm\",\"reference\":\"q.raw\"},\n"
                            " {\"csp\":\"AWS\",\"attestationVariant\":\"aws-sev-snp\",\"reference\":\"ami-0a\","
                            "\"region\":\"eu-central-1\"}]}\n")) < 0)
                return r;
        snprintf(buf, sizeof(buf),
                 "provider_installation {\n  dev_overrides { \"edgelesssys/constellation\" = \"%s\" }\n}\n",
                 provider_dir);
        if ((r = write_text(work, "dev.tfrc", buf)) < 0)
                return r;
        snprintf(buf, sizeof(buf),
                 "provider_installation {\n  dev_overrides { \"edgelesssys/constellation\" = \"%s/wrap\" }\n}\n",
                 work);
        if ((r = write_text(work, "wrap.tfrc", buf)) < 0)
                return r;
        snprintf(buf, sizeof(buf),
                 "terraform {\n  required_providers {\n    constellation = { source = \"edgelesssys/constellation\" }\n"
                 "  }\n}\nprovider \"constellation\" {\n  cdn_url = \"file://%s/cdn\"\n}\n"
                 "data \"constellation_image\" \"i\" {\n  count               = %d\n  version             = \"v2.25.0\"\n"
                 "  csp                 = \"qemu\"\n  attestation_variant = \"qemu-vtpm\"\n}\n",
                 work, N_READS);
        if ((r = write_text(work, "image/main.tf", buf)) < 0)
                return r;
        snprintf(buf, sizeof(buf), "resource \"terraform_data\" \"d\" {\n  count = %d\n  input = \"v2.25.0\"\n}\n",
                 N_READS);
        if ((r = write_text(work, "floor/main.tf", buf)) < 0)
                return r;
        char link[4096];
        snprintf(link, sizeof(link), "%s/wrap/terraform-provider-constellation", work);
        return symlink(self, link) < 0 ? -errno : 0;
}

/* Standalone exec-to-handshake with AutoMTLS, as Terraform starts the provider. */
static int bench_handshake(const char *provider, const char *work, double *ret_median, double *ret_max) {
        _cleanup_free_ char *cert_pem = NULL;
        _cleanup_erase_free_ char *key_pem = NULL;
        const char *const sans[] = { "localhost", NULL };
        x509_params params = { .common_name = "localhost", .dns_names = sans, .client_auth = true,
                               .not_before_offset_s = -30, .lifetime_s = 3600 };
        int r = x509_issue(&params, NULL, NULL, &key_pem, &cert_pem);
        if (r < 0)
                return r;
        char sockdir[4096];
        snprintf(sockdir, sizeof(sockdir), "%s/sock", work);
        setenv(PLUGIN_MAGIC_COOKIE_KEY, PLUGIN_MAGIC_COOKIE_VALUE, 1);
        setenv("PLUGIN_PROTOCOL_VERSIONS", "6", 1);
        setenv("PLUGIN_CLIENT_CERT", cert_pem, 1);
        setenv("PLUGIN_UNIX_SOCKET_DIR", sockdir, 1);
        double t[N_HANDSHAKES], max = 0;
        char *const argv[] = { (char *) provider, NULL };
        for (int i = 0; i < N_HANDSHAKES; i++) {
                char line[4096];
                int fd;
                pid_t pid = spawn_until_handshake(provider, argv, line, sizeof(line), &t[i], &fd);
                if (pid < 0)
                        return (int) pid;
                close(fd);
                /* No client will connect; SIGTERM ends it (its socket directory goes with work/). */
                kill(pid, SIGTERM);
                (void) waitpid(pid, NULL, 0);
                if (strncmp(line, "1|6|unix|", 9) != 0) {
                        fprintf(stderr, "unexpected handshake line: \"%s\"\n", line);
                        return -EBADMSG;
                }
                if (t[i] > max)
                        max = t[i];
        }
        unsetenv(PLUGIN_MAGIC_COOKIE_KEY);
        unsetenv("PLUGIN_PROTOCOL_VERSIONS");
        unsetenv("PLUGIN_CLIENT_CERT");
        unsetenv("PLUGIN_UNIX_SOCKET_DIR");
        *ret_median = median(t, N_HANDSHAKES);
        *ret_max = max;
        return 0;
}

static const char *goal(bool ok) {
        return ok ? "goal met" : "GOAL MISSED";
}

int main(int argc, char **argv) {
        if (getenv(WRAP_ENV_REAL) && getenv(WRAP_ENV_LOG))
                return wrapper_main(argc, argv);

        /* Terraform resolves dev_overrides relative to each working directory: make it absolute. */
        _cleanup_free_ char *provider_dir = realpath(argc > 1 ? argv[1] : CT_BENCH_PROVIDER_DIR, NULL);
        int rounds = argc > 2 ? atoi(argv[2]) : 5;
        if (rounds < 1 || rounds > 100) {
                fprintf(stderr, "ROUNDS must be 1..100\n");
                return 2;
        }
        const char *terraform = getenv("TERRAFORM") ?: "terraform";
        char provider[4096], self[4096], work[] = "/tmp/ct-bench-provider-XXXXXX";
        snprintf(provider, sizeof(provider), "%s/terraform-provider-constellation", provider_dir ?: "");
        if (!provider_dir || access(provider, X_OK) < 0) {
                fprintf(stderr, "%s: not found or not executable; build the target terraform-provider-constellation\n",
                        provider_dir ? provider : (argc > 1 ? argv[1] : CT_BENCH_PROVIDER_DIR));
                return 1;
        }
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0 || !mkdtemp(work))
                return 1;
        self[n] = 0;
        int ret = 1, r;
        if ((r = setup(work, provider_dir, self)) < 0) {
                fprintf(stderr, "cannot set up %s: %s\n", work, strerror(-r));
                goto out;
        }

        double hs_median, hs_max;
        if ((r = bench_handshake(provider, work, &hs_median, &hs_max)) < 0) {
                fprintf(stderr, "handshake benchmark failed: %s\n", strerror(-r));
                goto out;
        }

        char tfrc[4096], image_dir[4096], floor_dir[4096];
        snprintf(tfrc, sizeof(tfrc), "%s/dev.tfrc", work);
        snprintf(image_dir, sizeof(image_dir), "%s/image", work);
        snprintf(floor_dir, sizeof(floor_dir), "%s/floor", work);
        setenv("TF_CLI_CONFIG_FILE", tfrc, 1);
        setenv("CHECKPOINT_DISABLE", "1", 1);
        setenv("TF_IN_AUTOMATION", "1", 1);
        unsetenv("TF_LOG");
        unsetenv("TF_LOG_PATH");
        /* One warm-up each (page cache, Terraform's own first-run work), then alternate so that
         * drifting machine load hits both sides alike. */
        if (terraform_plan(terraform, image_dir) < 0 || terraform_plan(terraform, floor_dir) < 0) {
                fprintf(stderr, "(is terraform 1.11.4 on PATH? set $TERRAFORM otherwise)\n");
                goto out;
        }
        double ti[100], tf[100];
        for (int i = 0; i < rounds; i++)
                if ((ti[i] = terraform_plan(terraform, image_dir)) < 0 ||
                    (tf[i] = terraform_plan(terraform, floor_dir)) < 0)
                        goto out;
        double mi = median(ti, (size_t) rounds), mf = median(tf, (size_t) rounds);

        /* One plan through the wrapper for RSS and handshake time under Terraform. */
        char wrap_tfrc[4096], rss_log[4096];
        snprintf(wrap_tfrc, sizeof(wrap_tfrc), "%s/wrap.tfrc", work);
        snprintf(rss_log, sizeof(rss_log), "%s/rss.log", work);
        setenv("TF_CLI_CONFIG_FILE", wrap_tfrc, 1);
        setenv(WRAP_ENV_REAL, provider, 1);
        setenv(WRAP_ENV_LOG, rss_log, 1);
        if (terraform_plan(terraform, image_dir) < 0)
                goto out;
        unsetenv(WRAP_ENV_REAL);
        unsetenv(WRAP_ENV_LOG);
        FILE *f = fopen(rss_log, "re");
        if (!f) {
                fprintf(stderr, "the wrapped provider left no measurements in %s\n", rss_log);
                goto out;
        }
        long rss_max = 0, kb;
        double hs, cpu, hs_tf_max = 0, cpu_total = 0;
        int launches = 0;
        while (fscanf(f, "%ld %lf %lf", &kb, &hs, &cpu) == 3) {
                launches++;
                cpu_total += cpu;
                if (kb > rss_max)
                        rss_max = kb;
                if (hs > hs_tf_max)
                        hs_tf_max = hs;
        }
        fclose(f);

        printf("terraform plan, %d constellation_image reads: median %.3f s over %d runs\n", N_READS, mi, rounds);
        printf("terraform plan, %d terraform_data (floor):     median %.3f s over %d runs\n", N_READS, mf, rounds);
        printf("ratio: %.2fx the floor (goal <= 1.30x: %s)\n", mi / mf, goal(mi / mf <= 1.30));
        printf("provider peak RSS: %.1f MB over %d provider launches in one plan (goal: <= 0.6x the Go peer, "
               "see bench-peer.sh)\n",
               (double) rss_max / 1024.0, launches);
        /* CPU time does not depend on what else the machine runs, unlike the wall times above. */
        printf("provider CPU time (user+sys), all launches of one plan: %.1f ms\n", cpu_total * 1e3);
        printf("exec-to-handshake (AutoMTLS): median %.2f ms, max %.2f ms over %d runs; under terraform max %.2f ms "
               "(goal: <= 0.5x the Go peer, see bench-peer.sh)\n",
               hs_median * 1e3, hs_max * 1e3, N_HANDSHAKES, hs_tf_max * 1e3);
        ret = 0;
out:
        (void) nftw(work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return ret;
}
