/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-qemu: local QEMU infrastructure for operators and tests (lib/qemuinfra).
 *   up      create or converge the cluster recorded in --state
 *   status  which recorded VMs are alive, and why not
 *   down    stop every recorded process by pid and remove the cluster's files and the state
 *   relay   (run by QEMU for each guest connection to another control plane; see docs/qemu-infra.md)
 * Output: JSON on stdout. Exit codes: 0 success, 1 failure (the reason on stderr), 2 bad usage. */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "basic/process-util.h"
#include "basic/secret.h"
#include "qemuinfra/qemuinfra.h"

#define PROG "constellation-qemu"

static void usage(FILE *f) {
        fputs("usage: " PROG " up --state FILE [--image DISK --control-planes N --workers M --disk-size SIZE]\n"
              "                    [--name NAME] [--uid UID] [--dir DIR] [--init-secret-file FILE]\n"
              "                    [--mem MIB] [--vcpus N] [--accel auto|tcg|kvm] [--secure-boot auto|on|off] [--outbound]\n"
              "                    [--kernel FILE [--initrd FILE] [--append CMDLINE]]   (direct Linux boot, absolute paths)\n"
              "       " PROG " status --state FILE\n"
              "       " PROG " down --state FILE\n"
              "       " PROG " relay 127.X.Y.Z PORT\n"
              "up: a new cluster needs --image, --control-planes, --workers, --disk-size and --init-secret-file (read,\n"
              "or created 0600 with 32 random characters if missing; only its bcrypt hash enters the state).\n"
              "With an existing state, up converges: dead nodes are restarted, the counts adjusted.\n"
              "--dir defaults to <state>.d. SIZE: bytes or with K/M/G suffix.\n",
              f);
}

static int fail(const ct_error *err) {
        char buf[CT_ERROR_DETAIL_MAX + 64];
        fprintf(stderr, PROG ": %s\n", ct_error_format(err, buf, sizeof buf));
        return 1;
}

static int parse_size(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || s[0] == '-')
                return -EINVAL;
        unsigned shift = 0;
        if (*end == 'K' || *end == 'k')
                shift = 10, end++;
        else if (*end == 'M' || *end == 'm')
                shift = 20, end++;
        else if (*end == 'G' || *end == 'g')
                shift = 30, end++;
        if (*end || v > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = (uint64_t) v << shift;
        return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int load_state(const char *path, qemuinfra_cluster **ret, ct_error *err) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        int r = read_full_file(path, QEMUINFRA_STATE_MAX_SIZE, &data, &len);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return ct_error_set(err, r, "state", "unreadable", "%s: %s", path, strerror(-r));
        r = qemuinfra_state_from_json((const char *) data, len, ret, err);
        if (r < 0)
                ct_error_prefix(err, "%s", path);
        return r;
}

static int save_state(const char *path, const qemuinfra_cluster *c, ct_error *err) {
        _cleanup_free_ char *s = NULL;
        int r = qemuinfra_state_to_json(c, &s, err);
        if (r < 0)
                return r;
        r = write_file_atomic(path, s, strlen(s), 0600);
        if (r < 0)
                return ct_error_set(err, r, "state", "unwritable", "%s: %s", path, strerror(-r));
        return 0;
}

/* The state plus, per node, "alive" and the reason it is not. */
static int print_status(const qemuinfra_cluster *c, ct_error *err) {
        _cleanup_free_ char *s = NULL;
        int r = qemuinfra_state_to_json(c, &s, err);
        if (r < 0)
                return r;
        json_t *o = json_loads(s, 0, NULL);
        if (!o)
                return ct_error_set(err, -ENOMEM, "status", "internal", "out of memory");
        json_t *nodes = json_object_get(o, "nodes");
        bool all = true;
        for (size_t k = 0; k < c->n_nodes; k++) {
                char reason[512];
                bool alive = qemuinfra_node_alive(&c->nodes[k], reason, sizeof reason);
                all = all && alive;
                json_t *n = json_array_get(nodes, k);
                json_object_set_new(n, "alive", json_boolean(alive));
                json_object_set_new(n, "reason", alive ? json_null() : json_string(reason));
        }
        json_object_set_new(o, "all_alive", json_boolean(all));
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(o);
        return 0;
}

/* The init secret file: read (at most 1 KiB), or created 0600 with 32 random characters. */
static int init_secret_hash(const char *path, char **ret, ct_error *err) {
        _cleanup_secret_ secret_t *sec = NULL;
        uint8_t *data = NULL;
        size_t len = 0;
        int r = read_full_file(path, 1024, &data, &len);
        if (r == -ENOENT) {
                static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                uint8_t rnd[32];
                char pw[33];
                CLEANUP_ERASE(rnd);
                CLEANUP_ERASE(pw);
                if (getrandom(rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
                        return ct_error_set(err, -EIO, "init-secret", "random", "getrandom: %s", strerror(errno));
                for (size_t i = 0; i < 32; i++)
                        pw[i] = alphabet[rnd[i] % 62]; /* 62^32: the modulo bias costs < 1 bit */
                pw[32] = 0;
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0)
                        return ct_error_set(err, -errno, "init-secret", "unwritable", "%s: %s", path, strerror(errno));
                r = loop_write(fd, pw, 32);
                close(fd);
                if (r < 0)
                        return ct_error_set(err, r, "init-secret", "unwritable", "%s: %s", path, strerror(-r));
                return qemuinfra_hash_init_secret(pw, 32, ret, err);
        }
        if (r < 0)
                return ct_error_set(err, r, "init-secret", "unreadable", "%s: %s", path, strerror(-r));
        sec = secret_new_copy(data, len);
        erase_and_free_sized(data, len);
        if (!sec)
                return ct_error_set(err, -ENOMEM, "init-secret", "internal", "out of memory");
        size_t l = len;
        while (l && (sec->data[l - 1] == '\n' || sec->data[l - 1] == '\r'))
                l--;
        return qemuinfra_hash_init_secret(sec->data, l, ret, err);
}

static int cmd_up(int argc, char **argv) {
        static const struct option opts[] = {
                { "state", required_argument, NULL, 's' },        { "image", required_argument, NULL, 'i' },
                { "control-planes", required_argument, NULL, 'c' }, { "workers", required_argument, NULL, 'w' },
                { "disk-size", required_argument, NULL, 'd' },    { "name", required_argument, NULL, 'n' },
                { "uid", required_argument, NULL, 'u' },          { "dir", required_argument, NULL, 'D' },
                { "init-secret-file", required_argument, NULL, 'S' }, { "mem", required_argument, NULL, 'm' },
                { "vcpus", required_argument, NULL, 'v' },        { "accel", required_argument, NULL, 'a' },
                { "secure-boot", required_argument, NULL, 'b' },  { "outbound", no_argument, NULL, 'o' },
                { "kernel", required_argument, NULL, 'K' },       { "initrd", required_argument, NULL, 'I' },
                { "append", required_argument, NULL, 'A' },
                { NULL, 0, NULL, 0 },
        };
        const char *state = NULL, *image = NULL, *name = NULL, *uid = NULL, *dir = NULL, *secret_file = NULL;
        unsigned cps = UINT_MAX, workers = UINT_MAX, mem = 0, vcpus = 0;
        uint64_t disk = 0;
        qemuinfra_spec spec = { 0 };
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                int r = 0;
                switch (c) {
                case 's': state = optarg; break;
                case 'i': image = optarg; break;
                case 'n': name = optarg; break;
                case 'u': uid = optarg; break;
                case 'D': dir = optarg; break;
                case 'S': secret_file = optarg; break;
                case 'c': r = parse_uint(optarg, QEMUINFRA_MAX_CONTROL_PLANES, &cps); break;
                case 'w': r = parse_uint(optarg, QEMUINFRA_MAX_WORKERS, &workers); break;
                case 'm': r = parse_uint(optarg, 1u << 20, &mem); break;
                case 'v': r = parse_uint(optarg, 256, &vcpus); break;
                case 'd': r = parse_size(optarg, &disk); break;
                case 'o': spec.outbound = true; break;
                case 'K': spec.kernel = optarg; break;
                case 'I': spec.initrd = optarg; break;
                case 'A': spec.cmdline = optarg; break;
                case 'a':
                        if (streq(optarg, "auto")) spec.accel = QEMUINFRA_ACCEL_AUTO;
                        else if (streq(optarg, "tcg")) spec.accel = QEMUINFRA_ACCEL_TCG;
                        else if (streq(optarg, "kvm")) spec.accel = QEMUINFRA_ACCEL_KVM;
                        else r = -EINVAL;
                        break;
                case 'b':
                        if (streq(optarg, "auto")) spec.secure_boot = QEMUINFRA_AUTO;
                        else if (streq(optarg, "on")) spec.secure_boot = QEMUINFRA_ON;
                        else if (streq(optarg, "off")) spec.secure_boot = QEMUINFRA_OFF;
                        else r = -EINVAL;
                        break;
                default: usage(stderr); return 2;
                }
                if (r < 0) {
                        fprintf(stderr, PROG ": up: bad value '%s' for --%s\n", optarg, opts[0].name ? "option" : "");
                        return 2;
                }
        }
        if (!state || optind != argc) {
                usage(stderr);
                return 2;
        }
        ct_error err = CT_ERROR_INIT;
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *cl = NULL;
        if (load_state(state, &cl, &err) < 0)
                return fail(&err);
        char abs_image[PATH_MAX], abs_dir[PATH_MAX], exe[PATH_MAX];
        _cleanup_free_ char *default_dir = NULL, *hash = NULL, *relay = NULL;
        if (image && !realpath(image, abs_image)) {
                fprintf(stderr, PROG ": up: image %s: %s\n", image, strerror(errno));
                return 1;
        }
        if (!dir && !cl) {
                if (asprintf(&default_dir, "%s.d", state) < 0)
                        return 1;
                dir = default_dir;
        }
        if (dir) {
                /* The directory may not exist yet: resolve its parent. */
                _cleanup_free_ char *copy = strdup(dir);
                char *slash = copy ? strrchr(copy, '/') : NULL;
                char parent[PATH_MAX];
                const char *base = slash ? slash + 1 : copy;
                if (slash)
                        *slash = 0;
                if (!copy || !realpath(slash ? (copy[0] ? copy : "/") : ".", parent) ||
                    snprintf(abs_dir, sizeof abs_dir, "%s/%s", streq(parent, "/") ? "" : parent, base) >= (int) sizeof abs_dir) {
                        fprintf(stderr, PROG ": up: --dir %s: parent directory missing\n", dir);
                        return 1;
                }
        }
        ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (l <= 0) {
                fprintf(stderr, PROG ": up: cannot find my own program (/proc/self/exe)\n");
                return 1;
        }
        exe[l] = 0;
        if (strpbrk(exe, " \t\n'\"\\$")) {
                fprintf(stderr, PROG ": up: %s: the relay's path must not contain spaces or quotes (QEMU splits it)\n", exe);
                return 1;
        }
        if (asprintf(&relay, "%s relay", exe) < 0)
                return 1;
        if (secret_file) {
                if (init_secret_hash(secret_file, &hash, &err) < 0)
                        return fail(&err);
        } else if (!cl) {
                fprintf(stderr, PROG ": up: a new cluster needs --init-secret-file FILE (created if missing)\n");
                return 2;
        }
        if (!cl && (!image || cps == UINT_MAX || workers == UINT_MAX || disk == 0)) {
                fprintf(stderr, PROG ": up: a new cluster needs --image, --control-planes, --workers and --disk-size\n");
                return 2;
        }
        spec.name = name ? name : cl ? cl->name : "constell";
        spec.uid = uid ? uid : cl ? cl->uid : NULL;
        spec.image = image ? abs_image : cl ? cl->image : NULL;
        spec.dir = dir ? abs_dir : cl->dir;
        spec.control_planes = cps;
        spec.workers = workers;
        if (cl) {
                unsigned have_cp = 0, have_w = 0;
                for (size_t k = 0; k < cl->n_nodes; k++)
                        cl->nodes[k].control_plane ? have_cp++ : have_w++;
                if (cps == UINT_MAX)
                        spec.control_planes = have_cp;
                if (workers == UINT_MAX)
                        spec.workers = have_w;
        }
        spec.state_disk_bytes = disk ? disk : cl ? cl->state_disk_bytes : 0;
        spec.mem_mib = mem ? mem : cl ? cl->mem_mib : 0;
        spec.vcpus = vcpus ? vcpus : cl ? cl->vcpus : 0;
        spec.init_secret_hash = hash ? hash : cl->init_secret_hash;
        spec.relay_command = relay;
        int r = qemuinfra_up(&spec, &cl, &err);
        /* Saved in every case: the state records every process that was started. */
        ct_error serr = CT_ERROR_INIT;
        if (cl && save_state(state, cl, &serr) < 0) {
                fail(&serr);
                if (r >= 0)
                        return 1;
        }
        if (r < 0)
                return fail(&err);
        if (print_status(cl, &err) < 0)
                return fail(&err);
        return 0;
}

static int cmd_status_or_down(int argc, char **argv, bool down) {
        static const struct option opts[] = { { "state", required_argument, NULL, 's' }, { NULL, 0, NULL, 0 } };
        const char *state = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (c != 's') {
                        usage(stderr);
                        return 2;
                }
                state = optarg;
        }
        if (!state || optind != argc) {
                usage(stderr);
                return 2;
        }
        ct_error err = CT_ERROR_INIT;
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *cl = NULL;
        if (load_state(state, &cl, &err) < 0)
                return fail(&err);
        if (!cl) {
                if (!down) {
                        fprintf(stderr, PROG ": status: %s: no such state (nothing was created)\n", state);
                        return 1;
                }
                puts("{\"down\": true, \"nodes\": []}");
                return 0;
        }
        if (!down)
                return print_status(cl, &err) < 0 ? fail(&err) : 0;
        int r = qemuinfra_down(cl, &err);
        if (r < 0) {
                ct_error serr = CT_ERROR_INIT;
                if (save_state(state, cl, &serr) < 0)
                        fail(&serr);
                return fail(&err);
        }
        if (unlink(state) < 0 && errno != ENOENT) {
                fprintf(stderr, PROG ": down: %s: %s\n", state, strerror(errno));
                return 1;
        }
        puts("{\"down\": true, \"nodes\": []}");
        return 0;
}

int main(int argc, char **argv) {
        if (argc >= 2 && streq(argv[1], "relay")) {
                /* stdin/stdout/stderr are the guest's connection: never print anything. */
                unsigned port;
                if (argc != 4 || parse_uint(argv[3], 65535, &port) < 0)
                        return 2;
                return qemuinfra_relay(0, 1, argv[2], (uint16_t) port) < 0 ? 1 : 0;
        }
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        /* The init secret passes through this process (read, hashed). */
        if (process_harden_secrets() < 0) {
                fprintf(stderr, PROG ": cannot disable core dumps\n");
                return 1;
        }
        const char *cmd = argv[1];
        argv[1] = argv[0];
        if (streq(cmd, "up"))
                return cmd_up(argc - 1, argv + 1);
        if (streq(cmd, "status"))
                return cmd_status_or_down(argc - 1, argv + 1, false);
        if (streq(cmd, "down"))
                return cmd_status_or_down(argc - 1, argv + 1, true);
        fprintf(stderr, PROG ": unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
