/* SPDX-License-Identifier: Apache-2.0 */
/* Process-wide hardening for programs that hold secrets (STYLE.md "Secrets": secrets never reach
 * core dumps). */
#pragma once

#include "basic/macro.h"

/* Call early in main() of every process that will hold a master secret, a key or a passphrase
 * (the provider, every node service, `constellation-attest derive`), before any secret is read:
 *   - prctl(PR_SET_DUMPABLE, 0): no core dump, and no ptrace attach or /proc/<pid>/mem read by
 *     other processes of the same user (proc(5), "dumpable");
 *   - setrlimit(RLIMIT_CORE, {0, 0}): no core file even if something sets dumpable again (a
 *     setuid exec, or prctl elsewhere), and children inherit the limit.
 * Returns 0, or the negative errno of the first call that failed (both are always attempted).
 * Never logs; the caller reports a failure once and should refuse to go on holding secrets. */
int process_harden_secrets(void);

/* Runs argv[0] (an absolute path, no PATH search) with argv, the caller's environment, every
 * signal at its default disposition and none blocked (lib/service blocks the termination signals
 * in its threads; a child must not inherit that), and waits for it at most timeout_ms (0: no
 * limit; on expiry the child is killed with SIGKILL and reaped). Returns the exit status (0..255),
 * -ETIMEDOUT, -ECHILD when it died by a signal (its number in *ret_signal if given), or the
 * negative errno of posix_spawn/waitpid. stdout and stderr are the caller's. */
int process_run(const char *const argv[], int timeout_ms, int *ret_signal);
