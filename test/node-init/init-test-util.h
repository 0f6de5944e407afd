/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the node-init tests: shell commands with captured output, a private temp directory,
 * an independent HKDF-SHA256 (python3 hmac, not our lib/crypto), and a loopback HTTP server on a
 * port from bind(0) whose answers the test controls (content, a held request, a huge body). */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "basic/encoding.h"
#include "basic/macro.h"

static inline void it_die(const char *what) {
        fprintf(stderr, "node-init test: %s\n", what);
        abort();
}

/* Runs a shell command; returns its exit status (-1 if it could not run). stdout into *out. */
static inline int it_run(char **out, const char *fmt, ...) _printf_(2, 3);
static inline int it_run(char **out, const char *fmt, ...) {
        char *cmd;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&cmd, fmt, ap) < 0)
                it_die("vasprintf");
        va_end(ap);
        FILE *p = popen(cmd, "re");
        free(cmd);
        if (!p)
                return -1;
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
                fwrite(chunk, 1, n, m);
        fclose(m);
        int st = pclose(p);
        if (out)
                *out = buf;
        else
                free(buf);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline char *it_tmpdir(void) {
        char *d = strdup("/tmp/ct-node-init-XXXXXX");
        if (!d || !mkdtemp(d))
                it_die("mkdtemp");
        return d;
}

/* CT_KEEP_TMP=1 keeps the directory (the bootstrapper's log is in it) for a failing run. */
static inline void it_rmrf(const char *dir) {
        if (getenv("CT_KEEP_TMP"))
                return;
        if (dir && strncmp(dir, "/tmp/ct-node-init-", 18) == 0)
                (void) it_run(NULL, "rm -rf '%s'", dir);
}

static inline void it_write(const char *path, const void *data, size_t len, mode_t mode) {
        FILE *f = fopen(path, "we");
        if (!f || fwrite(data, 1, len, f) != len)
                it_die(path);
        fclose(f);
        chmod(path, mode);
}

/* HKDF-SHA256 (RFC 5869) in python3's hmac module: an implementation independent of ours.
 * Returns 0 and 32 bytes in ret. */
static inline int it_hkdf_python(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                                 const char *info, uint8_t ret[32]) {
        _cleanup_free_ char *hi = hex_encode(ikm, ikm_len), *hs = hex_encode(salt, salt_len);
        _cleanup_free_ char *out = NULL;
        int r = it_run(&out,
                       "python3 -c 'import hmac,hashlib,sys; ikm=bytes.fromhex(sys.argv[1]); salt=bytes.fromhex(sys.argv[2]);"
                       " prk=hmac.new(salt,ikm,hashlib.sha256).digest();"
                       " print(hmac.new(prk,sys.argv[3].encode()+b\"\\x01\",hashlib.sha256).hexdigest())' %s %s '%s'",
                       hi, hs, info);
        if (r != 0 || !out || strlen(out) < 64)
                return -EIO;
        out[64] = 0;
        return hex_decode_exact(out, ret, 32) < 0 ? -EIO : 0;
}

/* --- a loopback HTTP server --- */

typedef struct it_http {
        int fd;
        int port;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* what to serve: path -> body; "hold" paths wait for it_http_release() after the request
         * was seen (requests_seen counts them). */
        const char *path;
        const uint8_t *body;
        size_t body_len;
        bool hold;
        bool released;
        unsigned requests_seen;
        bool stop;
} it_http;

static inline void *it_http_main(void *arg) {
        it_http *h = arg;
        for (;;) {
                struct pollfd pfd = { h->fd, POLLIN, 0 };
                int pr = poll(&pfd, 1, 100);
                pthread_mutex_lock(&h->lock);
                bool stop = h->stop;
                pthread_mutex_unlock(&h->lock);
                if (stop)
                        return NULL;
                if (pr <= 0)
                        continue;
                int c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                char req[4096];
                size_t got = 0;
                while (got < sizeof req - 1) {
                        ssize_t n = read(c, req + got, sizeof req - 1 - got);
                        if (n <= 0)
                                break;
                        got += (size_t) n;
                        req[got] = 0;
                        if (strstr(req, "\r\n\r\n"))
                                break;
                }
                req[got] = 0;
                char path[512] = "";
                sscanf(req, "GET %511s", path);
                pthread_mutex_lock(&h->lock);
                h->requests_seen++;
                pthread_cond_broadcast(&h->cond);
                bool match = h->path && streq(path, h->path);
                if (match && h->hold)
                        while (!h->released && !h->stop)
                                pthread_cond_wait(&h->cond, &h->lock);
                const uint8_t *body = h->body;
                size_t blen = h->body_len;
                pthread_mutex_unlock(&h->lock);
                char head[256];
                /* The client may hang up mid-body (components refuses an oversize body and closes):
                 * send with MSG_NOSIGNAL so that EPIPE ends this answer instead of SIGPIPE killing
                 * the whole test process. */
                if (match) {
                        int hl = snprintf(head, sizeof head,
                                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
                        (void) !send(c, head, (size_t) hl, MSG_NOSIGNAL);
                        for (size_t off = 0; off < blen;) {
                                ssize_t n = send(c, body + off, blen - off, MSG_NOSIGNAL);
                                if (n <= 0)
                                        break;
                                off += (size_t) n;
                        }
                } else {
                        int hl = snprintf(head, sizeof head,
                                          "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        (void) !send(c, head, (size_t) hl, MSG_NOSIGNAL);
                }
                close(c);
        }
}

static inline void it_http_start(it_http *h) {
        *h = (it_http){ 0 };
        pthread_mutex_init(&h->lock, NULL);
        pthread_cond_init(&h->cond, NULL);
        h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        if (h->fd < 0 || bind(h->fd, (struct sockaddr *) &a, sizeof a) < 0 || listen(h->fd, 16) < 0 ||
            getsockname(h->fd, (struct sockaddr *) &a, &al) < 0)
                it_die("http server");
        h->port = ntohs(a.sin_port);
        pthread_create(&h->thread, NULL, it_http_main, h);
}

static inline void it_http_serve(it_http *h, const char *path, const uint8_t *body, size_t len, bool hold) {
        pthread_mutex_lock(&h->lock);
        h->path = path;
        h->body = body;
        h->body_len = len;
        h->hold = hold;
        h->released = false;
        h->requests_seen = 0;
        pthread_mutex_unlock(&h->lock);
}

/* Waits (bounded) until a request arrived; false on timeout. */
static inline bool it_http_wait_request(it_http *h, int timeout_s) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_s;
        pthread_mutex_lock(&h->lock);
        int r = 0;
        while (h->requests_seen == 0 && r == 0)
                r = pthread_cond_timedwait(&h->cond, &h->lock, &until);
        bool ok = h->requests_seen > 0;
        pthread_mutex_unlock(&h->lock);
        return ok;
}

static inline void it_http_release(it_http *h) {
        pthread_mutex_lock(&h->lock);
        h->released = true;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

static inline void it_http_stop(it_http *h) {
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
        close(h->fd);
}

/* A loopback port nobody listens on: bound and never listening, and kept bound until the process
 * exits (the socket is not closed), so connects are refused and no other process can take the port
 * and answer, as it could if the socket were closed right away. */
static inline int it_dead_port(void) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *) &a, &al) < 0)
                it_die("dead port");
        return ntohs(a.sin_port);
}

/* Number of entries in a directory (excluding . and ..), -1 if it does not exist. */
static inline int it_dir_entries(const char *dir) {
        _cleanup_free_ char *out = NULL;
        if (it_run(&out, "test -d '%s' && ls -A '%s' | wc -l", dir, dir) != 0)
                return -1;
        return atoi(out);
}
