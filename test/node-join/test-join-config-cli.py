# SPDX-License-Identifier: Apache-2.0
"""constellation-attest join-config sign|push against the real constellation-joinservice: an update
signed from the master secret files is accepted (the service's attestationConfig is replaced by it and
its log names the version), the same update again is refused (exit 1, version-rollback), an update
signed with another master secret is refused (signature-invalid); sign refuses a PCR 15 other than 0
(exit 1, pcr15-invalid), version 0 (exit 2), a missing file (exit 3); push to a closed port is exit 4.
Nothing secret reaches the CLI's output or the service's log."""
import base64
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node-services"))
from nodetest import Service, check, require_tool, tmpdir  # noqa: E402

ATTEST, JS = sys.argv[1], sys.argv[2]
require_tool("openssl")
MASTER, SALT, OTHER = os.urandom(32), os.urandom(32), os.urandom(32)


def run(argv, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


with tmpdir() as d:
    pki = os.path.join(d, "pki")
    os.makedirs(pki)
    rc, _, err = run(["sh", "-c", "cd '%s' && openssl ecparam -name prime256v1 -genkey -noout -out ca.key && "
                                  "openssl req -x509 -new -key ca.key -subj /CN=kubernetes -days 1 -out ca.crt "
                                  "-addext basicConstraints=critical,CA:TRUE" % pki])
    check(rc == 0, "cluster CA (%s)" % err.strip()[:80])
    config = os.path.join(d, "var-config")
    os.makedirs(config, 0o700)
    write(os.path.join(config, "attestationConfig"),
          json.dumps({"measurements": {"4": {"expected": "aa" * 32, "warnOnly": False}}}))
    write(os.path.join(config, "measurementSalt"), os.urandom(32))
    kms_uri = "kms://cluster-kms?key=%s&salt=%s" % (base64.urlsafe_b64encode(MASTER).decode(),
                                                     base64.urlsafe_b64encode(SALT).decode())
    js = Service([JS, "--listen", "127.0.0.1:0", "--update-listen", "127.0.0.1:0", "--kms-uri", kms_uri,
                  "--config-dir", config, "--pki-dir", pki, "--api-endpoint", "10.0.0.1:6443"], d)
    try:
        js.wait_ready()
        ep = "127.0.0.1:%d" % js.ports["updates"]
        mf, sf, of = (os.path.join(d, n) for n in ("master.hex", "salt.hex", "other.hex"))
        write(mf, MASTER.hex() + "\n")
        write(sf, SALT.hex() + "\n")
        write(of, OTHER.hex() + "\n")
        meas = os.path.join(d, "measurements.json")
        write(meas, json.dumps({"measurements": {"4": {"expected": "bb" * 32, "warnOnly": False},
                                                 "9": {"expected": "cc" * 32, "warnOnly": True}}}), 0o644)
        upd = os.path.join(d, "update.json")
        rc, out, err = run([ATTEST, "join-config", "sign", "--master-secret", mf, "--salt", sf, "--measurements", meas,
                            "--version", "3", "--out", upd])
        check(rc == 0 and os.path.exists(upd), "sign: exit 0, update written (%s)" % err.strip()[:100])
        doc = json.load(open(upd))
        check(doc["version"] == 3 and doc["measurements"]["15"] == {"expected": "00" * 32, "warnOnly": False},
              "sign: version 3, PCR 15 = 0 enforced added")
        check(MASTER.hex() not in open(upd).read(), "sign: no secret in the update")

        rc, out, err = run([ATTEST, "join-config", "push", "--endpoint", ep, "--update", upd])
        check(rc == 0 and "accepted" in out, "push: exit 0, accepted (%s)" % (out + err).strip()[:120])
        with open(os.path.join(config, "attestationConfig")) as f:
            check(json.load(f) == doc, "the service stored the update as its attestationConfig")
        check("attestation config version 3 accepted" in js.stderr(), "the service logs the version in force")

        rc, out, err = run([ATTEST, "join-config", "push", "--endpoint", ep, "--update", upd])
        check(rc == 1 and "version-rollback" in err, "push again: exit 1, version-rollback (%s)" % err.strip()[:120])

        foreign = os.path.join(d, "foreign.json")
        rc, _, _ = run([ATTEST, "join-config", "sign", "--master-secret", of, "--salt", sf, "--measurements", meas,
                        "--version", "9", "--out", foreign])
        rc, out, err = run([ATTEST, "join-config", "push", "--endpoint", ep, "--update", foreign])
        check(rc == 1 and "PERMISSION_DENIED" in err and "signature-invalid" in err,
              "another master secret: exit 1, signature-invalid")

        bad = os.path.join(d, "bad15.json")
        write(bad, json.dumps({"15": {"expected": "11" * 32, "warnOnly": False}}), 0o644)
        rc, out, err = run([ATTEST, "join-config", "sign", "--master-secret", mf, "--salt", sf, "--measurements", bad,
                            "--version", "4"])
        check(rc == 1 and "pcr15-invalid" in err, "sign: PCR 15 != 0 refused (exit 1, pcr15-invalid)")
        rc, _, err = run([ATTEST, "join-config", "sign", "--master-secret", mf, "--salt", sf, "--measurements", meas,
                          "--version", "0"])
        check(rc == 2, "sign: --version 0 is a usage error (exit 2)")
        rc, _, err = run([ATTEST, "join-config", "sign", "--master-secret", os.path.join(d, "missing"), "--salt", sf,
                          "--measurements", meas, "--version", "5"])
        check(rc == 3, "sign: a missing master secret file is exit 3")
        rc, _, err = run([ATTEST, "join-config", "push", "--endpoint", "127.0.0.1:1", "--update", upd, "--timeout", "5"])
        check(rc == 4, "push to a closed port: exit 4 (%s)" % err.strip()[:100])
        check(MASTER.hex() not in js.stderr() and OTHER.hex() not in js.stderr(), "no secret in the service's log")
        rc, stopping = js.stop()
        check(rc == 0 and stopping, "the service stops cleanly")
    finally:
        if js.proc.poll() is None:
            js.proc.kill()
            js.proc.wait()
print("PASS")
