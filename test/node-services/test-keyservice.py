# SPDX-License-Identifier: Apache-2.0
"""constellation-keyservice answered by a real outside gRPC client (python3-grpcio, generic
unary_unary with hand-encoded protobuf): Constellation's HKDF vectors (constellation.md §6),
INVALID_ARGUMENT with reasons, file refusals, --kms-uri, sd_notify, journal-style log, SIGTERM."""
import base64
import os
import signal
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodetest import Service, check, fail, tmpdir  # noqa: E402

BIN = sys.argv[1]
METHOD = "/kms.API/GetDataKey"


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def request(key_id, length):
    """GetDataKeyRequest { string data_key_id = 1; uint32 length = 2; }"""
    idb = key_id if isinstance(key_id, bytes) else key_id.encode()
    msg = b""
    if idb:
        msg += b"\x0a" + varint(len(idb)) + idb
    if length:
        msg += b"\x10" + varint(length)
    return msg


def response_key(resp):
    check(resp[0] == 0x0A, "GetDataKeyResponse starts with field 1 (bytes)")
    n, shift, i = 0, 0, 1
    while True:
        b = resp[i]
        n |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            break
    check(len(resp) == i + n, "GetDataKeyResponse holds exactly the key")
    return resp[i:]


def write_secret(d, name, data, mode=0o600):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
    return p


def start(d, *args):
    return Service([BIN, "--listen", "127.0.0.1:0", *args], d).wait_ready()


def call(port, req):
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        return ch.unary_unary(METHOD)(req, timeout=30)


def expect_invalid(port, req, reason, what):
    try:
        call(port, req)
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in (e.details() or ""),
              "%s -> INVALID_ARGUMENT %s (%s)" % (what, reason, e.details()))
        return
    fail("%s: expected INVALID_ARGUMENT %s, got a key" % (what, reason))


def expect_refusal(d, args, reason, needle, what):
    s = Service([BIN, "--listen", "127.0.0.1:0", *args], d)
    rc = s.wait_exit()
    err = s.stderr()
    s.stop()
    check(rc == 1 and reason in err and needle in err and "<3>" in err,
          "%s: refused (exit %d) with %s naming %s" % (what, rc, reason, needle))


VECTORS = [
    # (master secret, salt, id, expected) from Constellation internal/crypto/testvector
    (b"\x00" * 32, b"\x00" * 32, "00000000-0000-0000-0000-000000000000",
     "2b5c829f691bfd4232f8aac464bccc07e605c7c8e82cbca09837e86d0b6d0665"),
    (b"\xff" * 32, b"\xff" * 32, "ffffffff-ffff-ffff-ffff-ffffffffffff",
     "1484aa39d3415e906e07940ff215d8b1eee705d3027dba93306af4abff4f70be"),
    (bytes(range(0x40, 0x60)), bytes(range(0x60, 0x80)), "measurementSecret",
     "4790578891f3fe6cc22cb661ecdc1b7e33121b1287546a52ba33a9136719c213"),
]

with tmpdir() as d:
    # Vectors, through the files and through a kms:// URI (base64url with padding, as Constellation).
    for i, (key, salt, kid, want) in enumerate(VECTORS):
        mf = write_secret(d, "ms%d" % i, key)
        sf = write_secret(d, "salt%d" % i, salt, 0o400)
        s = start(d, "--master-secret", mf, "--salt", sf)
        got = response_key(call(s.ports["grpc"], request(kid, 32)))
        check(got.hex() == want, "files: HKDF(key-%s) = %s" % (kid, want[:16]))
        if i == 0:
            long = response_key(call(s.ports["grpc"], request(kid, 255 * 32)))
            check(len(long) == 8160 and long[:32].hex() == want, "255*32-byte key, prefix equals the 32-byte key")
            expect_invalid(s.ports["grpc"], request("", 32), "key-id-empty", "empty data_key_id")
            expect_invalid(s.ports["grpc"], request(kid, 0), "length-invalid", "length 0")
            expect_invalid(s.ports["grpc"], request(kid, 255 * 32 + 1), "length-invalid", "length 8161")
            expect_invalid(s.ports["grpc"], request(kid, 0xFFFFFFFF), "length-invalid", "length 2^32-1")
            expect_invalid(s.ports["grpc"], request(b"abc\x00def", 32), "key-id-invalid", "NUL in data_key_id")
            expect_invalid(s.ports["grpc"], request("x" * 1025, 32), "key-id-invalid", "1025-byte data_key_id")
            expect_invalid(s.ports["grpc"], b"\x0a\x10abc", "request-malformed", "truncated data_key_id")
            expect_invalid(s.ports["grpc"], b"\x15\x01\x02", "request-malformed", "length as fixed32")
            # unknown fields are skipped, the last value of a field wins (protobuf wire format)
            odd = b"\x1a\x02zz" + request("other", 16) + request(kid, 32)
            check(response_key(call(s.ports["grpc"], odd)).hex() == want, "unknown fields skipped, last value wins")
            try:
                with grpc.insecure_channel("127.0.0.1:%d" % s.ports["grpc"]) as ch:
                    ch.unary_unary("/kms.API/Nope")(b"", timeout=30)
                fail("unknown method answered")
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNIMPLEMENTED, "unknown method -> UNIMPLEMENTED")
        rc, stopping = s.stop()
        check(rc == 0 and stopping, "SIGTERM: clean exit 0 and STOPPING=1")
        if i == 0:
            check("<6>serving gRPC on 127.0.0.1:" in s.stderr() and
                  "<4>/kms.API/GetDataKey: INVALID_ARGUMENT" in s.stderr(),
                  "journal-style log lines (<6> info, <4> refused call)")

        uri = "kms://cluster-kms?key=%s&salt=%s" % (base64.urlsafe_b64encode(key).decode(),
                                                    base64.urlsafe_b64encode(salt).decode())
        s = start(d, "--kms-uri", uri)
        got = response_key(call(s.ports["grpc"], request(kid, 32)))
        check(got.hex() == want, "kms-uri: HKDF(key-%s) = %s" % (kid, want[:16]))
        rc, _ = s.stop(signal.SIGHUP if i == 1 else signal.SIGINT)
        check(rc == 0, "SIGINT/SIGHUP: clean exit 0")
        check(uri.split("key=")[1][:20] not in s.stderr(), "the URI's secret is not logged")

    good_key = write_secret(d, "good-key", b"k" * 32)
    good_salt = write_secret(d, "good-salt", b"s" * 32)
    # File refusals, each naming the file.
    world = write_secret(d, "world-readable", b"k" * 32, 0o644)
    expect_refusal(d, ["--master-secret", world, "--salt", good_salt], "file-permissions", world,
                   "world-readable master secret (0644)")
    group = write_secret(d, "group-readable", b"s" * 32, 0o640)
    expect_refusal(d, ["--master-secret", good_key, "--salt", group], "file-permissions", group,
                   "group-readable salt (0640)")
    short_key = write_secret(d, "short-key", b"k" * 15)
    expect_refusal(d, ["--master-secret", short_key, "--salt", good_salt], "file-too-short", short_key,
                   "15-byte master secret")
    short_salt = write_secret(d, "short-salt", b"s" * 31)
    expect_refusal(d, ["--master-secret", good_key, "--salt", short_salt], "file-too-short", short_salt,
                   "31-byte salt")
    missing = os.path.join(d, "missing")
    expect_refusal(d, ["--master-secret", missing, "--salt", good_salt], "file-unreadable", missing,
                   "missing master secret file")
    link = os.path.join(d, "link")
    os.symlink(good_key, link)
    expect_refusal(d, ["--master-secret", link, "--salt", good_salt], "file-unreadable", link,
                   "symlinked master secret (O_NOFOLLOW)")
    # kms:// refusals
    k16 = base64.urlsafe_b64encode(b"k" * 32).decode()
    s32 = base64.urlsafe_b64encode(b"s" * 32).decode()
    expect_refusal(d, ["--kms-uri", "kms://aws?keyPolicy=x&kekID=y"], "backend-unknown", "kms://aws",
                   "kms://aws")
    expect_refusal(d, ["--kms-uri", "gcp://cluster-kms?key=%s&salt=%s" % (k16, s32)], "uri-scheme", "gcp",
                   "scheme gcp://")
    expect_refusal(d, ["--kms-uri", "kms://cluster-kms?salt=%s" % s32], "parameter-missing", "\"key\"",
                   "key missing")
    expect_refusal(d, ["--kms-uri", "kms://cluster-kms?key=%s&salt=%s" % (k16.rstrip("="), s32)],
                   "parameter-invalid", "\"key\"", "unpadded base64url key")
    expect_refusal(d, ["--kms-uri", "kms://cluster-kms?key=%s&salt=%s" % (k16, base64.urlsafe_b64encode(b"s" * 31).decode())],
                   "salt-too-short", "31 bytes", "31-byte salt in the URI")
    # Usage
    s = Service([BIN, "--listen", "127.0.0.1:0", "--master-secret", good_key], d)
    rc = s.wait_exit()
    err = s.stderr()
    s.stop()
    check(rc == 2 and "--kms-uri" in err, "only one of the two files: usage error (exit 2)")
    s = Service([BIN, "--bogus"], d)
    rc = s.wait_exit()
    s.stop()
    check(rc == 2, "unknown option: exit 2")

print("PASS")
