#!/bin/bash
# test-node-guest.sh CASE: one confidential node, proven in a booted guest (labels vm;node-guest).
# The node image comes from the fixture node-image (build-node-image.sh: the real node programs and
# units, plus test-only readiness lines and a marker unit); its measurements are the ones
# `constellation-image measure` predicts for that image (never hard-coded). The node gets its
# metadata by QEMU fw_cfg (opt/constellation/metadata: control plane, bcrypt hash of a fresh init
# secret), an empty raw state disk (a file) and a small raw control disk; every port forward is on
# 127.0.0.1.
#
# CASE main (two boots with one TPM):
#   boot 1  "waiting for init" (the bootstrapper's READY line on the report channel);
#           Init with measurements of another image -> refused by our aTLS validation, PCR named;
#           Init with a wrong init secret -> refused by the node (wrong-init-secret);
#           Init (constellation-attest init) -> cluster ID = HKDF(HKDF(master, salt,
#           key-measurementSecret), measurement salt, key-clusterID) by python3; kubeconfig 0600;
#           a second Init -> refused; the marker unit writes a random marker under /run/state and
#           raw onto the control disk; `constellation-attest verify` passes for the cluster ID and
#           fails for another; then the VM is killed (power off)
#   host    the state disk file is LUKS2, aes-xts-plain64 + hmac(sha256) integrity, 4096-byte
#           sectors, token constellation-state-disk initialized; its keyslot opens with
#           HKDF(master, salt, "key-<uuid>") (cryptsetup --test-passphrase on the file), not with
#           another key; the marker is on the control disk and NOT in the state disk file
#   boot 2  the node waits for recovery (initrd, :9999); recover with a wrong master secret is
#           refused (wrong-key) and the disk file is unchanged; with the right one it unlocks; the
#           marker is still there; verify passes again (PCR 15 set again); Init is not served
# CASE cmdline: an image whose kernel command line differs in one byte (UKI rebuilt from the
#   fixture's parts): Init with the fixture's measurements is refused by the host's aTLS
#   validation naming PCR 9 and PCR 11; the node's state disk stays blank of secrets (not inited)
# CASE faults (three boots): the VM killed a few seconds after the disk-mapper started formatting
#   the empty disk; the next boot converges to "waiting for init" (the disk formatted anew: its
#   token never said initialized); the VM killed one second into the Init; the next boot converges
#   either to a fresh node (Init succeeds) or to an initialized one waiting for recovery (recover
#   with the master secret unlocks it).
# Environment: CT_SOURCE_DIR, CT_BINARY_DIR (ctest); CT_NODE_IMAGE (default
# $CT_BINARY_DIR/node-guest-image); CT_KEEP=1 keeps the work directory.
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
here="$src/test/node-guest"
T0=${T0:-$(date +%s)}
case_name=${1:?usage: test-node-guest.sh main|cmdline}
NAME="node-guest $case_name"
. "$here/lib.sh"

# --- steps run by boot-image.sh --run while the VM is up (same script, environment exported) ---
init_node() { # EXTRA-ARGS...: constellation-attest init against the node; output in $work/init.*
	"$attest" init --endpoint "127.0.0.1:$P_INIT" --measurements "$MEAS" --master-secret "$S/master.hex" \
		--salt "$S/salt.hex" --measurement-salt "$S/msalt.hex" --init-secret "$S/init-secret" \
		--timeout 900 "$@" > "$work/init.out" 2> "$work/init.err"
}

step_boot1() {
	echo $(($(date +%s) - BOOT_START)) > "$work/ready-seconds"
	say "boot 1: waiting for init after $(cat "$work/ready-seconds")s (CT-READY bootstrapper)"
	# measurements of another image (PCR 4 changed): our validator refuses, nothing is sent
	python3 - "$MEAS" "$work/other-measurements.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
v = m["measurements"]["4"]["expected"]
m["measurements"]["4"]["expected"] = ("0" if v[0] != "0" else "1") + v[1:]
json.dump(m, open(sys.argv[2], "w"))
PY
	local rc=0
	MEAS="$work/other-measurements.json" init_node || rc=$?
	[ "$rc" = 1 ] && grep -q 'not accepted' "$work/init.err" && grep -q 'at index 4' "$work/init.err" \
		|| fail "Init with another image's measurements: exit $rc, expected 1 naming index 4: $(cat "$work/init.err")"
	say "Init with another image's measurements refused by aTLS validation: $(grep -m1 'at index 4' "$work/init.err" | cut -c1-160)"
	# a wrong init secret: the node refuses before changing anything
	cp "$S/init-secret" "$S/init-secret.good"
	echo "not-the-init-secret" > "$S/init-secret"
	rc=0; init_node || rc=$?
	cp "$S/init-secret.good" "$S/init-secret"
	[ "$rc" = 1 ] && grep -q 'wrong-init-secret' "$work/init.err" \
		|| fail "Init with a wrong init secret: exit $rc, expected 1 with wrong-init-secret: $(cat "$work/init.err")"
	say "Init with a wrong init secret refused: $(grep -m1 'wrong-init-secret' "$work/init.err" | cut -c1-160)"
	# the Init
	local t=$(date +%s)
	rc=0; init_node --kubeconfig-out "$work/kubeconfig" || rc=$?
	[ "$rc" = 0 ] || fail "Init: exit $rc: $(tail -n 30 "$work/init.err")"
	echo $(($(date +%s) - t)) > "$work/init-seconds"
	local cid want ms
	cid=$(tr -d '\n' < "$work/init.out")
	ms=$(hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" key-measurementSecret)
	want=$(hkdf "$ms" "$(cat "$S/msalt.hex")" key-clusterID)
	[ "$cid" = "$want" ] || fail "cluster ID: node says $cid, HKDF (python3) gives $want"
	echo "$cid" > "$work/cluster-id"
	[ "$(stat -c %a "$work/kubeconfig")" = 600 ] || fail "kubeconfig mode $(stat -c %a "$work/kubeconfig"), expected 600"
	grep -q 'server: https://127.0.0.1:6443' "$work/kubeconfig" && grep -q 'client-key-data:' "$work/kubeconfig" \
		|| fail "kubeconfig has no server https://127.0.0.1:6443 or no client key"
	say "Init: done in $(cat "$work/init-seconds")s, cluster ID $cid = python3 HKDF; kubeconfig 0600"
	# a second Init
	rc=0; init_node || rc=$?
	[ "$rc" != 0 ] || fail "a second Init was accepted"
	say "second Init refused (exit $rc): $(tail -n 1 "$work/init.err" | cut -c1-160)"
	# the marker on the state disk
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" '^CT-MARKER written [0-9a-f]{64}$' 600 "$CT_BOOT_QEMU_PID" > /dev/null \
		|| fail "the marker unit did not report CT-MARKER written within 600s"
	report_value "$CT_BOOT_REPORT" '^CT-MARKER written ' > "$work/marker"
	say "marker written in the guest: $(cut -c1-16 "$work/marker")…"
	verify_node "boot 1"
}

verify_node() { # WHEN
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" '^CT-READY verification-service$' 600 "$CT_BOOT_QEMU_PID" > /dev/null \
		|| fail "$1: the verification service did not report ready within 600s"
	local cid rc=0
	cid=$(cat "$work/cluster-id")
	"$attest" verify --endpoint "127.0.0.1:$P_VS" --cluster-id "$cid" --measurements "$MEAS" --timeout 120 \
		> "$work/verify.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || fail "$1: verify with the cluster ID: exit $rc: $(cat "$work/verify.out")"
	rc=0
	"$attest" verify --endpoint "127.0.0.1:$P_VS" --cluster-id "$(hexrand 32)" --measurements "$MEAS" --timeout 120 \
		> "$work/verify-other.out" 2>&1 || rc=$?
	[ "$rc" = 1 ] && grep -q 'PCR 15' "$work/verify-other.out" \
		|| fail "$1: verify with another cluster ID: exit $rc, expected 1 naming PCR 15: $(cat "$work/verify-other.out")"
	say "$1: verify passes for the cluster ID, fails for another ($(grep -m1 'PCR 15' "$work/verify-other.out" | cut -c1-120))"
}

recover_node() { # MASTER-FILE: exit code of recover, output in $work/recover.out
	local rc=0
	"$attest" recover --endpoint "127.0.0.1:$P_REC" --master-secret "$1" --salt "$S/salt.hex" \
		--measurements "$MEAS" --timeout 120 > "$work/recover.out" 2>&1 || rc=$?
	return "$rc"
}

step_boot2() {
	# the recovery server comes up in the initrd; until then QEMU's forward finds nothing (exit 4)
	hexrand 32 > "$S/wrong-master.hex"
	local rc=4 until=$(($(date +%s) + 1200))
	while [ "$rc" = 4 ]; do
		kill -0 "$CT_BOOT_QEMU_PID" 2>/dev/null || fail "boot 2: QEMU exited while waiting for the recovery server"
		[ "$(date +%s)" -lt "$until" ] || fail "boot 2: no recovery server on :9999 within 1200s: $(cat "$work/recover.out")"
		rc=0; recover_node "$S/wrong-master.hex" || rc=$?
		[ "$rc" != 4 ] || sleep 5
	done
	echo $(($(date +%s) - BOOT_START)) > "$work/recovery-ready-seconds"
	[ "$rc" = 1 ] && grep -q 'wrong-key' "$work/recover.out" \
		|| fail "boot 2: recover with a wrong master secret: exit $rc, expected 1 with wrong-key: $(cat "$work/recover.out")"
	say "boot 2: waiting for recovery after $(cat "$work/recovery-ready-seconds")s; wrong master secret refused: $(cut -c1-140 "$work/recover.out")"
	[ "$(sha256sum < "$work/state.raw")" = "$(cat "$work/state.sha256")" ] \
		|| fail "boot 2: the state disk file changed after the refused recovery"
	say "boot 2: the state disk file is unchanged after the refusal"
	rc=0; recover_node "$S/master.hex" || rc=$?
	[ "$rc" = 0 ] || fail "boot 2: recover with the master secret: exit $rc: $(cat "$work/recover.out")"
	say "boot 2: recovered: $(cut -c1-120 "$work/recover.out")"
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" '^CT-MARKER present [0-9a-f]{64}$' 900 "$CT_BOOT_QEMU_PID" > /dev/null \
		|| fail "boot 2: the marker unit did not report the marker as present within 900s"
	local m
	m=$(report_value "$CT_BOOT_REPORT" '^CT-MARKER present ')
	[ "$m" = "$(cat "$work/marker")" ] || fail "boot 2: marker after recovery is $m, written was $(cat "$work/marker")"
	say "boot 2: the marker written before the reboot is on the unlocked state disk"
	verify_node "boot 2"
	rc=0; init_node || rc=$?
	[ "$rc" != 0 ] || fail "boot 2: Init was accepted on a recovered node"
	say "boot 2: Init on the recovered node refused (exit $rc)"
}

step_cmdline() {
	echo $(($(date +%s) - BOOT_START)) > "$work/ready-seconds"
	local rc=0
	init_node || rc=$?
	[ "$rc" = 1 ] && grep -q 'not accepted' "$work/init.err" || fail "Init against the changed-cmdline node: exit $rc, expected 1 (not accepted): $(cat "$work/init.err")"
	# the command line is inside the UKI: its change moves PCR 4 (the UKI's Authenticode hash) as well
	# as 9 and 11, and the validator names the first PCR that differs
	grep -Eq 'at index (4|9|11) ' "$work/init.err" || fail "the refusal does not name PCR 4, 9 or 11: $(cat "$work/init.err")"
	say "Init against a node with one changed command-line byte refused by aTLS validation: $(grep -Eo 'at index (4|9|11) .*' "$work/init.err" | head -n 1 | cut -c1-200)"
}

step_kill_formatting() {
	# the disk-mapper's "formatting" line on the console, then a few seconds into format/wipe: power off
	local until=$(($(date +%s) + 1200))
	until grep -aq 'blank state disk: formatting' "$CT_BOOT_DIR/console.log"; do
		kill -0 "$CT_BOOT_QEMU_PID" 2>/dev/null || fail "faults: QEMU exited before the disk-mapper formatted"
		[ "$(date +%s)" -lt "$until" ] || fail "faults: the disk-mapper did not start formatting within 1200s"
		sleep 1
	done
	sleep "${CT_FAULT_DELAY:-8}"
	kill -9 "$CT_BOOT_QEMU_PID"
	say "faults: VM killed ${CT_FAULT_DELAY:-8}s after the disk-mapper started formatting"
}

step_kill_init() {
	say "faults: waiting for init after $(($(date +%s) - BOOT_START))s on the disk whose formatting was killed"
	init_node --kubeconfig-out "$work/kubeconfig" &
	local ipid=$!
	sleep "${CT_FAULT_INIT_DELAY:-1}"
	kill -9 "$CT_BOOT_QEMU_PID"
	wait "$ipid" || true
	say "faults: VM killed ${CT_FAULT_INIT_DELAY:-1}s into the Init"
}

step_converged() {
	# after the killed Init the node either waits for init again (the token said "not initialized":
	# the disk was formatted anew) or for recovery (the disk was initialized and keeps its key)
	local until=$(($(date +%s) + 1500)) rc
	while :; do
		kill -0 "$CT_BOOT_QEMU_PID" 2>/dev/null || fail "faults: QEMU exited (the node did not converge): $(tail -n 5 "$CT_BOOT_DIR/console.log" | tr -d '\r')"
		[ "$(date +%s)" -lt "$until" ] || fail "faults: neither waiting for init nor for recovery within 1500s"
		if grep -q '^CT-READY bootstrapper$' "$CT_BOOT_REPORT"; then
			rc=0; init_node || rc=$?
			[ "$rc" = 0 ] || fail "faults: Init after the killed Init: exit $rc: $(tail -n 5 "$work/init.err")"
			say "faults: converged to a fresh node (disk reformatted), Init succeeds"
			echo fresh > "$work/converged"
			return 0
		fi
		rc=0; recover_node "$S/master.hex" || rc=$?
		if [ "$rc" = 0 ]; then
			say "faults: converged to an initialized node waiting for recovery; recovered with the master secret"
			echo recovered > "$work/converged"
			return 0
		fi
		sleep 5
	done
}

if [ "${2:-}" = --step ]; then
	"step_$3"
	exit 0
fi

# --- the test ---
[ "$(id -u)" -eq 0 ] || fail "needs root (QEMU, cryptsetup on files)"
for t in qemu-system-x86_64 swtpm cryptsetup python3 sha256sum; do
	command -v "$t" >/dev/null || fail "'$t' is not installed (run scripts/setup.sh)"
done
[ -x "$attest" ] || fail "$attest is not built"
img=${CT_NODE_IMAGE:-$bin/node-guest-image}
[ -s "$img/img/qemu/disk.raw" ] && [ -s "$img/measurements.json" ] \
	|| fail "no node image in $img (the fixture test node-image-build makes it: ctest -R node-image-build)"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ct-node-guest.XXXXXX")
cleanup() { if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
S="$work/secrets"
node_secrets "$S"
qemu_wrapper "$work/qbin"
P_INIT=$(free_port) P_VS=$(free_port) P_REC=$(free_port)
export PATH="$work/qbin:$PATH" CT_NODE_METADATA="$S/metadata.json" src bin work S T0 P_INIT P_VS P_REC
export MEAS="$img/measurements.json"
truncate -s 320M "$work/state.raw"
truncate -s 8M "$work/ctl.raw"
fwd=(--hostfwd "$P_INIT:9000" --hostfwd "$P_VS:30081" --hostfwd "$P_REC:9999")

case "$case_name" in
main)
	say "boot 1: $img/img/qemu/disk.raw, empty 320 MiB state disk, metadata by fw_cfg"
	BOOT_START=$(date +%s) && export BOOT_START
	bash "$boot" --disk "$img/img/qemu/disk.raw" --out "$work/boot1" --expect none --timeout 1500 \
		--tpm-state "$work/tpm" --extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" "${fwd[@]}" \
		--wait-line '^CT-READY bootstrapper$' --run "bash '$here/test-node-guest.sh' main --step boot1" \
		|| fail "boot 1 failed (console: $work/boot1/console.log; CT_KEEP=1 keeps it)"
	t_boot1=$(($(date +%s) - BOOT_START))

	say "host: the state disk file"
	cryptsetup luksDump "$work/state.raw" > "$work/luksdump" 2>&1 || fail "state disk: cryptsetup luksDump: $(head -n 3 "$work/luksdump")"
	grep -Eq '^Version:[[:space:]]*2$' "$work/luksdump" || fail "state disk: not LUKS2: $(head -n 5 "$work/luksdump")"
	grep -Eq 'cipher:[[:space:]]*aes-xts-plain64' "$work/luksdump" || fail "state disk: cipher is not aes-xts-plain64"
	grep -Eq 'integrity:[[:space:]]*hmac\(sha256\)' "$work/luksdump" || fail "state disk: no hmac(sha256) integrity: $(grep -i integrity "$work/luksdump" | head -n 3)"
	grep -Eq 'sector:[[:space:]]*4096' "$work/luksdump" || fail "state disk: sector size is not 4096"
	cryptsetup token export --token-id 0 "$work/state.raw" > "$work/token" 2>/dev/null || fail "state disk: no token 0"
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); sys.exit(0 if t["type"]=="constellation-state-disk" and t["diskIsInitialized"] is True else 1)' "$work/token" \
		|| fail "state disk: token 0 is not an initialized constellation-state-disk: $(cat "$work/token")"
	uuid=$(cryptsetup luksUUID "$work/state.raw")
	hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" "key-$uuid" | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' > "$S/dek"
	cryptsetup open --test-passphrase --key-file "$S/dek" "$work/state.raw" 2> "$work/open.err" \
		|| fail "state disk: keyslot does not open with HKDF(master, salt, key-$uuid): $(cat "$work/open.err")"
	hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" "key-other" | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' > "$S/other"
	! cryptsetup open --test-passphrase --key-file "$S/other" "$work/state.raw" 2>/dev/null || fail "state disk: opens with another key"
	say "host: LUKS2 aes-xts-plain64 + hmac(sha256), 4096-byte sectors, token initialized; keyslot opens with HKDF(master, salt, key-$uuid), not with another key"
	m=$(cat "$work/marker")
	n=$(grep -a -c -F "$m" "$work/ctl.raw" || true)
	[ "${n:-0}" -gt 0 ] || fail "marker: not found on the control disk (the search or the guest's write failed)"
	! grep -a -q -F "$m" "$work/state.raw" || fail "marker: found IN CLEAR in the state disk file"
	say "host: the marker is on the raw control disk ($n lines) and not in the state disk file"
	sha256sum < "$work/state.raw" > "$work/state.sha256"

	say "boot 2: same TPM and state disk"
	BOOT_START=$(date +%s) && export BOOT_START
	bash "$boot" --disk "$img/img/qemu/disk.raw" --out "$work/boot2" --expect none --timeout 1800 \
		--tpm-state "$work/tpm" --extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" "${fwd[@]}" \
		--run "bash '$here/test-node-guest.sh' main --step boot2" \
		|| fail "boot 2 failed (console: $work/boot2/console.log; CT_KEEP=1 keeps it)"
	t_boot2=$(($(date +%s) - BOOT_START))
	say "PASS (waiting for init after $(cat "$work/ready-seconds")s, Init $(cat "$work/init-seconds")s, boot 1 ${t_boot1}s; waiting for recovery after $(cat "$work/recovery-ready-seconds")s, boot 2 ${t_boot2}s; total $(($(date +%s) - T0))s)"
	;;
cmdline)
	mod="$work/mod"
	changed_cmdline_image "$img" "$mod"
	say "boot: the image with 'loglevel=7' instead of 'loglevel=8' on the measured command line"
	BOOT_START=$(date +%s) && export BOOT_START
	bash "$boot" --disk "$mod/disk.raw" --out "$work/boot-mod" --expect none --timeout 1500 \
		--extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" "${fwd[@]}" \
		--wait-line '^CT-READY bootstrapper$' --run "bash '$here/test-node-guest.sh' cmdline --step cmdline" \
		|| fail "boot of the changed image failed (console: $work/boot-mod/console.log; CT_KEEP=1 keeps it)"
	cryptsetup token export --token-id 0 "$work/state.raw" 2>/dev/null | grep -q '"diskIsInitialized":false' \
		|| fail "the refused node's state disk token is not 'not initialized'"
	say "PASS (waiting for init after $(cat "$work/ready-seconds")s; total $(($(date +%s) - T0))s)"
	;;
faults)
	say "faults 1: VM killed during first-boot formatting"
	BOOT_START=$(date +%s) && export BOOT_START
	bash "$boot" --disk "$img/img/qemu/disk.raw" --out "$work/boot-f1" --expect none --timeout 1500 \
		--tpm-state "$work/tpm" --extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" "${fwd[@]}" \
		--run "bash '$here/test-node-guest.sh' faults --step kill_formatting" \
		|| fail "faults 1: the boot failed before the kill (console: $work/boot-f1/console.log)"
	cryptsetup isLuks "$work/state.raw" 2>/dev/null && say "faults 1: the killed format left a LUKS header" \
		|| say "faults 1: the killed format left no LUKS header"
	say "faults 2: the next boot converges (reformats: the token never said initialized), then killed during Init"
	BOOT_START=$(date +%s) && export BOOT_START
	rc=0
	bash "$boot" --disk "$img/img/qemu/disk.raw" --out "$work/boot-f2" --expect none --timeout 1500 \
		--tpm-state "$work/tpm" --extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" "${fwd[@]}" \
		--wait-line '^CT-READY bootstrapper$' --run "bash '$here/test-node-guest.sh' faults --step kill_init" || rc=$?
	grep -q '^CT-READY bootstrapper$' "$work/boot-f2/report.log" \
		|| fail "faults 2: the node did not reach waiting for init after the killed format (exit $rc; console: $work/boot-f2/console.log)"
	say "faults 3: the next boot converges"
	BOOT_START=$(date +%s) && export BOOT_START
	bash "$boot" --disk "$img/img/qemu/disk.raw" --out "$work/boot-f3" --expect none --timeout 1800 \
		--tpm-state "$work/tpm" --extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" "${fwd[@]}" \
		--run "bash '$here/test-node-guest.sh' faults --step converged" \
		|| fail "faults 3: no convergence (console: $work/boot-f3/console.log)"
	say "PASS (converged: $(cat "$work/converged"); total $(($(date +%s) - T0))s)"
	;;
*) fail "unknown case '$case_name' (main, cmdline, faults)" ;;
esac
