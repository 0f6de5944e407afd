/* SPDX-License-Identifier: Apache-2.0 */
/* GET over http://, https:// and file:// with libcurl, with a maximum body size, connect and total
 * timeouts, and no redirects to other schemes. Errors come back as text naming the URL and the
 * reason, ready for a Terraform diagnostic or a CLI message. */
#pragma once

#include "basic/macro.h"

typedef struct http_options {
        size_t max_size;         /* 0: 16 MiB */
        long connect_timeout_ms; /* 0: 10 s */
        long timeout_ms;         /* 0: 60 s */
} http_options;

/* Fetches url. On success *ret holds the body (NUL-terminated past *ret_len). On failure returns
 * a negative errno (-ENOENT for 404 or a missing file, -EFBIG beyond max_size, -ETIMEDOUT,
 * -ECONNREFUSED, -EPROTO for other statuses, -EINVAL for a bad URL) and *ret_error says why. */
int http_get(const char *url, const http_options *options, uint8_t **ret, size_t *ret_len, char **ret_error);

/* POST a JSON body (Rekor's search API). Same conventions as http_get. */
int http_post_json(const char *url, const char *json, const http_options *options, uint8_t **ret, size_t *ret_len,
                   char **ret_error);
