#!/bin/bash
# build-image.sh --variant qemu[,azure,gcp,aws] --out DIR [--tree TREE] [options]
#
# Builds constellation-c node images: the OS tree with mkosi (mkosi/), then assembles, without
# loop devices, mounts or device-mapper on the host:
#   initrd (dracut in nspawn) -> squashfs root + dm-verity -> UKI with roothash= and the
#   variant's command line -> ESP (mtools) -> GPT disk (sfdisk on a file).
# The same script runs on every machine (here, CI, a workstation where mkosi could do it all),
# so users and CI get one path.
#
# Output (DIR):
#   tree/                         the OS tree (unless --tree was given)
#   common/{vmlinuz,initrd.img,os-release,root.squashfs,root.verity,roothash}
#   <variant>/{disk.raw,uki.efi,cmdline,image.json}
#
# Options:
#   --variant LIST       comma-separated: qemu, azure, gcp, aws (default qemu)
#   --out DIR            output directory (created)
#   --tree TREE          use an existing OS tree instead of running mkosi
#   --source-date-epoch N  timestamp for every file (default 0, as Constellation)
#   --seed STRING        seed for salts and UUIDs (default "constellation-c")
#   --cmdline-extra S    appended to the command line (tests: one-byte changes)
#   --mkosi-cache DIR    package cache for mkosi (default DIR/mkosi.cache)
#   --node-dir NODE      install built node programs and their units from NODE (an installed
#                        tree: `cmake --install BUILD --prefix NODE/usr`; repeatable) into the
#                        tree before the initrd and root are made (image/build/install-node.sh).
#                        A --tree is copied to DIR/tree-node first, never changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$here/lib.sh"

variants=qemu out="" tree="" sde=0 seed=constellation-c extra="" cache=""
node_dirs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--variant) variants=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--tree) tree=$2; shift 2 ;;
	--source-date-epoch) sde=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--cmdline-extra) extra=$2; shift 2 ;;
	--mkosi-cache) cache=$2; shift 2 ;;
	--node-dir) node_dirs+=("$(cd "$2" && pwd)") || ct_die "--node-dir '$2' is not a directory"; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) ct_die "unknown argument '$1' (see --help)" ;;
	esac
done
[ -n "$out" ] || ct_die "--out DIR is required"
[[ "$sde" =~ ^[0-9]+$ ]] || ct_die "--source-date-epoch must be a number of seconds"
IFS=, read -r -a vlist <<< "$variants"
for v in "${vlist[@]}"; do
	[ -f "$here/variants/$v.conf" ] || ct_die "unknown variant '$v' (have: $(cd "$here/variants" && ls | sed 's/\.conf$//' | tr '\n' ' '))"
done
[ "$(id -u)" -eq 0 ] || ct_die "must run as root (mkosi, systemd-nspawn and file ownership in the tree)"
ct_need sha256sum
mkdir -p "$out"
out=$(cd "$out" && pwd)
export SOURCE_DATE_EPOCH=$sde

# 1. OS tree
if [ -z "$tree" ]; then
	ct_need mkosi
	tree="$out/tree"
	cache=${cache:-$out/mkosi.cache}
	mkdir -p "$cache"
	ct_log "tree: mkosi build of $src/mkosi (Debian bookworm) -> $tree"
	# TMPDIR is the caller's host path: package scripts in the tree's chroot would use it and fail
	# (ca-certificates: "mktemp: failed to create file via template").
	(cd "$src/mkosi" && env -u TMPDIR mkosi --output "$tree" --cache "$cache" --force build) >"$out/mkosi.log" 2>&1 \
		|| { tail -n 30 "$out/mkosi.log" >&2; ct_die "mkosi failed (full log: $out/mkosi.log)"; }
	ct_log "tree: done (log: $out/mkosi.log)"
fi
tree=$(cd "$tree" && pwd)
if [ "${#node_dirs[@]}" -gt 0 ]; then
	if [ "$tree" != "$out/tree" ]; then
		ct_log "node: copying $tree to $out/tree-node (the given tree stays unchanged)"
		rm -rf "$out/tree-node"
		cp -a --reflink=auto "$tree" "$out/tree-node"
		tree="$out/tree-node"
	fi
	"$here/install-node.sh" "$tree" "${node_dirs[@]}"
fi
[ -f "$tree/usr/lib/systemd/boot/efi/linuxx64.efi.stub" ] || ct_die "$tree has no systemd-stub (systemd-boot-efi)"
# A node image offers no login or shell on any console (mkosi.finalize masks them).
"$here/lockdown-tree.sh" --check "$tree"

# 2. kernel, initrd, root file system, verity: shared by every variant
common="$out/common"
mkdir -p "$common"
kver=$(ls "$tree/usr/lib/modules")
cp "$tree/boot/vmlinuz-$kver" "$common/vmlinuz"
cp -L "$tree/usr/lib/os-release" "$common/os-release"
"$here/build-initrd.sh" "$tree" "$common/initrd.img" "$sde"
"$here/make-rootfs.sh" "$tree" "$common" "$sde" "$seed"
roothash=$(cat "$common/roothash")

# 3. per variant: command line, UKI, disk
for v in "${vlist[@]}"; do
	(
	# shellcheck source=/dev/null
	. "$here/variants/$v.conf"
	vdir="$out/$v"
	mkdir -p "$vdir"
	# Constellation's command line (constellation.md §8) with the verity root hash; root= is
	# implied: systemd-veritysetup-generator opens /dev/mapper/root from roothash=.
	cmdline="selinux=1 enforcing=0 audit=0 console=tty1 console=ttyS0 roothash=$roothash ro"
	cmdline+=" preempt=full rd.shell=0 rd.emergency=reboot loglevel=8 $CT_CMDLINE_CSP"
	cmdline+=" constel.csp=$CT_CSP constel.attestation-variant=$CT_ATTESTATION_VARIANT"
	[ -z "$extra" ] || cmdline+=" $extra"
	printf '%s\0' "$cmdline" > "$vdir/cmdline"
	ct_log "$v: cmdline: $cmdline"
	"$here/make-uki.sh" --stub "$tree/usr/lib/systemd/boot/efi/linuxx64.efi.stub" \
		--linux "$common/vmlinuz" --initrd "$common/initrd.img" --osrel "$common/os-release" \
		--cmdline-file "$vdir/cmdline" --out "$vdir/uki.efi"
	"$here/make-disk.sh" --uki "$vdir/uki.efi" --root "$common/root.squashfs" \
		--verity "$common/root.verity" --roothash "$roothash" --seed "$seed" --out "$vdir/disk.raw"
	warn_json=$(for p in $CT_PCR_WARN; do printf '"%s",' "$p"; done | sed 's/,$//')
	enf_json=$(for p in $CT_PCR_ENFORCE; do printf '%s,' "$p"; done | sed 's/,$//')
	cat > "$vdir/image.json" <<EOF
{
  "csp": "$CT_CSP",
  "attestationVariant": "$CT_ATTESTATION_VARIANT",
  "kernel": "$kver",
  "rootHash": "$roothash",
  "sourceDateEpoch": $sde,
  "uki": "uki.efi",
  "ukiSha256": "$(sha256sum "$vdir/uki.efi" | cut -d' ' -f1)",
  "disk": "disk.raw",
  "diskSha256": "$(sha256sum "$vdir/disk.raw" | cut -d' ' -f1)",
  "pcrEnforce": [$enf_json],
  "pcrWarn": [$warn_json]
}
EOF
	ct_log "$v: $vdir/disk.raw (uki sha256 $(sha256sum "$vdir/uki.efi" | cut -c1-16)…)"
	)
done
ct_log "done: $out"
