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
  5. no secret in any log.

The set-up (nodes, Init, etcd, services) is jointest.py's, shared with test-join-client.py and
test-join-kmip.py."""
import base64
import json
import os
import stat
import sys

from jointest import (Cluster, check, disk_opens_with, disk_uuid, etcd_args, fail, hkdf, hold, init_secret_hash, read,
                      read_pcr, require_tool, run, tmpdir, wait_for, write)

BS, JS, KS, ATTEST, TOOL = sys.argv[1:6]
for tool in ("cryptsetup", "tpm2_pcrread", "openssl"):
    require_tool(tool)

MASTER, SALT, MSALT = os.urandom(32), os.urandom(32), os.urandom(32)
INIT_SECRET = os.urandom(24).hex()
MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")
JOIN_RETRY = ("--join-retry", "300")


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


def cp_args(name, addr):
    """A control plane's bootstrapper options: its shared store at addr, the join retried every 300 ms."""
    return etcd_args(d, name, addr, CPORT, PPORT) + JOIN_RETRY


def start_etcd_from(node, held):
    check(c.wait_etcd_env(node), "%s: etcd.env written (log tail: %s)" % (node.name, node.svc.stderr()[-600:]))
    return c.start_etcd(node, held)


with tmpdir() as d, Cluster(d, BS, JS, KS, ATTEST, TOOL) as c:
    A1, A2, CPORT, PPORT, JPORT, held = pick_addresses()
    c.held += held
    A3 = A1[:-1] + "3"
    ep1, ep2 = "%s:%d" % (A1, CPORT), "%s:%d" % (A2, CPORT)
    h = init_secret_hash(INIT_SECRET)

    # --- 1. control-plane-0: Init while it also tries to join control-plane-1 (not there) ---
    cp0 = c.start_node("cp0", {"name": "control-plane-0", "role": "control-plane", "vpc_ip": A1,
                               "init_secret_hash": h, "endpoint": A1, "join_endpoints": ["%s:%d" % (A2, JPORT)],
                               "control_plane_ips": [A1, A2]}, cp_args("cp0", A1), tpm_dir="tpm0")
    wait_for(lambda: "retrying in" in cp0.svc.stderr(), "control-plane-0 to retry its join (no join service yet)")
    check("join: control plane control-plane-0" in cp0.svc.stderr(),
          "control-plane-0: serves Init and tries to join the other control plane at the same time")
    rc, out, err = c.init(cp0, master=MASTER, salt=SALT, msalt=MSALT, init_secret=INIT_SECRET)
    check(rc == 0 and out.strip() == CLUSTER_ID.hex(), "control-plane-0: Init wins, cluster ID = python HKDF (%s)"
          % err[-300:])
    etcd0, env0 = start_etcd_from(cp0, [held[0], held[1]])
    check(etcd0.ready, "control-plane-0: etcd started from its etcd.env (log: %s)" % etcd0.log_text()[-400:])
    check(env0.get("ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION") == "true" and
          env0["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "https://%s:%d" % (A1, PPORT),
          "etcd.env: peer URL on the node's address, peers authenticated by the etcd CA alone")
    check(cp0.svc.wait_exit(180) == 0, "control-plane-0: bootstrapper exits 0 after Init")
    pki0 = cp0.pki
    pcr15 = read_pcr(cp0.tpm, d, 15)

    ks0 = c.start_keyservice(ep1, pki0)
    js0 = c.start_joinservice("%s:%d" % (A1, JPORT), ep1, pki0, ks0,
                              ("--update-listen", "127.0.0.1:0", "--api-endpoint", "%s:6443" % A1,
                               "--control-plane-ips", "%s,%s,%s" % (A1, A2, A3), "--etcd-peer-port", str(PPORT),
                               "--config-refresh", "200", "--learner-timeout", "30000"))
    held[2].close()

    # --- 2. a control plane at an address the infrastructure does not list: refused ---
    cpx = c.start_node("cpx", {"name": "control-plane-9", "role": "control-plane", "vpc_ip": "127.0.0.1",
                               "init_secret_hash": h, "join_endpoints": ["%s:%d" % (A1, JPORT)]},
                       cp_args("cpx", "127.0.0.1"), tpm_dir="tpmx")
    wait_for(lambda: "not-control-plane" in cpx.svc.stderr(), "the unlisted control plane to be refused")
    check("127.0.0.1 is not a control plane of this cluster's infrastructure" in js0.stderr(),
          "join service: control-plane files refused to an address outside control_plane_ips, reason logged")
    rc, out, _ = run([TOOL, "members", ep1, pki0])
    check(rc == 0 and len(out.splitlines()) == 1, "etcd: no member added for it (%s)" % out.strip())
    rc, _ = cpx.svc.stop()
    check(rc == 0 and not os.path.exists(cpx.node_state), "the refused node stops, nothing written")

    # A listed control plane that dies after its ticket: its learner costs no quorum and is removed.
    cp2 = c.start_node("cp2", {"name": "control-plane-2", "role": "control-plane", "vpc_ip": A3,
                               "init_secret_hash": h, "join_endpoints": ["%s:%d" % (A1, JPORT)],
                               "control_plane_ips": [A1, A2, A3]}, cp_args("cp2", A3), tpm_dir="tpm2")
    # The member list is read as soon as the join service added the learner: the joiner's own
    # steps after its ticket (the LUKS re-key among them) can take longer than --learner-timeout
    # on a loaded machine, and the learner is then already removed (a flake seen at load 6).
    wait_for(lambda: "added for https://%s:%d" % (A3, PPORT) in js0.stderr(),
             "the join service to add control-plane-2 as a learner", timeout=120)
    rc, out, _ = run([TOOL, "members", ep1, pki0])
    check(rc == 0 and "- https://%s:%d learner" % (A3, PPORT) in out.splitlines(),
          "etcd: control-plane-2 is a learner that has not started (%s)" % out.strip())
    wait_for(lambda: os.path.exists(cp2.etcd_env), "control-plane-2 to get its ticket and write etcd.env")
    cp2.svc.proc.kill()  # dies before its etcd ever runs
    cp2.svc.proc.wait()
    check(cp2.svc.proc.returncode == -9, "control-plane-2: added as a learner, then killed before its etcd ran")
    f = os.path.join(d, "v")
    write(f, b"x")
    rc, _, err = run([TOOL, "put", ep1, pki0, "/constellation/test/with-dead-learner", f])
    check(rc == 0, "a write lands with the dead learner in the cluster: the quorum is control-plane-0's (%s)" % err)

    # --- 3. control-plane-1 joins ---
    cp1 = c.start_node("cp1", {"name": "control-plane-1", "role": "control-plane", "vpc_ip": A2,
                               "init_secret_hash": h, "endpoint": A1, "join_endpoints": ["%s:%d" % (A1, JPORT)],
                               "control_plane_ips": [A1, A2]}, cp_args("cp1", A2), tpm_dir="tpm1")
    wait_for(lambda: "removed: not promotable within the learner timeout" in js0.stderr(),
             "the join service to remove control-plane-2's learner", timeout=120)
    check("too-many-learners" in cp1.svc.stderr(),
          "control-plane-1: held back while control-plane-2's learner was there (etcd allows one learner)")
    rc, out, _ = run([TOOL, "members", ep1, pki0])
    check(rc == 0 and A3 not in out, "control-plane-2's learner removed (MemberRemove) after the learner timeout")
    etcd1, env1 = start_etcd_from(cp1, [held[3], held[4]])
    check(env1["ETCD_INITIAL_CLUSTER_STATE"] == "existing" and
          sorted(env1["ETCD_INITIAL_CLUSTER"].split(",")) ==
          ["control-plane-0=https://%s:%d" % (A1, PPORT), "control-plane-1=https://%s:%d" % (A2, PPORT)],
          "control-plane-1: etcd.env joins the existing cluster (%s)" % env1["ETCD_INITIAL_CLUSTER"])
    check("etcd learner" in js0.stderr() and "added for https://%s:%d" % (A2, PPORT) in js0.stderr(),
          "join service: control-plane-1 added as an etcd learner at its address")
    rc = cp1.svc.wait_exit(240)
    log1 = cp1.svc.stderr()
    check(rc == 0, "control-plane-1: joined, exit 0 (log tail: %s; etcd: %s)" % (log1[-800:],
                                                                               etcd1.log_text()[-400:]))
    check("promoted to a voting etcd member" in js0.stderr(), "join service: the learner promoted once in sync")
    rc, out, err = run([TOOL, "members", ep2, cp1.pki])
    members = sorted(out.splitlines())
    check(rc == 0 and members == ["control-plane-0 https://%s:%d" % (A1, PPORT),
                                  "control-plane-1 https://%s:%d" % (A2, PPORT)],
          "MemberList through control-plane-1's own member: two voting members (%s %s)" % (members, err.strip()))
    uuid = disk_uuid(cp1.disk)
    check(disk_opens_with(d, cp1.disk, hkdf(MASTER, SALT, ("key-" + uuid).encode())) and
          not disk_opens_with(d, cp1.disk, hkdf(MASTER, SALT, b"key-other")),
          "control-plane-1: keyslot opens with HKDF(master, salt, key-<uuid>) and no other key")
    check(read_pcr(cp1.tpm, d, 15) == pcr15, "control-plane-1: PCR 15 equals control-plane-0's")
    ns = json.loads(read(cp1.node_state))
    check(ns == {"Role": "ControlPlane", "MeasurementSalt": base64.b64encode(MSALT).decode()},
          "control-plane-1: node_state.json {Role: ControlPlane, MeasurementSalt}")
    check(os.path.exists(cp1.marker), "control-plane-1: the completion marker")
    pki1 = cp1.pki
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
    env1_before = read(cp1.etcd_env)
    cp1b = c.bootstrapper("cp1", cp1.tpm, cp1.md, cp1.disk, cp1.keyfile, cp_args("cp1", A2))
    check(cp1b.svc.wait_exit(120) == 0 and "already bootstrapped" in cp1b.svc.stderr(),
          "control-plane-1: a restarted bootstrapper takes the bootstrapped path, exit 0 (%s)" % cp1b.svc.stderr()[-300:])
    rc, out, _ = run([TOOL, "members", ep1, pki0])
    check(rc == 0 and sorted(out.splitlines()) == members and read(cp1.etcd_env) == env1_before,
          "control-plane-1 restarted: etcd.env unchanged, still the same two voting members")

    # --- 4. control-plane-1's services from its own member ---
    ks1 = c.start_keyservice(ep2, pki1)
    for key_id in ("measurementSecret", "some-disk"):
        k0 = run([TOOL, "datakey", "127.0.0.1:%d" % ks0.ports["grpc"], key_id])[1].strip()
        k1 = run([TOOL, "datakey", "127.0.0.1:%d" % ks1.ports["grpc"], key_id])[1].strip()
        check(len(k0) == 64 and k0 == k1 == hkdf(MASTER, SALT, ("key-" + key_id).encode()).hex(),
              "key services of both control planes: the same data key %s (= HKDF)" % key_id)
    js1 = c.start_joinservice("%s:%d" % (A2, JPORT), ep2, pki1, ks1,
                              ("--update-listen", "127.0.0.1:0", "--api-endpoint", "%s:6443" % A1,
                               "--control-plane-ips", "%s,%s" % (A1, A2), "--etcd-peer-port", str(PPORT),
                               "--config-refresh", "200"))
    held[5].close()
    check("attestation config version 0 in force" in js1.stderr(),
          "control-plane-1's join service starts from the shared store (version 0)")

    def sign(version, pcr4):
        m = {str(i): {"expected": read_pcr(cp0.tpm, d, i).hex(), "warnOnly": False} for i in (4, 8, 9, 11, 12, 13)}
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

    w = c.start_node("w", {"name": "worker-0", "role": "worker", "vpc_ip": "127.0.0.1",
                           "join_endpoints": ["%s:%d" % (A2, JPORT)]}, JOIN_RETRY, tpm_dir="tpmw")
    wait_for(lambda: "at index 4" in js1.stderr(), "control-plane-1 to refuse the worker (PCR 4, version 1)")
    check("evidence-measurements" in js1.stderr() and w.svc.proc.poll() is None,
          "worker through control-plane-1: refused naming PCR 4, keeps retrying")
    rc, out = push(js1, sign(2, None))
    check(rc == 0, "version 2 (the real values) accepted through control-plane-1 (%s)" % out.strip()[:160])
    wait_for(lambda: "attestation config version 2 (from the shared store) now in force" in js0.stderr(),
             "control-plane-0 enforcing version 2")
    check(True, "control-plane-0's join service enforces the update made through control-plane-1")
    rc = w.svc.wait_exit(240)
    check(rc == 0, "the worker joins through control-plane-1 (log tail: %s)" % w.svc.stderr()[-400:])
    uuidw = disk_uuid(w.disk)
    check(disk_opens_with(d, w.disk, hkdf(MASTER, SALT, ("key-" + uuidw).encode())),
          "worker: its disk key from control-plane-1's join and key services = HKDF(master, salt, key-<uuid>)")
    check("join ticket issued for disk %s (worker)" % uuidw in js1.stderr(), "control-plane-1 issued the ticket")

    # --- 5. no secret in any log ---
    logs = "".join(s.stderr() for s in c.started) + "".join(e.log_text() for e in c.etcds)
    for secret in (MASTER, SALT, MEASUREMENT_SECRET):
        check(secret.hex() not in logs and base64.b64encode(secret).decode() not in logs, "no secret in the logs")
    for s in (js1, js0, ks1, ks0):
        rc, _ = s.stop()
        check(rc == 0, "%s stops cleanly" % os.path.basename(s.proc.args[0]))
print("PASS")
