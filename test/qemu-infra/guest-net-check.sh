#!/bin/bash
# guest-net-check.sh --kernel VMLINUZ --modules DIR [--keep]: the guest side of the network design
# (docs/qemu-infra.md), in real VMs started by constellation-qemu: 1 control plane + 1 worker
# booted directly (OVMF -> --kernel) into a static /init (guest-net-init.c). Proves, from inside
# the guests: the fw_cfg metadata arrives; the worker dials the control plane's vpc_ip
# 10.42.1.100:30090 and reaches the control plane's guest through slirp guestfwd -> relay ->
# 127.A.B.1:30090 (host forward) -> control plane; the host reaches the control plane on its 127.x.
# DIR holds virtio{,_ring,_pci,_pci_legacy_dev,_pci_modern_dev}.ko, failover.ko, net_failover.ko,
# virtio_net.ko and qemu_fw_cfg.ko of VMLINUZ's version
# (e.g. from the node image's root.squashfs, usr/lib/modules/<version>/kernel/...).
# Needs CT_BINARY_DIR (the build with constellation-qemu), gcc with static glibc, cpio.
# Not in ctest: the kernel and its modules come from an image build, which the build does not hold.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "guest-net-check: FAIL: $*" >&2; exit 1; }
kernel="" mods="" keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--modules) mods=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	*) fail "usage: $0 --kernel VMLINUZ --modules DIR [--keep]" ;;
	esac
done
[ -r "$kernel" ] && [ -d "$mods" ] || fail "usage: $0 --kernel VMLINUZ --modules DIR"
bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset}/cli/qemu/constellation-qemu
[ -x "$bin" ] || fail "$bin not built"
work=$(mktemp -d /tmp/ctqn.XXXXXX)
state=$work/st.json
cleanup() {
	[ "$keep" = 1 ] || "$bin" down --state "$state" >/dev/null 2>&1 || true
	[ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/root/m" "$work/root/proc" "$work/root/sys" "$work/root/dev"
gcc -static -O2 -o "$work/root/init" "$here/guest-net-init.c"
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net qemu_fw_cfg; do
	f=$(find "$mods" -name "$m.ko" | head -n1)
	[ -n "$f" ] || fail "$m.ko not in $mods"
	cp "$f" "$work/root/m/"
done
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.gz")
cp "$kernel" "$work/vmlinuz"
truncate -s 1M "$work/blank.raw"
t0=$(date +%s)
"$bin" up --state "$state" --image "$work/blank.raw" --control-planes 1 --workers 1 --disk-size 1M \
	--mem 256 --vcpus 1 --init-secret-file "$work/secret" --kernel "$work/vmlinuz" --initrd "$work/initrd.gz" \
	--append "console=ttyS0 panic=-1 quiet" > "$work/up.json" || fail "up failed"
cp_dir=$(jq -r '.nodes[0].dir' "$state") w_dir=$(jq -r '.nodes[1].dir' "$state")
cp_addr=$(jq -r '.nodes[0].host_address' "$state")
for _ in $(seq 600); do
	grep -aq '^CT-NET-' "$w_dir/console.log" && break
	sleep 1
done
echo "after $(( $(date +%s) - t0 )) s:" >&2
echo "== control-plane-0"; grep -a '^CT-' "$cp_dir/console.log" | tr -d '\r'
echo "== worker-0"; grep -a '^CT-' "$w_dir/console.log" | tr -d '\r'
grep -aq '^CT-NET-OK hello from control-plane-0' "$w_dir/console.log" || fail "the worker did not reach the control plane"
grep -aq '^CT-IF eth0 10.42.2.100/22: up' "$w_dir/console.log" || fail "worker address"
grep -aq '"name":"worker-0"' "$w_dir/console.log" || fail "worker metadata"
grep -aq '^CT-ACCEPT from 10.42.0.1' "$cp_dir/console.log" || fail "the control plane saw no connection through its host forward"
got=$(timeout 30 "$bin" relay "$cp_addr" 30090 </dev/null) || fail "host -> $cp_addr:30090 failed"
[ "$got" = "hello from control-plane-0" ] || fail "host -> $cp_addr:30090 answered '$got'"
echo "guest-net-check: OK (worker -> 10.42.1.100:30090 -> relay -> $cp_addr:30090 -> control plane; host -> $cp_addr:30090)" >&2
