#!/bin/bash
# build-os-tree.sh OUT: the node image's OS tree, built once per build directory with mkosi
# (mkosi/, Debian bookworm) into OUT/tree, package cache in OUT/mkosi.cache. ctest fixture
# os-tree (test os-tree-build): test-image-boot and node-image-build assemble their images from
# this one tree (CT_IMAGE_TREE) instead of running mkosi twice, which keeps CI's VM tests within
# its time budget (mkosi takes 5-7 minutes here). The tree itself is never changed by its users:
# build-image.sh --tree copies it before installing node programs.
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=${1:?usage: build-os-tree.sh OUT}
T0=$(date +%s)
say() { printf '[os-tree-build %4ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (mkosi, systemd-nspawn)"
command -v mkosi > /dev/null || fail "'mkosi' is not installed (run scripts/setup.sh)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/tree" "$out/tree.manifest"
say "mkosi build of $src/mkosi -> $out/tree (log: $out/mkosi.log)"
# TMPDIR is the caller's host path: package scripts in the tree's chroot would use it and fail
if ! (cd "$src/mkosi" && env -u TMPDIR mkosi --output "$out/tree" --cache "$out/mkosi.cache" --force build) \
	> "$out/mkosi.log" 2>&1; then
	tail -n 30 "$out/mkosi.log" >&2
	rm -rf "$out/tree"
	fail "mkosi failed (full log: $out/mkosi.log)"
fi
for f in usr/lib/systemd/systemd usr/bin/etcd etc/kubernetes; do
	[ -e "$out/tree/$f" ] || fail "the tree has no /$f (mkosi/mkosi.conf, mkosi.postinst)"
done
say "done: $out/tree"
