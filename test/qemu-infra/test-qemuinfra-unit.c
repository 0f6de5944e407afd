/* SPDX-License-Identifier: Apache-2.0 */
/* lib/qemuinfra without VMs: the state document (round trip and every rejection), process
 * identity (alive, recycled by start time, recycled by exe, gone, never started), spec
 * refusals, the metadata document, the init secret hash, the relay's loopback-only rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <limits.h>
#include <stdio.h>

#include "metadata/metadata.h"
#include "qemuinfra/qemuinfra.h"

static const char *HASH = "$2b$10$blVHZ84o./l.Bi..I0r1w.Vl6551TCLlqsOmX9lOGASiJekuCq4Ua";

static char *state_doc(const char *patch_key, const char *patch_value) {
        /* A valid document; optionally one top-level member replaced by raw JSON. */
        char *s = NULL;
        const char *nodes =
                "[{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"index\":0,\"host_address\":\"127.9.8.1\","
                "\"vpc_ip\":\"10.42.1.100\",\"ports\":[9000],\"dir\":\"/tmp/x/control-plane-0\","
                "\"qemu\":{\"pid\":123,\"start_time\":456,\"exe\":\"/usr/bin/qemu-system-x86_64\"},\"swtpm\":null},"
                "{\"name\":\"worker-0\",\"role\":\"worker\",\"index\":0,\"host_address\":\"127.9.8.100\","
                "\"vpc_ip\":\"10.42.2.100\",\"ports\":[9000],\"dir\":\"/tmp/x/worker-0\",\"qemu\":null,\"swtpm\":null}]";
        const char *keys[] = { "version", "uid", "name", "dir", "image", "state_disk_bytes", "mem_mib", "vcpus", "accel",
                               "accel_reason", "secure_boot", "ovmf_code", "ovmf_vars_template", "qemu_binary",
                               "swtpm_binary", "relay_command", "outbound", "init_secret_hash", "nodes" };
        char hash_json[80];
        snprintf(hash_json, sizeof hash_json, "\"%s\"", HASH);
        const char *vals[] = { "1", "\"abc123\"", "\"mini\"", "\"/tmp/x\"", "\"/tmp/img.raw\"", "1048576", "256", "1",
                               "\"tcg\"", "\"TCG: requested\"", "false", "\"/usr/share/OVMF/OVMF_CODE_4M.fd\"",
                               "\"/usr/share/OVMF/OVMF_VARS_4M.fd\"", "\"/usr/bin/qemu-system-x86_64\"",
                               "\"/usr/bin/swtpm\"", "\"/usr/bin/constellation-qemu relay\"", "false", hash_json, nodes };
        size_t cap = 8192, len = 0;
        s = malloc(cap);
        assert_non_null(s);
        len += (size_t) snprintf(s + len, cap - len, "{");
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                const char *v = vals[i];
                if (patch_key && strcmp(patch_key, keys[i]) == 0) {
                        if (!patch_value)
                                continue; /* drop the member */
                        v = patch_value;
                }
                len += (size_t) snprintf(s + len, cap - len, "%s\"%s\":%s", len > 1 ? "," : "", keys[i], v);
        }
        snprintf(s + len, cap - len, "}");
        return s;
}

static void expect_state_invalid(const char *doc, const char *detail_part) {
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(qemuinfra_state_from_json(doc, strlen(doc), &c, &err), -EBADMSG);
        assert_null(c);
        assert_string_equal(err.reason, "state-invalid");
        if (!strstr(err.detail, detail_part))
                fail_msg("detail '%s' lacks '%s'", err.detail, detail_part);
}

static void test_state_round_trip(void **state) {
        (void) state;
        char *doc = state_doc(NULL, NULL);
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(qemuinfra_state_from_json(doc, strlen(doc), &c, &err), 0);
        assert_int_equal(c->n_nodes, 2);
        assert_int_equal(c->nodes[0].qemu.pid, 123);
        assert_int_equal(c->nodes[0].qemu.start_time, 456);
        assert_true(c->nodes[0].control_plane);
        assert_false(c->nodes[1].control_plane);
        assert_string_equal(qemuinfra_out_of_cluster_endpoint(c), "127.9.8.1");
        assert_string_equal(qemuinfra_in_cluster_endpoint(c), "10.42.1.100");
        char *out = NULL;
        assert_int_equal(qemuinfra_state_to_json(c, &out, &err), 0);
        qemuinfra_cluster *c2 = NULL;
        assert_int_equal(qemuinfra_state_from_json(out, strlen(out), &c2, &err), 0);
        char *out2 = NULL;
        assert_int_equal(qemuinfra_state_to_json(c2, &out2, &err), 0);
        assert_string_equal(out, out2);
        assert_non_null(strstr(out, "\"ip_cidr_node\": \"10.42.0.0/22\""));
        assert_non_null(strstr(out, "\"api_server_cert_sans\": [\n    \"127.9.8.1\",\n    \"10.42.1.100\"\n  ]"));

        /* Metadata: the node's own parser accepts it; the worker gets no hash. */
        char *md = NULL;
        assert_int_equal(qemuinfra_node_metadata(c, &c->nodes[0], &md, &err), 0);
        metadata m = { 0 };
        assert_int_equal(metadata_parse(md, strlen(md), &m, &err), 0);
        assert_int_equal(m.role, METADATA_ROLE_CONTROL_PLANE);
        assert_string_equal(m.init_secret_hash, HASH);
        assert_string_equal(m.vpc_ip, "10.42.1.100");
        assert_string_equal(m.endpoint, "127.9.8.1");
        assert_int_equal(m.n_join_endpoints, 0); /* a control plane never joins itself */
        assert_int_equal(m.n_control_plane_ips, 1);
        assert_string_equal(m.control_plane_ips[0], "10.42.1.100");
        metadata_done(&m);
        free(md);
        assert_int_equal(qemuinfra_node_metadata(c, &c->nodes[1], &md, &err), 0);
        assert_int_equal(metadata_parse(md, strlen(md), &m, &err), 0);
        assert_int_equal(m.role, METADATA_ROLE_WORKER);
        assert_null(m.init_secret_hash);
        assert_string_equal(m.name, "worker-0");
        assert_int_equal(m.n_join_endpoints, 1);
        assert_string_equal(m.join_endpoints[0], "10.42.1.100:30090");
        metadata_done(&m);
        free(md);

        free(out);
        free(out2);
        qemuinfra_cluster_free(c);
        qemuinfra_cluster_free(c2);
        free(doc);
}

static bool has_part(const char *list, const char *part) {
        /* part is one of the comma-separated members of list */
        size_t n = strlen(part);
        for (const char *p = list; (p = strstr(p, part)); p += n)
                if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
                        return true;
        return false;
}

/* Two control planes and a worker: every control plane's vpc_ip reaches it from every node (its
 * etcd peer URL), the etcd peer port only between control planes; metadata per role. */
static void test_several_control_planes(void **state) {
        (void) state;
        const char *nodes =
                "[{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"index\":0,\"host_address\":\"127.9.8.1\","
                "\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/tmp/x/control-plane-0\",\"qemu\":null,\"swtpm\":null},"
                "{\"name\":\"control-plane-1\",\"role\":\"control-plane\",\"index\":1,\"host_address\":\"127.9.8.2\","
                "\"vpc_ip\":\"10.42.1.101\",\"dir\":\"/tmp/x/control-plane-1\",\"qemu\":null,\"swtpm\":null},"
                "{\"name\":\"worker-0\",\"role\":\"worker\",\"index\":0,\"host_address\":\"127.9.8.100\","
                "\"vpc_ip\":\"10.42.2.100\",\"dir\":\"/tmp/x/worker-0\",\"qemu\":null,\"swtpm\":null}]";
        char *doc = state_doc("nodes", nodes);
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(qemuinfra_state_from_json(doc, strlen(doc), &c, &err), 0);
        assert_int_equal(c->n_nodes, 3);
        const char *relay = "cmd:/usr/bin/constellation-qemu relay";

        char *cp0 = qemuinfra_node_netdev(c, &c->nodes[0]), *cp1 = qemuinfra_node_netdev(c, &c->nodes[1]),
             *w0 = qemuinfra_node_netdev(c, &c->nodes[2]);
        assert_non_null(cp0);
        assert_non_null(cp1);
        assert_non_null(w0);
        char want[256];
        /* Each node: its own DHCP address; its ports on its own loopback address only. */
        assert_true(has_part(cp0, "dhcpstart=10.42.1.100"));
        assert_true(has_part(cp1, "dhcpstart=10.42.1.101"));
        assert_true(has_part(cp0, "hostfwd=tcp:127.9.8.1:2380-:2380"));
        assert_true(has_part(cp1, "hostfwd=tcp:127.9.8.2:2380-:2380"));
        assert_true(has_part(cp1, "hostfwd=tcp:127.9.8.2:30090-:30090"));
        /* the join service's attestation-config update port, for constellation_cluster on the host */
        assert_true(has_part(cp0, "hostfwd=tcp:127.9.8.1:30091-:30091"));
        assert_false(has_part(w0, "hostfwd=tcp:127.9.8.100:30091-:30091"));
        assert_false(has_part(w0, "hostfwd=tcp:127.9.8.100:2380-:2380")); /* no etcd on a worker */
        assert_true(has_part(w0, "hostfwd=tcp:127.9.8.100:30090-:30090"));
        /* control-plane-1's peer URL https://10.42.1.101:2380 from control-plane-0, and back. */
        snprintf(want, sizeof want, "guestfwd=tcp:10.42.1.101:2380-%s 127.9.8.2 2380", relay);
        assert_true(has_part(cp0, want));
        snprintf(want, sizeof want, "guestfwd=tcp:10.42.1.100:2380-%s 127.9.8.1 2380", relay);
        assert_true(has_part(cp1, want));
        snprintf(want, sizeof want, "guestfwd=tcp:10.42.1.100:30090-%s 127.9.8.1 30090", relay);
        assert_true(has_part(cp1, want));
        assert_true(has_part(w0, want));
        snprintf(want, sizeof want, "guestfwd=tcp:10.42.1.101:30090-%s 127.9.8.2 30090", relay);
        assert_true(has_part(w0, want));
        /* Nobody forwards its own address, and workers get no etcd peer relay. */
        assert_null(strstr(cp0, "guestfwd=tcp:10.42.1.100:"));
        assert_null(strstr(cp1, "guestfwd=tcp:10.42.1.101:"));
        assert_null(strstr(w0, ":2380"));
        assert_null(strstr(w0, "guestfwd=tcp:10.42.2.100"));

        /* Metadata: each control plane joins the others; everyone learns every control plane's vpc_ip. */
        for (size_t k = 0; k < 3; k++) {
                char *md = NULL;
                metadata m = { 0 };
                assert_int_equal(qemuinfra_node_metadata(c, &c->nodes[k], &md, &err), 0);
                assert_int_equal(metadata_parse(md, strlen(md), &m, &err), 0);
                assert_int_equal(m.n_control_plane_ips, 2);
                assert_string_equal(m.control_plane_ips[0], "10.42.1.100");
                assert_string_equal(m.control_plane_ips[1], "10.42.1.101");
                assert_true(metadata_is_control_plane_ip(&m, "10.42.1.101"));
                assert_false(metadata_is_control_plane_ip(&m, "10.42.2.100"));
                if (k == 0) {
                        assert_int_equal(m.n_join_endpoints, 1);
                        assert_string_equal(m.join_endpoints[0], "10.42.1.101:30090");
                } else if (k == 1) {
                        assert_int_equal(m.n_join_endpoints, 1);
                        assert_string_equal(m.join_endpoints[0], "10.42.1.100:30090");
                } else
                        assert_int_equal(m.n_join_endpoints, 2);
                metadata_done(&m);
                free(md);
        }
        /* The state lists each node's forwarded ports: the etcd peer port on control planes only. */
        char *out = NULL;
        assert_int_equal(qemuinfra_state_to_json(c, &out, &err), 0);
        assert_non_null(strstr(out, "\"ports\": [\n        9000,\n        9999,\n        30090,\n        30080,\n"
                                    "        30081,\n        6443,\n        2380,\n        30091\n      ]"));
        free(out);
        free(cp0);
        free(cp1);
        free(w0);
        qemuinfra_cluster_free(c);
        free(doc);
}

static void test_state_rejections(void **state) {
        (void) state;
        expect_state_invalid("not json", "not a JSON object");
        expect_state_invalid("[]", "not a JSON object");
        expect_state_invalid("{\"version\":1,\"version\":1}", "not a JSON object"); /* duplicate key */
        struct {
                const char *key, *value, *detail;
        } cases[] = {
                { "version", "2", "unknown version" },
                { "version", NULL, "unknown version" },
                { "uid", NULL, "\"uid\" missing" },
                { "uid", "\"UPPER\"", "out of range" },
                { "name", "7", "\"name\" missing or not a string" },
                { "dir", "\"relative\"", "out of range" },
                { "accel", "\"hvf\"", "out of range" },
                { "state_disk_bytes", "0", "state_disk_bytes" },
                { "vcpus", "1000", "state_disk_bytes, mem_mib or vcpus" },
                { "init_secret_hash", NULL, "init_secret_hash" },
                { "nodes", "{}", "\"nodes\" must be an array" },
                { "nodes", "[1]", "not an object" },
                { "nodes", "[{\"name\":\"x\",\"role\":\"boss\",\"index\":0,\"host_address\":\"127.1.1.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/d\"}]",
                  "role or index" },
                { "nodes", "[{\"name\":\"x\",\"role\":\"worker\",\"index\":155,\"host_address\":\"127.1.1.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/d\"}]",
                  "role or index" },
                { "nodes", "[{\"name\":\"x\",\"role\":\"worker\",\"index\":0,\"host_address\":\"10.1.1.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/d\"}]",
                  "not 127.A.B.h" },
                { "nodes", "[{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"index\":0,\"host_address\":\"127.9.8.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/etc\"}]",
                  "does not follow from its role and index" },
                { "nodes", "[{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"index\":0,\"host_address\":\"127.9.8.1\",\"vpc_ip\":\"10.42.2.100\",\"dir\":\"/tmp/x/control-plane-0\"}]",
                  "does not follow from its role and index" },
                { "nodes", "[{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"index\":0,\"host_address\":\"127.9.8.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/tmp/x/control-plane-0\"},"
                  "{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"index\":0,\"host_address\":\"127.9.8.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/tmp/x/control-plane-0\"}]",
                  "appears twice" },
                { "nodes", "[{\"name\":\"worker-0\",\"role\":\"worker\",\"index\":0,\"host_address\":\"127.9.8.100\",\"vpc_ip\":\"10.42.2.100\",\"dir\":\"/tmp/x/worker-0\"}]",
                  "no control plane first" },
                { "nodes", "[]", "no control plane first" },
                { "dir", "\"/tmp/x/../etc\"", "out of range" },
                { "nodes", "[{\"name\":\"x\",\"role\":\"worker\",\"index\":0,\"host_address\":\"127.1.1.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/d\",\"qemu\":{\"pid\":-1,\"start_time\":1,\"exe\":\"/q\"}}]",
                  "positive pid" },
                { "nodes", "[{\"name\":\"x\",\"role\":\"worker\",\"index\":0,\"host_address\":\"127.1.1.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/d\",\"qemu\":{\"pid\":5,\"start_time\":1,\"exe\":\"qemu\"}}]",
                  "absolute path" },
                { "nodes", "[{\"name\":\"x\",\"role\":\"worker\",\"index\":0,\"host_address\":\"127.1.1.1\",\"vpc_ip\":\"10.42.1.100\",\"dir\":\"/d\",\"swtpm\":{\"pid\":5,\"exe\":\"/s\"}}]",
                  "start_time" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *doc = state_doc(cases[i].key, cases[i].value);
                expect_state_invalid(doc, cases[i].detail);
                free(doc);
        }
        /* Over the size cap: refused before parsing. */
        size_t big = QEMUINFRA_STATE_MAX_SIZE + 1;
        char *doc = malloc(big + 1);
        assert_non_null(doc);
        memset(doc, ' ', big);
        doc[big] = 0;
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(qemuinfra_state_from_json(doc, big, &c, &err), -EFBIG);
        free(doc);
}

static uint64_t my_start_time(void) {
        FILE *f = fopen("/proc/self/stat", "re");
        assert_non_null(f);
        char buf[1024];
        assert_non_null(fgets(buf, sizeof buf, f));
        fclose(f);
        char *p = strrchr(buf, ')') + 2;
        for (int field = 3; field < 22; field++)
                p = strchr(p, ' ') + 1;
        return strtoull(p, NULL, 10);
}

static void test_proc_identity(void **state) {
        (void) state;
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        assert_true(n > 0);
        exe[n] = 0;
        char d[256];
        qemuinfra_proc p = { .pid = getpid(), .start_time = my_start_time(), .exe = exe };
        assert_int_equal(qemuinfra_proc_inspect(&p, d, sizeof d), QEMUINFRA_PROC_ALIVE);
        p.start_time++;
        assert_int_equal(qemuinfra_proc_inspect(&p, d, sizeof d), QEMUINFRA_PROC_RECYCLED);
        assert_non_null(strstr(d, "now belongs to another process"));
        p.start_time--;
        p.exe = "/usr/bin/qemu-system-x86_64";
        assert_int_equal(qemuinfra_proc_inspect(&p, d, sizeof d), QEMUINFRA_PROC_RECYCLED);
        assert_non_null(strstr(d, "does not run /usr/bin/qemu-system-x86_64"));
        qemuinfra_proc none = { 0 };
        assert_int_equal(qemuinfra_proc_inspect(&none, d, sizeof d), QEMUINFRA_PROC_NOT_STARTED);
        qemuinfra_proc gone = { .pid = INT32_MAX, .start_time = 1, .exe = exe }; /* above pid_max */
        assert_int_equal(qemuinfra_proc_inspect(&gone, d, sizeof d), QEMUINFRA_PROC_GONE);
        assert_string_equal(qemuinfra_proc_status_to_string(QEMUINFRA_PROC_RECYCLED), "pid-recycled");
}

static void expect_spec_invalid(const qemuinfra_spec *s, const char *detail_part) {
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_true(qemuinfra_up(s, &c, &err) < 0);
        assert_null(c);
        assert_string_equal(err.reason, "spec-invalid");
        if (!strstr(err.detail, detail_part))
                fail_msg("detail '%s' lacks '%s'", err.detail, detail_part);
}

static void test_spec_refusals(void **state) {
        (void) state;
        const qemuinfra_spec good = { .name = "mini", .image = "/nonexistent.raw", .dir = "/tmp/ctqi-unit",
                                      .control_planes = 1, .workers = 1, .state_disk_bytes = 1 << 20,
                                      .init_secret_hash = HASH, .relay_command = "/usr/bin/true relay" };
        qemuinfra_spec s = good;
        s.name = "Mini";
        expect_spec_invalid(&s, "name 'Mini'");
        s = good, s.name = "a-";
        expect_spec_invalid(&s, "name 'a-'");
        s = good, s.uid = "x_y";
        expect_spec_invalid(&s, "uid 'x_y'");
        s = good, s.control_planes = 0;
        expect_spec_invalid(&s, "control_planes 0");
        s = good, s.control_planes = 100;
        expect_spec_invalid(&s, "control_planes 100");
        s = good, s.workers = 156;
        expect_spec_invalid(&s, "workers 156");
        s = good, s.state_disk_bytes = 4097;
        expect_spec_invalid(&s, "state disk size");
        s = good, s.init_secret_hash = "plain";
        expect_spec_invalid(&s, "init_secret_hash");
        s = good, s.dir = "relative";
        expect_spec_invalid(&s, "absolute");
        s = good, s.dir = "/tmp/a,b";
        expect_spec_invalid(&s, "commas or blanks");
        s = good, s.relay_command = "constellation-qemu relay";
        expect_spec_invalid(&s, "relay command");
        char longdir[120];
        memset(longdir, 'd', sizeof longdir - 1);
        longdir[0] = '/';
        longdir[sizeof longdir - 1] = 0;
        s = good, s.dir = longdir;
        expect_spec_invalid(&s, "too long for the unix sockets");
        /* A valid spec with a missing image: refused before anything is created. */
        qemuinfra_cluster *c = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(qemuinfra_up(&good, &c, &err), -ENOENT);
        assert_string_equal(err.reason, "image");
        assert_null(c);
        assert_int_equal(access("/tmp/ctqi-unit", F_OK), -1);
}

static void test_init_secret_hash(void **state) {
        (void) state;
        char *h = NULL;
        ct_error err = CT_ERROR_INIT;
        assert_int_equal(qemuinfra_hash_init_secret("s3cret-s3cret", 13, &h, &err), 0);
        assert_true(metadata_valid_bcrypt_hash(h));
        assert_memory_equal(h, "$2b$10$", 7);
        struct crypt_data cd = { 0 };
        assert_string_equal(crypt_r("s3cret-s3cret", h, &cd), h);
        assert_string_not_equal(crypt_r("s3cret-s3creT", h, &cd), h);
        free(h);
        h = NULL;
        assert_int_equal(qemuinfra_hash_init_secret("a\0b", 3, &h, &err), -EINVAL);
        assert_null(h);
        assert_int_equal(qemuinfra_hash_init_secret("", 0, &h, &err), -EINVAL);
}

static void test_relay_loopback_only(void **state) {
        (void) state;
        assert_int_equal(qemuinfra_relay(0, 1, "10.0.2.2", 30090), -EINVAL);
        assert_int_equal(qemuinfra_relay(0, 1, "0.0.0.0", 30090), -EINVAL);
        assert_int_equal(qemuinfra_relay(0, 1, "localhost", 30090), -EINVAL);
        assert_int_equal(qemuinfra_relay(0, 1, "127.0.0.1", 0), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state_round_trip), cmocka_unit_test(test_state_rejections),
                cmocka_unit_test(test_proc_identity),    cmocka_unit_test(test_spec_refusals),
                cmocka_unit_test(test_init_secret_hash), cmocka_unit_test(test_relay_loopback_only),
                cmocka_unit_test(test_several_control_planes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
