/* SPDX-License-Identifier: Apache-2.0 */
/* Processes that outlive their starter, and finding them again without trusting a bare pid. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "qemuinfra/internal.h"

const char *qemuinfra_proc_status_to_string(qemuinfra_proc_status s) {
        switch (s) {
        case QEMUINFRA_PROC_ALIVE: return "alive";
        case QEMUINFRA_PROC_NOT_STARTED: return "not-started";
        case QEMUINFRA_PROC_GONE: return "gone";
        case QEMUINFRA_PROC_RECYCLED: return "pid-recycled";
        }
        return "unknown";
}

/* /proc/<pid>/stat: "pid (comm) state ppid ... starttime(22) ...". comm may hold spaces and
 * parentheses, so fields are counted after the last ')'. */
int qi_proc_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
                return -EBADMSG;
        p += 2; /* field 3 */
        char state = *p;
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EBADMSG;
                p++;
        }
        char *end;
        errno = 0;
        unsigned long long st = strtoull(p, &end, 10);
        if (errno || end == p || (*end != ' ' && *end != '\n' && *end))
                return -EBADMSG;
        if (ret_state)
                *ret_state = state;
        *ret_start_time = st;
        return 0;
}

/* /proc/<pid>/exe equals path, or path with " (deleted)" (the binary was upgraded under the
 * running process: it is still the process we started). */
static bool exe_matches(pid_t pid, const char *path) {
        char link[64], target[PATH_MAX + 16];
        snprintf(link, sizeof link, "/proc/%d/exe", (int) pid);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0)
                return false;
        target[n] = 0;
        size_t l = strlen(path);
        if (strncmp(target, path, l) != 0)
                return false;
        return target[l] == 0 || streq(target + l, " (deleted)");
}

qemuinfra_proc_status qemuinfra_proc_inspect(const qemuinfra_proc *p, char *detail, size_t size) {
        char dummy[8];
        if (!detail) {
                detail = dummy;
                size = sizeof dummy;
        }
        detail[0] = 0;
        if (p->pid <= 0) {
                snprintf(detail, size, "never started");
                return QEMUINFRA_PROC_NOT_STARTED;
        }
        char state;
        uint64_t st;
        int r = qi_proc_stat(p->pid, &state, &st);
        if (r < 0) {
                snprintf(detail, size, "pid %d: no such process", (int) p->pid);
                return QEMUINFRA_PROC_GONE;
        }
        if (st != p->start_time) {
                snprintf(detail, size, "pid %d now belongs to another process (start time %llu, recorded %llu)",
                         (int) p->pid, (unsigned long long) st, (unsigned long long) p->start_time);
                return QEMUINFRA_PROC_RECYCLED;
        }
        if (state == 'Z' || state == 'X') {
                snprintf(detail, size, "pid %d has exited (zombie)", (int) p->pid);
                return QEMUINFRA_PROC_GONE;
        }
        if (!p->exe || !exe_matches(p->pid, p->exe)) {
                snprintf(detail, size, "pid %d does not run %s", (int) p->pid, p->exe ? p->exe : "(unrecorded)");
                return QEMUINFRA_PROC_RECYCLED;
        }
        return QEMUINFRA_PROC_ALIVE;
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

bool qi_proc_wait_gone(const qemuinfra_proc *p, unsigned timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;
        for (;;) {
                if (qemuinfra_proc_inspect(p, NULL, 0) != QEMUINFRA_PROC_ALIVE)
                        return true;
                if (now_ms() >= end)
                        return false;
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* pidfd_open pins the process: a signal sent through the pidfd can never reach a recycled pid,
 * which closes the window between the identity check and kill(). */
static int pidfd_open_checked(const qemuinfra_proc *p) {
        int fd = (int) syscall(SYS_pidfd_open, p->pid, 0);
        if (fd < 0)
                return -errno;
        /* The pid may have been recycled between inspect and pidfd_open: check again now that
         * the pidfd refers to exactly one process. */
        if (qemuinfra_proc_inspect(p, NULL, 0) != QEMUINFRA_PROC_ALIVE) {
                close(fd);
                return -ESRCH;
        }
        return fd;
}

int qi_proc_signal(const qemuinfra_proc *p, int sig) {
        _cleanup_close_ int fd = pidfd_open_checked(p);
        if (fd < 0)
                return fd;
        if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0)
                return -errno;
        return 0;
}

int qi_proc_stop(const qemuinfra_proc *p, unsigned term_wait_ms, char *detail, size_t size) {
        qemuinfra_proc_status s = qemuinfra_proc_inspect(p, detail, size);
        if (s != QEMUINFRA_PROC_ALIVE)
                return s == QEMUINFRA_PROC_RECYCLED ? -ESTALE : 0;
        int r = qi_proc_signal(p, SIGTERM);
        if (r < 0 && r != -ESRCH)
                return r;
        if (qi_proc_wait_gone(p, term_wait_ms))
                return 0;
        r = qi_proc_signal(p, SIGKILL);
        if (r < 0 && r != -ESRCH)
                return r;
        if (qi_proc_wait_gone(p, 5000))
                return 0;
        snprintf(detail, size, "pid %d survived SIGKILL for 5 s", (int) p->pid);
        return -ETIMEDOUT;
}

/* Double fork: the grandchild runs argv in its own session with stdin /dev/null and stdout/stderr
 * appended to log_path, so it is re-parented away from the caller and survives it (and a signal
 * to the caller's process group). Only async-signal-safe calls between fork and exec: the caller
 * may be multi-threaded (the provider). The exec result comes back over a CLOEXEC pipe. */
int qi_spawn_daemon(char *const argv[], const char *log_path, const char *cwd, pid_t *ret_pid) {
        int pp[2], ep[2];
        if (pipe2(pp, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(ep, O_CLOEXEC) < 0) {
                int r = -errno;
                close(pp[0]);
                close(pp[1]);
                return r;
        }
        int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
        if (nullfd < 0 || logfd < 0) {
                int r = -errno;
                if (nullfd >= 0)
                        close(nullfd);
                if (logfd >= 0)
                        close(logfd);
                close(pp[0]), close(pp[1]), close(ep[0]), close(ep[1]);
                return r;
        }
        pid_t child = fork();
        if (child < 0) {
                int r = -errno;
                close(pp[0]), close(pp[1]), close(ep[0]), close(ep[1]), close(nullfd), close(logfd);
                return r;
        }
        if (child == 0) {
                /* intermediate */
                if (setsid() < 0)
                        _exit(1);
                pid_t gc = fork();
                if (gc < 0)
                        _exit(1);
                if (gc > 0) {
                        (void) !write(pp[1], &gc, sizeof gc);
                        _exit(0);
                }
                /* grandchild */
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                for (int s = 1; s < NSIG; s++)
                        if (s != SIGKILL && s != SIGSTOP)
                                signal(s, SIG_DFL);
                if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
                        goto fail;
                if (cwd && chdir(cwd) < 0)
                        goto fail;
                /* Every other descriptor closed (the caller's sockets, gRPC's, ...), except the
                 * CLOEXEC error pipe, which exec closes. */
                for (int fd = 3; fd < 65536; fd++)
                        if (fd != ep[1])
                                (void) close(fd);
                execv(argv[0], argv);
        fail:;
                int e = errno;
                (void) !write(ep[1], &e, sizeof e);
                _exit(127);
        }
        close(pp[1]);
        close(ep[1]);
        close(nullfd);
        close(logfd);
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
        pid_t gc = 0;
        ssize_t n = read(pp[0], &gc, sizeof gc);
        close(pp[0]);
        if (n != (ssize_t) sizeof gc || gc <= 0) {
                close(ep[0]);
                return -ECHILD;
        }
        int e = 0;
        do
                n = read(ep[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        close(ep[0]);
        if (n == (ssize_t) sizeof e)
                return e > 0 ? -e : -EIO; /* exec failed; the grandchild exits 127 (reaped by init) */
        *ret_pid = gc;
        return 0;
}
