/* SPDX-License-Identifier: Apache-2.0 */
/* GET over http://, https:// and file://, POST of JSON over http(s)://, with a maximum body size,
 * connect and total timeouts. A redirect never changes the scheme (https:// only to https://,
 * http:// only to http://). file:// is read directly; libcurl is loaded (dlopen) on the first
 * http(s) request only. Errors come back as text naming the URL and the reason, ready for a
 * Terraform diagnostic or a CLI message. */
#pragma once

#include "basic/macro.h"

typedef struct http_options {
        size_t max_size;         /* 0: 16 MiB */
        long connect_timeout_ms; /* 0: 10 s */
        long timeout_ms;         /* 0: 60 s */
        const char *ca_file;     /* PEM bundle to trust instead of the system's; NULL: system */
} http_options;

/* Fetches url. On success *ret holds the body (NUL-terminated past *ret_len). On failure returns
 * a negative errno (-ENOENT for 404 or a missing file, -EFBIG beyond max_size, -ETIMEDOUT,
 * -ECONNREFUSED, -EPROTO for other statuses and for a redirect to another scheme, -ELOOP for too
 * many redirects, -EINVAL for a bad URL, -ENOPKG if libcurl cannot be loaded) and *ret_error says
 * why. */
int http_get(const char *url, const http_options *options, uint8_t **ret, size_t *ret_len, char **ret_error);

/* POST a JSON body (Rekor's search API) over http(s)://. Same conventions as http_get. */
int http_post_json(const char *url, const char *json, const http_options *options, uint8_t **ret, size_t *ret_len,
                   char **ret_error);

/* True once libcurl has been loaded (for tests: file:// never loads it). */
bool http_libcurl_loaded(void);
