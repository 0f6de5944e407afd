/* SPDX-License-Identifier: Apache-2.0 */
/* constellation_qemu_infrastructure: local QEMU VMs (lib/qemuinfra, docs/qemu-infra.md) as a
 * Terraform resource, with the outputs of Constellation's terraform/infrastructure/qemu module
 * (reference constellation.md §4.5): uid, name, out_of_cluster_endpoint, in_cluster_endpoint,
 * api_server_cert_sans, ip_cidr_node, plus the nodes with their loopback addresses.
 *
 *   Create  qemuinfra_up() of a new cluster: OVMF + swtpm + QEMU per node, started in their own
 *           session so they outlive this provider process (Terraform starts a new one per command)
 *   Read    every recorded process is checked by pid + start time + exe; a node that is not alive
 *           is marked (alive = false, status = why) and the plan then shows `nodes` known after
 *           apply with a warning naming the node; nothing running and no working directory left:
 *           the resource is gone
 *   Update  qemuinfra_up() of the recorded cluster: dead nodes restarted (disks and vTPM kept),
 *           the counts converged
 *   Delete  qemuinfra_down(): every recorded process stopped by pid (never by name), files removed
 *
 * What finds the processes again is lib/qemuinfra's state document, kept in the computed attribute
 * `infrastructure_state` (it holds no secret: the init secret's bcrypt hash only).
 *
 * The init secret. Terraform state is no place for secrets, and every value that passes from one
 * resource to another goes through state, unless it comes from the configuration (a variable) or
 * an ephemeral resource, which this provider does not serve. So the init secret is not generated
 * here: it is a write-only input (`init_secret`), given to this resource and to constellation_cluster
 * from the same variable; only its bcrypt hash reaches the nodes' metadata and the state. Changing
 * it later rewrites the hash for nodes started from then on. docs/resources/qemu_infrastructure.md. */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/secret.h"
#include "image-common.h"
#include "provider.h"
#include "validators.h"
#include "qemuinfra/qemuinfra.h"

#define DEFAULT_DIR_PARENT ".constellation-qemu"
#define JOURNAL_SUFFIX ".state.json"
/* Test hook (test-provider-qemu-infra): the provider kills itself with SIGKILL after this many
 * process starts, as Terraform's crash or an OOM kill would, to prove the next apply converges. */
#define TEST_KILL_AFTER_STARTS_ENV "CONSTELLATION_TEST_QEMU_KILL_AFTER_STARTS"
#define GIB (UINT64_C(1) << 30)

static bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *const accels[] = { "auto", "tcg", "kvm", NULL };

static const tf_attr node_attrs[] = {
        { .name = "name", .kind = CTY_STRING, .mode = TF_COMPUTED, .description = "`control-plane-<i>` or `worker-<i>`." },
        { .name = "role", .kind = CTY_STRING, .mode = TF_COMPUTED, .description = "`control-plane` or `worker`." },
        { .name = "host_address", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "The node's loopback address on the host (127.A.B.h): its ports 9000, 9999, 30090, 30080, "
                         "30081 and 6443 are forwarded there." },
        { .name = "vpc_ip", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "The node's address on the cluster's virtual network (ip_cidr_node)." },
        { .name = "qemu_pid", .kind = CTY_NUMBER, .mode = TF_COMPUTED, .description = "Process ID of the node's QEMU." },
        { .name = "swtpm_pid", .kind = CTY_NUMBER, .mode = TF_COMPUTED, .description = "Process ID of the node's swtpm." },
        { .name = "alive", .kind = CTY_BOOL, .mode = TF_COMPUTED,
          .description = "Whether the node's QEMU and swtpm run (checked by pid, start time and program at every refresh)." },
        { .name = "status", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "`running`, or why the node is not (the next apply restarts it)." },
        TF_ATTR_END,
};

static void validate_range(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *d) {
        const int64_t *range = a->validate_arg; /* {min, max} */
        int64_t n;
        if (cty_value_get_int64(v, &n) < 0 || n < range[0] || n > range[1])
                tf_error(d, path, "Invalid attribute value",
                         "Attribute %s must be a whole number from %" PRId64 " to %" PRId64 ".", a->name, range[0],
                         range[1]);
}

static void validate_name(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *d) {
        const char *s;
        size_t len;
        bool ok = cty_value_get_string(v, &s, &len) == 0 && len >= 1 && len <= 32 && s[0] >= 'a' && s[0] <= 'z';
        for (size_t i = 0; ok && i < len; i++)
                ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-';
        if (!ok)
                tf_error(d, path, "Invalid attribute value",
                         "Attribute %s must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter.", a->name);
}

static void validate_uid(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *d) {
        const char *s;
        size_t len;
        bool ok = cty_value_get_string(v, &s, &len) == 0 && len >= 1 && len <= 32;
        for (size_t i = 0; ok && i < len; i++)
                ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
        if (!ok)
                tf_error(d, path, "Invalid attribute value", "Attribute %s must be 1 to 32 characters of a-z and 0-9.",
                         a->name);
}

static void validate_abs_path(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *d) {
        const char *s;
        size_t len;
        if (cty_value_get_string(v, &s, &len) < 0 || len == 0 || s[0] != '/' || strlen(s) != len ||
            strpbrk(s, ", \t\n"))
                tf_error(d, path, "Invalid attribute value",
                         "Attribute %s must be an absolute path without commas or blanks (QEMU's and swtpm's option "
                         "syntax cannot quote them).",
                         a->name);
}

/* Never echoes the value. bcrypt reads at most 72 bytes; a longer secret would be cut silently. */
static void validate_init_secret(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *d) {
        const char *s;
        size_t len;
        if (cty_value_get_string(v, &s, &len) < 0 || len < 16 || len > 72 || memchr(s, 0, len))
                tf_error(d, path, "Invalid attribute value",
                         "Attribute %s must be 16 to 72 bytes without NUL bytes (bcrypt uses at most 72); got %zu bytes.",
                         a->name, cty_value_get_string(v, &s, &len) == 0 ? len : 0);
}

static const int64_t cp_range[] = { 1, QEMUINFRA_MAX_CONTROL_PLANES }, worker_range[] = { 0, QEMUINFRA_MAX_WORKERS },
                     vcpu_range[] = { 1, 64 }, mem_range[] = { 128, 1 << 20 }, disk_range[] = { 1, 1024 };

static const tf_attr infra_attrs[] = {
        { .name = "name", .kind = CTY_STRING, .mode = TF_REQUIRED, .requires_replace = true,
          .description = "Name of the cluster (1-32 of a-z, 0-9, '-', starting with a letter).", .validate = validate_name },
        { .name = "image", .nesting = TF_NEST_SINGLE, .nested = tf_image_input_attrs, .mode = TF_OPTIONAL,
          .requires_replace = true,
          .description = "Node image (the `image` of data source `constellation_image` with csp `qemu`): its reference is "
                         "a file in the provider's `file://` cdn_url release directory, or an absolute path. Exactly one "
                         "of `image` and `image_path`." },
        { .name = "image_path", .kind = CTY_STRING, .mode = TF_OPTIONAL, .requires_replace = true,
          .description = "Absolute path of a raw node image (GPT disk). Exactly one of `image` and `image_path`.",
          .validate = validate_abs_path },
        { .name = "control_plane_count", .kind = CTY_NUMBER, .mode = TF_REQUIRED,
          .description = "Number of control-plane VMs (1-99).", .validate = validate_range, .validate_arg = cp_range },
        { .name = "worker_count", .kind = CTY_NUMBER, .mode = TF_REQUIRED, .description = "Number of worker VMs (0-155).",
          .validate = validate_range, .validate_arg = worker_range },
        { .name = "vcpus", .kind = CTY_NUMBER, .mode = TF_OPTIONAL, .requires_replace = true,
          .description = "Virtual CPUs per VM (1-64, default 2).", .validate = validate_range, .validate_arg = vcpu_range },
        { .name = "memory", .kind = CTY_NUMBER, .mode = TF_OPTIONAL, .requires_replace = true,
          .description = "Memory per VM in MiB (128-1048576, default 2048).", .validate = validate_range,
          .validate_arg = mem_range },
        { .name = "state_disk_size", .kind = CTY_NUMBER, .mode = TF_OPTIONAL, .requires_replace = true,
          .description = "Size of each node's state disk in GiB (1-1024, default 10; a sparse file).",
          .validate = validate_range, .validate_arg = disk_range },
        { .name = "accelerator", .kind = CTY_STRING, .mode = TF_OPTIONAL, .requires_replace = true,
          .description = "`auto` (default: KVM if /dev/kvm boots OVMF, else TCG), `tcg` or `kvm`.",
          .validate = tf_validate_one_of, .validate_arg = accels },
        { .name = "working_dir", .kind = CTY_STRING, .mode = TF_OPTIONAL_COMPUTED, .requires_replace = true,
          .description = "Directory for the VMs' disks, vTPM state, sockets and logs (created 0700; default "
                         "`<terraform working directory>/.constellation-qemu/<name>`). At most 79 characters (unix "
                         "socket paths).",
          .validate = validate_abs_path },
        { .name = "uid", .kind = CTY_STRING, .mode = TF_OPTIONAL_COMPUTED, .requires_replace = true,
          .description = "Unique ID of the cluster (default: 8 random hex digits); it picks the cluster's 127.x "
                         "loopback range.",
          .validate = validate_uid },
        { .name = "init_secret", .kind = CTY_STRING, .mode = TF_REQUIRED, .sensitive = true, .write_only = true,
          .description = "Secret that authorizes the init request to the first control plane (16-72 bytes); give "
                         "constellation_cluster the same value. Write-only: only its bcrypt hash reaches the nodes and "
                         "the state.",
          .validate = validate_init_secret },
        { .name = "out_of_cluster_endpoint", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Endpoint of the cluster from the host: control-plane-0's loopback address." },
        { .name = "in_cluster_endpoint", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Endpoint of the cluster inside its network: control-plane-0's vpc_ip." },
        { .name = "api_server_cert_sans", .kind = CTY_LIST, .elem_kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "Subject alternative names for the API server certificate." },
        { .name = "ip_cidr_node", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "The nodes' network (`10.42.0.0/22`)." },
        { .name = "nodes", .nesting = TF_NEST_LIST, .nested = node_attrs, .mode = TF_COMPUTED,
          .description = "The VMs, control planes first." },
        { .name = "infrastructure_state", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "lib/qemuinfra's state document (JSON): pids with start times and programs, paths, addresses. "
                         "No secret: the init secret's bcrypt hash only." },
        TF_ATTR_END,
};

/* ---- inputs ---------------------------------------------------------------------------------- */

static bool get_uint(const cty_value *obj, const char *name, unsigned dflt, unsigned *ret) {
        const cty_value *v = cty_object_get(obj, name);
        int64_t n;
        if (!v || v->null) {
                *ret = dflt;
                return true;
        }
        if (cty_value_get_int64(v, &n) < 0 || n < 0 || n > UINT_MAX)
                return false;
        *ret = (unsigned) n;
        return true;
}

static void validate_infra(const cty_value *config, tf_diags *d) {
        const cty_value *img = cty_object_get(config, "image"), *path = cty_object_get(config, "image_path");
        bool have_img = img && !img->null, have_path = path && !path->null;
        bool unknown = (img && img->unknown) || (path && path->unknown);
        if (!unknown && have_img == have_path) {
                tf_path p = tf_path_child(NULL, have_img ? "image_path" : "image");
                tf_error(d, &p, "Invalid image", have_img ? "Set only one of image and image_path."
                                                          : "Set image (from constellation_image) or image_path.");
        }
}

/* The image file: image_path, or the image object's reference (absolute, file://, or a file in the
 * provider's file:// release directory beside info.json). */
static int resolve_image(tf_provider_state *p, const cty_value *planned, char ret[static PATH_MAX], tf_diags *d) {
        const char *path = tf_get_string(planned, "image_path");
        const char *attr = "image_path";
        _cleanup_free_ char *url = NULL;
        if (!path) {
                const cty_value *img = cty_object_get(planned, "image");
                const char *ref = tf_get_string(img, "reference"), *version = tf_get_string(img, "version");
                attr = "image";
                if (!ref || !version) {
                        tf_path pa = tf_path_child(NULL, "image");
                        tf_error(d, &pa, "Invalid image", "The image object needs a version and a reference.");
                        return -EINVAL;
                }
                if (ref[0] == '/')
                        path = ref;
                else if (has_prefix(ref, "file://"))
                        path = ref + strlen("file://");
                else {
                        tf_image_path ip;
                        const char *cdn = p->cdn_url ?: TF_DEFAULT_CDN_URL;
                        if (!has_prefix(cdn, "file://") || strchr(ref, '/') || tf_image_short_path(version, &ip) < 0) {
                                tf_path pa = tf_path_child(NULL, "image");
                                tf_error(d, &pa, "Image is not a local file",
                                         "The image's reference \"%s\" names no local file: QEMU VMs boot a file. Set "
                                         "the provider's cdn_url to a file:// release directory (constellation-image "
                                         "publish), or set image_path to the raw image.",
                                         ref);
                                return -EINVAL;
                        }
                        if (tf_image_url(p, &ip, ref, &url) < 0)
                                return -ENOMEM;
                        path = url + strlen("file://");
                }
        }
        if (!realpath(path, ret)) {
                int r = -errno;
                tf_path pa = tf_path_child(NULL, attr);
                tf_error(d, &pa, "Image not found", "The node image %s cannot be opened: %s.", path, strerror(-r));
                return r;
        }
        return 0;
}

/* working_dir, or <cwd>/.constellation-qemu/<name>; its parents are created (the last one 0700). */
static int working_dir(const cty_value *planned, char ret[static PATH_MAX], tf_diags *d) {
        const char *dir = tf_get_string(planned, "working_dir");
        tf_path pa = tf_path_child(NULL, "working_dir");
        if (dir)
                snprintf(ret, PATH_MAX, "%s", dir);
        else {
                char cwd[PATH_MAX];
                if (!getcwd(cwd, sizeof cwd)) {
                        int r = -errno;
                        tf_error(d, &pa, "No working directory", "The provider's current directory is unknown (%s); set "
                                 "working_dir.", strerror(-r));
                        return r;
                }
                if (snprintf(ret, PATH_MAX, "%s/" DEFAULT_DIR_PARENT "/%s", cwd, tf_get_string(planned, "name")) >=
                    PATH_MAX) {
                        tf_error(d, &pa, "Working directory too long", "Set working_dir to a shorter absolute path.");
                        return -ENAMETOOLONG;
                }
        }
        if (strpbrk(ret, ", \t\n")) {
                tf_error(d, &pa, "Invalid working directory",
                         "The VMs' working directory %s contains a comma or a blank, which QEMU's and swtpm's options "
                         "cannot carry: set working_dir.",
                         ret);
                return -EINVAL;
        }
        int r = mkdir_parents_private(ret);
        if (r < 0) {
                tf_error(d, &pa, "Cannot create the working directory", "%s: %s.", ret, strerror(-r));
                return r;
        }
        return 0;
}

/* "<this program> relay": the provider binary is QEMU's guestfwd relay too (main.c). */
static int relay_command(char **ret, tf_diags *d) {
        char exe[PATH_MAX];
        ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (l <= 0) {
                tf_error(d, NULL, "Cannot find the provider program", "/proc/self/exe: %s.", strerror(errno));
                return -EIO;
        }
        exe[l] = 0;
        if (strpbrk(exe, " \t\n'\"\\$,")) {
                tf_error(d, NULL, "Provider path not usable by QEMU",
                         "The provider's path %s contains blanks, quotes or commas; QEMU runs it as the relay between "
                         "nodes and splits its command line. Install the provider under a plain path.",
                         exe);
                return -EINVAL;
        }
        return asprintf(ret, "%s relay", exe) < 0 ? -ENOMEM : 0;
}

static void diag_qemuinfra(tf_diags *d, const char *summary, const ct_error *err) {
        char buf[CT_ERROR_DETAIL_MAX + 64];
        const char *attr = NULL;
        if (err->reason && streq(err->reason, "image"))
                attr = "image";
        else if (err->reason && streq(err->reason, "spec-invalid") && strstr(err->detail, "dir '"))
                attr = "working_dir";
        tf_path pa = tf_path_child(NULL, attr ?: "");
        tf_error(d, attr ? &pa : NULL, summary, "%s.", ct_error_format(err, buf, sizeof buf));
}

/* ---- state <-> cty ---------------------------------------------------------------------------- */

static cty_type *attr_type_of(const cty_value *obj, const char *name) {
        ssize_t i = cty_type_attr_index(obj->type, name);
        return i < 0 ? NULL : obj->type->types[i];
}

static cty_value *nodes_value(const cty_value *obj, const qemuinfra_cluster *c) {
        cty_type *lt = attr_type_of(obj, "nodes");
        _cleanup_(cty_value_freep) cty_value *list = lt ? cty_collection_new(lt) : NULL;
        if (!list)
                return NULL;
        for (size_t k = 0; k < c->n_nodes; k++) {
                const qemuinfra_node *n = &c->nodes[k];
                char reason[512];
                bool alive = qemuinfra_node_alive(n, reason, sizeof reason);
                cty_value *o = cty_object_new(lt->elem);
                if (!o || cty_object_set(o, "name", cty_string_new(n->name)) < 0 ||
                    cty_object_set(o, "role", cty_string_new(n->control_plane ? "control-plane" : "worker")) < 0 ||
                    cty_object_set(o, "host_address", cty_string_new(n->host_address)) < 0 ||
                    cty_object_set(o, "vpc_ip", cty_string_new(n->vpc_ip)) < 0 ||
                    cty_object_set(o, "qemu_pid", cty_number_int(n->qemu.pid)) < 0 ||
                    cty_object_set(o, "swtpm_pid", cty_number_int(n->swtpm.pid)) < 0 ||
                    cty_object_set(o, "alive", cty_bool_new(alive)) < 0 ||
                    cty_object_set(o, "status", cty_string_new(alive ? "running" : reason)) < 0 ||
                    cty_collection_append(list, o) < 0) {
                        cty_value_free(o);
                        return NULL;
                }
        }
        return TAKE_PTR(list);
}

/* base with every computed attribute taken from the cluster. NULL: out of memory. */
static cty_value *state_from_cluster(const cty_value *base, const qemuinfra_cluster *c) {
        _cleanup_(cty_value_freep) cty_value *v = cty_value_copy(base);
        _cleanup_free_ char *json = NULL;
        ct_error err = CT_ERROR_INIT;
        if (!v || qemuinfra_state_to_json(c, &json, &err) < 0)
                return NULL;
        cty_type *lt = attr_type_of(v, "api_server_cert_sans");
        cty_value *sans = lt ? cty_collection_new(lt) : NULL;
        const char *ep = qemuinfra_out_of_cluster_endpoint(c), *in = qemuinfra_in_cluster_endpoint(c);
        cty_value *nodes = nodes_value(v, c);
        if (!nodes) {
                cty_value_free(sans);
                return NULL;
        }
        if (!sans || cty_collection_append(sans, cty_string_new(ep ?: "")) < 0 ||
            cty_collection_append(sans, cty_string_new(in ?: "")) < 0) {
                cty_value_free(sans);
                cty_value_free(nodes);
                return NULL;
        }
        if (cty_object_set(v, "nodes", nodes) < 0) {
                cty_value_free(sans);
                return NULL;
        }
        if (cty_object_set(v, "api_server_cert_sans", sans) < 0 ||
            cty_object_set(v, "uid", cty_string_new(c->uid)) < 0 ||
            cty_object_set(v, "working_dir", cty_string_new(c->dir)) < 0 ||
            cty_object_set(v, "out_of_cluster_endpoint", cty_string_new(ep ?: "")) < 0 ||
            cty_object_set(v, "in_cluster_endpoint", cty_string_new(in ?: "")) < 0 ||
            cty_object_set(v, "ip_cidr_node", cty_string_new(QEMUINFRA_NODE_CIDR)) < 0 ||
            cty_object_set(v, "infrastructure_state", cty_string_new(json)) < 0)
                return NULL;
        return TAKE_PTR(v);
}

/* The recorded cluster; *ret NULL if the state holds none. */
static int cluster_from_state(const cty_value *state, qemuinfra_cluster **ret, tf_diags *d) {
        const char *json = tf_get_string(state, "infrastructure_state");
        ct_error err = CT_ERROR_INIT;
        *ret = NULL;
        if (!json)
                return 0;
        if (qemuinfra_state_from_json(json, strlen(json), ret, &err) < 0) {
                char buf[CT_ERROR_DETAIL_MAX + 64];
                tf_path pa = tf_path_child(NULL, "infrastructure_state");
                tf_error(d, &pa, "Invalid infrastructure state",
                         "The recorded state of the VMs cannot be read (%s). Nothing was stopped or started; if the VMs "
                         "are gone, remove the resource with terraform state rm.",
                         ct_error_format(&err, buf, sizeof buf));
                return -EINVAL;
        }
        return 0;
}

/* ---- CRUD -------------------------------------------------------------------------------------- */

static int fill_spec(tf_provider_state *p, const cty_value *planned, qemuinfra_spec *s, char image[static PATH_MAX],
                     char dir[static PATH_MAX], tf_diags *d) {
        const char *accel = tf_get_string(planned, "accelerator");
        unsigned gib = 0;
        if (!get_uint(planned, "control_plane_count", 1, &s->control_planes) ||
            !get_uint(planned, "worker_count", 0, &s->workers) || !get_uint(planned, "vcpus", 2, &s->vcpus) ||
            !get_uint(planned, "memory", 2048, &s->mem_mib) || !get_uint(planned, "state_disk_size", 10, &gib)) {
                tf_error(d, NULL, "Invalid number", "A count, vcpus, memory or state_disk_size is not a whole number.");
                return -EINVAL;
        }
        s->state_disk_bytes = (uint64_t) gib * GIB;
        s->name = tf_get_string(planned, "name");
        s->uid = tf_get_string(planned, "uid");
        s->accel = !accel || streq(accel, "auto") ? QEMUINFRA_ACCEL_AUTO
                   : streq(accel, "kvm")          ? QEMUINFRA_ACCEL_KVM
                                                  : QEMUINFRA_ACCEL_TCG;
        int r = resolve_image(p, planned, image, d);
        if (r < 0 || (r = working_dir(planned, dir, d)) < 0)
                return r;
        s->image = image;
        s->dir = dir;
        return 0;
}

static int hash_init_secret(const cty_value *config, char **ret, tf_diags *d) {
        const char *sec;
        size_t len;
        ct_error err = CT_ERROR_INIT;
        tf_path pa = tf_path_child(NULL, "init_secret");
        if (cty_value_get_string(cty_object_get(config, "init_secret"), &sec, &len) < 0) {
                tf_error(d, &pa, "Missing init secret", "init_secret must be set (write-only: it is read from the "
                         "configuration at every apply).");
                return -EINVAL;
        }
        if (qemuinfra_hash_init_secret(sec, len, ret, &err) < 0) {
                tf_error(d, &pa, "Invalid init secret", "The init secret cannot be hashed (%s).", err.reason ?: "?");
                return -EINVAL;
        }
        return 0;
}

/* The journal: lib/qemuinfra's state document beside the working directory (<dir>.state.json,
 * 0600), written after every process start during an apply and removed once Terraform has the
 * state. A provider killed in the middle of an apply (Terraform's crash, an OOM kill) leaves it,
 * and the next apply or destroy takes over the processes it records instead of leaking them. */
typedef struct journal {
        char path[PATH_MAX];
        unsigned starts, kill_after;
} journal;

static int journal_init(journal *j, const char *dir) {
        *j = (journal){ 0 };
        const char *k = getenv(TEST_KILL_AFTER_STARTS_ENV);
        if (k)
                j->kill_after = (unsigned) strtoul(k, NULL, 10);
        return snprintf(j->path, sizeof j->path, "%s" JOURNAL_SUFFIX, dir) >= (int) sizeof j->path ? -ENAMETOOLONG : 0;
}

static int journal_save(const qemuinfra_cluster *c, void *userdata) {
        journal *j = userdata;
        _cleanup_free_ char *json = NULL;
        ct_error err = CT_ERROR_INIT;
        int r = qemuinfra_state_to_json(c, &json, &err);
        if (r < 0 || (r = write_file_atomic(j->path, json, strlen(json), 0600)) < 0)
                return r;
        if (j->kill_after && ++j->starts >= j->kill_after)
                (void) raise(SIGKILL);
        return 0;
}

/* The cluster an interrupted apply recorded, or NULL (none, or unreadable: then warned). */
static qemuinfra_cluster *journal_load(const journal *j, tf_diags *d) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        int r = read_full_file(j->path, QEMUINFRA_STATE_MAX_SIZE, &data, &len);
        if (r == -ENOENT)
                return NULL;
        if (r < 0 || qemuinfra_state_from_json((const char *) data, len, &c, &err) < 0) {
                char buf[CT_ERROR_DETAIL_MAX + 64];
                tf_warning(d, NULL, "Unreadable record of an interrupted apply",
                           "%s cannot be read (%s): processes it recorded are not taken over. Stop them with "
                           "constellation-qemu down --state %s.",
                           j->path, r < 0 ? strerror(-r) : ct_error_format(&err, buf, sizeof buf), j->path);
                return NULL;
        }
        tf_warning(d, NULL, "Taking over an interrupted apply",
                   "A previous apply was interrupted after starting VMs; the processes recorded in %s are taken over.",
                   j->path);
        return c;
}

static cty_value *apply_up(tf_provider_state *p, const cty_value *planned, const cty_value *config,
                           qemuinfra_cluster *recorded, tf_diags *d) {
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *c = recorded;
        qemuinfra_spec spec = { 0 };
        char image[PATH_MAX], dir[PATH_MAX];
        _cleanup_free_ char *hash = NULL, *relay = NULL;
        journal j;
        if (fill_spec(p, planned, &spec, image, dir, d) < 0 || hash_init_secret(config, &hash, d) < 0 ||
            relay_command(&relay, d) < 0)
                return c ? state_from_cluster(planned, c) : NULL;
        if (journal_init(&j, c ? c->dir : dir) < 0) {
                tf_path pa = tf_path_child(NULL, "working_dir");
                tf_error(d, &pa, "Working directory too long", "Set working_dir to a shorter absolute path.");
                return c ? state_from_cluster(planned, c) : NULL;
        }
        qemuinfra_cluster *interrupted = journal_load(&j, d);
        if (interrupted) {
                /* Newer than what Terraform has: it records every process started since. */
                qemuinfra_cluster_free(c);
                c = interrupted;
        }
        spec.on_started = journal_save;
        spec.userdata = &j;
        if (c) {
                /* Decided at creation: the image and dir as recorded (a change of either replaces). */
                spec.image = c->image;
                spec.dir = c->dir;
                spec.uid = c->uid;
        }
        spec.init_secret_hash = hash;
        spec.relay_command = relay;
        ct_error err = CT_ERROR_INIT;
        int r = qemuinfra_up(&spec, &c, &err);
        if (r < 0)
                diag_qemuinfra(d, c ? "The VMs did not all start" : "Cannot create the VMs", &err);
        /* Even after a failure: the state records every process started (a failed create is tainted,
         * and its destroy stops them). */
        if (!c)
                return NULL;
        cty_value *v = state_from_cluster(planned, c);
        if (!v && !d->has_error)
                tf_error(d, NULL, "Out of memory", "The provider ran out of memory recording the VMs.");
        if (v)
                (void) unlink(j.path); /* Terraform has the record now */
        return v;
}

static cty_value *create_infra(tf_provider_state *p, const cty_value *planned, const cty_value *config, tf_diags *d) {
        return apply_up(p, planned, config, NULL, d);
}

static cty_value *update_infra(tf_provider_state *p, const cty_value *prior, const cty_value *planned,
                               const cty_value *config, tf_diags *d) {
        qemuinfra_cluster *c = NULL;
        if (cluster_from_state(prior, &c, d) < 0)
                return cty_value_copy(prior);
        return apply_up(p, planned, config, c, d);
}

static cty_value *read_infra(tf_provider_state *p, const cty_value *current, tf_diags *d) {
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *c = NULL;
        if (cluster_from_state(current, &c, d) < 0 || !c)
                return cty_value_copy(current);
        bool any = false;
        for (size_t k = 0; k < c->n_nodes && !any; k++)
                any = qemuinfra_proc_inspect(&c->nodes[k].qemu, NULL, 0) == QEMUINFRA_PROC_ALIVE ||
                      qemuinfra_proc_inspect(&c->nodes[k].swtpm, NULL, 0) == QEMUINFRA_PROC_ALIVE;
        struct stat st;
        if (!any && stat(c->dir, &st) < 0 && errno == ENOENT)
                return NULL; /* nothing runs and nothing is left: gone (plan shows a create) */
        return state_from_cluster(current, c);
}

static void delete_infra(tf_provider_state *p, const cty_value *prior, tf_diags *d) {
        _cleanup_(qemuinfra_cluster_freep) qemuinfra_cluster *c = NULL;
        if (cluster_from_state(prior, &c, d) < 0 || !c)
                return;
        journal j;
        bool have_journal = journal_init(&j, c->dir) == 0;
        if (have_journal) {
                qemuinfra_cluster *interrupted = journal_load(&j, d);
                if (interrupted) {
                        qemuinfra_cluster_free(c);
                        c = interrupted;
                }
        }
        ct_error err = CT_ERROR_INIT;
        if (qemuinfra_down(c, &err) < 0) {
                diag_qemuinfra(d, "Cannot remove the VMs", &err);
                return;
        }
        if (have_journal)
                (void) unlink(j.path);
        /* The default parent (<cwd>/.constellation-qemu) goes too once it is empty. */
        char *slash = strrchr(c->dir, '/');
        if (slash && slash > c->dir && slash - c->dir >= (ptrdiff_t) strlen("/" DEFAULT_DIR_PARENT) &&
            !strncmp(slash - strlen("/" DEFAULT_DIR_PARENT), "/" DEFAULT_DIR_PARENT, strlen("/" DEFAULT_DIR_PARENT))) {
                *slash = 0;
                (void) rmdir(c->dir); /* ENOTEMPTY: another cluster's directory is there */
        }
}

/* A dead node or a changed count: the nodes and the recorded processes change at apply. */
static int plan_infra(tf_provider_state *p, const cty_value *prior, cty_value *planned, tf_diags *d) {
        if (!prior || prior->null)
                return 0;
        bool change = false;
        static const char *const counts[] = { "control_plane_count", "worker_count" };
        for (size_t i = 0; i < ELEMENTSOF(counts); i++)
                change = change || !cty_value_equal(cty_object_get(prior, counts[i]), cty_object_get(planned, counts[i]));
        const cty_value *nodes = cty_object_get(prior, "nodes");
        size_t n = 0;
        if (nodes && !nodes->null && !nodes->unknown && cty_value_length(nodes, &n) == 0)
                for (size_t k = 0; k < n; k++) {
                        const cty_value *node = cty_index_get(nodes, k);
                        bool alive = true;
                        if (cty_value_get_bool(cty_object_get(node, "alive"), &alive) == 0 && !alive) {
                                tf_path pn = tf_path_child(NULL, "nodes");
                                tf_warning(d, &pn, "VM not running",
                                           "Node %s is not running (%s). Apply restarts it (replacing its QEMU and swtpm "
                                           "processes; its state disk, vTPM state and firmware variables are kept).",
                                           tf_get_string(node, "name") ?: "?", tf_get_string(node, "status") ?: "?");
                                change = true;
                        }
                }
        if (!change)
                return 0;
        static const char *const recomputed[] = { "nodes", "infrastructure_state" };
        for (size_t i = 0; i < ELEMENTSOF(recomputed); i++) {
                cty_type *t = attr_type_of(planned, recomputed[i]);
                if (!t || cty_object_set(planned, recomputed[i], cty_unknown(t)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

const tf_resource_ops tf_resource_qemu_infrastructure = {
        .type_name = "constellation_qemu_infrastructure",
        .attrs = infra_attrs,
        .description = "Local QEMU VMs for a Constellation cluster: control planes and workers from the node image, each "
                       "with OVMF, its own swtpm vTPM and state disk, on QEMU user networking bound to loopback addresses "
                       "only (no libvirt, bridge, tap or root). The outputs mirror Constellation's qemu infrastructure "
                       "module.",
        .validate = validate_infra,
        .plan = plan_infra,
        .create = create_infra,
        .update = update_infra,
        .read = read_infra,
        .delete = delete_infra,
};
