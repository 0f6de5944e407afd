/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-bootstrapper end to end on the host: its own swtpm, a LUKS2 state disk in a file
 * (cryptsetup CLI, token 0 "not initialized", first-boot keyfile), metadata with a $2a$ bcrypt hash,
 * a loopback HTTP server for a component. The client is ours: lib/atls with the qemu-vtpm
 * validator enforcing PCRs 0-7 read from that swtpm beforehand.
 *
 *  1. refusals before anything changes (wrong init secret -> PERMISSION_DENIED; short salt, bad pin,
 *     path outside the state disk, bad KMS URI -> INVALID_ARGUMENT), each followed by: PCR 15 still
 *     zero, the disk file's SHA-256 unchanged, no node_state.json;
 *  2. a good Init whose component download the HTTP server holds: while it is held (the node is
 *     locked), a second Init gets FAILED_PRECONDITION "node is already being activated"; released,
 *     the first succeeds: cluster ID = python3's HKDF, PCR 15 = SHA-256(0^32 || SHA-256(cluster ID))
 *     by tpm2_pcrread, keyslot 0 opens with HKDF(master, salt, "key-<uuid>") by cryptsetup open
 *     --test-passphrase, token says initialized, kubeconfig parses (kubectl) and its client
 *     certificate chains to the CA (openssl verify), node_state.json is Constellation's, the log
 *     (stream and stderr) says the Kubernetes layer was not installed, the bootstrapper exits 0;
 *  3. started again on the bootstrapped node, it does not serve Init and exits 0;
 *  4. on a fresh node, Init with no components succeeds and says the Kubernetes layer was not
 *     installed;
 *  5. on a fresh node, a failure after the lock (a component's bytes do not match its pin) answers
 *     init_failure then the log, sets the token back to "not initialized", installs nothing and
 *     exits 3; a restart before the reboot exits 3 again (interrupted bootstrap);
 *  6. PCR 15 extended by someone else while the bootstrapper runs: FAILED_PRECONDITION "node is
 *     already being activated" from the PCR check itself, PCR 15 not extended again, disk unchanged;
 *  7. the kubeadm path with a stand-in kubeadm (a shell script component): the bootstrapper writes
 *     its InitConfiguration/ClusterConfiguration and runs "kubeadm init --config ..." with it;
 *  8. a crash (SIGKILL) after the lock and re-key: a restart finds PCR 15 set, node_state.json but no
 *     completion marker, and exits 3 (reboot) instead of claiming the node is bootstrapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <crypt.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/un.h>

#include "atls/qemu-vtpm.h"
#include "basic/fileio.h"
#include "init-test-util.h"
#include "init.pb-c.h"
#include "swtpm-util.h"
#include "tpm/tpm.h"

static const char *bootstrapper_bin;
static char *tmp;
static swtpm tpm_sim;
static it_http http;
static char disk[512], keyfile[512], md_path[512], nodestate_path[600], pki_dir[600], kube_dir[512], state_root[512],
        stderr_path[512], config_dir[512];
static attdoc_measurement measurements[8];
static atls_qemu_vtpm_policy policy;
static atls_validator validator;
static uint8_t master[32], master_salt[32], msalt[32];
static char kms_uri[256];
static const char init_secret[] = "correct horse battery staple";
static pid_t bs_pid;
static char address[64];

/* ---- the bootstrapper process ---- */

static int unready_notify = -1;

static void start_bootstrapper(bool expect_ready) {
        char notify[100];
        if ((size_t) snprintf(notify, sizeof notify, "%s/notify.sock", tmp) >= sizeof notify)
                it_die("temp path too long");
        unlink(notify);
        int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", notify);
        assert_int_equal(bind(ns, (struct sockaddr *) &sa, sizeof sa), 0);
        struct timeval tv = { 90, 0 };
        setsockopt(ns, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        bs_pid = fork();
        assert_true(bs_pid >= 0);
        if (bs_pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                setenv("NOTIFY_SOCKET", notify, 1);
                int fd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                dup2(fd, STDERR_FILENO);
                execl(bootstrapper_bin, bootstrapper_bin, "--listen", "127.0.0.1:0", "--tpm", tpm_sim.tcti, "--metadata",
                      md_path, "--state-disk", disk, "--state-keyfile", keyfile, "--node-state", nodestate_path,
                      "--pki-dir", pki_dir, "--kubernetes-dir", kube_dir, "--component-roots", state_root,
                      "--config-dir", config_dir,
                      "--start-units", "", (char *) NULL);
                _exit(127);
        }
        if (!expect_ready) {
                if (unready_notify >= 0)
                        close(unready_notify);
                unready_notify = ns; /* a test may still read what the bootstrapper notifies */
                return;
        }
        char msg[1024];
        for (;;) {
                ssize_t n = recv(ns, msg, sizeof msg - 1, 0);
                if (n < 0) {
                        _cleanup_free_ char *log = NULL;
                        it_run(&log, "cat '%s'", stderr_path);
                        fail_msg("no READY=1 from the bootstrapper; stderr:\n%s", log ?: "");
                }
                msg[n] = 0;
                if (strstr(msg, "READY=1"))
                        break;
        }
        close(ns);
        const char *g = strstr(msg, "grpc=");
        assert_non_null(g);
        const char *colon = strchr(g, ':');
        snprintf(address, sizeof address, "127.0.0.1:%d", atoi(colon + 1));
}

static int wait_bootstrapper(int timeout_s) {
        for (int i = 0; i < timeout_s * 10; i++) {
                int st;
                if (waitpid(bs_pid, &st, WNOHANG) == bs_pid) {
                        bs_pid = 0;
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                }
                usleep(100 * 1000);
        }
        kill(bs_pid, SIGKILL);
        waitpid(bs_pid, NULL, 0);
        bs_pid = 0;
        fail_msg("the bootstrapper did not exit within %d s", timeout_s);
        return -1;
}

/* ---- the Init client ---- */

typedef struct init_result {
        grpc_status_code code;
        char *message;
        Init__InitResponse *first;
        char *log; /* all log chunks concatenated */
        size_t n_messages;
} init_result;

static void init_result_done(init_result *r) {
        free(r->message);
        if (r->first)
                init__init_response__free_unpacked(r->first, NULL);
        free(r->log);
        *r = (init_result){ 0 };
}

typedef struct request_opts {
        const char *secret;
        size_t salt_len;
        const char *kms_uri;
        const char *component_url, *component_hash, *component_path;
} request_opts;

static void do_init(const request_opts *o, init_result *res) {
        *res = (init_result){ 0 };
        Init__InitRequest req = INIT__INIT_REQUEST__INIT;
        req.kms_uri = (char *) (o->kms_uri ? o->kms_uri : kms_uri);
        req.storage_uri = (char *) "storage://no-store";
        req.measurement_salt.data = msalt;
        req.measurement_salt.len = o->salt_len ? o->salt_len : 32;
        req.init_secret.data = (uint8_t *) (o->secret ? o->secret : init_secret);
        req.init_secret.len = strlen(o->secret ? o->secret : init_secret);
        req.cluster_name = (char *) "test-cluster";
        req.kubernetes_version = (char *) "v1.30.4";
        req.service_cidr = (char *) "10.96.0.0/12";
        Components__Component comp = COMPONENTS__COMPONENT__INIT, *comps[1] = { &comp };
        if (o->component_url) {
                comp.url = (char *) o->component_url;
                comp.hash = (char *) o->component_hash;
                comp.install_path = (char *) o->component_path;
                req.kubernetes_components = comps;
                req.n_kubernetes_components = 1;
        }
        size_t len = init__init_request__get_packed_size(&req);
        _cleanup_free_ uint8_t *buf = malloc(len + 1);
        init__init_request__pack(&req, buf);

        atls_config c = { .validators = &validator, .n_validators = 1 };
        atls_conn *conn = NULL;
        atls_error aerr = { 0 };
        if (atls_dial(address, &c, NULL, &conn, &aerr) < 0)
                fail_msg("aTLS dial %s: %s: %s", address, atls_reason_to_string(aerr.reason), aerr.detail);
        rpc_stream *st = NULL;
        assert_int_equal(rpc_stream_open(atls_conn_channel(conn), "/init.API/Init", buf, len, 180000, &st), 0);
        FILE *logm = NULL;
        size_t loglen = 0;
        logm = open_memstream(&res->log, &loglen);
        for (;;) {
                uint8_t *m = NULL;
                size_t ml = 0;
                int r = rpc_stream_next(st, &m, &ml);
                if (r <= 0)
                        break;
                Init__InitResponse *resp = init__init_response__unpack(NULL, ml, m);
                free(m);
                assert_non_null(resp);
                res->n_messages++;
                if (resp->kind_case == INIT__INIT_RESPONSE__KIND_LOG) {
                        fwrite(resp->log->log.data, 1, resp->log->log.len, logm);
                        assert_true(resp->log->log.len <= 1024);
                        init__init_response__free_unpacked(resp, NULL);
                } else if (!res->first)
                        res->first = resp;
                else
                        fail_msg("a second success/failure message");
        }
        fclose(logm);
        const rpc_status *s = rpc_stream_status(st);
        res->code = s->code;
        res->message = s->message ? strdup(s->message) : NULL;
        rpc_stream_free(st);
        atls_conn_free(conn);
}

/* ---- what the node looks like ---- */

static bool pcr15_zero(uint8_t ret[32]) {
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
        tpmq_pcr_bank b;
        assert_int_equal(tpm_pcr_read(t, TPM_ALG_SHA256, 1u << 15, &b), 0);
        static const uint8_t zero[32];
        if (ret)
                memcpy(ret, b.value[15], 32);
        return memcmp(b.value[15], zero, 32) == 0;
}

static void disk_hash(uint8_t ret[32]) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        assert_int_equal(read_full_file(disk, 64u * 1024 * 1024, &buf, &len), 0);
        SHA256(buf, len, ret);
}

static void expect_unchanged(const uint8_t disk_before[32]) {
        assert_true(pcr15_zero(NULL));
        uint8_t now[32];
        disk_hash(now);
        assert_memory_equal(now, disk_before, 32);
        assert_int_equal(access(nodestate_path, F_OK), -1);
        assert_int_equal(it_dir_entries(pki_dir), -1);
        assert_int_equal(it_dir_entries(config_dir), -1);
}

/* ---- setup ---- */

static int setup(void **state) {
        (void) state;
        tmp = it_tmpdir();
        if (swtpm_start(&tpm_sim) < 0)
                return -1;
        snprintf(disk, sizeof disk, "%s/state.img", tmp);
        snprintf(keyfile, sizeof keyfile, "%s/state.key", tmp);
        snprintf(md_path, sizeof md_path, "%s/metadata.json", tmp);
        snprintf(state_root, sizeof state_root, "%s/run-state", tmp);
        snprintf(nodestate_path, sizeof nodestate_path, "%s/constellation/node_state.json", state_root);
        snprintf(kube_dir, sizeof kube_dir, "%s/etc-kubernetes", tmp);
        snprintf(pki_dir, sizeof pki_dir, "%s/pki", kube_dir);
        snprintf(stderr_path, sizeof stderr_path, "%s/bootstrapper.log", tmp);
        snprintf(config_dir, sizeof config_dir, "%s/var-config", tmp);
        mkdir(state_root, 0755);

        /* The state disk as the disk-mapper leaves a new one (without dm-integrity: no
         * device-mapper on the host; the re-key does not care). */
        uint8_t pass[32];
        RAND_bytes(pass, sizeof pass);
        it_write(keyfile, pass, sizeof pass, 0400);
        if (it_run(NULL, "truncate -s 32M '%s' && cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 "
                         "--pbkdf-force-iterations 1000 --key-file '%s' '%s' >/dev/null 2>&1 && "
                         "echo '{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":false}' | "
                         "cryptsetup token import --token-id 0 '%s'",
                   disk, keyfile, disk, disk) != 0) {
                fprintf(stderr, "cryptsetup could not make the state disk file (scripts/setup.sh installs cryptsetup-bin)\n");
                return -1;
        }

        /* Go's bcrypt writes $2a$; libxcrypt computes it. */
        struct crypt_data cd = { 0 };
        const char *hash = crypt_r(init_secret, "$2a$04$abcdefghijklmnopqrstuu", &cd);
        if (!hash || hash[0] == '*')
                return -1;
        char md[512];
        int n = snprintf(md, sizeof md,
                         "{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"vpc_ip\":\"127.0.0.1\","
                         "\"init_secret_hash\":\"%s\",\"join_endpoints\":[\"127.0.0.1:30090\"]}",
                         hash);
        it_write(md_path, md, (size_t) n, 0644);

        /* Expected measurements: PCRs 0-7 of this swtpm (PCR 15 changes during the test). */
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
        tpmq_pcr_bank b;
        assert_int_equal(tpm_pcr_read(t, TPM_ALG_SHA256, 0xff, &b), 0);
        for (unsigned i = 0; i < 8; i++) {
                measurements[i] = (attdoc_measurement){ .index = i, .expected_len = 32 };
                memcpy(measurements[i].expected, b.value[i], 32);
        }
        policy = (atls_qemu_vtpm_policy){ measurements, 8, false };
        validator = atls_qemu_vtpm_validator(&policy);

        RAND_bytes(master, sizeof master);
        RAND_bytes(master_salt, sizeof master_salt);
        RAND_bytes(msalt, sizeof msalt);
        _cleanup_free_ char *k = base64_encode(master, 32, BASE64_URL), *s = base64_encode(master_salt, 32, BASE64_URL);
        snprintf(kms_uri, sizeof kms_uri, "kms://cluster-kms?key=%s&salt=%s", k, s);

        it_http_start(&http);
        start_bootstrapper(true);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        if (bs_pid > 0) {
                kill(bs_pid, SIGKILL);
                waitpid(bs_pid, NULL, 0);
        }
        it_http_stop(&http);
        swtpm_stop(&tpm_sim);
        it_rmrf(tmp);
        free(tmp);
        return 0;
}

static void expect_status(const request_opts *o, grpc_status_code code, const char *part, const uint8_t before[32]) {
        init_result r;
        do_init(o, &r);
        if (r.code != code || !r.message || !strstr(r.message, part))
                fail_msg("expected %s \"%s\", got %s \"%s\"", rpc_status_code_to_string(code), part,
                         rpc_status_code_to_string(r.code), r.message ?: "");
        assert_null(r.first);
        init_result_done(&r);
        expect_unchanged(before);
}

static void test_refusals_change_nothing(void **state) {
        (void) state;
        uint8_t before[32];
        disk_hash(before);
        expect_status(&(request_opts){ .secret = "wrong secret" }, GRPC_STATUS_PERMISSION_DENIED,
                      "init: wrong-init-secret: the init secret does not match", before);
        expect_status(&(request_opts){ .salt_len = 16 }, GRPC_STATUS_INVALID_ARGUMENT,
                      "init: measurement-salt-length: measurement_salt has 16 bytes, expected 32", before);
        expect_status(&(request_opts){ .kms_uri = "kms://cluster-kms?key=AAAA&salt=" }, GRPC_STATUS_INVALID_ARGUMENT,
                      "kms: ", before);
        char inside[600];
        snprintf(inside, sizeof inside, "%s/bin/kubelet", state_root);
        expect_status(&(request_opts){ .component_url = "https://example.invalid/kubelet",
                                       .component_hash = "sha256:beef", .component_path = inside },
                      GRPC_STATUS_INVALID_ARGUMENT, "components: hash-malformed", before);
        expect_status(&(request_opts){ .component_url = "https://example.invalid/kubelet",
                                       .component_hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                       .component_path = "/etc/kubelet" },
                      GRPC_STATUS_INVALID_ARGUMENT, "components: path-outside-root", before);
}

typedef struct init_thread {
        request_opts o;
        init_result r;
        volatile bool finished;
} init_thread;

static void *init_thread_main(void *arg) {
        init_thread *t = arg;
        do_init(&t->o, &t->r);
        __atomic_store_n(&t->finished, true, __ATOMIC_SEQ_CST);
        return NULL;
}

static void test_good_init(void **state) {
        (void) state;
        static const uint8_t body[] = "#!/bin/sh\necho a component\n";
        it_http_serve(&http, "/crictl", body, sizeof body - 1, true);
        char url[128], pin[80], path[600];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/crictl", http.port);
        uint8_t d[32];
        SHA256(body, sizeof body - 1, d);
        _cleanup_free_ char *hex = hex_encode(d, 32);
        snprintf(pin, sizeof pin, "sha256:%s", hex);
        snprintf(path, sizeof path, "%s/bin/crictl", state_root);

        init_thread first = { .o = { .component_url = url, .component_hash = pin, .component_path = path } };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, init_thread_main, &first), 0);
        /* The component is fetched after the node was locked: a second Init now must be refused. */
        bool fetched = false;
        for (int i = 0; i < 180 && !fetched && !__atomic_load_n(&first.finished, __ATOMIC_SEQ_CST); i++)
                fetched = it_http_wait_request(&http, 1);
        if (!fetched) {
                it_http_release(&http);
                pthread_join(th, NULL);
                _cleanup_free_ char *log = NULL;
                it_run(&log, "cat '%s'", stderr_path);
                fprintf(stderr, "bootstrapper log:\n%s\n", log ?: "");
                fail_msg("the bootstrapper never fetched the component: %s %s", rpc_status_code_to_string(first.r.code),
                         first.r.message ?: "");
        }
        init_result second;
        do_init(&(request_opts){ 0 }, &second);
        it_http_release(&http);
        pthread_join(th, NULL);
        assert_int_equal(second.code, GRPC_STATUS_FAILED_PRECONDITION);
        assert_string_equal(second.message, "node is already being activated");
        init_result_done(&second);

        init_result *r = &first.r;
        if (r->code != GRPC_STATUS_OK || !r->first || r->first->kind_case != INIT__INIT_RESPONSE__KIND_INIT_SUCCESS)
                fail_msg("Init: %s %s; %s", rpc_status_code_to_string(r->code), r->message ?: "",
                         r->first && r->first->kind_case == INIT__INIT_RESPONSE__KIND_INIT_FAILURE
                                 ? r->first->init_failure->error : "");
        Init__InitSuccessResponse *s = r->first->init_success;
        assert_int_equal(s->owner_id.len, 0);
        assert_int_equal(s->cluster_id.len, 32);

        /* cluster ID, independently */
        uint8_t ms[32], cid[32];
        assert_int_equal(it_hkdf_python(master, 32, master_salt, 32, "key-measurementSecret", ms), 0);
        assert_int_equal(it_hkdf_python(ms, 32, msalt, 32, "key-clusterID", cid), 0);
        assert_memory_equal(s->cluster_id.data, cid, 32);

        /* the log says what was not done */
        assert_non_null(r->log);
        assert_non_null(strstr(r->log, "the Kubernetes layer was not installed"));
        assert_non_null(strstr(r->log, "PCR 15 extended"));
        assert_null(strstr(r->log, init_secret));

        /* the kubeconfig */
        char kc[600], ca[600], cl[600];
        snprintf(kc, sizeof kc, "%s/kubeconfig", tmp);
        snprintf(ca, sizeof ca, "%s/ca.pem", tmp);
        snprintf(cl, sizeof cl, "%s/client.pem", tmp);
        it_write(kc, s->kubeconfig.data, s->kubeconfig.len, 0600);
        _cleanup_free_ char *server = NULL;
        assert_int_equal(it_run(&server, "kubectl config view --kubeconfig '%s' -o jsonpath='{.clusters[0].cluster.server}'", kc), 0);
        assert_string_equal(server, "https://127.0.0.1:6443");
        assert_int_equal(it_run(NULL, "kubectl config view --kubeconfig '%s' --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > '%s'", kc, ca), 0);
        assert_int_equal(it_run(NULL, "kubectl config view --kubeconfig '%s' --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d > '%s'", kc, cl), 0);
        assert_int_equal(it_run(NULL, "openssl verify -CAfile '%s' '%s' >/dev/null", ca, cl), 0);
        assert_int_equal(it_run(NULL, "cmp -s '%s' '%s/ca.crt'", ca, pki_dir), 0);
        _cleanup_free_ char *subj = NULL;
        assert_int_equal(it_run(&subj, "openssl x509 -in '%s' -noout -subject -nameopt compat", cl), 0);
        assert_non_null(strstr(subj, "O=system:masters"));
        assert_non_null(strstr(subj, "CN=kubernetes-admin"));
        struct stat st;
        char p[700];
        for (size_t i = 0; i < 4; i++) {
                static const char *const keys[] = { "ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key" };
                snprintf(p, sizeof p, "%s/%s", pki_dir, keys[i]);
                assert_int_equal(stat(p, &st), 0);
                assert_int_equal(st.st_mode & 0777, 0600);
        }
        snprintf(p, sizeof p, "%s/admin.conf", kube_dir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* node_state.json as Constellation writes it */
        _cleanup_free_ uint8_t *nsj = NULL;
        size_t nl;
        assert_int_equal(read_full_file(nodestate_path, 4096, &nsj, &nl), 0);
        _cleanup_free_ char *b64 = base64_encode(msalt, 32, BASE64_STD);
        char want[200];
        snprintf(want, sizeof want, "{\"Role\":\"ControlPlane\",\"MeasurementSalt\":\"%s\"}", b64);
        assert_string_equal((char *) nsj, want);

        char marker[700];
        snprintf(marker, sizeof marker, "%s/constellation/bootstrap-complete", state_root);
        assert_int_equal(access(marker, F_OK), 0);

        /* the key service's configuration: the master secret and salt, raw, 0600 */
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ uint8_t *v = NULL;
                size_t vl;
                snprintf(p, sizeof p, "%s/%s", config_dir, i == 0 ? "mastersecret" : "salt");
                assert_int_equal(read_full_file(p, 4096, &v, &vl), 0);
                assert_int_equal(vl, 32);
                assert_memory_equal(v, i == 0 ? master : master_salt, 32);
                assert_int_equal(stat(p, &st), 0);
                assert_int_equal(st.st_mode & 0777, 0600);
        }
        assert_int_equal(stat(config_dir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        /* the component */
        _cleanup_free_ uint8_t *got = NULL;
        size_t gl;
        assert_int_equal(read_full_file(path, 4096, &got, &gl), 0);
        assert_int_equal(gl, sizeof body - 1);
        assert_memory_equal(got, body, gl);
        init_result_done(r);

        /* The bootstrapper stops serving Init after success. */
        assert_int_equal(wait_bootstrapper(60), 0);
        _cleanup_free_ char *log = NULL;
        assert_int_equal(it_run(&log, "cat '%s'", stderr_path), 0);
        assert_non_null(strstr(log, "the Kubernetes layer was not installed"));
        assert_non_null(strstr(log, "no longer serving Init"));

        /* PCR 15 by tpm2-tools (the bootstrapper is gone: the swtpm is free) */
        uint8_t h[32], pcr[64];
        static const uint8_t zero[32];
        SHA256(cid, 32, h);
        memcpy(pcr, zero, 32);
        memcpy(pcr + 32, h, 32);
        SHA256(pcr, 64, h);
        _cleanup_free_ char *want_pcr = hex_encode(h, 32), *pcrout = NULL;
        assert_int_equal(it_run(&pcrout, "TPM2TOOLS_TCTI='%s' tpm2_pcrread sha256:15 | tr -d ' \\n' | tr A-F a-f", tpm_sim.tcti), 0);
        if (!strstr(pcrout, want_pcr))
                fail_msg("PCR 15: tpm2_pcrread says %s, expected %s", pcrout, want_pcr);

        /* the state disk: keyslot 0 opens with the DEK, the token says initialized */
        _cleanup_free_ char *uuid = NULL;
        assert_int_equal(it_run(&uuid, "cryptsetup luksUUID '%s' | tr -d '\\n' | tr A-F a-f", disk), 0);
        char info[128];
        snprintf(info, sizeof info, "key-%s", uuid);
        uint8_t dek[32];
        assert_int_equal(it_hkdf_python(master, 32, master_salt, 32, info, dek), 0);
        char dekfile[600];
        snprintf(dekfile, sizeof dekfile, "%s/dek", tmp);
        it_write(dekfile, dek, 32, 0600);
        assert_int_equal(it_run(NULL, "cryptsetup open --test-passphrase --key-file '%s' '%s'", dekfile, disk), 0);
        assert_int_not_equal(it_run(NULL, "cryptsetup open --test-passphrase --key-file '%s' '%s' 2>/dev/null", keyfile, disk), 0);
        _cleanup_free_ char *token = NULL;
        assert_int_equal(it_run(&token, "cryptsetup token export --token-id 0 '%s'", disk), 0);
        assert_non_null(strstr(token, "\"diskIsInitialized\":true"));
}

static void test_restart_does_not_serve(void **state) {
        (void) state;
        start_bootstrapper(false);
        assert_int_equal(wait_bootstrapper(60), 0);
        _cleanup_free_ char *log = NULL;
        assert_int_equal(it_run(&log, "cat '%s'", stderr_path), 0);
        assert_non_null(strstr(log, "already bootstrapped"));
        /* READY=1 before the exit: the unit is Type=notify with FailureAction=reboot, and an exit
         * without it is a 'protocol' failure that rebooted rejoined nodes in a loop */
        char msg[512];
        ssize_t n = recv(unready_notify, msg, sizeof msg - 1, MSG_DONTWAIT);
        assert_true(n > 0);
        msg[n] = 0;
        assert_non_null(strstr(msg, "READY=1"));
        assert_non_null(strstr(msg, "already bootstrapped"));
        assert_null(strstr(msg, "grpc="));
}

/* A fresh node, Init with no components: everything but Kubernetes, and it says so. */
static void test_empty_components(void **state) {
        (void) state;
        init_result r;
        do_init(&(request_opts){ 0 }, &r);
        if (r.code != GRPC_STATUS_OK || !r.first || r.first->kind_case != INIT__INIT_RESPONSE__KIND_INIT_SUCCESS)
                fail_msg("Init: %s %s", rpc_status_code_to_string(r.code), r.message ?: "");
        assert_int_equal(r.first->init_success->cluster_id.len, 32);
        assert_true(r.first->init_success->kubeconfig.len > 0);
        assert_true(r.n_messages >= 2); /* success, then the log */
        assert_non_null(strstr(r.log, "the Kubernetes layer was not installed"));
        init_result_done(&r);
        assert_int_equal(wait_bootstrapper(60), 0);
        assert_false(pcr15_zero(NULL));
        assert_int_equal(access(nodestate_path, F_OK), 0);
}

/* A failure after the lock (the component's bytes do not match its pin): init_failure first, the
 * log in chunks after it, the disk token back to "not initialized", nothing installed, exit 3. */
static void test_failure_after_lock(void **state) {
        (void) state;
        static const uint8_t body[] = "tampered kubelet";
        it_http_serve(&http, "/kubelet", body, sizeof body - 1, false);
        char url[128], path[600];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/kubelet", http.port);
        snprintf(path, sizeof path, "%s/bin/kubelet", state_root);
        init_result r;
        do_init(&(request_opts){ .component_url = url,
                                 .component_hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                                 .component_path = path },
                &r);
        assert_int_equal(r.code, GRPC_STATUS_OK);
        assert_non_null(r.first);
        assert_int_equal(r.first->kind_case, INIT__INIT_RESPONSE__KIND_INIT_FAILURE);
        assert_non_null(strstr(r.first->init_failure->error, "components: hash-mismatch"));
        assert_true(r.n_messages >= 2);
        assert_non_null(strstr(r.log, "Init failed after the node was locked"));
        assert_non_null(strstr(r.log, "marked not initialized"));
        init_result_done(&r);
        assert_int_equal(wait_bootstrapper(60), 3);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(access(nodestate_path, F_OK), -1);
        assert_true(it_dir_entries(config_dir) <= 0); /* the master secret is not left behind */
        _cleanup_free_ char *token = NULL;
        assert_int_equal(it_run(&token, "cryptsetup token export --token-id 0 '%s'", disk), 0);
        assert_non_null(strstr(token, "\"diskIsInitialized\":false"));
        /* and a restart before the reboot refuses to serve and asks for the reboot */
        start_bootstrapper(false);
        assert_int_equal(wait_bootstrapper(60), 3);
        _cleanup_free_ char *log = NULL;
        assert_int_equal(it_run(&log, "cat '%s'", stderr_path), 0);
        assert_non_null(strstr(log, "a bootstrap was interrupted"));
}

/* PCR 15 set by someone else after the bootstrapper started (as a join client would): Init reads
 * it under the lock and refuses with Constellation's text, changing nothing. */
static void test_pcr15_already_set(void **state) {
        (void) state;
        uint8_t before[32], pcr_before[32], pcr_after[32];
        disk_hash(before);
        assert_int_equal(it_run(NULL, "TPM2TOOLS_TCTI='%s' tpm2_pcrevent 15 /dev/null >/dev/null 2>&1 || "
                                      "echo -n x | TPM2TOOLS_TCTI='%s' tpm2_pcrevent 15 >/dev/null",
                                tpm_sim.tcti, tpm_sim.tcti),
                         0);
        assert_false(pcr15_zero(pcr_before));
        init_result r;
        do_init(&(request_opts){ 0 }, &r);
        assert_int_equal(r.code, GRPC_STATUS_FAILED_PRECONDITION);
        assert_string_equal(r.message, "node is already being activated");
        assert_null(r.first);
        init_result_done(&r);
        assert_false(pcr15_zero(pcr_after));
        assert_memory_equal(pcr_before, pcr_after, 32); /* not extended again */
        uint8_t now[32];
        disk_hash(now);
        assert_memory_equal(now, before, 32);
        assert_int_equal(access(nodestate_path, F_OK), -1);
}

/* The kubeadm path with a stand-in: a component installing ".../bin/kubeadm" (a shell script in a
 * data: URL) makes the bootstrapper write its kubeadm configuration and run "kubeadm init" with it.
 * The stand-in records its arguments and the configuration; a real kubeadm does not exist here. */
static void test_kubeadm_stand_in(void **state) {
        (void) state;
        char record[600], script[4096], path[600];
        snprintf(record, sizeof record, "%s/kubeadm-record", tmp);
        snprintf(script, sizeof script,
                 "#!/bin/sh\n"
                 "echo \"$@\" > '%s.args'\n"
                 "cp \"$3\" '%s.yaml'\n"
                 "echo \"PATH=$PATH\" > '%s.env'\n"
                 "echo 'kubeadm stand-in: pretending to init the control plane' >&2\n"
                 "exec grep SigBlk /proc/self/status > '%s.sig'\n",
                 record, record, record, record);
        _cleanup_free_ char *b64 = base64_encode(script, strlen(script), BASE64_STD);
        _cleanup_free_ char *url = NULL;
        assert_true(asprintf(&url, "data:application/octet-stream;base64,%s", b64) > 0);
        uint8_t d[32];
        SHA256((const uint8_t *) script, strlen(script), d);
        _cleanup_free_ char *hex = hex_encode(d, 32);
        char pin[80];
        snprintf(pin, sizeof pin, "sha256:%s", hex);
        snprintf(path, sizeof path, "%s/bin/kubeadm", state_root);
        init_result r;
        do_init(&(request_opts){ .component_url = url, .component_hash = pin, .component_path = path }, &r);
        if (r.code != GRPC_STATUS_OK || !r.first || r.first->kind_case != INIT__INIT_RESPONSE__KIND_INIT_SUCCESS)
                fail_msg("Init: %s %s %s", rpc_status_code_to_string(r.code), r.message ?: "",
                         r.first && r.first->kind_case == INIT__INIT_RESPONSE__KIND_INIT_FAILURE ? r.first->init_failure->error : "");
        assert_non_null(strstr(r.log, "kubeadm init finished"));
        assert_null(strstr(r.log, "not installed"));
        init_result_done(&r);
        assert_int_equal(wait_bootstrapper(60), 0);

        _cleanup_free_ char *args = NULL, *want = NULL;
        assert_int_equal(it_run(&args, "cat '%s.args'", record), 0);
        assert_true(asprintf(&want, "init --config %s/kubeadm-init.yaml --skip-token-print --skip-certificate-key-print\n",
                             kube_dir) > 0);
        assert_string_equal(args, want);
        _cleanup_free_ char *env = NULL;
        assert_int_equal(it_run(&env, "cat '%s.env'", record), 0);
        assert_non_null(strstr(env, "PATH=/run/state/bin:"));
        _cleanup_free_ char *sig = NULL; /* kubeadm must not inherit the service's blocked signals */
        assert_int_equal(it_run(&sig, "cat '%s.sig'", record), 0);
        assert_string_equal(sig, "SigBlk:\t0000000000000000\n");
        /* The configuration parses as two YAML documents with our values. */
        _cleanup_free_ char *out = NULL;
        assert_int_equal(it_run(&out,
                                "python3 -c 'import yaml,sys; d=list(yaml.safe_load_all(open(sys.argv[1])));"
                                " i,c=d; print(i[\"kind\"],i[\"nodeRegistration\"][\"name\"],i[\"localAPIEndpoint\"][\"advertiseAddress\"],"
                                " c[\"kind\"],c[\"clusterName\"],c[\"kubernetesVersion\"],c[\"certificatesDir\"],"
                                " c[\"networking\"][\"serviceSubnet\"],c[\"controlPlaneEndpoint\"],\",\".join(c[\"apiServer\"][\"certSANs\"]))' '%s.yaml'",
                                record),
                         0);
        _cleanup_free_ char *expect = NULL;
        assert_true(asprintf(&expect,
                             "InitConfiguration control-plane-0 127.0.0.1 ClusterConfiguration test-cluster v1.30.4 %s "
                             "10.96.0.0/12 127.0.0.1:6443 127.0.0.1\n",
                             pki_dir) > 0);
        assert_string_equal(out, expect);
}

/* A crash after the lock and the re-key (SIGKILL while the component download is held): a restart
 * does not take the node for bootstrapped (no completion marker, although node_state.json exists)
 * and exits 3 so that the node reboots. */
static void test_crash_mid_init(void **state) {
        (void) state;
        static const uint8_t body[] = "component";
        it_http_serve(&http, "/held", body, sizeof body - 1, true);
        char url[128], pin[80], path[600];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/held", http.port);
        uint8_t d[32];
        SHA256(body, sizeof body - 1, d);
        _cleanup_free_ char *hex = hex_encode(d, 32);
        snprintf(pin, sizeof pin, "sha256:%s", hex);
        snprintf(path, sizeof path, "%s/bin/held", state_root);
        init_thread first = { .o = { .component_url = url, .component_hash = pin, .component_path = path } };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, init_thread_main, &first), 0);
        bool fetched = false;
        for (int i = 0; i < 180 && !fetched && !__atomic_load_n(&first.finished, __ATOMIC_SEQ_CST); i++)
                fetched = it_http_wait_request(&http, 1);
        assert_true(fetched);
        kill(bs_pid, SIGKILL); /* the crash */
        assert_int_equal(wait_bootstrapper(30), 128 + SIGKILL);
        it_http_release(&http);
        pthread_join(th, NULL);
        assert_int_not_equal(first.r.code, GRPC_STATUS_OK); /* the client saw the connection break */
        init_result_done(&first.r);

        assert_false(pcr15_zero(NULL));
        assert_int_equal(access(nodestate_path, F_OK), 0);
        _cleanup_free_ char *token = NULL;
        assert_int_equal(it_run(&token, "cryptsetup token export --token-id 0 '%s'", disk), 0);
        assert_non_null(strstr(token, "\"diskIsInitialized\":true"));
        start_bootstrapper(false);
        assert_int_equal(wait_bootstrapper(60), 3);
        _cleanup_free_ char *log = NULL;
        assert_int_equal(it_run(&log, "cat '%s'", stderr_path), 0);
        assert_non_null(strstr(log, "the completion marker is missing"));
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s PATH-TO-constellation-bootstrapper\n", argv[0]);
                return 2;
        }
        bootstrapper_bin = argv[1];
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_refusals_change_nothing),
                cmocka_unit_test(test_good_init),
                cmocka_unit_test(test_restart_does_not_serve),
        };
        int failed = cmocka_run_group_tests(tests, setup, teardown);
        const struct CMUnitTest empty[] = { cmocka_unit_test(test_empty_components) };
        failed += cmocka_run_group_tests(empty, setup, teardown);
        const struct CMUnitTest failure[] = { cmocka_unit_test(test_failure_after_lock) };
        failed += cmocka_run_group_tests(failure, setup, teardown);
        const struct CMUnitTest locked[] = { cmocka_unit_test(test_pcr15_already_set) };
        failed += cmocka_run_group_tests(locked, setup, teardown);
        const struct CMUnitTest kubeadm[] = { cmocka_unit_test(test_kubeadm_stand_in) };
        failed += cmocka_run_group_tests(kubeadm, setup, teardown);
        const struct CMUnitTest crash[] = { cmocka_unit_test(test_crash_mid_init) };
        failed += cmocka_run_group_tests(crash, setup, teardown);
        return failed;
}
