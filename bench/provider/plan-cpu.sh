#!/usr/bin/env bash
# Where the plan's time over the terraform_data floor goes: CPU time of terraform itself (without
# its children's) and of
# every provider process it starts, for the floor (50 terraform_data), this provider (50
# constellation_image reads) and the Go peer (50 peer_image reads), interleaved, medians of RUNS.
# CPU times do not depend on the machine's load the way wall times do.
# Usage: bench/provider/plan-cpu.sh BUILD-DIR [PEER-DIR]   (RUNS, default 9)
# Needs terraform, GNU time (/usr/bin/time) and the peer's binary (run its build.sh or bench.sh once).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
peer=$(cd "${2:-$top/../shared/peers/go-provider}" && pwd)
runs=${RUNS:-9}
peer_bin=${PEER_GO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peer-go}/bin/terraform-provider-peer
[[ -x $build/provider/terraform-provider-constellation ]] || { echo "no provider in $build/provider" >&2; exit 2; }
[[ -x $peer_bin ]] || { echo "no Go peer at $peer_bin: run $peer/build.sh" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 2; }

work=$(mktemp -d /tmp/ct-plan-cpu-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$peer/configs/floor50" "$work/floor"
cp -r "$peer/configs/peer50" "$work/peer"
cp -r "$peer/configs/constellation50" "$work/c"
mkdir -p "$work/wrap" "$work/times"
wrap() { # wrap NAME BINARY: a stand-in that records the real binary's CPU time
	cat >"$work/wrap/$1" <<-EOF
		#!/bin/sh
		exec /usr/bin/time -f "%U %S" -o "$work/times/\$\$" "$2" "\$@"
	EOF
	chmod +x "$work/wrap/$1"
}
wrap terraform-provider-constellation "$build/provider/terraform-provider-constellation"
wrap terraform-provider-peer "$peer_bin"
cat >"$work/dev.tfrc" <<EOF
provider_installation {
  dev_overrides {
    "registry.terraform.io/edgelesssys/constellation" = "$work/wrap"
    "registry.terraform.io/peer/peer" = "$work/wrap"
  }
  direct {}
}
EOF
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_VAR_cdn_dir="$peer/fixtures/cdn"
one() { # one DIR -> "wall_ms terraform_cpu_ms provider_cpu_ms"
	local t0 t1
	rm -f "$work/times/"*
	t0=$(date +%s%N)
	(cd "$1" && /usr/bin/time -f "%U %S" -o "$work/tf.time" terraform plan -no-color -input=false -refresh=true >/dev/null)
	t1=$(date +%s%N)
	local p tf
	p=$(cat "$work/times/"* 2>/dev/null | awk '{s += $1 + $2} END {printf "%.0f", s * 1000}' || true)
	# GNU time's figure for terraform is its rusage as a waited-for child, which includes the CPU of
	# every process terraform waited for: the provider processes (and their /usr/bin/time wrappers,
	# about 1 ms each). Terraform's own CPU is what is left.
	tf=$(awk '{printf "%.0f", ($1 + $2) * 1000}' "$work/tf.time")
	echo "$(((t1 - t0) / 1000000)) $((tf - ${p:-0})) ${p:-0}"
}
for l in floor c peer; do one "$work/$l" >/dev/null; done # warm-up
for _ in $(seq "$runs"); do
	for l in floor c peer; do echo "$l $(one "$work/$l")"; done
done >"$work/all"
echo "== plan-cpu.sh $(date -u +%FT%TZ), $runs runs each, medians (ms); $(uptime | sed 's/.*load average/load average/')"
printf '%-42s %8s %19s %14s\n' "" wall "terraform's own CPU" "provider CPU"
for l in floor c peer; do
	case $l in floor) what="50 terraform_data (floor)" ;; c) what="50 constellation_image (this provider)" ;; peer) what="50 peer_image (Go peer)" ;; esac
	awk -v l="$l" -v w="$what" '$1 == l { n++; a[n] = $2; b[n] = $3; c[n] = $4 }
		function med(x, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
			return x[int((n + 1) / 2)] }
		END { printf "%-42s %8d %19d %14d\n", w, med(a, n), med(b, n), med(c, n) }' "$work/all"
done
