/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "rpc/rpc.h"

/* Copies a received byte buffer into one malloc'd block (NUL-terminated past *ret_len). */
int rpc_byte_buffer_to_bytes(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len);
grpc_byte_buffer *rpc_bytes_to_byte_buffer(const void *data, size_t len);

grpc_server_credentials *rpc_server_credentials_new(const rpc_tls_config *tls);
grpc_channel_credentials *rpc_channel_credentials_new(const rpc_tls_config *tls);

/* grpc_init/grpc_shutdown are reference counted by gRPC itself; wrap them for symmetry. */
void rpc_library_ref(void);
void rpc_library_unref(void);
