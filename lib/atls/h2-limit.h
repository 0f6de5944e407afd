/* SPDX-License-Identifier: Apache-2.0 */
/* A message size limit in front of gRPC: reads the HTTP/2 byte stream a peer sends to gRPC
 * through the aTLS relay and refuses a gRPC message whose length prefix announces more than the
 * limit, as soon as the 5-byte prefix has arrived and before any of its body is passed on.
 *
 * Why: gRPC C core 1.51 compares a message's length with GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH only
 * after it has buffered the whole message (lib/rpc/rpc.h), so without this a peer could make the
 * server hold up to 4 GiB per call before the refusal.
 *
 * What is read: RFC 9113 §3.4 (client connection preface), §4.1 (frame header: 24-bit length,
 * type, flags, 31-bit stream id), §6.1 (DATA, with optional padding), END_STREAM on DATA and
 * HEADERS, RST_STREAM (§6.4); gRPC's Length-Prefixed-Message (doc/PROTOCOL-HTTP2.md: 1 byte
 * compressed flag, 4 bytes big-endian length). Everything else is skipped by its length. A
 * compressed message's prefix announces its compressed length; gRPC checks the decompressed size
 * against its own limit. */
#pragma once

#include "basic/macro.h"

/* Streams that may have a partly received message at once; more is refused (-ENOBUFS). */
#define ATLS_H2_MAX_STREAMS_IN_FLIGHT 1024

typedef struct atls_h2_limit atls_h2_limit;

/* max_message: largest gRPC message allowed. client_preface: the stream starts with the client
 * connection preface (true for what a server receives). */
int atls_h2_limit_new(uint32_t max_message, bool client_preface, atls_h2_limit **ret);
void atls_h2_limit_free(atls_h2_limit *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(atls_h2_limit *, atls_h2_limit_free);

/* Feeds the next len bytes of the stream. 0: nothing over the limit so far. Otherwise (and for
 * every later call) a negative errno, with a sentence in detail:
 *   -EMSGSIZE  a message over the limit was announced (stream id and sizes in detail);
 *   -EPROTO    not HTTP/2 framing (bad preface, DATA on stream 0, padding longer than the frame);
 *   -ENOBUFS   more than ATLS_H2_MAX_STREAMS_IN_FLIGHT streams with a message in flight. */
int atls_h2_limit_feed(atls_h2_limit *h, const uint8_t *data, size_t len, char *detail, size_t detail_size);
