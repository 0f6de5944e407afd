#!/bin/bash
# test-attest-init: `constellation-attest init` (lib/nodeclient) against the real bootstrapper on the
# host (label node, no VM): a private swtpm, a LUKS2 state disk file made by cryptsetup (token "not
# initialized", first-boot keyfile), metadata with a $2b$ bcrypt hash of the init secret (python3
# crypt), measurements = PCRs 0-7 of that swtpm (tpm2_pcrread).
#   1. usage (exit 2): a missing option, a short master secret; a missing file (exit 3)
#   2. measurements of another TPM (PCR 0 changed): refused by our aTLS validation, PCR 0 named,
#      exit 1, and the disk file is unchanged
#   3. a wrong init secret: refused by the node (wrong-init-secret), exit 1, disk unchanged
#   4. the Init: exit 0, stdout = the cluster ID = python3's HKDF, kubeconfig 0600 with the
#      admin client key, the node's log on stderr; keyslot opens with HKDF(master, salt, key-<uuid>)
#   5. the bootstrapper exits 0 after the Init; a second Init gets no answer (exit 4)
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
T0=$(date +%s)
NAME=test-attest-init
. "$src/test/node-guest/lib.sh"
bs="$bin/node/bootstrapper/constellation-bootstrapper"
for t in swtpm tpm2_pcrread cryptsetup python3; do command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh)"; done
[ -x "$attest" ] && [ -x "$bs" ] || fail "build constellation-attest and constellation-bootstrapper first"

work=$(mktemp -d /tmp/ct-attest-init.XXXXXX)
swtpm_pid="" bs_pid=""
cleanup() {
	[ -z "$bs_pid" ] || kill -9 "$bs_pid" 2>/dev/null || true
	[ -z "$swtpm_pid" ] || kill -9 "$swtpm_pid" 2>/dev/null || true
	[ -z "$bs_pid" ] || wait "$bs_pid" 2>/dev/null || true
	[ -z "$swtpm_pid" ] || wait "$swtpm_pid" 2>/dev/null || true
	if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# swtpm on a free pair of ports
for attempt in $(seq 20); do
	# the swtpm TCTI finds the control channel at port + 1
	port=$(python3 -c 'import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass
')
	ctl=$((port + 1))
	mkdir -p "$work/tpm"
	swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$ctl,bindaddr=127.0.0.1" \
		--tpmstate "dir=$work/tpm" --flags not-need-init,startup-clear > "$work/swtpm.log" 2>&1 &
	swtpm_pid=$!
	for _ in $(seq 100); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
		kill -0 "$swtpm_pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$swtpm_pid" 2>/dev/null && break
	wait "$swtpm_pid" 2>/dev/null || true
	swtpm_pid=""
done
[ -n "$swtpm_pid" ] || fail "swtpm did not start: $(cat "$work/swtpm.log")"
tcti="swtpm:host=127.0.0.1,port=$port"
tpm2_pcrread -T "$tcti" sha256:0,1,2,3,4,5,6,7 > "$work/pcrs" 2>&1 || fail "tpm2_pcrread: $(cat "$work/pcrs")"
python3 - "$work/pcrs" "$work/measurements.json" "$work/other-measurements.json" <<'PY'
import json, re, sys
m = {}
for line in open(sys.argv[1]):
    g = re.match(r"\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})", line)
    if g:
        m[g.group(1)] = {"expected": g.group(2).lower(), "warnOnly": False}
assert len(m) == 8, m
json.dump({"measurements": m}, open(sys.argv[2], "w"))
v = m["0"]["expected"]
m["0"]["expected"] = ("1" if v[0] == "0" else "0") + v[1:]
json.dump({"measurements": m}, open(sys.argv[3], "w"))
PY

S="$work/secrets"
node_secrets "$S"
python3 - "$S/metadata.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["vpc_ip"] = "127.0.0.1"; d["join_endpoints"] = ["127.0.0.1:30090"]
json.dump(d, open(sys.argv[1], "w"))
PY
disk="$work/state.img" keyfile="$work/state.key"
head -c 32 /dev/urandom > "$keyfile"; chmod 0400 "$keyfile"
truncate -s 32M "$disk"
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$keyfile" "$disk" >/dev/null 2>&1 \
	|| fail "cryptsetup luksFormat on $disk failed"
echo '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":false}' | cryptsetup token import --token-id 0 "$disk" \
	|| fail "cryptsetup token import failed"
mkdir -p "$work/run-state" "$work/etc-kubernetes"
bport=$(free_port)
"$bs" --listen "127.0.0.1:$bport" --tpm "$tcti" --metadata "$S/metadata.json" --state-disk "$disk" \
	--state-keyfile "$keyfile" --node-state "$work/run-state/constellation/node_state.json" \
	--pki-dir "$work/etc-kubernetes/pki" --kubernetes-dir "$work/etc-kubernetes" --component-roots "$work/run-state" \
	--config-dir "$work/var-config" --start-units "" > "$work/bootstrapper.log" 2>&1 &
bs_pid=$!
for _ in $(seq 300); do
	grep -q 'READY\|grpc=\|listening' "$work/bootstrapper.log" 2>/dev/null && \
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$bport" 2>/dev/null && break
	kill -0 "$bs_pid" 2>/dev/null || fail "the bootstrapper exited: $(cat "$work/bootstrapper.log")"
	sleep 0.1
done
python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$bport" 2>/dev/null \
	|| fail "the bootstrapper does not listen on 127.0.0.1:$bport: $(tail -n 5 "$work/bootstrapper.log")"

init() { # EXPECTED-EXIT MEASUREMENTS MASTER INIT-SECRET [ARGS...]
	local want=$1 m=$2 master=$3 secret=$4 rc=0
	shift 4
	"$attest" init --endpoint "127.0.0.1:$bport" --measurements "$m" --master-secret "$master" --salt "$S/salt.hex" \
		--measurement-salt "$S/msalt.hex" --init-secret "$secret" --timeout 120 "$@" > "$work/out" 2> "$work/err" || rc=$?
	[ "$rc" = "$want" ] || fail "init $*: exit $rc, expected $want: $(cat "$work/err")"
}
disk_sum() { sha256sum < "$disk"; }
before=$(disk_sum)

# 1. usage and files
rc=0; "$attest" init --endpoint "127.0.0.1:$bport" > /dev/null 2>"$work/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'are required' "$work/err" || fail "missing options: exit $rc: $(cat "$work/err")"
echo 0011 > "$work/short.hex"
init 2 "$work/measurements.json" "$work/short.hex" "$S/init-secret"
grep -q 'master secret: 2 bytes' "$work/err" || fail "short master secret: $(cat "$work/err")"
init 3 "$work/measurements.json" "$work/missing.hex" "$S/init-secret"
grep -q 'missing.hex' "$work/err" || fail "missing file not named: $(cat "$work/err")"
say "usage: missing options and a 2-byte master secret exit 2, a missing file exits 3 naming it"

# 2. another TPM's measurements
init 1 "$work/other-measurements.json" "$S/master.hex" "$S/init-secret"
grep -q 'not accepted, nothing was sent' "$work/err" && grep -q 'at index 0' "$work/err" \
	|| fail "other measurements: $(cat "$work/err")"
[ "$(disk_sum)" = "$before" ] || fail "the disk changed after a refused attestation"
say "another TPM's measurements: $(grep -m1 'at index 0' "$work/err" | cut -c1-150)"

# 3. a wrong init secret
echo "wrong" > "$work/wrong-secret"
init 1 "$work/measurements.json" "$S/master.hex" "$work/wrong-secret"
grep -q 'PERMISSION_DENIED.*wrong-init-secret' "$work/err" || fail "wrong init secret: $(cat "$work/err")"
[ "$(disk_sum)" = "$before" ] || fail "the disk changed after a refused init secret"
say "wrong init secret: $(grep -m1 'wrong-init-secret' "$work/err" | cut -c1-150)"

# 4. the Init
init 0 "$work/measurements.json" "$S/master.hex" "$S/init-secret" --kubeconfig-out "$work/kubeconfig"
cid=$(cat "$work/out")
ms=$(hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" key-measurementSecret)
want=$(hkdf "$ms" "$(cat "$S/msalt.hex")" key-clusterID)
[ "$cid" = "$want" ] || fail "cluster ID $cid, python3 HKDF gives $want"
[ "$(stat -c %a "$work/kubeconfig")" = 600 ] && grep -q 'client-key-data:' "$work/kubeconfig" \
	|| fail "kubeconfig: mode $(stat -c %a "$work/kubeconfig") or no client key"
grep -q -- '---- node log' "$work/err" && grep -q 'not installed' "$work/err" || fail "the node's log is not on stderr: $(cat "$work/err")"
uuid=$(cryptsetup luksUUID "$disk")
hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" "key-$uuid" | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' > "$S/dek"
cryptsetup open --test-passphrase --key-file "$S/dek" "$disk" || fail "keyslot does not open with HKDF(master, salt, key-$uuid)"
say "Init: cluster ID = python3 HKDF, kubeconfig 0600, node log on stderr, keyslot = HKDF(master, salt, key-$uuid)"

# 5. the bootstrapper is done; nothing answers a second Init
for _ in $(seq 300); do kill -0 "$bs_pid" 2>/dev/null || break; sleep 0.1; done
rc=0; wait "$bs_pid" || rc=$?
bs_pid=""
[ "$rc" = 0 ] || fail "the bootstrapper exited $rc after the Init: $(tail -n 5 "$work/bootstrapper.log")"
init 4 "$work/measurements.json" "$S/master.hex" "$S/init-secret" --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["ok"] is False else 1)' "$work/out" \
	|| fail "--json: not a refusal object: $(cat "$work/out")"
say "second Init: the bootstrapper exited 0, no answer (exit 4)"
say "PASS ($(($(date +%s) - T0))s)"
