#!/bin/bash
# Test harness for a real KMIP server: PyKMIP's pykmip-server (Debian python3-pykmip) on loopback,
# TLS 1.2 with client-certificate authentication, its own sqlite database in the test directory.
#
#   pykmip.sh pki DIR     test CA, server certificate (IP SAN 127.0.0.1), client certificates:
#                         client (CN constellation-kms), other (CN other-tenant, same CA),
#                         rogue-client (CN constellation-kms, issued by rogue-ca), rogue-ca.pem,
#                         no-client-eku (right CA, EKU serverAuth only)
#   pykmip.sh start DIR [PORT]  picks a free port (or PORT, to restart on the same one), starts the server in its own session, waits (bounded)
#                         until it accepts; writes DIR/port and DIR/server.pid; prints the port
#   pykmip.sh stop DIR    stops that server by its pid (and its process group), waits for it
#
# PYKMIP_OWNER_PID: if set, the server is stopped when that process is gone (a crashed test).
# Fails with a clear message when pykmip-server or Debian's python3 with the kmip module is missing.
set -euo pipefail
PY=/usr/bin/python3
cmd=${1:?usage: pykmip.sh pki|start|stop DIR}
dir=${2:?usage: pykmip.sh pki|start|stop DIR}

need() {
        if [ ! -x /usr/bin/pykmip-server ] || ! "$PY" -c 'import kmip.services.server' 2>/dev/null; then
                echo "pykmip.sh: pykmip-server is missing: install Debian's python3-pykmip (scripts/setup.sh)" >&2
                exit 2
        fi
        command -v openssl >/dev/null || { echo "pykmip.sh: openssl is missing" >&2; exit 2; }
}

issue() { # name cn eku issuer [san]
        local name=$1 cn=$2 eku=$3 issuer=$4 san=${5:-}
        openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key" 2>/dev/null
        chmod 600 "$dir/$name.key"
        local ext="$dir/$name.ext"
        {
                echo "basicConstraints=critical,CA:FALSE"
                echo "keyUsage=critical,digitalSignature,keyAgreement"
                echo "extendedKeyUsage=$eku"
                [ -n "$san" ] && echo "subjectAltName=$san"
        } >"$ext"
        openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
        openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$issuer.pem" -CAkey "$dir/$issuer.key" \
                -CAcreateserial -days 2 -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
        rm -f "$dir/$name.csr" "$ext"
}

ca() { # name cn
        openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$1.key" 2>/dev/null
        chmod 600 "$dir/$1.key"
        openssl req -x509 -new -key "$dir/$1.key" -subj "/CN=$2" -days 2 -sha256 \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -out "$dir/$1.pem" 2>/dev/null
}

case $cmd in
pki)
        need
        mkdir -p "$dir"
        ca ca "constellation-c test KMIP CA"
        ca rogue-ca "rogue CA"
        issue server "kmip.test" serverAuth ca "IP:127.0.0.1,DNS:kmip.test"
        issue client constellation-kms clientAuth ca
        issue other other-tenant clientAuth ca
        issue rogue-client constellation-kms clientAuth rogue-ca
        issue no-client-eku constellation-kms serverAuth ca
        ;;
start)
        need
        mkdir -p "$dir/policies"
        for attempt in 1 2 3; do
                if [ -n "${3:-}" ] && [ "$attempt" = 1 ]; then
                        port=$3
                else
                        port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
                fi
                cat >"$dir/server.conf" <<CONF
[server]
hostname=127.0.0.1
port=$port
certificate_path=$dir/server.pem
key_path=$dir/server.key
ca_path=$dir/ca.pem
auth_suite=TLS1.2
policy_path=$dir/policies
enable_tls_client_auth=True
logging_level=INFO
database_path=$dir/pykmip.db
CONF
                : >"$dir/server.log"
                # The server gets no descriptor of ours beyond 0-2 (a pipe held open by it would
                # keep whoever reads our output waiting).
                (
                        for fd in /proc/$BASHPID/fd/*; do
                                fd=${fd##*/}
                                [ "$fd" -gt 2 ] && eval "exec $fd>&-"
                        done
                        exec setsid "$PY" /usr/bin/pykmip-server -f "$dir/server.conf" -l "$dir/server.log"
                ) </dev/null >>"$dir/server.out" 2>&1 &
                pid=$!
                echo "$pid" >"$dir/server.pid"
                # Bounded wait: up to 20 s for "Starting connection service" (the socket listens by
                # then), as long as the process lives.
                for _ in $(seq 200); do
                        if grep -q "Starting connection service" "$dir/server.log" 2>/dev/null; then
                                # A test that dies without its teardown must not leave the server
                                # behind: with PYKMIP_OWNER_PID set, a watchdog stops it once the
                                # owner is gone.
                                if [ -n "${PYKMIP_OWNER_PID:-}" ]; then
                                        (
                                                for fd in /proc/$BASHPID/fd/*; do
                                                        fd=${fd##*/}
                                                        [ "$fd" -gt 2 ] && eval "exec $fd>&-"
                                                done
                                                while kill -0 "$PYKMIP_OWNER_PID" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
                                                        sleep 1
                                                done
                                                if kill -0 "$pid" 2>/dev/null; then
                                                        kill -INT "$pid" 2>/dev/null
                                                        sleep 5
                                                        kill -KILL -- "-$pid" 2>/dev/null
                                                fi
                                        ) </dev/null >/dev/null 2>&1 &
                                fi
                                echo "$port" >"$dir/port"
                                echo "$port"
                                exit 0
                        fi
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.1
                done
                kill -TERM -- "-$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                echo "pykmip.sh: server did not start on port $port (attempt $attempt):" >&2
                tail -5 "$dir/server.log" "$dir/server.out" >&2 || true
        done
        exit 1
        ;;
stop)
        [ -f "$dir/server.pid" ] || exit 0
        pid=$(cat "$dir/server.pid")
        # setsid made the server the leader of its own process group: the group is ours alone.
        # SIGINT stops PyKMIP's accept loop at once (SIGTERM waits for its 10 s accept timeout).
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$dir/server.pid" "$dir/port"
        ;;
*)
        echo "usage: pykmip.sh pki|start|stop DIR" >&2
        exit 2
        ;;
esac
