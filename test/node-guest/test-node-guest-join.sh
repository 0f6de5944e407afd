#!/bin/bash
# test-node-guest-join.sh: a control plane and a worker from the node image, booted by
# `constellation-qemu up` (lib/qemuinfra: own swtpm, state disk and 127.x address per node, the
# worker reaches the control plane's join service through a slirp guestfwd relay; loopback only).
#   1. both boot with empty state disks; the control plane waits for init, the worker retries the
#      join service (not up yet);
#   2. `constellation-attest init` against the control plane (aTLS, the image's measurements):
#      cluster ID = python3's HKDF chain;
#   3. the worker joins by itself: `constellation-attest verify` against the WORKER's
#      verification service passes with the control plane's cluster ID (its PCR 15 was extended
#      with it after the join service handed over the keys) and fails for another ID;
#   4. on the host, the worker's state disk file is LUKS2 + hmac(sha256) with token initialized,
#      and its keyslot opens with HKDF(master, salt, "key-<worker disk uuid>"), the key the join
#      ticket carried (cryptsetup --test-passphrase), not with another key; the marker the worker
#      wrote onto its state disk after the join is not in the file, nor are etcd's keys in the
#      control plane's;
#   5. the worker is powered off and `constellation-qemu up` restarts it (same TPM state and disk):
#      its disk-mapper gets the key back from the join service (IssueRejoinTicket) without any
#      operator, verify passes again and the marker is still on its disk;
#   6. `constellation-qemu down` leaves no process of the cluster.
# Environment: CT_SOURCE_DIR, CT_BINARY_DIR (ctest); CT_NODE_IMAGE (default
# $CT_BINARY_DIR/node-guest-image); CT_KEEP=1 keeps the work directory.
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
here="$src/test/node-guest"
T0=$(date +%s)
NAME="node-guest join"
. "$here/lib.sh"
qemu_cli="$bin/cli/qemu/constellation-qemu"

[ "$(id -u)" -eq 0 ] || fail "needs root (QEMU, cryptsetup on files)"
for t in qemu-system-x86_64 swtpm cryptsetup python3 jq; do
	command -v "$t" >/dev/null || fail "'$t' is not installed (run scripts/setup.sh)"
done
[ -x "$attest" ] && [ -x "$qemu_cli" ] || fail "$attest or $qemu_cli is not built"
img=${CT_NODE_IMAGE:-$bin/node-guest-image}
[ -s "$img/img/qemu/disk.raw" ] && [ -s "$img/measurements.json" ] \
	|| fail "no node image in $img (the fixture test node-image-build makes it: ctest -R node-image-build)"
MEAS="$img/measurements.json"
# short base path: QEMU's unix sockets must fit 108 bytes
work=$(mktemp -d /tmp/ctgj.XXXXXX)
state="$work/st.json"
cleanup() {
	"$qemu_cli" down --state "$state" > /dev/null 2>&1 || true
	if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
S="$work/secrets"
mkdir -p "$S"
hexrand 32 > "$S/master.hex"
hexrand 32 > "$S/salt.hex"
hexrand 32 > "$S/msalt.hex"

node_field() { jq -r --arg n "$1" ".nodes[] | select(.name == \$n) | .$2" "$state"; }
console_tail() { tail -n 8 "$(node_field "$1" dir)/console.log" 2>/dev/null | tr -d '\r' | cut -c1-200; }

say "up: 1 control plane + 1 worker from $img/img/qemu/disk.raw, 320 MiB state disks"
"$qemu_cli" up --state "$state" --image "$img/img/qemu/disk.raw" --control-planes 1 --workers 1 \
	--disk-size 320M --init-secret-file "$S/init-secret" --mem 2048 --vcpus 1 > "$work/up.json" 2> "$work/up.err" \
	|| fail "constellation-qemu up: $(cat "$work/up.err")"
cp_name=$(jq -r '.nodes[] | select(.role == "control-plane") | .name' "$state")
w_name=$(jq -r '.nodes[] | select(.role == "worker") | .name' "$state")
cp_addr=$(node_field "$cp_name" host_address)
w_addr=$(node_field "$w_name" host_address)
cp_dir=$(node_field "$cp_name" dir)
w_dir=$(node_field "$w_name" dir)
say "up: $cp_name on $cp_addr, $w_name on $w_addr"

# wait_report NODE REGEX SECONDS: a line on the node's report channel, while its QEMU lives
wait_report() {
	local f until=$(($(date +%s) + $3))
	f="$(node_field "$1" dir)/report.log"
	until grep -Eq -- "$2" "$f" 2>/dev/null; do
		"$qemu_cli" status --state "$state" > "$work/status.json" 2>/dev/null || true
		[ "$(jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .alive' "$work/status.json")" = true ] \
			|| fail "$1 died while waiting for '$2': $(jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .reason' "$work/status.json"); console: $(console_tail "$1")"
		[ "$(date +%s)" -lt "$until" ] || fail "$1: no '$2' on its report channel within $3 s; console: $(console_tail "$1")"
		sleep 3
	done
}

wait_report "$cp_name" '^CT-READY bootstrapper$' 1800
say "$cp_name waits for init after $(($(date +%s) - T0)) s"

"$attest" init --endpoint "$cp_addr:9000" --measurements "$MEAS" --master-secret "$S/master.hex" \
	--salt "$S/salt.hex" --measurement-salt "$S/msalt.hex" --init-secret "$S/init-secret" --timeout 900 \
	> "$work/init.out" 2> "$work/init.err" || fail "Init of $cp_name: $(tail -n 20 "$work/init.err")"
cid=$(tr -d '\n' < "$work/init.out")
ms=$(hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" key-measurementSecret)
[ "$cid" = "$(hkdf "$ms" "$(cat "$S/msalt.hex")" key-clusterID)" ] || fail "cluster ID $cid is not python3's HKDF chain"
say "Init: cluster ID $cid"
wait_report "$cp_name" '^CT-READY verification-service$' 600
rc=0
"$attest" verify --endpoint "$cp_addr:30081" --cluster-id "$cid" --measurements "$MEAS" --timeout 120 \
	> "$work/verify-cp.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify of $cp_name with the cluster ID: exit $rc: $(cat "$work/verify-cp.out")"
say "$cp_name attests PCR 15 of cluster $cid"

# verify_worker WHEN SECONDS: the worker's attestation carries PCR 15 = f(cluster ID); polled,
# because the worker joins when its retry next reaches the join service
verify_worker() {
	local until=$(($(date +%s) + $2)) rc
	wait_report "$w_name" '^CT-READY verification-service$' "$2"
	while :; do
		rc=0
		"$attest" verify --endpoint "$w_addr:30081" --cluster-id "$cid" --measurements "$MEAS" --timeout 120 \
			> "$work/verify.out" 2>&1 || rc=$?
		[ "$rc" = 0 ] && break
		[ "$(date +%s)" -lt "$until" ] || fail "$1: verify of $w_name with the cluster ID: exit $rc: $(cat "$work/verify.out"); console: $(console_tail "$w_name")"
		sleep 10
	done
	rc=0
	"$attest" verify --endpoint "$w_addr:30081" --cluster-id "$(hexrand 32)" --measurements "$MEAS" --timeout 120 \
		> "$work/verify-other.out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'PCR 15' "$work/verify-other.out" \
		|| fail "$1: verify of $w_name with another cluster ID: exit $rc, expected 1 naming PCR 15: $(cat "$work/verify-other.out")"
	say "$1: $w_name attests PCR 15 of cluster $cid (and not of another) after $(($(date +%s) - T0)) s"
}
verify_worker "join" 1800
# PCR 15 is extended before the disk is re-keyed (Constellation's order): the join is complete once
# node_state.json is there, which the test image's marker unit follows (its report line comes after
# the marker is synced onto the state disk)
wait_report "$w_name" '^CT-MARKER written [0-9a-f]{64}$' 900
marker=$(sed -n 's/^CT-MARKER written \([0-9a-f]\{64\}\)$/\1/p' "$w_dir/report.log" | head -n 1)
say "$w_name finished its join (node_state.json, marker $marker on its state disk) after $(($(date +%s) - T0)) s"

# the worker's disk on the host: the join ticket's key opens it, the marker is not in clear
cryptsetup luksDump "$w_dir/state.raw" > "$work/luksdump" 2>&1 || fail "worker disk: luksDump: $(head -n 3 "$work/luksdump")"
grep -Eq 'integrity:[[:space:]]*hmac\(sha256\)' "$work/luksdump" || fail "worker disk: no hmac(sha256) integrity"
cryptsetup token export --token-id 0 "$w_dir/state.raw" > "$work/token" 2>&1 || fail "worker disk: no token 0: $(cat "$work/token")"
python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); sys.exit(0 if t["type"]=="constellation-state-disk" and t["diskIsInitialized"] is True else 1)' "$work/token" \
	|| fail "worker disk: token 0 does not say initialized: $(cat "$work/token")"
! grep -a -q -F "CT-TEST-MARKER-$marker" "$w_dir/state.raw" || fail "worker disk: the marker is IN CLEAR in the state disk file"
# the shared store's data (etcd on the control plane's state disk) is not in clear either: its keys'
# prefix is in every record etcd writes
! grep -a -q -F "/constellation/joinservice/" "$cp_dir/state.raw" \
	|| fail "control plane disk: etcd's keys (/constellation/joinservice/) are IN CLEAR in the state disk file"
uuid=$(cryptsetup luksUUID "$w_dir/state.raw")
tokey() { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))'; }
hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" "key-$uuid" | tokey > "$S/dek"
cryptsetup open --test-passphrase --key-file "$S/dek" "$w_dir/state.raw" 2> "$work/open.err" \
	|| fail "worker disk: keyslot does not open with HKDF(master, salt, key-$uuid): $(cat "$work/open.err")"
hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" "key-other" | tokey > "$S/other"
! cryptsetup open --test-passphrase --key-file "$S/other" "$w_dir/state.raw" 2>/dev/null || fail "worker disk: opens with another key"
say "host: $w_name's disk is LUKS2 + hmac(sha256), initialized, opens with HKDF(master, salt, key-$uuid), no marker in clear; no etcd key in clear on $cp_name's disk"

# power off the worker; up restarts it with the same TPM state and disk: rejoin without an operator
w_pid=$(node_field "$w_name" qemu.pid)
[ -n "$w_pid" ] && [ "$w_pid" != null ] || fail "no QEMU pid of $w_name in the state"
kill -9 "$w_pid"
for _ in $(seq 1 100); do kill -0 "$w_pid" 2>/dev/null || break; sleep 0.1; done
: > "$w_dir/report.log"
"$qemu_cli" up --state "$state" > "$work/up2.json" 2> "$work/up2.err" || fail "constellation-qemu up (restart): $(cat "$work/up2.err")"
[ "$(node_field "$w_name" qemu.pid)" != "$w_pid" ] || fail "up did not restart $w_name"
say "$w_name powered off and restarted by up (same TPM and disk)"
verify_worker "rejoin" 1800
wait_report "$w_name" "^CT-MARKER present $marker\$" 900
say "rejoin: $w_name's state disk still holds the marker written after its join"
# and the node stays up: a rejoined node's bootstrapper has nothing to do and must end without a
# unit failure (FailureAction=reboot rebooted it in a loop once: no READY=1 before its exit)
boots=$(grep -ac 'Linux version' "$w_dir/console.log")
sleep 60
[ "$(grep -ac 'Linux version' "$w_dir/console.log")" = "$boots" ] \
	|| fail "rejoin: $w_name rebooted by itself after its rejoin; console: $(console_tail "$w_name")"
! tr -d '\r' < "$w_dir/console.log" | grep -aq "constellation-bootstrapper.service: Failed with result" \
	|| fail "rejoin: $w_name's bootstrapper unit failed: $(tr -d '\r' < "$w_dir/console.log" | grep -a 'constellation-bootstrapper.service: Failed' | head -n 2)"
say "rejoin: $w_name stays up (no reboot within 60 s, its bootstrapper unit did not fail)"

"$qemu_cli" down --state "$state" > /dev/null 2> "$work/down.err" || fail "down: $(cat "$work/down.err")"
say "PASS (total $(($(date +%s) - T0)) s)"
