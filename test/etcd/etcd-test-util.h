/* SPDX-License-Identifier: Apache-2.0 */
/* A real etcd (Debian's /usr/bin/etcd 3.4) for tests: a one-member cluster on 127.0.0.1 with mTLS
 * from a lib/pki PKI, configured exactly as the bootstrapper configures it (the same ETCD_* variables
 * in the environment). etcd cannot bind port 0, so the client and peer ports come from a per-test
 * range below the kernel's ephemeral ports; a pair is checked free just before etcd starts, and if
 * etcd still exits because a port was taken in between, the next pair is tried. Readiness is a
 * Range answered over mTLS, waited for with a deadline; the child is stopped by its pid. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "etcd/etcd.h"
#include "pki/pki.h"

#define ETCD_TEST_BINARY "/usr/bin/etcd"

typedef struct etcd_test {
        char dir[256];      /* data dir, log */
        char pki_dir[256];
        char endpoint[64];  /* 127.0.0.1:<client port> */
        char log_path[300];
        int client_port, peer_port;
        pid_t pid;
} etcd_test;

static inline void etcd_test_die(const char *what, const char *detail) {
        fprintf(stderr, "etcd test: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
}

static inline int64_t etcd_test_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline bool etcd_test_port_free(int port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        bool ok = bind(fd, (struct sockaddr *) &a, sizeof a) == 0;
        close(fd);
        return ok;
}

static inline bool etcd_test_log_has(const char *path, const char *needle) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (read_full_file(path, 16 * 1024 * 1024, &buf, &len) < 0)
                return false;
        bool found = strstr((const char *) buf, needle) != NULL;
        free(buf);
        return found;
}

/* A client of the test etcd with the given certificate files (NULL: the PKI's constellation-client). */
static inline int etcd_test_client(const etcd_test *t, const char *ca, const char *cert, const char *key,
                                   etcd_client **ret, ct_error *err) {
        char storage[3][400];
        snprintf(storage[0], sizeof storage[0], "%s/%s", t->pki_dir, ETCD_PKI_CA);
        snprintf(storage[1], sizeof storage[1], "%s/%s", t->pki_dir, ETCD_PKI_CLIENT_CERT);
        snprintf(storage[2], sizeof storage[2], "%s/%s", t->pki_dir, ETCD_PKI_CLIENT_KEY);
        etcd_client_config c = { .endpoint = t->endpoint, .ca_file = ca ? ca : storage[0],
                                 .cert_file = cert ? cert : storage[1], .key_file = key ? key : storage[2],
                                 .timeout_ms = 5000 };
        return etcd_client_new(&c, ret, err);
}

/* etcd's environment as the bootstrapper's env file sets it (execve's envp: nothing is allocated
 * between fork and exec in a process that has threads). */
#define ETCD_TEST_ENV_MAX 24
static inline void etcd_test_env(const etcd_test *t, const char *name, char *env[static ETCD_TEST_ENV_MAX]) {
        size_t n = 0;
#define E(...)                                                                                                                 do {                                                                                                                           if (asprintf(&env[n++], __VA_ARGS__) < 0)                                                                                      etcd_test_die("asprintf", NULL);                                                                       } while (0)
        E("ETCD_NAME=%s", name);
        E("ETCD_DATA_DIR=%s/data", t->dir);
        E("ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:%d", t->client_port);
        E("ETCD_ADVERTISE_CLIENT_URLS=https://127.0.0.1:%d", t->client_port);
        E("ETCD_LISTEN_PEER_URLS=https://127.0.0.1:%d", t->peer_port);
        E("ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.0.1:%d", t->peer_port);
        E("ETCD_INITIAL_CLUSTER=%s=https://127.0.0.1:%d", name, t->peer_port);
        E("ETCD_INITIAL_CLUSTER_STATE=new");
        E("ETCD_INITIAL_CLUSTER_TOKEN=constellation");
        E("ETCD_CLIENT_CERT_AUTH=true");
        E("ETCD_TRUSTED_CA_FILE=%s/%s.crt", t->pki_dir, PKI_CA_ETCD);
        E("ETCD_CERT_FILE=%s/%s.crt", t->pki_dir, PKI_ETCD_SERVER);
        E("ETCD_KEY_FILE=%s/%s.key", t->pki_dir, PKI_ETCD_SERVER);
        E("ETCD_PEER_CLIENT_CERT_AUTH=true");
        E("ETCD_PEER_TRUSTED_CA_FILE=%s/%s.crt", t->pki_dir, PKI_CA_ETCD);
        E("ETCD_PEER_CERT_FILE=%s/%s.crt", t->pki_dir, PKI_ETCD_PEER);
        E("ETCD_PEER_KEY_FILE=%s/%s.key", t->pki_dir, PKI_ETCD_PEER);
        E("ETCD_ENABLE_V2=false");
        E("ETCD_LOGGER=zap");
        E("ETCD_LOG_OUTPUTS=stderr");
#undef E
        env[n] = NULL;
}

static inline void etcd_test_env_free(char *env[static ETCD_TEST_ENV_MAX]) {
        for (size_t i = 0; env[i]; i++)
                free(env[i]);
}

/* Starts etcd in dir (which must exist) with the PKI in pki_dir (etcd CA and pki_etcd_certs made by
 * the caller); ports from [base, base + 100). */
static inline void etcd_test_start(etcd_test *t, const char *dir, const char *pki_dir, int base) {
        *t = (etcd_test){ .pid = -1 };
        snprintf(t->dir, sizeof t->dir, "%s", dir);
        snprintf(t->pki_dir, sizeof t->pki_dir, "%s", pki_dir);
        snprintf(t->log_path, sizeof t->log_path, "%s/etcd.log", dir);
        if (access(ETCD_TEST_BINARY, X_OK) != 0)
                etcd_test_die(ETCD_TEST_BINARY " is missing", "install Debian's etcd-server (scripts/setup.sh)");
        for (int port = base + (getpid() % 25) * 2, tries = 0; tries < 25; tries++, port += 2) {
                if (port + 1 >= base + 100)
                        port = base;
                if (!etcd_test_port_free(port) || !etcd_test_port_free(port + 1))
                        continue;
                t->client_port = port;
                t->peer_port = port + 1;
                snprintf(t->endpoint, sizeof t->endpoint, "127.0.0.1:%d", port);
                char *env[ETCD_TEST_ENV_MAX];
                etcd_test_env(t, "etcd-test", env);
                char *const argv[] = { (char *) ETCD_TEST_BINARY, NULL };
                pid_t pid = fork();
                if (pid < 0)
                        etcd_test_die("fork", strerror(errno));
                if (pid == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        int fd = open(t->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                        if (fd >= 0) {
                                dup2(fd, 1);
                                dup2(fd, 2);
                        }
                        execve(ETCD_TEST_BINARY, argv, env);
                        _exit(127);
                }
                etcd_test_env_free(env);
                t->pid = pid;
                int64_t deadline = etcd_test_now_ms() + 60000;
                bool ready = false, exited = false;
                while (!ready && !exited && etcd_test_now_ms() < deadline) {
                        /* A fresh channel per probe: a failed one waits out gRPC's reconnect backoff. */
                        etcd_client *c = NULL;
                        ct_error err = CT_ERROR_INIT;
                        if (etcd_test_client(t, NULL, NULL, NULL, &c, &err) < 0)
                                etcd_test_die("etcd client", err.detail);
                        secret_t *v = NULL;
                        int64_t rev;
                        ct_error e = CT_ERROR_INIT;
                        int r = etcd_get(c, "/probe", 16, &v, &rev, &e);
                        secret_free(v);
                        etcd_client_free(c);
                        ready = r >= 0 || r == -ENOENT;
                        int st;
                        if (!ready && waitpid(pid, &st, WNOHANG) == pid)
                                exited = true;
                        if (!ready && !exited) {
                                struct timespec ts = { 0, 50 * 1000000L };
                                nanosleep(&ts, NULL); /* poll a condition with a deadline */
                        }
                }
                if (ready)
                        return;
                if (exited && etcd_test_log_has(t->log_path, "address already in use")) {
                        t->pid = -1;
                        continue; /* taken between the check and etcd's bind: next pair */
                }
                if (!exited) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                }
                t->pid = -1;
                etcd_test_die("etcd did not become ready (see its log)", t->log_path);
        }
        etcd_test_die("no free port pair for etcd", NULL);
}

static inline void etcd_test_stop(etcd_test *t) {
        if (t->pid > 0) {
                kill(t->pid, SIGTERM);
                int64_t deadline = etcd_test_now_ms() + 20000;
                int st;
                while (waitpid(t->pid, &st, WNOHANG) == 0) {
                        if (etcd_test_now_ms() > deadline) {
                                kill(t->pid, SIGKILL);
                                waitpid(t->pid, &st, 0);
                                break;
                        }
                        struct timespec ts = { 0, 20 * 1000000L };
                        nanosleep(&ts, NULL);
                }
                t->pid = -1;
        }
}
