#!/bin/bash
# wait-line.sh FILE REGEX [TIMEOUT] [PID]: waits until a line of FILE (a report channel written by
# boot-image.sh, e.g. $CT_BOOT_REPORT) matches REGEX (grep -E), at most TIMEOUT seconds (60);
# prints the first matching line. Fails early when PID (e.g. $CT_BOOT_QEMU_PID) is given and has
# exited. For --run commands of boot-image.sh that wait for a node service's line.
set -euo pipefail
file=${1:?usage: wait-line.sh FILE REGEX [TIMEOUT] [PID]}
re=${2:?usage: wait-line.sh FILE REGEX [TIMEOUT] [PID]}
timeout=${3:-60}
pid=${4:-}
t0=$(date +%s)
until grep -Eq -- "$re" "$file" 2>/dev/null; do
	if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
		echo "wait-line.sh: FAIL: process $pid exited before a line matching '$re' in $file" >&2; exit 1
	fi
	[ $(($(date +%s) - t0)) -lt "$timeout" ] || { echo "wait-line.sh: FAIL: no line matching '$re' in $file within ${timeout}s" >&2; exit 1; }
	sleep 1
done
grep -Em1 -- "$re" "$file"
