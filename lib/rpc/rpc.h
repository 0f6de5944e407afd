/* SPDX-License-Identifier: Apache-2.0 */
/* The gRPC layer on gRPC C core (grpc/grpc.h): a generic server that dispatches calls by full
 * method name ("/pkg.Service/Method") on raw message bytes, and a client for unary and
 * server-streaming calls. Messages are opaque bytes: callers pack/unpack protobuf-c themselves,
 * so no generated service code is needed (terraform-plugin-protocol.md §3).
 *
 * Threading (server): one event-loop thread drives a single completion queue with one tag per
 * call and per batch; it never waits for a peer. Each handler runs on its own worker thread, so
 * a slow handler (an HTTP fetch) or a stream that is never half-closed by the client
 * (go-plugin's StreamStdio) blocks nothing else. Handlers answer through rpc_call_* functions,
 * which are safe to call from any thread.
 *
 * Message size limits are gRPC channel arguments (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH and
 * GRPC_ARG_MAX_SEND_MESSAGE_LENGTH), set on every server, channel and fd connection from the
 * options below, so gRPC core ends an oversize call with RESOURCE_EXHAUSTED and no handler ever
 * sees it. gRPC C core 1.51 (Debian 12) compares a message's length with the limit only once the
 * whole message has arrived: measured, a 100 MB request to a server with a 1 KiB limit raised the
 * server's peak RSS by ~100 MB before the refusal. So the limit keeps oversize messages away from
 * handlers and parsers, not out of gRPC's buffers; aTLS connections are bounded before gRPC by
 * the relay (lib/atls).
 *
 * Messages may carry secrets (Terraform's write-only attributes, init secrets, keys). Every copy
 * this layer makes is wiped before it is freed: the request bytes a handler receives (wiped after
 * it returns: keep no pointer to them), the copy of a reply or streamed message handed to gRPC
 * (wiped when gRPC releases it), and gRPC's buffers of received messages once copied out. The
 * buffers rpc_unary() and rpc_stream_next() return belong to the caller: free those that can
 * hold a secret with erase_and_free_sized() (basic/secret.h).
 *
 * Nothing here logs above debug level. Conditions that concern the whole server rather than one
 * call (it cannot accept further calls, it cannot start a handler) go to the program through
 * rpc_server_options.on_error; the peer of a failed call gets a status with the reason. */
#pragma once

#include <grpc/status.h>

#include "basic/macro.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;
typedef struct rpc_channel rpc_channel;
typedef struct rpc_stream rpc_stream;

/* Verdict of a custom peer-certificate check: return 0 to accept, or a negative errno to refuse
 * and set *ret_reason to a malloc'd string saying why (it reaches the log and the peer's status).
 * `peer_cert_pem` is the leaf certificate the peer presented. */
typedef int (*rpc_peer_verify_fn)(const char *peer_cert_pem, void *userdata, char **ret_reason);

typedef struct rpc_tls_config {
        const char *key_pem;        /* our private key (PEM) */
        const char *cert_pem;       /* our certificate chain (PEM) */
        const char *root_pem;       /* roots the peer's certificate must chain to; NULL: none */
        bool require_peer_cert;     /* server: require and verify a client certificate */
        rpc_peer_verify_fn verify;  /* optional extra check on the peer's leaf certificate */
        void *verify_userdata;
        const char *target_name;    /* client: name to check in the server certificate (SAN) */
} rpc_tls_config;

/* --- server --- */

/* gRPC's own default receive limit; used for both directions when an option is 0. */
#define RPC_DEFAULT_MAX_MESSAGE_LENGTH (4 * 1024 * 1024)

/* A condition that concerns the whole server (see the top of this file): `error` is a negative
 * errno, `what` says what failed and what it means ("cannot start a handler thread for
 * /pkg.Svc/M: the call was refused with RESOURCE_EXHAUSTED"). Called from a server thread; `what`
 * is valid during the call only. */
typedef void (*rpc_server_error_fn)(void *userdata, int error, const char *what);

typedef struct rpc_server_options {
        /* Largest message accepted, enforced by gRPC core before any handler runs: larger
         * requests end with RESOURCE_EXHAUSTED. 0 = RPC_DEFAULT_MAX_MESSAGE_LENGTH; -1 = no limit
         * (avoid: only for peers that are trusted not to exhaust memory). */
        int max_receive_message_length;
        /* Largest message a handler may send (same encoding); larger replies fail the call. */
        int max_send_message_length;
        /* Optional: told about server-wide conditions (see rpc_server_error_fn). */
        rpc_server_error_fn on_error;
        void *on_error_userdata;
} rpc_server_options;

/* A handler gets the first (and for unary/server-streaming calls the only) request message.
 * It must eventually answer with rpc_call_reply() (unary) or rpc_call_send()... then
 * rpc_call_finish() (server streaming), or rpc_call_fail(); or, for a stream that the server
 * keeps open until the client goes away, return without answering after rpc_call_hold(). */
typedef void (*rpc_handler_fn)(rpc_call *call, const uint8_t *request, size_t request_len,
                               void *userdata);

int rpc_server_new(const rpc_server_options *options, rpc_server **ret);
/* Registers a handler for a full method name. Calls to unregistered methods get UNIMPLEMENTED. */
int rpc_server_register(rpc_server *server, const char *method, rpc_handler_fn handler, void *userdata);
/* Listens on "unix:/abs/path" or "host:port" ("127.0.0.1:0" picks a port). tls NULL: plaintext.
 * Returns the bound port in *ret_port (0 for unix sockets). Must be called before start. */
int rpc_server_listen(rpc_server *server, const char *address, const rpc_tls_config *tls, int *ret_port);
int rpc_server_start(rpc_server *server);
/* The receive limit in force: the configured one, RPC_DEFAULT_MAX_MESSAGE_LENGTH for 0, -1 for
 * none. For transports in front of the server that enforce it earlier (the aTLS relay). */
int rpc_server_max_receive_message_length(const rpc_server *server);
/* Serves an already connected socket (plaintext), e.g. one whose TLS our own code terminates
 * (attested TLS). The server takes ownership of fd. Only after start. */
int rpc_server_add_fd(rpc_server *server, int fd);
/* Asks the server to shut down (from any thread, also from a handler): stops accepting calls,
 * cancels open streams, and makes rpc_server_wait() return. */
void rpc_server_request_shutdown(rpc_server *server);
/* Blocks until a shutdown was requested and the server has stopped. */
void rpc_server_wait(rpc_server *server);
/* Shuts down (if still running) and frees. Accepts NULL. */
void rpc_server_free(rpc_server *server);
DEFINE_TRIVIAL_CLEANUP_FUNC(rpc_server *, rpc_server_free);

/* Full method name of the call ("/pkg.Service/Method"). */
const char *rpc_call_method(const rpc_call *call);
/* Answers a unary call with one message and status OK. */
int rpc_call_reply(rpc_call *call, const void *response, size_t len);
/* Sends one message of a server stream; returns once it is handed to the transport. */
int rpc_call_send(rpc_call *call, const void *message, size_t len);
/* Ends a call with a status (GRPC_STATUS_OK after rpc_call_send for streams). */
int rpc_call_finish(rpc_call *call, grpc_status_code status, const char *message);
/* Ends a call with an error status and message. */
static inline int rpc_call_fail(rpc_call *call, grpc_status_code status, const char *message) {
        return rpc_call_finish(call, status, message);
}
/* Marks the call as held open: the handler returns without answering; the call ends when the
 * client cancels it or the server shuts down. */
void rpc_call_hold(rpc_call *call);
/* After this call's answer has been sent, shut the server down (go-plugin's Shutdown). */
void rpc_call_shutdown_server_after(rpc_call *call);
/* True once the client cancelled the call or the server is shutting down. */
bool rpc_call_cancelled(const rpc_call *call);

/* --- client --- */

typedef struct rpc_status {
        grpc_status_code code;
        char *message; /* malloc'd; may be NULL */
} rpc_status;
void rpc_status_done(rpc_status *status);

typedef struct rpc_channel_options {
        /* As in rpc_server_options: a larger reply ends the call with RESOURCE_EXHAUSTED; a larger
         * request is refused by this side before it is sent. */
        int max_receive_message_length;
        int max_send_message_length;
} rpc_channel_options;

/* Creates a channel to "unix:/path" or "host:port"; tls NULL: plaintext. */
int rpc_channel_new(const char *target, const rpc_tls_config *tls, const rpc_channel_options *options,
                    rpc_channel **ret);
/* A plaintext channel over an already connected socket; takes ownership of fd. */
int rpc_channel_new_from_fd(int fd, const rpc_channel_options *options, rpc_channel **ret);
void rpc_channel_free(rpc_channel *channel);
DEFINE_TRIVIAL_CLEANUP_FUNC(rpc_channel *, rpc_channel_free);

/* A unary call. Returns 0 when the call completed (whatever its status: see ret_status->code)
 * and a negative errno if it could not be made. On status OK *ret_response holds the message
 * (malloc'd, NUL-terminated past its length; free with erase_and_free_sized if it may hold a
 * secret). */
int rpc_unary(rpc_channel *channel, const char *method, const void *request, size_t request_len,
              int64_t timeout_ms, uint8_t **ret_response, size_t *ret_response_len, rpc_status *ret_status);

/* A server-streaming call: open, then rpc_stream_next() until it returns 0 (end of stream; the
 * final status is then in rpc_stream_status()). timeout_ms covers the whole call. */
int rpc_stream_open(rpc_channel *channel, const char *method, const void *request, size_t request_len,
                    int64_t timeout_ms, rpc_stream **ret);
/* 1: a message in *ret_message (caller frees, as rpc_unary's response); 0: stream ended; negative
 * errno on local failure. */
int rpc_stream_next(rpc_stream *stream, uint8_t **ret_message, size_t *ret_len);
const rpc_status *rpc_stream_status(const rpc_stream *stream);
void rpc_stream_free(rpc_stream *stream);
DEFINE_TRIVIAL_CLEANUP_FUNC(rpc_stream *, rpc_stream_free);

/* Name of a status code, e.g. "UNAVAILABLE". */
const char *rpc_status_code_to_string(grpc_status_code code);
