/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the node-join tests and bench: a cluster on the host (PKI from lib/pki, a master secret,
 * the attestation configuration built from a swtpm's PCRs 0-7), constellation-joinservice started
 * as a child process whose ports come from its READY=1 status on a private $NOTIFY_SOCKET (no log
 * scraping, no sleeps), and a log-file wait for the refusal reasons the service logs. */
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "init-test-util.h"
#include "joinconfig/joinconfig.h"
#include "pki/pki.h"
#include "swtpm-util.h"
#include "tpm/tpm.h"

typedef struct jt_cluster {
        char *tmp;
        char pki_dir[256], config_dir[256], log_path[256], notify_path[100];
        uint8_t master[32], master_salt[32], msalt[32];
        char kms_uri[256];
        measurements m; /* PCRs 0-7 of the joiners' swtpm (PCR 15 deliberately omitted) */
        pid_t pid;
        int port, update_port;
} jt_cluster;

static inline void jt_die(const char *what) {
        fprintf(stderr, "node-join test: %s\n", what);
        abort();
}

/* PCRs 0-7 of a TPM as a measurements map. */
static inline void jt_read_pcrs(const char *tcti, measurements *ret) {
        tpm_ctx *t = NULL;
        if (tpm_open(tcti, &t, NULL) < 0)
                jt_die("tpm_open");
        tpmq_pcr_bank b;
        if (tpm_pcr_read(t, TPM_ALG_SHA256, 0xff, &b) < 0)
                jt_die("tpm_pcr_read");
        tpm_close(t);
        *ret = (measurements){ 0 };
        for (unsigned i = 0; i < 8; i++)
                measurements_set(ret, i, b.value[i], 32, false);
}

static inline void jt_cluster_setup(jt_cluster *c, const char *tcti) {
        *c = (jt_cluster){ .pid = -1 };
        c->tmp = strdup("/tmp/ct-node-join-XXXXXX");
        if (!c->tmp || !mkdtemp(c->tmp))
                jt_die("mkdtemp");
        snprintf(c->pki_dir, sizeof c->pki_dir, "%s/pki", c->tmp);
        snprintf(c->config_dir, sizeof c->config_dir, "%s/var-config", c->tmp);
        snprintf(c->log_path, sizeof c->log_path, "%s/joinservice.log", c->tmp);
        snprintf(c->notify_path, sizeof c->notify_path, "%s/notify", c->tmp);
        mkdir(c->config_dir, 0700);
        ct_error err = CT_ERROR_INIT;
        if (pki_create(c->pki_dir, &err) < 0)
                jt_die("pki_create");
        RAND_bytes(c->master, 32);
        RAND_bytes(c->master_salt, 32);
        RAND_bytes(c->msalt, 32);
        _cleanup_free_ char *k = base64_encode(c->master, 32, BASE64_URL), *s = base64_encode(c->master_salt, 32, BASE64_URL);
        snprintf(c->kms_uri, sizeof c->kms_uri, "kms://cluster-kms?key=%s&salt=%s", k, s);
        jt_read_pcrs(tcti, &c->m);
        /* What the bootstrapper writes at init (docs/node.md): Constellation's format, raw salt. */
        _cleanup_free_ char *json = measurements_to_json(&c->m, true);
        char path[300];
        snprintf(path, sizeof path, "%s/%s", c->config_dir, JOINCONFIG_ATTESTATION_CONFIG);
        it_write(path, json, strlen(json), 0600);
        snprintf(path, sizeof path, "%s/%s", c->config_dir, JOINCONFIG_MEASUREMENT_SALT);
        it_write(path, c->msalt, 32, 0600);
}

/* Starts the service; returns once it sent READY=1 (ports parsed from STATUS=). */
static inline void jt_start_args(jt_cluster *c, const char *binary, const char *extra1, const char *extra2,
                                 const char *extra3, const char *extra4) {
        unlink(c->notify_path);
        int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c->notify_path);
        if (nfd < 0 || bind(nfd, (struct sockaddr *) &sa, sizeof sa) < 0)
                jt_die("notify socket");
        pid_t pid = fork();
        if (pid < 0)
                jt_die("fork");
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd >= 0)
                        dup2(fd, 2);
                setenv("NOTIFY_SOCKET", c->notify_path, 1);
                execl(binary, binary, "--listen", "127.0.0.1:0", "--update-listen", "127.0.0.1:0", "--kms-uri",
                      c->kms_uri, "--config-dir", c->config_dir, "--pki-dir", c->pki_dir, "--api-endpoint",
                      "10.9.8.7:6443", "--control-plane-ips", "10.9.8.10,10.9.8.11", "--log-level", "debug", extra1, extra2, extra3, extra4, (char *) NULL);
                _exit(127);
        }
        c->pid = pid;
        char buf[600];
        for (;;) {
                struct pollfd p = { nfd, POLLIN, 0 };
                if (poll(&p, 1, 60000) != 1)
                        jt_die("joinservice sent no READY=1 within 60 s (see its log)");
                ssize_t n = recv(nfd, buf, sizeof buf - 1, 0);
                if (n <= 0)
                        continue;
                buf[n] = 0;
                const char *g = strstr(buf, "grpc=127.0.0.1:"), *u = strstr(buf, "updates=127.0.0.1:");
                if (strstr(buf, "READY=1") && g && u) {
                        c->port = atoi(g + 15);
                        c->update_port = atoi(u + 18);
                        break;
                }
        }
        close(nfd);
}

static inline void jt_start(jt_cluster *c, const char *binary) {
        jt_start_args(c, binary, NULL, NULL, NULL, NULL);
}

/* SIGTERM and its exit status (0: clean stop; under ASan a leak makes it non-zero). On any other
 * status the service's log (its stderr: the sanitizer report is in it) goes to our stderr, so that
 * a failure seen once in CI can be diagnosed from the CI log alone. */
static inline int jt_stop(jt_cluster *c) {
        if (c->pid <= 0)
                return 0;
        kill(c->pid, SIGTERM);
        int st = 0;
        waitpid(c->pid, &st, 0);
        c->pid = -1;
        int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (rc != 0) {
                uint8_t *log = NULL;
                size_t len = 0;
                fprintf(stderr, "node-join test: joinservice exited with %d; its log %s:\n", rc, c->log_path);
                if (read_full_file(c->log_path, 4u * 1024 * 1024, &log, &len) == 0)
                        fwrite(log, 1, len, stderr);
                free(log);
                fprintf(stderr, "node-join test: end of %s\n", c->log_path);
        }
        return rc;
}

static inline void jt_cluster_done(jt_cluster *c) {
        if (c->pid > 0) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
        }
        if (c->tmp && !getenv("CT_KEEP_TMP") && strncmp(c->tmp, "/tmp/ct-node-join-", 18) == 0)
                (void) it_run(NULL, "rm -rf '%s'", c->tmp);
        free(c->tmp);
        c->tmp = NULL;
}

/* Waits (bounded by 60 s) until the service's log contains every one of the needles on one line
 * appended after offset `from`; returns that line (caller frees) or NULL. */
static inline char *jt_wait_log(const jt_cluster *c, size_t from, const char *n1, const char *n2) {
        for (int i = 0; i < 6000; i++) {
                uint8_t *buf = NULL;
                size_t len = 0;
                if (read_full_file(c->log_path, 64u * 1024 * 1024, &buf, &len) == 0 && len > from) {
                        char *save = NULL;
                        for (char *line = strtok_r((char *) buf + from, "\n", &save); line;
                             line = strtok_r(NULL, "\n", &save))
                                if (strstr(line, n1) && (!n2 || strstr(line, n2))) {
                                        char *r = strdup(line);
                                        free(buf);
                                        return r;
                                }
                }
                free(buf);
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return NULL;
}

static inline size_t jt_log_size(const jt_cluster *c) {
        struct stat st;
        return stat(c->log_path, &st) == 0 ? (size_t) st.st_size : 0;
}
