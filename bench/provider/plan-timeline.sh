#!/usr/bin/env bash
# Where a plan's wall time goes, launch by launch: runs `terraform plan` of the 50-read config
# (../shared/peers/go-provider/configs/constellation50, or the Go peer's peer50 with PEER=1) RUNS
# times under `perf record` of a few tracepoints (exec, exit, connect, write, waitid; no sampling,
# so Terraform and the provider run at their normal speed), and prints the medians of each phase
# of each provider process (plan-timeline.py says what each column is), and the floor's plan
# (50 terraform_data, no provider) traced the same way, for comparison.
# With B=OTHER-BUILD-DIR, plans with OTHER-BUILD-DIR's provider alternate with BUILD-DIR's in the
# same trace (an A/B under the same load), each printed on its own.
# Usage: bench/provider/plan-timeline.sh BUILD-DIR [PEER-DIR]   (RUNS, default 9; PEER=1; B=DIR)
# Needs perf (Debian: linux-perf) with tracepoint access (root, or kernel.perf_event_paranoid <= -1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
peer=$(cd "${2:-$top/../shared/peers/go-provider}" && pwd)
runs=${RUNS:-9}
command -v perf >/dev/null || { echo "perf is needed (Debian package linux-perf)" >&2; exit 2; }
[[ -x $build/provider/terraform-provider-constellation ]] || { echo "no provider in $build/provider" >&2; exit 2; }
peer_dir=${PEER_GO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peer-go}/bin

work=$(mktemp -d /tmp/ct-plan-timeline-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$peer/configs/floor50" "$work/floor"
if [[ ${PEER:-0} == 1 ]]; then
	[[ -x $peer_dir/terraform-provider-peer ]] || { echo "no Go peer in $peer_dir: run $peer/build.sh" >&2; exit 2; }
	cp -r "$peer/configs/peer50" "$work/ds"
	what="50 peer_image reads (Go peer)"
else
	cp -r "$peer/configs/constellation50" "$work/ds"
	what="50 constellation_image reads ($build/provider)"
fi
tfrc() { # tfrc FILE PROVIDER-DIR
	cat >"$1" <<-EOF
		provider_installation {
		  dev_overrides {
		    "registry.terraform.io/edgelesssys/constellation" = "$2"
		    "registry.terraform.io/peer/peer" = "$peer_dir"
		  }
		  direct {}
		}
	EOF
}
tfrc "$work/dev.tfrc" "$build/provider"
b_tfrc=
if [[ -n ${B:-} ]]; then
	b_build=$(cd "$B" && pwd)
	[[ -x $b_build/provider/terraform-provider-constellation ]] || { echo "no provider in $b_build/provider" >&2; exit 2; }
	tfrc "$work/b.tfrc" "$b_build/provider"
	b_tfrc=$work/b.tfrc
	what="$what, alternating with $b_build/provider"
fi
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_VAR_cdn_dir="$peer/fixtures/cdn"
unset TF_LOG TF_LOG_PATH TF_LOG_PROVIDER
events=sched:sched_process_exec,sched:sched_process_exit,syscalls:sys_enter_connect,syscalls:sys_enter_write,syscalls:sys_exit_waitid,syscalls:sys_enter_exit_group
trace() { # trace DIR OUT
	(cd "$1" && terraform plan -no-color -input=false >/dev/null) # warm-up
	perf record -q -e "$events" -o "$2" -- sh -c "cd '$1' && for i in \$(seq $runs); do terraform plan -no-color -input=false >/dev/null; \
		if [ -n '$b_tfrc' ]; then TF_CLI_CONFIG_FILE='$b_tfrc' terraform plan -no-color -input=false >/dev/null; fi; done" >/dev/null 2>&1
	perf script -i "$2" -F comm,pid,tid,time,event,trace 2>/dev/null
}
echo "== plan-timeline.sh $(date -u +%FT%TZ), $runs plans each; $(uptime | sed 's/.*load average/load average/')"
echo "-- $what"
trace "$work/ds" "$work/ds.perf" | python3 "$here/plan-timeline.py"
echo "-- 50 terraform_data (floor)"
trace "$work/floor" "$work/floor.perf" | python3 -c '
import re, statistics, sys
start, out = {}, []
for line in sys.stdin:
    m = re.match(r"\s*(\S+)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
    if not m: continue
    comm, pid, tid, t, ev, rest = m.groups()
    if ev == "sched:sched_process_exec" and rest.split()[0].endswith("/terraform"): start[pid] = float(t)
    elif ev == "sched:sched_process_exit" and pid in start and "group_dead=true" in rest: out.append((float(t) - start.pop(pid)) * 1000)
print(f"{len(out)} plans; terraform exec to exit: median {statistics.median(out):.1f} ms")'
