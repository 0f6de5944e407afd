/* SPDX-License-Identifier: Apache-2.0 */
/* Planning, starting, inspecting and stopping the cluster's VMs (qemuinfra.h). */
#include <arpa/inet.h>
#include <crypt.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <openssl/evp.h>

#include "basic/fileio.h"
#include "basic/secret.h"
#include "metadata/metadata.h"
#include "pcr/disk.h"
#include "pe/pe.h"
#include "qemuinfra/internal.h"

const uint16_t QEMUINFRA_PORTS[6] = { 9000, 9999, 30090, 30080, 30081, 6443 };
const uint16_t QEMUINFRA_CP_PORTS[2] = { 2380, 30091 };

/* The ports a node's host address forwards (and every control plane's vpc_ip offers the control
 * planes): QEMUINFRA_PORTS, plus QEMUINFRA_CP_PORTS on a control plane. */
static size_t node_ports(bool control_plane, uint16_t ret[static QEMUINFRA_N_PORTS + QEMUINFRA_N_CP_PORTS]) {
        size_t n = 0;
        for (size_t i = 0; i < QEMUINFRA_N_PORTS; i++)
                ret[n++] = QEMUINFRA_PORTS[i];
        for (size_t i = 0; control_plane && i < QEMUINFRA_N_CP_PORTS; i++)
                ret[n++] = QEMUINFRA_CP_PORTS[i];
        return n;
}

#define OVMF_DIR "/usr/share/OVMF/"
#define SWTPM_SOCKET_WAIT_MS 10000u
#define QEMU_START_WAIT_MS 60000u
#define QEMU_QUIT_WAIT_MS 10000u
#define TERM_WAIT_MS 5000u

/* The files an engine node directory may hold: exactly these are removed by down. */
static const char *const node_files[] = {
        "boot.raw", "state.raw", "vars.fd", "metadata.json", "console.log", "report.log",
        "qemu.log", "swtpm.log", "swtpm.sock", "qmp.sock",
};

static void proc_done(qemuinfra_proc *p) {
        free(p->exe);
        *p = (qemuinfra_proc) { 0 };
}

static void node_done(qemuinfra_node *n) {
        free(n->name);
        free(n->host_address);
        free(n->vpc_ip);
        free(n->dir);
        proc_done(&n->qemu);
        proc_done(&n->swtpm);
        *n = (qemuinfra_node) { 0 };
}

void qemuinfra_cluster_free(qemuinfra_cluster *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_nodes; i++)
                node_done(&c->nodes[i]);
        free(c->nodes);
        free(c->uid);
        free(c->name);
        free(c->dir);
        free(c->image);
        free(c->accel);
        free(c->accel_reason);
        free(c->ovmf_code);
        free(c->ovmf_vars_template);
        free(c->qemu_binary);
        free(c->swtpm_binary);
        free(c->relay_command);
        free(c->kernel);
        free(c->initrd);
        free(c->cmdline);
        free(c->init_secret_hash);
        free(c);
}

static int oom(ct_error *err) {
        return ct_error_set(err, -ENOMEM, QI_LAYER, "io", "out of memory");
}

static char *xasprintf(const char *fmt, ...) _printf_(1, 2);
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

static char *node_path(const qemuinfra_node *n, const char *file) {
        return xasprintf("%s/%s", n->dir, file);
}

/* --- spec ------------------------------------------------------------------------------------ */

static bool valid_name(const char *s, size_t max) {
        size_t l = s ? strlen(s) : 0;
        if (l == 0 || l > max || !(s[0] >= 'a' && s[0] <= 'z') || s[l - 1] == '-')
                return false;
        for (size_t i = 0; i < l; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

static bool valid_uid(const char *s) {
        size_t l = strlen(s);
        if (l == 0 || l > 32)
                return false;
        for (size_t i = 0; i < l; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

static int check_spec(const qemuinfra_spec *s, ct_error *err) {
        if (!valid_name(s->name, 32))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid",
                                    "name '%s': want 1..32 of [a-z0-9-], starting with a letter", s->name ? s->name : "");
        if (s->uid && !valid_uid(s->uid))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "uid '%s': want 1..32 of [a-z0-9]", s->uid);
        if (isempty(s->image) || isempty(s->dir))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "the image and the working directory are required");
        if (s->image[0] != '/' || s->dir[0] != '/')
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "image and dir must be absolute paths");
        /* swtpm's option parser has no escape for a comma; blanks would split the relay command. */
        if (strpbrk(s->dir, ", \t\n"))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "dir '%s' must not contain commas or blanks", s->dir);
        if (s->control_planes < 1 || s->control_planes > QEMUINFRA_MAX_CONTROL_PLANES)
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "control_planes %u: want 1..%u",
                                    s->control_planes, QEMUINFRA_MAX_CONTROL_PLANES);
        if (s->workers > QEMUINFRA_MAX_WORKERS)
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "workers %u: want 0..%u", s->workers,
                                    QEMUINFRA_MAX_WORKERS);
        if (s->state_disk_bytes < (1u << 20) || s->state_disk_bytes % 4096)
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid",
                                    "state disk size %llu: want at least 1 MiB, a multiple of 4096",
                                    (unsigned long long) s->state_disk_bytes);
        if (!s->init_secret_hash || !metadata_valid_bcrypt_hash(s->init_secret_hash))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "init_secret_hash: not a bcrypt hash");
        if (isempty(s->relay_command) || s->relay_command[0] != '/')
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid",
                                    "relay command: want an absolute program path (e.g. /usr/bin/constellation-qemu relay)");
        if ((s->initrd || s->cmdline) && !s->kernel)
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "initrd and cmdline need a kernel");
        if ((s->kernel && s->kernel[0] != '/') || (s->initrd && s->initrd[0] != '/'))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "kernel and initrd must be absolute paths");
        /* 108-byte sun_path: <dir>/<name>/swtpm.sock */
        if (strlen(s->dir) + 1 + strlen("control-plane-99/swtpm.sock") >= sizeof(((struct sockaddr_un *) 0)->sun_path))
                return ct_error_set(err, -ENAMETOOLONG, QI_LAYER, "spec-invalid",
                                    "dir '%s' is too long for the unix sockets inside it (at most %zu characters)", s->dir,
                                    sizeof(((struct sockaddr_un *) 0)->sun_path) - 1 - 1 - strlen("control-plane-99/swtpm.sock"));
        return 0;
}

/* Absolute, resolved path of a program (a path, or a name searched in $PATH). */
static int find_program(const char *name, const char *fallback, char **ret, ct_error *err) {
        const char *n = name ? name : fallback;
        char buf[PATH_MAX];
        if (strchr(n, '/')) {
                if (!realpath(n, buf) || access(buf, X_OK) < 0)
                        return ct_error_set(err, -ENOENT, QI_LAYER, "tool-missing", "%s: not an executable", n);
        } else {
                const char *path = getenv("PATH");
                bool found = false;
                for (const char *p = path ? path : "/usr/bin:/bin"; !found;) {
                        const char *e = strchrnul(p, ':');
                        char cand[PATH_MAX];
                        int l = snprintf(cand, sizeof cand, "%.*s/%s", (int) (e - p), p, n);
                        if (l > 0 && (size_t) l < sizeof cand && access(cand, X_OK) == 0 && realpath(cand, buf))
                                found = true;
                        if (!*e)
                                break;
                        p = e + 1;
                }
                if (!found)
                        return ct_error_set(err, -ENOENT, QI_LAYER, "tool-missing",
                                            "%s is not installed (apt-get install %s)", n,
                                            streq(n, "swtpm") ? "swtpm" : "qemu-system-x86");
        }
        *ret = strdup(buf);
        return *ret ? 0 : oom(err);
}

/* --- addresses --------------------------------------------------------------------------------- */

static unsigned host_octet(bool control_plane, unsigned index) {
        return control_plane ? 1 + index : 100 + index;
}

/* Would QEMU be able to listen on addr:port? Probed as slirp binds (SO_REUSEADDR), so only a
 * listener conflicts, not connections in TIME_WAIT. */
static bool port_free(const char *addr, uint16_t port) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        int one = 1;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
                return false;
        return bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0;
}

static int node_ports_free(const char *addr, bool control_plane, char *detail, size_t size) {
        uint16_t ports[QEMUINFRA_N_PORTS + QEMUINFRA_N_CP_PORTS];
        size_t n = node_ports(control_plane, ports);
        for (size_t i = 0; i < n; i++)
                if (!port_free(addr, ports[i])) {
                        snprintf(detail, size, "%s:%u is in use", addr, ports[i]);
                        return -EADDRINUSE;
                }
        return 0;
}

/* 127.A.B from SHA-256("constellation-qemu" uid attempt): A in 1..254 (never 127.0.x.x, where
 * 127.0.0.1 lives), B in 0..255. The first attempt whose every node address has its ports free
 * wins (another cluster, or anything else listening there, moves us on). */
static int pick_addresses(qemuinfra_cluster *c, unsigned cps, unsigned workers, ct_error *err) {
        char last[128] = "";
        for (unsigned attempt = 0; attempt < 16; attempt++) {
                uint8_t d[32];
                char in[96];
                int l = snprintf(in, sizeof in, "constellation-qemu %s %u", c->uid, attempt);
                if (EVP_Digest(in, (size_t) l, d, NULL, EVP_sha256(), NULL) != 1)
                        return ct_error_set(err, -EIO, QI_LAYER, "io", "SHA-256 failed");
                uint8_t a = (uint8_t) (1 + d[0] % 254), b = d[1];
                bool ok = true;
                for (unsigned k = 0; ok && k < cps + workers; k++) {
                        bool cp = k < cps;
                        char addr[20];
                        snprintf(addr, sizeof addr, "127.%u.%u.%u", a, b, host_octet(cp, cp ? k : k - cps));
                        if (node_ports_free(addr, cp, last, sizeof last) < 0)
                                ok = false;
                }
                if (ok) {
                        c->addr_a = a;
                        c->addr_b = b;
                        return 0;
                }
        }
        return ct_error_set(err, -EADDRINUSE, QI_LAYER, "address-in-use",
                            "no free loopback range for uid %s after 16 tries (last: %s); choose another uid", c->uid, last);
}

/* --- Secure Boot and the accelerator ------------------------------------------------------------ */

/* On iff the image's default boot loader (the UKI) carries an Authenticode signature. */
static bool image_signed(const char *image, char *why, size_t size) {
        _cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
        gpt_source src;
        if (fd < 0 || gpt_source_fd(&src, fd) < 0) {
                snprintf(why, size, "%s: unreadable", image);
                return false;
        }
        _cleanup_free_ uint8_t *uki = NULL;
        size_t len = 0;
        const char *reason = NULL;
        if (gpt_read_esp_file(&src, "EFI/BOOT/BOOTX64.EFI", 512u << 20, &uki, &len, &reason) < 0) {
                snprintf(why, size, "no UKI on the image (%s)", reason ? reason : "unreadable");
                return false;
        }
        pe_file *pe = NULL;
        if (pe_parse(uki, len, &pe, NULL) < 0) {
                snprintf(why, size, "EFI/BOOT/BOOTX64.EFI is not a PE file");
                return false;
        }
        bool s = pe->cert_size > 0;
        pe_free(pe);
        snprintf(why, size, s ? "the UKI is signed" : "the UKI is not signed");
        return s;
}

static int copy_file(const char *from, const char *to, mode_t mode, bool sparse);

/* KVM only when it provably runs a stock guest: OVMF under -accel kvm must reach its boot
 * manager (a "BdsDxe" line on the serial console) within 30 s. /dev/kvm backed by PVM (no
 * VT-x/SVM, machine.md §5) aborts or hangs there. */
static int probe_kvm(const char *qemu, const char *code, const char *vars_template, const char *dir, char **ret_reason) {
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                *ret_reason = xasprintf("TCG: /dev/kvm not usable (%s)", strerror(errno));
                return 0;
        }
        _cleanup_free_ char *vars = xasprintf("%s/kvm-probe-vars.fd", dir);
        _cleanup_free_ char *log = xasprintf("%s/kvm-probe.log", dir);
        _cleanup_free_ char *serial = xasprintf("file:%s/kvm-probe.serial", dir);
        _cleanup_free_ char *serial_path = xasprintf("%s/kvm-probe.serial", dir);
        _cleanup_free_ char *pf0 = xasprintf("if=pflash,format=raw,unit=0,file=%s,readonly=on", code);
        _cleanup_free_ char *pf1 = xasprintf("if=pflash,format=raw,unit=1,file=%s", vars ? vars : "");
        if (!vars || !log || !serial || !serial_path || !pf0 || !pf1)
                return -ENOMEM;
        if (copy_file(vars_template, vars, 0600, false) < 0) {
                *ret_reason = xasprintf("TCG: KVM probe could not copy %s", vars_template);
                return 0;
        }
        char *argv[] = { (char *) qemu, "-nodefaults", "-no-user-config", "-accel", "kvm", "-cpu", "host", "-M", "q35",
                         "-m", "256", "-display", "none", "-monitor", "none", "-drive", pf0, "-drive", pf1,
                         "-serial", serial, NULL };
        qemuinfra_proc p = { 0 };
        int r = qi_spawn_daemon(argv, log, "/", &p.pid);
        bool ok = false;
        if (r >= 0 && qi_proc_stat(p.pid, NULL, &p.start_time) >= 0) {
                p.exe = (char *) qemu;
                for (int i = 0; i < 300 && !ok; i++) {
                        uint8_t *buf = NULL;
                        size_t len = 0;
                        if (read_full_file(serial_path, 1u << 20, &buf, &len) >= 0 && memmem(buf, len, "BdsDxe", 6))
                                ok = true;
                        free(buf);
                        if (ok || qemuinfra_proc_inspect(&p, NULL, 0) != QEMUINFRA_PROC_ALIVE)
                                break;
                        struct timespec ts = { 0, 100 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
                (void) qi_proc_stop(&p, 2000, NULL, 0);
        }
        unlink(vars), unlink(log), unlink(serial_path);
        if (ok)
                *ret_reason = xasprintf("KVM: OVMF booted under /dev/kvm in the probe");
        else
                *ret_reason = xasprintf("TCG: OVMF does not boot under /dev/kvm%s",
                                        access("/sys/module/kvm_pvm", F_OK) == 0 ? " (PVM: only PVM guest kernels run)" : "");
        return ok ? 1 : 0;
}

/* --- files ----------------------------------------------------------------------------------- */

/* Reflink when the file system can (btrfs, xfs: instant, shared blocks), else a sparse copy
 * (holes kept via SEEK_DATA/SEEK_HOLE). docs/qemu-infra.md has the measurement behind it. */
static int copy_file(const char *from, const char *to, mode_t mode, bool sparse) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        struct stat st;
        if (fstat(in, &st) < 0)
                return -errno;
        _cleanup_free_ char *tmp = xasprintf("%s.tmp", to);
        if (!tmp)
                return -ENOMEM;
        _cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (out < 0)
                return -errno;
        int r = 0;
        if (ioctl(out, FICLONE, in) < 0) {
                off_t off = 0;
                while (off < st.st_size) {
                        off_t data = sparse ? lseek(in, off, SEEK_DATA) : off;
                        if (data < 0) {
                                if (errno == ENXIO)
                                        break; /* only a hole is left */
                                r = -errno;
                                goto fail;
                        }
                        off_t hole = sparse ? lseek(in, data, SEEK_HOLE) : st.st_size;
                        if (hole < 0) {
                                r = -errno;
                                goto fail;
                        }
                        off_t pos_in = data, pos_out = data;
                        while (pos_in < hole) {
                                ssize_t n = copy_file_range(in, &pos_in, out, &pos_out, (size_t) (hole - pos_in), 0);
                                if (n < 0) {
                                        r = -errno;
                                        goto fail;
                                }
                                if (n == 0)
                                        break;
                        }
                        off = hole;
                }
                if (ftruncate(out, st.st_size) < 0) {
                        r = -errno;
                        goto fail;
                }
        }
        if (fsync(out) < 0 || rename(tmp, to) < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        unlink(tmp);
        return r;
}

static int mkdir_0700(const char *p) {
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
                return -errno;
        struct stat st;
        if (lstat(p, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int node_prepare_files(const qemuinfra_cluster *c, const qemuinfra_node *n, ct_error *err) {
        int r = mkdir_0700(n->dir);
        if (r < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "%s: %s", n->dir, strerror(-r));
        _cleanup_free_ char *boot = node_path(n, "boot.raw"), *state = node_path(n, "state.raw"),
                            *vars = node_path(n, "vars.fd"), *tpm = node_path(n, "tpm"),
                            *md = node_path(n, "metadata.json");
        if (!boot || !state || !vars || !tpm || !md)
                return oom(err);
        /* Existing disks, variables and TPM state are kept: a restarted node is the same node. */
        if (access(boot, F_OK) < 0 && (r = copy_file(c->image, boot, 0600, true)) < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "copying %s to %s: %s", c->image, boot, strerror(-r));
        if (access(state, F_OK) < 0) {
                _cleanup_close_ int fd = open(state, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0 || ftruncate(fd, (off_t) c->state_disk_bytes) < 0)
                        return ct_error_set(err, -errno, QI_LAYER, "io", "%s: %s", state, strerror(errno));
        }
        if (access(vars, F_OK) < 0 && (r = copy_file(c->ovmf_vars_template, vars, 0600, false)) < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "copying %s: %s", c->ovmf_vars_template, strerror(-r));
        if ((r = mkdir_0700(tpm)) < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "%s: %s", tpm, strerror(-r));
        _cleanup_free_ char *doc = NULL;
        r = qemuinfra_node_metadata(c, n, &doc, err);
        if (r < 0)
                return r;
        r = write_file_atomic(md, doc, strlen(doc), 0600);
        if (r < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "%s: %s", md, strerror(-r));
        return 0;
}

/* --- metadata ---------------------------------------------------------------------------------- */

const char *qemuinfra_out_of_cluster_endpoint(const qemuinfra_cluster *c) {
        return c->n_nodes ? c->nodes[0].host_address : NULL;
}
const char *qemuinfra_in_cluster_endpoint(const qemuinfra_cluster *c) {
        return c->n_nodes ? c->nodes[0].vpc_ip : NULL;
}

int qemuinfra_node_metadata(const qemuinfra_cluster *c, const qemuinfra_node *n, char **ret, ct_error *err) {
        json_t *o = json_object(), *eps = json_array(), *cps = json_array();
        if (!o || !eps || !cps) {
                json_decref(o);
                json_decref(eps);
                json_decref(cps);
                return oom(err);
        }
        /* Join endpoints: every control plane's join service but the node's own (a control plane
         * joins the others'); control_plane_ips: every control plane's vpc_ip, its etcd peer address. */
        for (size_t i = 0; i < c->n_nodes; i++)
                if (c->nodes[i].control_plane) {
                        char ep[40];
                        snprintf(ep, sizeof ep, "%s:30090", c->nodes[i].vpc_ip);
                        if (&c->nodes[i] != n)
                                json_array_append_new(eps, json_string(ep));
                        json_array_append_new(cps, json_string(c->nodes[i].vpc_ip));
                }
        json_object_set_new(o, "name", json_string(n->name));
        json_object_set_new(o, "role", json_string(n->control_plane ? "control-plane" : "worker"));
        json_object_set_new(o, "vpc_ip", json_string(n->vpc_ip));
        if (n->control_plane)
                json_object_set_new(o, "init_secret_hash", json_string(c->init_secret_hash));
        json_object_set_new(o, "join_endpoints", eps);
        json_object_set_new(o, "control_plane_ips", cps);
        json_object_set_new(o, "uid", json_string(c->uid));
        json_object_set_new(o, "endpoint", json_string(qemuinfra_out_of_cluster_endpoint(c)));
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!s)
                return oom(err);
        /* What the node will read must pass the node's own parser. */
        metadata m = { 0 };
        ct_error perr = CT_ERROR_INIT;
        if (metadata_parse(s, strlen(s), &m, &perr) < 0) {
                free(s);
                char buf[CT_ERROR_DETAIL_MAX + 64];
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "metadata for %s: %s", n->name,
                                    ct_error_format(&perr, buf, sizeof buf));
        }
        metadata_done(&m);
        *ret = s;
        return 0;
}

/* --- start ----------------------------------------------------------------------------------- */

/* QEMU option values double their commas. */
static char *qopt(const char *s) {
        size_t n = 0;
        for (const char *p = s; *p; p++)
                n += *p == ',' ? 2 : 1;
        char *r = malloc(n + 1), *q = r;
        if (!r)
                return NULL;
        for (const char *p = s; *p; p++) {
                *q++ = *p;
                if (*p == ',')
                        *q++ = ',';
        }
        *q = 0;
        return r;
}

static int record_proc(qemuinfra_proc *p, pid_t pid, const char *exe) {
        uint64_t st;
        int r = qi_proc_stat(pid, NULL, &st);
        if (r < 0)
                return r;
        char *e = strdup(exe);
        if (!e)
                return -ENOMEM;
        free(p->exe);
        *p = (qemuinfra_proc) { .pid = pid, .start_time = st, .exe = e };
        return 0;
}

static void tail_of(const char *path, char *buf, size_t size) {
        uint8_t *data = NULL;
        size_t len = 0;
        buf[0] = 0;
        if (read_full_file(path, 1u << 20, &data, &len) < 0)
                return;
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                len--;
        size_t start = len > size - 1 ? len - (size - 1) : 0;
        for (size_t i = start; i < len; i++)
                buf[i - start] = (data[i] == '\n' || data[i] == '\r') ? ' ' : (char) data[i];
        buf[len - start] = 0;
        free(data);
}

/* The caller's record hook (qemuinfra_spec.on_started), right after a pid was recorded. */
static int notify_started(const qemuinfra_spec *s, const qemuinfra_cluster *c, ct_error *err) {
        if (!s->on_started)
                return 0;
        int r = s->on_started(c, s->userdata);
        if (r < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "recording the started process: %s", strerror(-r));
        return 0;
}

static int start_swtpm(const qemuinfra_spec *s, const qemuinfra_cluster *c, qemuinfra_node *n, ct_error *err) {
        _cleanup_free_ char *sock = node_path(n, "swtpm.sock"), *tpm = node_path(n, "tpm"), *log = node_path(n, "swtpm.log");
        _cleanup_free_ char *state_arg = NULL, *ctrl_arg = NULL;
        if (!sock || !tpm || !log)
                return oom(err);
        _cleanup_free_ char *qtpm = qopt(tpm), *qsock = qopt(sock);
        if (!qtpm || !qsock || !(state_arg = xasprintf("dir=%s", qtpm)) ||
            !(ctrl_arg = xasprintf("type=unixio,path=%s", qsock)))
                return oom(err);
        (void) unlink(sock);
        /* --terminate: swtpm ends with its QEMU, so a dead VM never leaves a TPM behind. */
        char *argv[] = { c->swtpm_binary, "socket", "--tpm2", "--tpmstate", state_arg, "--ctrl", ctrl_arg,
                         "--terminate", NULL };
        pid_t pid;
        int r = qi_spawn_daemon(argv, log, n->dir, &pid);
        if (r < 0)
                return ct_error_set(err, r, QI_LAYER, "spawn", "%s: starting %s: %s", n->name, c->swtpm_binary, strerror(-r));
        r = record_proc(&n->swtpm, pid, c->swtpm_binary);
        if (r >= 0 && (r = notify_started(s, c, err)) < 0)
                return r;
        if (r < 0) {
                char t[200];
                tail_of(log, t, sizeof t);
                return ct_error_set(err, -ECHILD, QI_LAYER, "start-failed", "%s: swtpm exited at once: %s", n->name, t);
        }
        for (unsigned waited = 0;; waited += 50) {
                struct stat st;
                if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
                        return 0;
                if (qemuinfra_proc_inspect(&n->swtpm, NULL, 0) != QEMUINFRA_PROC_ALIVE || waited >= SWTPM_SOCKET_WAIT_MS) {
                        char t[200];
                        tail_of(log, t, sizeof t);
                        return ct_error_set(err, -ETIMEDOUT, QI_LAYER, "start-failed",
                                            "%s: swtpm did not create %s: %s", n->name, sock, t);
                }
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* -netdev user,...: the node's own address and hostname by DHCP, host ports on its loopback
 * address, every other control plane's vpc_ip:port through the relay (the etcd peer port only in
 * control planes: workers never talk to etcd). */
char *qemuinfra_node_netdev(const qemuinfra_cluster *c, const qemuinfra_node *n) {
        _cleanup_free_ char *relay = qopt(c->relay_command);
        if (!relay)
                return NULL;
        char *s = xasprintf("user,id=net0,restrict=%s,net=%s,host=10.42.0.1,dns=10.42.0.3,dhcpstart=%s,hostname=%s",
                            c->outbound ? "off" : "on", QEMUINFRA_NODE_CIDR, n->vpc_ip, n->name);
        uint16_t own[QEMUINFRA_N_PORTS + QEMUINFRA_N_CP_PORTS];
        size_t n_own = node_ports(n->control_plane, own);
        for (size_t i = 0; s && i < n_own; i++) {
                char *t = xasprintf("%s,hostfwd=tcp:%s:%u-:%u", s, n->host_address, own[i], own[i]);
                free(s);
                s = t;
        }
        for (size_t k = 0; s && k < c->n_nodes; k++) {
                const qemuinfra_node *cp = &c->nodes[k];
                if (!cp->control_plane || cp == n)
                        continue;
                for (size_t i = 0; s && i < n_own; i++) {
                        char *t = xasprintf("%s,guestfwd=tcp:%s:%u-cmd:%s %s %u", s, cp->vpc_ip, own[i], relay,
                                            cp->host_address, own[i]);
                        free(s);
                        s = t;
                }
        }
        return s;
}

static int start_qemu(const qemuinfra_spec *s, const qemuinfra_cluster *c, qemuinfra_node *n, ct_error *err) {
        _cleanup_free_ char *dir = qopt(n->dir);
        if (!dir)
                return oom(err);
        bool kvm = streq(c->accel, "kvm");
        _cleanup_free_ char *qcode = qopt(c->ovmf_code);
        _cleanup_free_ char *name = xasprintf("%s-%s", c->name, n->name), *mem = xasprintf("%u", c->mem_mib),
                            *smp = xasprintf("%u", c->vcpus),
                            *machine = xasprintf("q35%s", c->secure_boot ? ",smm=on" : ""),
                            *pf0 = xasprintf("if=pflash,format=raw,unit=0,file=%s,readonly=on", qcode ? qcode : ""),
                            *pf1 = xasprintf("if=pflash,format=raw,unit=1,file=%s/vars.fd", dir),
                            *tpmchr = xasprintf("socket,id=chrtpm,path=%s/swtpm.sock", dir),
                            *boot = xasprintf("file=%s/boot.raw,format=raw,if=none,id=disk0,cache=unsafe", dir),
                            *state = xasprintf("file=%s/state.raw,format=raw,if=none,id=disk1", dir),
                            *serial = xasprintf("file,id=ser0,path=%s/console.log,append=on", dir),
                            *report = xasprintf("file,id=ctreport,path=%s/report.log,append=on", dir),
                            *qmp = xasprintf("unix:%s/qmp.sock,server=on,wait=off", dir),
                            *fwcfg = xasprintf("name=opt/constellation/metadata,file=%s/metadata.json", dir),
                            *net = qemuinfra_node_netdev(c, n);
        if (!qcode || !name || !mem || !smp || !machine || !pf0 || !pf1 || !tpmchr || !boot || !state || !serial ||
            !report || !qmp || !fwcfg || !net)
                return oom(err);
        char *argv[80];
        size_t a = 0;
#define ARG(x) argv[a++] = (char *) (x)
        ARG(c->qemu_binary);
        ARG("-name"), ARG(name);
        ARG("-nodefaults"), ARG("-no-user-config");
        ARG("-machine"), ARG(machine);
        ARG("-accel"), ARG(kvm ? "kvm" : "tcg");
        ARG("-cpu"), ARG(kvm ? "host" : "max");
        ARG("-m"), ARG(mem), ARG("-smp"), ARG(smp);
        ARG("-display"), ARG("none"), ARG("-monitor"), ARG("none");
        if (c->secure_boot) {
                ARG("-global"), ARG("driver=cfi.pflash01,property=secure,value=on");
                ARG("-global"), ARG("ICH9-LPC.disable_s3=1");
        }
        ARG("-drive"), ARG(pf0), ARG("-drive"), ARG(pf1);
        ARG("-chardev"), ARG(tpmchr), ARG("-tpmdev"), ARG("emulator,id=tpm0,chardev=chrtpm");
        ARG("-device"), ARG("tpm-tis,tpmdev=tpm0");
        /* boot disk first, state disk second: the guest's /dev/vda and /dev/vdb (disk-mapper) */
        ARG("-drive"), ARG(boot), ARG("-device"), ARG(c->kernel ? "virtio-blk-pci,drive=disk0" : "virtio-blk-pci,drive=disk0,bootindex=0");
        ARG("-drive"), ARG(state), ARG("-device"), ARG("virtio-blk-pci,drive=disk1");
        ARG("-chardev"), ARG(serial), ARG("-serial"), ARG("chardev:ser0");
        ARG("-device"), ARG("virtio-serial-pci,id=vser0");
        ARG("-chardev"), ARG(report), ARG("-device"), ARG("virtserialport,bus=vser0.0,chardev=ctreport,name=ct.report");
        ARG("-qmp"), ARG(qmp);
        ARG("-netdev"), ARG(net);
        /* romfile=: no iPXE option ROM (no network boot attempt from the NIC's ROM) */
        ARG("-device"), ARG("virtio-net-pci,netdev=net0,romfile=");
        ARG("-fw_cfg"), ARG(fwcfg);
        if (c->kernel) {
                ARG("-kernel"), ARG(c->kernel);
                if (c->initrd)
                        ARG("-initrd"), ARG(c->initrd);
                if (c->cmdline)
                        ARG("-append"), ARG(c->cmdline);
        }
        ARG(NULL);
#undef ARG
        _cleanup_free_ char *log = node_path(n, "qemu.log"), *qmp_path = node_path(n, "qmp.sock");
        if (!log || !qmp_path)
                return oom(err);
        (void) unlink(qmp_path);
        pid_t pid;
        int r = qi_spawn_daemon(argv, log, n->dir, &pid);
        if (r < 0)
                return ct_error_set(err, r, QI_LAYER, "spawn", "%s: starting %s: %s", n->name, c->qemu_binary, strerror(-r));
        r = record_proc(&n->qemu, pid, c->qemu_binary);
        if (r >= 0 && (r = notify_started(s, c, err)) < 0)
                return r;
        /* Up = QMP answers query-status; an early exit (a port taken after the probe, a bad
         * option) is reported with QEMU's last words. */
        for (unsigned waited = 0; r >= 0; waited += 100) {
                _cleanup_free_ char *reply = NULL;
                if (access(qmp_path, F_OK) == 0 && qi_qmp_command(qmp_path, "query-status", 5000, &reply) == 0)
                        return 0;
                if (qemuinfra_proc_inspect(&n->qemu, NULL, 0) != QEMUINFRA_PROC_ALIVE || waited >= QEMU_START_WAIT_MS)
                        break;
                struct timespec ts = { 0, 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        char t[300];
        tail_of(log, t, sizeof t);
        return ct_error_set(err, -ECHILD, QI_LAYER, "start-failed", "%s: QEMU did not come up: %s", n->name, t);
}

/* --- stop ------------------------------------------------------------------------------------ */

/* QMP quit first (QEMU closes its files cleanly), then SIGTERM/SIGKILL: each only while the
 * recorded identity holds. -ESTALE: the pid was recycled, nothing was sent. */
static int stop_node_procs(qemuinfra_node *n, ct_error *err) {
        char d[200];
        if (qemuinfra_proc_inspect(&n->qemu, NULL, 0) == QEMUINFRA_PROC_ALIVE) {
                _cleanup_free_ char *qmp = node_path(n, "qmp.sock");
                if (qmp && qi_qmp_command(qmp, "quit", 5000, NULL) == 0)
                        (void) qi_proc_wait_gone(&n->qemu, QEMU_QUIT_WAIT_MS);
        }
        int r = qi_proc_stop(&n->qemu, TERM_WAIT_MS, d, sizeof d);
        if (r < 0 && r != -ESTALE)
                return ct_error_set(err, r, QI_LAYER, "stop-failed", "%s: QEMU: %s", n->name, d);
        int r2 = qi_proc_stop(&n->swtpm, TERM_WAIT_MS, d, sizeof d);
        if (r2 < 0 && r2 != -ESTALE)
                return ct_error_set(err, r2, QI_LAYER, "stop-failed", "%s: swtpm: %s", n->name, d);
        /* A recycled pid is not ours any more: forget it rather than ever signal it. */
        if (r == -ESTALE)
                proc_done(&n->qemu);
        if (r2 == -ESTALE)
                proc_done(&n->swtpm);
        return 0;
}

static int remove_node_files(const qemuinfra_node *n, ct_error *err) {
        for (size_t i = 0; i < ELEMENTSOF(node_files); i++) {
                _cleanup_free_ char *p = node_path(n, node_files[i]);
                if (!p)
                        return oom(err);
                if (unlink(p) < 0 && errno != ENOENT)
                        return ct_error_set(err, -errno, QI_LAYER, "io", "%s: %s", p, strerror(errno));
                _cleanup_free_ char *tmp = xasprintf("%s.tmp", p);
                if (tmp)
                        (void) unlink(tmp);
        }
        /* swtpm's state directory holds only swtpm's files (tpm2-00.permall, .lock, ...). */
        _cleanup_free_ char *tpm = node_path(n, "tpm");
        if (!tpm)
                return oom(err);
        DIR *d = opendir(tpm);
        if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                        if (e->d_type == DT_REG && (strncmp(e->d_name, "tpm2-", 5) == 0 || streq(e->d_name, ".lock")))
                                (void) unlinkat(dirfd(d), e->d_name, 0);
                closedir(d);
                if (rmdir(tpm) < 0)
                        return ct_error_set(err, -errno, QI_LAYER, "leftover", "%s: %s (files not created by this engine?)",
                                            tpm, strerror(errno));
        }
        if (rmdir(n->dir) < 0 && errno != ENOENT)
                return ct_error_set(err, -errno, QI_LAYER, "leftover", "%s: %s (files not created by this engine?)", n->dir,
                                    strerror(errno));
        return 0;
}

/* --- inspect --------------------------------------------------------------------------------- */

bool qemuinfra_node_alive(const qemuinfra_node *n, char *reason, size_t size) {
        char d[200];
        qemuinfra_proc_status s = qemuinfra_proc_inspect(&n->qemu, d, sizeof d);
        if (s != QEMUINFRA_PROC_ALIVE) {
                if (reason)
                        snprintf(reason, size, "qemu %s: %s", qemuinfra_proc_status_to_string(s), d);
                return false;
        }
        s = qemuinfra_proc_inspect(&n->swtpm, d, sizeof d);
        if (s != QEMUINFRA_PROC_ALIVE) {
                if (reason)
                        snprintf(reason, size, "swtpm %s: %s", qemuinfra_proc_status_to_string(s), d);
                return false;
        }
        if (reason && size)
                reason[0] = 0;
        return true;
}

/* --- up -------------------------------------------------------------------------------------- */

static int node_init(qemuinfra_cluster *c, qemuinfra_node *n, bool cp, unsigned i) {
        n->control_plane = cp;
        n->index = i;
        n->name = xasprintf("%s-%u", cp ? "control-plane" : "worker", i);
        n->host_address = xasprintf("127.%u.%u.%u", c->addr_a, c->addr_b, host_octet(cp, i));
        n->vpc_ip = xasprintf("10.42.%u.%u", cp ? 1 : 2, 100 + i);
        n->dir = n->name ? xasprintf("%s/%s", c->dir, n->name) : NULL;
        return n->name && n->host_address && n->vpc_ip && n->dir ? 0 : -ENOMEM;
}

static int cluster_new(const qemuinfra_spec *s, qemuinfra_cluster **ret, ct_error *err) {
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *c = calloc(1, sizeof *c);
        if (!c)
                return oom(err);
        if (s->uid)
                c->uid = strdup(s->uid);
        else {
                uint8_t b[4];
                if (getrandom(b, sizeof b, 0) != (ssize_t) sizeof b)
                        return ct_error_set(err, -EIO, QI_LAYER, "io", "getrandom: %s", strerror(errno));
                c->uid = xasprintf("%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
        }
        c->name = strdup(s->name);
        c->dir = strdup(s->dir);
        c->image = strdup(s->image);
        c->init_secret_hash = strdup(s->init_secret_hash);
        c->relay_command = strdup(s->relay_command);
        if (!c->uid || !c->name || !c->dir || !c->image || !c->init_secret_hash || !c->relay_command)
                return oom(err);
        c->state_disk_bytes = s->state_disk_bytes;
        c->mem_mib = s->mem_mib ? s->mem_mib : 2048;
        c->vcpus = s->vcpus ? s->vcpus : 2;
        c->outbound = s->outbound;
        if ((s->kernel && !(c->kernel = strdup(s->kernel))) || (s->initrd && !(c->initrd = strdup(s->initrd))) ||
            (s->cmdline && !(c->cmdline = strdup(s->cmdline))))
                return oom(err);
        if ((s->kernel && access(s->kernel, R_OK) < 0) || (s->initrd && access(s->initrd, R_OK) < 0))
                return ct_error_set(err, -ENOENT, QI_LAYER, "image", "kernel %s / initrd %s: not readable", s->kernel,
                                    s->initrd ? s->initrd : "(none)");
        int r = find_program(s->qemu_binary, "qemu-system-x86_64", &c->qemu_binary, err);
        if (r < 0)
                return r;
        r = find_program(s->swtpm_binary, "swtpm", &c->swtpm_binary, err);
        if (r < 0)
                return r;
        if (access(s->image, R_OK) < 0)
                return ct_error_set(err, -errno, QI_LAYER, "image", "%s: %s", s->image, strerror(errno));
        char why[160];
        c->secure_boot = s->secure_boot == QEMUINFRA_ON || (s->secure_boot == QEMUINFRA_AUTO && image_signed(s->image, why, sizeof why));
        c->ovmf_code = strdup(s->ovmf_code ? s->ovmf_code : c->secure_boot ? OVMF_DIR "OVMF_CODE_4M.secboot.fd" : OVMF_DIR "OVMF_CODE_4M.fd");
        c->ovmf_vars_template = strdup(s->ovmf_vars ? s->ovmf_vars
                                       : c->secure_boot ? OVMF_DIR "OVMF_VARS_4M.snakeoil.fd"
                                                        : OVMF_DIR "OVMF_VARS_4M.fd");
        if (!c->ovmf_code || !c->ovmf_vars_template)
                return oom(err);
        if (access(c->ovmf_code, R_OK) < 0 || access(c->ovmf_vars_template, R_OK) < 0)
                return ct_error_set(err, -ENOENT, QI_LAYER, "tool-missing", "OVMF firmware %s / %s not found (apt-get install ovmf)",
                                    c->ovmf_code, c->ovmf_vars_template);
        r = mkdir_0700(c->dir);
        if (r < 0)
                return ct_error_set(err, r, QI_LAYER, "io", "%s: %s", c->dir, strerror(-r));
        if (s->accel == QEMUINFRA_ACCEL_TCG) {
                c->accel = strdup("tcg");
                c->accel_reason = strdup("TCG: requested");
        } else {
                r = probe_kvm(c->qemu_binary, c->ovmf_code, c->ovmf_vars_template, c->dir, &c->accel_reason);
                if (r < 0 || !c->accel_reason)
                        return oom(err);
                if (r == 0 && s->accel == QEMUINFRA_ACCEL_KVM)
                        return ct_error_set(err, -EOPNOTSUPP, QI_LAYER, "spec-invalid", "accel kvm requested, but %s",
                                            c->accel_reason);
                c->accel = strdup(r ? "kvm" : "tcg");
        }
        if (!c->accel)
                return oom(err);
        r = pick_addresses(c, s->control_planes, s->workers, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int check_same(const char *what, const char *recorded, const char *given, ct_error *err) {
        if (given && !streq(recorded, given))
                return ct_error_set(err, -EINVAL, QI_LAYER, "state-mismatch",
                                    "%s '%s' differs from the state's '%s' (changing it needs a new cluster: down, then up)",
                                    what, given, recorded);
        return 0;
}

static qemuinfra_node *find_node(qemuinfra_cluster *c, bool cp, unsigned i) {
        for (size_t k = 0; k < c->n_nodes; k++)
                if (c->nodes[k].control_plane == cp && c->nodes[k].index == i)
                        return &c->nodes[k];
        return NULL;
}

int qemuinfra_up(const qemuinfra_spec *s, qemuinfra_cluster **cluster, ct_error *err) {
        int r = check_spec(s, err);
        if (r < 0)
                return r;
        if (!*cluster) {
                r = cluster_new(s, cluster, err);
                if (r < 0)
                        return r;
        } else {
                qemuinfra_cluster *c = *cluster;
                if ((r = check_same("name", c->name, s->name, err)) < 0 || (r = check_same("uid", c->uid, s->uid, err)) < 0 ||
                    (r = check_same("image", c->image, s->image, err)) < 0 || (r = check_same("dir", c->dir, s->dir, err)) < 0)
                        return r;
                /* A moved relay program applies to every QEMU started from now on. */
                if (!streq(c->relay_command, s->relay_command)) {
                        char *rc = strdup(s->relay_command);
                        if (!rc)
                                return oom(err);
                        free(c->relay_command);
                        c->relay_command = rc;
                }
                /* The hash may change (a new init secret): the metadata is rewritten below. */
                if (!streq(c->init_secret_hash, s->init_secret_hash)) {
                        char *h = strdup(s->init_secret_hash);
                        if (!h)
                                return oom(err);
                        free(c->init_secret_hash);
                        c->init_secret_hash = h;
                }
        }
        qemuinfra_cluster *c = *cluster;

        /* Scale down: nodes beyond the counts are stopped and their files removed. */
        for (size_t k = c->n_nodes; k-- > 0;) {
                qemuinfra_node *n = &c->nodes[k];
                if (n->index < (n->control_plane ? s->control_planes : s->workers))
                        continue;
                if ((r = stop_node_procs(n, err)) < 0 || (r = remove_node_files(n, err)) < 0)
                        return r;
                node_done(n);
                memmove(n, n + 1, (c->n_nodes - k - 1) * sizeof *n);
                c->n_nodes--;
        }
        /* Scale up: control planes first (their vpc_ip are in every node's metadata). */
        size_t want = (size_t) s->control_planes + s->workers;
        if (c->n_nodes < want) {
                qemuinfra_node *nn = realloc(c->nodes, want * sizeof *nn);
                if (!nn)
                        return oom(err);
                c->nodes = nn;
                for (unsigned k = 0; k < want; k++) {
                        bool cp = k < s->control_planes;
                        unsigned i = cp ? k : k - s->control_planes;
                        if (find_node(c, cp, i))
                                continue;
                        qemuinfra_node *n = &c->nodes[c->n_nodes];
                        *n = (qemuinfra_node) { 0 };
                        c->n_nodes++;
                        if (node_init(c, n, cp, i) < 0)
                                return oom(err);
                }
        }
        /* Keep the state in node order: control planes by index, then workers. */
        for (size_t a = 1; a < c->n_nodes; a++)
                for (size_t b = a; b > 0; b--) {
                        qemuinfra_node *x = &c->nodes[b - 1], *y = &c->nodes[b];
                        bool swap = (!x->control_plane && y->control_plane) ||
                                    (x->control_plane == y->control_plane && x->index > y->index);
                        if (!swap)
                                break;
                        qemuinfra_node t = *x;
                        *x = *y;
                        *y = t;
                }

        for (size_t k = 0; k < c->n_nodes; k++) {
                qemuinfra_node *n = &c->nodes[k];
                if (qemuinfra_node_alive(n, NULL, 0)) {
                        /* Running nodes keep running; their metadata file is refreshed for the next boot. */
                        if ((r = node_prepare_files(c, n, err)) < 0)
                                return r;
                        continue;
                }
                if ((r = stop_node_procs(n, err)) < 0)
                        return r;
                char d[200];
                if (qemuinfra_proc_inspect(&n->qemu, NULL, 0) == QEMUINFRA_PROC_GONE)
                        proc_done(&n->qemu);
                if (qemuinfra_proc_inspect(&n->swtpm, NULL, 0) == QEMUINFRA_PROC_GONE)
                        proc_done(&n->swtpm);
                if (node_ports_free(n->host_address, n->control_plane, d, sizeof d) < 0)
                        return ct_error_set(err, -EADDRINUSE, QI_LAYER, "address-in-use", "%s: %s", n->name, d);
                if ((r = node_prepare_files(c, n, err)) < 0 || (r = start_swtpm(s, c, n, err)) < 0 ||
                    (r = start_qemu(s, c, n, err)) < 0)
                        return r;
        }
        return 0;
}

int qemuinfra_down(qemuinfra_cluster *c, ct_error *err) {
        int r;
        for (size_t k = 0; k < c->n_nodes; k++)
                if ((r = stop_node_procs(&c->nodes[k], err)) < 0)
                        return r;
        for (size_t k = 0; k < c->n_nodes; k++)
                if ((r = remove_node_files(&c->nodes[k], err)) < 0)
                        return r;
        if (rmdir(c->dir) < 0 && errno != ENOENT)
                return ct_error_set(err, -errno, QI_LAYER, "leftover", "%s: %s (files not created by this engine?)", c->dir,
                                    strerror(errno));
        return 0;
}

/* --- state document ---------------------------------------------------------------------------- */

static json_t *proc_to_json(const qemuinfra_proc *p) {
        if (p->pid <= 0)
                return json_null();
        return json_pack("{s:i, s:I, s:s}", "pid", (json_int_t) p->pid, "start_time", (json_int_t) p->start_time, "exe",
                         p->exe ? p->exe : "");
}

int qemuinfra_state_to_json(const qemuinfra_cluster *c, char **ret, ct_error *err) {
        json_t *nodes = json_array(), *sans = json_array();
        if (!nodes || !sans) {
                json_decref(nodes);
                json_decref(sans);
                return oom(err);
        }
        for (size_t k = 0; k < c->n_nodes; k++) {
                const qemuinfra_node *n = &c->nodes[k];
                json_t *ports = json_array();
                uint16_t np[QEMUINFRA_N_PORTS + QEMUINFRA_N_CP_PORTS];
                size_t nn = node_ports(n->control_plane, np);
                for (size_t i = 0; ports && i < nn; i++)
                        json_array_append_new(ports, json_integer(np[i]));
                if (n->control_plane) {
                        json_array_append_new(sans, json_string(n->host_address));
                        json_array_append_new(sans, json_string(n->vpc_ip));
                }
                json_array_append_new(
                        nodes, json_pack("{s:s, s:s, s:i, s:s, s:s, s:o, s:s, s:o, s:o}", "name", n->name, "role",
                                         n->control_plane ? "control-plane" : "worker", "index", (json_int_t) n->index,
                                         "host_address", n->host_address, "vpc_ip", n->vpc_ip, "ports",
                                         ports ? ports : json_null(), "dir", n->dir, "qemu", proc_to_json(&n->qemu),
                                         "swtpm", proc_to_json(&n->swtpm)));
        }
        json_t *o = json_pack(
                "{s:i, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, "
                "s:s?, s:s?, s:o, s:o, s:s?, s:s?, s:s?}",
                "version", QEMUINFRA_STATE_VERSION, "uid", c->uid, "name", c->name, "dir", c->dir, "image", c->image,
                "state_disk_bytes", (json_int_t) c->state_disk_bytes, "mem_mib", (int) c->mem_mib, "vcpus", (int) c->vcpus,
                "accel", c->accel, "accel_reason", c->accel_reason ? c->accel_reason : "", "secure_boot", c->secure_boot,
                "ovmf_code", c->ovmf_code, "ovmf_vars_template", c->ovmf_vars_template, "qemu_binary", c->qemu_binary,
                "swtpm_binary", c->swtpm_binary, "relay_command", c->relay_command, "outbound", c->outbound,
                "init_secret_hash", c->init_secret_hash, "ip_cidr_node", QEMUINFRA_NODE_CIDR,
                "out_of_cluster_endpoint", qemuinfra_out_of_cluster_endpoint(c), "in_cluster_endpoint",
                qemuinfra_in_cluster_endpoint(c), "api_server_cert_sans", sans, "nodes", nodes, "kernel", c->kernel,
                "initrd", c->initrd, "cmdline", c->cmdline);
        if (!o)
                return oom(err);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!s)
                return oom(err);
        *ret = s;
        return 0;
}

static int bad_state(ct_error *err, const char *what) {
        return ct_error_set(err, -EBADMSG, QI_LAYER, "state-invalid", "state: %s", what);
}

static int str_field(json_t *o, const char *key, char **ret, ct_error *err) {
        json_t *v = json_object_get(o, key);
        if (!json_is_string(v))
                return ct_error_set(err, -EBADMSG, QI_LAYER, "state-invalid", "state: \"%s\" missing or not a string", key);
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : oom(err);
}

static int proc_from_json(json_t *v, qemuinfra_proc *p, ct_error *err) {
        if (json_is_null(v) || !v)
                return 0;
        json_t *pid = json_object_get(v, "pid"), *st = json_object_get(v, "start_time");
        if (!json_is_integer(pid) || !json_is_integer(st) || json_integer_value(pid) <= 0 ||
            json_integer_value(pid) > INT32_MAX || json_integer_value(st) < 0)
                return bad_state(err, "a process record needs a positive pid and a start_time");
        p->pid = (pid_t) json_integer_value(pid);
        p->start_time = (uint64_t) json_integer_value(st);
        int r = str_field(v, "exe", &p->exe, err);
        if (r < 0)
                return r;
        if (p->exe[0] != '/')
                return bad_state(err, "a process record's exe must be an absolute path");
        return 0;
}

int qemuinfra_state_from_json(const char *text, size_t len, qemuinfra_cluster **ret, ct_error *err) {
        if (len > QEMUINFRA_STATE_MAX_SIZE)
                return ct_error_set(err, -EFBIG, QI_LAYER, "state-invalid", "state: %zu bytes, at most %u", len,
                                    QEMUINFRA_STATE_MAX_SIZE);
        json_error_t je;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(o)) {
                json_decref(o);
                return ct_error_set(err, -EBADMSG, QI_LAYER, "state-invalid", "state: not a JSON object (line %d: %s)",
                                    je.line, je.text);
        }
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *c = calloc(1, sizeof *c);
        int r = 0;
        if (!c) {
                r = oom(err);
                goto out;
        }
        json_t *v = json_object_get(o, "version");
        if (!json_is_integer(v) || json_integer_value(v) != QEMUINFRA_STATE_VERSION) {
                r = bad_state(err, "unknown version (want 1)");
                goto out;
        }
        if ((r = str_field(o, "uid", &c->uid, err)) < 0 || (r = str_field(o, "name", &c->name, err)) < 0 ||
            (r = str_field(o, "dir", &c->dir, err)) < 0 || (r = str_field(o, "image", &c->image, err)) < 0 ||
            (r = str_field(o, "accel", &c->accel, err)) < 0 || (r = str_field(o, "accel_reason", &c->accel_reason, err)) < 0 ||
            (r = str_field(o, "ovmf_code", &c->ovmf_code, err)) < 0 ||
            (r = str_field(o, "ovmf_vars_template", &c->ovmf_vars_template, err)) < 0 ||
            (r = str_field(o, "qemu_binary", &c->qemu_binary, err)) < 0 ||
            (r = str_field(o, "swtpm_binary", &c->swtpm_binary, err)) < 0 ||
            (r = str_field(o, "relay_command", &c->relay_command, err)) < 0 ||
            (r = str_field(o, "init_secret_hash", &c->init_secret_hash, err)) < 0)
                goto out;
        if (!valid_uid(c->uid) || !valid_name(c->name, 32) || c->dir[0] != '/' || strstr(c->dir, "/..") ||
            strpbrk(c->dir, ", \t\n") || (!streq(c->accel, "tcg") && !streq(c->accel, "kvm"))) {
                r = bad_state(err, "uid, name, dir or accel out of range");
                goto out;
        }
        json_t *sd = json_object_get(o, "state_disk_bytes"), *mem = json_object_get(o, "mem_mib"),
               *cpus = json_object_get(o, "vcpus");
        if (!json_is_integer(sd) || !json_is_integer(mem) || !json_is_integer(cpus) || json_integer_value(sd) <= 0 ||
            json_integer_value(mem) <= 0 || json_integer_value(mem) > 1 << 20 || json_integer_value(cpus) <= 0 ||
            json_integer_value(cpus) > 256) {
                r = bad_state(err, "state_disk_bytes, mem_mib or vcpus out of range");
                goto out;
        }
        c->state_disk_bytes = (uint64_t) json_integer_value(sd);
        c->mem_mib = (unsigned) json_integer_value(mem);
        c->vcpus = (unsigned) json_integer_value(cpus);
        c->secure_boot = json_is_true(json_object_get(o, "secure_boot"));
        const char *opt_keys[] = { "kernel", "initrd", "cmdline" };
        char **opt_fields[] = { &c->kernel, &c->initrd, &c->cmdline };
        for (size_t k = 0; k < ELEMENTSOF(opt_keys); k++) {
                json_t *ov = json_object_get(o, opt_keys[k]);
                if (!ov || json_is_null(ov))
                        continue;
                if ((r = str_field(o, opt_keys[k], opt_fields[k], err)) < 0)
                        goto out;
        }
        if ((c->kernel && c->kernel[0] != '/') || (c->initrd && c->initrd[0] != '/') || (c->initrd && !c->kernel)) {
                r = bad_state(err, "kernel and initrd must be absolute paths (initrd only with a kernel)");
                goto out;
        }
        c->outbound = json_is_true(json_object_get(o, "outbound"));
        json_t *nodes = json_object_get(o, "nodes");
        if (!json_is_array(nodes) || json_array_size(nodes) > QEMUINFRA_MAX_CONTROL_PLANES + QEMUINFRA_MAX_WORKERS) {
                r = bad_state(err, "\"nodes\" must be an array");
                goto out;
        }
        c->nodes = calloc(json_array_size(nodes) + 1, sizeof *c->nodes);
        if (!c->nodes) {
                r = oom(err);
                goto out;
        }
        size_t i;
        json_t *jn;
        json_array_foreach(nodes, i, jn) {
                qemuinfra_node *n = &c->nodes[c->n_nodes++];
                _cleanup_free_ char *role = NULL;
                if (!json_is_object(jn)) {
                        r = bad_state(err, "a node is not an object");
                        goto out;
                }
                if ((r = str_field(jn, "name", &n->name, err)) < 0 || (r = str_field(jn, "role", &role, err)) < 0 ||
                    (r = str_field(jn, "host_address", &n->host_address, err)) < 0 ||
                    (r = str_field(jn, "vpc_ip", &n->vpc_ip, err)) < 0 || (r = str_field(jn, "dir", &n->dir, err)) < 0 ||
                    (r = proc_from_json(json_object_get(jn, "qemu"), &n->qemu, err)) < 0 ||
                    (r = proc_from_json(json_object_get(jn, "swtpm"), &n->swtpm, err)) < 0)
                        goto out;
                json_t *idx = json_object_get(jn, "index");
                n->control_plane = streq(role, "control-plane");
                if ((!n->control_plane && !streq(role, "worker")) || !json_is_integer(idx) || json_integer_value(idx) < 0 ||
                    json_integer_value(idx) >= (n->control_plane ? QEMUINFRA_MAX_CONTROL_PLANES : QEMUINFRA_MAX_WORKERS)) {
                        r = bad_state(err, "a node's role or index is out of range");
                        goto out;
                }
                n->index = (unsigned) json_integer_value(idx);
                /* Everything about a node follows from the cluster, its role and index: a state
                 * that says otherwise (e.g. a dir elsewhere, which down would clean) is refused. */
                unsigned a, b, h;
                char tail;
                if (sscanf(n->host_address, "127.%u.%u.%u%c", &a, &b, &h, &tail) != 3 || a < 1 || a > 254 || b > 255) {
                        r = bad_state(err, "a node's host_address is not 127.A.B.h");
                        goto out;
                }
                if (i == 0) {
                        c->addr_a = (uint8_t) a;
                        c->addr_b = (uint8_t) b;
                }
                qemuinfra_node want = { 0 };
                if (node_init(c, &want, n->control_plane, n->index) < 0) {
                        node_done(&want);
                        r = oom(err);
                        goto out;
                }
                bool same = streq(want.name, n->name) && streq(want.dir, n->dir) && streq(want.vpc_ip, n->vpc_ip) &&
                            streq(want.host_address, n->host_address);
                node_done(&want);
                if (!same) {
                        r = bad_state(err, "a node's name, dir, vpc_ip or host_address does not follow from its role and index");
                        goto out;
                }
                for (size_t k = 0; k + 1 < c->n_nodes; k++)
                        if (c->nodes[k].control_plane == n->control_plane && c->nodes[k].index == n->index) {
                                r = bad_state(err, "a node appears twice");
                                goto out;
                        }
        }
        if (c->n_nodes == 0 || !c->nodes[0].control_plane) {
                r = bad_state(err, "no control plane first in \"nodes\"");
                goto out;
        }
        *ret = TAKE_PTR(c);
out:
        json_decref(o);
        return r;
}

/* --- init secret ------------------------------------------------------------------------------- */

int qemuinfra_hash_init_secret(const void *secret, size_t len, char **ret_hash, ct_error *err) {
        if (len == 0 || memchr(secret, 0, len))
                return ct_error_set(err, -EINVAL, QI_LAYER, "spec-invalid", "the init secret is empty or holds a NUL byte");
        char salt[CRYPT_GENSALT_OUTPUT_SIZE];
        if (!crypt_gensalt_rn("$2b$", 10, NULL, 0, salt, sizeof salt))
                return ct_error_set(err, -errno ? -errno : -EIO, QI_LAYER, "io", "crypt_gensalt_rn($2b$) failed");
        _cleanup_secret_ secret_t *pw = secret_new_copy(secret, len);
        struct crypt_data *cd = calloc(1, sizeof *cd);
        if (!pw || !cd) {
                free(cd);
                return oom(err);
        }
        const char *out = crypt_r((const char *) pw->data, salt, cd);
        char *h = out && out[0] == '$' ? strdup(out) : NULL;
        erase_memory(cd, sizeof *cd);
        free(cd);
        if (!h)
                return ct_error_set(err, -EIO, QI_LAYER, "io", "bcrypt failed");
        *ret_hash = h;
        return 0;
}

/* --- relay ------------------------------------------------------------------------------------ */

int qemuinfra_relay(int in_fd, int out_fd, const char *addr, uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127 || port == 0)
                return -EINVAL;
        _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        if (connect(s, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        bool up_open = true, down_open = true; /* guest -> node, node -> guest */
        char buf[16384];
        while (up_open || down_open) {
                struct pollfd p[2] = { { .fd = up_open ? in_fd : -1, .events = POLLIN },
                                       { .fd = down_open ? s : -1, .events = POLLIN } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (int k = 0; k < 2; k++) {
                        if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        int from = k == 0 ? in_fd : s, to = k == 0 ? s : out_fd;
                        ssize_t n = read(from, buf, sizeof buf);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0 || loop_write(to, buf, (size_t) n) < 0) {
                                /* one direction ended: pass the half-close on */
                                (void) shutdown(to, SHUT_WR);
                                if (k == 0)
                                        up_open = false;
                                else
                                        down_open = false;
                                if (n < 0 || (n > 0))
                                        up_open = down_open = false;
                        }
                }
        }
        return 0;
}
