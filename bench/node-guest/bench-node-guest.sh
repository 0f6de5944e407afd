#!/bin/bash
# bench-node-guest.sh: figures of one node in a booted guest (QEMU TCG: emulated CPU, so every
# figure is far below hardware; compare them only with each other, measured in the same boot).
#   - time from QEMU start to "waiting for init" (the bootstrapper's READY on the report channel)
#   - Init time (constellation-attest init, without Kubernetes components)
#   - write throughput with O_DIRECT (dd, 1 MiB blocks) in the guest: a file on the state disk
#     (ext4 on dm-crypt aes-xts-plain64 + dm-integrity hmac(sha256)), the raw third disk, and plain
#     dm-crypt aes-xts-plain64 without integrity on that disk; `cryptsetup benchmark` aes-xts
#   goal (issue 7): state disk >= 0.8x dm-crypt without integrity; the integrity figure beside it
# Uses the node image of the node-guest fixture (CT_NODE_IMAGE, default
# $CT_BINARY_DIR/node-guest-image, made by test/node-guest/build-node-image.sh: its bench unit runs
# after Init when the VM has a third extra disk).
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
T0=$(date +%s)
NAME=bench-node-guest
. "$src/test/node-guest/lib.sh"
img=${CT_NODE_IMAGE:-$bin/node-guest-image}
[ -s "$img/img/qemu/disk.raw" ] || fail "no node image in $img (ctest -R node-image-build)"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ct-bench-node-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
S="$work/secrets"
node_secrets "$S"
qemu_wrapper "$work/qbin"
P_INIT=$(free_port)
export PATH="$work/qbin:$PATH" CT_NODE_METADATA="$S/metadata.json" work S P_INIT attest
export MEAS="$img/measurements.json" BOOT_START=$(date +%s)
truncate -s 512M "$work/state.raw"
truncate -s 8M "$work/ctl.raw"
truncate -s 512M "$work/bench.raw"
# shellcheck disable=SC2016
bash "$boot" --disk "$img/img/qemu/disk.raw" --out "$work/boot" --expect none --timeout 2400 \
	--extra-disk "$work/state.raw" --extra-disk "$work/ctl.raw" --extra-disk "$work/bench.raw" \
	--hostfwd "$P_INIT:9000" --wait-line '^CT-READY bootstrapper$' --run '
	echo $(($(date +%s) - BOOT_START)) > "$work/ready"
	t=$(date +%s)
	"$attest" init --endpoint "127.0.0.1:$P_INIT" --measurements "$MEAS" --master-secret "$S/master.hex" \
		--salt "$S/salt.hex" --measurement-salt "$S/msalt.hex" --init-secret "$S/init-secret" --timeout 900 \
		> "$work/init.out" 2> "$work/init.err" || { cat "$work/init.err" >&2; exit 1; }
	echo $(($(date +%s) - t)) > "$work/init"
	"$CT_BOOT_WAIT_LINE" "$CT_BOOT_REPORT" "^CT-BENCH end$" 1800 "$CT_BOOT_QEMU_PID" > /dev/null' \
	|| fail "boot failed (console: $work/boot/console.log)"
echo "node-guest bench (QEMU TCG, 2 vCPUs, $(nproc) host CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  boot to waiting for init: $(cat "$work/ready") s"
echo "  Init (no components):     $(cat "$work/init") s"
sed -n 's/^CT-BENCH //p' "$work/boot/report.log" | sed 's/^/  /'
python3 - "$work/boot/report.log" <<'PY'
import re, sys
v = {}
for line in open(sys.argv[1]):
    m = re.match(r"CT-BENCH (\S+) ([0-9.]+) ([kMG]B)/s", line)
    if m:
        v[m.group(1)] = float(m.group(2)) * {"kB": 1e-3, "MB": 1, "GB": 1e3}[m.group(3)]
if "state-write" in v and "plain-dmcrypt-write" in v:
    print("  state disk / plain dm-crypt write: %.2fx (goal >= 0.8x)" % (v["state-write"] / v["plain-dmcrypt-write"]))
if "state-write" in v and "raw-write" in v:
    print("  state disk / raw disk write:       %.2fx" % (v["state-write"] / v["raw-write"]))
PY
