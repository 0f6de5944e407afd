#!/bin/bash
# build-initrd.sh TREE OUT_INITRD [SOURCE_DATE_EPOCH]
# Builds the node initrd with the tree's own dracut inside systemd-nspawn (the tree stays
# read-only; the output directory is bind-mounted on its /mnt). Configuration: the tree's
# /etc/dracut.conf.d/50-constellation.conf (mkosi/mkosi.skeleton). --reproducible plus a fixed
# SOURCE_DATE_EPOCH make the cpio byte-identical across builds of the same tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

tree=${1:?usage: build-initrd.sh TREE OUT_INITRD [SOURCE_DATE_EPOCH]}
out=${2:?usage: build-initrd.sh TREE OUT_INITRD [SOURCE_DATE_EPOCH]}
sde=${3:-${SOURCE_DATE_EPOCH:-0}}
ct_need systemd-nspawn

tree=$(cd "$tree" && pwd)
[ -d "$tree/usr/lib/modules" ] || ct_die "$tree: no /usr/lib/modules (not a node OS tree?)"
kvers=$(ls "$tree/usr/lib/modules")
[ "$(echo "$kvers" | wc -l)" -eq 1 ] || ct_die "$tree: expected exactly one kernel, found: $kvers"
outdir=$(cd "$(dirname "$out")" && pwd)
outname=$(basename "$out")

ct_log "initrd: dracut $kvers in nspawn (tree read-only)"
# --keep-unit/--register=no: no systemd PID 1 or D-Bus needed on the build host (machine.md §6).
# dracut's "firmware_class/parameters/path" warning under nspawn is harmless.
systemd-nspawn --quiet --register=no --keep-unit --as-pid2 --read-only --resolv-conf=off --private-network \
	--tmpfs=/tmp --bind="$outdir:/mnt" \
	--setenv=SOURCE_DATE_EPOCH="$sde" -D "$tree" \
	dracut --quiet --force --reproducible --no-hostonly --tmpdir /tmp --kver "$kvers" "/mnt/$outname" \
	>&2 || ct_die "dracut failed in $tree"
[ -s "$out" ] || ct_die "dracut produced no $out"
ct_log "initrd: $(ct_file_size "$out") bytes, sha256 $(sha256sum "$out" | cut -c1-16)…"
