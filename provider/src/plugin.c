/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/secret.h"
#include "plugin.h"
#include "provider.h"
#include "provider.h"
#include "rpc/rpc.h"
#include "x509/x509.h"

#ifndef PLUGIN_FULL_TEARDOWN
#define PLUGIN_FULL_TEARDOWN 0
#endif

bool plugin_cookie_ok(const char *value) {
        return value && streq(value, PLUGIN_MAGIC_COOKIE_VALUE);
}

bool plugin_versions_offer(const char *list, int version) {
        if (isempty(list))
                return true;
        /* "5,6" or "6,5": Go map order (§1.1). */
        const char *s = list;
        while (*s) {
                char *end;
                long v = strtol(s, &end, 10);
                if (end != s && v == version && (*end == ',' || *end == 0))
                        return true;
                const char *comma = strchr(s, ',');
                if (!comma)
                        break;
                s = comma + 1;
        }
        return false;
}

int plugin_handshake_line(const char *network, const char *address, const uint8_t *cert_der, size_t cert_der_len,
                          char **ret) {
        _cleanup_free_ char *b64 = NULL;
        if (cert_der) {
                /* base64.RawStdEncoding: padding makes Terraform fail (§1.2). */
                b64 = base64_encode(cert_der, cert_der_len, BASE64_STD_RAW);
                if (!b64)
                        return -ENOMEM;
        }
        if (asprintf(ret, "1|%d|%s|%s|grpc|%s\n", PLUGIN_PROTOCOL_VERSION, network, address, b64 ?: "") < 0)
                return -ENOMEM;
        return 0;
}

int plugin_client_cert_check(const char *pem, size_t len) {
        X509 *c = NULL;
        int r = x509_from_pem(pem, len, &c);
        X509_free(c);
        return r;
}

/* The plugin socket's path, for the Shutdown handler. */
struct plugin_ctx {
        char path[256];
};

/* Removes the socket and its private directory. */
static void remove_socket(char *path) {
        (void) unlink(path);
        char *slash = strrchr(path, '/');
        if (slash) {
                *slash = 0;
                (void) rmdir(path);
                *slash = '/';
        }
}

static void on_shutdown(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
#if !defined(__SANITIZE_ADDRESS__) && !PLUGIN_FULL_TEARDOWN
        /* go-plugin's Kill() (Terraform's provider Close, three times per plan) calls Shutdown,
         * ignores its result, closes the connection and waits up to 2 s for the process to exit
         * (§1.3): the exit is what it waits for, not the reply. With no tfplugin6 call running
         * (Terraform closes a provider after its calls have returned) nothing is left to finish:
         * remove the socket and exit now, as go-plugin's own Go server does (it stops its gRPC
         * server inside the Shutdown handler). The reply and the orderly gRPC shutdown that
         * followed it (reply flushed, connection closed by Terraform, channel and listener
         * destroyed, loop thread joined) were about 1 ms of every provider process's life, more
         * when the machine is busy, each spent with Terraform waiting. The sanitizer build keeps
         * the orderly path, so its leak check still sees everything freed. */
        if (tfplugin_calls_in_flight() == 0) {
                struct plugin_ctx *ctx = userdata;
                remove_socket(ctx->path);
                fflush(NULL);
                _exit(0);
        }
#endif
        /* A call still runs: reply, then stop the server once every call has finished, and exit
         * (plugin_serve). Without an exit Terraform waits 2 s per provider process (§1.3). */
        rpc_call_shutdown_server_after(call);
        (void) rpc_call_reply(call, "", 0);
}

static void on_stdio(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        /* Nothing is ever forwarded: our logs go to stderr. Keep the stream open without blocking
         * anything; it ends when Terraform disconnects or we shut down. */
        rpc_call_hold(call);
}

/* SIGTERM/SIGHUP (Terraform killed, terminal closed), or Terraform gone: shut the server down so the
 * socket and its directory are removed, instead of dying and leaving them in $TMPDIR. The signals are
 * blocked in every thread and taken here with sigtimedwait(), so nothing async-signal-unsafe runs in
 * a handler. When the server stops for another reason (Shutdown), plugin_serve() sets `stopping`,
 * wakes this thread with SIGTERM and joins it before freeing the server: without that, a signal
 * arriving during the shutdown could reach rpc_server_request_shutdown() on a freed server (seen as a
 * SIGSEGV in grpc_server_cancel_all_calls about once in 40 SIGTERMs).
 *
 * Terraform gone: this process is re-parented (getppid() changes; polled every second, because
 * PR_SET_PDEATHSIG fires when the forking *thread* ends, which in Go's runtime need not be the end of
 * Terraform). An orphaned provider has nobody to answer: a Create waiting 20 minutes for a booting node
 * would otherwise run to its end, holding its resources. A graceful shutdown waits for every running
 * call, so after a signal or Terraform's end the calls get SHUTDOWN_GRACE_S to finish, then the process
 * exits (1): what a call had started is recorded where a SIGKILL would find it too (the QEMU
 * infrastructure's crash record), and the processes it started (QEMU, swtpm: their own sessions) run on. */
#define SHUTDOWN_GRACE_S 3
struct signal_ctx {
        rpc_server *server;
        char *path;
        pid_t parent;
        atomic_bool stopping;
};

static void *signal_thread(void *userdata) {
        struct signal_ctx *ctx = userdata;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        for (;;) {
                int sig = sigtimedwait(&set, NULL, &(struct timespec){ .tv_sec = 1 });
                if (atomic_load(&ctx->stopping))
                        return NULL;
                if (sig > 0) {
                        log_debug("signal %d: shutting down", sig);
                        break;
                }
                if (ctx->parent > 1 && getppid() != ctx->parent) {
                        log_debug("Terraform (pid %d) has ended: shutting down", (int) ctx->parent);
                        break;
                }
        }
        rpc_server_request_shutdown(ctx->server);
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
                (void) sigtimedwait(&set, NULL, &(struct timespec){ .tv_nsec = 200 * 1000 * 1000 });
                if (atomic_load(&ctx->stopping))
                        return NULL; /* every call finished: plugin_serve() exits */
                clock_gettime(CLOCK_MONOTONIC, &now);
        } while (now.tv_sec - t0.tv_sec < SHUTDOWN_GRACE_S);
        log_debug("calls still running after %d s: exiting", SHUTDOWN_GRACE_S);
        remove_socket(ctx->path);
        fflush(NULL);
        _exit(1);
}

static int make_socket_path(char *buf, size_t size) {
        const char *dir = getenv("PLUGIN_UNIX_SOCKET_DIR");
        if (isempty(dir))
                dir = getenv("TMPDIR");
        if (isempty(dir))
                dir = "/tmp";
        int n = snprintf(buf, size, "%s/tfprov-constellation-XXXXXX", dir);
        if (n < 0 || (size_t) n >= size - 16)
                return -ENAMETOOLONG;
        if (!mkdtemp(buf))
                return -errno;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "/plugin.sock");
        return 0;
}

int plugin_serve(void) {
        int r;
        if (!plugin_cookie_ok(getenv(PLUGIN_MAGIC_COOKIE_KEY))) {
                fprintf(stderr, "This binary is a plugin. These are not meant to be executed directly.\n"
                                "Please execute the program that consumes these plugins, which will\n"
                                "load any plugins automatically.\n");
                return 1;
        }
        if (!plugin_versions_offer(getenv("PLUGIN_PROTOCOL_VERSIONS"), PLUGIN_PROTOCOL_VERSION)) {
                log_error("Terraform offers plugin protocol versions %s; this provider speaks only %d",
                          getenv("PLUGIN_PROTOCOL_VERSIONS"), PLUGIN_PROTOCOL_VERSION);
                return 1;
        }
        /* Before anything can take long: if Terraform is gone by the time signal_thread() compares,
         * it sees another parent. */
        pid_t parent = getppid();
        /* Ctrl-C reaches the whole process group; Terraform stops us itself (§1.3). */
        signal(SIGINT, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        /* Block SIGTERM/SIGHUP before gRPC starts its threads, so they all inherit the mask and
         * signal_thread() is the only one to take them. */
        sigset_t term;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigaddset(&term, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &term, NULL);

        /* AutoMTLS is not optional: without Terraform's client certificate the socket would
         * serve plaintext to any local process of this user. Terraform always sets it unless
         * TF_DISABLE_PLUGIN_TLS is set (§1.5), which this provider does not support. */
        const char *client_cert = getenv("PLUGIN_CLIENT_CERT");
        if (isempty(client_cert)) {
                fprintf(stderr, "PLUGIN_CLIENT_CERT is not set: this provider serves only over mutual TLS "
                                "(go-plugin AutoMTLS), which Terraform sets up unless TF_DISABLE_PLUGIN_TLS is set. "
                                "Unset TF_DISABLE_PLUGIN_TLS and let Terraform start the provider.\n");
                return 1;
        }
        if (plugin_client_cert_check(client_cert, strlen(client_cert)) < 0) {
                fprintf(stderr, "PLUGIN_CLIENT_CERT does not hold a PEM certificate.\n");
                return 1;
        }

        _cleanup_erase_free_ char *key_pem = NULL;
        _cleanup_free_ char *cert_pem = NULL;
        _cleanup_free_ uint8_t *cert_der = NULL;
        size_t cert_der_len = 0;
        /* AutoMTLS: an ephemeral P-256 certificate, SAN localhost, serverAuth; go's TLS client pins
         * exactly this certificate from the handshake line (§2). */
        const char *const sans[] = { "localhost", NULL };
        x509_params params = { .common_name = "localhost", .organization = "HashiCorp", .dns_names = sans,
                               .server_auth = true, .client_auth = true, .is_ca = true,
                               .not_before_offset_s = -30, .lifetime_s = 30LL * 24 * 3600 };
        _cleanup_(X509_freep) X509 *cert = NULL;
        if ((r = x509_issue(&params, NULL, &cert, &key_pem, &cert_pem)) < 0 ||
            (r = x509_to_der(cert, &cert_der, &cert_der_len)) < 0) {
                log_error_errno(r, "cannot create the AutoMTLS certificate");
                return 1;
        }

        static struct plugin_ctx ctx;
        char *path = ctx.path, address[300];
        if ((r = make_socket_path(path, sizeof(ctx.path))) < 0) {
                log_error_errno(r, "cannot create a directory for the plugin socket");
                return 1;
        }
        snprintf(address, sizeof(address), "unix:%s", path);

        tf_provider_state state = { 0 };
        _cleanup_(rpc_server_freep) rpc_server *server = NULL;
        /* The receive limit is set on the transport (gRPC's message-size filter), so an oversize request
         * is refused before a handler sees it (test-provider-receive-limit). Responses are ours. */
        rpc_server_options opts = { .max_receive_message_length = (int) TF_MAX_REQUEST,
                                    .max_send_message_length = -1 };
        rpc_tls_config tls_config = { .key_pem = key_pem, .cert_pem = cert_pem, .root_pem = client_cert,
                                      .require_peer_cert = true };
        if ((r = rpc_server_new(&opts, &server)) < 0 || (r = tfplugin_register(server, &state)) < 0 ||
            (r = rpc_server_register(server, "/plugin.GRPCController/Shutdown", on_shutdown, &ctx)) < 0 ||
            (r = rpc_server_register(server, "/plugin.GRPCStdio/StreamStdio", on_stdio, NULL)) < 0 ||
            (r = rpc_server_listen(server, address, &tls_config, NULL)) < 0 ||
            (r = rpc_server_start(server)) < 0) {
                log_error_errno(r, "cannot start the plugin server on %s", address);
                return 1;
        }
        /* Only the socket owner may connect. */
        (void) chmod(path, 0600);
        struct signal_ctx sig_ctx = { .server = server, .path = path, .parent = parent };
        pthread_t sig_thread;
        bool have_sig_thread = pthread_create(&sig_thread, NULL, signal_thread, &sig_ctx) == 0;

        _cleanup_free_ char *line = NULL;
        if ((r = plugin_handshake_line("unix", path, cert_der, cert_der_len, &line)) < 0)
                return 1;
        /* Nothing else is ever written to stdout; the line must be flushed (§1.2). */
        fputs(line, stdout);
        fflush(stdout);
        log_debug("serving plugin protocol %d on %s", PLUGIN_PROTOCOL_VERSION, path);

        rpc_server_wait(server);
        /* The server has stopped: every call, Shutdown's reply included, has finished. */
        atomic_store(&sig_ctx.stopping, true);
        remove_socket(path);
        tf_provider_state_done(&state);
#if !defined(__SANITIZE_ADDRESS__) && !PLUGIN_FULL_TEARDOWN
        /* go-plugin waits for the process to exit after Shutdown (§1.3), three times per plan.
         * Tearing gRPC down (joining its executor and timer threads, C++ static destructors)
         * took about 5 ms of that wait and frees nothing the kernel would not: exit now. The
         * sanitizer build tears down fully, so its leak check still sees everything. */
        fflush(NULL);
        _exit(0);
#endif
        if (have_sig_thread) {
                atomic_store(&sig_ctx.stopping, true);
                (void) pthread_kill(sig_thread, SIGTERM);
                (void) pthread_join(sig_thread, NULL);
        }
        rpc_server_free(TAKE_PTR(server));
        return 0;
}
