#!/bin/bash
# bench-image.sh TOOL [INITRD_MIB] [ROUNDS]: time of `constellation-image measure UKI` against
# `sha256sum UKI` (one SHA-256 pass over the same bytes: the floor) in the same run, on a UKI
# built by test/image-measure/make-uki.sh with an INITRD_MIB initrd. Prints the best of ROUNDS
# for each and the ratio (goal <= 1.2). Page cache is warmed first so both read from memory.
set -euo pipefail
tool=$1
mib=${2:-128}
rounds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
d=$(mktemp -d /tmp/bench-image.XXXXXX)
trap 'rm -rf "$d"' EXIT
bash "$here/../../test/image-measure/make-uki.sh" "$d/u" $((mib * 1024))
uki=$d/u/uki.efi
cat "$uki" > /dev/null
ns() { date +%s%N; }
best_m=0 best_s=0
for _ in $(seq "$rounds"); do
  t0=$(ns); "$tool" measure "$uki" > /dev/null; t1=$(ns)
  sha256sum "$uki" > /dev/null; t2=$(ns)
  m=$((t1 - t0)) s=$((t2 - t1))
  { [ $best_m = 0 ] || [ $m -lt $best_m ]; } && best_m=$m
  { [ $best_s = 0 ] || [ $s -lt $best_s ]; } && best_s=$s
done
size=$(stat -c %s "$uki")
awk -v m=$best_m -v s=$best_s -v b=$size 'BEGIN {
  printf "UKI size               %.1f MiB\n", b / 1048576
  printf "constellation-image    %.3f s  (%.0f MiB/s)\n", m / 1e9, b / 1048576 / (m / 1e9)
  printf "sha256sum (floor)      %.3f s  (%.0f MiB/s)\n", s / 1e9, b / 1048576 / (s / 1e9)
  printf "ratio                  %.2fx (goal <= 1.2x)\n", m / s }'
