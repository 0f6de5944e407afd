#!/bin/bash
# test-image-boot: the qemu node image, built and booted for real (labels vm;image-boot).
#   1. build the image: mkosi tree + assembly (image/build/build-image.sh --variant qemu), with a
#      stand-in node service installed by --node-dir (a program and a unit that reports
#      "CT-NODE-TEST ready" on the report channel, as node services will)
#   2. reproducible: a second assembly of the same tree gives the same root hash, UKI, disk and
#      predicted measurements
#   3. boot under QEMU (TCG) + OVMF + swtpm: PCRs 4, 9, 11 read in the guest equal the prediction
#      of `constellation-image measure` exactly; root is dm-verity, verified; no login prompt on
#      the console and every getty/emergency/rescue/debug-shell unit masked and inactive; the
#      report arrives whole on its own channel; the harness's extra disk, loopback port
#      forward, kept TPM state, extra port and --run/--wait-line work
#   4. the firmware's event log replays to the booted PCRs (lib/tpm's parser; tpm2_eventlog too)
#   5. one-byte changes: cmdline (booted: PCRs 9 and 11 follow the new prediction) and initrd
#      (prediction of PCRs 9 and 11 changes)
#   6. a root partition with one flipped byte fails the boot with a dm-verity error
# Environment: CT_SOURCE_DIR, CT_BINARY_DIR (ctest). Optional: CT_IMAGE_TREE=DIR reuses an OS tree
# instead of running mkosi (development); CT_MKOSI_CACHE=DIR keeps mkosi's package cache there;
# CT_KEEP=1 keeps the work directory.
set -euo pipefail

src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:-$src/build}
here="$src/test/image-boot"
build="$src/image/build"
measure="$bin/image/tool/constellation-image"
T0=$(date +%s)
say() { printf '[test-image-boot %4ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (mkosi, systemd-nspawn)"
for t in qemu-system-x86_64 swtpm tpm2_eventlog python3 mksquashfs veritysetup sfdisk mcopy mkfs.fat objcopy systemd-nspawn ss; do
	command -v "$t" >/dev/null || fail "'$t' is not installed (run scripts/setup.sh)"
done
[ -n "${CT_IMAGE_TREE:-}" ] || command -v mkosi >/dev/null || fail "'mkosi' is not installed (run scripts/setup.sh)"
# constellation-image (image/tool) predicts the PCRs; eventlog-replay (lib/tpm) replays the log.
replayer="$bin/test/image-boot/eventlog-replay"
[ -x "$measure" ] || fail "$measure not built: build the target constellation-image first (it predicts the PCRs)"
[ -x "$replayer" ] || fail "$replayer not built: build the target eventlog-replay first (lib/tpm's event log parser)"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ct-image-boot.XXXXXX")
cleanup() {
	if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# predict DISK OUT: "INDEX HEX" lines for PCRs 4, 9, 11 from constellation-image measure.
predict() {
	"$measure" measure --measurements-only "$1" > "$2.json" || fail "constellation-image measure $1 failed"
	python3 - "$2.json" > "$2" <<'EOF' || fail "cannot read the prediction $2.json"
import json, sys
m = json.load(open(sys.argv[1]))["measurements"]
for i in (4, 9, 11):
    print(i, m[str(i)]["expected"].lower())
EOF
}
# pcr FILE INDEX
pcr() { awk -v i="$2" '$1 == i { print $2 }' "$1"; }

compare_booted() { # PREDICTION BOOTED-DIR WHAT
	local i p b
	for i in 4 9 11; do
		p=$(pcr "$1" "$i"); b=$(pcr "$2/pcrs" "$i")
		[ -n "$p" ] && [ "$p" = "$b" ] || fail "$3: PCR $i: predicted ${p:-none}, booted ${b:-none}"
	done
	say "$3: PCRs 4, 9, 11 booted = predicted ($(pcr "$1" 11 | cut -c1-16)… for PCR 11)"
}

# 1. build, with a stand-in node service (an installed tree as `cmake --install --prefix` makes)
node="$work/node"
mkdir -p "$node/usr/bin" "$node/usr/lib/systemd/system"
cp /bin/true "$node/usr/bin/ct-node-test"
cat > "$node/usr/lib/systemd/system/ct-node-test.service" <<'EOF'
[Unit]
Description=constellation-c image test: a node service that reports readiness
[Service]
Type=oneshot
ExecStart=/usr/bin/ct-node-test
ExecStartPost=/usr/libexec/constellation/report "CT-NODE-TEST ready"
[Install]
WantedBy=multi-user.target
EOF
if [ -n "${CT_IMAGE_TREE:-}" ]; then
	say "build: assembling from the existing tree $CT_IMAGE_TREE"
	"$build/build-image.sh" --variant qemu --tree "$CT_IMAGE_TREE" --node-dir "$node" --out "$work/img"
	tree="$work/img/tree-node"
else
	say "build: mkosi tree + assembly"
	"$build/build-image.sh" --variant qemu --out "$work/img" --node-dir "$node" ${CT_MKOSI_CACHE:+--mkosi-cache "$CT_MKOSI_CACHE"}
	tree="$work/img/tree"
fi
[ -x "$tree/usr/bin/ct-node-test" ] && [ -L "$tree/etc/systemd/system/multi-user.target.wants/ct-node-test.service" ] \
	|| fail "--node-dir: the node program or its enabled unit is missing from $tree"
t_build=$(($(date +%s) - T0))
say "build: done in ${t_build}s"
disk="$work/img/qemu/disk.raw"
predict "$disk" "$work/pred"

# 2. reproducible assembly
"$build/build-image.sh" --variant qemu --tree "$tree" --out "$work/img2"
for f in common/roothash common/initrd.img common/root.squashfs common/root.verity qemu/uki.efi qemu/disk.raw; do
	cmp -s "$work/img/$f" "$work/img2/$f" || fail "reproducibility: $f differs between two assemblies of the same tree"
done
predict "$work/img2/qemu/disk.raw" "$work/pred2"
cmp -s "$work/pred" "$work/pred2" || fail "reproducibility: predicted measurements differ"
say "reproducible: root hash, initrd, UKI, disk and measurements identical across two builds"

# the built tree offers no console login or shell (build-image.sh checks too)
"$build/lockdown-tree.sh" --check "$tree" || fail "the built tree offers a console login or shell"
say "lockdown: gettys, emergency, rescue and debug-shell masked in the built tree"

# 3. boot and compare with the prediction. The first boot also exercises the harness options
#    node tests use: an extra disk, a loopback port forward (with DHCP in the guest), a kept TPM
#    state directory, an extra virtio-serial port, --wait-line and --run.
say "boot: $disk"
truncate -s 64M "$work/extra.raw"
fwdport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2016
bash "$here/boot-image.sh" --disk "$disk" --out "$work/boot" --timeout 900 \
	--extra-disk "$work/extra.raw" --hostfwd "$fwdport:9000" --tpm-state "$work/tpm" --port ct.extra \
	--wait-line '^CT-BLOCK vdb ' --wait-line '^CT-NODE-TEST ready$' \
	--run 'set -e
		ss -Hltn "sport = :'"$fwdport"'" > "$CT_BOOT_DIR/listen"
		grep -q "127.0.0.1:'"$fwdport"'" "$CT_BOOT_DIR/listen" || { echo "port forward not listening on 127.0.0.1:'"$fwdport"'" >&2; exit 1; }
		"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" "^CT-REPORT-END$" 5 "$CT_BOOT_QEMU_PID" > /dev/null' \
	|| fail "boot of the built image failed"
t_boot=$(cat "$work/boot/boot-seconds")
compare_booted "$work/pred" "$work/boot" "boot"
read -r rootdev rootstatus < "$work/boot/root" || true
[ "$rootdev" = /dev/mapper/root ] && [ "$rootstatus" = verified ] \
	|| fail "root is '$rootdev' with verity status '$rootstatus', expected /dev/mapper/root verified"
say "boot: root is $rootdev, dm-verity $rootstatus"

# console policy: the infrastructure owns the serial console; the node offers it no login
tr -d '\r' < "$work/boot/console.log" > "$work/console.txt"
if grep -a -n -E 'login: *$|login:' "$work/console.txt" > "$work/login-lines"; then
	fail "console offers a login prompt: $(head -n 2 "$work/login-lines")"
fi
! grep -aq 'CT-REPORT-BEGIN' "$work/console.txt" || fail "the report went to the console, not to its own channel"
for u in serial-getty@ttyS0.service getty@tty1.service console-getty.service autovt@tty2.service getty.target \
	emergency.service emergency.target rescue.service rescue.target debug-shell.service; do
	read -r load active < <(awk -v u="$u" '$1 == u { print $2, $3 }' "$work/boot/units")
	[ "${load:-}" = masked ] && [ "${active:-}" = inactive ] \
		|| fail "console policy: $u is '${load:-not reported}' '${active:-}' in the booted node, expected masked inactive"
done
say "console: no login prompt; gettys, emergency, rescue, debug-shell masked and inactive in the booted node"

# the report channel: every line whole ("CT-" + keyword), nothing else on it
bad=$(grep -cv '^CT-[A-Z0-9-]*\( \|$\)' "$work/boot/report.log" || true)
[ "$bad" = 0 ] || fail "report channel: $bad lines are not whole report lines: $(grep -v '^CT-[A-Z0-9-]*\( \|$\)' "$work/boot/report.log" | head -n 2)"
# harness options: extra disk (serial), DHCP behind the port forward, TPM state kept, extra port
grep -q '^CT-BLOCK vdb 131072 ct-disk-1$' "$work/boot/report.log" || fail "extra disk not seen by the guest as vdb (64 MiB, serial ct-disk-1): $(grep '^CT-BLOCK' "$work/boot/report.log" | tr '\n' ' ')"
grep -q '^CT-ADDR [a-z0-9]* 10\.0\.2\.15/24$' "$work/boot/report.log" || fail "guest has no DHCP address 10.0.2.15 on the forwarded network: $(grep '^CT-ADDR' "$work/boot/report.log" | tr '\n' ' ')"
ls "$work/tpm" | grep -q 'tpm2-00.permall' || fail "--tpm-state: no swtpm state kept in $work/tpm"
[ -e "$work/boot/port-ct.extra.log" ] || fail "--port ct.extra: no $work/boot/port-ct.extra.log"
say "node service: installed by --node-dir, started, reported on the channel"
say "harness: extra disk vdb, DHCP + 127.0.0.1:$fwdport forward, TPM state kept, extra port, --wait-line, --run"

# 4. event log replay: the project's parser (lib/tpm via eventlog-replay), cross-checked with
#    tpm2-tools' replayer
replay_check() { # REPLAYED WHO
	local n=0 i v b
	[ -s "$1" ] || fail "event log replay ($2) produced no SHA-256 PCRs"
	while read -r i v; do
		b=$(pcr "$work/boot/pcrs" "$i")
		[ "$v" = "$b" ] || fail "event log replay ($2): PCR $i replays to $v, booted $b"
		n=$((n + 1))
	done < "$1"
	for i in 4 9 11; do grep -q "^$i " "$1" || fail "event log ($2) has no events for PCR $i"; done
	say "event log: $n PCRs replay to the booted values ($2)"
}
"$replayer" "$work/boot/eventlog.bin" > "$work/replayed-own" || fail "lib/tpm cannot replay the booted event log"
replay_check "$work/replayed-own" "lib/tpm eventlog_replay"
tpm2_eventlog "$work/boot/eventlog.bin" > "$work/eventlog.yaml" 2>"$work/eventlog.err" \
	|| fail "tpm2_eventlog cannot parse the booted event log: $(head -c 300 "$work/eventlog.err")"
sed -n '/^  sha256:/,/^  sha[0-9]*:/p' "$work/eventlog.yaml" \
	| sed -n 's/^ *\([0-9]*\) *: 0x\([0-9a-f]*\)$/\1 \2/p' > "$work/replayed"
replay_check "$work/replayed" "tpm2_eventlog"

# 5. one-byte changes
mod="$work/mod"
mkdir -p "$mod"
sed 's/loglevel=8/loglevel=7/' "$work/img/qemu/cmdline" > "$mod/cmdline"
[ "$(stat -c %s "$mod/cmdline")" = "$(stat -c %s "$work/img/qemu/cmdline")" ] && ! cmp -s "$mod/cmdline" "$work/img/qemu/cmdline" \
	|| fail "could not make a one-byte command-line change"
c="$work/img/common"
stub="$tree/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
"$build/make-uki.sh" --stub "$stub" --linux "$c/vmlinuz" --initrd "$c/initrd.img" --osrel "$c/os-release" \
	--cmdline-file "$mod/cmdline" --out "$mod/uki.efi"
"$build/make-disk.sh" --uki "$mod/uki.efi" --root "$c/root.squashfs" --verity "$c/root.verity" \
	--roothash "$(cat "$c/roothash")" --seed constellation-c --out "$mod/disk.raw"
predict "$mod/disk.raw" "$mod/pred"
for i in 9 11; do
	[ "$(pcr "$mod/pred" "$i")" != "$(pcr "$work/pred" "$i")" ] || fail "cmdline change: predicted PCR $i did not change"
done

cp "$c/initrd.img" "$mod/initrd.img"
printf '\x01' | dd of="$mod/initrd.img" bs=1 seek=$(( $(stat -c %s "$mod/initrd.img") - 1 )) conv=notrunc status=none
"$build/make-uki.sh" --stub "$stub" --linux "$c/vmlinuz" --initrd "$mod/initrd.img" --osrel "$c/os-release" \
	--cmdline-file "$work/img/qemu/cmdline" --out "$mod/uki-initrd.efi"
predict "$mod/uki-initrd.efi" "$mod/pred-initrd"
for i in 4 9 11; do
	[ "$(pcr "$mod/pred-initrd" "$i")" != "$(pcr "$work/pred" "$i")" ] || fail "initrd change: predicted PCR $i did not change"
done
say "one-byte changes: cmdline changes predicted PCRs 9, 11; initrd changes predicted PCRs 4, 9, 11"

bash "$here/boot-image.sh" --disk "$mod/disk.raw" --out "$work/boot-mod" --timeout 900 || fail "boot of the cmdline-changed image failed"
compare_booted "$mod/pred" "$work/boot-mod" "boot with changed cmdline"
for i in 9 11; do
	[ "$(pcr "$work/boot-mod/pcrs" "$i")" != "$(pcr "$work/boot/pcrs" "$i")" ] || fail "cmdline change: booted PCR $i did not change"
done

# 6. tampered root: flip one byte in the first data block of the root partition of a copy
tam="$work/tampered.raw"
cp --sparse=always "$disk" "$tam"
start=$(sfdisk -d "$tam" | sed -n 's/.*start= *\([0-9]*\),.*name="root".*/\1/p')
[ -n "$start" ] || fail "no root partition in $tam"
off=$((start * 512 + 100))
b=$(od -An -tu1 -j "$off" -N1 "$tam" | tr -d ' ')
printf "\\x$(printf %02x $((b ^ 0xff)))" | dd of="$tam" bs=1 seek="$off" conv=notrunc status=none
bash "$here/boot-image.sh" --disk "$tam" --out "$work/boot-tampered" --timeout 600 --expect verity-failure \
	|| fail "the tampered root was not refused by dm-verity"
say "tampered root: refused by dm-verity"

say "PASS (build ${t_build}s, first boot ${t_boot}s, total $(($(date +%s) - T0))s)"
