/* SPDX-License-Identifier: Apache-2.0 */
#include "service/service.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "atls/qemu-vtpm.h"
#include "basic/log.h"
#include "basic/process-util.h"

#define SERVICE_DEFAULT_TCTI "device:/dev/tpmrm0"
#define SERVICE_STATUS_MAX 512

struct service {
        const service_info *info;
        const char *listen;
        const char *tpm;
        rpc_server *server;
        atls_issuer issuer;
        atls_config atls;
        atls_listener *listener;
        bool started;
        int port;
        int signal_fd;
        int stop_fd; /* eventfd for service_request_stop */
        char status[SERVICE_STATUS_MAX];
};

static const int service_signals[] = { SIGTERM, SIGINT, SIGHUP };

static void usage(const service_info *info, FILE *f) {
        fprintf(f, "Usage: %s [OPTIONS]\n%s\n\nOptions:\n", info->name, info->summary ?: "");
        fprintf(f, "  --listen HOST:PORT     address to serve on%s%s%s\n", info->default_listen ? " (default " : "",
                info->default_listen ?: " (required)", info->default_listen ? ")" : "");
        if (info->tpm || info->atls)
                fprintf(f, "  --tpm TCTI             TPM to attest with (default %s)\n", SERVICE_DEFAULT_TCTI);
        fprintf(f, "  --log-level LEVEL      trace, debug, info (default), warn, error\n");
        for (size_t i = 0; i < info->n_options; i++) {
                const service_option *o = &info->options[i];
                char left[64];
                snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg_name ? " " : "", o->arg_name ?: "");
                fprintf(f, "  %-22s %s%s\n", left, o->help ?: "", o->required ? " (required)" : "");
        }
        fprintf(f, "  --help                 show this help\n");
}

enum { OPT_LISTEN = 0x100, OPT_TPM, OPT_LOG_LEVEL, OPT_HELP, OPT_PROGRAM = 0x200 };

static int parse_args(service *s, int argc, char **argv) {
        const service_info *info = s->info;
        size_t n = 4 + info->n_options + 1;
        _cleanup_free_ struct option *longopts = calloc(n, sizeof(struct option));
        _cleanup_free_ bool *seen = calloc(info->n_options + 1, sizeof(bool));
        if (!longopts || !seen)
                return -ENOMEM;
        size_t k = 0;
        longopts[k++] = (struct option){ "listen", required_argument, NULL, OPT_LISTEN };
        if (info->tpm || info->atls)
                longopts[k++] = (struct option){ "tpm", required_argument, NULL, OPT_TPM };
        longopts[k++] = (struct option){ "log-level", required_argument, NULL, OPT_LOG_LEVEL };
        longopts[k++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
        for (size_t i = 0; i < info->n_options; i++)
                longopts[k++] = (struct option){ info->options[i].name,
                                                 info->options[i].arg_name ? required_argument : no_argument, NULL,
                                                 OPT_PROGRAM + (int) i };

        s->listen = info->default_listen;
        s->tpm = (info->tpm || info->atls) ? SERVICE_DEFAULT_TCTI : NULL;
        optind = 0;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_LISTEN:
                        s->listen = optarg;
                        break;
                case OPT_TPM:
                        s->tpm = optarg;
                        break;
                case OPT_LOG_LEVEL: {
                        enum log_level level;
                        if (log_level_from_string(optarg, &level) < 0) {
                                log_error("--log-level: unknown level \"%s\" (trace, debug, info, warn, error)",
                                          optarg);
                                return -EINVAL;
                        }
                        log_set_max_level(level);
                        break;
                }
                case OPT_HELP:
                        usage(info, stdout);
                        return -ECANCELED;
                case '?':
                        if (optopt)
                                log_error("option %s needs a value (see --help)", argv[optind - 1]);
                        else
                                log_error("unknown option %s (see --help)", argv[optind - 1]);
                        return -EINVAL;
                default: {
                        size_t i = (size_t) (c - OPT_PROGRAM);
                        if (c < OPT_PROGRAM || i >= info->n_options)
                                return -EINVAL;
                        const service_option *o = &info->options[i];
                        if (o->value)
                                *o->value = optarg;
                        if (o->flag)
                                *o->flag = true;
                        seen[i] = true;
                }
                }
        }
        if (optind < argc) {
                log_error("unexpected argument \"%s\" (see --help)", argv[optind]);
                return -EINVAL;
        }
        if (isempty(s->listen)) {
                log_error("--listen HOST:PORT is required");
                return -EINVAL;
        }
        if (s->tpm && isempty(s->tpm)) {
                log_error("--tpm: empty TCTI (e.g. device:/dev/tpmrm0)");
                return -EINVAL;
        }
        for (size_t i = 0; i < info->n_options; i++)
                if (info->options[i].required && !seen[i]) {
                        log_error("--%s %s is required (see --help)", info->options[i].name,
                                  info->options[i].arg_name ?: "");
                        return -EINVAL;
                }
        return 0;
}

int service_new(const service_info *info, int argc, char **argv, service **ret) {
        log_set_journal_style(true);
        log_set_prefix(NULL);

        /* Before any thread exists, so that all inherit the mask and the signals wait in signalfd. */
        sigset_t mask;
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(service_signals); i++)
                sigaddset(&mask, service_signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "blocking signals");
        signal(SIGPIPE, SIG_IGN);

        int r = process_harden_secrets();
        if (r < 0)
                return log_error_errno(r, "hardening the process for secrets (no core dumps, no ptrace)");

        _cleanup_(service_freep) service *s = calloc(1, sizeof(*s));
        if (!s)
                return log_error_errno(-ENOMEM, "allocating the service");
        s->info = info;
        s->signal_fd = s->stop_fd = -1;
        r = parse_args(s, argc, argv);
        if (r < 0)
                return r;

        s->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (s->signal_fd < 0)
                return log_error_errno(-errno, "signalfd");
        s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->stop_fd < 0)
                return log_error_errno(-errno, "eventfd");

        rpc_server_options opts = { .max_receive_message_length = info->max_message };
        r = rpc_server_new(&opts, &s->server);
        if (r < 0)
                return log_error_errno(r, "creating the gRPC server");
        *ret = TAKE_PTR(s);
        return 0;
}

void service_free(service *s) {
        if (!s)
                return;
        atls_listener_free(s->listener); /* before the server it feeds */
        rpc_server_free(s->server);
        if (s->signal_fd >= 0)
                close(s->signal_fd);
        if (s->stop_fd >= 0)
                close(s->stop_fd);
        free(s);
}

int service_exit_code(int r) {
        if (r >= 0 || r == -ECANCELED)
                return SERVICE_EXIT_OK;
        if (r == -EINVAL)
                return SERVICE_EXIT_USAGE;
        return SERVICE_EXIT_FAILURE;
}

int service_register(service *s, const char *method, rpc_handler_fn handler, void *userdata) {
        if (s->started)
                return -EBUSY;
        int r = rpc_server_register(s->server, method, handler, userdata);
        if (r < 0)
                return log_error_errno(r, "registering %s", method);
        return 0;
}

static void atls_rejected(void *userdata, const char *peer, const atls_error *err) {
        log_warn("aTLS connection from %s refused: %s: %s", peer ?: "?", atls_reason_to_string(err->reason),
                 err->detail);
}

int service_start(service *s) {
        if (s->started)
                return 0;
        const service_info *info = s->info;
        int r;
        if (!info->atls) {
                r = rpc_server_listen(s->server, s->listen, NULL, &s->port);
                if (r < 0)
                        return log_error_errno(r, "listening on %s", s->listen);
                r = rpc_server_start(s->server);
                if (r < 0)
                        return log_error_errno(r, "starting the gRPC server");
        } else {
                r = rpc_server_start(s->server);
                if (r < 0)
                        return log_error_errno(r, "starting the gRPC server");
                s->issuer = info->issuer ? *info->issuer : atls_qemu_vtpm_issuer(s->tpm);
                s->atls = (atls_config){
                        .issuer = info->atls_no_issuer ? NULL : &s->issuer,
                        .max_connections = info->max_connections,
                        .handshake_timeout_ms = info->handshake_timeout_ms,
                        .validators = info->validators,
                        .n_validators = info->n_validators,
                        .on_reject = atls_rejected,
                };
                atls_error aerr = { 0 };
                r = atls_listen(s->server, s->listen, &s->atls, &s->port, &s->listener, &aerr);
                if (r < 0) {
                        log_error("listening (aTLS) on %s: %s: %s", s->listen, atls_reason_to_string(aerr.reason),
                                  aerr.detail);
                        return r;
                }
        }
        s->started = true;
        /* "grpc=HOST:PORT": the bound port, also for --listen HOST:0. */
        const char *colon = strrchr(s->listen, ':');
        int host_len = colon ? (int) (colon - s->listen) : 0;
        snprintf(s->status, sizeof s->status, "grpc=%.*s:%d%s", host_len, s->listen, s->port,
                 info->atls ? " atls" : "");
        log_info("serving gRPC%s on %.*s:%d", info->atls ? " over aTLS" : "", host_len, s->listen, s->port);
        return 0;
}

int service_port(const service *s) {
        return s->port;
}

const char *service_listen_address(const service *s) {
        return s->listen;
}

const char *service_tpm(const service *s) {
        return s->tpm;
}

void service_append_status(service *s, const char *fmt, ...) {
        size_t len = strlen(s->status);
        if (len + 1 >= sizeof s->status)
                return;
        s->status[len++] = ' ';
        s->status[len] = '\0';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->status + len, sizeof s->status - len, fmt, ap);
        va_end(ap);
}

void service_request_stop(service *s) {
        uint64_t one = 1;
        (void) !write(s->stop_fd, &one, sizeof one);
}

int service_run(service *s) {
        int r = service_start(s);
        if (r < 0)
                return r;
        char state[SERVICE_STATUS_MAX + 32];
        snprintf(state, sizeof state, "READY=1\nSTATUS=%s", s->status);
        r = service_notify(state);
        if (r < 0)
                log_warn_errno(r, "sd_notify READY=1 to $NOTIFY_SOCKET");

        struct pollfd fds[2] = { { .fd = s->signal_fd, .events = POLLIN }, { .fd = s->stop_fd, .events = POLLIN } };
        for (;;) {
                if (poll(fds, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = log_error_errno(-errno, "poll");
                        break;
                }
                if (fds[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(s->signal_fd, &si, sizeof si) == (ssize_t) sizeof si) {
                                log_info("received %s, shutting down", strsignal((int) si.ssi_signo));
                                r = 0;
                                break;
                        }
                }
                if (fds[1].revents & POLLIN) {
                        log_info("stop requested, shutting down");
                        r = 0;
                        break;
                }
        }
        (void) service_notify("STOPPING=1");
        /* The server first, so that answers already given (a handler that replied and then asked
         * to stop, as the bootstrapper after Init) still reach the client through the relay. */
        rpc_server_request_shutdown(s->server);
        rpc_server_wait(s->server);
        atls_listener_free(s->listener);
        s->listener = NULL;
        return r;
}

int service_notify(const char *state) {
        const char *path = getenv("NOTIFY_SOCKET");
        if (isempty(path))
                return 0;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
                return -EINVAL;
        memcpy(sa.sun_path, path, len);
        if (path[0] == '@')
                sa.sun_path[0] = '\0'; /* abstract namespace */
        socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *) &sa, salen) < 0)
                return -errno;
        return 1;
}

grpc_status_code service_status_from_error(const ct_error *err) {
        if (!ct_error_is_set(err))
                return GRPC_STATUS_OK;
        switch (-err->code) {
        case EINVAL:
        case EBADMSG:
        case ERANGE:
        case E2BIG:
                return GRPC_STATUS_INVALID_ARGUMENT;
        case EPERM:
        case EACCES:
                return GRPC_STATUS_PERMISSION_DENIED;
        case ENOENT:
                return GRPC_STATUS_NOT_FOUND;
        case EEXIST:
                return GRPC_STATUS_ALREADY_EXISTS;
        case EBUSY:
        case EALREADY:
                return GRPC_STATUS_FAILED_PRECONDITION;
        case ETIMEDOUT:
                return GRPC_STATUS_DEADLINE_EXCEEDED;
        case ECONNREFUSED:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case EAGAIN:
                return GRPC_STATUS_UNAVAILABLE;
        case ENOMEM:
        case ENOSPC:
                return GRPC_STATUS_RESOURCE_EXHAUSTED;
        case EOPNOTSUPP:
        case ENOSYS:
                return GRPC_STATUS_UNIMPLEMENTED;
        case ECANCELED:
                return GRPC_STATUS_CANCELLED;
        default:
                return GRPC_STATUS_INTERNAL;
        }
}

int service_call_fail(rpc_call *call, const ct_error *err) {
        char msg[CT_ERROR_DETAIL_MAX + 128];
        grpc_status_code code = GRPC_STATUS_INTERNAL;
        if (ct_error_is_set(err)) {
                code = service_status_from_error(err);
                ct_error_format(err, msg, sizeof msg);
        } else
                snprintf(msg, sizeof msg, "service: internal");
        log_warn("%s: %s: %s", rpc_call_method(call), rpc_status_code_to_string(code), msg);
        return rpc_call_fail(call, code, msg);
}
