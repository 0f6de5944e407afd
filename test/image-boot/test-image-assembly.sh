#!/bin/bash
# test-image-assembly: the image assembly scripts (image/build) on a synthetic node, no VM, no
# mkosi. The stub is the host's systemd-stub (systemd-boot-efi); the "kernel" is a copy of the
# stub (any PE will do for the layout and the measurement).
# Checks: UKI section layout; GPT types and the verity UUID convention; ESP holds the UKI as
# /EFI/BOOT/BOOTX64.EFI; the root partition verifies against the root hash and a flipped byte
# does not; two assemblies are byte-identical; constellation-image measure predicts the same
# from the disk as from the UKI, PCR 9 equals an independent computation and PCR 11 equals
# systemd-measure; every rejected input names its reason; the console lockdown
# (image/build/lockdown-tree.sh: no getty, emergency, rescue or debug shell) and the guest's
# report-channel writer (whole lines from concurrent writers); the boot harness's option checks.
set -euo pipefail

src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:-$src/build}
build="$src/image/build"
measure="$bin/image/tool/constellation-image"
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
sdmeasure=/usr/lib/systemd/systemd-measure
fail() { echo "test-image-assembly: FAIL: $*" >&2; exit 1; }
ok() { echo "test-image-assembly: ok: $*" >&2; }

for t in mksquashfs veritysetup sfdisk mcopy mkfs.fat objcopy objdump python3; do
	command -v "$t" >/dev/null || fail "'$t' is not installed (run scripts/setup.sh)"
done
[ -r "$stub" ] || fail "$stub missing (install systemd-boot-efi)"
[ -x "$sdmeasure" ] || fail "$sdmeasure missing (systemd >= 252)"
[ -x "$measure" ] || fail "$measure not built (build target constellation-image)"

work=$(mktemp -d "${TMPDIR:-/tmp}/ct-image-asm.XXXXXX")
trap 'rm -rf "$work"' EXIT
CT_T0=$(date +%s); export CT_T0

# expect_fail WHAT PATTERN CMD...: CMD must fail and say PATTERN
expect_fail() {
	local what=$1 pat=$2; shift 2
	if "$@" >"$work/out" 2>&1; then fail "$what: accepted"; fi
	grep -q -- "$pat" "$work/out" || fail "$what: rejected without '$pat': $(tail -n 2 "$work/out")"
	ok "$what rejected: $pat"
}

# synthetic node
mkdir -p "$work/tree/etc" "$work/tree/usr/bin"
printf 'ID=debian\nVERSION_ID="12"\n' > "$work/tree/etc/os-release"
for i in $(seq 1 200); do printf 'file %d\n' "$i" > "$work/tree/usr/bin/f$i"; done
cp "$stub" "$work/vmlinuz"
python3 -c 'import hashlib,sys; sys.stdout.buffer.write(b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(4000)))' > "$work/initrd"
cp "$work/tree/etc/os-release" "$work/os-release"
printf 'console=ttyS0 roothash=%s ro constel.csp=qemu constel.attestation-variant=qemu-vtpm\0' x > "$work/cmdline.tmp"

assemble() { # OUTDIR
	mkdir -p "$1"
	"$build/make-rootfs.sh" "$work/tree" "$1" 0 test-seed 2>/dev/null
	printf 'console=ttyS0 roothash=%s ro constel.csp=qemu constel.attestation-variant=qemu-vtpm\0' "$(cat "$1/roothash")" > "$1/cmdline"
	"$build/make-uki.sh" --stub "$stub" --linux "$work/vmlinuz" --initrd "$work/initrd" --osrel "$work/os-release" \
		--cmdline-file "$1/cmdline" --out "$1/uki.efi" 2>/dev/null
	"$build/make-disk.sh" --uki "$1/uki.efi" --root "$1/root.squashfs" --verity "$1/root.verity" \
		--roothash "$(cat "$1/roothash")" --seed test-seed --out "$1/disk.raw" 2>/dev/null
}
assemble "$work/a"
assemble "$work/b"
for f in roothash root.squashfs root.verity uki.efi disk.raw; do
	cmp -s "$work/a/$f" "$work/b/$f" || fail "reproducibility: $f differs between two assemblies"
done
ok "two assemblies byte-identical (disk sha256 $(sha256sum "$work/a/disk.raw" | cut -c1-16)…)"
a="$work/a"
rh=$(cat "$a/roothash")

# UKI layout: the four sections after the stub's, in order, 4 KiB aligned, not overlapping
objdump -h -w "$a/uki.efi" | awk '$1 ~ /^[0-9]+$/ { print $2, $3, $4 }' > "$work/sections"
names=$(awk '{ print $1 }' "$work/sections" | grep -E '^\.(osrel|cmdline|initrd|linux)$' | tr '\n' ' ')
[ "$names" = ".osrel .cmdline .initrd .linux " ] || fail "UKI sections are '$names'"
prev_end=0
while read -r name size vma; do
	s=$((16#$vma)); e=$((s + 16#$size))
	[ "$s" -ge "$prev_end" ] || fail "UKI section $name at $vma overlaps the previous one"
	case "$name" in .osrel|.cmdline|.initrd|.linux) [ $((s % 4096)) -eq 0 ] || fail "UKI section $name at $vma not 4 KiB aligned" ;; esac
	prev_end=$e
done < "$work/sections"
objcopy -O binary --only-section=.cmdline "$a/uki.efi" "$work/cmdline.out"
cmp -s "$work/cmdline.out" "$a/cmdline" || fail "UKI .cmdline differs from the command line given"
ok "UKI sections .osrel .cmdline .initrd .linux, aligned, command line intact"

# GPT: types, names, verity UUID convention
sfdisk -d "$a/disk.raw" > "$work/gpt"
u1=$(echo "${rh:0:32}" | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/' | tr a-f A-F)
u2=$(echo "${rh:32:32}" | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/' | tr a-f A-F)
grep -q "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B.*name=\"esp\"" "$work/gpt" || fail "no ESP partition: $(cat "$work/gpt")"
grep -q "type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$u1, name=\"root\"" "$work/gpt" || fail "root partition type/UUID wrong (want $u1): $(cat "$work/gpt")"
grep -q "type=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5, uuid=$u2, name=\"root-verity\"" "$work/gpt" || fail "verity partition type/UUID wrong (want $u2)"
ok "GPT: esp, root (uuid = root hash[0:16]), root-verity (uuid = root hash[16:32])"

part() { # NAME -> "start size" in sectors
	sed -n "s/.*start= *\([0-9]*\), size= *\([0-9]*\),.*name=\"$1\".*/\1 \2/p" "$work/gpt"
}
read -r es esz < <(part esp)
dd if="$a/disk.raw" of="$work/esp.img" bs=512 skip="$es" count="$esz" status=none
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/esp.img" ::/EFI/BOOT/BOOTX64.EFI "$work/bootx64.efi" || fail "ESP has no /EFI/BOOT/BOOTX64.EFI"
cmp -s "$work/bootx64.efi" "$a/uki.efi" || fail "ESP's BOOTX64.EFI is not the UKI"
ok "ESP: /EFI/BOOT/BOOTX64.EFI is the UKI"

read -r rs rsz < <(part root)
read -r vs vsz < <(part root-verity)
dd if="$a/disk.raw" of="$work/root.part" bs=512 skip="$rs" count="$rsz" status=none
dd if="$a/disk.raw" of="$work/verity.part" bs=512 skip="$vs" count="$vsz" status=none
veritysetup verify "$work/root.part" "$work/verity.part" "$rh" >/dev/null 2>&1 || fail "root partition does not verify against its root hash"
printf '\xff' | dd of="$work/root.part" bs=1 seek=100 conv=notrunc status=none
expect_fail "root partition with a flipped byte" "Verification of .* failed" \
	veritysetup verify "$work/root.part" "$work/verity.part" "$rh"

# measurement prediction
"$measure" measure --measurements-only "$a/disk.raw" > "$work/m-disk.json" || fail "constellation-image measure on the disk failed"
"$measure" measure --measurements-only "$a/uki.efi" > "$work/m-uki.json" || fail "constellation-image measure on the UKI failed"
cmp -s "$work/m-disk.json" "$work/m-uki.json" || fail "prediction from the disk differs from the prediction from its UKI"
pcr9=$(python3 - "$a/cmdline" "$work/initrd" <<'EOF'
import hashlib, sys
# kernel EFI stub: LoadOptions as UTF-16LE (with NUL), then the initrd (LOAD_FILE2), PCR 9
cmd = open(sys.argv[1], "rb").read().decode().encode("utf-16-le")
p = bytes(32)
for d in (hashlib.sha256(cmd).digest(), hashlib.sha256(open(sys.argv[2], "rb").read()).digest()):
    p = hashlib.sha256(p + d).digest()
print(p.hex())
EOF
)
get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["measurements"][sys.argv[2]]["expected"].lower())' "$1" "$2"; }
[ "$(get "$work/m-disk.json" 9)" = "$pcr9" ] || fail "PCR 9: measure says $(get "$work/m-disk.json" 9), independent computation $pcr9"
pcr11=$("$sdmeasure" calculate --linux="$work/vmlinuz" --osrel="$work/os-release" --cmdline="$a/cmdline" \
	--initrd="$work/initrd" --bank=sha256 --phase= | sed -n 's/^11:sha256=//p')
[ "$(get "$work/m-disk.json" 11)" = "$pcr11" ] || fail "PCR 11: measure says $(get "$work/m-disk.json" 11), systemd-measure $pcr11"
ok "prediction: disk = UKI; PCR 9 = independent computation; PCR 11 = systemd-measure ($pcr11)"

# console lockdown: a tree with systemd's default gettys is refused, naming what is open; after
# lockdown-tree.sh every getty, emergency, rescue and debug-shell unit is masked and accepted
lt="$work/ltree"
mkdir -p "$lt/etc/systemd/system/getty.target.wants" "$lt/etc/systemd/system/multi-user.target.wants"
ln -s /lib/systemd/system/getty@.service "$lt/etc/systemd/system/getty.target.wants/getty@tty1.service"
expect_fail "tree with systemd's default getty" "serial-getty@.service not masked" "$build/lockdown-tree.sh" --check "$lt"
expect_fail "tree with systemd's default getty" "emergency.target not masked" "$build/lockdown-tree.sh" --check "$lt"
expect_fail "tree with systemd's default getty" "systemd-getty-generator not masked" "$build/lockdown-tree.sh" --check "$lt"
"$build/lockdown-tree.sh" "$lt" 2>/dev/null || fail "lockdown-tree.sh failed on $lt"
"$build/lockdown-tree.sh" --check "$lt" || fail "lockdown-tree.sh --check refuses the tree it locked down"
for u in getty@.service serial-getty@.service console-getty.service autovt@.service getty.target emergency.service \
	emergency.target rescue.service rescue.target debug-shell.service; do
	[ "$(readlink "$lt/etc/systemd/system/$u")" = /dev/null ] || fail "lockdown: $u not masked"
done
[ ! -e "$lt/etc/systemd/system/getty.target.wants/getty@tty1.service" ] || fail "lockdown: getty@tty1 still enabled"
mkdir -p "$lt/etc/systemd/system/getty.target.wants"
ln -s /lib/systemd/system/serial-getty@.service "$lt/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
expect_fail "locked-down tree with a getty enabled again" "serial-getty@ttyS0.service enabled" "$build/lockdown-tree.sh" --check "$lt"
rm "$lt/etc/systemd/system/emergency.target"
expect_fail "tree with emergency.target unmasked" "emergency.target not masked" "$build/lockdown-tree.sh" --check "$lt"
# the image recipe applies it (mkosi.finalize), the initrd keeps rd.shell=0 rd.emergency=reboot
# and masks rescue and the debug shell, the command line carries both options
grep -q 'lockdown-tree.sh" "$root"' "$src/mkosi/mkosi.finalize" || fail "mkosi.finalize does not run lockdown-tree.sh"
grep -q 'install_items+=.*/etc/systemd/system/rescue.service.*/etc/systemd/system/debug-shell.service' \
	"$src/mkosi/mkosi.skeleton/etc/dracut.conf.d/50-constellation.conf" || fail "initrd does not mask rescue and debug-shell"
grep -q 'rd.shell=0 rd.emergency=reboot' "$build/build-image.sh" || fail "command line lacks rd.shell=0 rd.emergency=reboot"
ok "console lockdown: default gettys refused with the reason; gettys, emergency, rescue, debug shell masked"

# node programs: install-node.sh copies an installed tree (usr/, etc/), enables units with
# [Install], and refuses what would not work or not belong in the image, with the reason
nt="$work/ntree" nd="$work/node"
mkdir -p "$nt/usr/lib/x86_64-linux-gnu" "$nt/etc" "$nd/usr/bin" "$nd/usr/lib/systemd/system" "$nd/etc/dracut.conf.d"
cp /bin/true "$nd/usr/bin/ct-hello"
printf '[Unit]\nDescription=test\n[Service]\nExecStart=/usr/bin/ct-hello\n[Install]\nWantedBy=multi-user.target\n' \
	> "$nd/usr/lib/systemd/system/ct-hello.service"
printf '[Service]\nExecStart=/usr/bin/ct-hello\n' > "$nd/usr/lib/systemd/system/ct-hello-helper.service"
echo 'install_items+=" /usr/bin/ct-hello "' > "$nd/etc/dracut.conf.d/60-ct-hello.conf"
expect_fail "node program whose library is not in the image" "libc.so.6 (needed by /usr/bin/ct-hello); add their Debian packages to mkosi/mkosi.conf" \
	"$build/install-node.sh" "$nt" "$nd"
: > "$nt/usr/lib/x86_64-linux-gnu/libc.so.6"
"$build/install-node.sh" "$nt" "$nd" 2>/dev/null || fail "install-node.sh refused a good node directory"
cmp -s "$nt/usr/bin/ct-hello" /bin/true && [ -x "$nt/usr/bin/ct-hello" ] || fail "node: program not installed with its mode"
[ -f "$nt/etc/dracut.conf.d/60-ct-hello.conf" ] || fail "node: dracut snippet not installed"
[ "$(readlink "$nt/etc/systemd/system/multi-user.target.wants/ct-hello.service")" = /usr/lib/systemd/system/ct-hello.service ] \
	|| fail "node: ct-hello.service not enabled: $(ls -R "$nt/etc/systemd/system" 2>&1 | head -n 5)"
! ls "$nt"/etc/systemd/system/*.wants/ct-hello-helper.service >/dev/null 2>&1 || fail "node: a unit without [Install] was enabled"
mkdir -p "$work/nvar/var/lib" "$work/nsuid/usr/bin" "$work/nlink/usr/bin"
expect_fail "node directory with /var" "only usr/ and etc/ can be installed" "$build/install-node.sh" "$nt" "$work/nvar"
cp /bin/true "$work/nsuid/usr/bin/x"; chmod 4755 "$work/nsuid/usr/bin/x"
expect_fail "setuid node program" "is setuid/setgid" "$build/install-node.sh" "$nt" "$work/nsuid"
ln -s ../../../../etc/passwd "$work/nlink/usr/bin/pw"
expect_fail "node symlink leaving its directory" "outside /usr and /etc" "$build/install-node.sh" "$nt" "$work/nlink"
ok "node programs: installed and enabled; missing library, /var, setuid and escaping symlink refused"

# the guest's report writer: 4 concurrent writers, 300 lines each, every line arrives whole
rw="$src/mkosi/mkosi.skeleton/usr/libexec/constellation/report"
sh -n "$rw" && sh -n "$src/mkosi/mkosi.skeleton/usr/libexec/constellation/pcr-report" || fail "report scripts do not parse"
: > "$work/port"
for w in 1 2 3 4; do
	( for i in $(seq 300); do printf 'CT-TEST %s %s %s\n' "$w" "$i" "$(printf '%0200d' 0)"; done \
		| CT_REPORT_PORT="$work/port" CT_REPORT_LOCK="$work/lock" sh "$rw" ) &
done
wait
[ "$(grep -c "^CT-TEST [1-4] [0-9]* $(printf '%0200d' 0)\$" "$work/port")" = 1200 ] || fail "report writer: lines split or lost"
for w in 1 2 3 4; do
	[ "$(grep "^CT-TEST $w " "$work/port" | cut -d' ' -f3 | tr '\n' ' ')" = "$(seq 300 | tr '\n' ' ')" ] || fail "report writer $w: lines out of order"
done
CT_REPORT_PORT="$work/none" CT_REPORT_LOCK="$work/lock" sh "$rw" CT-X 2>"$work/out" || fail "report writer fails without a channel"
grep -q "no report channel" "$work/out" || fail "report writer without a channel says nothing"
ok "report writer: 4x300 concurrent lines whole and in order; no channel: dropped with a note, exit 0"

# rejected inputs name their reason
expect_fail "bad root hash" "--roothash must be 64 hex digits" \
	"$build/make-disk.sh" --uki "$a/uki.efi" --root "$a/root.squashfs" --verity "$a/root.verity" --roothash xyz --seed s --out "$work/x.raw"
expect_fail "UKI without initrd" "--initrd is required" \
	"$build/make-uki.sh" --stub "$stub" --linux "$work/vmlinuz" --osrel "$work/os-release" --cmdline-file "$a/cmdline" --out "$work/x.efi"
: > "$work/empty"
expect_fail "UKI with an empty initrd" "initrd '$work/empty' is missing or empty" \
	"$build/make-uki.sh" --stub "$stub" --linux "$work/vmlinuz" --initrd "$work/empty" --osrel "$work/os-release" --cmdline-file "$a/cmdline" --out "$work/x.efi"
expect_fail "unknown variant" "unknown variant 'nope'" "$build/build-image.sh" --variant nope --out "$work/x"
expect_fail "initrd from a directory without a kernel" "no /usr/lib/modules" "$build/build-initrd.sh" "$work/tree" "$work/x.img"
expect_fail "boot without a disk" "disk image '$work/none.raw' missing" bash "$src/test/image-boot/boot-image.sh" --disk "$work/none.raw" --out "$work/x"
boot=(bash "$src/test/image-boot/boot-image.sh" --disk "$a/disk.raw" --out "$work/x")
expect_fail "boot with a port forward on a non-loopback address" "loopback only" "${boot[@]}" --hostfwd 0.0.0.0:2222:22
expect_fail "boot with a malformed port forward" "bad --hostfwd" "${boot[@]}" --hostfwd 2222
expect_fail "boot with a missing extra disk" "extra disk '$work/nodisk' missing" "${boot[@]}" --extra-disk "$work/nodisk"
expect_fail "boot with the report port's name as an extra port" "bad --port name 'ct.report'" "${boot[@]}" --port ct.report
expect_fail "boot with an unknown expectation" "bad --expect 'login'" "${boot[@]}" --expect login
expect_fail "boot option without a value" "--timeout needs a value" "${boot[@]}" --timeout
for v in qemu azure gcp aws; do
	# shellcheck source=/dev/null
	( . "$build/variants/$v.conf"; [ -n "$CT_CSP" ] && [ -n "$CT_ATTESTATION_VARIANT" ] && [ -n "$CT_PCR_ENFORCE" ] ) \
		|| fail "variant $v incomplete"
done
ok "variants qemu azure gcp aws define csp, attestation variant and PCR rules"
echo "test-image-assembly: PASS" >&2
