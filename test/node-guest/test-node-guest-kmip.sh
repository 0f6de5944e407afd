#!/bin/bash
# test-node-guest-kmip.sh: hold your own key in a booted guest (labels vm;node-guest). One node of
# the fixture's image (node-image), one TPM and one state disk file over three boots, the cluster's
# master secret wrapped under a KEK that stays inside a real KMIP server on the host: PyKMIP on
# 127.0.0.1 with client-certificate TLS (test/kmip/pykmip.sh). The guest reaches it at
# 10.0.2.100:5696 (boot-image.sh --guestfwd: QEMU's slirp runs `constellation-qemu relay` to the
# server's loopback port); the URI's server-name=kmip.test is a DNS SAN of the server certificate.
# The node has no host files: the kms://kmip URI carries the client certificate, key and CA inline
# (`constellation-attest kmip wrap-master-secret --inline --out`, 0600), with its endpoint changed
# to the guest-side address (the wrapped blob binds the salt and the KEK's identifier, not the
# endpoint).
#
#   host    the KEK by `constellation-attest kmip create-kek`; the master secret wrapped under it;
#           a second URI wrapping another master secret under the same KEK
#   boot 1  empty state disk, metadata by fw_cfg; "waiting for init"; `constellation-attest init
#           --kms-uri-file` -> the node unwraps at PyKMIP through the guestfwd; cluster ID =
#           python3's HKDF chain of the plain master secret; a second Init refused; the test
#           image's marker written onto the state disk; verify passes for the cluster ID (PCR 15);
#           power off
#   host    token initialized; keyslot opens with HKDF(master, salt, "key-<uuid>")
#   boot 2  the node waits for recovery in the initrd; `recover --kms-uri-file` with the other
#           master secret's URI -> wrong-key, disk unchanged; with the operator's URI the disk-mapper
#           unwraps at PyKMIP and unlocks; the marker of boot 1 is there; verify passes again
#   host    `constellation-attest kmip revoke` of the KEK
#   boot 3  `recover --kms-uri-file` with the same URI -> refused with kek-revoked; the state disk
#           file is byte for byte what boot 2 left (crypto-shredding)
#   host    the KEK's bytes (from PyKMIP's database) are in no file of the test but that database:
#           console and report logs, the disks, the TPM state, every program's output; the master
#           secret in no log or program output
# Environment: CT_SOURCE_DIR, CT_BINARY_DIR (ctest); CT_NODE_IMAGE (default
# $CT_BINARY_DIR/node-guest-image); CT_KEEP=1 keeps the work directory.
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
here="$src/test/node-guest"
T0=${T0:-$(date +%s)}
NAME="node-guest kmip"
. "$here/lib.sh"
GUEST_KMIP=10.0.2.100:5696

# --- steps run by boot-image.sh --run while the VM is up (same script, environment exported) ---
init_node() { # EXTRA-ARGS...: constellation-attest init with the guest's kms://kmip URI; output in $work/init.*
	"$attest" init --endpoint "127.0.0.1:$P_INIT" --measurements "$MEAS" --kms-uri-file "$S/guest.uri" \
		--measurement-salt "$S/msalt.hex" --init-secret "$S/init-secret" --timeout 900 "$@" \
		> "$work/init.out" 2> "$work/init.err"
}

verify_node() { # WHEN
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" '^CT-READY verification-service$' 600 "$CT_BOOT_QEMU_PID" > /dev/null \
		|| fail "$1: the verification service did not report ready within 600s"
	local rc=0
	"$attest" verify --endpoint "127.0.0.1:$P_VS" --cluster-id "$(cat "$work/cluster-id")" --measurements "$MEAS" \
		--timeout 120 > "$work/verify.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || fail "$1: verify with the cluster ID: exit $rc: $(cat "$work/verify.out")"
	say "$1: verify passes for the cluster ID (PCR 15 from the KMIP-derived cluster ID)"
}

# recover_until_answer URI-FILE WHEN: polls the recovery server (initrd, :9999) until it answers
# (exit 4 = nothing listens yet); returns recover's exit code, output in $work/recover.out
recover_until_answer() {
	local rc=4 until=$(($(date +%s) + 1200))
	while [ "$rc" = 4 ]; do
		kill -0 "$CT_BOOT_QEMU_PID" 2>/dev/null || fail "$2: QEMU exited while waiting for the recovery server"
		[ "$(date +%s)" -lt "$until" ] || fail "$2: no recovery server on :9999 within 1200s: $(cat "$work/recover.out")"
		rc=0
		"$attest" recover --endpoint "127.0.0.1:$P_REC" --kms-uri-file "$1" --measurements "$MEAS" --timeout 180 \
			> "$work/recover.out" 2>&1 || rc=$?
		[ "$rc" != 4 ] || sleep 5
	done
	return "$rc"
}

step_boot1() {
	say "boot 1: waiting for init after $(($(date +%s) - BOOT_START))s (CT-READY bootstrapper)"
	local t rc=0 cid want ms
	t=$(date +%s)
	# exit 4 = no answer, nothing sent (an aTLS handshake that did not finish within 60 s: the
	# guest's first TPM quote under TCG on a loaded host): Init may be tried again
	local until=$((t + 900))
	while :; do
		rc=0; init_node --kubeconfig-out "$work/kubeconfig" || rc=$?
		[ "$rc" = 4 ] && [ "$(date +%s)" -lt "$until" ] || break
		kill -0 "$CT_BOOT_QEMU_PID" 2>/dev/null || fail "boot 1: QEMU exited while Init was tried"
		say "boot 1: Init got no answer (exit 4, nothing sent): $(tail -n 1 "$work/init.err" | cut -c1-120); again"
		sleep 5
	done
	[ "$rc" = 0 ] || fail "Init with the kms://kmip URI: exit $rc: $(tail -n 30 "$work/init.err")"
	cid=$(tr -d '\n' < "$work/init.out")
	ms=$(hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" key-measurementSecret)
	want=$(hkdf "$ms" "$(cat "$S/msalt.hex")" key-clusterID)
	[ "$cid" = "$want" ] || fail "cluster ID: node says $cid, HKDF (python3) of the plain master secret gives $want"
	echo "$cid" > "$work/cluster-id"
	grep -q 'KMS kmip' "$work/init.err" || fail "the node's log does not say it used the KMIP KMS: $(tail -n 20 "$work/init.err")"
	[ "$(stat -c %a "$work/kubeconfig")" = 600 ] || fail "kubeconfig mode $(stat -c %a "$work/kubeconfig"), expected 600"
	say "Init through KMIP (guest -> $GUEST_KMIP -> PyKMIP): $(($(date +%s) - t))s, cluster ID $cid = python3 HKDF"
	rc=0; init_node || rc=$?
	[ "$rc" != 0 ] || fail "a second Init was accepted"
	say "second Init refused (exit $rc): $(tail -n 1 "$work/init.err" | cut -c1-160)"
	# the test image's marker unit writes a marker onto the state disk after Init and syncs the
	# file system (syncfs): only then is the power-off safe for the bootstrapper's completion marker
	# (written by rename, not yet durable without a directory fsync: a power-off a second after
	# Init lost it and boot 2's bootstrapper exited 3, "a bootstrap was interrupted")
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" '^CT-MARKER written [0-9a-f]{64}$' 600 "$CT_BOOT_QEMU_PID" > /dev/null \
		|| fail "the marker unit did not report CT-MARKER written within 600s"
	report_value "$CT_BOOT_REPORT" '^CT-MARKER written ' > "$work/marker"
	verify_node "boot 1"
}

step_boot2() {
	local rc=0
	recover_until_answer "$S/other.uri" "boot 2" || rc=$?
	say "boot 2: waiting for recovery after $(($(date +%s) - BOOT_START))s"
	[ "$rc" = 1 ] && grep -q 'wrong-key' "$work/recover.out" \
		|| fail "boot 2: recover with another master secret's URI: exit $rc, expected 1 with wrong-key: $(cat "$work/recover.out")"
	say "boot 2: another master secret under the same KEK (unwrapped at PyKMIP) refused: $(cut -c1-140 "$work/recover.out")"
	[ "$(sha256sum < "$work/state.raw")" = "$(cat "$work/state.sha256")" ] \
		|| fail "boot 2: the state disk file changed after the refused recovery"
	rc=0; recover_until_answer "$S/guest.uri" "boot 2" || rc=$?
	[ "$rc" = 0 ] && grep -q 'recovered' "$work/recover.out" \
		|| fail "boot 2: recover --kms-uri-file: exit $rc: $(cat "$work/recover.out")"
	say "boot 2: recovered through KMIP: $(cut -c1-140 "$work/recover.out")"
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" '^CT-MARKER present [0-9a-f]{64}$' 900 "$CT_BOOT_QEMU_PID" > /dev/null \
		|| fail "boot 2: the marker unit did not report the marker as present within 900s"
	[ "$(report_value "$CT_BOOT_REPORT" '^CT-MARKER present ')" = "$(cat "$work/marker")" ] \
		|| fail "boot 2: the marker on the unlocked state disk is not the one written in boot 1"
	say "boot 2: the marker written in boot 1 is on the state disk unlocked through KMIP"
	verify_node "boot 2"
}

step_boot3() {
	local rc=0
	recover_until_answer "$S/guest.uri" "boot 3" || rc=$?
	[ "$rc" = 1 ] && grep -q 'kek-revoked' "$work/recover.out" \
		|| fail "boot 3: recover after the revocation: exit $rc, expected 1 with kek-revoked: $(cat "$work/recover.out")"
	say "boot 3: recovery refused after $(($(date +%s) - BOOT_START))s: $(grep -o 'PERMISSION_DENIED.*' "$work/recover.out" | cut -c1-160)"
	# still waiting in the initrd: the next attempt is refused the same way (nothing was unlocked)
	rc=0; recover_until_answer "$S/guest.uri" "boot 3" || rc=$?
	[ "$rc" = 1 ] && grep -q 'kek-revoked' "$work/recover.out" \
		|| fail "boot 3: a second recovery attempt: exit $rc, expected 1 with kek-revoked: $(cat "$work/recover.out")"
}

if [ "${1:-}" = --step ]; then
	"step_$2"
	exit 0
fi

# --- the test ---
[ "$(id -u)" -eq 0 ] || fail "needs root (QEMU, cryptsetup on files)"
for t in qemu-system-x86_64 swtpm cryptsetup python3 sha256sum openssl; do
	command -v "$t" >/dev/null || fail "'$t' is not installed (run scripts/setup.sh)"
done
[ -x "$attest" ] || fail "$attest is not built"
[ -x "$bin/cli/qemu/constellation-qemu" ] || fail "$bin/cli/qemu/constellation-qemu (the guestfwd relay) is not built"
img=${CT_NODE_IMAGE:-$bin/node-guest-image}
[ -s "$img/img/qemu/disk.raw" ] && [ -s "$img/measurements.json" ] \
	|| fail "no node image in $img (the fixture test node-image-build makes it: ctest -R node-image-build)"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ct-node-guest-kmip.XXXXXX")
K="$work/kmip"
cleanup() {
	bash "$src/test/kmip/pykmip.sh" stop "$K" || true
	if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
export PYKMIP_OWNER_PID=$$ # the server stops if this test dies without its cleanup
bash "$src/test/kmip/pykmip.sh" pki "$K" || fail "pykmip.sh pki failed (python3-pykmip installed? scripts/setup.sh)"
kport=$(bash "$src/test/kmip/pykmip.sh" start "$K") || fail "PyKMIP did not start: $(tail -n 5 "$K/server.log" 2>/dev/null)"
conn=(--endpoint "127.0.0.1:$kport" --client-cert "$K/client.pem" --client-key "$K/client.key" --server-ca "$K/ca.pem"
	--server-name kmip.test)

S="$work/secrets"
node_secrets "$S"
chmod 0600 "$S"/*
kek=$("$attest" kmip create-kek "${conn[@]}" --name guest-kek 2> "$work/create-kek.err") \
	|| fail "kmip create-kek: $(cat "$work/create-kek.err")"
[ -n "$kek" ] || fail "kmip create-kek printed no identifier"
"$attest" kmip wrap-master-secret "${conn[@]}" --kek "$kek" --secret-file "$S/master.hex" --salt-file "$S/salt.hex" \
	--inline --out "$S/host.uri" > "$work/wrap.out" 2>&1 || fail "kmip wrap-master-secret: $(cat "$work/wrap.out")"
hexrand 32 > "$S/other-master.hex"
"$attest" kmip wrap-master-secret "${conn[@]}" --kek "$kek" --secret-file "$S/other-master.hex" --salt-file "$S/salt.hex" \
	--inline --out "$S/other-host.uri" > "$work/wrap-other.out" 2>&1 || fail "kmip wrap-master-secret (other): $(cat "$work/wrap-other.out")"
# the node's view: endpoint = the guest-side address of the forward (same KEK, blob, salt, credentials)
for u in host:guest other-host:other; do
	python3 - "$S/${u%%:*}.uri" "$S/${u##*:}.uri" "$GUEST_KMIP" <<'PY' || fail "cannot rewrite the URI's endpoint"
import os, re, sys
u = open(sys.argv[1]).read().strip()
assert "&server-name=kmip.test" in u and "client-key=base64:" in u, "URI without server-name or inline key"
v, n = re.subn(r"([?&])endpoint=[^&]*", lambda m: m.group(1) + "endpoint=" + sys.argv[3], u)
assert n == 1, n
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, (v + "\n").encode()); os.close(fd)
PY
done
[ "$(stat -c %a "$S/guest.uri")" = 600 ] || fail "guest URI mode $(stat -c %a "$S/guest.uri")"
[ "$(wc -c < "$S/guest.uri")" -le 4097 ] || fail "the inline URI has $(wc -c < "$S/guest.uri") bytes, more than a node accepts (4096)"
say "PyKMIP on 127.0.0.1:$kport; KEK $kek; master secret wrapped; the node's URI: endpoint $GUEST_KMIP, server-name kmip.test, inline credentials ($(wc -c < "$S/guest.uri") bytes, 0600)"

P_INIT=$(free_port) P_VS=$(free_port) P_REC=$(free_port)
export src bin work S T0 P_INIT P_VS P_REC CT_BINARY_DIR="$bin"
export MEAS="$img/measurements.json"
truncate -s 320M "$work/state.raw"
truncate -s 8M "$work/ctl.raw"
vm=(--disk "$img/img/qemu/disk.raw" --expect none --tpm-state "$work/tpm" --extra-disk "$work/state.raw"
	--extra-disk "$work/ctl.raw" --hostfwd "$P_INIT:9000" --hostfwd "$P_VS:30081" --hostfwd "$P_REC:9999"
	--guestfwd "$GUEST_KMIP:127.0.0.1:$kport" --fw-cfg "opt/constellation/metadata=$S/metadata.json")
me="$here/test-node-guest-kmip.sh"

say "boot 1: empty 320 MiB state disk, metadata by fw_cfg, KMIP at $GUEST_KMIP"
BOOT_START=$(date +%s) && export BOOT_START
bash "$boot" "${vm[@]}" --out "$work/boot1" --timeout 1500 --wait-line '^CT-READY bootstrapper$' \
	--run "bash '$me' --step boot1" || fail "boot 1 failed (console: $work/boot1/console.log; CT_KEEP=1 keeps it)"
t_boot1=$(($(date +%s) - BOOT_START))

cryptsetup token export --token-id 0 "$work/state.raw" > "$work/token" 2>/dev/null || fail "state disk: no token 0"
python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); sys.exit(0 if t["type"]=="constellation-state-disk" and t["diskIsInitialized"] is True else 1)' "$work/token" \
	|| fail "state disk: token 0 is not an initialized constellation-state-disk: $(cat "$work/token")"
uuid=$(cryptsetup luksUUID "$work/state.raw")
hkdf "$(cat "$S/master.hex")" "$(cat "$S/salt.hex")" "key-$uuid" | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' > "$S/dek"
cryptsetup open --test-passphrase --key-file "$S/dek" "$work/state.raw" 2> "$work/open.err" \
	|| fail "state disk: keyslot does not open with HKDF(master, salt, key-$uuid): $(cat "$work/open.err")"
say "host: token initialized; keyslot opens with HKDF(plain master, salt, key-$uuid)"
sha256sum < "$work/state.raw" > "$work/state.sha256"

say "boot 2: same TPM and state disk; recovery through KMIP"
BOOT_START=$(date +%s) && export BOOT_START
bash "$boot" "${vm[@]}" --out "$work/boot2" --timeout 1800 --run "bash '$me' --step boot2" \
	|| fail "boot 2 failed (console: $work/boot2/console.log; CT_KEEP=1 keeps it)"
t_boot2=$(($(date +%s) - BOOT_START))

"$attest" kmip revoke "${conn[@]}" --kek "$kek" > "$work/revoke.out" 2>&1 || fail "kmip revoke: $(cat "$work/revoke.out")"
say "host: KEK $kek revoked ($(head -c 120 "$work/revoke.out"))"
sha256sum < "$work/state.raw" > "$work/state.sha256"

say "boot 3: the KEK revoked"
BOOT_START=$(date +%s) && export BOOT_START
bash "$boot" "${vm[@]}" --out "$work/boot3" --timeout 1800 --run "bash '$me' --step boot3" \
	|| fail "boot 3 failed (console: $work/boot3/console.log; CT_KEEP=1 keeps it)"
t_boot3=$(($(date +%s) - BOOT_START))
[ "$(sha256sum < "$work/state.raw")" = "$(cat "$work/state.sha256")" ] \
	|| fail "boot 3: the state disk file changed although recovery was refused"
say "host: the state disk file is byte for byte what boot 2 left (crypto-shredded: no key without the KEK)"
n=$(grep -a -c 'kek-revoked' "$work/boot3/console.log" || true)
say "boot 3: the node's console names kek-revoked on ${n:-0} lines"

# where the KEK and the master secret are not
python3 - "$work" "$K/pykmip.db" "$kek" "$S/master.hex" > "$work/search.out" 2>&1 <<'PY' || fail "secret search: $(cat "$work/search.out")"
import base64, mmap, os, sqlite3, sys
d, db, uid, mpath = sys.argv[1:5]
c = sqlite3.connect(db)
row = c.execute("select value from managed_objects where uid=?", (int(uid),)).fetchone()
c.close()
assert row is not None, "the KEK is not in PyKMIP's database"
k = bytes(row[0]); assert len(k) == 32, len(k)
kneedles = [k, k.hex().encode(), k.hex().upper().encode(), base64.b64encode(k)[:40], base64.urlsafe_b64encode(k)[:40]]
m = bytes.fromhex(open(mpath).read().strip())
mneedles = [m, m.hex().encode(), m.hex().upper().encode(), base64.urlsafe_b64encode(m)[:40], base64.b64encode(m)[:40]]
n = 0
for root, _, files in os.walk(d):
    for f in files:
        p = os.path.join(root, f)
        if f.startswith("pykmip.db") or os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) == 0:
            continue
        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            n += 1
            for x in kneedles:
                if data.find(x) >= 0:
                    print("KEK in", p); sys.exit(1)
            if f.endswith((".log", ".out", ".err")):
                for x in mneedles:
                    if data.find(x) >= 0:
                        print("master secret in", p); sys.exit(1)
print(n)
PY
say "host: the KEK's bytes are in none of $(cat "$work/search.out") files (consoles, reports, disks, TPM state, outputs); the master secret in no log"
say "PASS (boot 1 ${t_boot1}s, boot 2 ${t_boot2}s, boot 3 ${t_boot3}s; total $(($(date +%s) - T0))s)"
