#!/usr/bin/env bash
# The provider against the Go peer (a minimal provider on Debian's go-plugin + grpc-go + go-cty,
# ../shared/peers/go-provider) and the terraform_data floor, all measured in ONE run of the peer's
# bench.sh, then the ratios against issue 11's goals:
#   exec-to-handshake <= 0.5x the peer, peak RSS during a plan <= 0.6x the peer,
#   plan time <= 0.8x the peer and <= 1.3x the floor (50 terraform_data).
# Usage: bench/provider/bench-peer.sh BUILD-DIR [PEER-DIR]
#   BUILD-DIR  a build directory (its provider/ holds terraform-provider-constellation)
#   PEER-DIR   the peer's directory (default: ../shared/peers/go-provider beside the checkout)
# RUNS and STARTUP_RUNS pass through to bench.sh (defaults here: 11 and 30). Prints figures; asserts
# nothing (machine load changes them: compare ratios from one run, and note the load it prints).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
peer=$(cd "${2:-$top/../shared/peers/go-provider}" && pwd)
[ -x "$build/provider/terraform-provider-constellation" ] || { echo "no provider in $build/provider" >&2; exit 2; }
[ -x "$peer/bench.sh" ] || { echo "no bench.sh in $peer" >&2; exit 2; }
out=$(mktemp /tmp/ct-bench-peer-XXXXXX)
trap 'rm -f "$out"' EXIT
RUNS=${RUNS:-11} STARTUP_RUNS=${STARTUP_RUNS:-30} RESULTS_FILE="$out" \
        bash "$peer/bench.sh" "$build/provider" registry.terraform.io/edgelesssys/constellation \
        "$peer/configs/constellation50" >/dev/null
cat "$out"
echo
echo "== summary (one run; C = this provider)"
awk '
/^50 peer_image reads/ { for (i = 1; i <= NF; i++) if ($i == "median") go_plan = $(i + 1) }
/^50 terraform_data/   { for (i = 1; i <= NF; i++) if ($i == "median") floor = $(i + 1) }
/^50 reads, /          { for (i = 1; i <= NF; i++) if ($i == "median") c_plan = $(i + 1) }
/^exec-to-handshake:/  { v = $3 + 0; if (!have_go_hs) { go_hs = v; have_go_hs = 1 } else c_hs = v }
/^peer +provider peak RSS/  { go_rss = $5 + 0 }
/^other +provider peak RSS/ { c_rss = $5 + 0 }
/^load:/ && !load { load = $0 }
function verdict(r, goal) { return r <= goal ? "met" : "MISSED" }
END {
	if (!go_plan || !floor || !c_plan || !go_hs || !c_hs || !go_rss || !c_rss) { print "could not parse bench.sh output" > "/dev/stderr"; exit 1 }
	printf "plan, 50 reads:    C %d ms, Go %d ms, floor %d ms: %.2fx Go (goal <= 0.8x: %s), %.2fx floor (goal <= 1.3x: %s)\n",
		c_plan, go_plan, floor, c_plan / go_plan, verdict(c_plan / go_plan, 0.8), c_plan / floor, verdict(c_plan / floor, 1.3)
	printf "exec-to-handshake: C %.2f ms, Go %.2f ms: %.2fx (goal <= 0.5x: %s)\n", c_hs, go_hs, c_hs / go_hs, verdict(c_hs / go_hs, 0.5)
	printf "peak RSS in plan:  C %.1f MB, Go %.1f MB: %.2fx (goal <= 0.6x: %s)\n", c_rss, go_rss, c_rss / go_rss, verdict(c_rss / go_rss, 0.6)
	print "(" load ")"
}' "$out"
