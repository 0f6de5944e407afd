# SPDX-License-Identifier: Apache-2.0
"""A scripted KMIP server for what PyKMIP cannot show (test-kmip): TLS with client certificates from
the test PKI, answers crafted with the TTLV rules of KMIP 1.4 §9.1.

  fake-kmip.py DIR destroyed   Decrypt -> Permission Denied, Get Attributes -> State Destroyed
  fake-kmip.py DIR preactive   Decrypt -> Permission Denied, Get Attributes -> State Pre-Active
  fake-kmip.py DIR close       reads each request and hangs up without answering

Prints its port on stdout, then counts requests in DIR/fake-count. Runs until killed."""
import os
import socket
import ssl
import struct
import sys
import time

d, mode = sys.argv[1], sys.argv[2]


def item(tag, typ, val):
    return struct.pack(">I", tag)[1:] + bytes([typ]) + struct.pack(">I", len(val)) + val + b"\0" * (-len(val) % 8)


def enum(tag, v):
    return item(tag, 0x05, struct.pack(">I", v))


def integer(tag, v):
    return item(tag, 0x02, struct.pack(">i", v))


def text(tag, s):
    return item(tag, 0x07, s.encode())


def response(op, body):
    hdr = item(0x42007A, 1, item(0x420069, 1, integer(0x42006A, 1) + integer(0x42006B, 4)) +
               item(0x420092, 0x09, struct.pack(">q", int(time.time()))) + integer(0x42000D, 1))
    return item(0x42007B, 1, hdr + item(0x42000F, 1, enum(0x42005C, op) + body))


def failure(op, reason, msg):
    return response(op, enum(0x42007F, 1) + enum(0x42007E, reason) + text(0x42007D, msg))


def get_attributes(state):
    attr = item(0x420008, 1, text(0x42000A, "State") + enum(0x42000B, state))
    return response(0x0B, enum(0x42007F, 0) + item(0x42007C, 1, text(0x420094, "1") + attr))


def operation(msg):
    i = msg.find(bytes.fromhex("42005c0500000004"))
    return struct.unpack(">I", msg[i + 8:i + 12])[0] if i >= 0 else 0


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
ctx.load_verify_locations(os.path.join(d, "ca.pem"))
ctx.verify_mode = ssl.CERT_REQUIRED
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
sys.stdout.write("%d\n" % srv.getsockname()[1])
sys.stdout.flush()
# Exits when the test that started it is gone (a failed test may not reach its stop).
owner = os.getppid()
srv.settimeout(1)
count = 0
while True:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        if os.getppid() != owner:
            sys.exit(0)
        continue
    conn.settimeout(None)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()
        continue
    try:
        while True:
            hdr = recv_exact(tls, 8)
            if not hdr:
                break
            body = recv_exact(tls, struct.unpack(">I", hdr[4:])[0])
            if body is None:
                break
            count += 1
            with open(os.path.join(d, "fake-count"), "w") as f:
                f.write("%d\n" % count)
            if mode == "close":
                break
            op = operation(body)
            if op == 0x20:
                tls.sendall(failure(0x20, 0x0C, "The decryption key must be in the Active state"))
            elif op == 0x0B:
                tls.sendall(get_attributes(5 if mode == "destroyed" else 1))
            else:
                tls.sendall(failure(op, 0x05, "not scripted"))
    except (ssl.SSLError, OSError):
        pass
    try:
        tls.close()
    except OSError:
        pass
