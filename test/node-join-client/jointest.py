# SPDX-License-Identifier: Apache-2.0
"""The set-up the bootstrapper join tests of this directory share (test-join-client.py,
test-join-cp.py, test-join-kmip.py): nodes made of the real constellation-bootstrapper with their own
swtpm and LUKS2 state disk file, a control plane initialised by `constellation-attest init`, Debian's
etcd started from the etcd.env a bootstrapper wrote (as constellation-etcd.service's EnvironmentFile=
would), the key and join services started from the shared store (as their units), and helpers to
look at the result (PCRs, the disk's keyslot and token). What a test asserts stays in the test.

A Cluster owns every process it started and stops them in close(), so a test that fails midway
leaves nothing running."""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node-services"))
sys.path.insert(0, os.path.join(HERE, "..", "etcd"))
from nodetest import Service, Swtpm, check, fail, require_tool, tmpdir  # noqa: E402,F401
import etcdtest  # noqa: E402,F401


def hkdf(ikm, salt, info, length=32):
    """RFC 5869 HKDF-SHA256 with python's hmac (not lib/crypto: the tests check the node's keys)."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def run(argv, env=None, timeout=180, input=None):
    p = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, input=input)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_for(pred, what, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)  # polling a condition with a deadline
    fail("timed out waiting for " + what)


def read_pcr(tpm, d, index):
    out = os.path.join(d, "pcr.bin")
    rc, _, err = run(["tpm2_pcrread", "sha256:%d" % index, "-o", out], env=tpm.env())
    if rc != 0:
        fail("tpm2_pcrread: " + err)
    return read(out)


def hold(addr, port):
    """addr:port held (bound with SO_REUSEADDR, never listening) until a service binds it; None if
    taken. No other socket can bind it (nor get it as an ephemeral port) in between, while the service
    (lib/atls and etcd bind their listeners with SO_REUSEADDR) still can; a client dialling it is
    refused at once. Close it once the service is ready."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
        return s
    except OSError:
        s.close()
        return None


def reserve_port():
    """A free loopback port, held as hold() does. Returns (socket, port)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def init_secret_hash(secret):
    """The bcrypt hash of the init secret, as the infrastructure puts it into the metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crypt is deprecated in Python 3.11; bcrypt is what the node checks
        import crypt
        return crypt.crypt(secret, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))


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


def disk_uuid(disk):
    rc, out, err = run(["cryptsetup", "luksUUID", disk])
    if rc != 0:
        fail("cryptsetup luksUUID: " + err)
    return out.strip().lower()


def disk_opens_with(d, disk, key):
    """Keyslot check only (cryptsetup open --test-passphrase): the host has no device-mapper."""
    path = os.path.join(d, "try.key")
    write(path, key)
    rc, _, _ = run(["cryptsetup", "open", "--test-passphrase", "--key-file", path, disk])
    os.unlink(path)
    return rc == 0


def sha256_file(path):
    return hashlib.sha256(read(path)).digest()


def etcd_args(d, name, addr, cport, pport):
    """A bootstrapper's shared-store options: etcd at addr:cport, its etcd.env and data directory under
    d/name, no unit (the test starts etcd from etcd.env)."""
    return ("--etcd-endpoint", "%s:%d" % (addr, cport), "--etcd-unit", "", "--etcd-env",
            os.path.join(d, name, "var-config", "etcd.env"), "--etcd-data-dir", os.path.join(d, name, "var-lib-etcd"),
            "--etcd-peer-port", str(pport))


class Node:
    """A bootstrapper with its own swtpm (tpm), state disk file (disk, first-boot keyfile) and metadata
    file (md); its files under root (node_state.json, PKI, kubelet credentials, config directory)."""

    def __init__(self, name, tpm, disk, keyfile, md, root, svc):
        self.name, self.tpm, self.disk, self.keyfile, self.md, self.root, self.svc = \
            name, tpm, disk, keyfile, md, root, svc
        self.state_dir = os.path.join(root, "run-state")
        self.node_state = os.path.join(self.state_dir, "constellation", "node_state.json")
        self.marker = os.path.join(self.state_dir, "constellation", "bootstrap-complete")
        self.kubernetes_dir = os.path.join(root, "etc-kubernetes")
        self.pki = os.path.join(self.kubernetes_dir, "pki")
        self.config_dir = os.path.join(root, "var-config")
        self.etcd_env = os.path.join(self.config_dir, "etcd.env")


class Cluster:
    """The programs under test (argv order of the tests: bootstrapper, join service, key service,
    constellation-attest, etcd-test-tool) and every process started through it."""

    def __init__(self, d, bs, js, ks, attest, tool):
        self.d, self.bs, self.js, self.ks, self.attest, self.tool = d, bs, js, ks, attest, tool
        self.started, self.tpms, self.etcds, self.held = [], [], [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for s in self.started:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        for t in self.tpms:
            t.stop()
        for e in self.etcds:
            e.stop()
        for s in self.held:
            if s:
                s.close()

    def swtpm(self, name):
        t = Swtpm(os.path.join(self.d, name))
        self.tpms.append(t)
        return t

    def service(self, argv, timeout=60):
        s = Service(argv, self.d, timeout=timeout)
        self.started.append(s)
        return s

    def bootstrapper(self, name, tpm, md, disk, keyfile, extra=()):
        """The bootstrapper of node `name` (files under d/name); not waited for."""
        root = os.path.join(self.d, name)
        os.makedirs(root, exist_ok=True)
        n = Node(name, tpm, disk, keyfile, md, root, None)
        argv = [self.bs, "--listen", "127.0.0.1:0", "--tpm", tpm.tcti, "--metadata", md, "--state-disk", disk,
                "--state-keyfile", keyfile, "--node-state", n.node_state, "--pki-dir", n.pki,
                "--kubernetes-dir", n.kubernetes_dir, "--component-roots", n.state_dir, "--config-dir", n.config_dir,
                "--start-units", "", "--kubeadm", os.path.join(n.state_dir, "bin", "kubeadm")] + list(extra)
        n.svc = self.service(argv, timeout=120)
        return n

    def start_node(self, name, metadata, extra=(), tpm_dir=None):
        """A fresh node: its own swtpm (in d/tpm_dir, default name-tpm), a new state disk, the metadata
        (a dict, written 0644), its bootstrapper started and ready (serving Init)."""
        tpm = self.swtpm(tpm_dir or name + "-tpm")
        disk, keyfile = new_disk(self.d, name)
        md = os.path.join(self.d, name + "-metadata.json")
        write(md, json.dumps(metadata), 0o644)
        n = self.bootstrapper(name, tpm, md, disk, keyfile, extra)
        n.svc.wait_ready()
        return n

    def init(self, node, master=None, salt=None, kms_uri_file=None, msalt=None, init_secret=None):
        """constellation-attest init of `node` with measurements = its PCRs 0-7 (the host has no image
        to measure) and either the master secret and salt (hex files) or a kms:// URI file. Returns
        (exit code, stdout, stderr)."""
        d = self.d
        meas = {str(i): {"expected": read_pcr(node.tpm, d, i).hex(), "warnOnly": False} for i in range(8)}
        write(os.path.join(d, "measurements.json"), json.dumps({"measurements": meas}))
        write(os.path.join(d, "msalt.hex"), msalt.hex() + "\n")
        write(os.path.join(d, "init-secret"), init_secret + "\n")
        if kms_uri_file:
            keys = ["--kms-uri-file", kms_uri_file]
        else:
            for name, data in (("master.hex", master), ("salt.hex", salt)):
                write(os.path.join(d, name), data.hex() + "\n")
            keys = ["--master-secret", os.path.join(d, "master.hex"), "--salt", os.path.join(d, "salt.hex")]
        return run([self.attest, "init", "--endpoint", "127.0.0.1:%d" % node.svc.ports["grpc"],
                    "--measurements", os.path.join(d, "measurements.json")] + keys +
                   ["--measurement-salt", os.path.join(d, "msalt.hex"),
                    "--init-secret", os.path.join(d, "init-secret"), "--timeout", "120"], timeout=300)

    def wait_etcd_env(self, node):
        """Waits until node's bootstrapper wrote etcd.env (or exited); True if it is there."""
        wait_for(lambda: os.path.exists(node.etcd_env) or node.svc.proc.poll() is not None,
                 "%s's bootstrapper to write etcd.env" % node.name)
        return os.path.exists(node.etcd_env)

    def start_etcd(self, node, held=()):
        """Debian's etcd from node's etcd.env (its ports held by `held` until then). Returns (etcd, env);
        etcd.ready says whether it started."""
        env = etcdtest.parse_env_file(node.etcd_env)
        etcd_dir = os.path.join(self.d, node.name, "etcd-run")
        os.makedirs(etcd_dir, exist_ok=True)
        e = etcdtest.Etcd(env, etcd_dir, held, timeout=120)
        self.etcds.append(e)
        return e, env

    def etcd_get(self, endpoint, pki, key):
        """A value from etcd (etcd-test-tool get, mTLS with pki's client certificate); None if absent."""
        p = subprocess.run([self.tool, "get", endpoint, pki, key], capture_output=True, timeout=60)
        if p.returncode not in (0, 2):  # all of stderr: under ASan it is LeakSanitizer's report and stack
            fail("etcd get %s: exit %d: %s" % (key, p.returncode, p.stderr.decode(errors="replace").strip()[-6000:]))
        return p.stdout if p.returncode == 0 else None

    def start_keyservice(self, etcd_endpoint, pki, listen="127.0.0.1:0"):
        """constellation-keyservice from the shared store, as its unit; ready."""
        ks = self.service([self.ks, "--listen", listen, "--etcd-endpoint", etcd_endpoint, "--pki-dir", pki])
        return ks.wait_ready()

    def start_joinservice(self, listen, etcd_endpoint, pki, ks, extra=()):
        """constellation-joinservice from the shared store with keys from the key service ks; ready."""
        js = self.service([self.js, "--listen", listen, "--etcd-endpoint", etcd_endpoint, "--pki-dir", pki,
                           "--keyservice", "127.0.0.1:%d" % ks.ports["grpc"]] + list(extra))
        return js.wait_ready()
