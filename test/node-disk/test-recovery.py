# SPDX-License-Identifier: Apache-2.0
"""constellation-disk-mapper's existing-disk path on the host, end to end: a LUKS2 file whose token 0
says initialized and whose keyslot 0 holds the DEK HKDF(master, salt, "key-<uuid>") (computed here
with python's hmac, independent of lib/crypto), a private swtpm behind the node's aTLS, and our CLI
`constellation-attest recover` as the operator.

Checked: a node whose attestation does not match the measurements gets nothing; a wrong master
secret is refused with PERMISSION_DENIED / wrong-key, the header bytes stay the same and the server
keeps waiting; a broken node_state.json after a good key stops before PCR 15; the right secret
unlocks (keyslot opened without activation: --host-test, the host has no device-mapper), PCR 15 =
SHA-256(0^32 || SHA-256(cluster ID)), the keyfile holds the DEK with mode 0400, and the runtime
units are written; an invalid token or a blank disk on the host stop with their reason."""
import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "node-services"))
from nodetest import Service, Swtpm, check, fail, require_tool, tmpdir  # noqa: E402

DM, ATTEST = sys.argv[1], sys.argv[2]
for tool in ("cryptsetup", "tpm2_pcrread"):
    require_tool(tool)

UUID = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
MASTER = bytes(range(0x40, 0x60))
SALT = bytes(range(0x60, 0x80))
MSALT = bytes(range(0xa0, 0xc0))


def hkdf(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


DEK = hkdf(MASTER, SALT, ("key-" + UUID).encode())
MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")
PCR15 = hashlib.sha256(b"\0" * 32 + hashlib.sha256(CLUSTER_ID).digest()).digest()
# Constellation's own vector for HKDF (constellation.md §6) keeps this helper honest.
assert hkdf(bytes(range(0x40, 0x60)), bytes(range(0x60, 0x80)), b"key-measurementSecret").hex() == \
    "4790578891f3fe6cc22cb661ecdc1b7e33121b1287546a52ba33a9136719c213"


def run(argv, env=None, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write(path, data, mode=0o600):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def header_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(16 << 20)).hexdigest()


def make_disk(d, name, token):
    disk = os.path.join(d, name)
    with open(disk, "wb") as f:
        f.truncate(40 << 20)
    dek = os.path.join(d, "dek.bin")
    write(dek, DEK)
    # The host cannot format dm-integrity (no device-mapper): the header is otherwise the state
    # disk's (test-luks proves lib/luks asks for hmac(sha256)).
    rc, out, err = run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--uuid", UUID,
                        "--cipher", "aes-xts-plain64", "--key-size", "512", "--sector-size", "4096",
                        "--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32",
                        "--pbkdf-parallel", "1", "--key-slot", "0", "--key-file", dek, disk])
    if rc != 0:
        fail("cryptsetup luksFormat: " + err)
    tok = os.path.join(d, name + ".token.json")
    write(tok, token)
    rc, out, err = run(["cryptsetup", "token", "import", "--token-id", "0", "--json-file", tok, disk])
    if rc != 0:
        fail("cryptsetup token import: " + err)
    return disk


def read_pcr(tpm, d, index):
    out = os.path.join(d, "pcr.bin")
    rc, _, err = run(["tpm2_pcrread", "sha256:%d" % index, "-o", out], env=tpm.env())
    if rc != 0:
        fail("tpm2_pcrread: " + err)
    with open(out, "rb") as f:
        return f.read()


INITIALIZED = '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":true}'

started = []  # every disk-mapper started, killed on any exit (a failed check must not leave one)
with tmpdir() as d:
    tpm = Swtpm(d)
    try:
        master_f, salt_f, wrong_f = (os.path.join(d, n) for n in ("master.hex", "salt.hex", "wrong.hex"))
        write(master_f, MASTER.hex() + "\n")
        write(salt_f, SALT.hex() + "\n")
        write(wrong_f, bytes(range(0x41, 0x61)).hex() + "\n")
        pcr4 = read_pcr(tpm, d, 4)
        check(read_pcr(tpm, d, 15) == b"\0" * 32, "swtpm: PCR 15 starts at zero")
        meas, wrong_meas = os.path.join(d, "measurements.json"), os.path.join(d, "wrong-measurements.json")
        write(meas, json.dumps({"measurements": {"4": {"expected": pcr4.hex(), "warnOnly": False},
                                                 "15": {"expected": "00" * 32, "warnOnly": False}}}))
        write(wrong_meas, json.dumps({"4": {"expected": "ab" * 32, "warnOnly": False}}))

        state_dir = os.path.join(d, "state")
        os.makedirs(os.path.join(state_dir, "constellation"))
        ns_path = os.path.join(state_dir, "constellation", "node_state.json")
        keyfile = os.path.join(d, "run", "cryptsetup-keys.d", "state.key")
        units = os.path.join(d, "units")

        def start(disk):
            svc = Service([DM, "--listen", "127.0.0.1:0", "--tpm", tpm.tcti, "--disk", disk, "--host-test",
                            "--state-dir", state_dir, "--keyfile", keyfile, "--unit-dir", units], d)
            started.append(svc)
            return svc

        def recover(endpoint, secret=master_f, measurements=meas):
            return run([ATTEST, "recover", "--endpoint", endpoint, "--master-secret", secret, "--salt", salt_f,
                        "--measurements", measurements, "--timeout", "60"])

        # --- command line ---
        rc, _, err = run([DM, "--disk", "/nonexistent", "--state-dir", state_dir])
        check(rc == 2 and "--host-test" in err, "--state-dir without --host-test: usage error")

        # --- an invalid token: neither formatted nor served ---
        bad = make_disk(d, "bad-token.img",
                        '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":"yes"}')
        before = header_hash(bad)
        svc = start(bad)
        rc = svc.wait_exit(60)
        check(rc == 1 and "token-invalid" in svc.stderr(), "invalid token 0: exit 1 with token-invalid")
        check(header_hash(bad) == before, "invalid token 0: header bytes unchanged")
        svc.stop()

        # --- a blank disk on the host: format needs device-mapper, said so ---
        blank = os.path.join(d, "blank.img")
        with open(blank, "wb") as f:
            f.truncate(40 << 20)
        svc = start(blank)
        rc = svc.wait_exit(120)
        check(rc == 1 and "no-device-mapper" in svc.stderr() and not os.path.exists(keyfile),
              "blank disk on the host: exit 1 with no-device-mapper, no keyfile")
        svc.stop()

        disk = make_disk(d, "state.img", INITIALIZED)
        before = header_hash(disk)

        # --- a broken node_state.json: the good key is taken, PCR 15 is not touched ---
        write(ns_path, json.dumps({"Role": "ControlPlane", "MeasurementSalt": base64.b64encode(MSALT[:31]).decode()}))
        svc = start(disk).wait_ready()
        endpoint = "127.0.0.1:%d" % svc.ports["grpc"]
        rc, out, err = recover(endpoint)
        check(rc == 0, "recover (broken node state): the node takes the key (%s)" % (out.strip() or err.strip()))
        rc = svc.wait_exit(60)
        check(rc == 1 and "salt-length" in svc.stderr(), "broken node_state.json: exit 1 with salt-length")
        check(read_pcr(tpm, d, 15) == b"\0" * 32, "broken node_state.json: PCR 15 still zero")
        check(not os.path.exists(keyfile), "broken node_state.json: no keyfile written")
        svc.stop()

        write(ns_path, json.dumps({"Role": "ControlPlane", "MeasurementSalt": base64.b64encode(MSALT).decode()}))
        svc = start(disk).wait_ready()
        endpoint = "127.0.0.1:%d" % svc.ports["grpc"]
        check("waiting for its key" in svc.stderr(), "existing disk: the disk-mapper waits for recovery")

        # --- the node does not attest as expected: nothing is sent ---
        rc, out, err = recover(endpoint, measurements=wrong_meas)
        check(rc == 1 and "evidence-measurements" in err and "nothing was sent" in err,
              "recover: wrong measurements -> the node is refused before anything is sent (%s)" % err.strip()[:120])

        # --- wrong master secret ---
        rc, out, err = recover(endpoint, secret=wrong_f)
        check(rc == 1 and "PERMISSION_DENIED" in err and "wrong-key" in err,
              "recover: wrong master secret -> PERMISSION_DENIED wrong-key (%s)" % err.strip()[:160])
        check(header_hash(disk) == before, "wrong master secret: disk header bytes unchanged")
        check(svc.proc.poll() is None, "wrong master secret: the server keeps waiting")
        check("wrong-key" in svc.stderr(), "wrong master secret: the node logs the reason")
        check(MASTER.hex() not in svc.stderr() and base64.urlsafe_b64encode(MASTER).decode() not in svc.stderr(),
              "the node's log holds no master secret")

        rc, out, err = run([ATTEST, "recover", "--endpoint", endpoint, "--master-secret", wrong_f, "--salt", salt_f,
                            "--measurements", meas, "--json"])
        j = json.loads(out) if out.strip() else {}
        check(rc == 1 and j.get("ok") is False and j.get("status") == "PERMISSION_DENIED" and "wrong-key" in j.get("reason", ""),
              "recover --json: {ok:false, status:PERMISSION_DENIED, ...wrong-key}")

        # --- the CLI's own refusals ---
        rc, _, err = run([ATTEST, "recover", "--endpoint", endpoint, "--master-secret", master_f, "--salt", salt_f])
        check(rc == 2, "recover without --measurements: usage error (exit 2)")
        rc, _, err = run([ATTEST, "recover", "--endpoint", endpoint, "--master-secret", os.path.join(d, "missing"),
                          "--salt", salt_f, "--measurements", meas])
        check(rc == 3 and "missing" in err, "recover: unreadable master secret file: exit 3")
        short = os.path.join(d, "short.hex")
        write(short, "00" * 8)
        rc, _, err = run([ATTEST, "recover", "--endpoint", endpoint, "--master-secret", short, "--salt", salt_f,
                          "--measurements", meas])
        check(rc == 2 and "at least 16" in err, "recover: an 8-byte master secret is refused locally")
        rc, _, err = run([ATTEST, "recover", "--endpoint", endpoint, "--master-secret", master_f, "--salt", salt_f,
                          "--measurements", meas, "--secret", "00"])
        check(rc == 2, "recover: unknown option --secret: usage error")
        check(svc.proc.poll() is None, "after the refusals the server still waits")

        # --- the right master secret ---
        rc, out, err = recover(endpoint)
        check(rc == 0 and "recovered" in out, "recover: right master secret accepted (%s)" % (out.strip() or err))
        rc = svc.wait_exit(60)
        log = svc.stderr()
        check(rc == 0, "disk-mapper exits 0 after recovery (%s)" % log.strip().splitlines()[-1:])
        check("PCR 15 extended" in log and "host test" in log, "log: PCR 15 extended, host test mode said")
        check(read_pcr(tpm, d, 15) == PCR15, "PCR 15 = SHA-256(0^32 || SHA-256(HKDF cluster ID))")
        st = os.stat(keyfile)
        with open(keyfile, "rb") as f:
            check(f.read() == DEK and stat.S_IMODE(st.st_mode) == 0o400, "keyfile = DEK key-<uuid>, mode 0400")
        check(stat.S_IMODE(os.stat(os.path.dirname(keyfile)).st_mode) == 0o700, "keyfile directory 0700")
        with open(os.path.join(units, "systemd-cryptsetup@state.service")) as f:
            unit = f.read()
        check("attach 'state' '%s' '%s' 'cipher=aes-xts-plain64,integrity=hmac-sha256'" % (os.path.realpath(disk), keyfile)
              in unit, "systemd-cryptsetup@state.service attaches the disk with the keyfile")
        for link in ("cryptsetup.target.requires/systemd-cryptsetup@state.service",
                     "dev-mapper-state.device.requires/systemd-cryptsetup@state.service",
                     "local-fs.target.requires/run-state.mount", "local-fs.target.requires/var.mount"):
            check(os.path.islink(os.path.join(units, link)) and os.path.exists(os.path.join(units, link)), "unit link " + link)
        check(header_hash(disk) == before, "recovery never writes the header")
        rc, _, _ = run(["cryptsetup", "open", "--test-passphrase", "--key-file", keyfile, disk])
        check(rc == 0, "cryptsetup: the written keyfile opens the disk")
        svc.stop()
        rc, _, err = recover(endpoint)
        check(rc == 4 and "no aTLS connection" in err, "recover: the server is gone after recovery: exit 4 (%s)" % err.strip()[:80])
    finally:
        for p in started:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        tpm.stop()
print("PASS")
