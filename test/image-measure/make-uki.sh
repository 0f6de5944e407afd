#!/bin/bash
# make-uki.sh OUTDIR [INITRD_KIB]: builds a small UKI the way ukify/mkosi do (objcopy onto
# systemd's linuxx64.efi.stub with sections placed after the stub's last section), with
# systemd-bootx64.efi standing in for the kernel (it is a real EFI PE, so PCR 4's Authenticode of
# .linux is meaningful). Writes OUTDIR/{linux,osrel,cmdline,initrd,uki.efi}.
set -euo pipefail
out=$1
initrd_kib=${2:-64}
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
kernel=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
for f in "$stub" "$kernel"; do
  [ -r "$f" ] || { echo "make-uki.sh: $f missing (install systemd-boot-efi)" >&2; exit 1; }
done
command -v objcopy >/dev/null || { echo "make-uki.sh: objcopy missing (binutils)" >&2; exit 1; }
mkdir -p "$out"
cp "$kernel" "$out/linux"
printf 'ID=constellation\nVERSION_ID=test\nIMAGE_ID=constellation\n' > "$out/osrel"
printf 'console=ttyS0 roothash=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ro quiet\0' > "$out/cmdline"
# deterministic pseudo-random initrd
head -c $((initrd_kib * 1024)) /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 > "$out/initrd"

# ukify's placement: each section at the next 4 KiB-aligned address after the previous one.
align() { echo $(( ($1 + 4095) / 4096 * 4096 )); }
last=0
while read -r size vma; do
  e=$((0x$vma + 0x$size))
  [ "$e" -gt "$last" ] && last=$e
done < <(objdump -h -w "$stub" | awk '$1 ~ /^[0-9]+$/ { print $3, $4 }')
addr=$(align "$last")
args=()
for s in osrel cmdline initrd linux; do
  args+=(--add-section ".$s=$out/$s" --change-section-vma ".$s=$(printf 0x%x "$addr")")
  sz=$(stat -c %s "$out/$s")
  addr=$(align $((addr + sz)))
done
objcopy "${args[@]}" "$stub" "$out/uki.efi"
