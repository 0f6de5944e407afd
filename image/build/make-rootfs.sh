#!/bin/bash
# make-rootfs.sh TREE OUTDIR SOURCE_DATE_EPOCH SEED
# Read-only root file system and its dm-verity hash tree, as files (no loop device, no mount, no
# device-mapper on the build host):
#   OUTDIR/root.squashfs   squashfs of TREE (sorted entries, every timestamp = SOURCE_DATE_EPOCH)
#   OUTDIR/root.verity     dm-verity hash tree (sha256, 4 KiB blocks, salt and UUID from SEED)
#   OUTDIR/roothash        the root hash (hex), later put on the UKI command line (roothash=)
# Constellation's root is squashfs + Verity=data as well (constellation.md §8).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

tree=${1:?usage: make-rootfs.sh TREE OUTDIR SOURCE_DATE_EPOCH SEED}
outdir=${2:?}
sde=${3:?}
seed=${4:?}
ct_need mksquashfs veritysetup

ct_log "rootfs: mksquashfs $tree (zstd, timestamps $sde)"
# mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time; the options say the same.
# /boot holds the kernel, which reaches the machine inside the UKI, not through the root.
env -u SOURCE_DATE_EPOCH mksquashfs "$tree" "$outdir/root.squashfs" -noappend -quiet -no-progress -comp zstd -Xcompression-level 6 \
	-all-time "$sde" -mkfs-time "$sde" -wildcards -e 'boot/*' -e '.mkosi-*' >&2 \
	|| ct_die "mksquashfs failed on $tree"
size=$(ct_file_size "$outdir/root.squashfs")
[ $((size % 4096)) -eq 0 ] || ct_die "root.squashfs is $size bytes, not a multiple of the 4096-byte verity block"

salt=$(printf '%s\0verity-salt' "$seed" | sha256sum | cut -d' ' -f1)
vuuid=$(ct_uuid_from "$seed" verity-superblock)
ct_log "rootfs: veritysetup format ($size bytes of data)"
veritysetup format --hash sha256 --data-block-size 4096 --hash-block-size 4096 \
	--salt "$salt" --uuid "$vuuid" \
	--root-hash-file "$outdir/roothash.tmp" \
	"$outdir/root.squashfs" "$outdir/root.verity" >/dev/null \
	|| ct_die "veritysetup format failed"
tr -d '\n' < "$outdir/roothash.tmp" > "$outdir/roothash"
rm -f "$outdir/roothash.tmp"
grep -qE '^[0-9a-f]{64}$' "$outdir/roothash" || ct_die "veritysetup wrote no usable root hash"
ct_log "rootfs: root hash $(cat "$outdir/roothash")"
