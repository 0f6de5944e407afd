/* SPDX-License-Identifier: Apache-2.0 */
#include "atls/h2-limit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" /* RFC 9113 §3.4 */
#define H2_PREFACE_LEN (sizeof(H2_PREFACE) - 1)
#define H2_FRAME_HEADER_LEN 9
#define H2_DATA 0x0
#define H2_HEADERS 0x1
#define H2_RST_STREAM 0x3
#define H2_FLAG_END_STREAM 0x1
#define H2_FLAG_PADDED 0x8
#define GRPC_PREFIX_LEN 5

/* A stream with a message in flight: prefix bytes seen so far, or body bytes still to come. */
struct stream {
        uint32_t id;
        uint8_t prefix[GRPC_PREFIX_LEN];
        uint8_t prefix_len;
        uint32_t body_left;
};

struct atls_h2_limit {
        uint32_t max_message;
        size_t preface_left;

        uint8_t header[H2_FRAME_HEADER_LEN];
        size_t header_len;
        bool in_frame;
        uint32_t payload_left;
        uint8_t type, flags;
        uint32_t stream_id;
        bool need_pad_length; /* DATA with PADDED: the pad length byte is next */
        uint32_t data_left;   /* DATA: message bytes left in this frame (padding follows) */

        struct stream *streams;
        size_t n_streams, allocated;

        int error;
        char error_detail[160];
};

int atls_h2_limit_new(uint32_t max_message, bool client_preface, atls_h2_limit **ret) {
        atls_h2_limit *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->max_message = max_message;
        h->preface_left = client_preface ? H2_PREFACE_LEN : 0;
        *ret = h;
        return 0;
}

void atls_h2_limit_free(atls_h2_limit *h) {
        if (!h)
                return;
        free(h->streams);
        free(h);
}

_printf_(3, 4) static int fail(atls_h2_limit *h, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(h->error_detail, sizeof(h->error_detail), fmt, ap);
        va_end(ap);
        h->error = error;
        return error;
}

static struct stream *stream_find(atls_h2_limit *h, uint32_t id) {
        for (size_t i = 0; i < h->n_streams; i++)
                if (h->streams[i].id == id)
                        return &h->streams[i];
        return NULL;
}

static void stream_drop(atls_h2_limit *h, uint32_t id) {
        struct stream *s = stream_find(h, id);
        if (s)
                *s = h->streams[--h->n_streams];
}

static int stream_add(atls_h2_limit *h, uint32_t id, struct stream **ret) {
        if (h->n_streams >= ATLS_H2_MAX_STREAMS_IN_FLIGHT)
                return fail(h, -ENOBUFS, "more than %d streams with a gRPC message in flight", ATLS_H2_MAX_STREAMS_IN_FLIGHT);
        if (h->n_streams == h->allocated) {
                size_t n = h->allocated ? h->allocated * 2 : 4;
                struct stream *p = realloc(h->streams, n * sizeof(*p));
                if (!p)
                        return fail(h, -ENOMEM, "out of memory");
                h->streams = p;
                h->allocated = n;
        }
        h->streams[h->n_streams] = (struct stream){ .id = id };
        *ret = &h->streams[h->n_streams++];
        return 0;
}

/* Message bytes of DATA frames on one stream: prefixes are read, bodies skipped. */
static int grpc_bytes(atls_h2_limit *h, uint32_t id, const uint8_t *p, size_t n) {
        struct stream *s = stream_find(h, id);
        while (n > 0) {
                if (s && s->body_left > 0) {
                        size_t k = MIN(n, (size_t) s->body_left);
                        s->body_left -= (uint32_t) k;
                        p += k;
                        n -= k;
                        if (s->body_left == 0) {
                                stream_drop(h, id);
                                s = NULL;
                        }
                        continue;
                }
                if (!s) {
                        int r = stream_add(h, id, &s);
                        if (r < 0)
                                return r;
                }
                s->prefix[s->prefix_len++] = *p++;
                n--;
                if (s->prefix_len < GRPC_PREFIX_LEN)
                        continue;
                uint32_t len = (uint32_t) s->prefix[1] << 24 | (uint32_t) s->prefix[2] << 16 |
                               (uint32_t) s->prefix[3] << 8 | s->prefix[4];
                if (len > h->max_message)
                        return fail(h, -EMSGSIZE,
                                    "stream %" PRIu32 " announces a %" PRIu32 "-byte gRPC message; the limit is %" PRIu32,
                                    id, len, h->max_message);
                s->prefix_len = 0;
                s->body_left = len;
                if (len == 0) {
                        stream_drop(h, id);
                        s = NULL;
                }
        }
        return 0;
}

static void frame_done(atls_h2_limit *h) {
        if (((h->type == H2_DATA || h->type == H2_HEADERS) && (h->flags & H2_FLAG_END_STREAM)) ||
            h->type == H2_RST_STREAM)
                stream_drop(h, h->stream_id);
        h->in_frame = false;
        h->header_len = 0;
}

static int frame_start(atls_h2_limit *h) {
        const uint8_t *f = h->header;
        h->payload_left = (uint32_t) f[0] << 16 | (uint32_t) f[1] << 8 | f[2];
        h->type = f[3];
        h->flags = f[4];
        h->stream_id = ((uint32_t) f[5] << 24 | (uint32_t) f[6] << 16 | (uint32_t) f[7] << 8 | f[8]) & 0x7fffffffu;
        h->in_frame = true;
        h->need_pad_length = false;
        h->data_left = 0;
        if (h->type == H2_DATA) {
                if (h->stream_id == 0)
                        return fail(h, -EPROTO, "HTTP/2 DATA frame on stream 0");
                if (h->flags & H2_FLAG_PADDED) {
                        if (h->payload_left == 0)
                                return fail(h, -EPROTO, "HTTP/2 padded DATA frame without a pad length");
                        h->need_pad_length = true;
                } else
                        h->data_left = h->payload_left;
        }
        if (h->payload_left == 0)
                frame_done(h);
        return 0;
}

int atls_h2_limit_feed(atls_h2_limit *h, const uint8_t *data, size_t len, char *detail, size_t detail_size) {
        int r = 0;
        while (h->error == 0 && len > 0) {
                if (h->preface_left > 0) {
                        if (*data != (uint8_t) H2_PREFACE[H2_PREFACE_LEN - h->preface_left]) {
                                r = fail(h, -EPROTO, "not the HTTP/2 client connection preface");
                                break;
                        }
                        h->preface_left--;
                        data++;
                        len--;
                        continue;
                }
                if (!h->in_frame) {
                        size_t k = MIN(len, H2_FRAME_HEADER_LEN - h->header_len);
                        memcpy(h->header + h->header_len, data, k);
                        h->header_len += k;
                        data += k;
                        len -= k;
                        if (h->header_len == H2_FRAME_HEADER_LEN && (r = frame_start(h)) < 0)
                                break;
                        continue;
                }
                size_t k;
                if (h->type == H2_DATA && h->need_pad_length) {
                        uint8_t pad = *data;
                        k = 1;
                        h->need_pad_length = false;
                        /* RFC 9113 §6.1: padding at least as long as the rest is an error. */
                        if (pad >= h->payload_left) {
                                r = fail(h, -EPROTO, "HTTP/2 DATA padding (%u) does not fit its frame", pad);
                                break;
                        }
                        h->data_left = h->payload_left - 1 - pad;
                } else if (h->type == H2_DATA && h->data_left > 0) {
                        k = MIN(len, (size_t) h->data_left);
                        if ((r = grpc_bytes(h, h->stream_id, data, k)) < 0)
                                break;
                        h->data_left -= (uint32_t) k;
                } else
                        k = MIN(len, (size_t) h->payload_left); /* other frames, padding */
                h->payload_left -= (uint32_t) k;
                data += k;
                len -= k;
                if (h->payload_left == 0)
                        frame_done(h);
        }
        if (h->error != 0) {
                if (detail && detail_size > 0)
                        snprintf(detail, detail_size, "%s", h->error_detail);
                return h->error;
        }
        return r;
}
