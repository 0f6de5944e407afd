/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the node-disk tests: a private temp directory, sparse files, running a
 * command, hashing the LUKS2 header area, an independent HKDF (python3 hmac) for cross-checks. */
#pragma once

#include <openssl/sha.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/macro.h"

#define NODE_DISK_SIZE (40u * 1024 * 1024)
/* LUKS2 default header area (2 x 16 KiB binary headers + JSON + keyslots): 16 MiB. */
#define NODE_DISK_HEADER_AREA (16u * 1024 * 1024)

static inline void nd_die(const char *what) {
        fprintf(stderr, "node-disk test: %s\n", what);
        abort();
}

static inline char *nd_tmpdir(void) {
        char *d = strdup("/tmp/ct-node-disk-XXXXXX");
        if (!d || !mkdtemp(d))
                nd_die("mkdtemp");
        return d;
}

static inline void nd_rmrf(const char *dir) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        (void) !system(cmd);
}

/* A sparse file of `size` bytes filled with zeros. */
static inline void nd_blank_file(const char *path, size_t size) {
        FILE *f = fopen(path, "we");
        if (!f || ftruncate(fileno(f), (off_t) size) < 0)
                nd_die("create blank file");
        fclose(f);
}

/* Runs a shell command; returns its exit status (or -1). stdout captured into *out if non-NULL. */
static inline int nd_run(char **out, const char *fmt, ...) _printf_(2, 3);
static inline int nd_run(char **out, const char *fmt, ...) {
        char *cmd;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&cmd, fmt, ap) < 0)
                nd_die("vasprintf");
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

static inline void nd_require_tool(const char *tool) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
        if (system(cmd) != 0) {
                fprintf(stderr, "%s is not installed: run scripts/setup.sh (the node-disk tests need it)\n", tool);
                exit(1);
        }
}

/* SHA-256 (hex) of the first `len` bytes of path (the LUKS2 header area). */
static inline char *nd_hash_prefix(const char *path, size_t len) {
        uint8_t *buf;
        size_t n;
        if (read_full_file(path, 1u << 30, &buf, &n) < 0)
                nd_die("read for hash");
        uint8_t md[32];
        SHA256(buf, MIN(n, len), md);
        free(buf);
        return hex_encode(md, sizeof md);
}

/* HKDF-SHA256 by python3's hmac module (independent of lib/crypto), hex in and out. */
static inline char *nd_python_hkdf(const char *ikm_hex, const char *salt_hex, const char *info) {
        char *out = NULL;
        int rc = nd_run(&out,
                        "/usr/bin/python3 -c 'import hmac,hashlib,sys\n"
                        "ikm=bytes.fromhex(sys.argv[1]); salt=bytes.fromhex(sys.argv[2]); info=sys.argv[3].encode()\n"
                        "prk=hmac.new(salt,ikm,hashlib.sha256).digest()\n"
                        "print(hmac.new(prk,info+b\"\\x01\",hashlib.sha256).hexdigest())' %s %s '%s'",
                        ikm_hex, salt_hex, info);
        if (rc != 0 || !out || strlen(out) < 64)
                nd_die("python3 HKDF (needs /usr/bin/python3)");
        out[64] = '\0';
        return out;
}

/* Writes raw bytes from hex to path with mode 0600. */
static inline void nd_write_hex_as_raw(const char *path, const char *hex) {
        uint8_t *b;
        size_t n;
        if (hex_decode(hex, strlen(hex), &b, &n) < 0 || write_file_atomic(path, b, n, 0600) < 0)
                nd_die("write key file");
        free(b);
}
