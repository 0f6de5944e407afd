/* SPDX-License-Identifier: Apache-2.0 */
/* Generic asynchronous gRPC server: one completion queue, one tag per call and per batch,
 * handlers on worker threads (see rpc.h). */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include <grpc/grpc_posix.h>
#include <grpc/support/time.h>

#include "basic/log.h"
#include "basic/secret.h"
#include "rpc/rpc-internal.h"

enum tag_kind {
        TAG_NEW_CALL,     /* grpc_server_request_call completed */
        TAG_RECV_REQUEST, /* first request message received */
        TAG_CLOSE,        /* RECV_CLOSE_ON_SERVER: the call is over */
        TAG_SEND,         /* a streamed message was sent */
        TAG_FINAL,        /* status sent */
        TAG_SERVER_SHUTDOWN,
};

struct tag {
        enum tag_kind kind;
        rpc_call *call;
};

struct handler {
        char *method;
        rpc_handler_fn fn;
        void *userdata;
};

struct rpc_server {
        grpc_server *server;
        grpc_completion_queue *cq;
        pthread_t loop_thread;
        bool started;
        struct handler *handlers;
        size_t n_handlers;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool shutdown_requested;
        bool shutdown_notified; /* grpc_server_shutdown_and_notify completed */
        bool cq_shutdown;
        bool stopped;
        unsigned calls_alive;
        struct tag shutdown_tag;

        rpc_server_error_fn on_error;
        void *on_error_userdata;
        int max_receive_message_length;
};

struct rpc_call {
        rpc_server *server;
        grpc_call *call;
        grpc_call_details details;
        grpc_metadata_array request_metadata;
        grpc_byte_buffer *request;
        int close_cancelled;
        char *method;
        const struct handler *handler;
        struct tag t_new, t_recv, t_close, t_send, t_final;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned refs;
        bool initial_metadata_sent;
        bool send_busy;
        bool send_failed;
        bool finished;
        bool closed;
        bool held;
        bool shutdown_after;
};

static void call_unref(rpc_call *c);

/* A server-wide condition: to the program's on_error hook, and to the debug log (lib/ logs at
 * debug level only; the program decides what is worth more). */
_printf_(3, 4) static void server_report(rpc_server *s, int error, const char *fmt, ...) {
        char what[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        log_debug("rpc: %s: %s", what, strerror(-error));
        if (s->on_error)
                s->on_error(s->on_error_userdata, error, what);
}

/* Once gRPC has reported the server shut down and every call object is gone (handlers
 * included), the queue can be shut down: nothing can post to it any more. Called with s->lock
 * held, from the loop or from whichever thread drops the last call. */
static void maybe_shutdown_queue_locked(rpc_server *s) {
        if (s->shutdown_notified && s->calls_alive == 0 && !s->cq_shutdown) {
                s->cq_shutdown = true;
                grpc_completion_queue_shutdown(s->cq);
        }
}

static rpc_call *call_new(rpc_server *s) {
        rpc_call *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->server = s;
        grpc_call_details_init(&c->details);
        grpc_metadata_array_init(&c->request_metadata);
        c->t_new = (struct tag){ TAG_NEW_CALL, c };
        c->t_recv = (struct tag){ TAG_RECV_REQUEST, c };
        c->t_close = (struct tag){ TAG_CLOSE, c };
        c->t_send = (struct tag){ TAG_SEND, c };
        c->t_final = (struct tag){ TAG_FINAL, c };
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        c->refs = 1; /* held by the pending request_call */
        pthread_mutex_lock(&s->lock);
        s->calls_alive++;
        pthread_mutex_unlock(&s->lock);
        return c;
}

static void call_free(rpc_call *c) {
        rpc_server *s = c->server;
        if (c->call)
                grpc_call_unref(c->call);
        rpc_byte_buffer_destroy_wiped(c->request);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->request_metadata);
        free(c->method);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
        pthread_mutex_lock(&s->lock);
        s->calls_alive--;
        maybe_shutdown_queue_locked(s);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

static void call_ref_locked(rpc_call *c) {
        c->refs++;
}

static void call_unref(rpc_call *c) {
        pthread_mutex_lock(&c->lock);
        bool last = --c->refs == 0;
        pthread_mutex_unlock(&c->lock);
        if (last)
                call_free(c);
}

static void server_request_next_call(rpc_server *s) {
        rpc_call *c = call_new(s);
        if (!c) {
                server_report(s, -ENOMEM, "out of memory: the server accepts no further calls");
                return;
        }
        grpc_call_error e = grpc_server_request_call(s->server, &c->call, &c->details, &c->request_metadata,
                                                     s->cq, s->cq, &c->t_new);
        if (e != GRPC_CALL_OK) {
                log_debug("rpc: grpc_server_request_call failed: %d", e);
                call_unref(c);
        }
}

/* Starts the final batch: initial metadata if not yet sent, an optional message, the status. */
static int call_finish_locked(rpc_call *c, const void *message, size_t len, bool with_message,
                              grpc_status_code status, const char *details) {
        grpc_op ops[3];
        size_t n = 0;
        grpc_byte_buffer *bb = NULL;
        grpc_slice details_slice = grpc_slice_from_copied_string(details ? details : "");

        memset(ops, 0, sizeof(ops));
        if (!c->initial_metadata_sent) {
                ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
                n++;
                c->initial_metadata_sent = true;
        }
        if (with_message) {
                bb = rpc_bytes_to_byte_buffer(message, len);
                if (!bb) {
                        /* Nothing started: the call stays unfinished, so the caller may still
                         * answer with an error status. */
                        if (n > 0)
                                c->initial_metadata_sent = false;
                        grpc_slice_unref(details_slice);
                        return -ENOMEM;
                }
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n].data.send_message.send_message = bb;
                n++;
        }
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = status;
        ops[n].data.send_status_from_server.status_details = &details_slice;
        n++;

        c->finished = true;
        call_ref_locked(c);
        grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_final, NULL);
        /* gRPC copies what it needs from the ops when the batch starts. */
        grpc_slice_unref(details_slice);
        if (bb)
                grpc_byte_buffer_destroy(bb);
        if (e != GRPC_CALL_OK) {
                c->refs--; /* never 0 here: the caller holds a reference */
                return -EIO;
        }
        return 0;
}

const char *rpc_call_method(const rpc_call *call) {
        return call->method;
}

bool rpc_call_cancelled(const rpc_call *call) {
        rpc_call *c = (rpc_call *) call;
        pthread_mutex_lock(&c->lock);
        bool r = c->closed;
        pthread_mutex_unlock(&c->lock);
        return r;
}

void rpc_call_hold(rpc_call *call) {
        pthread_mutex_lock(&call->lock);
        call->held = true;
        pthread_mutex_unlock(&call->lock);
}

void rpc_call_shutdown_server_after(rpc_call *call) {
        pthread_mutex_lock(&call->lock);
        call->shutdown_after = true;
        pthread_mutex_unlock(&call->lock);
}

static void wait_send_idle_locked(rpc_call *c) {
        while (c->send_busy)
                pthread_cond_wait(&c->cond, &c->lock);
}

int rpc_call_reply(rpc_call *call, const void *response, size_t len) {
        pthread_mutex_lock(&call->lock);
        wait_send_idle_locked(call);
        int r = call->finished ? -EALREADY : call_finish_locked(call, response, len, true, GRPC_STATUS_OK, NULL);
        pthread_mutex_unlock(&call->lock);
        return r;
}

int rpc_call_finish(rpc_call *call, grpc_status_code status, const char *message) {
        pthread_mutex_lock(&call->lock);
        wait_send_idle_locked(call);
        int r = call->finished ? -EALREADY : call_finish_locked(call, NULL, 0, false, status, message);
        pthread_mutex_unlock(&call->lock);
        return r;
}

int rpc_call_send(rpc_call *call, const void *message, size_t len) {
        rpc_call *c = call;
        grpc_op ops[2];
        size_t n = 0;

        pthread_mutex_lock(&c->lock);
        wait_send_idle_locked(c);
        if (c->finished || c->closed) {
                pthread_mutex_unlock(&c->lock);
                return -ECANCELED;
        }
        memset(ops, 0, sizeof(ops));
        if (!c->initial_metadata_sent) {
                ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
                c->initial_metadata_sent = true;
        }
        grpc_byte_buffer *bb = rpc_bytes_to_byte_buffer(message, len);
        if (!bb) {
                if (n > 0)
                        c->initial_metadata_sent = false;
                pthread_mutex_unlock(&c->lock);
                return -ENOMEM;
        }
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
        c->send_busy = true;
        c->send_failed = false;
        call_ref_locked(c);
        grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL);
        grpc_byte_buffer_destroy(bb);
        if (e != GRPC_CALL_OK) {
                c->send_busy = false;
                c->refs--;
                pthread_mutex_unlock(&c->lock);
                return -EIO;
        }
        /* Wait for the transport to take the message: one SEND_MESSAGE at a time (grpc.h). */
        wait_send_idle_locked(c);
        int r = c->send_failed ? -ECONNRESET : 0;
        pthread_mutex_unlock(&c->lock);
        return r;
}

static void *handler_thread(void *arg) {
        rpc_call *c = arg;
        uint8_t *req = NULL;
        size_t req_len = 0;

        int r = rpc_byte_buffer_to_bytes(c->request, &req, &req_len);
        /* Only this thread reads the request; gRPC's copy is wiped and gone before the handler runs. */
        rpc_byte_buffer_destroy_wiped(TAKE_PTR(c->request));
        if (r < 0) {
                (void) rpc_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "server cannot copy the request (out of memory)");
        } else {
                c->handler->fn(c, req, req_len, c->handler->userdata);
                erase_and_free_sized(req, req_len);
        }

        pthread_mutex_lock(&c->lock);
        bool unanswered = !c->finished && !c->held;
        pthread_mutex_unlock(&c->lock);
        if (unanswered) {
                log_debug("rpc: handler for %s returned without an answer", c->method);
                (void) rpc_call_fail(c, GRPC_STATUS_INTERNAL, "handler returned without an answer");
        }
        /* Release this thread's OpenSSL state (error queue, DRBG) now, while the call still holds
         * the server: handler threads are detached, so after the last call_unref the program may
         * already be exiting (OpenSSL no longer cleans up at exit, see common.c, so the thread's
         * own exit would free it too; this frees it before the program can stop). */
        OPENSSL_thread_stop();
        call_unref(c);
        return NULL;
}

static void start_handler(rpc_call *c) {
        pthread_attr_t attr;
        pthread_t t;

        pthread_mutex_lock(&c->lock);
        call_ref_locked(c);
        pthread_mutex_unlock(&c->lock);

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int e = pthread_create(&t, &attr, handler_thread, c);
        pthread_attr_destroy(&attr);
        if (e != 0) {
                server_report(c->server, -e,
                              "cannot start a handler thread for %s: the call was refused with RESOURCE_EXHAUSTED",
                              c->method);
                (void) rpc_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "server cannot start a handler");
                call_unref(c);
        }
}

static const struct handler *find_handler(rpc_server *s, const char *method) {
        for (size_t i = 0; i < s->n_handlers; i++)
                if (streq(s->handlers[i].method, method))
                        return &s->handlers[i];
        return NULL;
}

static void on_new_call(rpc_call *c, bool ok) {
        rpc_server *s = c->server;
        grpc_op op;

        if (!ok) { /* server shutting down */
                call_unref(c);
                return;
        }

        pthread_mutex_lock(&s->lock);
        bool shutting_down = s->shutdown_requested;
        pthread_mutex_unlock(&s->lock);
        if (!shutting_down)
                server_request_next_call(s);

        size_t mlen = GRPC_SLICE_LENGTH(c->details.method);
        c->method = strndup((const char *) GRPC_SLICE_START_PTR(c->details.method), mlen);

        /* Learn when the call ends (client cancel, deadline, or our status) without ever waiting
         * for the client's half-close: that is what keeps never-closed streams from blocking. */
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        op.data.recv_close_on_server.cancelled = &c->close_cancelled;
        pthread_mutex_lock(&c->lock);
        call_ref_locked(c);
        pthread_mutex_unlock(&c->lock);
        if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK)
                call_unref(c);

        c->handler = c->method ? find_handler(s, c->method) : NULL;
        pthread_mutex_lock(&c->lock);
        if (!c->handler) {
                log_debug("rpc: unimplemented method %s", c->method ?: "?");
                (void) call_finish_locked(c, NULL, 0, false, GRPC_STATUS_UNIMPLEMENTED, "method not implemented");
        } else {
                memset(&op, 0, sizeof(op));
                op.op = GRPC_OP_RECV_MESSAGE;
                op.data.recv_message.recv_message = &c->request;
                call_ref_locked(c);
                if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK)
                        c->refs--;
        }
        pthread_mutex_unlock(&c->lock);
        call_unref(c); /* the request_call reference */
}

static void on_recv_request(rpc_call *c, bool ok) {
        if (!ok || !c->request) {
                pthread_mutex_lock(&c->lock);
                if (!c->finished && !c->closed)
                        (void) call_finish_locked(c, NULL, 0, false, GRPC_STATUS_INVALID_ARGUMENT,
                                                  "call carried no request message");
                pthread_mutex_unlock(&c->lock);
        } else
                start_handler(c);
        call_unref(c);
}

static void on_close(rpc_call *c) {
        pthread_mutex_lock(&c->lock);
        c->closed = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        call_unref(c);
}

static void on_send(rpc_call *c, bool ok) {
        pthread_mutex_lock(&c->lock);
        c->send_busy = false;
        c->send_failed = !ok;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        call_unref(c);
}

static void on_final(rpc_call *c) {
        pthread_mutex_lock(&c->lock);
        bool shutdown_after = c->shutdown_after;
        pthread_mutex_unlock(&c->lock);
        rpc_server *s = c->server;
        call_unref(c);
        if (shutdown_after)
                rpc_server_request_shutdown(s);
}

static void *loop_thread(void *arg) {
        rpc_server *s = arg;

        for (;;) {
                grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                        break;
                if (ev.type != GRPC_OP_COMPLETE)
                        continue;
                struct tag *t = ev.tag;
                switch (t->kind) {
                case TAG_NEW_CALL:
                        on_new_call(t->call, ev.success);
                        break;
                case TAG_RECV_REQUEST:
                        on_recv_request(t->call, ev.success);
                        break;
                case TAG_CLOSE:
                        on_close(t->call);
                        break;
                case TAG_SEND:
                        on_send(t->call, ev.success);
                        break;
                case TAG_FINAL:
                        on_final(t->call);
                        break;
                case TAG_SERVER_SHUTDOWN:
                        pthread_mutex_lock(&s->lock);
                        s->shutdown_notified = true;
                        pthread_mutex_unlock(&s->lock);
                        break;
                }

                pthread_mutex_lock(&s->lock);
                maybe_shutdown_queue_locked(s);
                pthread_mutex_unlock(&s->lock);
        }

        pthread_mutex_lock(&s->lock);
        s->stopped = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int rpc_server_new(const rpc_server_options *options, rpc_server **ret) {
        rpc_server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        rpc_library_ref();
        /* The limits are channel arguments of the server, so they hold for every connection it
         * serves, including those added with rpc_server_add_fd (gRPC builds their transports from
         * the server's arguments), and gRPC core refuses an oversize message itself. */
        grpc_arg args[2];
        size_t n = rpc_message_size_args(options ? options->max_receive_message_length : 0,
                                         options ? options->max_send_message_length : 0, args);
        grpc_channel_args channel_args = { .num_args = n, .args = args };
        s->max_receive_message_length = args[0].value.integer;
        s->server = grpc_server_create(&channel_args, NULL);
        s->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->cq, NULL);
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->shutdown_tag = (struct tag){ TAG_SERVER_SHUTDOWN, NULL };
        if (options) {
                s->on_error = options->on_error;
                s->on_error_userdata = options->on_error_userdata;
        }
        *ret = s;
        return 0;
}

int rpc_server_max_receive_message_length(const rpc_server *s) {
        return s->max_receive_message_length;
}

int rpc_server_register(rpc_server *s, const char *method, rpc_handler_fn handler, void *userdata) {
        if (s->started || !method || method[0] != '/' || !handler)
                return -EINVAL;
        if (find_handler(s, method))
                return -EEXIST;
        struct handler *n = realloc(s->handlers, (s->n_handlers + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        s->handlers = n;
        char *m = strdup(method);
        if (!m)
                return -ENOMEM;
        s->handlers[s->n_handlers++] = (struct handler){ m, handler, userdata };
        return 0;
}

int rpc_server_listen(rpc_server *s, const char *address, const rpc_tls_config *tls, int *ret_port) {
        if (s->started || !address)
                return -EINVAL;
        grpc_server_credentials *creds = rpc_server_credentials_new(tls);
        if (!creds)
                return -EINVAL;
        int port = grpc_server_add_http2_port(s->server, address, creds);
        grpc_server_credentials_release(creds);
        if (port <= 0)
                return -EADDRNOTAVAIL;
        if (ret_port)
                *ret_port = strncmp(address, "unix:", 5) == 0 ? 0 : port;
        return 0;
}

int rpc_server_start(rpc_server *s) {
        if (s->started)
                return -EALREADY;
        grpc_server_start(s->server);
        s->started = true;
        server_request_next_call(s);
        int e = pthread_create(&s->loop_thread, NULL, loop_thread, s);
        if (e != 0) {
                s->started = false;
                return -e;
        }
        return 0;
}

int rpc_server_add_fd(rpc_server *s, int fd) {
        if (!s->started || fd < 0)
                return -EINVAL;
        /* gRPC's endpoint expects a non-blocking socket (its own fd fixtures set this too). */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        grpc_server_add_channel_from_fd(s->server, fd, creds);
        grpc_server_credentials_release(creds);
        return 0;
}

void rpc_server_request_shutdown(rpc_server *s) {
        pthread_mutex_lock(&s->lock);
        bool first = !s->shutdown_requested && s->started;
        s->shutdown_requested = true;
        pthread_mutex_unlock(&s->lock);
        if (!first)
                return;
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        /* Streams that clients never close (go-plugin StreamStdio) end here. */
        grpc_server_cancel_all_calls(s->server);
}

void rpc_server_wait(rpc_server *s) {
        if (!s->started)
                return;
        pthread_mutex_lock(&s->lock);
        while (!s->stopped)
                pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->loop_thread, NULL);
        s->started = false;
}

void rpc_server_free(rpc_server *s) {
        if (!s)
                return;
        if (s->started) {
                rpc_server_request_shutdown(s);
                rpc_server_wait(s);
        }
        grpc_server_destroy(s->server);
        grpc_completion_queue_destroy(s->cq);
        for (size_t i = 0; i < s->n_handlers; i++)
                free(s->handlers[i].method);
        free(s->handlers);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
        rpc_library_unref();
}
