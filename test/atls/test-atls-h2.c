/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/2 message size limit in front of gRPC (lib/atls/h2-limit.h) on hand-built frames
 * (RFC 9113 §4.1, §6.1; gRPC Length-Prefixed-Message): a message over the limit is refused at its
 * 5-byte prefix whatever way the bytes are split, padding and frame boundaries are followed, and
 * malformed framing is refused with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "atls/h2-limit.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

struct buf {
        uint8_t b[1 << 16];
        size_t n;
};

static void frame(struct buf *o, uint8_t type, uint8_t flags, uint32_t stream, const void *payload, size_t len) {
        assert_true(o->n + 9 + len <= sizeof(o->b));
        uint8_t *p = o->b + o->n;
        p[0] = (uint8_t) (len >> 16), p[1] = (uint8_t) (len >> 8), p[2] = (uint8_t) len;
        p[3] = type, p[4] = flags;
        p[5] = (uint8_t) (stream >> 24), p[6] = (uint8_t) (stream >> 16), p[7] = (uint8_t) (stream >> 8), p[8] = (uint8_t) stream;
        if (len)
                memcpy(p + 9, payload, len);
        o->n += 9 + len;
}

static void raw(struct buf *o, const void *p, size_t len) {
        memcpy(o->b + o->n, p, len);
        o->n += len;
}

/* A gRPC message prefix announcing len bytes. */
static void prefix(uint8_t out[5], uint32_t len) {
        out[0] = 0;
        out[1] = (uint8_t) (len >> 24), out[2] = (uint8_t) (len >> 16), out[3] = (uint8_t) (len >> 8), out[4] = (uint8_t) len;
}

/* Client start: preface, SETTINGS, HEADERS on stream id. */
static void start(struct buf *o, uint32_t id) {
        raw(o, PREFACE, strlen(PREFACE));
        frame(o, 0x4, 0, 0, NULL, 0);
        frame(o, 0x1, 0x4, id, "\x83\x86", 2); /* END_HEADERS; a few HPACK bytes, not parsed */
}

/* Feeds the whole buffer at once and then byte by byte; both must give the same verdict. */
static int feed_both_ways(const struct buf *o, uint32_t max, bool preface, char *detail, size_t dsize) {
        _cleanup_(atls_h2_limit_freep) atls_h2_limit *a = NULL, *b = NULL;
        assert_int_equal(atls_h2_limit_new(max, preface, &a), 0);
        assert_int_equal(atls_h2_limit_new(max, preface, &b), 0);
        int ra = atls_h2_limit_feed(a, o->b, o->n, detail, dsize);
        int rb = 0;
        char d2[200] = "";
        for (size_t i = 0; i < o->n && rb == 0; i++)
                rb = atls_h2_limit_feed(b, o->b + i, 1, d2, sizeof(d2));
        assert_int_equal(ra, rb);
        if (ra < 0)
                assert_string_equal(detail, d2);
        return ra;
}

static void test_over_limit_refused_at_prefix(void **state) {
        struct buf o = { .n = 0 };
        start(&o, 1);
        uint8_t p[5];
        prefix(p, 1025);
        /* Only the prefix and 3 body bytes: the verdict must not wait for the body. */
        uint8_t data[8];
        memcpy(data, p, 5);
        memcpy(data + 5, "abc", 3);
        frame(&o, 0x0, 0, 1, data, sizeof(data));
        char d[200] = "";
        assert_int_equal(feed_both_ways(&o, 1024, true, d, sizeof(d)), -EMSGSIZE);
        assert_string_equal(d, "stream 1 announces a 1025-byte gRPC message; the limit is 1024");

        /* 4 GiB - 1 announced. */
        o.n = 0;
        start(&o, 3);
        prefix(p, UINT32_MAX);
        frame(&o, 0x0, 0, 3, p, 5);
        assert_int_equal(feed_both_ways(&o, 4 << 20, true, d, sizeof(d)), -EMSGSIZE);
        assert_string_equal(d, "stream 3 announces a 4294967295-byte gRPC message; the limit is 4194304");
}

static void test_within_limit_passes(void **state) {
        struct buf o = { .n = 0 };
        start(&o, 1);
        /* Exactly the limit, split over three DATA frames with the prefix itself split. */
        static uint8_t msg[5 + 1024];
        prefix(msg, 1024);
        memset(msg + 5, 'x', 1024);
        frame(&o, 0x0, 0, 1, msg, 3);
        frame(&o, 0x0, 0, 1, msg + 3, 500);
        frame(&o, 0x0, 0x1, 1, msg + 503, sizeof(msg) - 503); /* END_STREAM */
        /* Two messages in one frame on stream 3, then an empty message, END_STREAM. */
        frame(&o, 0x1, 0x4, 3, "\x83", 1);
        uint8_t two[5 + 2 + 5 + 1 + 5];
        prefix(two, 2);
        memcpy(two + 5, "hi", 2);
        prefix(two + 7, 1);
        two[12] = '!';
        prefix(two + 13, 0);
        frame(&o, 0x0, 0x1, 3, two, sizeof(two));
        char d[200] = "";
        assert_int_equal(feed_both_ways(&o, 1024, true, d, sizeof(d)), 0);
}

/* Padding (RFC 9113 §6.1) is not message data: a pad that looks like a huge prefix is skipped,
 * and the message after it is still read. */
static void test_padding(void **state) {
        struct buf o = { .n = 0 };
        start(&o, 1);
        uint8_t padded[1 + 5 + 2 + 10];
        padded[0] = 10; /* pad length */
        prefix(padded + 1, 2);
        memcpy(padded + 6, "ok", 2);
        memset(padded + 8, 0xff, 10); /* padding bytes, would announce ~4 GiB if read as a prefix */
        frame(&o, 0x0, 0x8, 1, padded, sizeof(padded));
        char d[200] = "";
        assert_int_equal(feed_both_ways(&o, 1024, true, d, sizeof(d)), 0);

        /* After the padded frame, a message over the limit is still caught. */
        uint8_t p[5];
        prefix(p, 2048);
        frame(&o, 0x0, 0, 1, p, 5);
        assert_int_equal(feed_both_ways(&o, 1024, true, d, sizeof(d)), -EMSGSIZE);
        assert_string_equal(d, "stream 1 announces a 2048-byte gRPC message; the limit is 1024");

        /* Padding as long as the frame: a protocol error. */
        o.n = 0;
        start(&o, 1);
        uint8_t bad[4] = { 4, 0, 0, 0 }; /* 4 >= the payload length 4 */
        frame(&o, 0x0, 0x8, 1, bad, sizeof(bad));
        assert_int_equal(feed_both_ways(&o, 1024, true, d, sizeof(d)), -EPROTO);
        assert_string_equal(d, "HTTP/2 DATA padding (4) does not fit its frame");
}

/* Other frames are skipped by their length, whatever they contain; the server side (responses,
 * no preface) works the same. */
static void test_other_frames_and_client_side(void **state) {
        struct buf o = { .n = 0 };
        uint8_t junk[300];
        memset(junk, 0xff, sizeof(junk));
        frame(&o, 0x4, 0, 0, junk, 12);          /* SETTINGS */
        frame(&o, 0x1, 0x4, 1, junk, sizeof(junk)); /* HEADERS */
        frame(&o, 0x8, 0, 0, junk, 4);           /* WINDOW_UPDATE */
        frame(&o, 0x6, 0, 0, junk, 8);           /* PING */
        uint8_t p[5];
        prefix(p, 100);
        frame(&o, 0x0, 0, 1, p, 5);
        frame(&o, 0x3, 0, 1, junk, 4); /* RST_STREAM ends the message in flight */
        char d[200] = "";
        assert_int_equal(feed_both_ways(&o, 100, false, d, sizeof(d)), 0);
        prefix(p, 101);
        frame(&o, 0x0, 0, 5, p, 5);
        assert_int_equal(feed_both_ways(&o, 100, false, d, sizeof(d)), -EMSGSIZE);
        assert_string_equal(d, "stream 5 announces a 101-byte gRPC message; the limit is 100");
}

static void test_malformed(void **state) {
        struct buf o = { .n = 0 };
        raw(&o, "GET / HTTP/1.1\r\n\r\n", 18);
        char d[200] = "";
        assert_int_equal(feed_both_ways(&o, 100, true, d, sizeof(d)), -EPROTO);
        assert_string_equal(d, "not the HTTP/2 client connection preface");

        o.n = 0;
        start(&o, 1);
        frame(&o, 0x0, 0, 0, "x", 1);
        assert_int_equal(feed_both_ways(&o, 100, true, d, sizeof(d)), -EPROTO);
        assert_string_equal(d, "HTTP/2 DATA frame on stream 0");

        o.n = 0;
        start(&o, 1);
        frame(&o, 0x0, 0x8, 1, NULL, 0);
        assert_int_equal(feed_both_ways(&o, 100, true, d, sizeof(d)), -EPROTO);
        assert_string_equal(d, "HTTP/2 padded DATA frame without a pad length");

        /* A refusal sticks: later bytes get the same answer. */
        _cleanup_(atls_h2_limit_freep) atls_h2_limit *h = NULL;
        assert_int_equal(atls_h2_limit_new(100, true, &h), 0);
        assert_int_equal(atls_h2_limit_feed(h, (const uint8_t *) "XRI", 3, NULL, 0), -EPROTO);
        assert_int_equal(atls_h2_limit_feed(h, (const uint8_t *) PREFACE, strlen(PREFACE), d, sizeof(d)), -EPROTO);
}

/* Streams with a partly received message are bounded. */
static void test_stream_bound(void **state) {
        _cleanup_(atls_h2_limit_freep) atls_h2_limit *h = NULL;
        assert_int_equal(atls_h2_limit_new(100, false, &h), 0);
        struct buf o = { .n = 0 };
        char d[200] = "";
        for (uint32_t i = 0; i < ATLS_H2_MAX_STREAMS_IN_FLIGHT; i++) {
                o.n = 0;
                frame(&o, 0x0, 0, 2 * i + 1, "\0\0", 2); /* a prefix begun, not finished */
                assert_int_equal(atls_h2_limit_feed(h, o.b, o.n, d, sizeof(d)), 0);
        }
        o.n = 0;
        frame(&o, 0x0, 0, 2 * ATLS_H2_MAX_STREAMS_IN_FLIGHT + 1, "\0", 1);
        assert_int_equal(atls_h2_limit_feed(h, o.b, o.n, d, sizeof(d)), -ENOBUFS);
        assert_string_equal(d, "more than 1024 streams with a gRPC message in flight");

        /* Finished messages free their slot. */
        _cleanup_(atls_h2_limit_freep) atls_h2_limit *g = NULL;
        assert_int_equal(atls_h2_limit_new(100, false, &g), 0);
        uint8_t msg[6];
        prefix(msg, 1);
        msg[5] = 'z';
        for (uint32_t i = 0; i < 3 * ATLS_H2_MAX_STREAMS_IN_FLIGHT; i++) {
                o.n = 0;
                frame(&o, 0x0, 0, 2 * i + 1, msg, sizeof(msg));
                assert_int_equal(atls_h2_limit_feed(g, o.b, o.n, d, sizeof(d)), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_over_limit_refused_at_prefix),
                cmocka_unit_test(test_within_limit_passes),
                cmocka_unit_test(test_padding),
                cmocka_unit_test(test_other_frames_and_client_side),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_stream_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
