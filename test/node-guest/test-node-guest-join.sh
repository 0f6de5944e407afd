#!/bin/bash
# test-node-guest-join.sh: a control plane and a worker from the node image, booted by
# `constellation-qemu up` (lib/qemuinfra: own swtpm, state disk and 127.x address per node, the
# worker reaches the control plane's join service through a slirp guestfwd relay; loopback only),
# and two joiners the join service must refuse, booted by boot-image.sh (1 vCPU each, a fresh TPM
# and an empty state disk each, metadata role worker by fw_cfg, join endpoint 10.0.2.100:30090 a
# --guestfwd to the control plane's join port).
#   1. both boot with empty state disks; the control plane waits for init, the worker retries the
#      join service (not up yet);
#   2. `constellation-attest init` against the control plane (aTLS, the image's measurements):
#      cluster ID = python3's HKDF chain; the control plane writes the test image's marker onto its
#      state disk;
#   3. the worker joins by itself: `constellation-attest verify` against the WORKER's
#      verification service passes with the control plane's cluster ID (its PCR 15 was extended
#      with it after the join service handed over the keys) and fails for another ID;
#   4. on the host, the worker's state disk file is LUKS2 + hmac(sha256) with token initialized,
#      and its keyslot opens with HKDF(master, salt, "key-<worker disk uuid>"), the key the join
#      ticket carried (cryptsetup --test-passphrase), not with another key; the marker the worker
#      wrote onto its state disk after the join is not in the file, nor are etcd's keys in the
#      control plane's;
#   5. refused joiners (booted right after Init, in parallel with 3 and 4):
#      - "cmdline": an image with one changed command-line byte (lib.sh changed_cmdline_image);
#        the join service's log (the control plane's console) refuses it naming PCR 4 (the UKI's
#        hash; 9 or 11 accepted: the validator names the first PCR that differs), twice (it keeps
#        retrying);
#      - "pcr15": the fixture's image with the fw_cfg item opt/ct-test/pcr15: the test image's
#        ct-test-pcr15 unit extends PCR 15 after the bootstrapper started (it refuses to start with
#        PCR 15 set) and reports it; its join endpoint is relayed to a forwarder on the host
#        (lib.sh gated_forward) that closes every connection until that report, so the joiner
#        reaches the join service only with PCR 15 set: refused "at index 15", twice;
#      neither writes node_state.json (no marker line), verify of either with the cluster ID fails
#      naming PCR 15 (the changed image's own measurements for the first), and both state disk
#      tokens still say diskIsInitialized false: no key reached them;
#   6. the control plane AND the worker are powered off (kill -9 of both QEMUs) and `constellation-qemu
#      up` restarts both (same TPM state and disks): the control plane waits for recovery in its
#      initrd and the worker's disk-mapper retries its rejoin (every 30 s) in the meantime; then
#      `constellation-attest recover` unlocks the control plane with the master secret: its
#      marker is on its state disk, it verifies with the cluster ID again, and its etcd, key and
#      join services serve again: the worker gets its key back from the join service
#      (IssueRejoinTicket, "the ticket's key opens the state disk") without any operator, verify
#      passes again, the marker is still on its disk, and it stays up;
#   7. `constellation-qemu down` leaves no process of the cluster.
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
measure="$bin/image/tool/constellation-image"
[ -x "$measure" ] || fail "$measure is not built"
[ -s "$boot" ] || fail "no $boot"
# short base path: QEMU's unix sockets must fit 108 bytes
work=$(mktemp -d /tmp/ctgj.XXXXXX)
state="$work/st.json"
# the refused joiners (boot-image.sh in the background) and the forwarder, by pid
bg_pids=()
cleanup() {
	touch "$work/release"
	local p
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$qemu_cli" down --state "$state" > /dev/null 2>&1 || true
	if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
S="$work/secrets"
mkdir -p "$S"
hexrand 32 > "$S/master.hex"
hexrand 32 > "$S/salt.hex"
hexrand 32 > "$S/msalt.hex"

# the refused "cmdline" joiner's image and its own measurements (made first: a failure here is cheap)
mod="$work/mod"
changed_cmdline_image "$img" "$mod"
"$measure" measure --measurements-only "$mod/disk.raw" > "$mod/measurements.json" \
	|| fail "constellation-image measure of the changed-cmdline image failed"
say "the image with 'loglevel=7' on its measured command line: $mod/disk.raw (own measurements)"

node_field() { jq -r --arg n "$1" ".nodes[] | select(.name == \$n) | .$2" "$state"; }
console_tail() { tail -n 8 "$(node_field "$1" dir)/console.log" 2>/dev/null | tr -d '\r' | cut -c1-200; }
# node_alive NODE: its QEMU and swtpm live (constellation-qemu status)
node_alive() {
	"$qemu_cli" status --state "$state" > "$work/status.json" 2>/dev/null || true
	[ "$(jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .alive' "$work/status.json")" = true ]
}
node_reason() { jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .reason' "$work/status.json"; }

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
		node_alive "$1" || fail "$1 died while waiting for '$2': $(node_reason "$1"); console: $(console_tail "$1")"
		[ "$(date +%s)" -lt "$until" ] || fail "$1: no '$2' on its report channel within $3 s; console: $(console_tail "$1")"
		sleep 3
	done
}
# console_count NODE OFFSET REGEX: lines of the node's console after byte OFFSET matching REGEX
console_count() {
	tail -c +"$(($2 + 1))" "$(node_field "$1" dir)/console.log" 2>/dev/null | tr -d '\r' | grep -Eac -- "$3" || true
}
# wait_console NODE OFFSET REGEX COUNT SECONDS: COUNT such lines, while the node's QEMU lives
wait_console() {
	local until=$(($(date +%s) + $5))
	until [ "$(console_count "$1" "$2" "$3")" -ge "$4" ]; do
		node_alive "$1" || fail "$1 died while waiting for '$3' on its console: $(node_reason "$1"); console: $(console_tail "$1")"
		[ "$(date +%s)" -lt "$until" ] || fail "$1: not $4 console lines matching '$3' within $5 s (found $(console_count "$1" "$2" "$3")); console: $(console_tail "$1")"
		sleep 3
	done
}
console_size() { stat -c %s "$(node_field "$1" dir)/console.log"; }

wait_report "$cp_name" '^CT-READY bootstrapper$' 1800
say "$cp_name waits for init after $(($(date +%s) - T0)) s"

"$attest" init --endpoint "$cp_addr:9000" --measurements "$MEAS" --master-secret "$S/master.hex" \
	--salt "$S/salt.hex" --measurement-salt "$S/msalt.hex" --init-secret "$S/init-secret" --timeout 900 \
	> "$work/init.out" 2> "$work/init.err" || fail "Init of $cp_name: $(tail -n 20 "$work/init.err")"
cid=$(tr -d '\n' < "$work/init.out")
ms=$(hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" key-measurementSecret)
[ "$cid" = "$(hkdf "$ms" "$(cat "$S/msalt.hex")" key-clusterID)" ] || fail "cluster ID $cid is not python3's HKDF chain"
say "Init: cluster ID $cid"

# --- the refused joiners boot now, while the worker joins ---
GUEST_JOIN=10.0.2.100:30090
# the join service's refusals so far (none: every node so far has the image's PCRs and PCR 15 = 0)
[ "$(console_count "$cp_name" 0 'at index [0-9]+ ')" = 0 ] \
	|| fail "$cp_name's console names a refused PCR before any refused joiner booted: $(tr -d '\r' < "$cp_dir/console.log" | grep -a -m1 'at index')"
# boot_joiner NAME DISK FWD-TARGET [boot-image.sh options...]: a worker to be refused, booted by
# boot-image.sh in the background (1 vCPU, its own fresh TPM, an empty 320 MiB state disk,
# verification service on 127.0.0.1:$work/NAME.vs), its join endpoint relayed to FWD-TARGET
# (127.x.y.z:PORT); up until $work/release exists. Logs in $work/NAME/ and $work/NAME.boot.log
boot_joiner() {
	local n=$1 disk=$2 target=$3 vs
	shift 3
	truncate -s 320M "$work/$n-state.raw"
	worker_metadata "$work/$n-metadata.json" "worker-$n" "$GUEST_JOIN"
	vs=$(free_port)
	echo "$vs" > "$work/$n.vs"
	CT_BINARY_DIR="$bin" bash "$boot" --disk "$disk" --out "$work/$n" --expect none --smp 1 --mem 2048 \
		--extra-disk "$work/$n-state.raw" --hostfwd "$vs:30081" --guestfwd "$GUEST_JOIN:$target" \
		--fw-cfg "opt/constellation/metadata=$work/$n-metadata.json" "$@" \
		--run "until [ -e '$work/release' ]; do kill -0 \"\$CT_BOOT_QEMU_PID\" 2>/dev/null || exit 1; sleep 1; done" \
		> "$work/$n.boot.log" 2>&1 &
	echo $! > "$work/$n.pid"
	bg_pids+=("$!")
}
joiner_alive() { kill -0 "$(cat "$work/$1.pid")" 2>/dev/null; }
joiner_died() { # NAME WHAT
	fail "joiner $1: boot-image.sh ended while $2: $(grep -a 'FAIL' "$work/$1.boot.log" | head -n 2); console: $(tail -n 8 "$work/$1/console.log" 2>/dev/null | tr -d '\r' | cut -c1-200)"
}
# wait_joiner_report NAME REGEX SECONDS
wait_joiner_report() {
	local until=$(($(date +%s) + $3))
	until grep -Eq -- "$2" "$work/$1/report.log" 2>/dev/null; do
		joiner_alive "$1" || joiner_died "$1" "waiting for '$2'"
		[ "$(date +%s)" -lt "$until" ] || fail "joiner $1: no '$2' on its report channel within $3 s; console: $(tail -n 8 "$work/$1/console.log" | tr -d '\r' | cut -c1-200)"
		sleep 3
	done
}
# the pcr15 joiner's join endpoint: a forwarder that opens only once PCR 15 is extended
gated_forward "$work/fwd.port" "$work/fwd.gate" "$cp_addr" 30090 > "$work/fwd.log" 2>&1 &
fwd_pid=$!
bg_pids+=("$fwd_pid")
for _ in $(seq 1 100); do [ -s "$work/fwd.port" ] && break; sleep 0.1; done
[ -s "$work/fwd.port" ] || fail "the forwarder did not listen: $(cat "$work/fwd.log")"
hexrand 32 > "$work/pcr15.hex"
cmd_t0=$(date +%s)
boot_joiner cmdline "$mod/disk.raw" "$cp_addr:30090"
boot_joiner pcr15 "$img/img/qemu/disk.raw" "127.0.0.1:$(cat "$work/fwd.port")" --fw-cfg "opt/ct-test/pcr15=$work/pcr15.hex"
say "refused joiners booting: worker-cmdline (changed command line; join endpoint relayed to $cp_addr:30090), worker-pcr15 (forwarder 127.0.0.1:$(cat "$work/fwd.port"), closed until PCR 15 is extended)"

wait_report "$cp_name" '^CT-READY verification-service$' 600
rc=0
"$attest" verify --endpoint "$cp_addr:30081" --cluster-id "$cid" --measurements "$MEAS" --timeout 120 \
	> "$work/verify-cp.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify of $cp_name with the cluster ID: exit $rc: $(cat "$work/verify-cp.out")"
say "$cp_name attests PCR 15 of cluster $cid"
wait_report "$cp_name" '^CT-MARKER written [0-9a-f]{64}$' 900
cp_marker=$(sed -n 's/^CT-MARKER written \([0-9a-f]\{64\}\)$/\1/p' "$cp_dir/report.log" | head -n 1)
say "$cp_name wrote its marker onto its state disk"
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

# --- the refused joiners ---
# wait_refusal NAME REGEX COUNT SECONDS: COUNT refusals matching REGEX in the join service's log (the
# control plane's console), while the control plane and the joiner live
wait_refusal() {
	local until=$(($(date +%s) + $4))
	until [ "$(console_count "$cp_name" 0 "$2")" -ge "$3" ]; do
		node_alive "$cp_name" || fail "$cp_name died while waiting for the join service to refuse $1: $(node_reason "$cp_name")"
		joiner_alive "$1" || joiner_died "$1" "waiting for the join service to refuse it"
		[ "$(date +%s)" -lt "$until" ] || fail "joiner $1: the join service's log has not $3 lines matching '$2' within $4 s (found $(console_count "$cp_name" 0 "$2")); its console: $(tail -n 8 "$work/$1/console.log" | tr -d '\r' | cut -c1-200)"
		sleep 3
	done
}
joiner_join_line() { tr -d '\r' < "$work/$1/console.log" | grep -a -m1 -E 'join: 10\.0\.2\.100:30090: ' | cut -c1-220; }

# pcr15: PCR 15 is extended after its bootstrapper started; only then is the forwarder opened
wait_joiner_report pcr15 '^CT-PCR15 ' 2400
grep -Eq '^CT-PCR15 extended [0-9a-f]{64}$' "$work/pcr15/report.log" \
	|| fail "joiner pcr15: $(grep -m1 '^CT-PCR15 ' "$work/pcr15/report.log")"
want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + bytes.fromhex(sys.argv[1])).hexdigest())' "$(cat "$work/pcr15.hex")")
[ "$(report_value "$work/pcr15/report.log" '^CT-PCR15 extended ')" = "$want" ] \
	|| fail "joiner pcr15: PCR 15 reads $(report_value "$work/pcr15/report.log" '^CT-PCR15 extended '), expected SHA-256(0^32 || value) = $want"
[ "$(console_count "$cp_name" 0 'at index 15 ')" = 0 ] \
	|| fail "the join service refused a joiner at PCR 15 before the forwarder opened: $(tr -d '\r' < "$cp_dir/console.log" | grep -a -m1 'at index 15 ' | cut -c1-200)"
! grep -aq 'PCR 15 is set but' "$work/pcr15/console.log" || fail "joiner pcr15: its bootstrapper found PCR 15 set at its start (the unit ran too early)"
touch "$work/fwd.gate"
say "worker-pcr15: PCR 15 extended after its bootstrapper started (read back = SHA-256(0…0 ‖ value)), $(grep -c 'closed before the gate' "$work/fwd.log" || true) join attempt(s) closed before that; forwarder open"
wait_refusal pcr15 'at index 15 ' 2 600
grep -q '^forwarded$' "$work/fwd.log" || fail "the join service refused at PCR 15, but the forwarder forwarded nothing"
say "worker-pcr15 refused by the join service twice after $(($(date +%s) - T0)) s: $(tr -d '\r' < "$cp_dir/console.log" | grep -a -m1 'at index 15 ' | sed 's/^.*\(aTLS connection from [^ ]*\) .* \(at index .*\)$/\1 … \2/' | cut -c1-200)"
say "worker-pcr15's bootstrapper: $(joiner_join_line pcr15)"

# cmdline: refused naming PCR 4 (the UKI's hash; 9 and 11 differ too), and again when it retries
left=$((2400 - ($(date +%s) - cmd_t0)))
wait_refusal cmdline 'at index (4|9|11) ' 2 $((left < 300 ? 300 : left))
say "worker-cmdline refused by the join service twice after $(($(date +%s) - T0)) s: $(tr -d '\r' < "$cp_dir/console.log" | grep -a -m1 -E 'at index (4|9|11) ' | sed 's/^.*\(aTLS connection from [^ ]*\) .* \(at index .*\)$/\1 … \2/' | cut -c1-200)"
say "worker-cmdline's bootstrapper: $(joiner_join_line cmdline)"

# neither has a key: no node_state.json (the marker unit follows it), PCR 15 is not the cluster's
for j in cmdline:"$mod/measurements.json" pcr15:"$MEAS"; do
	n=${j%%:*}
	wait_joiner_report "$n" '^CT-READY verification-service$' 600
	rc=0
	"$attest" verify --endpoint "127.0.0.1:$(cat "$work/$n.vs")" --cluster-id "$cid" --measurements "${j#*:}" --timeout 120 \
		> "$work/verify-$n.out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'PCR 15' "$work/verify-$n.out" \
		|| fail "joiner $n: verify with the cluster ID: exit $rc, expected 1 naming PCR 15: $(cat "$work/verify-$n.out")"
	! grep -q '^CT-MARKER' "$work/$n/report.log" || fail "joiner $n: has node_state.json: $(grep -m1 '^CT-MARKER' "$work/$n/report.log")"
	! tr -d '\r' < "$work/$n/console.log" | grep -aqE 'join: node locked|join: joined the cluster' \
		|| fail "joiner $n: its bootstrapper says it joined: $(tr -d '\r' < "$work/$n/console.log" | grep -aE -m1 'join: node locked|join: joined')"
	say "worker-$n does not attest PCR 15 of cluster $cid ($(grep -m1 'PCR 15' "$work/verify-$n.out" | cut -c1-120)); no node_state.json"
done
touch "$work/release"
for n in cmdline pcr15; do
	rc=0; wait "$(cat "$work/$n.pid")" || rc=$?
	[ "$rc" = 0 ] || joiner_died "$n" "the test ran (exit $rc)"
	cryptsetup token export --token-id 0 "$work/$n-state.raw" > "$work/$n.token" 2>&1 || fail "joiner $n: no token 0 on its state disk: $(cat "$work/$n.token")"
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); sys.exit(0 if t["type"]=="constellation-state-disk" and t["diskIsInitialized"] is False else 1)' "$work/$n.token" \
		|| fail "joiner $n: its state disk token is not 'not initialized': $(cat "$work/$n.token")"
done
kill "$fwd_pid" 2>/dev/null || true
say "refused joiners powered off: both state disk tokens still say diskIsInitialized false (no key reached them)"

# --- the control plane and the worker powered off: both restarted by up (same TPM state and disks) ---
cp_pid=$(node_field "$cp_name" qemu.pid)
w_pid=$(node_field "$w_name" qemu.pid)
for p in "$cp_pid" "$w_pid"; do [ -n "$p" ] && [ "$p" != null ] || fail "no QEMU pid in the state: $cp_pid $w_pid"; done
kill -9 "$cp_pid" "$w_pid"
for p in "$cp_pid" "$w_pid"; do
	for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$p" 2>/dev/null || fail "QEMU $p did not die of SIGKILL"
done
cp_off=$(console_size "$cp_name")
w_off=$(console_size "$w_name")
: > "$cp_dir/report.log"
: > "$w_dir/report.log"
t_off=$(date +%s)
"$qemu_cli" up --state "$state" > "$work/up2.json" 2> "$work/up2.err" || fail "constellation-qemu up (restart): $(cat "$work/up2.err")"
[ "$(node_field "$cp_name" qemu.pid)" != "$cp_pid" ] || fail "up did not restart $cp_name"
[ "$(node_field "$w_name" qemu.pid)" != "$w_pid" ] || fail "up did not restart $w_name"
say "$cp_name and $w_name powered off and restarted by up (same TPMs and disks)"
# the worker's disk-mapper (initrd) finds its disk initialized and asks the join service, which is
# down with the control plane: it retries every 30 s
wait_console "$w_name" "$w_off" 'rejoin: .*retrying in [0-9]+ s' 1 1800
say "$w_name waits: $(tail -c +$((w_off + 1)) "$w_dir/console.log" | tr -d '\r' | grep -a -m1 -E 'rejoin: .*retrying in' | sed 's/^.*\(rejoin: \)/\1/' | cut -c1-160)"
# the control plane waits for recovery in its initrd (exit 4: nothing listens yet)
until=$(($(date +%s) + 1800)) rc=4
while [ "$rc" = 4 ]; do
	node_alive "$cp_name" || fail "$cp_name died while waiting for its recovery server: $(node_reason "$cp_name"); console: $(console_tail "$cp_name")"
	[ "$(date +%s)" -lt "$until" ] || fail "$cp_name: no recovery server on $cp_addr:9999 within 1800 s: $(cat "$work/recover.out")"
	# the worker cannot have its key before the control plane is recovered
	! grep -q '^CT-READY verification-service$' "$w_dir/report.log" && [ "$(console_count "$w_name" "$w_off" "rejoin: the ticket's key opens")" = 0 ] \
		|| fail "$w_name unlocked its state disk while $cp_name waits for recovery"
	rc=0
	"$attest" recover --endpoint "$cp_addr:9999" --master-secret "$S/master.hex" --salt "$S/salt.hex" \
		--measurements "$MEAS" --timeout 120 > "$work/recover.out" 2>&1 || rc=$?
	[ "$rc" != 4 ] || sleep 5
done
[ "$rc" = 0 ] || fail "recover of $cp_name with the master secret: exit $rc: $(cat "$work/recover.out")"
say "$cp_name recovered $(($(date +%s) - t_off)) s after the restart: $(cut -c1-120 "$work/recover.out"); $w_name retried its rejoin $(console_count "$w_name" "$w_off" 'rejoin: .*retrying in') time(s) meanwhile"
wait_report "$cp_name" "^CT-MARKER present $cp_marker\$" 900
wait_report "$cp_name" '^CT-READY verification-service$' 900
rc=0
"$attest" verify --endpoint "$cp_addr:30081" --cluster-id "$cid" --measurements "$MEAS" --timeout 120 \
	> "$work/verify-cp.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify of $cp_name after its recovery: exit $rc: $(cat "$work/verify-cp.out")"
[ "$(console_count "$cp_name" "$cp_off" 'this node is already bootstrapped')" -ge 1 ] \
	|| fail "$cp_name's bootstrapper did not take the bootstrapped path after the recovery; console: $(console_tail "$cp_name")"
say "$cp_name: its marker is on its unlocked state disk, its bootstrapper found it bootstrapped (and restarted its services), it attests PCR 15 of cluster $cid again"
# the worker's rejoin needs the recovered control plane's etcd, key service and join service
verify_worker "rejoin" 1800
[ "$(console_count "$w_name" "$w_off" "rejoin: the ticket's key opens the state disk")" -ge 1 ] \
	|| fail "rejoin: $w_name verifies, but its console does not say the rejoin ticket's key opened its disk"
wait_report "$w_name" "^CT-MARKER present $marker\$" 900
say "rejoin: $w_name got its key from the recovered control plane's join service $(($(date +%s) - t_off)) s after the restart; its state disk still holds the marker written after its join"
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
