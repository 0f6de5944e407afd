/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets do not outlive a request in the provider's memory (issue 12, item 6). The provider's
 * RPC path (tfplugin_handle, what the gRPC handler runs) is driven in this process with
 * constellation_cluster requests that carry planted secrets (master_secret, init_secret,
 * gcp.service_account_key, the import URI's masterSecret); afterwards every writable mapping of the
 * process (heap, malloc arenas or ASan's allocator regions, the stack; resident pages) is read back
 * through /proc/self/mem (the kernel reads: no sanitizer sees it) as a core dump would see it, and no
 * 24-character piece of a planted secret, nor 12 bytes of the master secret's binary form, may
 * be left. A control at the end shows the scan finds a secret freed without wiping.
 *
 * The planted secrets are never stored as a whole by the scanner: each is a periodic hex pattern
 * (character k is "0123456789abcdef"[(a*k + b) % 16]) and the scan recomputes it, so the needle
 * itself is not in memory to be found. */
#include <fcntl.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/secret.h"
#include "provider.h"

struct pattern {
        const char *what;
        unsigned a, b; /* a odd: k -> (a*k + b) % 16 is a bijection on each period */
        size_t len;
};
static const struct pattern master = { "master_secret", 7, 3, 64 };
static const struct pattern init_secret = { "init_secret", 5, 9, 48 };
static const struct pattern sa_key = { "gcp.service_account_key", 3, 1, 56 };
#define HEX "0123456789abcdef"
#define WINDOW 24     /* characters of a secret that count as a leak */
#define BIN_WINDOW 12 /* bytes of the master secret's binary form */

static unsigned nibble(const struct pattern *p, size_t k) {
        return (p->a * (unsigned) k + p->b) % 16;
}

static char *pattern_string(const struct pattern *p) {
        char *s = malloc(p->len + 1);
        assert_non_null(s);
        for (size_t k = 0; k < p->len; k++)
                s[k] = HEX[nibble(p, k)];
        s[p->len] = 0;
        return s;
}

static int hexval(uint8_t c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Inverse of a mod 16 (a odd). */
static unsigned inv16(unsigned a) {
        for (unsigned x = 1; x < 16; x += 2)
                if ((a * x) % 16 == 1)
                        return x;
        return 0;
}

/* Does buf[i..] start WINDOW characters of the pattern (at any phase)? */
static bool text_hit(const struct pattern *p, const uint8_t *buf, size_t n, size_t i) {
        if (n - i < WINDOW)
                return false;
        int v = hexval(buf[i]);
        if (v < 0)
                return false;
        /* phase k with (a*k + b) % 16 == v */
        unsigned k = (inv16(p->a) * (((unsigned) v + 16 - p->b) % 16)) % 16;
        for (size_t j = 1; j < WINDOW; j++)
                if (buf[i + j] != (uint8_t) HEX[nibble(p, k + j)])
                        return false;
        return true;
}

/* The master secret decoded from hex: byte m is nibble(2m) << 4 | nibble(2m + 1). */
static bool binary_hit(const struct pattern *p, const uint8_t *buf, size_t n, size_t i) {
        if (n - i < BIN_WINDOW)
                return false;
        for (size_t phase = 0; phase < 8; phase++) {
                size_t j = 0;
                while (j < BIN_WINDOW &&
                       buf[i + j] == (uint8_t) (nibble(p, 2 * (phase + j)) << 4 | nibble(p, 2 * (phase + j) + 1)))
                        j++;
                if (j == BIN_WINDOW)
                        return true;
        }
        return false;
}

/* Scans every writable private mapping; returns the number of hits and describes the first. It
 * allocates nothing small while scanning (a small malloc could reuse, and so overwrite, the chunk
 * under test): the residency vector is static. */
static unsigned char vec[(1u << 30) / 4096];

static size_t scan_memory(char *where, size_t where_size) {
        _cleanup_free_ uint8_t *maps = NULL;
        size_t maps_len;
        assert_int_equal(read_full_file("/proc/self/maps", 16u << 20, &maps, &maps_len), 0);
        _cleanup_close_ int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        assert_true(mem >= 0);
        const size_t chunk = 1u << 20, pagesize = (size_t) sysconf(_SC_PAGESIZE);
        uint8_t *buf = malloc(chunk + WINDOW);
        assert_non_null(buf);
        size_t hits = 0, regions = 0, bytes = 0;
        where[0] = 0;
        for (char *line = (char *) maps, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                unsigned long start, end;
                char perms[5], path[256] = "";
                if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %255s", &start, &end, perms, path) < 3)
                        continue;
                /* Writable private memory that is not a file's data segment: heap, arenas, stacks,
                 * anonymous mmaps. Huge reservations (ASan shadow) hold no data of ours. */
                if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p' || (path[0] == '/') ||
                    streq(path, "[vvar]") || streq(path, "[vvar_vclock]") || end - start > (1ul << 30))
                        continue;
                regions++;
                /* Only resident pages can hold data (a secret in swap would be a finding of its
                 * own; there is no swap here): mincore() skips the untouched reservations that
                 * make up most of ASan's allocator space. */
                size_t npages = (end - start) / pagesize;
                if (npages > sizeof(vec) || mincore((void *) start, end - start, vec) < 0)
                        continue;
                for (size_t pg = 0; pg < npages;) {
                        if (!(vec[pg] & 1)) {
                                pg++;
                                continue;
                        }
                        size_t run = 1;
                        while (pg + run < npages && (vec[pg + run] & 1) && run * pagesize < chunk)
                                run++;
                        unsigned long off = start + pg * pagesize;
                        /* Read WINDOW bytes past the run (if resident) so a secret across the
                         * boundary is seen whole. */
                        size_t want = run * pagesize + (pg + run < npages && (vec[pg + run] & 1) ? WINDOW : 0);
                        ssize_t got = pread(mem, buf, want, (off_t) off);
                        pg += run;
                        if (got <= 0)
                                continue;
                        bytes += (size_t) got;
                        for (size_t i = 0; i < MIN((size_t) got, run * pagesize); i++) {
                                const struct pattern *hit = text_hit(&master, buf, (size_t) got, i)        ? &master
                                                            : text_hit(&init_secret, buf, (size_t) got, i) ? &init_secret
                                                            : text_hit(&sa_key, buf, (size_t) got, i)      ? &sa_key
                                                            : binary_hit(&master, buf, (size_t) got, i)    ? &master
                                                                                                            : NULL;
                                if (!hit)
                                        continue;
                                if (hits++ == 0)
                                        snprintf(where, where_size, "%s at %#lx in %s (%s)", hit->what, off + i,
                                                 path[0] ? path : "anonymous mapping", line);
                        }
                }
        }
        erase_memory(buf, chunk + WINDOW);
        free(buf);
        assert_true(regions > 0 && bytes > 0);
        return hits;
}

static void call(tf_provider_state *p, const char *method, const ProtobufCMessage *req) {
        size_t n = protobuf_c_message_get_packed_size(req);
        uint8_t *buf = malloc(n ? n : 1);
        assert_non_null(buf);
        protobuf_c_message_pack(req, buf);
        uint8_t *resp = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t len = 0;
        grpc_status_code st = tfplugin_handle(p, method, buf, n, &resp, &len, &msg);
        if (st != GRPC_STATUS_OK)
                fail_msg("%s: status %d (%s)", method, st, msg ?: "");
        /* What Terraform's side of the test held is wiped by the test itself. */
        erase_memory(buf, n);
        free(buf);
        erase_memory(resp, len);
        free(resp);
}

static Tfplugin6__DynamicValue *dv(const cty_value *v, const cty_type *t) {
        Tfplugin6__DynamicValue *d = calloc(1, sizeof(*d));
        assert_non_null(d);
        tfplugin6__dynamic_value__init(d);
        assert_int_equal(cty_msgpack_encode(v, t, &d->msgpack.data, &d->msgpack.len), 0);
        return d;
}

static void dv_free(Tfplugin6__DynamicValue *d) {
        erase_memory(d->msgpack.data, d->msgpack.len);
        free(d->msgpack.data);
        free(d);
}

static cty_value *cluster_config(cty_type *t) {
        cty_value *c = cty_object_new(t);
        assert_non_null(c);
        char *ms = pattern_string(&master), *is = pattern_string(&init_secret), *key = pattern_string(&sa_key);
        assert_int_equal(cty_object_set(c, "name", cty_string_new("secrets")), 0);
        assert_int_equal(cty_object_set(c, "csp", cty_string_new("gcp")), 0);
        assert_int_equal(cty_object_set(c, "uid", cty_string_new("u1")), 0);
        assert_int_equal(cty_object_set(c, "out_of_cluster_endpoint", cty_string_new("192.0.2.1")), 0);
        assert_int_equal(cty_object_set(c, "master_secret", cty_string_new(ms)), 0);
        assert_int_equal(cty_object_set(c, "master_secret_salt", cty_string_new(ms)), 0);
        assert_int_equal(cty_object_set(c, "measurement_salt", cty_string_new(ms)), 0);
        assert_int_equal(cty_object_set(c, "init_secret", cty_string_new(is)), 0);
        cty_value *gcp = cty_object_new(cty_object_get(c, "gcp")->type);
        assert_non_null(gcp);
        assert_int_equal(cty_object_set(gcp, "project_id", cty_string_new("proj")), 0);
        assert_int_equal(cty_object_set(gcp, "service_account_key", cty_string_new(key)), 0);
        assert_int_equal(cty_object_set(c, "gcp", gcp), 0);
        erase_and_free(ms);
        erase_and_free(is);
        erase_and_free(key);
        return c;
}

static void run_requests(tf_provider_state *p) {
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(tf_resource_cluster.attrs);
        assert_non_null(t);
        cty_value *config = cluster_config(t);
        cty_value *null = cty_null(t);
        assert_non_null(null);

        Tfplugin6__ValidateResourceConfig__Request v = TFPLUGIN6__VALIDATE_RESOURCE_CONFIG__REQUEST__INIT;
        v.type_name = (char *) "constellation_cluster";
        v.config = dv(config, t);
        call(p, "/tfplugin6.Provider/ValidateResourceConfig", &v.base);
        dv_free(v.config);

        Tfplugin6__PlanResourceChange__Request pl = TFPLUGIN6__PLAN_RESOURCE_CHANGE__REQUEST__INIT;
        pl.type_name = (char *) "constellation_cluster";
        pl.prior_state = dv(null, t);
        pl.proposed_new_state = dv(config, t);
        pl.config = dv(config, t);
        call(p, "/tfplugin6.Provider/PlanResourceChange", &pl.base);
        dv_free(pl.prior_state);
        dv_free(pl.proposed_new_state);
        dv_free(pl.config);

        Tfplugin6__ApplyResourceChange__Request ap = TFPLUGIN6__APPLY_RESOURCE_CHANGE__REQUEST__INIT;
        ap.type_name = (char *) "constellation_cluster";
        ap.prior_state = dv(null, t);
        ap.planned_state = dv(config, t);
        ap.config = dv(config, t);
        call(p, "/tfplugin6.Provider/ApplyResourceChange", &ap.base);
        dv_free(ap.prior_state);
        dv_free(ap.planned_state);
        dv_free(ap.config);

        /* The import URI carries the master secret (and as its salt, the same pattern). */
        char *ms = pattern_string(&master);
        size_t id_size = 2 * master.len + 160;
        char *id = malloc(id_size);
        assert_non_null(id);
        snprintf(id, id_size,
                 "constellation-cluster://?kubeConfig=e30%%3D&clusterEndpoint=192.0.2.1&masterSecret=%s&masterSecretSalt=%s",
                 ms, ms);
        erase_and_free(ms);
        Tfplugin6__ImportResourceState__Request im = TFPLUGIN6__IMPORT_RESOURCE_STATE__REQUEST__INIT;
        im.type_name = (char *) "constellation_cluster";
        im.id = id;
        call(p, "/tfplugin6.Provider/ImportResourceState", &im.base);
        erase_and_free(id);

        cty_value_free(config);
        cty_value_free(null);
}

static void test_no_secret_left(void **state) {
        tf_provider_state p = { 0 };
        run_requests(&p);
        tf_provider_state_done(&p);
        char where[512];
        size_t hits = scan_memory(where, sizeof(where));
        if (hits)
                fail_msg("%zu piece(s) of planted secrets left in memory after the requests; first: %s", hits, where);
}

/* Control: a copy freed without wiping is found, so a clean scan means something. */
static void test_scan_finds_unwiped_copy(void **state) {
        char *ms = pattern_string(&master);
        char *copy = calloc(1, 300);
        assert_non_null(copy);
        memcpy(copy + 100, ms, master.len);
        erase_and_free(ms);
        free(copy); /* not wiped: past malloc's free-list pointers the bytes stay */
        char where[512];
        assert_true(scan_memory(where, sizeof(where)) > 0);
        assert_non_null(strstr(where, "master_secret"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_secret_left),
                cmocka_unit_test(test_scan_finds_unwiped_copy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
