/* SPDX-License-Identifier: Apache-2.0 */
/* Starts a private swtpm (TPM 2.0, TCP on 127.0.0.1) for one test program, in a mktemp directory,
 * on free ports, and kills it at the end. The child gets PR_SET_PDEATHSIG so a crashing test
 * leaves no swtpm behind. Fails loudly if swtpm is missing (tests never skip silently). */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/macro.h"

typedef struct swtpm {
        pid_t pid;
        int port;
        char dir[64];
        char tcti[96];
} swtpm;

static inline bool swtpm_port_free(int port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        bool ok = bind(fd, (struct sockaddr *) &a, sizeof a) == 0;
        close(fd);
        return ok;
}

static inline bool swtpm_port_accepts(int port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        bool ok = connect(fd, (struct sockaddr *) &a, sizeof a) == 0;
        close(fd);
        return ok;
}

static inline void swtpm_stop(swtpm *s) {
        if (s->pid > 0) {
                kill(s->pid, SIGTERM);
                waitpid(s->pid, NULL, 0);
                s->pid = 0;
        }
        if (s->dir[0]) {
                char cmd[128];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
                (void) !system(cmd);
                s->dir[0] = 0;
        }
}

/* 0 on success; -ENOENT if swtpm is not installed; -EIO if it would not start. */
static inline int swtpm_start(swtpm *s) {
        *s = (swtpm){ 0 };
        if (system("command -v swtpm >/dev/null 2>&1") != 0) {
                fprintf(stderr, "swtpm is not installed: run scripts/setup.sh (the TPM tests need it)\n");
                return -ENOENT;
        }
        snprintf(s->dir, sizeof s->dir, "/tmp/ct-swtpm-XXXXXX");
        if (!mkdtemp(s->dir))
                return -errno;
        srand((unsigned) (getpid() ^ time(NULL)));
        for (int attempt = 0; attempt < 20; attempt++) {
                int port = 20000 + 2 * (rand() % 15000);
                if (!swtpm_port_free(port) || !swtpm_port_free(port + 1))
                        continue;
                char srv[80], ctl[80], state[96];
                snprintf(srv, sizeof srv, "type=tcp,port=%d,bindaddr=127.0.0.1", port);
                snprintf(ctl, sizeof ctl, "type=tcp,port=%d,bindaddr=127.0.0.1", port + 1);
                snprintf(state, sizeof state, "dir=%s", s->dir);
                pid_t pid = fork();
                if (pid < 0)
                        return -errno;
                if (pid == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        execlp("swtpm", "swtpm", "socket", "--tpm2", "--server", srv, "--ctrl", ctl, "--tpmstate",
                               state, "--flags", "not-need-init,startup-clear", (char *) NULL);
                        _exit(127);
                }
                /* Wait (bounded) until it accepts, or until it died (port taken meanwhile). */
                for (int i = 0; i < 200; i++) {
                        int st;
                        if (waitpid(pid, &st, WNOHANG) == pid) {
                                pid = 0;
                                break;
                        }
                        if (swtpm_port_accepts(port)) {
                                /* Is it ours? If our swtpm lost the port to a concurrent test's, it
                                 * exits at once; the probe may then have reached the other one. */
                                struct timespec settle = { 0, 50 * 1000 * 1000 };
                                nanosleep(&settle, NULL);
                                if (waitpid(pid, &st, WNOHANG) == pid) {
                                        pid = 0;
                                        break;
                                }
                                s->pid = pid;
                                s->port = port;
                                snprintf(s->tcti, sizeof s->tcti, "swtpm:host=127.0.0.1,port=%d", port);
                                return 0;
                        }
                        struct timespec ts = { 0, 25 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
                if (pid > 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                }
        }
        fprintf(stderr, "swtpm did not start\n");
        return -EIO;
}
