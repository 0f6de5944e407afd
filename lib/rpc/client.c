/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking client calls on a private completion queue per call. */
#include <fcntl.h>

#include <grpc/grpc_posix.h>
#include <grpc/support/time.h>

#include "basic/log.h"
#include "basic/secret.h"
#include "rpc/rpc-internal.h"

struct rpc_channel {
        grpc_channel *channel;
};

struct rpc_stream {
        grpc_completion_queue *cq;
        grpc_call *call;
        grpc_metadata_array initial_metadata;
        grpc_metadata_array trailing_metadata;
        grpc_status_code status_code;
        grpc_slice status_details;
        grpc_byte_buffer *message;
        bool start_done, status_done, message_done, ended;
        rpc_status status;
        int tag_start, tag_status, tag_message; /* addresses used as tags */
};

static grpc_channel_args *channel_args_new(const rpc_channel_options *o, const rpc_tls_config *tls,
                                           grpc_arg storage[static 3]) {
        /* Both limits always, so gRPC core enforces them on this channel (see rpc.h). */
        size_t n = rpc_message_size_args(o ? o->max_receive_message_length : 0, o ? o->max_send_message_length : 0,
                                         storage);
        if (tls && tls->target_name) {
                storage[n].type = GRPC_ARG_STRING;
                storage[n].key = (char *) GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
                storage[n].value.string = (char *) tls->target_name;
                n++;
        }
        grpc_channel_args *args = calloc(1, sizeof(*args));
        if (args) {
                args->num_args = n;
                args->args = storage;
        }
        return args;
}

int rpc_channel_new(const char *target, const rpc_tls_config *tls, const rpc_channel_options *options,
                    rpc_channel **ret) {
        if (!target)
                return -EINVAL;
        _cleanup_free_ rpc_channel *ch = calloc(1, sizeof(*ch));
        if (!ch)
                return -ENOMEM;
        rpc_library_ref();
        grpc_channel_credentials *creds = rpc_channel_credentials_new(tls);
        if (!creds) {
                rpc_library_unref();
                return -EINVAL;
        }
        grpc_arg storage[3];
        _cleanup_free_ grpc_channel_args *args = channel_args_new(options, tls, storage);
        if (!args) {
                grpc_channel_credentials_release(creds);
                rpc_library_unref();
                return -ENOMEM;
        }
        ch->channel = grpc_channel_create(target, creds, args);
        grpc_channel_credentials_release(creds);
        *ret = TAKE_PTR(ch);
        return 0;
}

int rpc_channel_new_from_fd(int fd, const rpc_channel_options *options, rpc_channel **ret) {
        if (fd < 0)
                return -EINVAL;
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        _cleanup_free_ rpc_channel *ch = calloc(1, sizeof(*ch));
        if (!ch)
                return -ENOMEM;
        rpc_library_ref();
        grpc_arg storage[3];
        _cleanup_free_ grpc_channel_args *args = channel_args_new(options, NULL, storage);
        if (!args) {
                rpc_library_unref();
                return -ENOMEM;
        }
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        ch->channel = grpc_channel_create_from_fd("fd", fd, creds, args);
        grpc_channel_credentials_release(creds);
        *ret = TAKE_PTR(ch);
        return 0;
}

void rpc_channel_free(rpc_channel *ch) {
        if (!ch)
                return;
        grpc_channel_destroy(ch->channel);
        free(ch);
        rpc_library_unref();
}

static gpr_timespec deadline_from_ms(int64_t timeout_ms) {
        if (timeout_ms <= 0)
                return gpr_inf_future(GPR_CLOCK_REALTIME);
        return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static void cq_shutdown_and_destroy(grpc_completion_queue *cq) {
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
}

static char *slice_to_string(grpc_slice s) {
        return strndup((const char *) GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

int rpc_unary(rpc_channel *ch, const char *method, const void *request, size_t request_len, int64_t timeout_ms,
              uint8_t **ret_response, size_t *ret_response_len, rpc_status *ret_status) {
        grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
        grpc_slice method_slice = grpc_slice_from_copied_string(method);
        grpc_call *call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_slice,
                                                   NULL, deadline_from_ms(timeout_ms), NULL);
        grpc_slice_unref(method_slice);

        grpc_metadata_array initial_md, trailing_md;
        grpc_metadata_array_init(&initial_md);
        grpc_metadata_array_init(&trailing_md);
        grpc_byte_buffer *send = rpc_bytes_to_byte_buffer(request, request_len), *recv = NULL;
        if (!send) {
                grpc_call_unref(call);
                cq_shutdown_and_destroy(cq);
                return -ENOMEM;
        }
        grpc_status_code code = GRPC_STATUS_UNKNOWN;
        grpc_slice details = grpc_empty_slice();
        grpc_op ops[6];
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &recv;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.status = &code;
        ops[5].data.recv_status_on_client.status_details = &details;
        ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;

        int r = 0, tag;
        if (grpc_call_start_batch(call, ops, ELEMENTSOF(ops), &tag, NULL) != GRPC_CALL_OK)
                r = -EIO;
        else {
                grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type != GRPC_OP_COMPLETE || ev.tag != &tag)
                        r = -EIO;
        }

        uint8_t *resp = NULL;
        size_t resp_len = 0;
        if (r >= 0 && code == GRPC_STATUS_OK) {
                if (!recv)
                        r = -EBADMSG;
                else
                        r = rpc_byte_buffer_to_bytes(recv, &resp, &resp_len);
        }
        if (r >= 0) {
                ret_status->code = code;
                ret_status->message = slice_to_string(details);
                if (ret_response) {
                        *ret_response = resp;
                        *ret_response_len = resp_len;
                } else
                        erase_and_free_sized(resp, resp_len);
        }

        grpc_byte_buffer_destroy(send);
        rpc_byte_buffer_destroy_wiped(recv);
        grpc_slice_unref(details);
        grpc_metadata_array_destroy(&initial_md);
        grpc_metadata_array_destroy(&trailing_md);
        grpc_call_unref(call);
        cq_shutdown_and_destroy(cq);
        return r;
}

/* Runs the queue until `want` completes, recording other completions of this stream. */
static int stream_wait(rpc_stream *st, void *want) {
        for (;;) {
                grpc_event ev = grpc_completion_queue_next(st->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type != GRPC_OP_COMPLETE)
                        return -EIO;
                if (ev.tag == &st->tag_start)
                        st->start_done = true;
                else if (ev.tag == &st->tag_status)
                        st->status_done = true;
                else if (ev.tag == &st->tag_message)
                        st->message_done = true;
                if (ev.tag == want)
                        return 0;
        }
}

int rpc_stream_open(rpc_channel *ch, const char *method, const void *request, size_t request_len,
                    int64_t timeout_ms, rpc_stream **ret) {
        rpc_stream *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_slice method_slice = grpc_slice_from_copied_string(method);
        st->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, st->cq, method_slice, NULL,
                                            deadline_from_ms(timeout_ms), NULL);
        grpc_slice_unref(method_slice);
        grpc_metadata_array_init(&st->initial_metadata);
        grpc_metadata_array_init(&st->trailing_metadata);
        st->status_details = grpc_empty_slice();

        grpc_byte_buffer *send = rpc_bytes_to_byte_buffer(request, request_len);
        if (!send) {
                grpc_call_unref(st->call);
                cq_shutdown_and_destroy(st->cq);
                grpc_metadata_array_destroy(&st->initial_metadata);
                grpc_metadata_array_destroy(&st->trailing_metadata);
                free(st);
                return -ENOMEM;
        }
        grpc_op ops[4];
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &st->initial_metadata;
        grpc_call_error e1 = grpc_call_start_batch(st->call, ops, 4, &st->tag_start, NULL);
        grpc_byte_buffer_destroy(send);

        grpc_op status_op;
        memset(&status_op, 0, sizeof(status_op));
        status_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        status_op.data.recv_status_on_client.status = &st->status_code;
        status_op.data.recv_status_on_client.status_details = &st->status_details;
        status_op.data.recv_status_on_client.trailing_metadata = &st->trailing_metadata;
        grpc_call_error e2 = grpc_call_start_batch(st->call, &status_op, 1, &st->tag_status, NULL);
        if (e1 != GRPC_CALL_OK || e2 != GRPC_CALL_OK) {
                if (e1 == GRPC_CALL_OK)
                        (void) stream_wait(st, &st->tag_start);
                if (e2 == GRPC_CALL_OK)
                        (void) stream_wait(st, &st->tag_status);
                st->start_done = st->status_done = true;
                rpc_stream_free(st);
                return -EIO;
        }
        *ret = st;
        return 0;
}

static int stream_end(rpc_stream *st) {
        if (!st->status_done && stream_wait(st, &st->tag_status) < 0)
                return -EIO;
        if (!st->ended) {
                st->ended = true;
                st->status.code = st->status_code;
                st->status.message = slice_to_string(st->status_details);
        }
        return 0;
}

int rpc_stream_next(rpc_stream *st, uint8_t **ret_message, size_t *ret_len) {
        if (st->ended)
                return 0;
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &st->message;
        st->message = NULL;
        st->message_done = false;
        if (grpc_call_start_batch(st->call, &op, 1, &st->tag_message, NULL) != GRPC_CALL_OK)
                return -EIO;
        if (stream_wait(st, &st->tag_message) < 0)
                return -EIO;
        if (!st->message) {
                int r = stream_end(st);
                return r < 0 ? r : 0;
        }
        uint8_t *buf;
        size_t len;
        int r = rpc_byte_buffer_to_bytes(st->message, &buf, &len);
        rpc_byte_buffer_destroy_wiped(TAKE_PTR(st->message));
        if (r < 0)
                return r;
        *ret_message = buf;
        *ret_len = len;
        return 1;
}

const rpc_status *rpc_stream_status(const rpc_stream *st) {
        return st->ended ? &st->status : NULL;
}

void rpc_stream_free(rpc_stream *st) {
        if (!st)
                return;
        if (!st->status_done) {
                grpc_call_cancel(st->call, NULL);
                if (!st->start_done)
                        (void) stream_wait(st, &st->tag_start);
                (void) stream_wait(st, &st->tag_status);
        } else if (!st->start_done)
                (void) stream_wait(st, &st->tag_start);
        grpc_call_unref(st->call);
        cq_shutdown_and_destroy(st->cq);
        grpc_metadata_array_destroy(&st->initial_metadata);
        grpc_metadata_array_destroy(&st->trailing_metadata);
        grpc_slice_unref(st->status_details);
        rpc_status_done(&st->status);
        free(st);
}
