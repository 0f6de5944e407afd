/* SPDX-License-Identifier: Apache-2.0 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>

#include "http/http.h"

#define HTTP_DEFAULT_MAX (16u * 1024 * 1024)

struct body {
        uint8_t *data;
        size_t len, cap, max;
        bool too_large;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct body *b = userdata;
        size_t n = size * nmemb;
        if (n > b->max || b->len > b->max - n) {
                b->too_large = true;
                return 0; /* aborts the transfer */
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                uint8_t *d = realloc(b->data, cap);
                if (!d)
                        return 0;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int request(const char *url, const char *post_json, const http_options *o, uint8_t **ret, size_t *ret_len,
                   char **ret_error) {
        char errbuf[CURL_ERROR_SIZE] = "";
        struct body b = { .max = o && o->max_size ? o->max_size : HTTP_DEFAULT_MAX };
        struct curl_slist *headers = NULL;
        int r = 0;

        if (!url || !(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0 ||
                      strncmp(url, "file://", 7) == 0)) {
                if (ret_error && asprintf(ret_error, "%s: unsupported URL (use http://, https:// or file://)",
                                          url ? url : "(null)") < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        pthread_once(&curl_once, curl_init_once);
        CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o && o->connect_timeout_ms ? o->connect_timeout_ms : 10000L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o && o->timeout_ms ? o->timeout_ms : 60000L);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) b.max);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "constellation-c");
        if (post_json) {
                headers = curl_slist_append(headers, "Content-Type: application/json");
                headers = curl_slist_append(headers, "Accept: application/json");
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_json);
        }

        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        const char *why = NULL;
        char whybuf[128];
        if (b.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
                snprintf(whybuf, sizeof(whybuf), "response larger than the limit of %zu bytes", b.max);
                why = whybuf;
                r = -EFBIG;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
                why = "timed out";
                r = -ETIMEDOUT;
        } else if (cc == CURLE_COULDNT_CONNECT) {
                why = "cannot connect";
                r = -ECONNREFUSED;
        } else if (cc == CURLE_FILE_COULDNT_READ_FILE) {
                why = "file not found or not readable";
                r = -ENOENT;
        } else if (cc != CURLE_OK) {
                why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
                r = -EIO;
        } else if (strncmp(url, "file://", 7) != 0 && status != 200) {
                snprintf(whybuf, sizeof(whybuf), "HTTP status %ld%s", status, status == 404 ? " (not found)" : "");
                why = whybuf;
                r = status == 404 ? -ENOENT : -EPROTO;
        }
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);

        if (r < 0) {
                free(b.data);
                if (ret_error && asprintf(ret_error, "%s: %s", url, why) < 0)
                        *ret_error = NULL;
                return r;
        }
        if (!b.data && !(b.data = malloc(1)))
                return -ENOMEM;
        b.data[b.len] = 0;
        *ret = b.data;
        *ret_len = b.len;
        return 0;
}

int http_get(const char *url, const http_options *o, uint8_t **ret, size_t *ret_len, char **ret_error) {
        return request(url, NULL, o, ret, ret_len, ret_error);
}

int http_post_json(const char *url, const char *json, const http_options *o, uint8_t **ret, size_t *ret_len,
                   char **ret_error) {
        return request(url, json, o, ret, ret_len, ret_error);
}
