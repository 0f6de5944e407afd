# SPDX-License-Identifier: Apache-2.0
"""The bootstrapper's join path on the host, end to end with the real binaries (loopback only):

  1. a control plane (own swtpm, LUKS2 file) is initialised with `constellation-attest init`; after
     Init its bootstrapper issued its etcd certificates, wrote etcd's configuration (etcd.env, 0600),
     which this test starts Debian's etcd with as systemd's EnvironmentFile would (--etcd-unit ""),
     and stored in etcd (mTLS) the join service's attestationConfig (PCRs 4, 8, 9, 11, 12, 13 of its
     TPM, enforced) and measurementSalt (the 32 raw bytes) and the key service's master secret and
     salt, whose files it then removed (etcd is the one source); a restarted bootstrapper changes
     nothing in etcd;
  2. two worker bootstrappers (each its own swtpm and LUKS2 file, metadata role "worker") start
     before any join service exists and retry; worker 2's PCR 15 is then extended (a node already
     bound); the real constellation-keyservice and constellation-joinservice start from etcd
     (--etcd-endpoint, as their units);
  3. worker 1 joins and exits 0: its keyslot opens with HKDF(master, salt, "key-<uuid>") (python's
     hmac; cryptsetup open --test-passphrase), token initialized, PCR 15 equals the control plane's,
     node_state.json {Role: Worker, MeasurementSalt}, the marker, the kubelet certificate verifies
     against the cluster CA (openssl) with CN=system:node:worker-1 and matches its 0600 key, the log
     says kubeadm was not installed and holds no key;
  4. worker 2 is refused by the join service (PCR 15, "at index 15"), keeps retrying, its disk file
     is byte for byte unchanged and it writes no node_state.json; SIGTERM stops it (exit 0).

The set-up (nodes, Init, etcd, services) is jointest.py's, shared with test-join-cp.py and
test-join-kmip.py."""
import base64
import hashlib
import json
import os
import stat
import sys

from jointest import (Cluster, check, disk_uuid, etcd_args, etcdtest, hkdf, init_secret_hash, read, read_pcr,
                      require_tool, reserve_port, run, tmpdir, token_initialized, wait_for, write)

BS, JS, KS, ATTEST, TOOL = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ETCD_PORT_BASE = 21300
for tool in ("cryptsetup", "tpm2_pcrread", "tpm2_pcrextend", "openssl"):
    require_tool(tool)

MASTER = os.urandom(32)
SALT = os.urandom(32)
MSALT = os.urandom(32)
INIT_SECRET = os.urandom(24).hex()
MEASUREMENT_SECRET = hkdf(MASTER, SALT, b"key-measurementSecret")
CLUSTER_ID = hkdf(MEASUREMENT_SECRET, MSALT, b"key-clusterID")
PCR15 = hashlib.sha256(b"\0" * 32 + hashlib.sha256(CLUSTER_ID).digest()).digest()

with tmpdir() as d, Cluster(d, BS, JS, KS, ATTEST, TOOL) as c:
    # --- 1. the control plane, initialised ---
    etcd_cport, etcd_pport, etcd_held = etcdtest.hold_pair(ETCD_PORT_BASE)
    c.held += etcd_held
    etcd_ep = "127.0.0.1:%d" % etcd_cport
    cp_etcd_args = etcd_args(d, "cp", "127.0.0.1", etcd_cport, etcd_pport)
    cp = c.start_node("cp", {"name": "control-plane-0", "role": "control-plane", "vpc_ip": "127.0.0.1",
                             "init_secret_hash": init_secret_hash(INIT_SECRET), "endpoint": "127.0.0.1"},
                      cp_etcd_args)
    rc, out, err = c.init(cp, master=MASTER, salt=SALT, msalt=MSALT, init_secret=INIT_SECRET)
    check(rc == 0 and out.strip() == CLUSTER_ID.hex(), "control plane: Init succeeded, cluster ID = python HKDF (%s)" % err[-300:])
    # After Init the bootstrapper writes etcd's configuration and waits for etcd: start it from
    # that file, as constellation-etcd.service's EnvironmentFile= does.
    check(c.wait_etcd_env(cp), "the bootstrapper wrote etcd.env (log tail: %s)" % cp.svc.stderr()[-600:])
    check(stat.S_IMODE(os.stat(cp.etcd_env).st_mode) == 0o600, "etcd.env mode 0600")
    env = etcdtest.parse_env_file(cp.etcd_env)
    check(env["ETCD_LISTEN_CLIENT_URLS"] == "https://" + etcd_ep and env["ETCD_CLIENT_CERT_AUTH"] == "true" and
          env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true" and env["ETCD_INITIAL_CLUSTER"] ==
          "control-plane-0=https://127.0.0.1:%d" % etcd_pport, "etcd.env: client and peer URLs with mTLS")
    etcd, _ = c.start_etcd(cp, etcd_held)
    check(etcd.ready, "etcd (Debian's) started from the bootstrapper's configuration (log: %s)"
          % etcd.log_text()[-400:])
    check(cp.svc.wait_exit(180) == 0, "control plane: the bootstrapper exits 0 after Init")
    check(stat.S_IMODE(os.stat(env["ETCD_DATA_DIR"]).st_mode) == 0o700, "etcd's data directory is 0700")

    def etcd_get(key):
        return c.etcd_get(etcd_ep, cp.pki, key)

    ac = json.loads(etcd_get("/constellation/joinservice/attestationConfig"))
    want = {str(i): {"expected": read_pcr(cp.tpm, d, i).hex(), "warnOnly": False} for i in (4, 8, 9, 11, 12, 13)}
    check(ac == {"measurements": want}, "etcd attestationConfig: exactly PCRs 4, 8, 9, 11, 12, 13 of the control plane's TPM, enforced")
    check(etcd_get("/constellation/joinservice/measurementSalt") == MSALT,
          "etcd measurementSalt: the 32 raw bytes of the Init's measurement salt")
    check(etcd_get("/constellation/keyservice/mastersecret") == MASTER and
          etcd_get("/constellation/keyservice/salt") == SALT, "etcd: the key service's master secret and salt")
    check(etcd_get("/constellation/keyservice/kms-uri") is None, "etcd: no kms-uri beside them")
    for name in ("attestationConfig", "measurementSalt", "mastersecret", "salt"):
        check(not os.path.exists(os.path.join(cp.config_dir, name)), "%s not on disk: etcd is the one source" % name)
    cp_log = cp.svc.stderr()
    check(MASTER.hex() not in cp_log and SALT.hex() not in cp_log, "control plane log: no secret")

    # A restarted bootstrapper on the bootstrapped node stores nothing over etcd's values.
    ac_before = etcd_get("/constellation/joinservice/attestationConfig")
    cp2 = c.bootstrapper("cp", cp.tpm, cp.md, cp.disk, cp.keyfile, cp_etcd_args)
    check(cp2.svc.wait_exit(120) == 0 and "already bootstrapped" in cp2.svc.stderr(),
          "control plane: a restarted bootstrapper does not serve Init, exits 0")
    check(etcd_get("/constellation/joinservice/attestationConfig") == ac_before,
          "control plane: etcd's attestationConfig unchanged by the restart")
    cp_pcr15 = read_pcr(cp.tpm, d, 15)
    check(cp_pcr15 == PCR15, "control plane: PCR 15 = SHA-256(0^32 || SHA-256(cluster ID))")

    # --- 2. two workers, waiting for a join service that is not there yet ---
    port_hold, port = reserve_port()
    c.held.append(port_hold)
    workers = [c.start_node("w%d" % n, {"name": "worker-%d" % n, "role": "worker", "vpc_ip": "127.0.0.1",
                                        "join_endpoints": ["127.0.0.1:%d" % port]}, ("--join-retry", "500"))
               for n in (1, 2)]
    for w in workers:
        wait_for(lambda: "retrying in" in w.svc.stderr(), "a worker to retry (no join service yet)")
    check(True, "workers: no join service yet, both retry with backoff")
    w1, w2 = workers
    rc, _, err = run(["tpm2_pcrextend", "15:sha256=" + "ab" * 32], env=w2.tpm.env())
    check(rc == 0 and read_pcr(w2.tpm, d, 15) != b"\0" * 32, "worker 2: PCR 15 already set (%s)" % err.strip())
    w2_before = hashlib.sha256(read(w2.disk)).digest()

    ks = c.start_keyservice(etcd_ep, cp.pki)
    js = c.start_joinservice("127.0.0.1:%d" % port, etcd_ep, cp.pki, ks,
                             ("--update-listen", "none", "--api-endpoint", "127.0.0.1:6443"))
    port_hold.close()
    check("PCR 15 = 0 enforced" in js.stderr() and "shared store (etcd" in js.stderr(),
          "join service: started from what Init stored in etcd")

    # --- 3. worker 1 joins ---
    rc = w1.svc.wait_exit(240)
    log = w1.svc.stderr()
    check(rc == 0, "worker 1: exit 0 after joining (log tail: %s)" % log[-600:])
    check("join ticket issued for disk" in js.stderr(), "join service: join ticket issued")
    uuid = disk_uuid(w1.disk)
    dek = hkdf(MASTER, SALT, ("key-" + uuid).encode())
    write(os.path.join(d, "dek"), dek)
    rc, _, err = run(["cryptsetup", "open", "--test-passphrase", "--key-file", os.path.join(d, "dek"), w1.disk])
    check(rc == 0, "worker 1: keyslot opens with HKDF(master, salt, key-%s) (%s)" % (uuid, err.strip()))
    write(os.path.join(d, "wrong"), hkdf(MASTER, SALT, b"key-other"))
    rc, _, _ = run(["cryptsetup", "open", "--test-passphrase", "--key-file", os.path.join(d, "wrong"), w1.disk])
    check(rc != 0, "worker 1: and not with another key")
    check(token_initialized(w1.disk) is True, "worker 1: token 0 initialized")
    check(read_pcr(w1.tpm, d, 15) == cp_pcr15, "worker 1: PCR 15 equals the control plane's")
    ns = json.loads(read(w1.node_state))
    check(ns == {"Role": "Worker", "MeasurementSalt": base64.b64encode(MSALT).decode()},
          "worker 1: node_state.json {Role: Worker, MeasurementSalt}")
    check(os.path.exists(w1.marker), "worker 1: bootstrap-complete marker")
    crt = os.path.join(w1.kubernetes_dir, "kubelet-client-crt.pem")
    key = os.path.join(w1.kubernetes_dir, "kubelet-client-key.pem")
    ca = os.path.join(cp.pki, "ca.crt")
    rc, out, err = run(["openssl", "verify", "-CAfile", ca, crt])
    check(rc == 0, "worker 1: kubelet certificate verifies against the cluster CA (%s)" % (out + err).strip())
    rc, subj, _ = run(["openssl", "x509", "-in", crt, "-noout", "-subject", "-nameopt", "RFC2253"])
    check("CN=system:node:worker-1" in subj and "O=system:nodes" in subj, "worker 1: subject %s" % subj.strip())
    _, pub_c, _ = run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"])
    _, pub_k, _ = run(["openssl", "pkey", "-in", key, "-pubout"])
    check(pub_c and pub_c == pub_k, "worker 1: kubelet key matches the certificate")
    check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "worker 1: kubelet key mode 0600")
    check("kubeadm join did not run" in log, "worker 1: says plainly that kubeadm was not installed")
    check(dek.hex() not in log and MEASUREMENT_SECRET.hex() not in log, "worker 1: log holds no key")

    # --- 4. worker 2 (PCR 15 set) is refused by the join service, disk untouched ---
    wait_for(lambda: "at index 15" in js.stderr(), "the join service to refuse worker 2 (PCR 15)")
    check("evidence-measurements" in js.stderr(), "join service: worker 2 refused, PCR 15 named")
    before = len(w2.svc.stderr())
    wait_for(lambda: "retrying in" in w2.svc.stderr()[before:], "worker 2 to retry after the refusal")
    check(w2.svc.proc.poll() is None, "worker 2: still waiting")
    rc, stopping = w2.svc.stop()
    check(rc == 0 and stopping, "worker 2: SIGTERM stops it (exit 0)")
    check(hashlib.sha256(read(w2.disk)).digest() == w2_before and token_initialized(w2.disk) is False,
          "worker 2: disk file unchanged, token not initialized")
    check(not os.path.exists(w2.node_state), "worker 2: no node_state.json")
    rc, _ = js.stop()
    check(rc == 0, "join service: clean stop")
    ks.stop()
print("PASS")
