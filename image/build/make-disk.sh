#!/bin/bash
# make-disk.sh --uki UKI --root ROOT --verity VERITY --roothash HEX --seed SEED --out DISK
# Raw GPT disk written as a regular file (no kernel involvement: sfdisk on a file, partitions
# copied in with dd):
#   1 ESP (FAT32 from mkfs.fat + mtools): /EFI/BOOT/BOOTX64.EFI = the UKI itself, as
#     Constellation boots it (no boot loader, so PCR 4 holds only the UKI and its kernel)
#   2 root (root-x86-64), UUID = first 128 bits of the root hash
#   3 root-verity (root-x86-64-verity), UUID = last 128 bits
# Partition UUIDs follow the Discoverable Partitions Specification / systemd-veritysetup-
# generator: with roothash= on the command line it opens /dev/disk/by-partuuid/<halves>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

uki="" root="" verity="" roothash="" seed="" out="" sde=${SOURCE_DATE_EPOCH:-0}
while [ $# -gt 0 ]; do
	case "$1" in
	--uki) uki=$2; shift 2 ;;
	--root) root=$2; shift 2 ;;
	--verity) verity=$2; shift 2 ;;
	--roothash) roothash=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) ct_die "make-disk.sh: unknown argument '$1'" ;;
	esac
done
for v in uki root verity roothash seed out; do
	[ -n "${!v}" ] || ct_die "make-disk.sh: --$v is required"
done
[[ "$roothash" =~ ^[0-9a-f]{64}$ ]] || ct_die "make-disk.sh: --roothash must be 64 hex digits"
ct_need mkfs.fat mmd mcopy sfdisk

MiB=$((1024 * 1024))
mib_up() { echo $(( ($1 + MiB - 1) / MiB )); }

# ESP: the UKI plus 16 MiB of room, at least 64 MiB (FAT32 needs >= 65525 clusters).
esp_mib=$(( $(mib_up "$(ct_file_size "$uki")") + 16 ))
[ "$esp_mib" -ge 64 ] || esp_mib=64
esp="$out.esp.tmp"
rm -f "$esp"
volid=$(printf '%s\0esp-volume-id' "$seed" | sha256sum | cut -c1-8)
ct_log "disk: ESP ${esp_mib} MiB (FAT32, mtools)"
# --invariant: fixed volume id/time where mkfs.fat would use random or current values; mtools
# takes SOURCE_DATE_EPOCH for the directory entries' timestamps.
mkfs.fat -C -F 32 -s 1 -S 512 -n ESP -i "$volid" --invariant "$esp" $((esp_mib * 1024)) >/dev/null \
	|| ct_die "mkfs.fat failed"
export SOURCE_DATE_EPOCH="$sde" MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT || ct_die "mmd failed on the ESP"
mcopy -i "$esp" "$uki" ::/EFI/BOOT/BOOTX64.EFI || ct_die "mcopy of the UKI failed"

root_mib=$(mib_up "$(ct_file_size "$root")")
verity_mib=$(mib_up "$(ct_file_size "$verity")")
# 1 MiB before the first partition, 1 MiB after the last one for the backup GPT
total_mib=$((1 + esp_mib + root_mib + verity_mib + 1))
esp_start=$((1 * MiB / 512))
root_start=$((esp_start + esp_mib * MiB / 512))
verity_start=$((root_start + root_mib * MiB / 512))

rm -f "$out"
truncate -s $((total_mib * MiB)) "$out"
ct_log "disk: GPT ${total_mib} MiB (sfdisk on a file)"
sfdisk --quiet --no-reread --no-tell-kernel "$out" >/dev/null <<EOF || ct_die "sfdisk failed on $out"
label: gpt
label-id: $(ct_uuid_from "$seed$roothash" disk)
unit: sectors
sector-size: 512
first-lba: 2048
start=$esp_start, size=$((esp_mib * MiB / 512)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$(ct_uuid_from "$seed$roothash" esp), name="esp"
start=$root_start, size=$((root_mib * MiB / 512)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$(ct_hex_to_uuid "${roothash:0:32}"), name="root"
start=$verity_start, size=$((verity_mib * MiB / 512)), type=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5, uuid=$(ct_hex_to_uuid "${roothash:32:32}"), name="root-verity"
EOF
dd if="$esp" of="$out" bs=512 seek="$esp_start" conv=notrunc,sparse status=none || ct_die "dd ESP"
dd if="$root" of="$out" bs=512 seek="$root_start" conv=notrunc,sparse status=none || ct_die "dd root"
dd if="$verity" of="$out" bs=512 seek="$verity_start" conv=notrunc,sparse status=none || ct_die "dd verity"
rm -f "$esp"
ct_log "disk: $out ready"
