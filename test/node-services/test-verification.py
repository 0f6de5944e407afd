# SPDX-License-Identifier: Apache-2.0
"""constellation-verification-service over a private swtpm, checked from outside: our CLI
`constellation-attest verify` (passes for the cluster ID extended into PCR 15, fails naming PCR 15
for another, and for a wrong measurement naming that PCR), curl against the HTTP endpoint (200 with
{"data":...}, 400/404/405/414 with reasons), and a python3-grpcio client for the gRPC refusals."""
import base64
import hashlib
import json
import os
import subprocess
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodetest import Service, Swtpm, check, fail, require_tool, tmpdir  # noqa: E402

SERVICE, ATTEST = sys.argv[1], sys.argv[2]
METHOD = "/verify.API/GetAttestation"
require_tool("curl")
require_tool("tpm2_pcrevent")
require_tool("tpm2_pcrread")


def run(argv, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def curl(url, *extra):
    rc, out, err = run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *extra, url])
    if rc != 0:
        fail("curl %s: %s" % (url, err))
    body, _, code = out.rpartition("\n")
    return int(code), body


def grpc_request(nonce):
    """GetAttestationRequest { bytes nonce = 2; }"""
    return (b"\x12" + bytes([len(nonce)]) + nonce) if nonce else b""


with tmpdir() as d:
    tpm = Swtpm(d)
    try:
        # Bind the TPM to a cluster: TPM2_PCR_Event(15, cluster ID), as the bootstrapper does.
        cluster_id = hashlib.sha256(b"test cluster").digest()
        other_id = hashlib.sha256(b"another cluster").digest()
        cid_file = os.path.join(d, "cluster-id")
        with open(cid_file, "wb") as f:
            f.write(cluster_id)
        rc, out, err = run(["tpm2_pcrevent", "15", cid_file], env=tpm.env())
        check(rc == 0, "tpm2_pcrevent 15 <cluster ID> (%s)" % err.strip())
        rc, out, err = run(["tpm2_pcrread", "sha256:4,15", "-o", os.path.join(d, "pcrs.bin")], env=tpm.env())
        check(rc == 0, "tpm2_pcrread sha256:4,15")
        with open(os.path.join(d, "pcrs.bin"), "rb") as f:
            raw = f.read()
        pcr4, pcr15 = raw[:32], raw[32:64]
        check(pcr15 == hashlib.sha256(b"\0" * 32 + hashlib.sha256(cluster_id).digest()).digest(),
              "PCR 15 = SHA-256(0^32 || SHA-256(cluster ID))")

        measurements = os.path.join(d, "measurements.json")
        with open(measurements, "w") as f:
            json.dump({"measurements": {"4": {"expected": pcr4.hex(), "warnOnly": False},
                                        "9": {"expected": "11" * 32, "warnOnly": True}}}, f)
        attconfig = os.path.join(d, "attestation.json")
        with open(attconfig, "w") as f:
            json.dump({"variant": "qemu-vtpm", "azure_firmware_signer_config": None,
                       "measurements": {"4": {"expected": pcr4.hex(), "warn_only": False}}}, f)
        wrong = os.path.join(d, "wrong.json")
        with open(wrong, "w") as f:
            json.dump({"4": {"expected": "ab" * 32, "warnOnly": False}}, f)

        svc = Service([SERVICE, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--tpm", tpm.tcti,
                       "--event-log", os.path.join(d, "no-event-log")], d).wait_ready()
        check("grpc" in svc.ports and "http" in svc.ports, "READY=1 with STATUS=%s" % svc.status)
        endpoint = "127.0.0.1:%d" % svc.ports["grpc"]
        http = "http://127.0.0.1:%d" % svc.ports["http"]

        # --- constellation-attest verify ---
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", cluster_id.hex(),
                            "--measurements", measurements])
        check(rc == 0 and "verified" in out, "verify: right cluster ID (hex) passes (%s)" % (out.strip() or err.strip()))
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id",
                            base64.b64encode(cluster_id).decode(), "--attestation-config", attconfig, "--json"])
        j = json.loads(out) if out.strip() else {}
        check(rc == 0 and j.get("ok") is True, "verify: base64 cluster ID + provider attestation config passes")
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", other_id.hex(),
                            "--measurements", measurements])
        check(rc == 1 and "PCR 15" in err and "measurement-mismatch" in err,
              "verify: another cluster ID is refused naming PCR 15 (%s)" % err.strip())
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", cluster_id.hex(),
                            "--measurements", wrong])
        check(rc == 1 and "index 4" in err and "PCR 15" not in err,
              "verify: a wrong PCR 4 is refused naming index 4 (%s)" % err.strip())
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", "abcd",
                            "--measurements", measurements])
        check(rc == 2, "verify: a malformed cluster ID is a usage error (exit 2)")
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", cluster_id.hex()])
        check(rc == 2, "verify: no measurements is a usage error (exit 2)")
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", cluster_id.hex(),
                            "--measurements", os.path.join(d, "missing.json")])
        check(rc == 3, "verify: unreadable measurements file: exit 3")

        # --- gRPC refusals (outside client) ---
        with grpc.insecure_channel(endpoint) as ch:
            call = ch.unary_unary(METHOD)
            resp = call(grpc_request(os.urandom(32)), timeout=60)
            check(resp[:1] == b"\x0a" and b"VerifyService" not in resp and b"Attestation" in resp,
                  "grpcio: GetAttestationResponse holds a document")
            for nonce, reason in ((b"", "nonce-missing"), (b"x" * 8, "nonce-length")):
                try:
                    call(grpc_request(nonce), timeout=60)
                    fail("nonce of %d bytes accepted" % len(nonce))
                except grpc.RpcError as e:
                    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in e.details(),
                          "grpcio: %d-byte nonce -> INVALID_ARGUMENT %s" % (len(nonce), reason))
            try:
                call(b"\x12\x05ab", timeout=60)
                fail("malformed request accepted")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "request-malformed" in e.details(),
                      "grpcio: truncated request -> INVALID_ARGUMENT request-malformed")

        # --- HTTP with curl ---
        nonce = os.urandom(32)
        code, body = curl(http + "/?nonce=" + base64.urlsafe_b64encode(nonce).decode())
        check(code == 200, "curl GET /?nonce=<32 bytes> -> 200")
        doc = json.loads(base64.b64decode(json.loads(body)["data"]))
        check(base64.b64decode(doc["UserData"]) == b"VerifyService" and doc["Attestation"]["quotes"],
              "HTTP: {\"data\": base64 document} with UserData VerifyService and quotes")
        rc, out, err = run(["curl", "-sS", "-D", "-", "-o", "/dev/null",
                            http + "/?nonce=" + base64.urlsafe_b64encode(nonce).decode()])
        check(rc == 0 and "content-type: application/json" in out.lower(), "HTTP 200 is application/json")
        # Concurrent requests: one TPM, quotes serialised, every one answered.
        procs = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                   http + "/?nonce=" + base64.urlsafe_b64encode(os.urandom(32)).decode()],
                                  stdout=subprocess.PIPE, text=True) for _ in range(6)]
        codes = [p.communicate(timeout=120)[0] for p in procs]
        check(codes == ["200"] * 6, "6 concurrent HTTP requests all answered 200 (%s)" % codes)
        cases = [
            ("/", 400, "nonce-missing"),
            ("/?nonce=", 400, "nonce-missing"),
            ("/?nonce=" + base64.urlsafe_b64encode(b"n" * 8).decode(), 400, "nonce-length"),
            ("/?nonce=" + base64.urlsafe_b64encode(b"n" * 1025).decode(), 400, "nonce-length"),
            ("/?nonce=" + base64.urlsafe_b64encode(nonce).decode().rstrip("="), 400, "nonce-encoding"),
            ("/?nonce=" + base64.b64encode(b"\xfb" * 32).decode().replace("=", "%3D"), 400, "nonce-encoding"),
            ("/?nonce=AAAA&nonce=BBBB", 400, "nonce-repeated"),
            ("/other?nonce=" + base64.urlsafe_b64encode(nonce).decode(), 404, "not-found"),
        ]
        for path, want, reason in cases:
            code, body = curl(http + path)
            check(code == want and reason in body, "curl GET %s -> %d %s" % (path[:40], want, reason))
        code, body = curl(http + "/?nonce=AAAA", "-X", "POST", "-d", "x")
        check(code == 405 and "method-not-allowed" in body, "curl POST / -> 405 method-not-allowed")
        code, body = curl(http + "/?nonce=" + "A" * 40000)
        check(code in (414, 431), "curl GET with a 40 kB URL -> %d (bounded request size)" % code)

        # The TPM goes away: the refusal says so.
        tpm.stop()
        code, body = curl(http + "/?nonce=" + base64.urlsafe_b64encode(nonce).decode())
        check(code == 500 and "issue-failed" in body, "TPM gone: HTTP 500 issue-failed")
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", cluster_id.hex(),
                            "--measurements", measurements])
        check(rc == 4 and "issue-failed" in err, "verify: service cannot issue -> exit 4 with its reason")
        rc, _ = svc.stop()
        check(rc == 0, "SIGTERM: clean exit")
        rc, out, err = run([ATTEST, "verify", "--endpoint", endpoint, "--cluster-id", cluster_id.hex(),
                            "--measurements", measurements, "--timeout", "5"])
        check(rc == 4, "verify: endpoint down -> exit 4 (%s)" % err.strip()[:80])
    finally:
        tpm.stop()
print("PASS")
