# SPDX-License-Identifier: Apache-2.0
"""The bootstrapper's join path on the host, end to end with the real binaries (loopback only):

  1. a control plane (own swtpm, LUKS2 file) is initialised with `constellation-attest init`; after
     Init its bootstrapper issued its etcd certificates, wrote etcd's configuration (etcd.env, 0600),
     which this test starts Debian's etcd with as systemd's EnvironmentFile would (--etcd-unit ""),
     and stored in etcd (mTLS) the join service's attestationConfig (PCRs 4, 8, 9, 11, 12, 13 of its
     TPM, enforced) and measurementSalt (the 32 raw bytes) and the key service's master secret and
     salt, whose files it then removed (etcd is the one source); a restarted bootstrapper changes
     nothing in etcd;
  2. two worker bootstrappers (each its own swtpm and LUKS2 file, metadata role "worker") start
     before any join service exists and retry; worker 2's PCR 15 is then extended (a node already
     bound); the real constellation-keyservice and constellation-joinservice start from etcd
     (--etcd-endpoint, as their units);
  3. worker 1 joins and exits 0: its keyslot opens with HKDF(master, salt, "key-<uuid>") (python's
     hmac; cryptsetup open --test-passphrase), token initialized, PCR 15 equals the control plane's,
     node_state.json {Role: Worker, MeasurementSalt}, the marker, the kubelet certificate verifies
     against the cluster CA (openssl) with CN=system:node:worker-1 and matches its 0600 key, the log
     says kubeadm was not installed and holds no key;
  4. worker 2 is refused by the join service (PCR 15, "at index 15"), keeps retrying, its disk file
     is byte for byte unchanged and it writes no node_state.json; SIGTERM stops it (exit 0)."""
import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node-services"))
sys.path.insert(0, os.path.join(HERE, "..", "etcd"))
from nodetest import Service, Swtpm, check, fail, require_tool, tmpdir  # noqa: E402
import etcdtest  # noqa: E402

BS, JS, KS, ATTEST, TOOL = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ETCD_PORT_BASE = 21300
for tool in ("cryptsetup", "tpm2_pcrread", "tpm2_pcrextend", "openssl"):
    require_tool(tool)

MASTER = os.urandom(32)
SALT = os.urandom(32)
MSALT = os.urandom(32)
INIT_SECRET = os.urandom(24).hex()


def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")
PCR15 = hashlib.sha256(b"\0" * 32 + hashlib.sha256(CLUSTER_ID).digest()).digest()


def run(argv, env=None, timeout=180, input=None):
    p = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, input=input)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def read_pcr(tpm, d, index):
    out = os.path.join(d, "pcr.bin")
    rc, _, err = run(["tpm2_pcrread", "sha256:%d" % index, "-o", out], env=tpm.env())
    if rc != 0:
        fail("tpm2_pcrread: " + err)
    return read(out)


def reserve_port():
    """A loopback port for a service started later, held until then: bound with SO_REUSEADDR and never
    listening, so no other socket can bind it (nor get it as an ephemeral port) in between, while the
    service (lib/atls binds its listener with SO_REUSEADDR) can still bind and listen on it. Releasing
    it first would let another process take it. Returns (socket, port); close the socket once the
    service is ready."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def wait_for(pred, what, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def new_disk(d, name):
    """A fresh node's state disk: LUKS2 file, token 0 "not initialized", first-boot keyfile."""
    disk, keyfile = os.path.join(d, name + ".img"), os.path.join(d, name + ".key")
    write(keyfile, os.urandom(32), 0o400)
    with open(disk, "wb") as f:
        f.truncate(32 << 20)
    rc, _, err = run(["cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--pbkdf", "pbkdf2",
                      "--pbkdf-force-iterations", "1000", "--key-file", keyfile, disk])
    check(rc == 0, "%s: LUKS2 state disk (%s)" % (name, err.strip()[:100]))
    rc, _, err = run(["cryptsetup", "token", "import", "--token-id", "0", disk],
                     input=b'{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":false}')
    check(rc == 0, "%s: token 0 not initialized (%s)" % (name, err.strip()[:100]))
    return disk, keyfile


def token_initialized(disk):
    rc, out, err = run(["cryptsetup", "token", "export", "--token-id", "0", disk])
    if rc != 0:
        fail("cryptsetup token export: " + err)
    return json.loads(out)["diskIsInitialized"]


def bootstrapper(d, name, tpm, md, disk, keyfile, extra=()):
    root = os.path.join(d, name)
    os.makedirs(root, exist_ok=True)
    argv = [BS, "--listen", "127.0.0.1:0", "--tpm", tpm.tcti, "--metadata", md, "--state-disk", disk,
            "--state-keyfile", keyfile, "--node-state", os.path.join(root, "run-state", "constellation", "node_state.json"),
            "--pki-dir", os.path.join(root, "etc-kubernetes", "pki"), "--kubernetes-dir", os.path.join(root, "etc-kubernetes"),
            "--component-roots", os.path.join(root, "run-state"), "--config-dir", os.path.join(root, "var-config"),
            "--start-units", "", "--kubeadm", os.path.join(root, "run-state", "bin", "kubeadm")] + list(extra)
    return Service(argv, d, timeout=120), root


started, tpms, etcds = [], [], []
with tmpdir() as d:
    try:
        # --- 1. the control plane, initialised ---
        cp_tpm = Swtpm(os.path.join(d, "cp-tpm"))
        tpms.append(cp_tpm)
        cp_disk, cp_key = new_disk(d, "cp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
            h = crypt.crypt(INIT_SECRET, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
        cp_md = os.path.join(d, "cp-metadata.json")
        write(cp_md, json.dumps({"name": "control-plane-0", "role": "control-plane", "vpc_ip": "127.0.0.1",
                                 "init_secret_hash": h, "endpoint": "127.0.0.1"}), 0o644)
        etcd_cport, etcd_pport, etcd_held = etcdtest.hold_pair(ETCD_PORT_BASE)
        etcd_ep = "127.0.0.1:%d" % etcd_cport
        etcd_env_path = os.path.join(d, "cp", "var-config", "etcd.env")
        etcd_args = ("--etcd-endpoint", etcd_ep, "--etcd-unit", "", "--etcd-env", etcd_env_path,
                     "--etcd-data-dir", os.path.join(d, "cp", "var-lib-etcd"), "--etcd-peer-port", str(etcd_pport))
        cp, cp_root = bootstrapper(d, "cp", cp_tpm, cp_md, cp_disk, cp_key, etcd_args)
        started.append(cp)
        cp.wait_ready()
        meas = {str(i): {"expected": read_pcr(cp_tpm, d, i).hex(), "warnOnly": False} for i in range(8)}
        write(os.path.join(d, "measurements.json"), json.dumps({"measurements": meas}))
        for name, data in (("master.hex", MASTER), ("salt.hex", SALT), ("msalt.hex", MSALT)):
            write(os.path.join(d, name), data.hex() + "\n")
        write(os.path.join(d, "init-secret"), INIT_SECRET + "\n")
        rc, out, err = run([ATTEST, "init", "--endpoint", "127.0.0.1:%d" % cp.ports["grpc"],
                            "--measurements", os.path.join(d, "measurements.json"),
                            "--master-secret", os.path.join(d, "master.hex"), "--salt", os.path.join(d, "salt.hex"),
                            "--measurement-salt", os.path.join(d, "msalt.hex"),
                            "--init-secret", os.path.join(d, "init-secret"), "--timeout", "120"], timeout=300)
        check(rc == 0 and out.strip() == CLUSTER_ID.hex(), "control plane: Init succeeded, cluster ID = python HKDF (%s)" % err[-300:])
        # After Init the bootstrapper writes etcd's configuration and waits for etcd: start it from
        # that file, as constellation-etcd.service's EnvironmentFile= does.
        wait_for(lambda: os.path.exists(etcd_env_path) or cp.proc.poll() is not None,
                 "the bootstrapper to write etcd.env")
        check(os.path.exists(etcd_env_path), "the bootstrapper wrote etcd.env (log tail: %s)" % cp.stderr()[-600:])
        check(stat.S_IMODE(os.stat(etcd_env_path).st_mode) == 0o600, "etcd.env mode 0600")
        env = etcdtest.parse_env_file(etcd_env_path)
        check(env["ETCD_LISTEN_CLIENT_URLS"] == "https://" + etcd_ep and env["ETCD_CLIENT_CERT_AUTH"] == "true" and
              env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true" and env["ETCD_INITIAL_CLUSTER"] ==
              "control-plane-0=https://127.0.0.1:%d" % etcd_pport, "etcd.env: client and peer URLs with mTLS")
        etcd = etcdtest.Etcd(env, d, etcd_held)
        etcds.append(etcd)
        check(etcd.ready, "etcd (Debian's) started from the bootstrapper's configuration (log: %s)"
              % etcd.log_text()[-400:])
        check(cp.wait_exit(180) == 0, "control plane: the bootstrapper exits 0 after Init")
        check(stat.S_IMODE(os.stat(env["ETCD_DATA_DIR"]).st_mode) == 0o700, "etcd's data directory is 0700")
        cp_pki = os.path.join(cp_root, "etc-kubernetes", "pki")

        def etcd_get(key):
            p = subprocess.run([TOOL, "get", etcd_ep, cp_pki, key], capture_output=True, timeout=60)
            if p.returncode not in (0, 2):
                fail("etcd get %s: %s" % (key, p.stderr.decode(errors="replace").strip()[:200]))
            return p.stdout if p.returncode == 0 else None

        cfg = os.path.join(cp_root, "var-config")
        ac = json.loads(etcd_get("/constellation/joinservice/attestationConfig"))
        want = {str(i): {"expected": read_pcr(cp_tpm, d, i).hex(), "warnOnly": False} for i in (4, 8, 9, 11, 12, 13)}
        check(ac == {"measurements": want}, "etcd attestationConfig: exactly PCRs 4, 8, 9, 11, 12, 13 of the control plane's TPM, enforced")
        check(etcd_get("/constellation/joinservice/measurementSalt") == MSALT,
              "etcd measurementSalt: the 32 raw bytes of the Init's measurement salt")
        check(etcd_get("/constellation/keyservice/mastersecret") == MASTER and
              etcd_get("/constellation/keyservice/salt") == SALT, "etcd: the key service's master secret and salt")
        check(etcd_get("/constellation/keyservice/kms-uri") is None, "etcd: no kms-uri beside them")
        for name in ("attestationConfig", "measurementSalt", "mastersecret", "salt"):
            check(not os.path.exists(os.path.join(cfg, name)), "%s not on disk: etcd is the one source" % name)
        cp_log = cp.stderr()
        check(MASTER.hex() not in cp_log and SALT.hex() not in cp_log, "control plane log: no secret")

        # A restarted bootstrapper on the bootstrapped node stores nothing over etcd's values.
        ac_before = etcd_get("/constellation/joinservice/attestationConfig")
        cp2, _ = bootstrapper(d, "cp", cp_tpm, cp_md, cp_disk, cp_key, etcd_args)
        started.append(cp2)
        check(cp2.wait_exit(120) == 0 and "already bootstrapped" in cp2.stderr(),
              "control plane: a restarted bootstrapper does not serve Init, exits 0")
        check(etcd_get("/constellation/joinservice/attestationConfig") == ac_before,
              "control plane: etcd's attestationConfig unchanged by the restart")
        cp_pcr15 = read_pcr(cp_tpm, d, 15)
        check(cp_pcr15 == PCR15, "control plane: PCR 15 = SHA-256(0^32 || SHA-256(cluster ID))")

        # --- 2. two workers, waiting for a join service that is not there yet ---
        port_hold, port = reserve_port()
        workers = []
        for n in (1, 2):
            tpm = Swtpm(os.path.join(d, "w%d-tpm" % n))
            tpms.append(tpm)
            disk, key = new_disk(d, "w%d" % n)
            md = os.path.join(d, "w%d-metadata.json" % n)
            write(md, json.dumps({"name": "worker-%d" % n, "role": "worker", "vpc_ip": "127.0.0.1",
                                  "join_endpoints": ["127.0.0.1:%d" % port]}), 0o644)
            svc, root = bootstrapper(d, "w%d" % n, tpm, md, disk, key, ("--join-retry", "500"))
            started.append(svc)
            svc.wait_ready()
            workers.append((svc, root, tpm, disk))
        for svc, _, _, _ in workers:
            wait_for(lambda: "retrying in" in svc.stderr(), "a worker to retry (no join service yet)")
        check(True, "workers: no join service yet, both retry with backoff")
        w2, w2_root, w2_tpm, w2_disk = workers[1]
        rc, _, err = run(["tpm2_pcrextend", "15:sha256=" + "ab" * 32], env=w2_tpm.env())
        check(rc == 0 and read_pcr(w2_tpm, d, 15) != b"\0" * 32, "worker 2: PCR 15 already set (%s)" % err.strip())
        w2_before = hashlib.sha256(read(w2_disk)).digest()

        ks = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", etcd_ep, "--pki-dir", cp_pki], d)
        started.append(ks)
        ks.wait_ready()
        js = Service([JS, "--listen", "127.0.0.1:%d" % port, "--update-listen", "none", "--etcd-endpoint", etcd_ep,
                      "--pki-dir", cp_pki,
                      "--keyservice", "127.0.0.1:%d" % ks.ports["grpc"], "--api-endpoint", "127.0.0.1:6443"], d)
        started.append(js)
        js.wait_ready()
        port_hold.close()
        check("PCR 15 = 0 enforced" in js.stderr() and "shared store (etcd" in js.stderr(),
              "join service: started from what Init stored in etcd")

        # --- 3. worker 1 joins ---
        w1, w1_root, w1_tpm, w1_disk = workers[0]
        rc = w1.wait_exit(240)
        log = w1.stderr()
        check(rc == 0, "worker 1: exit 0 after joining (log tail: %s)" % log[-600:])
        check("join ticket issued for disk" in js.stderr(), "join service: join ticket issued")
        rc, uuid, _ = run(["cryptsetup", "luksUUID", w1_disk])
        uuid = uuid.strip().lower()
        dek = hkdf(MASTER, SALT, ("key-" + uuid).encode())
        write(os.path.join(d, "dek"), dek)
        rc, _, err = run(["cryptsetup", "open", "--test-passphrase", "--key-file", os.path.join(d, "dek"), w1_disk])
        check(rc == 0, "worker 1: keyslot opens with HKDF(master, salt, key-%s) (%s)" % (uuid, err.strip()))
        write(os.path.join(d, "wrong"), hkdf(MASTER, SALT, b"key-other"))
        rc, _, _ = run(["cryptsetup", "open", "--test-passphrase", "--key-file", os.path.join(d, "wrong"), w1_disk])
        check(rc != 0, "worker 1: and not with another key")
        check(token_initialized(w1_disk) is True, "worker 1: token 0 initialized")
        check(read_pcr(w1_tpm, d, 15) == cp_pcr15, "worker 1: PCR 15 equals the control plane's")
        ns_path = os.path.join(w1_root, "run-state", "constellation", "node_state.json")
        ns = json.loads(read(ns_path))
        check(ns == {"Role": "Worker", "MeasurementSalt": base64.b64encode(MSALT).decode()},
              "worker 1: node_state.json {Role: Worker, MeasurementSalt}")
        check(os.path.exists(os.path.join(w1_root, "run-state", "constellation", "bootstrap-complete")),
              "worker 1: bootstrap-complete marker")
        crt = os.path.join(w1_root, "etc-kubernetes", "kubelet-client-crt.pem")
        key = os.path.join(w1_root, "etc-kubernetes", "kubelet-client-key.pem")
        ca = os.path.join(cp_root, "etc-kubernetes", "pki", "ca.crt")
        rc, out, err = run(["openssl", "verify", "-CAfile", ca, crt])
        check(rc == 0, "worker 1: kubelet certificate verifies against the cluster CA (%s)" % (out + err).strip())
        rc, subj, _ = run(["openssl", "x509", "-in", crt, "-noout", "-subject", "-nameopt", "RFC2253"])
        check("CN=system:node:worker-1" in subj and "O=system:nodes" in subj, "worker 1: subject %s" % subj.strip())
        _, pub_c, _ = run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"])
        _, pub_k, _ = run(["openssl", "pkey", "-in", key, "-pubout"])
        check(pub_c and pub_c == pub_k, "worker 1: kubelet key matches the certificate")
        check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "worker 1: kubelet key mode 0600")
        check("kubeadm join did not run" in log, "worker 1: says plainly that kubeadm was not installed")
        check(dek.hex() not in log and MEASUREMENT_SECRET.hex() not in log, "worker 1: log holds no key")

        # --- 4. worker 2 (PCR 15 set) is refused by the join service, disk untouched ---
        wait_for(lambda: "at index 15" in js.stderr(), "the join service to refuse worker 2 (PCR 15)")
        check("evidence-measurements" in js.stderr(), "join service: worker 2 refused, PCR 15 named")
        before = len(w2.stderr())
        wait_for(lambda: "retrying in" in w2.stderr()[before:], "worker 2 to retry after the refusal")
        check(w2.proc.poll() is None, "worker 2: still waiting")
        rc, stopping = w2.stop()
        check(rc == 0 and stopping, "worker 2: SIGTERM stops it (exit 0)")
        check(hashlib.sha256(read(w2_disk)).digest() == w2_before and token_initialized(w2_disk) is False,
              "worker 2: disk file unchanged, token not initialized")
        check(not os.path.exists(os.path.join(w2_root, "run-state", "constellation", "node_state.json")),
              "worker 2: no node_state.json")
        rc, _ = js.stop()
        check(rc == 0, "join service: clean stop")
        ks.stop()
    finally:
        for s in started:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        for t in tpms:
            t.stop()
        for e in etcds:
            e.stop()
print("PASS")
