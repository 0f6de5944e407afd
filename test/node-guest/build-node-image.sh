#!/bin/bash
# build-node-image.sh OUT: the qemu node image with the node programs, as the node-guest tests boot
# it (ctest fixture node-image, test node-image-build):
#   1. the install rules of this build's node/ (cmake_install.cmake) into OUT/node/usr (programs, units, the disk-mapper's dracut
#      configuration, the fw_cfg modules-load entry)
#   2. test-only additions (test/node-guest/image): readiness lines of the bootstrapper and the
#      verification service on the report channel, a marker unit that writes a random marker
#      onto the state disk after Init, the bench unit of bench/node-guest (runs only with a
#      third extra disk) and a unit that extends PCR 15 after the bootstrapper started (runs only
#      with the fw_cfg item opt/ct-test/pcr15, test-node-guest-join's refused joiner). They change
#      the measurements, which is fine: the tests use
#      the measurements of this image, predicted below
#   3. image/build/build-image.sh --variant qemu --node-dir OUT/node (mkosi tree unless
#      CT_IMAGE_TREE=DIR gives one; CT_MKOSI_CACHE=DIR keeps mkosi's packages; CT_CMDLINE_EXTRA=S
#      appends S to the kernel command line, e.g. systemd.log_target=console for a debugging image)
#   4. OUT/measurements.json = `constellation-image measure --measurements-only` of the disk
# Then OUT/img/qemu/disk.raw, OUT/img/qemu/cmdline, OUT/img/common/*, OUT/tree (the OS tree).
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
out=${1:?usage: build-node-image.sh OUT}
here="$src/test/node-guest"
T0=$(date +%s)
say() { printf '[node-image-build %4ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (mkosi, systemd-nspawn)"
measure="$bin/image/tool/constellation-image"
for p in node/bootstrapper/constellation-bootstrapper node/disk-mapper/constellation-disk-mapper \
	node/verification-service/constellation-verification-service node/keyservice/constellation-keyservice \
	image/tool/constellation-image; do
	[ -x "$bin/$p" ] || fail "$bin/$p is not built (build the whole tree first)"
done

rm -rf "$out/node" "$out/img" "$out/measurements.json"
mkdir -p "$out"
node="$out/node"
# the node programs only (node/: their install rules), as `cmake --install` would put them under /usr
cmake -DCMAKE_INSTALL_PREFIX="$node/usr" -P "$bin/node/cmake_install.cmake" > "$out/install.log" 2>&1 \
	|| fail "installing $bin/node failed (every node program built?): $(tail -n 3 "$out/install.log")"
for f in usr/bin/constellation-bootstrapper usr/bin/constellation-disk-mapper usr/bin/constellation-verification-service \
	usr/lib/systemd/system/constellation-bootstrapper.service usr/lib/systemd/system/prepare-state-disk.service \
	usr/lib/dracut/dracut.conf.d/60-constellation-disk-mapper.conf usr/lib/modules-load.d/constellation-metadata.conf; do
	[ -e "$node/$f" ] || fail "cmake --install did not install /$f"
done
install -D -m 0755 "$here/image/ct-test-marker" "$node/usr/libexec/constellation/ct-test-marker"
install -D -m 0644 "$here/image/ct-test-marker.service" "$node/usr/lib/systemd/system/ct-test-marker.service"
install -D -m 0644 "$here/image/ct-test-marker.path" "$node/usr/lib/systemd/system/ct-test-marker.path"
install -D -m 0755 "$here/image/ct-test-bench" "$node/usr/libexec/constellation/ct-test-bench"
install -D -m 0644 "$here/image/ct-test-bench.service" "$node/usr/lib/systemd/system/ct-test-bench.service"
install -D -m 0644 "$here/image/ct-test-bench.path" "$node/usr/lib/systemd/system/ct-test-bench.path"
install -D -m 0644 "$here/image/ct-test-ready-bootstrapper.service" "$node/usr/lib/systemd/system/ct-test-ready-bootstrapper.service"
install -D -m 0644 "$here/image/ct-test-ready-vs.service" "$node/usr/lib/systemd/system/ct-test-ready-vs.service"
install -D -m 0755 "$here/image/ct-test-pcr15" "$node/usr/libexec/constellation/ct-test-pcr15"
install -D -m 0644 "$here/image/ct-test-pcr15.service" "$node/usr/lib/systemd/system/ct-test-pcr15.service"
install -D -m 0644 "$here/image/ct-test-journal@.service" "$node/usr/lib/systemd/system/ct-test-journal@.service"
for u in constellation-etcd constellation-keyservice constellation-joinservice systemd-resolved systemd-networkd; do
	install -D -m 0644 "$here/image/50-ct-test-console.conf" "$node/usr/lib/systemd/system/$u.service.d/50-ct-test-console.conf"
done
install -D -m 0644 "$here/image/50-ct-test-report.conf" "$node/usr/lib/systemd/system/constellation-bootstrapper.service.d/50-ct-test-report.conf"
install -D -m 0644 "$here/image/50-ct-test-report-vs.conf" "$node/usr/lib/systemd/system/constellation-verification-service.service.d/50-ct-test-report.conf"

if [ -n "${CT_IMAGE_TREE:-}" ]; then
	say "assembling from the tree $CT_IMAGE_TREE"
	"$src/image/build/build-image.sh" --variant qemu --tree "$CT_IMAGE_TREE" --node-dir "$node" --out "$out/img" \
		${CT_CMDLINE_EXTRA:+--cmdline-extra "$CT_CMDLINE_EXTRA"} \
		> "$out/build.log" 2>&1 || fail "build-image.sh failed: $(tail -n 5 "$out/build.log")"
	tree="$out/img/tree-node"
else
	say "mkosi tree + assembly"
	"$src/image/build/build-image.sh" --variant qemu --node-dir "$node" --out "$out/img" \
		${CT_CMDLINE_EXTRA:+--cmdline-extra "$CT_CMDLINE_EXTRA"} \
		${CT_MKOSI_CACHE:+--mkosi-cache "$CT_MKOSI_CACHE"} > "$out/build.log" 2>&1 \
		|| fail "build-image.sh failed: $(tail -n 5 "$out/build.log")"
	tree="$out/img/tree"
fi
ln -sfn "$tree" "$out/tree"
# the mount points of the state disk's binds (mkosi/mkosi.postinst): /etc is read-only at boot
for d in etc/kubernetes etc/cni opt; do
	[ -d "$tree/$d" ] || fail "the image has no /$d (mkosi/mkosi.postinst makes it; an older CT_IMAGE_TREE?)"
done
# the initrd must carry the disk-mapper, its unit and its enablement
lsinitrd=$(command -v lsinitrd || true)
initrd="$out/img/common/initrd.img"
[ -s "$initrd" ] || fail "no initrd in $out/img/common"
if [ -n "$lsinitrd" ]; then
	"$lsinitrd" "$initrd" > "$out/initrd.list" 2>/dev/null || true
else
	(cd "$out" && rm -rf initrd.x && mkdir initrd.x && cd initrd.x && zstd -dc "$initrd" 2>/dev/null | cpio -t 2>/dev/null > "$out/initrd.list") || true
fi
for f in usr/bin/constellation-disk-mapper usr/lib/systemd/system/prepare-state-disk.service \
	etc/systemd/system/initrd-fs.target.requires/prepare-state-disk.service 60-constellation-timeouts.conf usr/sbin/mke2fs dm-integrity.ko libcryptsetup.so.12 libgrpc.so usr/lib/systemd/systemd-networkd 80-ethernet-dhcp.network; do
	grep -q -- "$f" "$out/initrd.list" || fail "the initrd lacks $f (node/disk-mapper/60-constellation-disk-mapper.conf)"
done
"$measure" measure --measurements-only "$out/img/qemu/disk.raw" > "$out/measurements.json" \
	|| fail "constellation-image measure failed on $out/img/qemu/disk.raw"
say "done: $out/img/qemu/disk.raw, measurements.json (PCR 4 $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["measurements"]["4"]["expected"][:16])' "$out/measurements.json")…)"
