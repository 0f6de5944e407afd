# SPDX-License-Identifier: Apache-2.0
"""The control planes' shared store with the real programs: one etcd (Debian's, mTLS from the
cluster's etcd CA), the key service and two join services reading their configuration from it
(docs/node.md "The shared store").

- the key service starts from /constellation/keyservice/{mastersecret,salt} in etcd (its data keys
  are what the join services sign-check updates with: an update signed from the same master secret
  verifies);
- join services A (refreshing every 200 ms) and B (refreshing hourly: stale on purpose) start from
  the init configuration in etcd;
- an update pushed to A lands in etcd byte for byte, A enforces it, B has not seen it;
- a concurrent update of the same version pushed to B is refused by the compare-and-swap: B's stored
  revision is stale, B loads A's update from etcd and the update is then a rollback (version-rollback);
  etcd still holds A's document; B enforces A's update from then on (its log says so);
- a newer update pushed to B lands; A takes it from etcd by itself;
- B restarted enforces the newest version from etcd; the key service without its configuration in
  etcd refuses to start (config-missing); without etcd reachable it refuses to start (unreachable);
- a second control plane with only the ticket's control-plane files (the CAs) becomes an etcd member
  (the bootstrapper's bootstrapper_etcd_member_join: its own etcd certificates, MemberAdd through the
  first member, etcd.env with the member list and state "existing"; etcd started from that file):
  two members; its key service and join service read their configuration from its own member (the
  join service verifies the signed version 4 with the key its key service derives: the same master
  secret), and an update pushed through the first control plane is enforced by its join service
  too; a restarted member join does not add the member again; two updates of the same version pushed
  at the same moment through the two control planes: exactly one lands, the other is refused; with
  the second member down (no quorum) an update is refused with the store's reason, and lands once the
  member is back.
No secret reaches a log."""
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node-services"))
sys.path.insert(0, HERE)
from nodetest import Service, check, fail, tmpdir  # noqa: E402
import etcdtest  # noqa: E402

ATTEST, JS, KS, TOOL = sys.argv[1:5]
MASTER, SALT, MSALT = os.urandom(32), os.urandom(32), os.urandom(32)
PORT_BASE = 21200


def run(argv, timeout=120):
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def wait_for(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)  # polling a condition with a deadline
    fail("timed out: " + what)


with tmpdir() as d:
    pki = os.path.join(d, "pki")
    rc, _, err = run([TOOL, "pki", pki, "cp-0", "127.0.0.1"])
    check(rc == 0, "cluster PKI with etcd certificates (%s)" % err.strip()[:100])
    for f in ("etcd/server.key", "etcd/peer.key", "etcd/constellation-client.key", "apiserver-etcd-client.key"):
        check(os.stat(os.path.join(pki, f)).st_mode & 0o777 == 0o600, "%s is 0600" % f)
    etcd, ep = etcdtest.start(d, pki, PORT_BASE)
    services = []
    try:
        def etcd_put(key, data):
            f = os.path.join(d, "value")
            write(f, data)
            rc, _, err = run([TOOL, "put", ep, pki, key, f])
            os.unlink(f)
            check(rc == 0, "etcd put %s (%s)" % (key, err.strip()[:100]))

        def etcd_get(key):
            rc, out, err = run([TOOL, "get", ep, pki, key])
            return out if rc == 0 else None

        # The key service refuses an etcd without its configuration, then starts from it.
        ks0 = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", ep, "--pki-dir", pki], d)
        rc = ks0.wait_exit(60)
        check(rc == 1 and "config-missing" in ks0.stderr(), "key service: nothing in etcd -> exit 1 config-missing")
        dead = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", "127.0.0.1:%d" % (PORT_BASE + 99),
                        "--pki-dir", pki], d)
        rc = dead.wait_exit(60)
        check(rc == 1 and "etcd: unreachable" in dead.stderr(), "key service: etcd unreachable -> exit 1 (%s)"
              % dead.stderr().strip()[-160:])
        etcd_put("/constellation/keyservice/mastersecret", MASTER)
        etcd_put("/constellation/keyservice/salt", SALT)
        ks = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", ep, "--pki-dir", pki], d)
        services.append(ks)
        ks.wait_ready()
        ks_ep = "127.0.0.1:%d" % ks.ports["grpc"]

        init = json.dumps({"measurements": {"4": {"expected": "aa" * 32, "warnOnly": False}}})
        etcd_put("/constellation/joinservice/attestationConfig", init)
        etcd_put("/constellation/joinservice/measurementSalt", MSALT)

        def joinservice(refresh_ms):
            s = Service([JS, "--listen", "127.0.0.1:0", "--update-listen", "127.0.0.1:0", "--keyservice", ks_ep,
                         "--etcd-endpoint", ep, "--pki-dir", pki, "--api-endpoint", "10.0.0.1:6443",
                         "--config-refresh", str(refresh_ms)], d)
            services.append(s)
            s.wait_ready()
            return s

        a, b = joinservice(200), joinservice(3600000)
        check("attestation config version 0 in force" in a.stderr() and
              "attestation config version 0 in force" in b.stderr(), "A and B start from the init configuration in etcd")
        check("shared store (etcd %s" % ep in a.stderr(), "A names the shared store it reads")

        mf, sf = os.path.join(d, "master.hex"), os.path.join(d, "salt.hex")
        write(mf, MASTER.hex() + "\n")
        write(sf, SALT.hex() + "\n")

        def sign(version, pcr4):
            meas = os.path.join(d, "m-%d-%s.json" % (version, pcr4))
            write(meas, json.dumps({"measurements": {"4": {"expected": pcr4 * 32, "warnOnly": False}}}), 0o644)
            out = os.path.join(d, "update-%d-%s.json" % (version, pcr4))
            rc, _, err = run([ATTEST, "join-config", "sign", "--master-secret", mf, "--salt", sf, "--measurements", meas,
                              "--version", str(version), "--out", out])
            check(rc == 0, "signed version %d (PCR 4 = %s..)" % (version, pcr4))
            return out

        def push(svc, update):
            rc, out, err = run([ATTEST, "join-config", "push", "--endpoint", "127.0.0.1:%d" % svc.ports["updates"],
                                "--update", update])
            return rc, out.decode(errors="replace") + err

        # An update through A lands in etcd; B (stale) has not seen it.
        u3 = sign(3, "bb")
        rc, out = push(a, u3)
        check(rc == 0, "A accepts version 3 (%s)" % out.strip()[:120])
        check(etcd_get("/constellation/joinservice/attestationConfig") == open(u3, "rb").read(),
              "etcd holds A's update byte for byte")
        check("version 3" not in b.stderr(), "B has not refreshed (hourly)")

        # A concurrent update of the same version through stale B: CAS refused, A's stays.
        u3b = sign(3, "cc")
        rc, out = push(b, u3b)
        check(rc == 1 and "version-rollback" in out, "B refuses the concurrent version 3: version-rollback (%s)"
              % out.strip()[:160])
        check(etcd_get("/constellation/joinservice/attestationConfig") == open(u3, "rb").read(),
              "etcd still holds A's version 3, not B's")
        check("attestation config version 3 (stored by another control plane) now in force" in b.stderr(),
              "B now enforces A's version 3 (loaded after its compare-and-swap failed)")

        # B, current now, takes version 4; A takes it from etcd by itself.
        u4 = sign(4, "dd")
        rc, out = push(b, u4)
        check(rc == 0, "B accepts version 4 (%s)" % out.strip()[:120])
        check(etcd_get("/constellation/joinservice/attestationConfig") == open(u4, "rb").read(), "etcd holds version 4")
        wait_for(lambda: "attestation config version 4 (from the shared store) now in force" in a.stderr(),
                 "A enforcing version 4 from etcd")
        check(True, "A enforces B's version 4 from etcd (refresh)")
        rc, out = push(a, u3)
        check(rc == 1 and "version-rollback" in out, "A: version 3 again is a rollback")

        # B restarted starts from etcd's newest.
        rc, stopping = b.stop()
        check(rc == 0 and stopping, "B stops cleanly")
        b2 = joinservice(3600000)
        check("attestation config version 4 in force" in b2.stderr(), "B restarted enforces version 4 from etcd")

        # A second control plane joins the store as an etcd member.
        pki1 = os.path.join(d, "cp1-pki")
        os.makedirs(os.path.join(pki1, "etcd"), 0o700)
        for f in ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt",
                  "etcd/ca.key"):  # the ticket's control-plane files
            shutil.copy2(os.path.join(pki, f), os.path.join(pki1, f))
        c1, p1, held1 = etcdtest.hold_pair(PORT_BASE + 50, 50)
        ep1 = "127.0.0.1:%d" % c1
        env1_path = os.path.join(d, "cp1", "etcd.env")
        join_argv = [TOOL, "member-join", "cp-1", "127.0.0.1", pki1, env1_path, os.path.join(d, "cp1", "etcd-data"),
                     ep1, str(p1), ep]
        joiner = subprocess.Popen(join_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(env1_path) or joiner.poll() is not None, "the member join to write etcd.env")
        check(os.path.exists(env1_path), "member join: etcd.env written (%s)" %
              (joiner.stderr.read().decode() if joiner.poll() is not None else ""))
        env1 = etcdtest.parse_env_file(env1_path)
        check(env1["ETCD_INITIAL_CLUSTER_STATE"] == "existing" and
              "cp-1=https://127.0.0.1:%d" % p1 in env1["ETCD_INITIAL_CLUSTER"] and
              "etcd-test=https://127.0.0.1:" in env1["ETCD_INITIAL_CLUSTER"],
              "member join: etcd.env joins the existing cluster (%s)" % env1["ETCD_INITIAL_CLUSTER"])
        etcd1 = etcdtest.Etcd(env1, d, held1)
        check(etcd1.ready, "the second member's etcd started from that file (log: %s)" % etcd1.log_text()[-300:])
        try:
            out, err = joiner.communicate(timeout=120)
            check(joiner.returncode == 0, "member join: done once the local member serves (%s)" % err.decode()[-200:])
            rc, out, err = run([TOOL, "members", ep1, pki1])
            members = sorted(out.decode().split("\n")[:-1])
            check(rc == 0 and members == ["cp-1 https://127.0.0.1:%d" % p1,
                                          "etcd-test " + etcd.env["ETCD_LISTEN_PEER_URLS"]],
                  "two members, both started: %s" % members)
            rc, _, err = run(join_argv, timeout=120)
            check(rc == 0, "a restarted member join does not add the member again (%s)" % err.strip()[-6000:])
            rc, out, _ = run([TOOL, "members", ep, pki])
            check(rc == 0 and len(out.decode().split("\n")[:-1]) == 2, "still two members")
            check(run([TOOL, "get", ep1, pki1, "/constellation/joinservice/attestationConfig"])[1] ==
                  open(u4, "rb").read(), "the second member serves the replicated attestation config")

            ks1 = Service([KS, "--listen", "127.0.0.1:0", "--etcd-endpoint", ep1, "--pki-dir", pki1], d)
            services.append(ks1)
            ks1.wait_ready()
            c = Service([JS, "--listen", "127.0.0.1:0", "--update-listen", "127.0.0.1:0", "--keyservice",
                         "127.0.0.1:%d" % ks1.ports["grpc"], "--etcd-endpoint", ep1, "--pki-dir", pki1,
                         "--api-endpoint", "10.0.0.2:6443", "--config-refresh", "200"], d)
            services.append(c)
            c.wait_ready()
            check("attestation config version 4 in force" in c.stderr(),
                  "the second control plane's join service enforces the signed version 4 from its own member "
                  "(verified with its key service's key: the same master secret)")
            u5 = sign(5, "ee")
            rc, out = push(a, u5)
            check(rc == 0, "A accepts version 5")
            wait_for(lambda: "attestation config version 5 (from the shared store) now in force" in c.stderr(),
                     "the second control plane enforcing version 5")
            check(True, "an update made through the first control plane is enforced by the second")

            # Two updates of the same version pushed at the same moment through the two control
            # planes (different etcd members): exactly one lands, the other is refused with its reason.
            u6a, u6c = sign(6, "a6"), sign(6, "c6")
            results = {}
            go = threading.Barrier(2)

            def push_at(name, svc, upd):
                go.wait()
                results[name] = push(svc, upd)

            threads = [threading.Thread(target=push_at, args=("a", a, u6a)),
                       threading.Thread(target=push_at, args=("c", c, u6c))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            codes = sorted(results[k][0] for k in ("a", "c"))
            check(codes == [0, 1], "concurrent version 6 through both: one accepted, one refused (%s)" %
                  {k: (v[0], v[1].strip()[-100:]) for k, v in results.items()})
            loser = "a" if results["a"][0] else "c"
            check("version-rollback" in results[loser][1] or "update-conflict" in results[loser][1],
                  "the refused one says why (%s)" % results[loser][1].strip()[-120:])
            winner_doc = open(u6a if loser == "c" else u6c, "rb").read()
            check(run([TOOL, "get", ep, pki, "/constellation/joinservice/attestationConfig"])[1] == winner_doc and
                  run([TOOL, "get", ep1, pki1, "/constellation/joinservice/attestationConfig"])[1] == winner_doc,
                  "both members hold the winner's version 6")

            # The second member down: two members have no quorum, so an update is refused with the
            # store's reason and the version in force stays; the member back (same etcd.env and data):
            # the update lands and both enforce it.
            etcd1.stop()
            u7 = sign(7, "77")
            rc, out = push(a, u7)
            # (DEADLINE_EXCEEDED from the service, which the CLI reports as exit 4 "no answer", with it)
            check(rc in (1, 4) and ("etcd: timeout" in out or "etcd: unreachable" in out),
                  "without quorum: version 7 refused, the store's reason given (%s)" % out.strip()[-160:])
            etcd1 = etcdtest.Etcd(env1, d)
            check(etcd1.ready, "the second member restarted from its etcd.env and data")
            # A write that timed out has an unknown outcome in etcd: its proposal may still be committed
            # once quorum is back. So the retry either lands or finds version 7 already in force.
            rc, out = push(a, u7)
            check(rc == 0 or (rc == 1 and "version 7 is not newer than the version in force (7)" in out),
                  "quorum back: version 7 accepted, or already in force from the timed-out attempt (%s)"
                  % out.strip()[-120:])
            check(run([TOOL, "get", ep1, pki1, "/constellation/joinservice/attestationConfig"])[1] ==
                  open(u7, "rb").read(), "etcd holds version 7")
            wait_for(lambda: "attestation config version 7 (from the shared store) now in force" in c.stderr(),
                     "the second control plane enforcing version 7")
            check("shared store:" in c.stderr(), "the second control plane's join service said its store was gone")
            wait_for(lambda: "shared store: reachable again" in c.stderr(), "the join service saying its store is back")
            check(True, "and that it was back")
        finally:
            etcd1.stop()

        logs = "".join(s.stderr() for s in services) + ks0.stderr()
        for secret in (MASTER, SALT, MSALT):
            check(secret.hex() not in logs and base64.b64encode(secret).decode() not in logs,
                  "no secret in the services' logs")
        for s in reversed(services):
            if s.proc.poll() is None:
                rc, stopping = s.stop()
                check(rc == 0, "%s stops cleanly" % os.path.basename(s.proc.args[0]))
    finally:
        for s in services:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        etcd.stop()
print("PASS")
