/* SPDX-License-Identifier: Apache-2.0 */
/* Hold your own key through the node plane on the host: a real KMIP server (PyKMIP on loopback,
 * test/kmip/pykmip.sh, client-certificate TLS), the real programs, one swtpm, one LUKS2 state disk
 * file. The operator's side is `constellation-attest kmip` (create-kek, wrap-master-secret --inline)
 * and `constellation-attest init --kms-uri-file` (lib/nodeclient with the qemu-vtpm validator
 * enforcing PCRs 0-7 of the swtpm).
 *
 *  0. init --kms-uri-file's own refusals, before anything is sent: with --master-secret/--salt
 *     (ambiguous, exit 2), a group-readable file, a symlink, a directory, an oversize file (exit 3),
 *     a file that is no kms:// URI (exit 2); none quotes the file;
 *  1. Init with a kms://kmip URI whose KEK the server does not know: refused in step A with the
 *     KMIP server's reason (item-not-found, exit 1), nothing changed (PCR 15, disk bytes, no
 *     configuration);
 *  2. Init with the kms://kmip URI: the cluster ID (init's stdout) and the disk key equal what kms://cluster-kms
 *     derives from the same master secret (computed here with python3's hmac, not our HKDF);
 *     <config-dir>/kms-uri holds the URI (0600, directory 0700), mastersecret/salt are not written;
 *     no log line holds the URI's client key;
 *  3. the key service started the unit's way (--config-dir) and with --kms-uri-file serves the same
 *     data keys as cluster-kms with the same master secret; a group-readable URI file and a config
 *     directory with both kinds are refused with their reasons;
 *  4. after a reboot (swtpm re-initialised: PCRs reset) the disk-mapper (--host-test) waits for
 *     recovery; `constellation-attest recover --kms-uri-file` with a URI wrapping another master
 *     secret is refused (wrong-key), with the operator's URI it unlocks: keyfile = the disk key,
 *     PCR 15 = SHA-256(0^32 || SHA-256(cluster ID));
 *  5. the KEK revoked (`constellation-attest kmip revoke`): after another reboot a fresh recovery is
 *     refused with kek-revoked, the disk file is byte for byte unchanged and no keyfile is written;
 *     a fresh key service refuses to start with kek-revoked (crypto-shredding);
 *  6. the KEK's bytes (read from PyKMIP's database) appear in no file of the test directory but the
 *     database (every program's stderr and stdout, the node's files, the disk), nor does the master
 *     secret appear in any program's log. */
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
#include "basic/secret.h"
#include "init-test-util.h"
#include "init.pb-c.h"
#include "rpc/rpc.h"
#include "swtpm-util.h"
#include "tpm/tpm.h"

static const char *bootstrapper_bin, *keyservice_bin, *disk_mapper_bin, *attest_bin, *pykmip_sh;
static char *tmp;
static swtpm tpm_sim;
static char kmip_dir[512], kmip_conn[2048], kek[64], disk[512], keyfile[512], md_path[512], nodestate_path[600],
        pki_dir[600], kube_dir[512], state_root[512], config_dir[512], meas_path[512], operator_uri_path[512],
        other_uri_path[512], dm_keyfile[512], units_dir[512], msalt_path[512], isecret_path[512];
static attdoc_measurement measurements[8];
static atls_qemu_vtpm_policy policy;
static atls_validator validator;
static uint8_t master[32], master_salt[32], msalt[32], cluster_id[32];
static char *operator_uri; /* kms://kmip?... with inline client credentials */
static const char init_secret[] = "correct horse battery staple";
static unsigned n_logs;

/* ---- programs ---- */

/* Runs a command with stdout and stderr captured into numbered files of the test directory (the
 * KEK search reads them all); returns the exit status, *out and *err their contents. */
static int run_cli(char **out, char **err, const char *fmt, ...) _printf_(3, 4);
static int run_cli(char **out, char **err, const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&cmd, fmt, ap) < 0)
                it_die("vasprintf");
        va_end(ap);
        unsigned n = ++n_logs;
        int rc = it_run(NULL, "%s >'%s/cli-%02u.out' 2>'%s/cli-%02u.err'", cmd, tmp, n, tmp, n);
        char p[700];
        size_t len;
        uint8_t *b = NULL;
        snprintf(p, sizeof p, "%s/cli-%02u.out", tmp, n);
        if (out)
                *out = read_full_file(p, 1 << 20, &b, &len) >= 0 ? (char *) b : strdup("");
        b = NULL;
        snprintf(p, sizeof p, "%s/cli-%02u.err", tmp, n);
        if (err)
                *err = read_full_file(p, 1 << 20, &b, &len) >= 0 ? (char *) b : strdup("");
        return rc;
}

typedef struct proc {
        pid_t pid;
        int port;
        char log[600];
} proc;

/* Starts argv with its own NOTIFY_SOCKET and stderr in a log file; with wait_ready, waits for
 * READY=1 and takes the port from STATUS=...grpc=HOST:PORT. */
static void spawn(proc *p, const char *const argv[], bool wait_ready) {
        char notify[100];
        unsigned n = ++n_logs;
        *p = (proc){ 0 };
        snprintf(p->log, sizeof p->log, "%s/svc-%02u-%s.log", tmp, n, strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]);
        if ((size_t) snprintf(notify, sizeof notify, "%s/n%02u.sock", tmp, n) >= sizeof notify)
                it_die("temp path too long");
        int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", notify);
        assert_int_equal(bind(ns, (struct sockaddr *) &sa, sizeof sa), 0);
        struct timeval tv = { 120, 0 };
        setsockopt(ns, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        p->pid = fork();
        assert_true(p->pid >= 0);
        if (p->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                setenv("NOTIFY_SOCKET", notify, 1);
                int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                dup2(fd, STDERR_FILENO);
                int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(nul, STDOUT_FILENO);
                execv(argv[0], (char *const *) argv);
                _exit(127);
        }
        if (!wait_ready) {
                close(ns);
                return;
        }
        char msg[1024];
        for (;;) {
                ssize_t r = recv(ns, msg, sizeof msg - 1, 0);
                if (r < 0) {
                        _cleanup_free_ char *log = NULL;
                        it_run(&log, "cat '%s'", p->log);
                        fail_msg("no READY=1 from %s; stderr:\n%s", argv[0], log ?: "");
                }
                msg[r] = 0;
                if (strstr(msg, "READY=1"))
                        break;
        }
        close(ns);
        const char *g = strstr(msg, "grpc=");
        assert_non_null(g);
        p->port = atoi(strchr(g, ':') + 1);
}

static int wait_exit(proc *p, int timeout_s) {
        for (int i = 0; i < timeout_s * 10; i++) {
                int st;
                if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                        p->pid = 0;
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                }
                usleep(100 * 1000);
        }
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
        fail_msg("%s did not exit within %d s", p->log, timeout_s);
        return -1;
}

static bool running(const proc *p) {
        return p->pid > 0 && waitpid(p->pid, NULL, WNOHANG) == 0;
}

static void stop(proc *p) {
        if (p->pid > 0) {
                kill(p->pid, SIGTERM);
                (void) wait_exit(p, 30);
        }
}

static char *slurp(const char *path) {
        uint8_t *b = NULL;
        size_t len;
        if (read_full_file(path, 64u << 20, &b, &len) < 0)
                return strdup("");
        return (char *) b;
}

/* ---- the node ---- */

static void start_bootstrapper(proc *p) {
        const char *argv[] = { bootstrapper_bin, "--listen", "127.0.0.1:0", "--tpm", tpm_sim.tcti, "--metadata", md_path,
                               "--state-disk", disk, "--state-keyfile", keyfile, "--node-state", nodestate_path,
                               "--pki-dir", pki_dir, "--kubernetes-dir", kube_dir, "--component-roots", state_root,
                               "--config-dir", config_dir, "--start-units", "", NULL };
        spawn(p, argv, true);
}

/* A reboot as far as the TPM sees it: power-cycle (CMD_INIT on the control channel) and
 * TPM2_Startup(CLEAR): every PCR, 15 included, is zero again. */
static void reboot_tpm(void) {
        assert_int_equal(it_run(NULL, "swtpm_ioctl --tcp 127.0.0.1:%d -i >/dev/null && "
                                      "TPM2TOOLS_TCTI='%s' tpm2_startup -c >/dev/null 2>&1",
                                tpm_sim.port + 1, tpm_sim.tcti),
                         0);
}

static void read_pcr15(uint8_t ret[32]) {
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        assert_int_equal(tpm_open(tpm_sim.tcti, &t, NULL), 0);
        tpmq_pcr_bank b;
        assert_int_equal(tpm_pcr_read(t, TPM_ALG_SHA256, 1u << 15, &b), 0);
        memcpy(ret, b.value[15], 32);
}

static bool pcr15_zero(void) {
        static const uint8_t zero[32];
        uint8_t v[32];
        read_pcr15(v);
        return memcmp(v, zero, 32) == 0;
}

static void disk_hash(uint8_t ret[32]) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        assert_int_equal(read_full_file(disk, 64u * 1024 * 1024, &buf, &len), 0);
        SHA256(buf, len, ret);
}

static void disk_key(uint8_t ret[32]) {
        _cleanup_free_ char *uuid = NULL;
        assert_int_equal(it_run(&uuid, "cryptsetup luksUUID '%s' | tr -d '\\n' | tr A-F a-f", disk), 0);
        char info[128];
        snprintf(info, sizeof info, "key-%s", uuid);
        assert_int_equal(it_hkdf_python(master, 32, master_salt, 32, info, ret), 0);
}

/* ---- the Init client: constellation-attest init --kms-uri-file ---- */

/* Runs init against the bootstrapper (port 0: an address where nothing listens, for refusals
 * before the dial) with the URI file and EXTRA options; returns the exit code. */
static int cli_init(int port, const char *uri_file, const char *extra, char **out, char **err) {
        return run_cli(out, err,
                       "'%s' init --endpoint 127.0.0.1:%d --measurements '%s' --kms-uri-file '%s' --measurement-salt '%s' "
                       "--init-secret '%s' --cluster-name kmip-cluster --timeout 180 %s",
                       attest_bin, port ? port : 1, meas_path, uri_file, msalt_path, isecret_path, extra ? extra : "");
}

/* ---- the key service's client ---- */

/* GetDataKeyRequest{data_key_id, length} by hand (ids < 128 bytes, length < 128). */
static void get_data_key(int port, const char *id, uint8_t ret[32]) {
        uint8_t req[160];
        size_t n = strlen(id), l = 0;
        assert_true(n < 128);
        req[l++] = 0x0a;
        req[l++] = (uint8_t) n;
        memcpy(req + l, id, n);
        l += n;
        req[l++] = 0x10;
        req[l++] = 32;
        char target[64];
        snprintf(target, sizeof target, "127.0.0.1:%d", port);
        _cleanup_(rpc_channel_freep) rpc_channel *ch = NULL;
        assert_int_equal(rpc_channel_new(target, NULL, NULL, &ch), 0);
        uint8_t *resp = NULL;
        size_t rl = 0;
        rpc_status st = { 0 };
        assert_int_equal(rpc_unary(ch, "/kms.API/GetDataKey", req, l, 30000, &resp, &rl, &st), 0);
        if (st.code != GRPC_STATUS_OK)
                fail_msg("GetDataKey %s: %s %s", id, rpc_status_code_to_string(st.code), st.message ?: "");
        rpc_status_done(&st);
        assert_int_equal(rl, 34);
        assert_int_equal(resp[0], 0x0a);
        assert_int_equal(resp[1], 32);
        memcpy(ret, resp + 2, 32);
        free(resp);
}

/* ---- setup ---- */

static void write_hex_file(const char *path, const uint8_t *v, size_t n) {
        _cleanup_free_ char *h = hex_encode(v, n);
        char line[256];
        int l = snprintf(line, sizeof line, "%s\n", h);
        it_write(path, line, (size_t) l, 0600);
}

static int setup(void **state) {
        (void) state;
        tmp = it_tmpdir();
        char pid[32];
        snprintf(pid, sizeof pid, "%d", (int) getpid());
        setenv("PYKMIP_OWNER_PID", pid, 1); /* the server stops if this test dies */

        /* The user's KMIP server, its KEK and the wrapped master secret (the operator's side). */
        snprintf(kmip_dir, sizeof kmip_dir, "%s/kmip", tmp);
        _cleanup_free_ char *port = NULL;
        if (it_run(NULL, "bash '%s' pki '%s'", pykmip_sh, kmip_dir) != 0 ||
            it_run(&port, "bash '%s' start '%s'", pykmip_sh, kmip_dir) != 0 || !port) {
                fprintf(stderr, "PyKMIP did not start (test/kmip/pykmip.sh; scripts/setup.sh installs python3-pykmip)\n");
                return -1;
        }
        snprintf(kmip_conn, sizeof kmip_conn, "--endpoint 127.0.0.1:%d --client-cert '%s/client.pem' --client-key '%s/client.key' "
                 "--server-ca '%s/ca.pem'", atoi(port), kmip_dir, kmip_dir, kmip_dir);
        _cleanup_free_ char *out = NULL, *err = NULL;
        if (run_cli(&out, &err, "'%s' kmip create-kek %s --name node-kek", attest_bin, kmip_conn) != 0) {
                fprintf(stderr, "kmip create-kek: %s\n", err);
                return -1;
        }
        snprintf(kek, sizeof kek, "%.*s", (int) strcspn(out, "\n"), out);

        RAND_bytes(master, sizeof master);
        RAND_bytes(master_salt, sizeof master_salt);
        RAND_bytes(msalt, sizeof msalt);
        char mpath[600], spath[600];
        snprintf(mpath, sizeof mpath, "%s/master.hex", tmp);
        snprintf(spath, sizeof spath, "%s/salt.hex", tmp);
        write_hex_file(mpath, master, 32);
        write_hex_file(spath, master_salt, 32);
        snprintf(operator_uri_path, sizeof operator_uri_path, "%s/operator.uri", tmp);
        free(err);
        err = NULL;
        if (run_cli(NULL, &err, "'%s' kmip wrap-master-secret %s --kek %s --secret-file '%s' --salt-file '%s' --inline --out '%s'",
                    attest_bin, kmip_conn, kek, mpath, spath, operator_uri_path) != 0) {
                fprintf(stderr, "kmip wrap-master-secret: %s\n", err);
                return -1;
        }
        operator_uri = slurp(operator_uri_path);
        operator_uri[strcspn(operator_uri, "\n")] = 0;

        /* Another master secret under the same KEK: a URI that unwraps fine but derives wrong keys. */
        uint8_t other[32];
        RAND_bytes(other, sizeof other);
        char opath[600];
        snprintf(opath, sizeof opath, "%s/other-master.hex", tmp);
        write_hex_file(opath, other, 32);
        snprintf(other_uri_path, sizeof other_uri_path, "%s/other.uri", tmp);
        if (run_cli(NULL, NULL, "'%s' kmip wrap-master-secret %s --kek %s --secret-file '%s' --salt-file '%s' --inline --out '%s'",
                    attest_bin, kmip_conn, kek, opath, spath, other_uri_path) != 0)
                return -1;

        /* The node: swtpm, a new state disk, metadata, expected measurements. */
        if (swtpm_start(&tpm_sim) < 0)
                return -1;
        snprintf(disk, sizeof disk, "%s/state.img", tmp);
        snprintf(keyfile, sizeof keyfile, "%s/state.key", tmp);
        snprintf(md_path, sizeof md_path, "%s/metadata.json", tmp);
        snprintf(state_root, sizeof state_root, "%s/run-state", tmp);
        snprintf(nodestate_path, sizeof nodestate_path, "%s/constellation/node_state.json", state_root);
        snprintf(kube_dir, sizeof kube_dir, "%s/etc-kubernetes", tmp);
        snprintf(pki_dir, sizeof pki_dir, "%s/pki", kube_dir);
        snprintf(config_dir, sizeof config_dir, "%s/var-config", tmp);
        snprintf(meas_path, sizeof meas_path, "%s/measurements.json", tmp);
        snprintf(dm_keyfile, sizeof dm_keyfile, "%s/run/cryptsetup-keys.d/state.key", tmp);
        snprintf(units_dir, sizeof units_dir, "%s/units", tmp);
        mkdir(state_root, 0755);
        snprintf(msalt_path, sizeof msalt_path, "%s/msalt.hex", tmp);
        write_hex_file(msalt_path, msalt, sizeof msalt);
        snprintf(isecret_path, sizeof isecret_path, "%s/init-secret", tmp);
        it_write(isecret_path, init_secret, strlen(init_secret), 0600);
        uint8_t pass[32];
        RAND_bytes(pass, sizeof pass);
        it_write(keyfile, pass, sizeof pass, 0400);
        if (it_run(NULL, "truncate -s 32M '%s' && cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 "
                         "--pbkdf-force-iterations 1000 --key-file '%s' '%s' >/dev/null 2>&1 && "
                         "echo '{\"type\":\"constellation-state-disk\",\"keyslots\":[],\"diskIsInitialized\":false}' | "
                         "cryptsetup token import --token-id 0 '%s'",
                   disk, keyfile, disk, disk) != 0) {
                fprintf(stderr, "cryptsetup could not make the state disk file\n");
                return -1;
        }
        struct crypt_data cd = { 0 };
        const char *hash = crypt_r(init_secret, "$2a$04$abcdefghijklmnopqrstuu", &cd);
        if (!hash || hash[0] == '*')
                return -1;
        char md[512];
        int n = snprintf(md, sizeof md,
                         "{\"name\":\"control-plane-0\",\"role\":\"control-plane\",\"vpc_ip\":\"127.0.0.1\","
                         "\"init_secret_hash\":\"%s\"}",
                         hash);
        it_write(md_path, md, (size_t) n, 0644);

        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        if (tpm_open(tpm_sim.tcti, &t, NULL) < 0)
                return -1;
        tpmq_pcr_bank b;
        if (tpm_pcr_read(t, TPM_ALG_SHA256, 0xff, &b) < 0)
                return -1;
        FILE *mf = fopen(meas_path, "we");
        if (!mf)
                return -1;
        fputs("{\"measurements\":{", mf);
        for (unsigned i = 0; i < 8; i++) {
                measurements[i] = (attdoc_measurement){ .index = i, .expected_len = 32 };
                memcpy(measurements[i].expected, b.value[i], 32);
                _cleanup_free_ char *h = hex_encode(b.value[i], 32);
                fprintf(mf, "%s\"%u\":{\"expected\":\"%s\",\"warnOnly\":false}", i ? "," : "", i, h);
        }
        fputs("}}\n", mf);
        fclose(mf);
        policy = (atls_qemu_vtpm_policy){ measurements, 8, false };
        validator = atls_qemu_vtpm_validator(&policy);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        swtpm_stop(&tpm_sim);
        if (kmip_dir[0])
                (void) it_run(NULL, "bash '%s' stop '%s'", pykmip_sh, kmip_dir);
        erase_and_free(operator_uri);
        it_rmrf(tmp);
        free(tmp);
        return 0;
}

/* ---- 1 + 2: Init ---- */

/* Refusals of init --kms-uri-file itself: exit code, the reason, the file named, never quoted. */
static void expect_cli_refusal(const char *uri_file, const char *extra, int want_rc, const char *want) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        int rc = cli_init(0, uri_file, extra, &out, &err);
        if (rc != want_rc || !strstr(err, want))
                fail_msg("init --kms-uri-file %s %s: exit %d (expected %d with \"%s\"): %s", uri_file, extra ?: "", rc,
                         want_rc, want, err);
        assert_null(strstr(err, "wrapped=")); /* (the usage text names kms://kmip?...) */
        assert_null(strstr(err, "client-key="));
}

static void test_init_cli_refusals(void **state) {
        (void) state;
        char p[700], mpath[600], spath[600];
        snprintf(mpath, sizeof mpath, "%s/master.hex", tmp);
        snprintf(spath, sizeof spath, "%s/salt.hex", tmp);
        char both[1400];
        snprintf(both, sizeof both, "--master-secret '%s' --salt '%s'", mpath, spath);
        expect_cli_refusal(operator_uri_path, both, 2, "either --kms-uri-file or --master-secret and --salt");
        snprintf(both, sizeof both, "--master-secret '%s'", mpath);
        expect_cli_refusal(operator_uri_path, both, 2, "either --kms-uri-file or --master-secret and --salt");

        /* the operator's URI (it carries the client key) in a group-readable copy */
        _cleanup_erase_free_ char *copy = NULL;
        assert_true(asprintf(&copy, "%s\n", operator_uri) > 0);
        snprintf(p, sizeof p, "%s/uri-0640", tmp);
        it_write(p, copy, strlen(copy), 0600);
        assert_int_equal(chmod(p, 0640), 0);
        expect_cli_refusal(p, NULL, 3, "mode 0640 lets group or others read it");
        char link[700];
        snprintf(link, sizeof link, "%s/uri-link", tmp);
        assert_int_equal(symlink(operator_uri_path, link), 0);
        expect_cli_refusal(link, NULL, 3, "a symbolic link");
        expect_cli_refusal(tmp, NULL, 3, "not a regular file");
        snprintf(p, sizeof p, "%s/uri-big", tmp);
        _cleanup_free_ char *big = malloc(4100);
        memcpy(big, "kms://kmip?", 11);
        memset(big + 11, 'a', 4100 - 11);
        it_write(p, big, 4100, 0600);
        expect_cli_refusal(p, NULL, 3, "4100 bytes, a kms:// URI has at most 4096");
        snprintf(p, sizeof p, "%s/uri-http", tmp);
        it_write(p, "https://kmip.test/?kek=1\n", 25, 0400);
        expect_cli_refusal(p, NULL, 2, "not a kms:// URI");
        snprintf(p, sizeof p, "%s/uri-missing", tmp);
        expect_cli_refusal(p, NULL, 3, "uri-missing");
}

static void test_init_unknown_kek_changes_nothing(void **state) {
        (void) state;
        /* The operator's URI with a KEK identifier the server never issued. */
        char needle[80];
        snprintf(needle, sizeof needle, "&kek=%s&", kek);
        const char *at = strstr(operator_uri, needle);
        assert_non_null(at);
        _cleanup_erase_free_ char *bad = NULL;
        assert_true(asprintf(&bad, "%.*s&kek=424242&%s", (int) (at - operator_uri), operator_uri, at + strlen(needle)) > 0);
        char bad_path[600];
        snprintf(bad_path, sizeof bad_path, "%s/unknown-kek.uri", tmp);
        it_write(bad_path, bad, strlen(bad), 0600);

        uint8_t before[32], after[32];
        disk_hash(before);
        proc bs;
        start_bootstrapper(&bs);
        _cleanup_free_ char *out = NULL, *err = NULL;
        int rc = cli_init(bs.port, bad_path, NULL, &out, &err);
        if (rc != 1 || !strstr(err, "kmip") || !strstr(err, "item-not-found"))
                fail_msg("init with an unknown KEK: exit %d, expected 1 naming kmip item-not-found: %s", rc, err);
        assert_string_equal(out, "");
        assert_true(running(&bs)); /* a refusal in step A: still serving */
        stop(&bs);
        assert_true(pcr15_zero());
        disk_hash(after);
        assert_memory_equal(before, after, 32);
        assert_int_equal(access(nodestate_path, F_OK), -1);
        assert_int_equal(it_dir_entries(config_dir), -1);
}

static void test_init_kmip(void **state) {
        (void) state;
        proc bs;
        start_bootstrapper(&bs);
        char kube[600], extra[700];
        snprintf(kube, sizeof kube, "%s/admin.conf", tmp);
        snprintf(extra, sizeof extra, "--kubeconfig-out '%s'", kube);
        _cleanup_free_ char *out = NULL, *err = NULL;
        int rc = cli_init(bs.port, operator_uri_path, extra, &out, &err);
        if (rc != 0)
                fail_msg("init --kms-uri-file: exit %d: %s", rc, err);

        /* The cluster ID (init's stdout) as kms://cluster-kms derives it from the same master secret. */
        uint8_t ms[32];
        assert_int_equal(it_hkdf_python(master, 32, master_salt, 32, "key-measurementSecret", ms), 0);
        assert_int_equal(it_hkdf_python(ms, 32, msalt, 32, "key-clusterID", cluster_id), 0);
        _cleanup_free_ char *want = hex_encode(cluster_id, 32);
        out[strcspn(out, "\n")] = 0;
        assert_string_equal(out, want);
        /* the node's log on init's stderr */
        assert_non_null(strstr(err, "---- node log"));
        assert_non_null(strstr(err, "KMS kmip"));
        assert_non_null(strstr(err, "kms://kmip URI"));
        struct stat kst;
        assert_int_equal(stat(kube, &kst), 0);
        assert_int_equal(kst.st_mode & 0777, 0600);
        assert_int_equal(wait_exit(&bs, 60), 0);

        /* The disk key: keyslot 0 opens with HKDF(master, salt, "key-<uuid>"), not with the first-boot key. */
        uint8_t dek[32];
        disk_key(dek);
        char dekfile[600];
        snprintf(dekfile, sizeof dekfile, "%s/dek", tmp);
        it_write(dekfile, dek, 32, 0600);
        assert_int_equal(it_run(NULL, "cryptsetup open --test-passphrase --key-file '%s' '%s'", dekfile, disk), 0);
        assert_int_not_equal(it_run(NULL, "cryptsetup open --test-passphrase --key-file '%s' '%s' 2>/dev/null", keyfile, disk), 0);
        unlink(dekfile);

        /* The key service's configuration: the URI, 0600 in a 0700 directory; no master secret. */
        char p[700];
        struct stat st;
        snprintf(p, sizeof p, "%s/kms-uri", config_dir);
        _cleanup_erase_free_ char *saved = slurp(p);
        assert_string_equal(saved, operator_uri);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(config_dir, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        /* (the join service's attestationConfig and measurementSalt are there too) */
        snprintf(p, sizeof p, "%s/mastersecret", config_dir);
        assert_int_equal(access(p, F_OK), -1);
        snprintf(p, sizeof p, "%s/salt", config_dir);
        assert_int_equal(access(p, F_OK), -1);

        /* The node's log has neither the URI nor its client key. */
        _cleanup_free_ char *log = slurp(bs.log);
        const char *key = strstr(operator_uri, "client-key=base64:");
        assert_non_null(key);
        char keypart[41];
        snprintf(keypart, sizeof keypart, "%s", key + strlen("client-key=base64:") + 40);
        assert_null(strstr(log, keypart));
        assert_null(strstr(log, "wrapped="));
        assert_non_null(strstr(log, "no longer serving Init"));
        /* nor does init's output (the node's log chunks and its own lines) */
        assert_null(strstr(err, keypart));
        assert_null(strstr(err, "wrapped="));
}

/* ---- 3: the key service ---- */

static void expect_data_keys(int port) {
        static const char *const ids[] = { "measurementSecret", "ca_emergency_ssh", "3c5e6f2a-9d1b-4c7e-8a0f-1b2c3d4e5f60" };
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                uint8_t got[32], want[32];
                char info[80];
                snprintf(info, sizeof info, "key-%s", ids[i]);
                assert_int_equal(it_hkdf_python(master, 32, master_salt, 32, info, want), 0);
                get_data_key(port, ids[i], got);
                assert_memory_equal(got, want, 32);
        }
}

static void test_keyservice(void **state) {
        (void) state;
        proc ks;
        const char *by_dir[] = { keyservice_bin, "--listen", "127.0.0.1:0", "--config-dir", config_dir, NULL };
        spawn(&ks, by_dir, true);
        expect_data_keys(ks.port);
        stop(&ks);
        _cleanup_free_ char *log = slurp(ks.log);
        assert_non_null(strstr(log, "kms-uri"));

        char uri_file[700];
        snprintf(uri_file, sizeof uri_file, "%s/kms-uri", config_dir);
        const char *by_file[] = { keyservice_bin, "--listen", "127.0.0.1:0", "--kms-uri-file", uri_file, NULL };
        spawn(&ks, by_file, true);
        expect_data_keys(ks.port);
        stop(&ks);

        /* A URI file others may read is refused before anything is opened. */
        char loose[700];
        snprintf(loose, sizeof loose, "%s/loose.uri", tmp);
        it_write(loose, operator_uri, strlen(operator_uri), 0644);
        const char *loose_argv[] = { keyservice_bin, "--listen", "127.0.0.1:0", "--kms-uri-file", loose, NULL };
        spawn(&ks, loose_argv, false);
        assert_int_equal(wait_exit(&ks, 60), 1);
        _cleanup_free_ char *l2 = slurp(ks.log);
        assert_non_null(strstr(l2, "keyservice: file-permissions"));
        unlink(loose);

        /* Both kinds of configuration in one directory: refused, naming the directory. */
        char both[600], f[700];
        snprintf(both, sizeof both, "%s/both-config", tmp);
        assert_int_equal(mkdir(both, 0700), 0);
        snprintf(f, sizeof f, "%s/kms-uri", both);
        it_write(f, operator_uri, strlen(operator_uri), 0600);
        snprintf(f, sizeof f, "%s/mastersecret", both);
        it_write(f, master, 32, 0600);
        const char *both_argv[] = { keyservice_bin, "--listen", "127.0.0.1:0", "--config-dir", both, NULL };
        spawn(&ks, both_argv, false);
        assert_int_equal(wait_exit(&ks, 60), 1);
        _cleanup_free_ char *l3 = slurp(ks.log);
        assert_non_null(strstr(l3, "keyservice: config-ambiguous"));
        (void) it_run(NULL, "rm -rf '%s'", both);

        /* No source, or two: usage. */
        const char *two[] = { keyservice_bin, "--kms-uri-file", uri_file, "--config-dir", config_dir, NULL };
        spawn(&ks, two, false);
        assert_int_equal(wait_exit(&ks, 60), 2);
}

/* ---- 4: recovery ---- */

static void start_disk_mapper(proc *dm) {
        const char *argv[] = { disk_mapper_bin, "--listen", "127.0.0.1:0", "--tpm", tpm_sim.tcti, "--disk", disk,
                               "--host-test", "--state-dir", state_root, "--keyfile", dm_keyfile, "--unit-dir", units_dir,
                               NULL };
        spawn(dm, argv, true);
        _cleanup_free_ char *log = slurp(dm->log);
        assert_non_null(strstr(log, "waiting for its key"));
}

static void test_recover_kmip(void **state) {
        (void) state;
        reboot_tpm();
        assert_true(pcr15_zero());
        uint8_t before[32], after[32];
        disk_hash(before);
        proc dm;
        start_disk_mapper(&dm);

        /* Another master secret (unwraps fine under the KEK): the node refuses its key. */
        _cleanup_free_ char *out = NULL, *err = NULL;
        int rc = run_cli(&out, &err, "'%s' recover --endpoint 127.0.0.1:%d --kms-uri-file '%s' --measurements '%s' --timeout 120",
                         attest_bin, dm.port, other_uri_path, meas_path);
        if (rc != 1 || !strstr(err, "PERMISSION_DENIED") || !strstr(err, "wrong-key"))
                fail_msg("recover with another master secret: exit %d, %s", rc, err);
        assert_true(running(&dm));
        assert_int_equal(access(dm_keyfile, F_OK), -1);
        disk_hash(after);
        assert_memory_equal(before, after, 32);

        /* The CLI's own refusals: both sources, no source, a file that is not a kms:// URI. */
        free(err);
        err = NULL;
        rc = run_cli(NULL, &err, "'%s' recover --endpoint 127.0.0.1:%d --kms-uri-file '%s' --master-secret '%s/master.hex' "
                     "--salt '%s/salt.hex' --measurements '%s'", attest_bin, dm.port, operator_uri_path, tmp, tmp, meas_path);
        assert_int_equal(rc, 2);
        char notauri[600];
        snprintf(notauri, sizeof notauri, "%s/not-a-uri", tmp);
        it_write(notauri, "https://example.invalid/?x=1\n", 29, 0600);
        free(err);
        err = NULL;
        rc = run_cli(NULL, &err, "'%s' recover --endpoint 127.0.0.1:%d --kms-uri-file '%s' --measurements '%s'", attest_bin,
                     dm.port, notauri, meas_path);
        if (rc != 2 || !strstr(err, "not a kms:// URI"))
                fail_msg("recover with a file that is no kms:// URI: exit %d, %s", rc, err);
        assert_true(running(&dm));

        /* The operator's URI: the node unwraps at the KMIP server and unlocks. */
        free(out);
        free(err);
        out = err = NULL;
        rc = run_cli(&out, &err, "'%s' recover --endpoint 127.0.0.1:%d --kms-uri-file '%s' --measurements '%s' --timeout 120",
                     attest_bin, dm.port, operator_uri_path, meas_path);
        if (rc != 0 || !strstr(out, "recovered"))
                fail_msg("recover: exit %d, %s %s", rc, out, err);
        assert_int_equal(wait_exit(&dm, 60), 0);
        uint8_t dek[32], got[32];
        disk_key(dek);
        _cleanup_free_ uint8_t *kf = NULL;
        size_t kl;
        assert_int_equal(read_full_file(dm_keyfile, 4096, &kf, &kl), 0);
        assert_int_equal(kl, 32);
        assert_memory_equal(kf, dek, 32);
        /* PCR 15 = SHA-256(0^32 || SHA-256(cluster ID)): the cluster ID derived through KMIP. */
        uint8_t h[32], buf[64] = { 0 };
        SHA256(cluster_id, 32, buf + 32);
        SHA256(buf, 64, h);
        read_pcr15(got);
        assert_memory_equal(got, h, 32);
        disk_hash(after);
        assert_memory_equal(before, after, 32); /* recovery never writes the disk */
}

/* ---- 5: crypto-shredding ---- */

static void test_revoked_kek_refused(void **state) {
        (void) state;
        _cleanup_free_ char *out = NULL, *err = NULL;
        if (run_cli(&out, &err, "'%s' kmip revoke %s --kek %s", attest_bin, kmip_conn, kek) != 0)
                fail_msg("kmip revoke: %s", err);
        reboot_tpm();
        (void) unlink(dm_keyfile);
        uint8_t before[32], after[32];
        disk_hash(before);
        proc dm;
        start_disk_mapper(&dm);
        free(out);
        free(err);
        out = err = NULL;
        int rc = run_cli(&out, &err, "'%s' recover --endpoint 127.0.0.1:%d --kms-uri-file '%s' --measurements '%s' --timeout 120",
                         attest_bin, dm.port, operator_uri_path, meas_path);
        if (rc != 1 || !strstr(err, "kek-revoked"))
                fail_msg("recover after the revocation: exit %d, expected 1 with kek-revoked: %s %s", rc, out, err);
        assert_true(running(&dm)); /* still waiting: nothing was unlocked */
        _cleanup_free_ char *log = slurp(dm.log);
        assert_non_null(strstr(log, "kek-revoked"));
        stop(&dm);
        disk_hash(after);
        assert_memory_equal(before, after, 32);
        assert_int_equal(access(dm_keyfile, F_OK), -1);
        assert_true(pcr15_zero());

        /* And the key service the unit would start: refuses, saying why. */
        proc ks;
        const char *argv[] = { keyservice_bin, "--listen", "127.0.0.1:0", "--config-dir", config_dir, NULL };
        spawn(&ks, argv, false);
        assert_int_equal(wait_exit(&ks, 120), 1);
        _cleanup_free_ char *kslog = slurp(ks.log);
        assert_non_null(strstr(kslog, "kek-revoked"));
}

/* ---- 6: where the KEK and the master secret are not ---- */

static void test_secrets_nowhere(void **state) {
        (void) state;
        /* The KEK's bytes as PyKMIP stores them: searched raw, as hex (both cases) and in base64. */
        char kmip_db[600];
        snprintf(kmip_db, sizeof kmip_db, "%s/pykmip.db", kmip_dir);
        _cleanup_free_ char *out = NULL;
        int rc = it_run(&out,
                        "python3 - '%s' '%s' '%s' '%s/master.hex' <<'EOF'\n"
                        "import base64, os, sqlite3, sys\n"
                        "d, db, uid, mpath = sys.argv[1:5]\n"
                        "c = sqlite3.connect(db)\n"
                        "row = c.execute('select value from managed_objects where uid=?', (int(uid),)).fetchone()\n"
                        "c.close()\n"
                        "assert row is not None, 'the KEK is not in the database'\n"
                        "k = bytes(row[0]); assert len(k) == 32, len(k)\n"
                        "needles = [k, k.hex().encode(), k.hex().upper().encode(), base64.b64encode(k)[:40], base64.urlsafe_b64encode(k)[:40]]\n"
                        "m = bytes.fromhex(open(mpath).read().strip())\n"
                        "mneedles = [m, m.hex().encode(), base64.urlsafe_b64encode(m)[:40], base64.b64encode(m)[:40]]\n"
                        "n = 0\n"
                        "for root, _, files in os.walk(d):\n"
                        "    for f in files:\n"
                        "        p = os.path.join(root, f)\n"
                        "        if f.startswith('pykmip.db') or os.path.islink(p) or not os.path.isfile(p): continue\n"
                        "        data = open(p, 'rb').read(); n += 1\n"
                        "        for x in needles:\n"
                        "            if x in data: print('KEK in', p); sys.exit(1)\n"
                        "        if f.endswith('.log') or f.startswith('cli-'):\n"
                        "            for x in mneedles:\n"
                        "                if x in data: print('master secret in', p); sys.exit(1)\n"
                        "print(n)\n"
                        "EOF",
                        tmp, kmip_db, kek, tmp);
        if (rc != 0)
                fail_msg("secret search: %s", out ?: "");
        /* every program's output, the node's files, the disk */
        assert_true(atoi(out) > 20);
}

int main(int argc, char **argv) {
        if (argc < 6) {
                fprintf(stderr, "usage: %s BOOTSTRAPPER KEYSERVICE DISK-MAPPER ATTEST PYKMIP.SH\n", argv[0]);
                return 2;
        }
        bootstrapper_bin = argv[1];
        keyservice_bin = argv[2];
        disk_mapper_bin = argv[3];
        attest_bin = argv[4];
        pykmip_sh = argv[5];
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_cli_refusals),
                cmocka_unit_test(test_init_unknown_kek_changes_nothing),
                cmocka_unit_test(test_init_kmip),
                cmocka_unit_test(test_keyservice),
                cmocka_unit_test(test_recover_kmip),
                cmocka_unit_test(test_revoked_kek_refused),
                cmocka_unit_test(test_secrets_nowhere),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
