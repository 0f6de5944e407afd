#!/usr/bin/env bash
# `terraform plan` of 50 constellation_image reads (file:// CDN) against 50 terraform_data
# resources (built into Terraform: the floor), both measured in the same run; prints medians and
# the ratio. Usage: bench/provider/bench-plan.sh BUILD-DIR [RUNS]
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
runs=${2:-7}
work=$(mktemp -d /tmp/ct-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$build/provider" }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1
img="$work/cdn/constellation/v2/ref/-/stream/stable/v2.25.0/image"
mkdir -p "$img" "$work/ds" "$work/floor"
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
for i in $(seq 50); do echo "resource \"terraform_data\" \"r$i\" { input = \"$i\" }"; done >"$work/floor/main.tf"

time_plan() {
        local dir=$1 t0 t1
        t0=$(date +%s%N)
        (cd "$dir" && terraform plan -no-color -refresh=false >/dev/null)
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_plan "$work/ds" >/dev/null # warm caches
ds=() floor=()
for _ in $(seq "$runs"); do
        ds+=("$(time_plan "$work/ds")")
        floor+=("$(time_plan "$work/floor")")
done
m_ds=$(printf '%s\n' "${ds[@]}" | median)
m_floor=$(printf '%s\n' "${floor[@]}" | median)
echo "terraform plan, 50 constellation_image reads: median ${m_ds} ms over $runs runs"
echo "terraform plan, 50 terraform_data (floor):    median ${m_floor} ms"
awk -v a="$m_ds" -v b="$m_floor" 'BEGIN { printf "ratio: %.2fx the floor [goal <= 1.3x]\n", a / b }'
"$build/bench/provider/bench-provider-startup" "$build/provider/terraform-provider-constellation" 20
