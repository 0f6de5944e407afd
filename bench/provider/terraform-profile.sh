#!/usr/bin/env bash
# Where Terraform's own CPU goes when it drives this provider: `perf record -g` (cpu-clock, frame
# pointers: Go keeps them) of RUNS plans of the 50-read config and of the 50 terraform_data floor,
# then CPU per plan by process and, inside terraform, by what it does for the provider (go-plugin's
# start with its AutoMTLS certificate, the TLS handshake, the RPCs, msgpack, GC), with the floor's
# figures beside. terraform is stripped; its functions are named from .gopclntab (go-pclntab.py).
# Sampling slows the processes down a little; compare the two columns, not with wall times.
# Usage: bench/provider/terraform-profile.sh BUILD-DIR [PEER-DIR]   (RUNS, default 6; HZ, default 1999)
# Needs perf (Debian: linux-perf) and access to cpu-clock sampling (root, or perf_event_paranoid <= 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
peer=$(cd "${2:-$top/../shared/peers/go-provider}" && pwd)
runs=${RUNS:-6}
hz=${HZ:-1999}
command -v perf >/dev/null || { echo "perf is needed (Debian package linux-perf)" >&2; exit 2; }
tf=$(command -v terraform) || { echo "no terraform on PATH" >&2; exit 2; }
tf=$(realpath "$tf")
[[ -x $build/provider/terraform-provider-constellation ]] || { echo "no provider in $build/provider" >&2; exit 2; }

work=$(mktemp -d /tmp/ct-tf-profile-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$peer/configs/floor50" "$work/floor"
cp -r "$peer/configs/constellation50" "$work/ds"
cat >"$work/dev.tfrc" <<EOF
provider_installation {
  dev_overrides { "registry.terraform.io/edgelesssys/constellation" = "$build/provider" }
  direct {}
}
EOF
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_VAR_cdn_dir="$peer/fixtures/cdn"
unset TF_LOG TF_LOG_PATH TF_LOG_PROVIDER
echo "== terraform-profile.sh $(date -u +%FT%TZ), $runs plans each at $hz Hz; $(uptime | sed 's/.*load average/load average/')"
for l in ds floor; do
	(cd "$work/$l" && terraform plan -no-color -input=false >/dev/null) # warm-up
	perf record -q -F "$hz" -g -o "$work/$l.perf" -- sh -c "cd '$work/$l' && for i in \$(seq $runs); do terraform plan -no-color -input=false >/dev/null; done" >/dev/null 2>&1
	case $l in ds) echo "-- 50 constellation_image reads ($build/provider)" ;; floor) echo "-- 50 terraform_data (floor)" ;; esac
	perf script -i "$work/$l.perf" -F comm,pid,ip,sym,dso 2>/dev/null | python3 "$here/terraform-profile.py" "$tf" "$runs" "$hz"
done
