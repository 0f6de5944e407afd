# SPDX-License-Identifier: Apache-2.0
"""Hold your own key end to end with the real programs and a real KMIP server (PyKMIP on loopback):

constellation-attest kmip create-kek / check / wrap-master-secret make a KEK and a kms://kmip URI;
constellation-keyservice --kms-uri serves data keys equal to Constellation's HKDF of the master
secret (constellation-attest derive), the same across key-service restarts and for two key
services ("two control planes"); after kmip revoke / destroy a fresh key service refuses to start
and says why (kek-revoked, item-not-found); wrong server CA and server down are refused by the CLI
with their reasons and exit codes. Finally the KEK's bytes (read from PyKMIP's database) appear in
no file of the test directory but PyKMIP's database, including every program's stdout and stderr.

argv: pykmip.sh constellation-attest constellation-keyservice"""
import base64
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node-services"))
from nodetest import Service, check, fail  # noqa: E402
import grpc  # noqa: E402

HARNESS, ATTEST, KEYSERVICE = sys.argv[1:4]
METHOD = "/kms.API/GetDataKey"
_n = [0]


def run(d, *argv, expect=0, stdin=None):
    """Runs a program with stdout/stderr captured into files of the test directory."""
    _n[0] += 1
    out = os.path.join(d, "out-%02d.txt" % _n[0])
    err = os.path.join(d, "err-%02d.txt" % _n[0])
    with open(out, "wb") as fo, open(err, "wb") as fe:
        rc = subprocess.run(list(argv), stdout=fo, stderr=fe, stdin=subprocess.DEVNULL if stdin is None else stdin,
                            timeout=120).returncode
    so, se = open(out).read(), open(err).read()
    if expect is not None and rc != expect:
        fail("%s: exit %d, expected %d\nstdout: %s\nstderr: %s" % (" ".join(argv[:3]), rc, expect, so, se))
    return rc, so, se


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def get_data_key(port, key_id, length=32):
    req = b"\x0a" + varint(len(key_id)) + key_id.encode() + b"\x10" + varint(length)
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        resp = ch.unary_unary(METHOD)(req, timeout=30)
    check(resp[0] == 0x0A and resp[1] == length and len(resp) == 2 + length, "GetDataKeyResponse holds the key")
    return resp[2:]


def kek_from_db(d, uid):
    """The KEK's bytes as PyKMIP stores them (the test reads them to search for them)."""
    db = sqlite3.connect(d + "/pykmip.db")
    row = db.execute("select value from managed_objects where uid=?", (int(uid),)).fetchone()
    db.close()
    check(row is not None, "KEK %s is in PyKMIP's database" % uid)
    return bytes(row[0])


def main():
    if not os.path.exists("/usr/bin/pykmip-server"):
        fail("pykmip-server is missing: install Debian's python3-pykmip (scripts/setup.sh)")
    base = os.environ.get("CT_BINARY_DIR") or None
    d = tempfile.mkdtemp(prefix="kmip-e2e-", dir=base)
    os.environ["PYKMIP_OWNER_PID"] = str(os.getpid())
    try:
        subprocess.run(["bash", HARNESS, "pki", d], check=True)
        subprocess.run(["bash", HARNESS, "start", d], check=True, stdout=subprocess.DEVNULL)
        port = int(open(os.path.join(d, "port")).read())
        conn = ["--endpoint", "127.0.0.1:%d" % port, "--client-cert", d + "/client.pem",
                "--client-key", d + "/client.key", "--server-ca", d + "/ca.pem"]

        _, out, _ = run(d, ATTEST, "kmip", "create-kek", *conn, "--name", "cluster-kek")
        kek = out.strip()
        check(kek.isdigit(), "create-kek prints the KEK's unique identifier (%s)" % kek)
        kek_bytes = [kek_from_db(d, kek)]
        _, out, _ = run(d, ATTEST, "kmip", "check", *conn, "--kek", kek)
        check("Active" in out, "check: Active, AES-256 (%s)" % out.strip())

        master, salt = os.urandom(32), os.urandom(32)
        with open(d + "/master.hex", "w") as f:
            f.write(master.hex() + "\n")
        with open(d + "/salt.hex", "w") as f:
            f.write(salt.hex() + "\n")
        os.chmod(d + "/master.hex", 0o600)
        os.chmod(d + "/salt.hex", 0o600)
        _, uri, _ = run(d, ATTEST, "kmip", "wrap-master-secret", *conn, "--kek", kek,
                        "--secret-file", d + "/master.hex", "--salt-file", d + "/salt.hex")
        uri = uri.strip()
        check(uri.startswith("kms://kmip?endpoint=127.0.0.1:%d&kek=%s&wrapped=" % (port, kek)),
              "wrap-master-secret prints the kms://kmip URI")
        check(master.hex() not in uri and base64.urlsafe_b64encode(master).decode().rstrip("=") not in uri,
              "the URI does not carry the master secret")
        # --inline refuses standard output, writes 0600.
        run(d, ATTEST, "kmip", "wrap-master-secret", *conn, "--kek", kek, "--secret-file", d + "/master.hex",
            "--salt-file", d + "/salt.hex", "--inline", expect=2)
        run(d, ATTEST, "kmip", "wrap-master-secret", *conn, "--kek", kek, "--secret-file", d + "/master.hex",
            "--salt-file", d + "/salt.hex", "--inline", "--out", d + "/inline.uri")
        check(os.stat(d + "/inline.uri").st_mode & 0o777 == 0o600, "--inline --out writes mode 0600")
        inline_uri = open(d + "/inline.uri").read()
        check("client-key=base64:" in inline_uri, "--inline embeds the client key")

        ids = ["measurementSecret", "ca_emergency_ssh", "3c5e6f2a-9d1b-4c7e-8a0f-1b2c3d4e5f60"]
        want = {}
        for i in ids:
            _, out, _ = run(d, ATTEST, "derive", "--secret-file", d + "/master.hex", "--salt-file", d + "/salt.hex",
                            "--info", "key-" + i)
            want[i] = bytes.fromhex(out.strip())

        # Two key services from the same URI (two control planes), then a restart of one.
        a = Service([KEYSERVICE, "--listen", "127.0.0.1:0", "--kms-uri", uri], d).wait_ready()
        b = Service([KEYSERVICE, "--listen", "127.0.0.1:0", "--kms-uri", inline_uri], d).wait_ready()
        pa, pb = list(a.ports.values())[0], list(b.ports.values())[0]
        for i in ids:
            check(get_data_key(pa, i) == want[i], "key service A: data key %s = HKDF of the master secret" % i)
            check(get_data_key(pb, i) == want[i], "key service B (inline credentials): same data key %s" % i)
        a.stop()
        a = Service([KEYSERVICE, "--listen", "127.0.0.1:0", "--kms-uri", uri], d).wait_ready()
        pa = list(a.ports.values())[0]
        check(get_data_key(pa, ids[0]) == want[ids[0]], "after a key-service restart: the same data key")

        # Refusals through the CLI: wrong server CA (1), server down (4).
        bad = list(conn)
        bad[bad.index("--server-ca") + 1] = d + "/rogue-ca.pem"
        _, _, err = run(d, ATTEST, "kmip", "check", *bad, "--kek", kek, expect=1)
        check("server-ca-mismatch" in err, "wrong server CA: %s" % err.strip())
        _, _, err = run(d, ATTEST, "kmip", "check", *conn, "--kek", "424242", expect=1)
        check("item-not-found" in err, "unknown KEK: %s" % err.strip())

        # Revoke: the running service keeps its keys, a fresh one refuses and says why.
        run(d, ATTEST, "kmip", "revoke", *conn, "--kek", kek)
        _, _, err = run(d, ATTEST, "kmip", "check", *conn, "--kek", kek, expect=1)
        check("Deactivated" in err, "check after revoke: %s" % err.strip())
        check(get_data_key(pa, ids[0]) == want[ids[0]], "a running key service keeps its unwrapped master secret")
        rc, _, err = run(d, KEYSERVICE, "--listen", "127.0.0.1:0", "--kms-uri", uri, expect=None)
        check(rc != 0 and "kek-revoked" in err, "key service after revoke refuses: exit %d, %s" %
              (rc, err.strip().splitlines()[-1] if err.strip() else ""))
        a.stop()
        b.stop()

        # Destroy: gone from the server; a fresh key service says item-not-found.
        run(d, ATTEST, "kmip", "destroy", *conn, "--kek", kek)
        rc, _, err = run(d, KEYSERVICE, "--listen", "127.0.0.1:0", "--kms-uri", uri, expect=None)
        check(rc != 0 and "item-not-found" in err, "key service after destroy refuses: exit %d" % rc)

        # Server down: exit 4 and server-down.
        _, out, _ = run(d, ATTEST, "kmip", "create-kek", *conn)
        kek2 = out.strip()
        kek_bytes.append(kek_from_db(d, kek2))
        subprocess.run(["bash", HARNESS, "stop", d], check=True)
        _, _, err = run(d, ATTEST, "kmip", "check", *conn, "--kek", kek2, "--timeout-ms", "500", expect=4)
        check("server-down" in err, "server down: %s" % err.strip())

        # The KEK never appears in what we wrote: raw, hex (both cases), base64, base64url.
        needles = []
        for k in kek_bytes:
            check(len(k) == 32, "PyKMIP holds the 32-byte KEK")
            needles += [k, k.hex().encode(), k.hex().upper().encode(), base64.b64encode(k)[:40],
                        base64.urlsafe_b64encode(k)[:40]]
        n = 0
        for root, _, files in os.walk(d):
            for name in files:
                if name.startswith("pykmip.db"):
                    continue
                p = os.path.join(root, name)
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                data = open(p, "rb").read()
                n += 1
                for nd in needles:
                    if nd in data:
                        fail("KEK bytes found in %s" % p)
        check(n > 20, "KEK bytes absent from all %d files (CLI and key-service stdout/stderr, URIs, logs)" % n)
        print("ok")
    finally:
        subprocess.run(["bash", HARNESS, "stop", d])
        if not os.environ.get("KMIP_TEST_KEEP"):
            shutil.rmtree(d, ignore_errors=True)


main()
