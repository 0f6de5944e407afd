/* SPDX-License-Identifier: Apache-2.0 */
/* kubeadm init with the PKI the bootstrapper made (certificatesDir = our PKI dir: kubeadm finds
 * ca.*, sa.*, front-proxy-ca.*, etcd/ca.* and only creates the leaf certificates; it keeps the
 * admin.conf written next to it because that one chains to the same CA).
 *
 * No kubeadm exists on the build and test machines (reference machine.md: no kubeadm, kubelet or
 * kube-apiserver in any reachable registry): test-node-init drives this path with a stand-in
 * script that records its arguments and the configuration; what a real kubeadm does with them is
 * unproven here. The values put into the YAML were validated by the strict alphabets below before
 * anything was changed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "basic/fileio.h"
#include "bootstrapper.h"

#define LAYER "kubeadm"

bool kubeadm_valid_san(const char *s) {
        if (!s || !*s || strlen(s) > 253)
                return false;
        if (metadata_valid_ip(s))
                return true;
        /* DNS name, optionally a leading wildcard label. */
        const char *name = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
        char lower[254];
        size_t n = strlen(name);
        for (size_t i = 0; i <= n; i++)
                lower[i] = (char) ((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
        return metadata_valid_node_name(lower);
}

bool kubeadm_valid_version(const char *s) {
        /* v<digits>.<digits>.<digits>, nothing else (no pre-release: Constellation pins releases) */
        if (!s || s[0] != 'v')
                return false;
        const char *p = s + 1;
        for (int part = 0; part < 3; part++) {
                size_t d = 0;
                while (p[d] >= '0' && p[d] <= '9')
                        d++;
                if (d == 0 || d > 5)
                        return false;
                p += d;
                if (part < 2) {
                        if (*p != '.')
                                return false;
                        p++;
                }
        }
        return *p == 0;
}

bool kubeadm_valid_cidr(const char *s) {
        if (!s)
                return false;
        const char *slash = strchr(s, '/');
        if (!slash || slash == s || (size_t) (slash - s) >= INET6_ADDRSTRLEN)
                return false;
        char addr[INET6_ADDRSTRLEN];
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        uint8_t buf[16];
        int max;
        if (inet_pton(AF_INET, addr, buf) == 1)
                max = 32;
        else if (inet_pton(AF_INET6, addr, buf) == 1)
                max = 128;
        else
                return false;
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3)
                return false;
        int bits = 0;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                bits = bits * 10 + (*p - '0');
        }
        return bits <= max;
}

int kubeadm_write_config(const kubeadm_params *p, char **ret_path, ct_error *err) {
        char *sans = NULL;
        size_t sans_len = 0;
        FILE *m = open_memstream(&sans, &sans_len);
        if (!m)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        fprintf(m, "  - \"%s\"\n", p->endpoint);
        for (size_t i = 0; i < p->n_sans; i++)
                fprintf(m, "  - \"%s\"\n", p->sans[i]);
        fclose(m);
        _cleanup_free_ char *sans_owned = sans;
        bool v6 = strchr(p->endpoint, ':') != NULL;
        _cleanup_free_ char *yaml = NULL;
        int n = asprintf(&yaml,
                         "apiVersion: kubeadm.k8s.io/v1beta3\n"
                         "kind: InitConfiguration\n"
                         "nodeRegistration:\n"
                         "  name: \"%s\"\n"
                         "  kubeletExtraArgs:\n"
                         "    node-ip: \"%s\"\n"
                         "localAPIEndpoint:\n"
                         "  advertiseAddress: \"%s\"\n"
                         "  bindPort: 6443\n"
                         "---\n"
                         "apiVersion: kubeadm.k8s.io/v1beta3\n"
                         "kind: ClusterConfiguration\n"
                         "clusterName: \"%s\"\n"
                         "%s%s%s"
                         "certificatesDir: \"%s\"\n"
                         "controlPlaneEndpoint: \"%s%s%s:6443\"\n"
                         "networking:\n"
                         "%s%s%s"
                         "  dnsDomain: cluster.local\n"
                         "apiServer:\n"
                         "  certSANs:\n"
                         "%s",
                         p->node_name, p->node_ip, p->node_ip, p->cluster_name,
                         isempty(p->kubernetes_version) ? "" : "kubernetesVersion: \"",
                         isempty(p->kubernetes_version) ? "" : p->kubernetes_version,
                         isempty(p->kubernetes_version) ? "" : "\"\n", p->pki_dir, v6 ? "[" : "", p->endpoint,
                         v6 ? "]" : "", isempty(p->service_cidr) ? "" : "  serviceSubnet: \"",
                         isempty(p->service_cidr) ? "" : p->service_cidr, isempty(p->service_cidr) ? "" : "\"\n", sans);
        if (n < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        char *path = NULL;
        if (asprintf(&path, "%s/kubeadm-init.yaml", p->kubernetes_dir) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        int r = write_file_atomic(path, yaml, strlen(yaml), 0600);
        if (r < 0) {
                free(path);
                return ct_error_set(err, r, LAYER, "io", "kubeadm config: %s", strerror(-r));
        }
        *ret_path = path;
        return 0;
}

int kubeadm_run_init(const kubeadm_params *p, const char *config_path, ct_error *err) {
        const char *argv[12];
        size_t n = 0;
        argv[n++] = p->kubeadm;
        argv[n++] = "init";
        argv[n++] = "--config";
        argv[n++] = config_path;
        argv[n++] = "--skip-token-print";
        argv[n++] = "--skip-certificate-key-print";
        if (p->patches_dir) {
                argv[n++] = "--patches";
                argv[n++] = p->patches_dir;
        }
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid < 0)
                return ct_error_set(err, -errno, LAYER, "exec", "fork: %s", strerror(errno));
        if (pid == 0) {
                /* lib/service blocks SIGTERM/SIGINT/SIGHUP and ignores SIGPIPE; both would survive
                 * execve. */
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                /* kubeadm's own output goes to our stderr, i.e. the journal. */
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull >= 0)
                        dup2(devnull, STDIN_FILENO);
                dup2(STDERR_FILENO, STDOUT_FILENO);
                char path[512];
                snprintf(path, sizeof path, "PATH=%s", p->path_env);
                char *const envp[] = { path, (char *) "HOME=/root", NULL };
                execve(p->kubeadm, (char *const *) argv, envp);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return ct_error_set(err, -errno, LAYER, "exec", "waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return ct_error_set(err, -EIO, LAYER, "kubeadm-failed", "%s init %s %d (its output is in the log)",
                                    p->kubeadm, WIFEXITED(st) ? "exited with" : "was killed by signal",
                                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return 0;
}
