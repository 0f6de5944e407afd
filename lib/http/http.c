/* SPDX-License-Identifier: Apache-2.0 */
/* file:// is read here, without libcurl. http:// and https:// go through libcurl, which is loaded
 * with dlopen() on first use: libcurl and the ~30 libraries it pulls in (GnuTLS, Kerberos, LDAP,
 * ...) cost about 5 ms and 4 MB at every start of a program that links them, and the provider,
 * started three times per `terraform plan`, needs them only for data sources read over the
 * network (README, Benchmarks). */
#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "http/http.h"

#define HTTP_DEFAULT_MAX (16u * 1024 * 1024)
#define HTTP_LIBCURL "libcurl.so.4"

/* The libcurl entry points we use, resolved once. */
static struct {
        CURLcode (*global_init)(long flags);
        CURL *(*easy_init)(void);
        CURLcode (*easy_setopt)(CURL *c, CURLoption option, ...);
        CURLcode (*easy_perform)(CURL *c);
        CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
        void (*easy_cleanup)(CURL *c);
        const char *(*easy_strerror)(CURLcode code);
        struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
        void (*slist_free_all)(struct curl_slist *list);
        bool loaded;
        char error[256];
} curl;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_load_once(void) {
        void *h = dlopen(HTTP_LIBCURL, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                const char *e = dlerror();
                snprintf(curl.error, sizeof(curl.error), "cannot load %s (install libcurl4): %s", HTTP_LIBCURL,
                         e ? e : "unknown error");
                return;
        }
        static const struct {
                const char *name;
                size_t offset;
        } syms[] = {
#define SYM(field, name) { name, offsetof(typeof(curl), field) }
                SYM(global_init, "curl_global_init"),     SYM(easy_init, "curl_easy_init"),
                SYM(easy_setopt, "curl_easy_setopt"),     SYM(easy_perform, "curl_easy_perform"),
                SYM(easy_getinfo, "curl_easy_getinfo"),   SYM(easy_cleanup, "curl_easy_cleanup"),
                SYM(easy_strerror, "curl_easy_strerror"), SYM(slist_append, "curl_slist_append"),
                SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
        };
        for (size_t i = 0; i < ELEMENTSOF(syms); i++) {
                void *f = dlsym(h, syms[i].name);
                if (!f) {
                        snprintf(curl.error, sizeof(curl.error), "%s lacks %s", HTTP_LIBCURL, syms[i].name);
                        return; /* the handle stays open: dlclose of libcurl is not worth the risk */
                }
                memcpy((uint8_t *) &curl + syms[i].offset, &f, sizeof(f));
        }
        if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                snprintf(curl.error, sizeof(curl.error), "curl_global_init failed");
                return;
        }
        curl.loaded = true;
}

bool http_libcurl_loaded(void) {
        return curl.loaded;
}

static int fail(char **ret_error, int r, const char *url, const char *fmt, ...) _printf_(4, 5);
static int fail(char **ret_error, int r, const char *url, const char *fmt, ...) {
        if (ret_error) {
                char why[512];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, sizeof(why), fmt, ap);
                va_end(ap);
                if (asprintf(ret_error, "%s: %s", url ? url : "(null)", why) < 0)
                        *ret_error = NULL;
        }
        return r;
}

/* --- file:// (RFC 8089): an absolute local path, host empty or "localhost", %XX decoded --- */

static int file_url_path(const char *url, char **ret) {
        const char *p = url + strlen("file://");
        if (strncmp(p, "localhost/", 10) == 0)
                p += strlen("localhost");
        if (*p != '/')
                return -EINVAL;
        size_t n = strlen(p);
        char *out = malloc(n + 1), *o = out;
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '%') {
                        int hi, lo;
                        if (n - i < 3 || (hi = hex_digit_value(p[i + 1])) < 0 || (lo = hex_digit_value(p[i + 2])) < 0 ||
                            (hi == 0 && lo == 0)) {
                                free(out);
                                return -EINVAL;
                        }
                        *o++ = (char) (hi << 4 | lo);
                        i += 2;
                } else if (p[i] == '?' || p[i] == '#') {
                        break; /* no query or fragment in a file name */
                } else
                        *o++ = p[i];
        }
        *o = 0;
        *ret = out;
        return 0;
}

static int file_get(const char *url, size_t max, uint8_t **ret, size_t *ret_len, char **ret_error) {
        _cleanup_free_ char *path = NULL;
        int r = file_url_path(url, &path);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(ret_error, -EINVAL, url, "not a local absolute file URL (use file:///path)");
        /* O_NONBLOCK: a FIFO must not hang us; it is refused below. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail(ret_error, errno == ENOENT || errno == EACCES || errno == ENOTDIR ? -ENOENT : -errno, url,
                            "file not found or not readable");
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail(ret_error, -errno, url, "cannot stat: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return fail(ret_error, -EISDIR, url, "not a regular file");
        if ((uint64_t) st.st_size > max)
                return fail(ret_error, -EFBIG, url, "response larger than the limit of %zu bytes", max);
        r = read_full_fd(fd, max, ret, ret_len);
        if (r == -EFBIG)
                return fail(ret_error, r, url, "response larger than the limit of %zu bytes", max);
        if (r < 0)
                return fail(ret_error, r, url, "cannot read: %s", strerror(-r));
        return 0;
}

/* --- http:// and https:// through libcurl --- */

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

static int request(const char *url, const char *post_json, const http_options *o, uint8_t **ret, size_t *ret_len,
                   char **ret_error) {
        size_t max = o && o->max_size ? o->max_size : HTTP_DEFAULT_MAX;
        bool https = url && strncmp(url, "https://", 8) == 0;
        if (url && !post_json && strncmp(url, "file://", 7) == 0)
                return file_get(url, max, ret, ret_len, ret_error);
        if (!url || !(https || strncmp(url, "http://", 7) == 0))
                return fail(ret_error, -EINVAL, url,
                            post_json ? "unsupported URL (use http:// or https://)"
                                      : "unsupported URL (use http://, https:// or file://)");

        pthread_once(&curl_once, curl_load_once);
        if (!curl.loaded)
                return fail(ret_error, -ENOPKG, url, "%s", curl.error);

        char errbuf[CURL_ERROR_SIZE] = "";
        struct body b = { .max = max };
        struct curl_slist *headers = NULL;
        int r = 0;
        CURL *c = curl.easy_init();
        if (!c)
                return -ENOMEM;
        /* A redirect keeps the scheme: https never goes to http (info.json and the attestation
         * config are not all signed, so a downgrade would let anyone on the path swap them), and
         * http never goes to https or elsewhere either. */
        const char *scheme = https ? "https" : "http";
        curl.easy_setopt(c, CURLOPT_URL, url);
        curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, scheme);
        curl.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, scheme);
        curl.easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o && o->connect_timeout_ms ? o->connect_timeout_ms : 10000L);
        curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, o && o->timeout_ms ? o->timeout_ms : 60000L);
        curl.easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) b.max);
        curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl.easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl.easy_setopt(c, CURLOPT_USERAGENT, "constellation-c");
        if (o && o->ca_file)
                curl.easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
        if (post_json) {
                headers = curl.slist_append(headers, "Content-Type: application/json");
                headers = curl.slist_append(headers, "Accept: application/json");
                curl.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
                curl.easy_setopt(c, CURLOPT_POSTFIELDS, post_json);
        }

        CURLcode cc = curl.easy_perform(c);
        long status = 0;
        char *redirect_url = NULL;
        curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        /* After a refused redirect the effective URL is the one libcurl would not follow. */
        curl.easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &redirect_url);
        char why[CURL_ERROR_SIZE + 256];
        if (b.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
                snprintf(why, sizeof(why), "response larger than the limit of %zu bytes", b.max);
                r = -EFBIG;
        } else if (cc == CURLE_UNSUPPORTED_PROTOCOL && status >= 300 && status < 400) {
                snprintf(why, sizeof(why), "redirect to %.200s refused: a %s:// URL may only redirect to %s://",
                         redirect_url ? redirect_url : "another scheme", scheme, scheme);
                r = -EPROTO;
        } else if (cc == CURLE_TOO_MANY_REDIRECTS) {
                snprintf(why, sizeof(why), "more than 5 redirects");
                r = -ELOOP;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
                snprintf(why, sizeof(why), "timed out");
                r = -ETIMEDOUT;
        } else if (cc == CURLE_COULDNT_CONNECT) {
                snprintf(why, sizeof(why), "cannot connect");
                r = -ECONNREFUSED;
        } else if (cc != CURLE_OK) {
                snprintf(why, sizeof(why), "%s", errbuf[0] ? errbuf : curl.easy_strerror(cc));
                r = -EIO;
        } else if (status != 200) {
                snprintf(why, sizeof(why), "HTTP status %ld%s", status, status == 404 ? " (not found)" : "");
                r = status == 404 ? -ENOENT : -EPROTO;
        }
        curl.slist_free_all(headers);
        curl.easy_cleanup(c);

        if (r < 0) {
                free(b.data);
                return fail(ret_error, r, url, "%s", why);
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
