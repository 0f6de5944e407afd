# SPDX-License-Identifier: Apache-2.0
"""A second control plane joins, on the host with the real binaries (swtpm each, LUKS2 files, Debian's
etcd 3.4, loopback only; docs/node.md "A control plane joins"). The two control planes have their own
loopback addresses A1 = 127.X.Y.1 and A2 = 127.X.Y.2 (their vpc_ip, as each control plane's one
address on QEMU), the same ports on each:

  1. control-plane-0, whose metadata also names control-plane-1's join service (not there yet: its
     bootstrapper serves Init and retries the join at once), is initialised; etcd.env (with the peer
     SAN check off: peers come from 127.0.0.1, not from their certificate's address) starts a
     one-member etcd on A1; its key service and join service (--control-plane-ips A1,A2) start from
     etcd;
  2. a control plane at an address the infrastructure does not list asks for a control-plane ticket:
     refused (join: not-control-plane), nothing added to etcd; a listed control plane (A3) that gets
     its ticket and dies before its etcd runs leaves a learner: writes still land (a learner is no
     voter), and the join service removes it after --learner-timeout (MemberRemove), while
     control-plane-1's join is held back meanwhile (etcd: too-many-learners) and then goes through;
  3. control-plane-1 (metadata role control-plane, join endpoint A1's join service) joins: the join
     service adds it as an etcd learner and hands it the control-plane files and its initial cluster;
     its bootstrapper writes etcd.env (state existing, both members), this test starts etcd from it,
     the join service promotes the learner once in sync, the bootstrapper exits 0: two voting members;
     its disk opens with HKDF(master, salt, key-<uuid>), PCR 15 equals control-plane-0's,
     node_state.json says ControlPlane, its PKI holds control-plane-0's CAs byte for byte (keys 0600);
     its bootstrapper restarted takes the bootstrapped path and changes neither etcd.env nor the members;
  4. its key service and join service start from its own etcd member: the key service returns the
     same data keys as control-plane-0's; an attestation config update (PCR 4 changed, version 1)
     pushed through control-plane-0's join service is enforced by control-plane-1's: a worker joining
     through control-plane-1 is refused naming PCR 4; version 2 (the real values) pushed through
     control-plane-1 is enforced by control-plane-0's, and the worker joins through control-plane-1
     with a disk key equal to HKDF(master, salt, key-<uuid>);
  5. no secret in any log."""
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

BS, JS, KS, ATTEST, TOOL = sys.argv[1:6]
for tool in ("cryptsetup", "tpm2_pcrread", "openssl"):
    require_tool(tool)

MASTER, SALT, MSALT = os.urandom(32), os.urandom(32), os.urandom(32)
INIT_SECRET = os.urandom(24).hex()


def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")


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


def read_pcr(tpm, d, index):
    out = os.path.join(d, "pcr.bin")
    rc, _, err = run(["tpm2_pcrread", "sha256:%d" % index, "-o", out], env=tpm.env())
    if rc != 0:
        fail("tpm2_pcrread: " + err)
    return read(out)


def wait_for(pred, what, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)  # polling a condition with a deadline
    fail("timed out waiting for " + what)


def hold(addr, port):
    """addr:port held (bound with SO_REUSEADDR, never listening) until the service binds it; None if taken."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
        return s
    except OSError:
        s.close()
        return None


def pick_addresses():
    """127.X.Y.1 and .2 with the etcd client and peer ports and the join service port free on both
    (.3 is a control plane that dies: it never binds anything)."""
    for attempt in range(50):
        x = 100 + (os.getpid() + attempt) % 100
        y = 200 + (os.getpid() // 100 + attempt) % 50
        a1, a2 = "127.%d.%d.1" % (x, y), "127.%d.%d.2" % (x, y)
        cport = 21400 + 2 * ((os.getpid() + attempt) % 40)
        held = [hold(a, p) for a in (a1, a2) for p in (cport, cport + 1, 30090)]
        if all(held):
            return a1, a2, cport, cport + 1, 30090, held
        for s in held:
            if s:
                s.close()
    fail("no free loopback address pair")


def new_disk(d, name):
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


def disk_opens_with(d, disk, key):
    path = os.path.join(d, "try.key")
    write(path, key)
    rc, _, _ = run(["cryptsetup", "open", "--test-passphrase", "--key-file", path, disk])
    os.unlink(path)
    return rc == 0


def bootstrapper(d, name, tpm, md, disk, keyfile, extra=()):
    root = os.path.join(d, name)
    os.makedirs(root, exist_ok=True)
    argv = [BS, "--listen", "127.0.0.1:0", "--tpm", tpm.tcti, "--metadata", md, "--state-disk", disk,
            "--state-keyfile", keyfile, "--node-state", os.path.join(root, "run-state", "constellation", "node_state.json"),
            "--pki-dir", os.path.join(root, "etc-kubernetes", "pki"), "--kubernetes-dir", os.path.join(root, "etc-kubernetes"),
            "--component-roots", os.path.join(root, "run-state"), "--config-dir", os.path.join(root, "var-config"),
            "--start-units", "", "--kubeadm", os.path.join(root, "run-state", "bin", "kubeadm"),
            "--join-retry", "300"] + list(extra)
    return Service(argv, d, timeout=120), root


def etcd_args(d, name, addr, cport, pport):
    return ("--etcd-endpoint", "%s:%d" % (addr, cport), "--etcd-unit", "", "--etcd-env",
            os.path.join(d, name, "var-config", "etcd.env"), "--etcd-data-dir", os.path.join(d, name, "var-lib-etcd"),
            "--etcd-peer-port", str(pport))


def start_etcd_from(d, name, env_path, bs, held=()):
    wait_for(lambda: os.path.exists(env_path) or bs.proc.poll() is not None, "%s's bootstrapper to write etcd.env" % name)
    check(os.path.exists(env_path), "%s: etcd.env written (log tail: %s)" % (name, bs.stderr()[-600:]))
    env = etcdtest.parse_env_file(env_path)
    etcd_dir = os.path.join(d, name, "etcd-run")
    os.makedirs(etcd_dir, exist_ok=True)
    e = etcdtest.Etcd(env, etcd_dir, held, timeout=120)
    return e, env


started, tpms, etcds = [], [], []
with tmpdir() as d:
    A1, A2, CPORT, PPORT, JPORT, held = pick_addresses()
    A3 = A1[:-1] + "3"
    ep1, ep2 = "%s:%d" % (A1, CPORT), "%s:%d" % (A2, CPORT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
            h = crypt.crypt(INIT_SECRET, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))

        # --- 1. control-plane-0: Init while it also tries to join control-plane-1 (not there) ---
        tpm0 = Swtpm(os.path.join(d, "tpm0"))
        tpms.append(tpm0)
        disk0, key0 = new_disk(d, "cp0")
        md0 = os.path.join(d, "cp0-metadata.json")
        write(md0, json.dumps({"name": "control-plane-0", "role": "control-plane", "vpc_ip": A1,
                               "init_secret_hash": h, "endpoint": A1, "join_endpoints": ["%s:%d" % (A2, JPORT)],
                               "control_plane_ips": [A1, A2]}), 0o644)
        cp0, root0 = bootstrapper(d, "cp0", tpm0, md0, disk0, key0, etcd_args(d, "cp0", A1, CPORT, PPORT))
        started.append(cp0)
        cp0.wait_ready()
        wait_for(lambda: "retrying in" in cp0.stderr(), "control-plane-0 to retry its join (no join service yet)")
        check("join: control plane control-plane-0" in cp0.stderr(),
              "control-plane-0: serves Init and tries to join the other control plane at the same time")
        meas = {str(i): {"expected": read_pcr(tpm0, d, i).hex(), "warnOnly": False} for i in range(8)}
        write(os.path.join(d, "measurements.json"), json.dumps({"measurements": meas}))
        for n, data in (("master.hex", MASTER), ("salt.hex", SALT), ("msalt.hex", MSALT)):
            write(os.path.join(d, n), data.hex() + "\n")
        write(os.path.join(d, "init-secret"), INIT_SECRET + "\n")
        rc, out, err = run([ATTEST, "init", "--endpoint", "127.0.0.1:%d" % cp0.ports["grpc"],
                            "--measurements", os.path.join(d, "measurements.json"),
                            "--master-secret", os.path.join(d, "master.hex"), "--salt", os.path.join(d, "salt.hex"),
                            "--measurement-salt", os.path.join(d, "msalt.hex"),
                            "--init-secret", os.path.join(d, "init-secret"), "--timeout", "120"], timeout=300)
        check(rc == 0 and out.strip() == CLUSTER_ID.hex(), "control-plane-0: Init wins, cluster ID = python HKDF (%s)"
              % err[-300:])
        etcd0, env0 = start_etcd_from(d, "cp0", os.path.join(d, "cp0", "var-config", "etcd.env"), cp0,
                                      [held[0], held[1]])
        etcds.append(etcd0)
        check(etcd0.ready, "control-plane-0: etcd started from its etcd.env (log: %s)" % etcd0.log_text()[-400:])
        check(env0.get("ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION") == "true" and
              env0["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "https://%s:%d" % (A1, PPORT),
              "etcd.env: peer URL on the node's address, peers authenticated by the etcd CA alone")
        check(cp0.wait_exit(180) == 0, "control-plane-0: bootstrapper exits 0 after Init")
        pki0 = os.path.join(root0, "etc-kubernetes", "pki")
        pcr15 = read_pcr(tpm0, d, 15)

        ks0 = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", ep1, "--pki-dir", pki0], d)
        started.append(ks0)
        ks0.wait_ready()
        js0 = Service([JS, "--listen", "%s:%d" % (A1, JPORT), "--update-listen", "127.0.0.1:0", "--etcd-endpoint", ep1,
                       "--pki-dir", pki0, "--keyservice", "127.0.0.1:%d" % ks0.ports["grpc"], "--api-endpoint",
                       "%s:6443" % A1, "--control-plane-ips", "%s,%s,%s" % (A1, A2, A3), "--etcd-peer-port",
                       str(PPORT), "--config-refresh", "200", "--learner-timeout", "30000"], d)
        started.append(js0)
        js0.wait_ready()
        held[2].close()

        # --- 2. a control plane at an address the infrastructure does not list: refused ---
        tpmx = Swtpm(os.path.join(d, "tpmx"))
        tpms.append(tpmx)
        diskx, keyx = new_disk(d, "cpx")
        mdx = os.path.join(d, "cpx-metadata.json")
        write(mdx, json.dumps({"name": "control-plane-9", "role": "control-plane", "vpc_ip": "127.0.0.1",
                               "init_secret_hash": h, "join_endpoints": ["%s:%d" % (A1, JPORT)]}), 0o644)
        cpx, rootx = bootstrapper(d, "cpx", tpmx, mdx, diskx, keyx, etcd_args(d, "cpx", "127.0.0.1", CPORT, PPORT))
        started.append(cpx)
        cpx.wait_ready()
        wait_for(lambda: "not-control-plane" in cpx.stderr(), "the unlisted control plane to be refused")
        check("127.0.0.1 is not a control plane of this cluster's infrastructure" in js0.stderr(),
              "join service: control-plane files refused to an address outside control_plane_ips, reason logged")
        rc, out, _ = run([TOOL, "members", ep1, pki0])
        check(rc == 0 and len(out.splitlines()) == 1, "etcd: no member added for it (%s)" % out.strip())
        rc, _ = cpx.stop()
        check(rc == 0 and not os.path.exists(os.path.join(rootx, "run-state", "constellation", "node_state.json")),
              "the refused node stops, nothing written")

        # A listed control plane that dies after its ticket: its learner costs no quorum and is removed.
        tpm2 = Swtpm(os.path.join(d, "tpm2"))
        tpms.append(tpm2)
        disk2, key2 = new_disk(d, "cp2")
        md2 = os.path.join(d, "cp2-metadata.json")
        write(md2, json.dumps({"name": "control-plane-2", "role": "control-plane", "vpc_ip": A3,
                               "init_secret_hash": h, "join_endpoints": ["%s:%d" % (A1, JPORT)],
                               "control_plane_ips": [A1, A2, A3]}), 0o644)
        cp2, _ = bootstrapper(d, "cp2", tpm2, md2, disk2, key2, etcd_args(d, "cp2", A3, CPORT, PPORT))
        started.append(cp2)
        cp2.wait_ready()
        # The member list is read as soon as the join service added the learner: the joiner's own
        # steps after its ticket (the LUKS re-key among them) can take longer than --learner-timeout
        # on a loaded machine, and the learner is then already removed (a flake seen at load 6).
        wait_for(lambda: "added for https://%s:%d" % (A3, PPORT) in js0.stderr(),
                 "the join service to add control-plane-2 as a learner", timeout=120)
        rc, out, _ = run([TOOL, "members", ep1, pki0])
        check(rc == 0 and "- https://%s:%d learner" % (A3, PPORT) in out.splitlines(),
              "etcd: control-plane-2 is a learner that has not started (%s)" % out.strip())
        wait_for(lambda: os.path.exists(os.path.join(d, "cp2", "var-config", "etcd.env")),
                 "control-plane-2 to get its ticket and write etcd.env")
        cp2.proc.kill()  # dies before its etcd ever runs
        cp2.proc.wait()
        check(cp2.proc.returncode == -9, "control-plane-2: added as a learner, then killed before its etcd ran")
        f = os.path.join(d, "v")
        write(f, b"x")
        rc, _, err = run([TOOL, "put", ep1, pki0, "/constellation/test/with-dead-learner", f])
        check(rc == 0, "a write lands with the dead learner in the cluster: the quorum is control-plane-0's (%s)" % err)

        # --- 3. control-plane-1 joins ---
        tpm1 = Swtpm(os.path.join(d, "tpm1"))
        tpms.append(tpm1)
        disk1, key1 = new_disk(d, "cp1")
        md1 = os.path.join(d, "cp1-metadata.json")
        write(md1, json.dumps({"name": "control-plane-1", "role": "control-plane", "vpc_ip": A2,
                               "init_secret_hash": h, "endpoint": A1, "join_endpoints": ["%s:%d" % (A1, JPORT)],
                               "control_plane_ips": [A1, A2]}), 0o644)
        cp1, root1 = bootstrapper(d, "cp1", tpm1, md1, disk1, key1, etcd_args(d, "cp1", A2, CPORT, PPORT))
        started.append(cp1)
        cp1.wait_ready()
        wait_for(lambda: "removed: not promotable within the learner timeout" in js0.stderr(),
                 "the join service to remove control-plane-2's learner", timeout=120)
        check("too-many-learners" in cp1.stderr(),
              "control-plane-1: held back while control-plane-2's learner was there (etcd allows one learner)")
        rc, out, _ = run([TOOL, "members", ep1, pki0])
        check(rc == 0 and A3 not in out, "control-plane-2's learner removed (MemberRemove) after the learner timeout")
        etcd1, env1 = start_etcd_from(d, "cp1", os.path.join(d, "cp1", "var-config", "etcd.env"), cp1,
                                      [held[3], held[4]])
        etcds.append(etcd1)
        check(env1["ETCD_INITIAL_CLUSTER_STATE"] == "existing" and
              sorted(env1["ETCD_INITIAL_CLUSTER"].split(",")) ==
              ["control-plane-0=https://%s:%d" % (A1, PPORT), "control-plane-1=https://%s:%d" % (A2, PPORT)],
              "control-plane-1: etcd.env joins the existing cluster (%s)" % env1["ETCD_INITIAL_CLUSTER"])
        check("etcd learner" in js0.stderr() and "added for https://%s:%d" % (A2, PPORT) in js0.stderr(),
              "join service: control-plane-1 added as an etcd learner at its address")
        rc = cp1.wait_exit(240)
        log1 = cp1.stderr()
        check(rc == 0, "control-plane-1: joined, exit 0 (log tail: %s; etcd: %s)" % (log1[-800:],
                                                                                   etcd1.log_text()[-400:]))
        check("promoted to a voting etcd member" in js0.stderr(), "join service: the learner promoted once in sync")
        rc, out, err = run([TOOL, "members", ep2, os.path.join(root1, "etc-kubernetes", "pki")])
        members = sorted(out.splitlines())
        check(rc == 0 and members == ["control-plane-0 https://%s:%d" % (A1, PPORT),
                                      "control-plane-1 https://%s:%d" % (A2, PPORT)],
              "MemberList through control-plane-1's own member: two voting members (%s %s)" % (members, err.strip()))
        rc, uuid, _ = run(["cryptsetup", "luksUUID", disk1])
        uuid = uuid.strip().lower()
        check(disk_opens_with(d, disk1, hkdf(MASTER, SALT, ("key-" + uuid).encode())) and
              not disk_opens_with(d, disk1, hkdf(MASTER, SALT, b"key-other")),
              "control-plane-1: keyslot opens with HKDF(master, salt, key-<uuid>) and no other key")
        check(read_pcr(tpm1, d, 15) == pcr15, "control-plane-1: PCR 15 equals control-plane-0's")
        ns = json.loads(read(os.path.join(root1, "run-state", "constellation", "node_state.json")))
        check(ns == {"Role": "ControlPlane", "MeasurementSalt": base64.b64encode(MSALT).decode()},
              "control-plane-1: node_state.json {Role: ControlPlane, MeasurementSalt}")
        check(os.path.exists(os.path.join(root1, "run-state", "constellation", "bootstrap-complete")),
              "control-plane-1: the completion marker")
        pki1 = os.path.join(root1, "etc-kubernetes", "pki")
        for f in ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt",
                  "etcd/ca.key"):
            check(read(os.path.join(pki1, f)) == read(os.path.join(pki0, f)), "control-plane-1: %s = control-plane-0's" % f)
            if f.endswith(".key"):
                check(stat.S_IMODE(os.stat(os.path.join(pki1, f)).st_mode) == 0o600, "control-plane-1: %s is 0600" % f)
        rc, out, err = run(["openssl", "x509", "-in", os.path.join(pki1, "etcd", "server.crt"), "-noout", "-ext",
                            "subjectAltName"])
        check(rc == 0 and ("IP Address:%s" % A2) in out, "control-plane-1: its own etcd server certificate for %s" % A2)
        check(MASTER.hex() not in log1 and MEASUREMENT_SECRET.hex() not in log1, "control-plane-1: log holds no secret")
        # A restarted bootstrapper on the joined control plane: bootstrapped, its etcd.env kept, no new member.
        env1_before = read(os.path.join(d, "cp1", "var-config", "etcd.env"))
        cp1b, _ = bootstrapper(d, "cp1", tpm1, md1, disk1, key1, etcd_args(d, "cp1", A2, CPORT, PPORT))
        started.append(cp1b)
        check(cp1b.wait_exit(120) == 0 and "already bootstrapped" in cp1b.stderr(),
              "control-plane-1: a restarted bootstrapper takes the bootstrapped path, exit 0 (%s)" % cp1b.stderr()[-300:])
        rc, out, _ = run([TOOL, "members", ep1, pki0])
        check(rc == 0 and sorted(out.splitlines()) == members and
              read(os.path.join(d, "cp1", "var-config", "etcd.env")) == env1_before,
              "control-plane-1 restarted: etcd.env unchanged, still the same two voting members")

        # --- 4. control-plane-1's services from its own member ---
        ks1 = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", ep2, "--pki-dir", pki1], d)
        started.append(ks1)
        ks1.wait_ready()
        for key_id in ("measurementSecret", "some-disk"):
            k0 = run([TOOL, "datakey", "127.0.0.1:%d" % ks0.ports["grpc"], key_id])[1].strip()
            k1 = run([TOOL, "datakey", "127.0.0.1:%d" % ks1.ports["grpc"], key_id])[1].strip()
            check(len(k0) == 64 and k0 == k1 == hkdf(MASTER, SALT, ("key-" + key_id).encode()).hex(),
                  "key services of both control planes: the same data key %s (= HKDF)" % key_id)
        js1 = Service([JS, "--listen", "%s:%d" % (A2, JPORT), "--update-listen", "127.0.0.1:0", "--etcd-endpoint", ep2,
                       "--pki-dir", pki1, "--keyservice", "127.0.0.1:%d" % ks1.ports["grpc"], "--api-endpoint",
                       "%s:6443" % A1, "--control-plane-ips", "%s,%s" % (A1, A2), "--etcd-peer-port", str(PPORT),
                       "--config-refresh", "200"], d)
        started.append(js1)
        js1.wait_ready()
        held[5].close()
        check("attestation config version 0 in force" in js1.stderr(),
              "control-plane-1's join service starts from the shared store (version 0)")

        def sign(version, pcr4):
            m = {str(i): {"expected": read_pcr(tpm0, d, i).hex(), "warnOnly": False} for i in (4, 8, 9, 11, 12, 13)}
            if pcr4:
                m["4"]["expected"] = pcr4 * 32
            path = os.path.join(d, "m-%d.json" % version)
            write(path, json.dumps({"measurements": m}), 0o644)
            out = os.path.join(d, "update-%d.json" % version)
            rc, _, err = run([ATTEST, "join-config", "sign", "--master-secret", os.path.join(d, "master.hex"),
                              "--salt", os.path.join(d, "salt.hex"), "--measurements", path, "--version", str(version),
                              "--out", out])
            check(rc == 0, "signed attestation config version %d (%s)" % (version, err.strip()[:100]))
            return out

        def push(svc, update):
            rc, out, err = run([ATTEST, "join-config", "push", "--endpoint", "127.0.0.1:%d" % svc.ports["updates"],
                                "--update", update])
            return rc, out + err

        rc, out = push(js0, sign(1, "aa"))
        check(rc == 0, "version 1 (PCR 4 changed) accepted through control-plane-0 (%s)" % out.strip()[:160])
        wait_for(lambda: "attestation config version 1 (from the shared store) now in force" in js1.stderr(),
                 "control-plane-1 enforcing version 1")
        check(True, "control-plane-1's join service enforces the update made through control-plane-0")

        tpmw = Swtpm(os.path.join(d, "tpmw"))
        tpms.append(tpmw)
        diskw, keyw = new_disk(d, "w")
        mdw = os.path.join(d, "w-metadata.json")
        write(mdw, json.dumps({"name": "worker-0", "role": "worker", "vpc_ip": "127.0.0.1",
                               "join_endpoints": ["%s:%d" % (A2, JPORT)]}), 0o644)
        w, rootw = bootstrapper(d, "w", tpmw, mdw, diskw, keyw)
        started.append(w)
        w.wait_ready()
        wait_for(lambda: "at index 4" in js1.stderr(), "control-plane-1 to refuse the worker (PCR 4, version 1)")
        check("evidence-measurements" in js1.stderr() and w.proc.poll() is None,
              "worker through control-plane-1: refused naming PCR 4, keeps retrying")
        rc, out = push(js1, sign(2, None))
        check(rc == 0, "version 2 (the real values) accepted through control-plane-1 (%s)" % out.strip()[:160])
        wait_for(lambda: "attestation config version 2 (from the shared store) now in force" in js0.stderr(),
                 "control-plane-0 enforcing version 2")
        check(True, "control-plane-0's join service enforces the update made through control-plane-1")
        rc = w.wait_exit(240)
        check(rc == 0, "the worker joins through control-plane-1 (log tail: %s)" % w.stderr()[-400:])
        rc, uuidw, _ = run(["cryptsetup", "luksUUID", diskw])
        uuidw = uuidw.strip().lower()
        check(disk_opens_with(d, diskw, hkdf(MASTER, SALT, ("key-" + uuidw).encode())),
              "worker: its disk key from control-plane-1's join and key services = HKDF(master, salt, key-<uuid>)")
        check("join ticket issued for disk %s (worker)" % uuidw in js1.stderr(), "control-plane-1 issued the ticket")

        # --- 5. no secret in any log ---
        logs = "".join(s.stderr() for s in started) + "".join(e.log_text() for e in etcds)
        for secret in (MASTER, SALT, MEASUREMENT_SECRET):
            check(secret.hex() not in logs and base64.b64encode(secret).decode() not in logs, "no secret in the logs")
        for s in (js1, js0, ks1, ks0):
            rc, _ = s.stop()
            check(rc == 0, "%s stops cleanly" % os.path.basename(s.proc.args[0]))
    finally:
        for s in started:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        for t in tpms:
            t.stop()
        for e in etcds:
            e.stop()
        for s in held:
            s.close()
print("PASS")
