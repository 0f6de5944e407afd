/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-attest init --endpoint HOST:PORT --measurements FILE
 *     (--master-secret FILE --salt FILE | --kms-uri-file FILE)
 *     --measurement-salt FILE --init-secret FILE [--kubeconfig-out FILE] [--cluster-name NAME]
 *     [--kubernetes-version V] [--timeout SECONDS] [--json]
 *
 * Constellation's `constellation apply` init step against one node's bootstrapper (:9000), through
 * lib/nodeclient: dial aTLS and validate the node's qemu-vtpm attestation against the measurements
 * (nothing is sent to a node that does not attest), send /init.API/Init with
 * kms://cluster-kms?key=…&salt=… from the master secret and salt, the measurement salt and the init
 * secret, and read the stream. Prints the cluster ID (hex) and writes the admin kubeconfig (0600)
 * to --kubeconfig-out; the node's log goes to stderr.
 *
 * With --kms-uri-file the file holds a ready kms:// URI instead (a kms://kmip URI from
 * `constellation-attest kmip wrap-master-secret --inline --out FILE`: the node unwraps the master
 * secret at the user's KMIP server, so the operator need not hold it), sent as it is. With inline
 * credentials that URI carries the KMIP client key, so the file is read like a key file: a regular
 * file (no symlink), mode 0600 or 0400, at most 4096 bytes plus a line end; it is never printed.
 * --master-secret/--salt with it are refused as ambiguous.
 *
 * The master secret, salt and measurement salt are files of hex (as derive and recover); the init
 * secret file holds the secret as it is (one trailing newline dropped), since the node compares it
 * with a bcrypt hash of its text. Exit codes: 0 initialised; 1 refused (the node's attestation,
 * or the node refused: wrong init secret, already initialised, init_failure); 2 usage; 3 a file
 * could not be read or written; 4 the endpoint could not be reached or did not answer. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "commands.h"
#include "kms/kms.h"
#include "measurements/measurements.h"
#include "nodeclient/nodeclient.h"
#include "output.h"
#include "rpc/rpc.h"

#define INIT_MAX_INPUT_FILE (64 * 1024)

static void usage(FILE *f) {
        fputs("Usage: constellation-attest init --endpoint HOST:PORT --measurements FILE\n"
              "           (--master-secret FILE --salt FILE | --kms-uri-file FILE)\n"
              "           --measurement-salt FILE --init-secret FILE [--kubeconfig-out FILE]\n"
              "           [--cluster-name NAME] [--kubernetes-version V] [--timeout SECONDS] [--json]\n"
              "Initialises a node through its bootstrapper (port 9000) over aTLS, after validating the node's\n"
              "qemu-vtpm attestation against the measurements. --master-secret, --salt and --measurement-salt\n"
              "hold hex; --init-secret holds the init secret itself. --kms-uri-file holds a kms:// URI instead\n"
              "of the master secret and salt (kms://kmip?... from `constellation-attest kmip wrap-master-secret\n"
              "--inline --out FILE`; mode 0600 or 0400). Prints the cluster ID.\n",
              f);
}

static int read_secret(bool json, const char *option, const char *path, bool hex, secret_t **ret) {
        _cleanup_secret_ secret_t *raw = NULL;
        int r = secret_read_file(path, INIT_MAX_INPUT_FILE, &raw);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: %s %s: %s", option, path,
                                     r == -EFBIG ? "file too large (more than 64 KiB)" : strerror(-r));
        if (!hex) {
                size_t len = raw->len;
                if (len > 0 && raw->data[len - 1] == '\n')
                        len--;
                if (len > 0 && raw->data[len - 1] == '\r')
                        len--;
                if (len == 0)
                        return attest_output(json, ATTEST_EXIT_USAGE, NULL, "init: %s %s: empty", option, path);
                *ret = secret_new_copy(raw->data, len);
                return *ret ? 0 : attest_output(json, ATTEST_EXIT_IO, NULL, "init: out of memory");
        }
        r = secret_from_hex((const char *) raw->data, raw->len, ret);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_USAGE, NULL,
                                     "init: %s %s: not hex (an even number of 0-9a-f digits, then optional whitespace)",
                                     option, path);
        return 0;
}

/* The --kms-uri-file: read like a key file (it may carry the KMIP client key), then a shape check
 * (the node parses it with lib/kms). Messages name the file, never quote its contents. */
static int read_kms_uri_file(bool json, const char *path, secret_t **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: --kms-uri-file %s: %s%s", path, strerror(errno),
                                     errno == ELOOP ? " (a symbolic link: give the file itself)" : "");
        struct stat st;
        if (fstat(fd, &st) < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: --kms-uri-file %s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: --kms-uri-file %s: not a regular file", path);
        if (st.st_mode & 0077)
                return attest_output(json, ATTEST_EXIT_IO, NULL,
                                     "init: --kms-uri-file %s: mode %04o lets group or others read it; it must be 0600 "
                                     "or 0400 (chmod 600 %s)",
                                     path, (unsigned) (st.st_mode & 07777), path);
        /* + 2: the URI may be followed by "\r\n". */
        if ((uint64_t) st.st_size > KMS_MAX_URI + 2)
                return attest_output(json, ATTEST_EXIT_IO, NULL,
                                     "init: --kms-uri-file %s: %lld bytes, a kms:// URI has at most %d", path,
                                     (long long) st.st_size, KMS_MAX_URI);
        _cleanup_secret_ secret_t *raw = secret_new((size_t) st.st_size + 1);
        if (!raw)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: out of memory");
        size_t got = 0;
        for (;;) { /* up to one byte more than stat said: a file that grew is refused, not cut */
                ssize_t n = read(fd, raw->data + got, (size_t) st.st_size + 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return attest_output(json, ATTEST_EXIT_IO, NULL, "init: --kms-uri-file %s: %s", path,
                                             strerror(errno));
                if (n == 0)
                        break;
                got += (size_t) n;
                if (got > (size_t) st.st_size)
                        return attest_output(json, ATTEST_EXIT_IO, NULL, "init: --kms-uri-file %s: changed while read",
                                             path);
        }
        raw->len = got;
        if (raw->len > 0 && raw->data[raw->len - 1] == '\n')
                raw->len--;
        if (raw->len > 0 && raw->data[raw->len - 1] == '\r')
                raw->len--;
        raw->data[raw->len] = 0;
        bool printable = true;
        for (size_t i = 0; i < raw->len; i++)
                printable &= raw->data[i] > 0x20 && raw->data[i] < 0x7f;
        const char *u = (const char *) raw->data;
        const char *q = printable ? strchr(u, '?') : NULL;
        if (!printable || raw->len > KMS_MAX_URI || strncmp(u, "kms://", 6) != 0 || !q || q == u + strlen("kms://"))
                return attest_output(json, ATTEST_EXIT_USAGE, NULL,
                                     "init: --kms-uri-file %s: not a kms:// URI (kms://kmip?... or "
                                     "kms://cluster-kms?..., printable, no spaces, at most %d bytes)",
                                     path, KMS_MAX_URI);
        *ret = TAKE_PTR(raw);
        return 0;
}

static int write_private(const char *path, const secret_t *data) {
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
                return -ENOMEM;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = 0;
        if (fchmod(fd, 0600) < 0)
                r = -errno;
        for (size_t off = 0; r == 0 && off < data->len;) {
                ssize_t n = write(fd, data->data + off, data->len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        r = n < 0 ? -errno : -EIO;
                else
                        off += (size_t) n;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

int attest_cmd_init(int argc, char **argv) {
        static const struct option opts[] = {
                { "endpoint", required_argument, NULL, 'e' },
                { "measurements", required_argument, NULL, 'm' },
                { "master-secret", required_argument, NULL, 's' },
                { "salt", required_argument, NULL, 'a' },
                { "measurement-salt", required_argument, NULL, 'M' },
                { "init-secret", required_argument, NULL, 'i' },
                { "kms-uri-file", required_argument, NULL, 'u' },
                { "kubeconfig-out", required_argument, NULL, 'k' },
                { "cluster-name", required_argument, NULL, 'n' },
                { "kubernetes-version", required_argument, NULL, 'v' },
                { "timeout", required_argument, NULL, 't' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *endpoint = NULL, *mfile = NULL, *secret_path = NULL, *salt_path = NULL, *msalt_path = NULL,
                   *isecret_path = NULL, *kube_out = NULL, *cluster_name = NULL, *k8s_version = NULL,
                   *uri_path = NULL;
        long timeout_s = 1800;
        bool json = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'e': endpoint = optarg; break;
                case 'm': mfile = optarg; break;
                case 's': secret_path = optarg; break;
                case 'a': salt_path = optarg; break;
                case 'M': msalt_path = optarg; break;
                case 'i': isecret_path = optarg; break;
                case 'u': uri_path = optarg; break;
                case 'k': kube_out = optarg; break;
                case 'n': cluster_name = optarg; break;
                case 'v': k8s_version = optarg; break;
                case 't':
                        if (attest_parse_timeout("init", optarg, 7200, &timeout_s) < 0)
                                return ATTEST_EXIT_USAGE;
                        break;
                case 'j': json = true; break;
                case 'h': usage(stdout); return ATTEST_EXIT_OK;
                default: usage(stderr); return ATTEST_EXIT_USAGE;
                }
        if (uri_path && (secret_path || salt_path)) {
                fprintf(stderr, "init: --kms-uri-file and --master-secret/--salt both name the cluster's KMS; give "
                                "either --kms-uri-file or --master-secret and --salt\n");
                usage(stderr);
                return ATTEST_EXIT_USAGE;
        }
        if (optind < argc || !endpoint || !mfile || (!uri_path && (!secret_path || !salt_path)) || !msalt_path ||
            !isecret_path) {
                fprintf(stderr, "init: --endpoint, --measurements, either --master-secret and --salt or --kms-uri-file, "
                                "--measurement-salt and --init-secret are required\n");
                usage(stderr);
                return ATTEST_EXIT_USAGE;
        }
        int r = process_harden_secrets();
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: cannot protect the process (%s)", strerror(-r));

        _cleanup_secret_ secret_t *master = NULL, *salt = NULL, *msalt = NULL, *isecret = NULL, *uri = NULL;
        if ((uri_path && (r = read_kms_uri_file(json, uri_path, &uri)) != 0) ||
            (!uri_path && (r = read_secret(json, "--master-secret", secret_path, true, &master)) != 0) ||
            (!uri_path && (r = read_secret(json, "--salt", salt_path, true, &salt)) != 0) ||
            (r = read_secret(json, "--measurement-salt", msalt_path, true, &msalt)) != 0 ||
            (r = read_secret(json, "--init-secret", isecret_path, false, &isecret)) != 0)
                return r;

        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        r = attest_read_file("measurements", mfile, MEASUREMENTS_MAX_FILE, &buf, &len);
        if (r)
                return r;
        measurements m = { 0 };
        _cleanup_free_ char *perr = NULL;
        r = measurements_parse(buf, len, &m, &perr);
        if (r < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", mfile, perr ?: strerror(-r));
        static nodeclient_policy policy; /* large; self-referencing */
        ct_error err = CT_ERROR_INIT;
        if (nodeclient_policy_from_measurements(&m, &policy, &err) < 0)
                return attest_output(json, ATTEST_EXIT_REJECTED, NULL, "%s: %s", mfile, err.detail);

        nodeclient_init_params p = {
                .master_secret = master, .salt = salt, .kms_uri = uri, .measurement_salt = msalt,
                .init_secret = isecret,
                .cluster_name = cluster_name, .kubernetes_version = k8s_version,
                .handshake_timeout_ms = 60000, .call_timeout_ms = (int64_t) timeout_s * 1000,
        };
        nodeclient_init_result res = { 0 };
        r = nodeclient_init(endpoint, &policy.validator, &p, &res, &err);
        if (res.log_len > 0)
                fprintf(stderr, "---- node log (%zu bytes%s) ----\n%s%s---- end of node log ----\n", res.log_len,
                        res.log_dropped ? ", truncated" : "", res.log,
                        res.log[res.log_len - 1] == '\n' ? "" : "\n");
        if (r < 0) {
                int code = ATTEST_EXIT_REJECTED;
                if (streq(err.reason, NODECLIENT_REASON_UNREACHABLE))
                        code = ATTEST_EXIT_UNREACHABLE;
                else if (streq(err.reason, NODECLIENT_REASON_REQUEST))
                        code = ATTEST_EXIT_USAGE;
                json_t *extra = json ? json_pack("{s:s,s:s}", "status", rpc_status_code_to_string(res.status), "step",
                                                 err.reason)
                                     : NULL;
                const char *what = streq(err.reason, NODECLIENT_REASON_ATLS_REFUSED)
                                           ? "the node was not accepted, nothing was sent: "
                                   : code == ATTEST_EXIT_UNREACHABLE ? "no answer: "
                                                                     : "";
                r = attest_output(json, code, extra, "init: %s%s", what, err.detail);
                nodeclient_init_result_done(&res);
                return r;
        }
        if (kube_out && (r = write_private(kube_out, res.kubeconfig)) < 0) {
                _cleanup_free_ char *cid = hex_encode(res.cluster_id, sizeof res.cluster_id);
                nodeclient_init_result_done(&res);
                return attest_output(json, ATTEST_EXIT_IO, NULL,
                                     "init: the node is initialised (cluster ID %s) but the kubeconfig could not be "
                                     "written to %s: %s",
                                     cid ?: "?", kube_out, strerror(-r));
        }
        _cleanup_free_ char *cid = hex_encode(res.cluster_id, sizeof res.cluster_id);
        nodeclient_init_result_done(&res);
        if (!cid)
                return attest_output(json, ATTEST_EXIT_IO, NULL, "init: out of memory");
        if (json)
                return attest_output(true, ATTEST_EXIT_OK, json_pack("{s:s}", "cluster_id", cid), "%s: initialised",
                                     endpoint);
        printf("%s\n", cid);
        fprintf(stderr, "init: %s: initialised, cluster ID %s%s%s\n", endpoint, cid, kube_out ? ", kubeconfig in " : "",
                kube_out ?: "");
        return ATTEST_EXIT_OK;
}
