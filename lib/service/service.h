/* SPDX-License-Identifier: Apache-2.0 */
/* The one service skeleton of the node programs (docs/node.md): a thin main is
 *
 *     static const char *master_file;
 *     static const service_option options[] = {
 *             { "master-secret", "FILE", "raw master secret (0600)", &master_file, NULL, true },
 *     };
 *     static const service_info info = {
 *             .name = "constellation-keyservice", .summary = "...",
 *             .default_listen = "127.0.0.1:9000",
 *             .options = options, .n_options = ELEMENTSOF(options),
 *     };
 *     int main(int argc, char **argv) {
 *             _cleanup_(service_freep) service *s = NULL;
 *             int r = service_new(&info, argc, argv, &s);   // harden, log, signals, arguments
 *             if (r < 0)
 *                     return service_exit_code(r);
 *             ... load state, log and return 1 on failure ...
 *             service_register(s, "/kms.API/GetDataKey", handler, state);
 *             return service_exit_code(service_run(s));      // listen, READY=1, wait for a signal
 *     }
 *
 * What service_new does, in this order: blocks SIGTERM/SIGINT/SIGHUP (before any thread exists,
 * so every thread inherits the mask and the signals reach only service_run's signalfd), ignores
 * SIGPIPE, process_harden_secrets() (refuses to go on if that fails), logs to stderr in journal
 * style ("<3>message", lib/basic/log.h), and parses the arguments: the common options
 *     --listen ADDR:PORT   (default info->default_listen; "127.0.0.1:0" picks a port)
 *     --tpm TCTI           (when info->tpm or info->atls: "device:/dev/tpmrm0" (default),
 *                           "swtpm:host=127.0.0.1,port=N")
 *     --log-level LEVEL    (trace|debug|info|warn|error; default info)
 *     --help
 * and the program's own (service_option). Values point into argv.
 *
 * service_run listens (plain gRPC, or aTLS attesting with the qemu-vtpm issuer of --tpm when
 * info->atls), tells systemd "READY=1" with "STATUS=grpc=HOST:PORT[ <extra>]" over
 * $NOTIFY_SOCKET (sd_notify(3)'s datagram protocol, no libsystemd), logs the same, and waits for
 * SIGTERM/SIGINT/SIGHUP or service_request_stop(); then "STOPPING=1", shutdown, return 0.
 * Programs with more listeners (the verification service's HTTP) call service_start() first,
 * add theirs, service_append_status(), then service_run().
 *
 * Handlers report failures with service_call_fail(): the ct_error's errno picks the gRPC status
 * (service_status_from_error), the message is "layer: reason: detail" (reason tokens are what
 * clients and tests match), and the failure is logged once at warning level. */
#pragma once

#include <grpc/status.h>

#include "atls/atls.h"
#include "basic/error.h"
#include "basic/macro.h"
#include "rpc/rpc.h"

/* Exit codes of node programs. */
#define SERVICE_EXIT_OK 0
#define SERVICE_EXIT_FAILURE 1 /* could not start or serve (logged) */
#define SERVICE_EXIT_USAGE 2   /* bad command line (logged) */

/* A program-specific option "--name VALUE" (arg_name non-NULL) or flag "--name" (arg_name NULL).
 * The value is stored in *value (pointing into argv), a flag sets *flag. */
typedef struct service_option {
        const char *name;     /* without "--" */
        const char *arg_name; /* "FILE", "HOST:PORT"; NULL: a flag */
        const char *help;
        const char **value;
        bool *flag;
        bool required;
} service_option;

typedef struct service_info {
        const char *name;           /* program name, for logs and --help */
        const char *summary;        /* one line for --help */
        const char *default_listen; /* "0.0.0.0:9000"; NULL: --listen is required */
        const service_option *options;
        size_t n_options;
        bool tpm;  /* accept --tpm (a program that issues attestation documents itself) */
        bool atls; /* serve over aTLS, attesting with the qemu-vtpm issuer from --tpm (implies tpm) */
        /* aTLS: the client must attest with one of these (the join service); NULL: it need not. */
        const atls_validator *validators;
        size_t n_validators;
        /* aTLS tests: attest with this issuer instead of qemu-vtpm (must outlive the service). */
        const atls_issuer *issuer;
        /* Largest request message; 0: 4 MiB. */
        int max_message;
        /* aTLS: serve without attesting ourselves (the join service: only the client attests, as
         * Constellation's join service has a validator and no issuer). */
        bool atls_no_issuer;
        /* aTLS: most connections at once (0: ATLS_MAX_CONNECTIONS) and the bound on one handshake,
         * issuing and validating included (0: lib/atls's 30 s). */
        unsigned max_connections;
        int64_t handshake_timeout_ms;
} service_info;

typedef struct service service;

/* See above. Returns 0 and *ret, or a negative errno after logging why: -EINVAL for a bad
 * command line, -ECANCELED after --help (exit 0), others (hardening failed). */
int service_new(const service_info *info, int argc, char **argv, service **ret);
/* Shuts down (if running) and frees. Accepts NULL. */
void service_free(service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(service *, service_free);

/* SERVICE_EXIT_* for a return value of service_new / service_run (0 and -ECANCELED: OK). */
int service_exit_code(int r);

/* Registers a gRPC method ("/kms.API/GetDataKey"); before service_start/service_run. */
int service_register(service *s, const char *method, rpc_handler_fn handler, void *userdata);

/* Listens on --listen and starts serving; logs and returns a negative errno on failure. Called
 * by service_run if the program did not. */
int service_start(service *s);
/* The port bound by service_start (useful with --listen HOST:0). */
int service_port(const service *s);
/* The --listen and --tpm values (the latter NULL unless info->tpm/atls; default device:/dev/tpmrm0). */
const char *service_listen_address(const service *s);
const char *service_tpm(const service *s);

/* Appends " text" to the STATUS= line sent with READY=1 ("http=127.0.0.1:30080"). */
void service_append_status(service *s, const char *fmt, ...) _printf_(2, 3);

/* Starts if needed, notifies READY=1, waits for SIGTERM/SIGINT/SIGHUP or service_request_stop(),
 * notifies STOPPING=1 and shuts the gRPC server down. 0 on a clean stop. */
int service_run(service *s);
/* Makes service_run return (from any thread, also from a handler). */
void service_request_stop(service *s);

/* sd_notify(3) without libsystemd: sends `state` ("READY=1\nSTATUS=...") as one datagram to the
 * AF_UNIX socket in $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). 0 if
 * NOTIFY_SOCKET is unset, 1 if sent, negative errno on failure. */
int service_notify(const char *state);

/* gRPC status for an error: by errno (EINVAL/EBADMSG/ERANGE/E2BIG -> INVALID_ARGUMENT, EPERM/EACCES
 * -> PERMISSION_DENIED, ENOENT -> NOT_FOUND, EEXIST -> ALREADY_EXISTS, EBUSY/EALREADY ->
 * FAILED_PRECONDITION, ETIMEDOUT -> DEADLINE_EXCEEDED, ECONNREFUSED/EHOSTUNREACH/ENETUNREACH/EAGAIN
 * -> UNAVAILABLE, ENOMEM/ENOSPC -> RESOURCE_EXHAUSTED, EOPNOTSUPP/ENOSYS -> UNIMPLEMENTED,
 * ECANCELED -> CANCELLED, else INTERNAL); OK for an unset error. */
grpc_status_code service_status_from_error(const ct_error *err);
/* Ends the call with that status and "layer: reason: detail" as message; logs it at warning level
 * with the method name. An unset error becomes INTERNAL "service: internal". */
int service_call_fail(rpc_call *call, const ct_error *err);
