/* SPDX-License-Identifier: Apache-2.0 */
/* The smallest QMP client (QEMU docs/interop/qmp-spec.rst): read the greeting, negotiate
 * capabilities, run one command, skip asynchronous events, take its "return" or "error". */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "basic/fileio.h"
#include "qemuinfra/internal.h"

#define QMP_LINE_MAX (64u * 1024)

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

typedef struct qmp_conn {
        int fd;
        char buf[QMP_LINE_MAX];
        size_t len;
        uint64_t deadline;
} qmp_conn;

/* One JSON object per line (QEMU ends every message with CRLF). */
static int qmp_read_msg(qmp_conn *q, json_t **ret) {
        for (;;) {
                char *nl = memchr(q->buf, '\n', q->len);
                if (nl) {
                        size_t l = (size_t) (nl - q->buf) + 1;
                        json_t *j = json_loadb(q->buf, l, 0, NULL);
                        memmove(q->buf, q->buf + l, q->len - l);
                        q->len -= l;
                        if (!j || !json_is_object(j)) {
                                json_decref(j);
                                return -EBADMSG;
                        }
                        *ret = j;
                        return 0;
                }
                if (q->len == sizeof q->buf)
                        return -EFBIG;
                uint64_t now = now_ms();
                if (now >= q->deadline)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = q->fd, .events = POLLIN };
                int r = poll(&p, 1, (int) (q->deadline - now));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                ssize_t n = read(q->fd, q->buf + q->len, sizeof q->buf - q->len);
                if (n < 0 && errno != EINTR && errno != EAGAIN)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                if (n > 0)
                        q->len += (size_t) n;
        }
}

static int qmp_execute(qmp_conn *q, const char *cmd, json_t **ret_return) {
        char line[256];
        int l = snprintf(line, sizeof line, "{\"execute\":\"%s\"}\r\n", cmd);
        if (l < 0 || (size_t) l >= sizeof line)
                return -EINVAL;
        int r = loop_write(q->fd, line, (size_t) l);
        if (r < 0)
                return r;
        for (;;) {
                json_t *j;
                r = qmp_read_msg(q, &j);
                if (r < 0)
                        return r;
                json_t *ret = json_object_get(j, "return");
                if (ret) {
                        if (ret_return)
                                *ret_return = json_incref(ret);
                        json_decref(j);
                        return 0;
                }
                bool is_error = json_object_get(j, "error") != NULL;
                json_decref(j);
                if (is_error)
                        return -EPROTO;
                /* an event: keep reading */
        }
}

int qi_qmp_command(const char *socket_path, const char *command, unsigned timeout_ms, char **ret_reply) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(socket_path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);
        _cleanup_free_ qmp_conn *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->deadline = now_ms() + timeout_ms;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        q->fd = fd;
        json_t *greeting = NULL;
        int r = qmp_read_msg(q, &greeting);
        if (r < 0)
                return r;
        bool ok = json_object_get(greeting, "QMP") != NULL;
        json_decref(greeting);
        if (!ok)
                return -EPROTO;
        r = qmp_execute(q, "qmp_capabilities", NULL);
        if (r < 0)
                return r;
        json_t *ret = NULL;
        r = qmp_execute(q, command, &ret);
        if (r < 0)
                return r;
        if (ret_reply) {
                *ret_reply = json_dumps(ret, JSON_COMPACT | JSON_ENCODE_ANY);
                if (!*ret_reply) {
                        json_decref(ret);
                        return -ENOMEM;
                }
        }
        json_decref(ret);
        return 0;
}
