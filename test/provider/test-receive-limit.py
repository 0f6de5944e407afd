#!/usr/bin/python3
"""test-provider-receive-limit: the provider's gRPC receive limit holds at the transport.

Starts the real terraform-provider-constellation as go-plugin does (magic cookie,
PLUGIN_CLIENT_CERT), reads the handshake line, and talks to it with python3-grpcio (a client that
shares no code with the project) over the unix socket with mutual TLS:
  - GetProviderSchema with a small request answers OK (the channel works);
  - a request just over TF_MAX_REQUEST (64 MiB) is refused with RESOURCE_EXHAUSTED by gRPC itself
    ("larger than max"), not by the provider's handler ("request too large");
  - the provider still answers afterwards.
Usage: test-receive-limit.py PROVIDER"""
import base64, os, subprocess, sys, tempfile

try:
    import grpc
except ImportError:
    sys.exit("FAIL: python3-grpcio is not installed (run scripts/setup.sh)")

MAX = 64 * 1024 * 1024


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def der_to_pem(der):
    b = base64.encodebytes(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + b + "-----END CERTIFICATE-----\n"


def main():
    provider = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="ct-recv-limit.") as tmp:
        key, crt = os.path.join(tmp, "client.key"), os.path.join(tmp, "client.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
        client_cert = open(crt, "rb").read()
        env = dict(os.environ, TF_PLUGIN_MAGIC_COOKIE="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
                   PLUGIN_PROTOCOL_VERSIONS="6", PLUGIN_CLIENT_CERT=client_cert.decode(), TMPDIR=tmp)
        p = subprocess.Popen([provider], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = p.stdout.readline().decode().strip()
            parts = line.split("|")
            if len(parts) < 6 or parts[2] != "unix":
                fail(f"unexpected handshake line {line!r}")
            server_der = base64.b64decode(parts[5] + "=" * (-len(parts[5]) % 4))
            creds = grpc.ssl_channel_credentials(root_certificates=der_to_pem(server_der).encode(),
                                                 private_key=open(key, "rb").read(),
                                                 certificate_chain=client_cert)
            opts = [("grpc.ssl_target_name_override", "localhost"),
                    ("grpc.max_send_message_length", MAX + 4096)]
            ch = grpc.secure_channel("unix:" + parts[3], creds, options=opts)
            call = ch.unary_unary("/tfplugin6.Provider/GetProviderSchema")
            call(b"", timeout=30)  # empty GetProviderSchema.Request: must answer
            try:
                call(b"\x00" * (MAX + 1), timeout=60)
                fail("an oversize request was answered")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    fail(f"oversize request: expected RESOURCE_EXHAUSTED, got {e.code()}: {e.details()}")
                if "request too large" in (e.details() or ""):
                    fail("oversize request reached the provider's handler (limit not at the transport)")
                if "larger than max" not in (e.details() or ""):
                    fail(f"oversize request refused without gRPC's size reason: {e.details()}")
            call(b"", timeout=30)  # still serving
            ch.close()
            print("test-provider-receive-limit: OK (oversize refused by the transport, provider still serving)")
        finally:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


main()
