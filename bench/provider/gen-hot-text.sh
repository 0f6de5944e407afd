#!/usr/bin/env bash
# Regenerates provider/hot-text.ld, the provider's code layout (see bench/provider/hot-text.py):
#   1. a 50-read `terraform plan` (file:// CDN) with every provider process under
#      valgrind --tool=callgrind: the input sections whose code ran;
#   2. relink, then the same plan natively with perf's page-fault tracepoint: instruction fetches
#      that still fault in the cold .text (code valgrind's CPU did not take) are added; relink.
# Usage: bench/provider/gen-hot-text.sh BUILD-DIR   (a CONSTELLATION_STATIC_PROVIDER build)
# Needs terraform, valgrind, python3; perf for step 2 (skipped without it). Rewrites
# provider/hot-text.ld in the source tree: commit it with the figures it gave.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
bin=$build/provider/terraform-provider-constellation
map=$bin.map
out=$top/provider/hot-text.ld
[[ -x $bin && -f $map ]] || { echo "no static provider with a map in $build/provider" >&2; exit 2; }
for t in terraform valgrind python3; do command -v "$t" >/dev/null || { echo "$t is needed" >&2; exit 2; }; done

work=$(mktemp -d /tmp/ct-hot-text-XXXXXX)
trap 'rm -rf "$work"' EXIT
img="$work/cdn/constellation/v2/ref/-/stream/stable/v2.25.0/image"
mkdir -p "$img" "$work/ds" "$work/wrap"
echo '{"ref":"-","stream":"stable","version":"v2.25.0","list":[{"csp":"QEMU","attestationVariant":"qemu-vtpm","reference":"img.raw"}]}' >"$img/info.json"
{
	echo 'terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}'
	echo "provider \"constellation\" {
  cdn_url = \"file://$work/cdn\"
}"
	for i in $(seq 50); do
		echo "data \"constellation_image\" \"i$i\" {
  version = \"v2.25.0\"
  csp = \"qemu\"
  attestation_variant = \"qemu-vtpm\"
}"
	done
} >"$work/ds/main.tf"
cat >"$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$work/wrap" }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1
plan() { (cd "$work/ds" && terraform plan -no-color -input=false -refresh=true >/dev/null); }

echo "== 1. callgrind" >&2
cat >"$work/wrap/terraform-provider-constellation" <<EOF
#!/bin/sh
exec valgrind -q --tool=callgrind --dump-instr=yes --callgrind-out-file=$work/cg.%p "$bin" "\$@"
EOF
chmod +x "$work/wrap/terraform-provider-constellation"
plan
args=()
for f in "$work"/cg.*; do args+=(--callgrind "$f"); done
python3 "$top/bench/provider/hot-text.py" --map "$map" --binary "$bin" "${args[@]}" --out "$work/hot-text.ld"
cp "$work/hot-text.ld" "$out"
cmake --build "$build" --target terraform-provider-constellation >/dev/null

if command -v perf >/dev/null; then
	echo "== 2. native page faults" >&2
	cat >"$work/wrap/terraform-provider-constellation" <<EOF
#!/bin/sh
exec perf record -q -e exceptions:page_fault_user -o $work/pf.\$\$ -- "$bin" "\$@" 2>/dev/null
EOF
	plan
	plan
	args=()
	for f in "$work"/pf.*; do
		perf script --show-mmap-events -i "$f" >"$f.txt" 2>/dev/null
		args+=(--faults "$f.txt")
	done
	python3 "$top/bench/provider/hot-text.py" --map "$map" --binary "$bin" "${args[@]}" --keep "$out" \
		--out "$work/hot-text.ld"
	cp "$work/hot-text.ld" "$out"
	cmake --build "$build" --target terraform-provider-constellation >/dev/null
fi
echo "wrote $out; the provider in $build is relinked with it" >&2
