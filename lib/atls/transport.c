/* SPDX-License-Identifier: Apache-2.0 */
/* aTLS transport for gRPC: our code terminates TLS (tls.c) and a relay thread per connection
 * copies plaintext between the TLS socket and one end of a socketpair whose other end gRPC
 * serves (rpc_server_add_fd) or dials over (rpc_channel_new_from_fd). See atls.h for why. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>

#include "atls/atls-internal.h"
#include "atls/h2-limit.h"
#include "basic/cleanup-openssl.h"
#include "basic/log.h"
#include "basic/secret.h"

#define RELAY_BUFFER_SIZE (16 * 1024) /* one TLS record */

/* The relay buffers hold the connection's plaintext (gRPC messages with secrets: init secrets,
 * keys): wiped before they are freed. */
static void relay_buffer_freep(uint8_t **p) {
        erase_and_free_sized(*p, RELAY_BUFFER_SIZE);
}

/* Writes to a socket whose peer is gone raise SIGPIPE; OpenSSL's socket BIO uses write(). The
 * signal is thread-directed, so blocking it in our own threads makes such writes fail with EPIPE
 * without touching the process's signal disposition. */
static void block_sigpipe(sigset_t *ret_old) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, ret_old);
}

static void restore_sigpipe(const sigset_t *old) {
        /* Drop a SIGPIPE that became pending while blocked, unless it was blocked before. */
        if (!sigismember(old, SIGPIPE)) {
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGPIPE);
                struct timespec zero = { 0, 0 };
                while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* The size limit in front of gRPC for what the peer sends (h2-limit.h): max_receive as in
 * rpc_server_options (-1: none). */
static int relay_limit_new(int max_receive, bool server, atls_h2_limit **ret) {
        *ret = NULL;
        if (max_receive < 0)
                return 0;
        return atls_h2_limit_new(max_receive ? (uint32_t) max_receive : RPC_DEFAULT_MAX_MESSAGE_LENGTH, server, ret);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies both ways until either side ends or stop_fd becomes readable. Non-blocking on both fds;
 * waits only in poll(), so neither direction can stall the other. What the peer sends passes
 * `limit` (if any) before gRPC sees it; a refusal ends the relay with the reason in err.
 *
 * Stop drains: what gRPC already wrote (a reply whose handler then asked the server to stop, the
 * GOAWAY) is still forwarded to the peer, with close_notify after it, for at most
 * ATLS_DRAIN_TIMEOUT_MS; nothing more is read from the peer. Without that, a reply gRPC counts as
 * sent could be dropped at shutdown and the client would see UNAVAILABLE. */
static void relay(SSL *ssl, int tls_fd, int plain_fd, int stop_fd, atls_h2_limit *limit, atls_error *err) {
        _cleanup_(relay_buffer_freep) uint8_t *down = malloc(RELAY_BUFFER_SIZE); /* TLS -> gRPC */
        _cleanup_(relay_buffer_freep) uint8_t *up = malloc(RELAY_BUFFER_SIZE);   /* gRPC -> TLS */
        size_t down_len = 0, down_off = 0, up_len = 0, up_off = 0;
        bool tls_eof = false, plain_eof = false, broken = false, stopping = false, drained = false;
        int64_t drain_deadline = 0;

        if (!down || !up)
                return;
        (void) fcntl(plain_fd, F_SETFL, fcntl(plain_fd, F_GETFL) | O_NONBLOCK);

        for (;;) {
                short tls_events, plain_events;
                bool progress;
                do {
                        tls_events = plain_events = 0;
                        progress = false;

                        if (!tls_eof && down_len == 0 && !stopping) {
                                size_t n = 0;
                                ERR_clear_error();
                                if (SSL_read_ex(ssl, down, RELAY_BUFFER_SIZE, &n) == 1) {
                                        if (limit) {
                                                char why[200];
                                                int r = atls_h2_limit_feed(limit, down, n, why, sizeof(why));
                                                if (r < 0) {
                                                        atls_error_set(err,
                                                                       r == -EPROTO ? ATLS_REASON_PROTOCOL
                                                                                    : ATLS_REASON_MESSAGE_TOO_LARGE,
                                                                       "%s; connection closed", why);
                                                        goto out;
                                                }
                                        }
                                        down_len = n;
                                        down_off = 0;
                                        progress = true;
                                } else {
                                        int e = SSL_get_error(ssl, 0);
                                        if (e == SSL_ERROR_WANT_READ)
                                                tls_events |= POLLIN;
                                        else if (e == SSL_ERROR_WANT_WRITE)
                                                tls_events |= POLLOUT;
                                        else {
                                                tls_eof = true;
                                                broken = e != SSL_ERROR_ZERO_RETURN;
                                                progress = true;
                                        }
                                }
                        }
                        if (down_off < down_len && !stopping) {
                                ssize_t w = send(plain_fd, down + down_off, down_len - down_off, MSG_NOSIGNAL);
                                if (w > 0) {
                                        down_off += (size_t) w;
                                        if (down_off == down_len)
                                                down_off = down_len = 0;
                                        progress = true;
                                } else if (w < 0 && (errno == EAGAIN || errno == EINTR))
                                        plain_events |= POLLOUT;
                                else
                                        goto out; /* gRPC closed its end */
                        }

                        if (!plain_eof && up_len == 0) {
                                ssize_t n = recv(plain_fd, up, RELAY_BUFFER_SIZE, 0);
                                if (n > 0) {
                                        up_len = (size_t) n;
                                        up_off = 0;
                                        progress = true;
                                } else if (n < 0 && errno == EINTR)
                                        progress = true;
                                else if (n < 0 && errno == EAGAIN) {
                                        if (stopping)
                                                drained = true; /* all gRPC wrote before the stop */
                                        else
                                                plain_events |= POLLIN;
                                } else {
                                        plain_eof = true;
                                        progress = true;
                                }
                        }
                        if (up_off < up_len && !broken) {
                                size_t w = 0;
                                ERR_clear_error();
                                if (SSL_write_ex(ssl, up + up_off, up_len - up_off, &w) == 1) {
                                        up_off += w;
                                        if (up_off == up_len)
                                                up_off = up_len = 0;
                                        progress = true;
                                } else {
                                        int e = SSL_get_error(ssl, 0);
                                        if (e == SSL_ERROR_WANT_READ)
                                                tls_events |= POLLIN;
                                        else if (e == SSL_ERROR_WANT_WRITE)
                                                tls_events |= POLLOUT;
                                        else
                                                goto out;
                                }
                        }
                } while (progress);

                /* The TLS peer ended and gRPC has everything it sent: done. */
                if (tls_eof && down_len == 0)
                        goto out;
                /* gRPC closed (or, stopping, has nothing more) and the peer has everything gRPC
                 * wrote: close_notify, done. */
                if ((plain_eof || drained) && up_len == 0) {
                        ERR_clear_error();
                        (void) SSL_shutdown(ssl);
                        goto out;
                }
                if (broken)
                        goto out;

                int timeout = -1;
                if (stopping) {
                        int64_t left = drain_deadline - now_ms();
                        if (left <= 0)
                                goto out;
                        timeout = (int) MIN(left, (int64_t) INT32_MAX);
                }
                struct pollfd p[3] = {
                        { .fd = tls_fd, .events = tls_events },
                        { .fd = plain_fd, .events = plain_events },
                        { .fd = stop_fd, .events = stopping ? 0 : POLLIN },
                };
                int n = poll(p, 3, timeout);
                if (n < 0 && errno != EINTR)
                        goto out;
                if (!stopping && (p[2].revents & POLLIN)) {
                        stopping = true;
                        drain_deadline = now_ms() + ATLS_DRAIN_TIMEOUT_MS;
                }
                /* POLLHUP/POLLERR without requested events: let the next read/write see it. */
        }
out:
        ERR_clear_error();
}

/* "host:port", "[v6]:port", ":port" -> getaddrinfo. */
static int resolve(const char *address, bool passive, struct addrinfo **ret, atls_error *err) {
        if (!address)
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "no address");
        const char *colon = strrchr(address, ':');
        if (!colon || !colon[1])
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "address \"%s\": expected host:port", address);
        char host[256];
        size_t hlen = (size_t) (colon - address);
        const char *h = address;
        if (hlen >= 2 && address[0] == '[' && address[hlen - 1] == ']') {
                h++;
                hlen -= 2;
        }
        if (hlen >= sizeof(host))
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "address \"%s\": host too long", address);
        memcpy(host, h, hlen);
        host[hlen] = 0;
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
        };
        int r = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, ret);
        if (r != 0)
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "address \"%s\": %s", address, gai_strerror(r));
        return 0;
}

/* --- server --- */

typedef struct conn {
        struct conn *next;
        atls_listener *listener;
        int fd;
        char peer[INET6_ADDRSTRLEN + 8];
        pthread_t thread;
        bool done;
} conn;

struct atls_listener {
        rpc_server *server;
        atls_config config;
        int listen_fd;
        int stop_fd;
        pthread_t accept_thread;
        bool accept_started;
        pthread_mutex_t lock;
        conn *conns;
        unsigned n_conns;
        unsigned accepted, established, refused;
};

static void reject(atls_listener *l, const char *peer, const atls_error *e) {
        pthread_mutex_lock(&l->lock);
        l->refused++;
        pthread_mutex_unlock(&l->lock);
        log_debug("aTLS: refused %s: %s: %s", peer, atls_reason_to_string(e->reason), e->detail);
        if (l->config.on_reject)
                l->config.on_reject(l->config.on_reject_userdata, peer, e);
}

static void *conn_thread(void *arg) {
        conn *c = arg;
        atls_listener *l = c->listener;
        sigset_t old;
        block_sigpipe(&old);

        atls_error e = { 0 };
        _cleanup_(SSL_freep) SSL *ssl = NULL;
        atls_h2_limit *limit = NULL;
        int r = atls_handshake(c->fd, true, &l->config, l->stop_fd, false, &ssl, &e);
        if (r < 0) {
                reject(l, c->peer, &e);
                goto done;
        }
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0) {
                atls_error_set(&e, ATLS_REASON_INTERNAL, "socketpair: %s", strerror(errno));
                reject(l, c->peer, &e);
                goto done;
        }
        r = rpc_server_add_fd(l->server, sp[1]);
        if (r < 0) {
                close(sp[0]);
                close(sp[1]);
                atls_error_set(&e, ATLS_REASON_INTERNAL, "gRPC server did not take the connection: %s", strerror(-r));
                reject(l, c->peer, &e);
                goto done;
        }
        pthread_mutex_lock(&l->lock);
        l->established++;
        pthread_mutex_unlock(&l->lock);
        if (relay_limit_new(rpc_server_max_receive_message_length(l->server), true, &limit) < 0) {
                close(sp[0]);
                atls_error_set(&e, ATLS_REASON_INTERNAL, "out of memory");
                reject(l, c->peer, &e);
                goto done;
        }
        relay(ssl, c->fd, sp[0], l->stop_fd, limit, &e);
        close(sp[0]);
        if (e.reason != ATLS_REASON_OK)
                reject(l, c->peer, &e);
done:
        atls_h2_limit_free(limit);
        SSL_free(TAKE_PTR(ssl));
        close(c->fd);
        c->fd = -1;
        pthread_mutex_lock(&l->lock);
        c->done = true;
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

/* Joins finished connection threads; with `all`, every one (after stop was signalled). */
static void reap(atls_listener *l, bool all) {
        for (;;) {
                conn *victim = NULL;
                pthread_mutex_lock(&l->lock);
                for (conn **p = &l->conns; *p; p = &(*p)->next)
                        if (all || (*p)->done) {
                                victim = *p;
                                *p = victim->next;
                                l->n_conns--;
                                break;
                        }
                pthread_mutex_unlock(&l->lock);
                if (!victim)
                        return;
                pthread_join(victim->thread, NULL);
                free(victim);
        }
}

static void *accept_thread(void *arg) {
        atls_listener *l = arg;
        for (;;) {
                struct pollfd p[2] = { { .fd = l->listen_fd, .events = POLLIN }, { .fd = l->stop_fd, .events = POLLIN } };
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        break;
                if (p[1].revents & POLLIN)
                        break;
                reap(l, false);
                if (!(p[0].revents & POLLIN))
                        continue;
                struct sockaddr_storage sa;
                socklen_t salen = sizeof(sa);
                int fd = accept4(l->listen_fd, (struct sockaddr *) &sa, &salen, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                        continue;
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                conn *c = calloc(1, sizeof(*c));
                char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
                (void) getnameinfo((struct sockaddr *) &sa, salen, host, sizeof(host), port, sizeof(port),
                                   NI_NUMERICHOST | NI_NUMERICSERV);
                pthread_mutex_lock(&l->lock);
                l->accepted++;
                unsigned limit = l->config.max_connections ? l->config.max_connections : ATLS_MAX_CONNECTIONS;
                bool full = l->n_conns >= limit;
                pthread_mutex_unlock(&l->lock);
                if (!c || full) {
                        atls_error e = { 0 };
                        if (full)
                                atls_error_set(&e, ATLS_REASON_TOO_MANY_CONNECTIONS,
                                               "%u connections open, the limit; closed at accept", limit);
                        else
                                atls_error_set(&e, ATLS_REASON_INTERNAL, "out of memory");
                        char peer[INET6_ADDRSTRLEN + 8];
                        snprintf(peer, sizeof(peer), "%s:%s", host, port);
                        reject(l, peer, &e);
                        free(c);
                        close(fd);
                        continue;
                }
                c->listener = l;
                c->fd = fd;
                snprintf(c->peer, sizeof(c->peer), "%s:%s", host, port);
                pthread_mutex_lock(&l->lock);
                if (pthread_create(&c->thread, NULL, conn_thread, c) != 0) {
                        pthread_mutex_unlock(&l->lock);
                        close(fd);
                        free(c);
                        continue;
                }
                c->next = l->conns;
                l->conns = c;
                l->n_conns++;
                pthread_mutex_unlock(&l->lock);
        }
        return NULL;
}

int atls_listen(rpc_server *server, const char *address, const atls_config *config, int *ret_port,
                atls_listener **ret, atls_error *err) {
        if (!server || !config || !ret || (config->n_validators > 0 && !config->validators))
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "atls_listen: invalid arguments");

        struct addrinfo *ai = NULL;
        int r = resolve(address, true, &ai, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = -1;
        int last_errno = 0;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
                if (fd < 0) {
                        last_errno = errno;
                        continue;
                }
                int one = 1;
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0)
                        break;
                last_errno = errno;
                close(TAKE_FD(fd));
        }
        freeaddrinfo(ai);
        if (fd < 0)
                return atls_error_set(err, ATLS_REASON_CONNECT, "listen on %s: %s", address, strerror(last_errno));

        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        if (getsockname(fd, (struct sockaddr *) &sa, &salen) < 0)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "getsockname: %s", strerror(errno));
        int port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *) &sa)->sin6_port)
                                            : ntohs(((struct sockaddr_in *) &sa)->sin_port);

        _cleanup_free_ atls_listener *l = calloc(1, sizeof(*l));
        if (!l)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "out of memory");
        l->server = server;
        l->config = *config;
        l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->stop_fd < 0)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "eventfd: %s", strerror(errno));
        pthread_mutex_init(&l->lock, NULL);
        l->listen_fd = TAKE_FD(fd);
        if (pthread_create(&l->accept_thread, NULL, accept_thread, l) != 0) {
                close(l->listen_fd);
                close(l->stop_fd);
                pthread_mutex_destroy(&l->lock);
                return atls_error_set(err, ATLS_REASON_INTERNAL, "pthread_create failed");
        }
        l->accept_started = true;
        if (ret_port)
                *ret_port = port;
        *ret = TAKE_PTR(l);
        return 0;
}

void atls_listener_stats(atls_listener *l, unsigned *ret_accepted, unsigned *ret_established, unsigned *ret_refused) {
        pthread_mutex_lock(&l->lock);
        if (ret_accepted)
                *ret_accepted = l->accepted;
        if (ret_established)
                *ret_established = l->established;
        if (ret_refused)
                *ret_refused = l->refused;
        pthread_mutex_unlock(&l->lock);
}

void atls_listener_free(atls_listener *l) {
        if (!l)
                return;
        uint64_t one = 1;
        (void) !write(l->stop_fd, &one, sizeof(one));
        if (l->accept_started)
                pthread_join(l->accept_thread, NULL);
        reap(l, true);
        close(l->listen_fd);
        close(l->stop_fd);
        pthread_mutex_destroy(&l->lock);
        free(l);
}

/* --- client --- */

struct atls_conn {
        rpc_channel *channel;
        atls_h2_limit *limit;
        pthread_mutex_t lock;
        atls_error error; /* why the relay ended early, under lock */
        SSL *ssl;
        int tls_fd;
        int plain_fd;
        int stop_fd;
        pthread_t thread;
        bool thread_started;
};

static void *client_relay_thread(void *arg) {
        atls_conn *c = arg;
        sigset_t old;
        block_sigpipe(&old);
        atls_error e = { 0 };
        relay(c->ssl, c->tls_fd, c->plain_fd, c->stop_fd, c->limit, &e);
        if (e.reason != ATLS_REASON_OK) {
                log_debug("aTLS: relay closed: %s: %s", atls_reason_to_string(e.reason), e.detail);
                pthread_mutex_lock(&c->lock);
                c->error = e;
                pthread_mutex_unlock(&c->lock);
        }
        /* Closing our end tells gRPC the connection is gone (its calls fail UNAVAILABLE). */
        shutdown(c->plain_fd, SHUT_RDWR);
        return NULL;
}

static int connect_with_deadline(const char *address, int64_t timeout_ms, int *ret_fd, atls_error *err) {
        struct addrinfo *ai = NULL;
        int r = resolve(address, false, &ai, err);
        if (r < 0)
                return r;
        int last_errno = ECONNREFUSED;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
                if (fd < 0) {
                        last_errno = errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                        if (errno != EINPROGRESS) {
                                last_errno = errno;
                                continue;
                        }
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        int n;
                        do
                                n = poll(&p, 1, timeout_ms > INT32_MAX ? INT32_MAX : (int) timeout_ms);
                        while (n < 0 && errno == EINTR);
                        if (n == 0) {
                                last_errno = ETIMEDOUT;
                                continue;
                        }
                        int soerr = 0;
                        socklen_t len = sizeof(soerr);
                        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
                                last_errno = n < 0 ? errno : soerr ? soerr : EIO;
                                continue;
                        }
                }
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                freeaddrinfo(ai);
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
        freeaddrinfo(ai);
        return atls_error_set(err, last_errno == ETIMEDOUT ? ATLS_REASON_TIMEOUT : ATLS_REASON_CONNECT,
                              "connect to %s: %s", address, strerror(last_errno));
}

int atls_dial(const char *address, const atls_config *config, const rpc_channel_options *options, atls_conn **ret,
              atls_error *err) {
        if (!config || !ret)
                return atls_error_set(err, ATLS_REASON_INVALID_ARGUMENT, "atls_dial: invalid arguments");
        int64_t timeout = config->handshake_timeout_ms > 0 ? config->handshake_timeout_ms : 30000;
        _cleanup_close_ int fd = -1;
        int r = connect_with_deadline(address, timeout, &fd, err);
        if (r < 0)
                return r;

        sigset_t old;
        block_sigpipe(&old);
        _cleanup_(SSL_freep) SSL *ssl = NULL;
        r = atls_handshake(fd, false, config, -1, true, &ssl, err);
        restore_sigpipe(&old);
        if (r < 0)
                return r;

        int sp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
                return atls_error_set(err, ATLS_REASON_INTERNAL, "socketpair: %s", strerror(errno));
        _cleanup_close_ int mine = sp[0];
        _cleanup_free_ atls_conn *c = calloc(1, sizeof(*c));
        if (!c) {
                close(sp[1]);
                return atls_error_set(err, ATLS_REASON_INTERNAL, "out of memory");
        }
        r = rpc_channel_new_from_fd(sp[1], options, &c->channel);
        if (r < 0) {
                close(sp[1]);
                return atls_error_set(err, ATLS_REASON_INTERNAL, "gRPC channel over the aTLS connection: %s",
                                      strerror(-r));
        }
        c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->stop_fd < 0) {
                rpc_channel_free(c->channel);
                return atls_error_set(err, ATLS_REASON_INTERNAL, "eventfd: %s", strerror(errno));
        }
        pthread_mutex_init(&c->lock, NULL);
        if (relay_limit_new(options ? options->max_receive_message_length : 0, false, &c->limit) < 0) {
                c->tls_fd = c->plain_fd = -1;
                atls_conn_free(TAKE_PTR(c));
                return atls_error_set(err, ATLS_REASON_INTERNAL, "out of memory");
        }
        c->ssl = TAKE_PTR(ssl);
        c->tls_fd = TAKE_FD(fd);
        c->plain_fd = TAKE_FD(mine);
        if (pthread_create(&c->thread, NULL, client_relay_thread, c) != 0) {
                atls_conn_free(TAKE_PTR(c));
                return atls_error_set(err, ATLS_REASON_INTERNAL, "pthread_create failed");
        }
        c->thread_started = true;
        *ret = TAKE_PTR(c);
        return 0;
}

rpc_channel *atls_conn_channel(atls_conn *c) {
        return c ? c->channel : NULL;
}

bool atls_conn_error(atls_conn *c, atls_error *ret) {
        if (!c)
                return false;
        pthread_mutex_lock(&c->lock);
        bool failed = c->error.reason != ATLS_REASON_OK;
        if (failed && ret)
                *ret = c->error;
        pthread_mutex_unlock(&c->lock);
        return failed;
}

void atls_conn_free(atls_conn *c) {
        if (!c)
                return;
        rpc_channel_free(c->channel);
        uint64_t one = 1;
        (void) !write(c->stop_fd, &one, sizeof(one));
        if (c->thread_started)
                pthread_join(c->thread, NULL);
        SSL_free(c->ssl);
        if (c->tls_fd >= 0)
                close(c->tls_fd);
        if (c->plain_fd >= 0)
                close(c->plain_fd);
        close(c->stop_fd);
        atls_h2_limit_free(c->limit);
        pthread_mutex_destroy(&c->lock);
        free(c);
}
