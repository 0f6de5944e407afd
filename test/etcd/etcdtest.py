# SPDX-License-Identifier: Apache-2.0
"""A real etcd (Debian's /usr/bin/etcd 3.4) for the Python node tests, configured as the bootstrapper
configures it: ETCD_* variables from the bootstrapper's environment file, or the same variables built
here for a PKI made by `etcd-test-tool pki`. etcd cannot bind port 0: ports come from a per-test range
below the kernel's ephemeral ports, are held bound by this process until just before etcd starts, and
if etcd still finds one taken (it exits, its log says "address already in use") the next pair is
tried. Readiness is etcd's own READY=1 on a private NOTIFY_SOCKET (what systemd's Type=notify waits
for), with a deadline; etcd is stopped by its pid."""
import os
import signal
import socket
import subprocess
import time

ETCD = "/usr/bin/etcd"


class EtcdError(Exception):
    pass


def hold_port(port):
    """127.0.0.1:port held (None if taken): bound with SO_REUSEADDR and never listening, so no other
    socket can bind it in between, while etcd (Go sets SO_REUSEADDR on its listeners) can still bind
    and listen on it; a client dialling it meanwhile is refused at once. Close it once etcd is ready."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return s
    except OSError:
        s.close()
        return None


def hold_pair(base, span=100):
    """Two consecutive free ports in [base, base + span), held; returns (client, peer, sockets)."""
    start = base + (os.getpid() % (span // 2)) * 2
    for i in range(span // 2):
        port = base + (start - base + 2 * i) % span
        a = hold_port(port)
        b = hold_port(port + 1) if a else None
        if a and b:
            return port, port + 1, [a, b]
        for s in (a, b):
            if s:
                s.close()
    raise EtcdError("no free port pair in %d..%d" % (base, base + span - 1))


def parse_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, v = line.partition("=")
            env[k] = v
    return env


def env_for(name, data_dir, pki, client_port, peer_port):
    """The variables the bootstrapper writes (node/bootstrapper/etcd.c) for a node on 127.0.0.1."""
    url_c = "https://127.0.0.1:%d" % client_port
    url_p = "https://127.0.0.1:%d" % peer_port
    return {
        "ETCD_NAME": name, "ETCD_DATA_DIR": data_dir,
        "ETCD_LISTEN_CLIENT_URLS": url_c, "ETCD_ADVERTISE_CLIENT_URLS": url_c,
        "ETCD_LISTEN_PEER_URLS": url_p, "ETCD_INITIAL_ADVERTISE_PEER_URLS": url_p,
        "ETCD_INITIAL_CLUSTER": "%s=%s" % (name, url_p), "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": "constellation", "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_TRUSTED_CA_FILE": os.path.join(pki, "etcd/ca.crt"),
        "ETCD_CERT_FILE": os.path.join(pki, "etcd/server.crt"), "ETCD_KEY_FILE": os.path.join(pki, "etcd/server.key"),
        "ETCD_PEER_CLIENT_CERT_AUTH": "true", "ETCD_PEER_TRUSTED_CA_FILE": os.path.join(pki, "etcd/ca.crt"),
        "ETCD_PEER_CERT_FILE": os.path.join(pki, "etcd/peer.crt"), "ETCD_PEER_KEY_FILE": os.path.join(pki, "etcd/peer.key"),
        "ETCD_ENABLE_V2": "false", "ETCD_LOGGER": "zap", "ETCD_LOG_OUTPUTS": "stderr",
    }


class Etcd:
    """etcd started with `env` (ETCD_* variables); held: sockets holding its ports, closed at start."""

    def __init__(self, env, tmpdir, held=(), timeout=60):
        if not os.access(ETCD, os.X_OK):
            raise EtcdError(ETCD + " is missing: install Debian's etcd-server (scripts/setup.sh)")
        self.env = env
        tag = env["ETCD_LISTEN_CLIENT_URLS"].rsplit(":", 1)[-1]
        self.log_path = os.path.join(tmpdir, "etcd-%s.log" % tag)
        self.notify_path = os.path.join(tmpdir, "etcd-notify-%s.sock" % tag)
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        e = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": self.notify_path}
        e.update(env)
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([ETCD], env=e, stdout=self.log, stderr=self.log, cwd=tmpdir)
        self.ready = self._wait_ready(timeout)
        for s in held:
            s.close()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        self.notify.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if "READY=1" in self.notify.recv(4096).decode().split("\n"):
                    return True
            except socket.timeout:
                pass
            if self.proc.poll() is not None:
                return False
        return False

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def port_taken(self):
        return self.proc.poll() is not None and "address already in use" in self.log_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.notify.close()
        self.log.close()
        return self.proc.returncode


def start(tmpdir, pki, base, name="etcd-test"):
    """etcd on 127.0.0.1 with ports from [base, base + 100), retried if a port was taken; returns
    (Etcd, endpoint)."""
    for _ in range(10):
        cport, pport, held = hold_pair(base)
        data = os.path.join(tmpdir, "etcd-data-%d" % cport)
        e = Etcd(env_for(name, data, pki, cport, pport), tmpdir, held)
        if e.ready:
            return e, "127.0.0.1:%d" % cport
        taken = e.port_taken()
        log = e.log_text()
        e.stop()
        if not taken:
            raise EtcdError("etcd did not become ready; its log:\n" + log[-3000:])
    raise EtcdError("etcd: ports kept being taken")
