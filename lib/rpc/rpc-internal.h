/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "rpc/rpc.h"

/* Copies a received byte buffer into one malloc'd block (NUL-terminated past *ret_len) and wipes
 * gRPC's copy of the message; the caller still destroys bb. */
int rpc_byte_buffer_to_bytes(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len);
/* Wipes a received byte buffer's bytes, then destroys it. Accepts NULL. */
void rpc_byte_buffer_destroy_wiped(grpc_byte_buffer *bb);
/* A byte buffer over a copy of data that is wiped when gRPC releases it. NULL: out of memory. */
grpc_byte_buffer *rpc_bytes_to_byte_buffer(const void *data, size_t len);
/* The message size channel arguments from the configured limits (0: RPC_DEFAULT_MAX_MESSAGE_LENGTH,
 * -1: unlimited). Fills storage[0..1]; returns the count. */
size_t rpc_message_size_args(int max_receive, int max_send, grpc_arg storage[static 2]);

grpc_server_credentials *rpc_server_credentials_new(const rpc_tls_config *tls);
grpc_channel_credentials *rpc_channel_credentials_new(const rpc_tls_config *tls);

/* grpc_init/grpc_shutdown are reference counted by gRPC itself; wrap them for symmetry. */
void rpc_library_ref(void);
void rpc_library_unref(void);
