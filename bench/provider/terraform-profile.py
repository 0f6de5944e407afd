#!/usr/bin/env python3
"""CPU per plan by process and, inside terraform, by function (inclusive: a sample counts for
every function on its stack), from `perf script -F comm,pid,ip,sym,dso` of perf record -g runs.
Terraform's frames are named from its .gopclntab (go-pclntab.py). Usage:
  terraform-profile.py TERRAFORM-BINARY PLANS HZ < perf-script-output"""
import collections
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
gopcln = __import__('go-pclntab')

binary, plans, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
entries, names = gopcln.load(binary)
with open(binary, 'rb') as f:  # perf prints addresses relative to the first PT_LOAD mapping
    head = f.read(4096)
phoff, = struct.unpack_from('<Q', head, 0x20)
phentsize, phnum = struct.unpack_from('<HH', head, 0x36)
base = None
for i in range(phnum):
    p_type, _, p_offset, p_vaddr = struct.unpack_from('<IIQQ', head, phoff + i * phentsize)
    if p_type == 1:
        base = p_vaddr - p_offset
        break
tf_dso = os.path.realpath(binary)
ms = 1000.0 / hz / plans

# What Terraform does for a provider, by the functions that do it (inclusive ms per plan).
groups = [
    ('go-plugin client start (exec, handshake line, AutoMTLS)', r'^github\.com/hashicorp/go-plugin\.\(\*Client\)\.Start$'),
    ('  AutoMTLS client certificate (P-521 key, self-signed, self-verified)', r'^github\.com/hashicorp/go-plugin\.generateCert$'),
    ('    P-521 key generation', r'^crypto/ecdsa\.GenerateKey$'),
    ('    x509.CreateCertificate (sign, then verify the signature)', r'^crypto/x509\.CreateCertificate$'),
    ('    P-521 generator table (once per process)', r'^crypto/internal/nistec\.\(\*P521Point\)\.generatorTable$'),
    ('TLS client handshake', r'^crypto/tls\.\(\*Conn\)\.clientHandshake$'),
    ('  client certificate signature (P-521 CertificateVerify)', r'^crypto/tls\.\(\*clientHandshakeStateTLS13\)\.sendClientCertificate$'),
    ('gRPC unary calls (ClientConn.Invoke)', r'^google\.golang\.org/grpc\.\(\*ClientConn\)\.Invoke$'),
    ('  GetProviderSchema (call and conversion)', r'^github\.com/hashicorp/terraform/internal/plugin6\.\(\*GRPCProvider\)\.GetProviderSchema$'),
    ('  ValidateProviderConfig', r'^github\.com/hashicorp/terraform/internal/plugin6\.\(\*GRPCProvider\)\.ValidateProviderConfig$'),
    ('  ValidateDataResourceConfig', r'^github\.com/hashicorp/terraform/internal/plugin6\.\(\*GRPCProvider\)\.ValidateDataResourceConfig$'),
    ('  ConfigureProvider', r'^github\.com/hashicorp/terraform/internal/plugin6\.\(\*GRPCProvider\)\.ConfigureProvider$'),
    ('  ReadDataSource', r'^github\.com/hashicorp/terraform/internal/plugin6\.\(\*GRPCProvider\)\.ReadDataSource$'),
    ('cty msgpack (DynamicValue) encode + decode', r'^github\.com/zclconf/go-cty/cty/msgpack\.(Marshal|Unmarshal)$'),
    ('go-plugin Kill (Shutdown, close, wait)', r'^github\.com/hashicorp/go-plugin\.\(\*Client\)\.Kill$'),
    ('garbage collector (background mark)', r'^runtime\.gcBgMarkWorker$'),
    ('Go package initialisation', r'^runtime\.doInit1$'),
]
compiled = [(label, re.compile(rx)) for label, rx in groups]

per_comm = collections.Counter()
incl = collections.Counter()


def flush(comm, frames):
    if comm is None:
        return
    per_comm[comm] += 1
    if comm != 'terraform':
        return
    fr = {gopcln.name(entries, names, ip + base) for ip, dso in frames if os.path.realpath(dso) == tf_dso}
    for f in fr:
        incl[f] += 1


comm, frames = None, []
frame_re = re.compile(r'\s+([0-9a-f]+)\s+.*\((.*)\)\s*$')
for line in sys.stdin:
    if not line.strip():
        flush(comm, frames)
        comm, frames = None, []
    elif not line[0].isspace():
        flush(comm, frames)
        comm, frames = line.split()[0], []
    else:
        m = frame_re.match(line)
        if m:
            frames.append((int(m.group(1), 16), m.group(2)))
flush(comm, frames)

print('CPU per plan by process name (ms; perf cpu-clock samples):')
for c, n in per_comm.most_common(8):
    print(f'  {c:24s} {n * ms:7.1f}')
print('inside terraform, inclusive (ms per plan):')
for label, rx in compiled:
    n = sum(v for f, v in incl.items() if rx.search(f))
    print(f'  {n * ms:7.1f}  {label}')
