#!/bin/bash
# test-qemu-infra: the lifecycle of lib/qemuinfra through constellation-qemu, with real
# qemu-system-x86_64 (TCG) + OVMF + swtpm on loopback only.
#
# The VMs boot CT_QEMU_INFRA_IMAGE if set (the project's node image), else a 1 MiB blank disk on
# which OVMF reaches its boot manager: the lifecycle is under test, not the OS. 256 MiB, 1 vCPU,
# and everything is stopped right after the checks (shared, loaded machine).
#
# Checks: up 1+1; QEMU and swtpm outlive the CLI (own session, not our children); status alive;
# host listeners only on the nodes' 127.x addresses (ss -ltnp); fw_cfg metadata per node (lib/metadata
# fields, bcrypt of the init secret, which is nowhere in the state); the relay; a second up
# changes nothing; QEMU killed from outside -> status names the dead node and why; a recycled pid
# (start time or exe differ) is reported and never signalled, also by down; up converges by
# restarting only the dead node (its state disk kept); scaling adds and removes only the named
# worker; a second cluster with the same uid moves to another loopback range; down stops every
# process and leaves no file; down twice succeeds.
set -euo pipefail

fail() { echo "test-qemu-infra: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }

bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}/cli/qemu/constellation-qemu
[ -x "$bin" ] || fail "$bin not built"
for t in qemu-system-x86_64 swtpm ss jq; do
	command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh: qemu-system-x86, swtpm, iproute2, jq)"
done
[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || fail "OVMF is not installed (apt-get install ovmf)"
py=/usr/bin/python3
[ -x "$py" ] || fail "/usr/bin/python3 is needed for the bcrypt and relay checks"

# Short base path: unix socket paths must fit 108 bytes.
work=$(mktemp -d /tmp/ctqi.XXXXXX)
state=$work/st.json
state2=$work/st2.json
decoy=""
cleanup() {
	# Only what this test started: the clusters through down (by recorded pid), the decoy by pid.
	"$bin" down --state "$state" >/dev/null 2>&1 || true
	"$bin" down --state "$state2" >/dev/null 2>&1 || true
	[ -z "$decoy" ] || kill "$decoy" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${CT_QEMU_INFRA_IMAGE:-}" ]; then
	image=$CT_QEMU_INFRA_IMAGE
	[ -s "$image" ] || fail "CT_QEMU_INFRA_IMAGE=$image is missing"
else
	image=$work/blank.raw
	truncate -s 1M "$image"
fi

up() { "$bin" up --state "$state" --mem 256 --vcpus 1 "$@"; }
status() { "$bin" status --state "$state"; }
starttime() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || true; }
pid_of() { jq -r ".nodes[] | select(.name == \"$1\") | .$2.pid" "$state"; }

# ---------------------------------------------------------------------------------------------
step "up: 1 control plane + 1 worker"
t0=$(date +%s.%N)
up --image "$image" --control-planes 1 --workers 1 --disk-size 64M --init-secret-file "$work/init-secret" \
	> "$work/up.json" || fail "up failed"
t1=$(date +%s.%N)
echo "up took $(echo "$t1 - $t0" | bc 2>/dev/null || echo "?") s" >&2
[ "$(jq -r .all_alive "$work/up.json")" = true ] || fail "up: not all nodes alive: $(cat "$work/up.json")"
[ "$(jq -r '.nodes | length' "$state")" = 2 ] || fail "state does not hold two nodes"
[ "$(jq -r .accel "$state")" = tcg ] || fail "accel is not tcg here (/dev/kvm is PVM): $(jq -r .accel_reason "$state")"
echo "accel: $(jq -r .accel_reason "$state")" >&2
[ "$(stat -c %a "$state")" = 600 ] || fail "state file is not 0600"

cp_q=$(pid_of control-plane-0 qemu) cp_s=$(pid_of control-plane-0 swtpm)
w_q=$(pid_of worker-0 qemu) w_s=$(pid_of worker-0 swtpm)

step "processes outlive the CLI (own session, not our children), identity recorded"
mysid=$(ps -o sid= -p $$ | tr -d ' ')
for p in "$cp_q" "$cp_s" "$w_q" "$w_s"; do
	[ -d "/proc/$p" ] || fail "pid $p is not running after the CLI exited"
	ppid=$(ps -o ppid= -p "$p" | tr -d ' ')
	sid=$(ps -o sid= -p "$p" | tr -d ' ')
	[ "$ppid" != $$ ] || fail "pid $p is a child of the test shell"
	[ "$sid" != "$mysid" ] || fail "pid $p is in the caller's session"
	rec=$(jq -r ".nodes[] | (.qemu, .swtpm) | select(.pid == $p) | .start_time" "$state")
	[ "$rec" = "$(starttime "$p")" ] || fail "pid $p: recorded start time $rec, /proc says $(starttime "$p")"
done
[ "$(readlink "/proc/$cp_q/exe")" = "$(jq -r '.nodes[0].qemu.exe' "$state")" ] || fail "qemu exe not recorded"

step "status: both alive"
status > "$work/status.json" || fail "status failed"
[ "$(jq -r '[.nodes[] | select(.alive)] | length' "$work/status.json")" = 2 ] || fail "status: $(cat "$work/status.json")"

step "host ports: listening only on the nodes' 127.x addresses"
ss -ltnpH > "$work/ss.txt"
for p in "$cp_q" "$w_q"; do
	grep -F "pid=$p," "$work/ss.txt" > "$work/ss-$p.txt" || fail "QEMU $p listens on nothing"
	if awk '{ print $4 }' "$work/ss-$p.txt" | grep -Ev '^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$'; then
		fail "QEMU $p listens outside loopback: $(cat "$work/ss-$p.txt")"
	fi
done
grep -F -e "pid=$cp_s," -e "pid=$w_s," "$work/ss.txt" && fail "swtpm listens on TCP"
for n in control-plane-0 worker-0; do
	addr=$(jq -r ".nodes[] | select(.name == \"$n\") | .host_address" "$state")
	[[ "$addr" =~ ^127\.([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || fail "$n: host address $addr"
	[ "${BASH_REMATCH[1]}" != 0 ] || fail "$n: $addr is in 127.0.x.x"
	for port in 9000 9999 30090 30080 30081 6443; do
		grep -qF " $addr:$port " "$work/ss.txt" || fail "$n: nothing listens on $addr:$port"
	done
	# etcd's peer port and the join service's update port: forwarded on control planes only
	for port in 2380 30091; do
		if [ "$n" = control-plane-0 ]; then
			grep -qF " $addr:$port " "$work/ss.txt" || fail "$n: nothing listens on $addr:$port (control-plane port)"
		else
			grep -qF " $addr:$port " "$work/ss.txt" && fail "$n: a worker forwards the control-plane port $port"
		fi
	done
done
cp_addr=$(jq -r '.nodes[0].host_address' "$state")
w_addr=$(jq -r '.nodes[1].host_address' "$state")
[ "${cp_addr%.*}" = "${w_addr%.*}" ] && [ "${cp_addr##*.}" = 1 ] && [ "${w_addr##*.}" = 100 ] \
	|| fail "address scheme: $cp_addr / $w_addr"
[ "$(jq -r .out_of_cluster_endpoint "$state")" = "$cp_addr" ] || fail "out_of_cluster_endpoint"
[ "$(jq -r .in_cluster_endpoint "$state")" = 10.42.1.100 ] || fail "in_cluster_endpoint"
[ "$(jq -r .ip_cidr_node "$state")" = 10.42.0.0/22 ] || fail "ip_cidr_node"
[ "$(jq -c .api_server_cert_sans "$state")" = "[\"$cp_addr\",\"10.42.1.100\"]" ] || fail "api_server_cert_sans"

step "fw_cfg metadata"
d0=$(jq -r '.nodes[0].dir' "$state") d1=$(jq -r '.nodes[1].dir' "$state")
grep -q -- "-fw_cfg name=opt/constellation/metadata,file=$d0/metadata.json" "/proc/$cp_q/cmdline" 2>/dev/null \
	|| tr '\0' ' ' < "/proc/$cp_q/cmdline" | grep -qF -- "-fw_cfg name=opt/constellation/metadata,file=$d0/metadata.json" \
	|| fail "QEMU was not given the metadata through fw_cfg"
m0=$d0/metadata.json m1=$d1/metadata.json
[ "$(jq -r '.name + " " + .role + " " + .vpc_ip + " " + .endpoint + " [" + (.join_endpoints | join(",")) + "] " + (.control_plane_ips | join(","))' "$m0")" \
	= "control-plane-0 control-plane 10.42.1.100 $cp_addr [] 10.42.1.100" ] || fail "control plane metadata: $(cat "$m0")"
[ "$(jq -r '.name + " " + .role + " " + .vpc_ip + " " + (.join_endpoints | join(","))' "$m1")" \
	= "worker-0 worker 10.42.2.100 10.42.1.100:30090" ] || fail "worker metadata: $(cat "$m1")"
[ "$(jq -r .uid "$m0")" = "$(jq -r .uid "$state")" ] || fail "metadata uid"
[ "$(jq -r 'has("init_secret_hash")' "$m1")" = false ] || fail "worker metadata carries the init secret hash"
hash=$(jq -r .init_secret_hash "$m0")
[[ "$hash" == '$2b$10$'* ]] && [ ${#hash} = 60 ] || fail "init_secret_hash is not bcrypt \$2b\$10\$: $hash"
[ "$(jq -r .init_secret_hash "$state")" = "$hash" ] || fail "state and metadata hash differ"
[ "$(stat -c %a "$work/init-secret")" = 600 ] && [ "$(stat -c %s "$work/init-secret")" = 32 ] || fail "init secret file"
HASH=$hash SECRET_FILE=$work/init-secret "$py" -W ignore -c '
import crypt, os, sys
s = open(os.environ["SECRET_FILE"]).read()
sys.exit(0 if crypt.crypt(s, os.environ["HASH"]) == os.environ["HASH"] else 1)' || fail "bcrypt hash does not verify the init secret"
secret=$(cat "$work/init-secret")
grep -rqF -- "$secret" "$state" "$d0" "$d1" 2>/dev/null && fail "the init secret is in the state or the node files"
tr '\0' ' ' < "/proc/$cp_q/cmdline" | grep -qF "guestfwd" && fail "the control plane forwards to itself"
tr '\0' ' ' < "/proc/$w_q/cmdline" | grep -qF "guestfwd=tcp:10.42.1.100:30090-cmd:$bin relay $cp_addr 30090" \
	|| fail "the worker has no guestfwd to the control plane's join service"
tr '\0' ' ' < "/proc/$w_q/cmdline" | grep -qF "restrict=on" || fail "the worker's network is not restricted"
tr '\0' ' ' < "/proc/$w_q/cmdline" | grep -qF ":2380" && fail "the worker has a route to etcd's peer port"

step "relay: stdin/stdout <-> 127.x:port (what slirp runs for each guest connection)"
rport=$(( 20000 + RANDOM % 20000 ))
raddr=127.$(( 1 + RANDOM % 250 )).$(( RANDOM % 250 )).9
export READY=$work/echo.ready
ADDR=$raddr PORT=$rport timeout 60 "$py" -c '
import os, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ["ADDR"], int(os.environ["PORT"]))); s.listen(1)
open(os.environ["READY"], "w").close()
c, _ = s.accept(); data = b""
while True:
    b = c.recv(65536)
    if not b: break
    data += b
c.sendall(b"echo:" + data); c.close()' 2>"$work/echo.err" &
epid=$!
for _ in $(seq 100); do [ -e "$READY" ] && break; sleep 0.1; done
[ -e "$READY" ] || fail "echo server did not start: $(cat "$work/echo.err")"
got=$(printf 'hello-from-guest' | timeout 30 "$bin" relay "$raddr" "$rport") || fail "relay exited non-zero"
wait "$epid" || fail "echo server failed: $(cat "$work/echo.err")"
[ "$got" = "echo:hello-from-guest" ] || fail "relay returned '$got'"
if "$bin" relay 10.0.2.2 "$rport" </dev/null >/dev/null 2>&1; then fail "relay dialled a non-loopback address"; fi

step "up again: converged, nothing restarted"
up > "$work/up2.json" || fail "second up failed"
[ "$(pid_of control-plane-0 qemu) $(pid_of worker-0 qemu)" = "$cp_q $w_q" ] || fail "second up restarted a running VM"

step "QEMU killed from outside -> status reports it dead, with the reason"
kill -KILL "$w_q"
for _ in $(seq 100); do [ -z "$(starttime "$w_q")" ] && break; grep -q '^State:.*Z' "/proc/$w_q/status" 2>/dev/null && break; sleep 0.1; done
status > "$work/status2.json" || fail "status failed"
[ "$(jq -r '.nodes[] | select(.name == "worker-0") | .alive' "$work/status2.json")" = false ] || fail "killed worker reported alive"
reason=$(jq -r '.nodes[] | select(.name == "worker-0") | .reason' "$work/status2.json")
[[ "$reason" == "qemu gone: pid $w_q"* ]] || fail "reason for the dead worker: '$reason'"
[ "$(jq -r '.nodes[] | select(.name == "control-plane-0") | .alive' "$work/status2.json")" = true ] || fail "control plane not alive"
[ "$(jq -r .all_alive "$work/status2.json")" = false ] || fail "all_alive with a dead worker"
echo "reported: $reason" >&2

step "recycled pid: reported and never signalled (status and down)"
sleep 300 &
decoy=$!
st=$(starttime "$decoy")
mkdir "$work/fake"
# (a) start time differs (the pid was reused); (b) start time right, but another program
# A fake cluster in its own dir: its control plane never started, its worker "is" the decoy.
fake_state() {
	jq --argjson p "$decoy" --argjson st "$1" --arg d "$work/fake" \
		'.dir = $d | .nodes = [(.nodes[0] | .dir = $d + "/control-plane-0" | .qemu = null | .swtpm = null),
		  (.nodes[1] | .dir = $d + "/worker-0" | .qemu = {pid: $p, start_time: $st, exe: .qemu.exe} | .swtpm = null)]' \
		"$state" > "$state2"
}
fake_state $((st + 1))
"$bin" status --state "$state2" > "$work/fake-status.json" || fail "status (recycled) failed"
reason=$(jq -r '.nodes[1].reason' "$work/fake-status.json")
[[ "$reason" == "qemu pid-recycled: pid $decoy now belongs to another process"* ]] || fail "recycled start time: '$reason'"
"$bin" down --state "$state2" > /dev/null || fail "down with a recycled pid failed"
kill -0 "$decoy" 2>/dev/null || fail "down killed the process that took over the recorded pid"
mkdir -p "$work/fake"
fake_state "$st"
"$bin" status --state "$state2" > "$work/fake-status.json" || fail "status (other exe) failed"
reason=$(jq -r '.nodes[1].reason' "$work/fake-status.json")
[[ "$reason" == "qemu pid-recycled: pid $decoy does not run /"* ]] || fail "recycled exe: '$reason'"
"$bin" down --state "$state2" > /dev/null || fail "down with another program on the pid failed"
kill -0 "$decoy" 2>/dev/null || fail "down killed a process that runs another program"
kill "$decoy"; wait "$decoy" 2>/dev/null || true; decoy=""
[ ! -e "$state2" ] && [ ! -e "$work/fake" ] || fail "down of the fake cluster left files"
echo "recycled pids reported, not signalled" >&2

step "up converges: only the dead worker restarts, with its disks kept"
echo keep > "$work/marker"
dd if="$work/marker" of="$d1/state.raw" conv=notrunc status=none
up > "$work/up3.json" || fail "converging up failed"
[ "$(jq -r .all_alive "$work/up3.json")" = true ] || fail "not all alive after converge"
[ "$(pid_of control-plane-0 qemu) $(pid_of control-plane-0 swtpm)" = "$cp_q $cp_s" ] || fail "the live control plane was restarted"
nw_q=$(pid_of worker-0 qemu) nw_s=$(pid_of worker-0 swtpm)
[ "$nw_q" != "$w_q" ] && [ -d "/proc/$nw_q" ] || fail "worker was not restarted"
[ "$(head -c 4 "$d1/state.raw")" = keep ] || fail "the worker's state disk was recreated"
# A zombie (exited, not yet reaped by whoever inherited it) is not running: check the state too.
[ -d "/proc/$w_s" ] && [ "$(sed 's/.*) //' "/proc/$w_s/stat" 2>/dev/null | cut -d' ' -f1)" != Z ] && [ "$(starttime "$w_s")" = "$(jq -r '.nodes[1].swtpm.start_time' <<<"$(cat "$work/up.json")")" ] \
	&& fail "the dead worker's old swtpm still runs"

step "scale: a second worker joins, then leaves; the others keep running"
up --workers 2 > "$work/up4.json" || fail "scale-up failed"
[ "$(jq -r .all_alive "$work/up4.json")" = true ] || fail "not all alive after scale-up"
[ "$(jq -r '[.nodes[].name] | join(",")' "$state")" = control-plane-0,worker-0,worker-1 ] || fail "nodes after scale-up"
[ "$(jq -r '.nodes[2].host_address' "$state")" = "${cp_addr%.*}.101" ] || fail "worker-1 host address"
[ "$(jq -r '.nodes[2].vpc_ip' "$state")" = 10.42.2.101 ] || fail "worker-1 vpc_ip"
[ "$(pid_of control-plane-0 qemu) $(pid_of worker-0 qemu)" = "$cp_q $nw_q" ] || fail "scale-up restarted a running VM"
w1_q=$(pid_of worker-1 qemu) w1_dir=$(jq -r '.nodes[2].dir' "$state")
up --workers 1 > "$work/up5.json" || fail "scale-down failed"
[ "$(jq -r '[.nodes[].name] | join(",")' "$state")" = control-plane-0,worker-0 ] || fail "nodes after scale-down"
[ ! -e "$w1_dir" ] || fail "scale-down left $w1_dir"
[ -z "$(starttime "$w1_q")" ] || grep -q '^State:.*Z' "/proc/$w1_q/status" || fail "worker-1's QEMU survived scale-down"
[ "$(pid_of control-plane-0 qemu) $(pid_of worker-0 qemu)" = "$cp_q $nw_q" ] || fail "scale-down restarted a running VM"

step "a second cluster with the same uid takes another loopback range"
uid=$(jq -r .uid "$state")
"$bin" up --state "$state2" --uid "$uid" --name other --image "$image" --control-planes 1 --workers 0 --disk-size 1M \
	--mem 256 --vcpus 1 --accel tcg --init-secret-file "$work/init-secret" > "$work/up-other.json" || fail "second cluster up failed"
o_addr=$(jq -r '.nodes[0].host_address' "$state2")
[ "${o_addr%.*}" != "${cp_addr%.*}" ] || fail "second cluster reuses $cp_addr's range"
o_q=$(jq -r '.nodes[0].qemu.pid' "$state2")
"$bin" down --state "$state2" > /dev/null || fail "down of the second cluster failed"
[ -z "$(starttime "$o_q")" ] || grep -q '^State:.*Z' "/proc/$o_q/status" || fail "second cluster's QEMU survived down"

step "down: every process stopped by pid, no file left; down twice"
all="$cp_q $cp_s $nw_q $nw_s"
t0=$(date +%s.%N)
"$bin" down --state "$state" > /dev/null || fail "down failed"
t1=$(date +%s.%N)
echo "down took $(echo "$t1 - $t0" | bc 2>/dev/null || echo "?") s" >&2
for p in $all; do
	if [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
		fail "pid $p still runs after down"
	fi
done
[ ! -e "$state" ] || fail "down left the state file"
[ ! -e "$state.d" ] || fail "down left files: $(find "$state.d")"
ss -ltnH | grep -F " ${cp_addr%.*}." && fail "something still listens in ${cp_addr%.*}.*"
"$bin" down --state "$state" > /dev/null || fail "second down failed"
echo "test-qemu-infra: OK" >&2
