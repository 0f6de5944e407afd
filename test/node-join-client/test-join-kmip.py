# SPDX-License-Identifier: Apache-2.0
"""Hold your own key through join and rejoin, on the host with the real binaries and a real KMIP server
(PyKMIP on loopback, test/kmip/pykmip.sh; docs/node.md "Hold your own key"). The operator makes a KEK
inside the KMIP server (`constellation-attest kmip create-kek`) and wraps the master secret under it
(`kmip wrap-master-secret --inline --out`); from then on only the kms://kmip URI is used:

  1. a control plane (own swtpm, LUKS2 file) is initialised with `constellation-attest init
     --kms-uri-file`: the cluster ID is python's HKDF chain of the operator's master secret; its
     bootstrapper stored the URI in etcd (started from the etcd.env it wrote) as the key service's
     kms-uri, and no master secret or salt, in etcd or in its config directory; the real key service
     (unwrapping at PyKMIP when it starts) and join service start from etcd, as their units;
  2. a worker bootstrapper (own swtpm and LUKS2 file) joins: its keyslot opens with HKDF(master secret,
     salt, "key-<uuid>") (python's hmac, cryptsetup open --test-passphrase) and no other key, token
     initialized, PCR 15 and node_state.json as the control plane's;
  3. rejoin: the worker's TPM is power-cycled (PCR 15 back to zero) and its disk-mapper (--host-test)
     gets its key back through IssueRejoinTicket from the KMIP-backed key service: the keyfile holds
     HKDF(master, salt, "key-<uuid>"), PCR 15 is the cluster's again;
  4. crypto-shredding: the KEK revoked (`kmip revoke`); the key service restarted on its port refuses
     to start with `kmip: kek-revoked` (no secret in its log); a restarted join service refuses to
     start without its key service (`join: keys-unavailable`); the running join service refuses a new
     worker's IssueJoinTicket and the rebooted worker's IssueRejoinTicket with UNAVAILABLE `join:
     keys-unavailable` (both logged by the service, both named in the node's log; both nodes keep
     retrying): the new worker's disk file is byte for byte unchanged, token not initialized, no
     node_state.json, PCR 15 zero; the rejoining worker's disk file is unchanged and it writes no
     keyfile;
  5. the KEK's bytes (read from PyKMIP's database) are in no file of the test directory but that
     database (disks, TPM states, etcd's data, every program's output, PyKMIP's own log), searched raw,
     as hex and base64; the master secret is in no file but the operator's hex file (so in no log, and
     nowhere on the nodes or in etcd, raw or as hex/base64).

argv: bootstrapper joinservice keyservice constellation-attest etcd-test-tool disk-mapper pykmip.sh"""
import base64
import hashlib
import json
import mmap
import os
import sqlite3
import stat
import subprocess
import sys

from jointest import (Cluster, check, disk_opens_with, disk_uuid, etcd_args, etcdtest, fail,
                      hkdf, hold, init_secret_hash, new_disk, read, read_pcr, require_tool, reserve_port, run, tmpdir,
                      token_initialized, wait_for, write)

BS, JS, KS, ATTEST, TOOL, DM, PYKMIP = sys.argv[1:8]
ETCD_PORT_BASE = 21500  # test-etcd 21100, test-node-join-etcd 21200, -join-client 21300, -join-cp 21400
for tool in ("cryptsetup", "tpm2_pcrread", "openssl"):
    require_tool(tool)
if not os.path.exists("/usr/bin/pykmip-server"):
    fail("pykmip-server is missing: install Debian's python3-pykmip (scripts/setup.sh)")

MASTER, SALT, MSALT = os.urandom(32), os.urandom(32), os.urandom(32)
INIT_SECRET = os.urandom(24).hex()
MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")
PCR15 = hashlib.sha256(b"\0" * 32 + hashlib.sha256(CLUSTER_ID).digest()).digest()
_n = [0]


def cli(d, *argv):
    """A CLI call whose stdout and stderr also go to files of the test directory (the KEK and master
    secret searches read them). Returns (exit code, stdout, stderr)."""
    rc, out, err = run(list(argv), timeout=300)
    _n[0] += 1
    write(os.path.join(d, "cli-%02d.out" % _n[0]), out)
    write(os.path.join(d, "cli-%02d.err" % _n[0]), err)
    return rc, out, err


def kek_from_db(kdir, uid):
    """The KEK's bytes as PyKMIP stores them (read to search for them, as test-kmip-keyservice)."""
    db = sqlite3.connect(os.path.join(kdir, "pykmip.db"))
    row = db.execute("select value from managed_objects where uid=?", (int(uid),)).fetchone()
    db.close()
    check(row is not None, "KEK %s is in PyKMIP's database" % uid)
    return bytes(row[0])


def needles(secret):
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)[:40],
            base64.urlsafe_b64encode(secret)[:40]]


def start_disk_mapper(c, node, tpm, keyfile, units):
    """The node's disk-mapper as in its initrd, in host-test mode (keyslot check, node_state.json from
    the node's state directory), rejoining through the metadata's join endpoints every second."""
    return c.service([DM, "--listen", "127.0.0.1:0", "--tpm", tpm.tcti, "--disk", node.disk, "--host-test",
                      "--state-dir", node.state_dir, "--keyfile", keyfile, "--unit-dir", units,
                      "--metadata", node.md, "--rejoin-interval", "1"]).wait_ready()


def power_cycle(c, node):
    """The node's TPM off and on again (same state directory; PCRs reset by TPM2_Startup(CLEAR)), as a
    reboot would. Returns the new swtpm."""
    node.tpm.stop()
    node.tpm = c.swtpm(node.name + "-tpm")
    return node.tpm


with tmpdir() as d, Cluster(d, BS, JS, KS, ATTEST, TOOL) as c:
    kdir = os.path.join(d, "kmip")
    os.environ["PYKMIP_OWNER_PID"] = str(os.getpid())  # the server stops if this test dies
    try:
        # --- 0. the operator: a KEK in the user's KMIP server, the master secret wrapped under it ---
        rc = subprocess.run(["bash", PYKMIP, "pki", kdir]).returncode
        check(rc == 0, "PyKMIP's PKI (pykmip.sh pki)")
        p = subprocess.run(["bash", PYKMIP, "start", kdir], stdout=subprocess.PIPE, timeout=120)
        check(p.returncode == 0, "PyKMIP started on loopback (pykmip.sh start)")
        kport = int(p.stdout.decode().strip())
        conn = ["--endpoint", "127.0.0.1:%d" % kport, "--client-cert", os.path.join(kdir, "client.pem"),
                "--client-key", os.path.join(kdir, "client.key"), "--server-ca", os.path.join(kdir, "ca.pem")]
        rc, out, err = cli(d, ATTEST, "kmip", "create-kek", *conn, "--name", "cluster-kek")
        kek = out.strip()
        check(rc == 0 and kek.isdigit(), "kmip create-kek: KEK %s (%s)" % (kek, err.strip()[:200]))
        kek_bytes = kek_from_db(kdir, kek)
        check(len(kek_bytes) == 32, "PyKMIP holds the 32-byte KEK")
        op = os.path.join(d, "operator")
        os.makedirs(op, 0o700)
        write(os.path.join(op, "master.hex"), MASTER.hex() + "\n")
        write(os.path.join(op, "salt.hex"), SALT.hex() + "\n")
        uri_path = os.path.join(op, "cluster.uri")
        rc, _, err = cli(d, ATTEST, "kmip", "wrap-master-secret", *conn, "--kek", kek, "--secret-file",
                         os.path.join(op, "master.hex"), "--salt-file", os.path.join(op, "salt.hex"), "--inline",
                         "--out", uri_path)
        check(rc == 0 and stat.S_IMODE(os.stat(uri_path).st_mode) == 0o600,
              "kmip wrap-master-secret --inline --out: the node's kms://kmip URI, 0600 (%s)" % err.strip()[:200])
        uri = read(uri_path).strip()
        check(uri.startswith(b"kms://kmip?") and not any(n in uri for n in needles(MASTER)),
              "the URI carries the wrapped master secret only")

        # --- 1. the control plane, initialised with the kms://kmip URI ---
        etcd_cport, etcd_pport, etcd_held = etcdtest.hold_pair(ETCD_PORT_BASE)
        c.held += etcd_held
        etcd_ep = "127.0.0.1:%d" % etcd_cport
        cp = c.start_node("cp", {"name": "control-plane-0", "role": "control-plane", "vpc_ip": "127.0.0.1",
                                 "init_secret_hash": init_secret_hash(INIT_SECRET), "endpoint": "127.0.0.1"},
                          etcd_args(d, "cp", "127.0.0.1", etcd_cport, etcd_pport))
        rc, out, err = c.init(cp, kms_uri_file=uri_path, msalt=MSALT, init_secret=INIT_SECRET)
        write(os.path.join(d, "init.out"), out)  # searched in 5. (it carries the node's Init log)
        write(os.path.join(d, "init.err"), err)
        check(rc == 0 and out.strip() == CLUSTER_ID.hex(),
              "control plane: Init with --kms-uri-file, cluster ID = python's HKDF of the wrapped master secret (%s)"
              % err[-300:])
        check(c.wait_etcd_env(cp), "the bootstrapper wrote etcd.env (log tail: %s)" % cp.svc.stderr()[-600:])
        etcd, _ = c.start_etcd(cp, etcd_held)
        check(etcd.ready, "etcd started from the bootstrapper's etcd.env (log: %s)" % etcd.log_text()[-400:])
        check(cp.svc.wait_exit(180) == 0, "control plane: the bootstrapper exits 0 after Init")
        check(c.etcd_get(etcd_ep, cp.pki, "/constellation/keyservice/kms-uri") == uri,
              "etcd: the key service's kms-uri is the operator's URI, byte for byte")
        check(c.etcd_get(etcd_ep, cp.pki, "/constellation/keyservice/mastersecret") is None and
              c.etcd_get(etcd_ep, cp.pki, "/constellation/keyservice/salt") is None,
              "etcd: no master secret, no salt (the master secret exists only wrapped)")
        for name in ("kms-uri", "mastersecret", "salt"):
            check(not os.path.exists(os.path.join(cp.config_dir, name)), "%s not on disk: etcd is the one source" % name)
        cp_pcr15 = read_pcr(cp.tpm, d, 15)
        check(cp_pcr15 == PCR15, "control plane: PCR 15 = SHA-256(0^32 || SHA-256(cluster ID))")

        ks = c.start_keyservice(etcd_ep, cp.pki)
        ks_port = ks.ports["grpc"]
        check("configuration: the shared store" in ks.stderr(), "key service: started from etcd (unwrapped at PyKMIP)")
        rc, out, _ = run([TOOL, "datakey", "127.0.0.1:%d" % ks_port, "measurementSecret"])
        check(rc == 0 and out.strip() == MEASUREMENT_SECRET.hex(),
              "key service: measurementSecret = HKDF(the operator's master secret, salt)")
        js_hold, js_port = reserve_port()
        c.held.append(js_hold)
        js_args = ("--update-listen", "none", "--api-endpoint", "127.0.0.1:6443")
        js = c.start_joinservice("127.0.0.1:%d" % js_port, etcd_ep, cp.pki, ks, js_args)
        js_hold.close()

        # --- 2. a worker joins ---
        worker_md = {"role": "worker", "vpc_ip": "127.0.0.1", "join_endpoints": ["127.0.0.1:%d" % js_port]}
        w1 = c.start_node("w1", dict(worker_md, name="worker-1"), ("--join-retry", "500"))
        rc = w1.svc.wait_exit(240)
        check(rc == 0, "worker 1: joined, exit 0 (log tail: %s)" % w1.svc.stderr()[-600:])
        uuid = disk_uuid(w1.disk)
        dek = hkdf(MASTER, SALT, ("key-" + uuid).encode())
        check("join ticket issued for disk %s (worker)" % uuid in js.stderr(), "join service: join ticket issued")
        check(disk_opens_with(d, w1.disk, dek) and not disk_opens_with(d, w1.disk, hkdf(MASTER, SALT, b"key-other")),
              "worker 1: keyslot opens with HKDF(master, salt, key-%s) and no other key" % uuid)
        check(token_initialized(w1.disk) is True, "worker 1: token 0 initialized")
        check(read_pcr(w1.tpm, d, 15) == cp_pcr15, "worker 1: PCR 15 equals the control plane's")
        check(json.loads(read(w1.node_state)) == {"Role": "Worker", "MeasurementSalt": base64.b64encode(MSALT).decode()},
              "worker 1: node_state.json {Role: Worker, MeasurementSalt}")

        # --- 3. rejoin: the worker reboots, its disk-mapper gets the key from the join service ---
        power_cycle(c, w1)
        check(read_pcr(w1.tpm, d, 15) == b"\0" * 32, "worker 1 rebooted: PCR 15 back to zero")
        keyfile = os.path.join(d, "w1-run", "cryptsetup-keys.d", "state.key")
        units = os.path.join(d, "w1-units")
        dm = start_disk_mapper(c, w1, w1.tpm, keyfile, units)
        rc = dm.wait_exit(180)
        log = dm.stderr()
        check(rc == 0, "worker 1: the disk-mapper exits 0 after its rejoin (log tail: %s)" % log[-600:])
        check("rejoin: the ticket's key opens the state disk" in log, "disk-mapper: the key came from the rejoin ticket")
        check("rejoin ticket issued for disk " + uuid in js.stderr(), "join service: rejoin ticket for the disk's uuid")
        check(read(keyfile) == dek and stat.S_IMODE(os.stat(keyfile).st_mode) == 0o400,
              "worker 1: keyfile (0400) holds HKDF(master, salt, key-<uuid>) from the KMIP-backed key service")
        check(read_pcr(w1.tpm, d, 15) == cp_pcr15, "worker 1: PCR 15 is the cluster's again")
        os.unlink(keyfile)

        # --- 4. crypto-shredding: the KEK revoked ---
        rc, out, err = cli(d, ATTEST, "kmip", "revoke", *conn, "--kek", kek)
        check(rc == 0, "kmip revoke: KEK %s revoked (%s)" % (kek, (out + err).strip()[:200]))
        rc, _ = ks.stop()
        check(rc == 0, "key service: stopped (as for a restart)")
        # Its port held (best effort: a port of the ephemeral range may be taken in between, by a client
        # socket that accepts nothing) so that the running join service reaches no other server there.
        c.held.append(hold("127.0.0.1", ks_port))
        rc, out, err = cli(d, KS, "--listen", "127.0.0.1:%d" % ks_port, "--etcd-endpoint", etcd_ep, "--pki-dir", cp.pki)
        check(rc == 1 and "kmip: kek-revoked" in err,
              "key service restarted: refuses to start, exit 1, kmip: kek-revoked (%s)" % err.strip().splitlines()[-1][:300])
        check(not any(n.decode(errors="replace") in err for n in needles(MASTER)[1:]),
              "key service refusal: no secret in its log")
        rc, _, err = cli(d, JS, "--listen", "127.0.0.1:0", "--etcd-endpoint", etcd_ep, "--pki-dir", cp.pki,
                         "--keyservice", "127.0.0.1:%d" % ks_port, *js_args)
        check(rc == 1 and "keys-unavailable" in err,
              "join service restarted: refuses to start without its key service, keys-unavailable (%s)"
              % err.strip().splitlines()[-1][:300])

        # A new worker asks the running join service: no key; its disk stays what it was.
        w3_tpm = c.swtpm("w3-tpm")
        w3_disk, w3_key = new_disk(d, "w3")
        w3_before = hashlib.sha256(read(w3_disk)).digest()
        w3_md = os.path.join(d, "w3-metadata.json")
        write(w3_md, json.dumps(dict(worker_md, name="worker-3")), 0o644)
        js_before = len(js.stderr())
        w3 = c.bootstrapper("w3", w3_tpm, w3_md, w3_disk, w3_key, ("--join-retry", "500"))
        w3.svc.wait_ready()
        wait_for(lambda: "keys-unavailable" in w3.svc.stderr(), "worker 3 to be refused (keys-unavailable)")
        jlog = js.stderr()[js_before:]
        check(any("IssueJoinTicket" in line and "UNAVAILABLE" in line and "join: keys-unavailable" in line
                  for line in jlog.splitlines()),
              "join service: IssueJoinTicket refused UNAVAILABLE with join: keys-unavailable, logged")
        check("join ticket issued" not in jlog, "join service: no join ticket issued after the revocation")
        n = len(w3.svc.stderr())
        wait_for(lambda: "retrying in" in w3.svc.stderr()[n:], "worker 3 to retry after the refusal")
        check(w3.svc.proc.poll() is None, "worker 3: no key, still waiting")
        rc, stopping = w3.svc.stop()
        check(rc == 0 and stopping, "worker 3: SIGTERM stops it (exit 0)")
        check(hashlib.sha256(read(w3_disk)).digest() == w3_before and token_initialized(w3_disk) is False,
              "worker 3: disk file byte for byte unchanged, token not initialized")
        check(not os.path.exists(w3.node_state) and read_pcr(w3_tpm, d, 15) == b"\0" * 32,
              "worker 3: no node_state.json, PCR 15 still zero")

        # The worker reboots again: its rejoin gets no key either.
        power_cycle(c, w1)
        w1_before = hashlib.sha256(read(w1.disk)).digest()
        js_before = len(js.stderr())
        dm = start_disk_mapper(c, w1, w1.tpm, keyfile, units)
        wait_for(lambda: "keys-unavailable" in dm.stderr(), "the rejoin to be refused (keys-unavailable)")
        jlog = js.stderr()[js_before:]
        check(any("IssueRejoinTicket" in line and "UNAVAILABLE" in line and "join: keys-unavailable" in line
                  for line in jlog.splitlines()),
              "join service: IssueRejoinTicket refused UNAVAILABLE with join: keys-unavailable, logged")
        n = len(dm.stderr())
        wait_for(lambda: "retrying in 1 s" in dm.stderr()[n:], "the disk-mapper to retry its rejoin")
        check(dm.proc.poll() is None and not os.path.exists(keyfile), "worker 1: no key, still waiting, no keyfile")
        rc, stopping = dm.stop()
        check(rc == 1 and stopping and "stopped before the state disk was unlocked" in dm.stderr(),
              "worker 1: the disk-mapper stops on SIGTERM, exit 1: stopped before the state disk was unlocked")
        check(hashlib.sha256(read(w1.disk)).digest() == w1_before, "worker 1: disk file byte for byte unchanged")
        check("rejoin ticket issued" not in js.stderr()[js_before:], "join service: no rejoin ticket after the revocation")
        rc, _ = js.stop()
        check(rc == 0, "join service: clean stop")
    finally:
        subprocess.run(["bash", PYKMIP, "stop", kdir])

    # --- 5. where the KEK and the master secret are not ---
    etcd.stop()  # its data flushed
    kn, mn = needles(kek_bytes), needles(MASTER)
    searched = 0
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if f.startswith("pykmip.db") or os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) == 0:
                continue
            with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                searched += 1
                if any(data.find(x) >= 0 for x in kn):
                    fail("the KEK's bytes are in %s" % p)
                if p != os.path.join(op, "master.hex") and any(data.find(x) >= 0 for x in mn):
                    fail("the master secret is in %s" % p)
    check(searched > 30, "the KEK's bytes in none of the %d files (disks, TPM states, etcd's data, every program's "
          "output, PyKMIP's log) but PyKMIP's database; the master secret in none but the operator's" % searched)
print("PASS")
