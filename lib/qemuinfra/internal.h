/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the files of lib/qemuinfra only. */
#pragma once

#include "qemuinfra/qemuinfra.h"

#define QI_LAYER "qemuinfra"

/* proc.c */
int qi_proc_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time);
bool qi_proc_wait_gone(const qemuinfra_proc *p, unsigned timeout_ms);
/* Signals only while the recorded identity holds (through a pidfd). -ESRCH if it does not. */
int qi_proc_signal(const qemuinfra_proc *p, int sig);
/* SIGTERM, wait term_wait_ms, SIGKILL, wait. 0 if gone (or never started); -ESTALE if the pid
 * was recycled (nothing sent). */
int qi_proc_stop(const qemuinfra_proc *p, unsigned term_wait_ms, char *detail, size_t size);
int qi_spawn_daemon(char *const argv[], const char *log_path, const char *cwd, pid_t *ret_pid);

/* qmp.c: one command on the QMP socket (greeting, qmp_capabilities, command), timeout_ms for all.
 * ret_reply (may be NULL) gets the "return" member's JSON text. */
int qi_qmp_command(const char *socket_path, const char *command, unsigned timeout_ms, char **ret_reply);
