# SPDX-License-Identifier: Apache-2.0
"""Rejoin through the disk-mapper on the host (--host-test), end to end, with the join service's keys
from the real key service (and a join service without one refused to start: keys-unavailable): a LUKS2 state disk file whose
keyslot 0 holds HKDF(master, salt, "key-<uuid>") (python's hmac, not lib/crypto), the disk-mapper
attesting from its own swtpm, and constellation-joinservice (its attestation config = that swtpm's
PCRs 0-7, PCR 15 = 0 enforced by the service) as the only source of the key: the node metadata names
a dead endpoint first and the join service second; no recovery client ever connects.

Checked: the rejoin client gets the ticket (the service logs the rejoin for the disk's uuid), the key
opens keyslot 0, PCR 15 = SHA-256(0^32 || SHA-256(cluster ID)), the keyfile holds the DEK (0400),
units written, exit 0; the join service's log holds no key; a second boot of the same node (PCR 15
now set) is refused by the join service with the PCR 15 reason and keeps waiting."""
import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node-services"))
from nodetest import Service, Swtpm, check, fail, require_tool, tmpdir  # noqa: E402

DM, JS, KS = sys.argv[1], sys.argv[2], sys.argv[3]
for tool in ("cryptsetup", "tpm2_pcrread", "openssl"):
    require_tool(tool)

UUID = "5a1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e"
MASTER = os.urandom(32)
SALT = os.urandom(32)
MSALT = os.urandom(32)


def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


DEK = hkdf(MASTER, SALT, ("key-" + UUID).encode())
MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")
PCR15 = hashlib.sha256(b"\0" * 32 + hashlib.sha256(CLUSTER_ID).digest()).digest()


def run(argv, env=None, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def read_pcr(tpm, d, index):
    out = os.path.join(d, "pcr.bin")
    rc, _, err = run(["tpm2_pcrread", "sha256:%d" % index, "-o", out], env=tpm.env())
    if rc != 0:
        fail("tpm2_pcrread: " + err)
    with open(out, "rb") as f:
        return f.read()


def wait_for(pred, what, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    fail("timed out waiting for " + what)


started = []
with tmpdir() as d:
    tpm = Swtpm(d)
    try:
        # --- the cluster: PKI (openssl, as kubeadm's layout), config written as the bootstrapper does ---
        pki = os.path.join(d, "pki")
        os.makedirs(pki)
        rc, _, err = run(["sh", "-c", "cd '%s' && openssl ecparam -name prime256v1 -genkey -noout -out ca.key && "
                                      "openssl req -x509 -new -key ca.key -subj /CN=kubernetes -days 1 -out ca.crt "
                                      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,digitalSignature" % pki])
        check(rc == 0, "cluster CA made with openssl (%s)" % err.strip()[:100])
        config = os.path.join(d, "var-config")
        os.makedirs(config, 0o700)
        meas = {str(i): {"expected": read_pcr(tpm, d, i).hex(), "warnOnly": False} for i in range(8)}
        write(os.path.join(config, "attestationConfig"), json.dumps({"measurements": meas}))
        write(os.path.join(config, "measurementSalt"), MSALT)
        # keys through the real key service (/kms.API/GetDataKey on loopback), as on a control plane
        write(os.path.join(config, "mastersecret"), MASTER)
        write(os.path.join(config, "salt"), SALT)
        ks = Service([KS, "--listen", "127.0.0.1:0", "--master-secret", os.path.join(config, "mastersecret"),
                      "--salt", os.path.join(config, "salt")], d)
        started.append(ks)
        ks.wait_ready()
        js_args = ["--listen", "127.0.0.1:0", "--update-listen", "none", "--config-dir", config, "--pki-dir", pki,
                   "--api-endpoint", "10.0.0.1:6443"]
        # no key service: the join service cannot fetch its signing key and says so
        rc, _, err = run([JS, "--keyservice", "127.0.0.1:1"] + js_args, timeout=60)
        check(rc == 1 and "keys-unavailable" in err, "join service without a key service: exit 1, keys-unavailable")
        js = Service([JS, "--keyservice", "127.0.0.1:%d" % ks.ports["grpc"]] + js_args, d)
        started.append(js)
        js.wait_ready()
        join_ep = "127.0.0.1:%d" % js.ports["grpc"]

        # --- the node: an initialised state disk, node_state.json, metadata naming the join service ---
        disk = os.path.join(d, "state.img")
        with open(disk, "wb") as f:
            f.truncate(40 << 20)
        dek = os.path.join(d, "dek.bin")
        write(dek, DEK)
        rc, _, err = run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--uuid", UUID.upper(),
                          "--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32",
                          "--pbkdf-parallel", "1", "--key-slot", "0", "--key-file", dek, disk])
        check(rc == 0, "LUKS2 state disk (uuid given in upper case: the service lower-cases) (%s)" % err.strip()[:100])
        tok = os.path.join(d, "token.json")
        write(tok, '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":true}')
        rc, _, err = run(["cryptsetup", "token", "import", "--token-id", "0", "--json-file", tok, disk])
        check(rc == 0, "token 0: initialized")
        state_dir = os.path.join(d, "state")
        os.makedirs(os.path.join(state_dir, "constellation"))
        write(os.path.join(state_dir, "constellation", "node_state.json"),
              json.dumps({"Role": "Worker", "MeasurementSalt": base64.b64encode(MSALT).decode()}))
        md = os.path.join(d, "metadata.json")
        write(md, json.dumps({"name": "worker-0", "role": "worker", "vpc_ip": "127.0.0.1",
                              "join_endpoints": ["127.0.0.1:1", join_ep]}), 0o644)
        keyfile = os.path.join(d, "run", "cryptsetup-keys.d", "state.key")
        units = os.path.join(d, "units")

        def start_dm():
            svc = Service([DM, "--listen", "127.0.0.1:0", "--tpm", tpm.tcti, "--disk", disk, "--host-test",
                           "--state-dir", state_dir, "--keyfile", keyfile, "--unit-dir", units,
                           "--metadata", md, "--rejoin-interval", "1"], d)
            started.append(svc)
            return svc

        check(read_pcr(tpm, d, 15) == b"\0" * 32, "node: PCR 15 starts at zero")
        dm = start_dm().wait_ready()
        rc = dm.wait_exit(180)
        log = dm.stderr()
        check(rc == 0, "disk-mapper: exit 0 after rejoin (log tail: %s)" % log[-400:])
        check("rejoin: the ticket's key opens the state disk" in log, "disk-mapper: the key came from the rejoin client")
        check("rejoin ticket issued for disk " + UUID in js.stderr(), "join service: rejoin ticket for the disk's uuid")
        with open(keyfile, "rb") as f:
            check(f.read() == DEK, "keyfile holds HKDF(master, salt, key-<uuid>)")
        check(stat.S_IMODE(os.stat(keyfile).st_mode) == 0o400, "keyfile mode 0400")
        check(read_pcr(tpm, d, 15) == PCR15, "PCR 15 = SHA-256(0^32 || SHA-256(cluster ID))")
        check(os.path.exists(os.path.join(units, "systemd-cryptsetup@state.service")), "runtime units written")
        jlog = js.stderr()
        check(DEK.hex() not in jlog and MASTER.hex() not in jlog and base64.urlsafe_b64encode(MASTER).decode() not in jlog,
              "join service log holds no key")
        dm.stop()

        # --- the same node again, PCR 15 now set: refused by the join service (PCR 15), keeps waiting ---
        os.unlink(keyfile)
        before = len(js.stderr())
        dm = start_dm().wait_ready()
        wait_for(lambda: "at index 15" in js.stderr()[before:], "the join service to refuse PCR 15")
        check("evidence-measurements" in js.stderr()[before:], "join service: a bound node (PCR 15 set) is refused, reason logged")
        wait_for(lambda: "retrying in 1 s" in dm.stderr(), "the disk-mapper to retry")
        check(dm.proc.poll() is None and not os.path.exists(keyfile), "refused node: still waiting, no keyfile")
        rc, stopping = dm.stop()
        check(stopping, "refused node: stops cleanly on SIGTERM")
        rc, _ = js.stop()
        check(rc == 0, "join service: clean stop (exit 0; under ASan: no leak)")
    finally:
        for s in started:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        tpm.stop()
print("PASS")
