# SPDX-License-Identifier: Apache-2.0
"""Shared helpers of the node-service tests: start a service with its own NOTIFY_SOCKET, wait for
READY=1 (which also proves sd_notify), read the bound ports from STATUS=, stop it with SIGTERM."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

try:
    import grpc  # noqa: F401
except ImportError:
    sys.exit("FAIL: python3-grpcio is missing (scripts/setup.sh installs python3-grpcio)")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


_counter = [0]


class Service:
    def __init__(self, argv, tmpdir, env=None, timeout=60):
        self.tmp = tmpdir
        _counter[0] += 1
        self.n = _counter[0]
        self.notify_path = os.path.join(tmpdir, "notify-%d.sock" % self.n)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(timeout)
        e = dict(os.environ)
        e["NOTIFY_SOCKET"] = self.notify_path
        if env:
            e.update(env)
        self.stderr_path = os.path.join(tmpdir, "stderr-%d.log" % self.n)
        self.stderr_file = open(self.stderr_path, "w+")
        self.proc = subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL, stderr=self.stderr_file)
        self.status = None
        self.ports = {}
        self.timeout = timeout

    def wait_ready(self):
        while True:
            try:
                msg = self.notify.recv(4096).decode()
            except socket.timeout:
                self.stop()
                fail("no READY=1 on NOTIFY_SOCKET within %ds; stderr:\n%s" % (self.timeout, self.stderr()))
            if "READY=1" in msg.split("\n"):
                break
        m = re.search(r"^STATUS=(.*)$", msg, re.M)
        self.status = m.group(1) if m else ""
        for name, port in re.findall(r"(\w+)=[^ ]*:(\d+)", self.status):
            self.ports[name] = int(port)
        return self

    def stderr(self):
        if not self.stderr_file.closed:
            self.stderr_file.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("service did not exit within %ds; stderr:\n%s" % (timeout, self.stderr()))

    def stop(self, sig=signal.SIGTERM):
        running = self.proc.poll() is None
        if running:
            self.proc.send_signal(sig)
        rc = self.wait_exit()
        # STOPPING=1 after the signal (sent before exit, so it is queued by now)
        stopping = False
        self.notify.settimeout(5 if running else 0.01)
        try:
            while True:
                if "STOPPING=1" in self.notify.recv(4096).decode():
                    stopping = True
                    break
        except (socket.timeout, OSError):
            pass
        self.notify.close()
        self.stderr_file.close()
        return rc, stopping


def tmpdir():
    return tempfile.TemporaryDirectory(prefix="ct-node-test-")


def require_tool(name):
    import shutil
    if not shutil.which(name):
        fail("%s is not installed (scripts/setup.sh installs it; this test needs it)" % name)


class Swtpm:
    """A private swtpm (TPM 2.0, TCP on 127.0.0.1, state in its own directory), as test/tpm/swtpm.sh."""

    def __init__(self, tmpdir):
        import random
        import time
        require_tool("swtpm")
        self.dir = os.path.join(tmpdir, "swtpm")
        os.makedirs(self.dir, exist_ok=True)
        for _ in range(20):
            port = 20000 + 2 * random.randrange(15000)
            p = subprocess.Popen(["swtpm", "socket", "--tpm2",
                                  "--server", "type=tcp,port=%d,bindaddr=127.0.0.1" % port,
                                  "--ctrl", "type=tcp,port=%d,bindaddr=127.0.0.1" % (port + 1),
                                  "--tpmstate", "dir=" + self.dir, "--flags", "not-need-init,startup-clear"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                if p.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    time.sleep(0.05)
                    if p.poll() is None:  # ours, not a concurrent test's
                        self.proc, self.port = p, port
                        self.tcti = "swtpm:host=127.0.0.1,port=%d" % port
                        return
                    break
                except OSError:
                    time.sleep(0.025)
            if p.poll() is None:
                p.kill()
                p.wait()
        fail("swtpm did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.proc = None

    def env(self):
        e = dict(os.environ)
        e["TPM2TOOLS_TCTI"] = self.tcti
        return e
