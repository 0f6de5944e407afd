/* SPDX-License-Identifier: Apache-2.0 */
#include "basic/process-util.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int process_harden_secrets(void) {
        int r = 0;

        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                r = -errno;

        const struct rlimit none = { .rlim_cur = 0, .rlim_max = 0 };
        if (setrlimit(RLIMIT_CORE, &none) < 0 && r == 0)
                r = -errno;

        return r;
}

int process_run(const char *const argv[], int timeout_ms, int *ret_signal) {
        if (!argv || !argv[0] || argv[0][0] != '/')
                return -EINVAL;
        posix_spawnattr_t attr;
        int r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &all);
        if (r == 0)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        pid_t pid = -1;
        if (r == 0)
                r = posix_spawn(&pid, argv[0], NULL, &attr, (char *const *) argv, environ);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;

        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        int status = 0;
        for (long pause_ms = 1;;) {
                pid_t w = waitpid(pid, &status, timeout_ms > 0 ? WNOHANG : 0);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        r = -errno;
                        kill(pid, SIGKILL);
                        (void) waitpid(pid, NULL, 0);
                        return r;
                }
                if (w == 0) {
                        struct timespec now;
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        long elapsed = (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
                        if (elapsed >= timeout_ms) {
                                kill(pid, SIGKILL);
                                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                                        ;
                                return -ETIMEDOUT;
                        }
                        /* Polling, as the caller may hold SIGCHLD blocked or ignored; the pause grows
                         * to 50 ms so a short program is reaped within a millisecond or two. */
                        struct timespec ts = { 0, pause_ms * 1000000L };
                        nanosleep(&ts, NULL);
                        if (pause_ms < 50)
                                pause_ms *= 2;
                }
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (ret_signal)
                *ret_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        return -ECHILD;
}
