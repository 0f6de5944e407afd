#!/usr/bin/env bash
# A/B of two provider binaries in ONE run, against the terraform_data floor and the Go peer:
# `terraform plan -refresh=true` of 50 constellation_image reads with binary A, the same with
# binary B, 50 peer_image reads with the Go peer, and 50 terraform_data (no provider process),
# interleaved (floor, A, B, peer, floor, A, ...), RUNS rounds after one warm-up round. Prints for
# each the median, quartiles and minimum wall time, each median's ratio to the floor's, and the
# median CPU time of the plan (terraform and the provider processes it waited for).
# Prints figures and asserts nothing: the machine is shared, so compare within one run.
# Usage: bench/provider/bench-ab.sh PROVIDER-A PROVIDER-B [PEER-DIR]   (RUNS, default 15)
#   PROVIDER-A/B  terraform-provider-constellation binaries (e.g. a copy of the old build, the new build)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
a=$(realpath "${1:?provider binary A}")
b=$(realpath "${2:?provider binary B}")
peer=$(cd "${3:-$top/../shared/peers/go-provider}" && pwd)
runs=${RUNS:-15}
peer_bin=${PEER_GO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peer-go}/bin/terraform-provider-peer
[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 2; }
for x in "$a" "$b" "$peer_bin"; do [[ -x $x ]] || { echo "no executable $x (the peer: run $peer/build.sh)" >&2; exit 2; }; done

work=$(mktemp -d /tmp/ct-bench-ab-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$peer/configs/floor50" "$work/floor"
cp -r "$peer/configs/peer50" "$work/peer"
cp -r "$peer/configs/constellation50" "$work/A"
cp -r "$peer/configs/constellation50" "$work/B"
mkdir -p "$work/binA" "$work/binB" "$work/binP"
ln -s "$a" "$work/binA/terraform-provider-constellation"
ln -s "$b" "$work/binB/terraform-provider-constellation"
ln -s "$peer_bin" "$work/binP/terraform-provider-peer"
tfrc() { # tfrc FILE DIR: dev_overrides with the constellation provider from DIR
	cat >"$1" <<-EOF
		provider_installation {
		  dev_overrides {
		    "registry.terraform.io/edgelesssys/constellation" = "$2"
		    "registry.terraform.io/peer/peer" = "$work/binP"
		  }
		  direct {}
		}
	EOF
}
tfrc "$work/A.tfrc" "$work/binA"
tfrc "$work/B.tfrc" "$work/binB"
cp "$work/A.tfrc" "$work/floor.tfrc"
cp "$work/A.tfrc" "$work/peer.tfrc"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_VAR_cdn_dir="$peer/fixtures/cdn"
unset TF_LOG TF_LOG_PATH TF_LOG_PROVIDER
plan() { # plan LABEL -> "wall_ms cpu_ms" (CPU: terraform and the provider processes it waited for)
	local t0 t1
	t0=$(date +%s%N)
	(cd "$work/$1" && TF_CLI_CONFIG_FILE="$work/$1.tfrc" /usr/bin/time -f "%U %S" -o "$work/cpu" \
		terraform plan -no-color -input=false -refresh=true >/dev/null) ||
		{ echo "terraform plan failed for $1" >&2; exit 1; }
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) $(awk '{printf "%.0f", ($1 + $2) * 1000}' "$work/cpu")"
}
labels=(floor A B peer)
echo "== bench-ab.sh $(date -u +%FT%TZ), $runs rounds; $(uptime | sed 's/.*load average/load average/')"
echo "A = $a"
echo "B = $b"
for l in "${labels[@]}"; do plan "$l" >/dev/null; done
for _ in $(seq "$runs"); do
	for l in "${labels[@]}"; do echo "$l $(plan "$l")"; done
done >"$work/all"
echo "(after: $(uptime | sed 's/.*load average/load average/'))"
awk '
function sort(x, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t } }
{ n[$1]++; v[$1, n[$1]] = $2; c[$1, n[$1]] = $3 }
END {
	split("floor A B peer", order, " ")
	for (k = 1; k <= 4; k++) {
		l = order[k]; m = n[l]; delete x; delete y
		for (i = 1; i <= m; i++) { x[i] = v[l, i]; y[i] = c[l, i] }
		sort(x, m); sort(y, m)
		med[l] = x[int((m + 1) / 2)]; q1[l] = x[int((m + 3) / 4)]; q3[l] = x[int((3 * m + 1) / 4)]; mn[l] = x[1]
		cmed[l] = y[int((m + 1) / 2)]
	}
	printf "%-28s %7s %13s %7s %9s %9s\n", "terraform plan, 50 reads", "median", "quartiles", "min", "/floor", "CPU"
	name["floor"] = "50 terraform_data (floor)"; name["A"] = "constellation, A"; name["B"] = "constellation, B"; name["peer"] = "Go peer"
	for (k = 1; k <= 4; k++) { l = order[k]
		printf "%-28s %4d ms %5d-%-5d ms %4d ms %7.2fx %6d ms\n", name[l], med[l], q1[l], q3[l], mn[l], med[l] / med["floor"], cmed[l] }
	printf "B / A: %.3f wall, %.3f CPU (medians); A / peer %.2f, B / peer %.2f\n", med["B"] / med["A"], cmed["B"] / cmed["A"], med["A"] / med["peer"], med["B"] / med["peer"]
	print "(CPU: terraform and every provider process of the plan, user + system, median)"
}' "$work/all"
