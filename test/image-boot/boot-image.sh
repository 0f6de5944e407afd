#!/bin/bash
# boot-image.sh --disk DISK --out DIR [options]: boots a node disk image under QEMU and waits for
# an outcome. The boot harness of every node test (image, bootstrapper, disk-mapper, ...).
#
# QEMU runs under TCG (/dev/kvm here is PVM and runs no stock guest, machine.md §5) with OVMF and
# a swtpm vTPM; DISK is attached in snapshot mode (never modified). -nodefaults: no empty CD-ROM,
# so the firmware makes exactly one boot attempt and PCR 4 holds only that one.
#
# Channels (in DIR):
#   console.log   the serial console (kernel messages; no login is offered on it)
#   report.log    the report channel: virtio-serial port "ct.report" (/dev/virtio-ports/ct.report
#                 in the guest), written only through the guest's /usr/libexec/constellation/report
#                 helper, which serializes writers, so every line arrives whole. Lines start "CT-".
#   port-NAME.log one more virtio-serial port per --port NAME (/dev/virtio-ports/NAME)
#
# Options:
#   --timeout S            overall limit in seconds for the outcome and the --wait-line lines (600)
#   --expect report        (default) wait for the image's constellation-pcr-report (CT-REPORT-END);
#                          then write DIR/pcrs ("INDEX HEX"), DIR/eventlog.bin (checked against the
#                          SHA-256 the guest sent), DIR/root ("DEVICE VERITY-STATUS"), DIR/units
#                          ("UNIT LOAD ACTIVE" for the login/shell units)
#   --expect verity-failure  wait for the kernel's dm-verity corruption message on the console
#   --expect none          wait for nothing but the --wait-line lines
#   --wait-line REGEX      then wait for a report-channel line matching REGEX (grep -E; repeatable)
#   --extra-disk FILE[,snapshot]  attach FILE as one more virtio disk (raw, writable unless
#                          ",snapshot"); disk N (1, 2, ...) has serial "ct-disk-N" in the guest
#                          (/sys/block/vdX/serial, /dev/disk/by-id/virtio-ct-disk-N)
#   --hostfwd [ADDR:]HOSTPORT:GUESTPORT  forward a TCP port of a loopback address (default
#                          127.0.0.1; only 127.0.0.0/8 is accepted) to the guest. Adds a QEMU
#                          user-network NIC (restrict=on: the guest reaches nothing outside; DHCP
#                          gives it 10.0.2.15)
#   --guestfwd GUESTIP:GUESTPORT:127.X.Y.Z:HOSTPORT  a TCP connection of the guest to
#                          GUESTIP:GUESTPORT (in 10.0.2.0/24) goes to a loopback address of the host
#                          (QEMU user networking's guestfwd; only 127.0.0.0/8 is accepted). slirp runs
#                          `constellation-qemu relay 127.X.Y.Z HOSTPORT` for each connection
#                          (a tcp: chardev would take one connection only); the relay is
#                          $CT_BINARY_DIR/cli/qemu/constellation-qemu unless CT_RELAY names it
#   --fw-cfg NAME=FILE     QEMU fw_cfg blob (e.g. opt/constellation/metadata=FILE: the node's metadata)
#   --tpm-state DIR        swtpm state in DIR (created; kept), e.g. to boot a node twice with the
#                          same TPM; default: a fresh TPM per boot
#   --port NAME            one more virtio-serial port (repeatable), to DIR/port-NAME.log
#   --run CMD              after the outcome, run `bash -c CMD` while the VM is still up, with
#                          CT_BOOT_DIR=DIR, CT_BOOT_REPORT=DIR/report.log, CT_BOOT_QEMU_PID and
#                          CT_BOOT_WAIT_LINE (test/image-boot/wait-line.sh) in the environment;
#                          its exit status becomes this script's
#   --mem MIB (2048), --smp N (2)
# QEMU and swtpm are stopped on every exit path. Exit status 0 only when the outcome, every
# --wait-line and --run succeed; otherwise the reason is printed with the last console and report
# lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die2() { echo "boot-image.sh: $*" >&2; exit 2; }
disk="" out="" timeout=600 expect=report tpm_state="" run_cmd="" mem=2048 smp=2
wait_lines=() extra_disks=() hostfwds=() guestfwds=() fwcfgs=() ports=()
while [ $# -gt 0 ]; do
	[ "$1" = -h ] || [ "$1" = --help ] || [ $# -ge 2 ] || die2 "$1 needs a value"
	case "$1" in
	--disk) disk=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--expect) expect=$2; shift 2 ;;
	--wait-line) wait_lines+=("$2"); shift 2 ;;
	--extra-disk) extra_disks+=("$2"); shift 2 ;;
	--hostfwd) hostfwds+=("$2"); shift 2 ;;
	--guestfwd) guestfwds+=("$2"); shift 2 ;;
	--fw-cfg) fwcfgs+=("$2"); shift 2 ;;
	--tpm-state) tpm_state=$2; shift 2 ;;
	--port) ports+=("$2"); shift 2 ;;
	--run) run_cmd=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) die2 "unknown argument '$1' (see --help)" ;;
	esac
done
[ -n "$disk" ] && [ -n "$out" ] || die2 "--disk DISK and --out DIR are required (see --help)"
case "$expect" in report|verity-failure|none) ;; *) die2 "bad --expect '$expect' (report, verity-failure, none)" ;; esac
[[ "$timeout" =~ ^[0-9]+$ ]] || die2 "--timeout must be a number of seconds"
[ -s "$disk" ] || die2 "disk image '$disk' missing"

netdev=""
for f in "${hostfwds[@]}"; do
	[[ "$f" =~ ^((127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}):)?([0-9]{1,5}):([0-9]{1,5})$ ]] \
		|| die2 "bad --hostfwd '$f': want [127.x.y.z:]HOSTPORT:GUESTPORT (loopback only)"
	netdev+=",hostfwd=tcp:${BASH_REMATCH[2]:-127.0.0.1}:${BASH_REMATCH[3]}-:${BASH_REMATCH[4]}"
done
for f in "${guestfwds[@]}"; do
	[[ "$f" =~ ^(10\.0\.2\.[0-9]{1,3}):([0-9]{1,5}):(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}):([0-9]{1,5})$ ]] \
		|| die2 "bad --guestfwd '$f': want 10.0.2.X:GUESTPORT:127.x.y.z:HOSTPORT (loopback only)"
	relay=${CT_RELAY:-${CT_BINARY_DIR:-}/cli/qemu/constellation-qemu}
	[ -x "$relay" ] && [[ "$relay" != *[[:space:]\'\"]* ]] \
		|| die2 "--guestfwd needs the relay program: '$relay' (CT_RELAY or CT_BINARY_DIR; no spaces)"
	netdev+=",guestfwd=tcp:${BASH_REMATCH[1]}:${BASH_REMATCH[2]}-cmd:$relay relay ${BASH_REMATCH[3]} ${BASH_REMATCH[4]}"
done
for f in "${fwcfgs[@]}"; do
	[[ "$f" =~ ^(opt/[A-Za-z0-9._/-]+)=(.+)$ ]] && [ -r "${BASH_REMATCH[2]}" ] \
		|| die2 "bad --fw-cfg '$f': want opt/NAME=READABLE-FILE"
done
for p in "${ports[@]}"; do
	[[ "$p" =~ ^[A-Za-z0-9._-]{1,64}$ ]] && [ "$p" != ct.report ] || die2 "bad --port name '$p'"
done
for d in "${extra_disks[@]}"; do
	[ -e "${d%,snapshot}" ] || die2 "extra disk '${d%,snapshot}' missing"
done

for t in qemu-system-x86_64 swtpm base64 sha256sum; do
	command -v "$t" >/dev/null || { echo "boot-image.sh: FAIL: '$t' is not installed (scripts/setup.sh)" >&2; exit 1; }
done
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -r "$code" ] && [ -r "$vars" ] || { echo "boot-image.sh: FAIL: OVMF firmware not found ($code); install ovmf" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
st=$(mktemp -d "${TMPDIR:-/tmp}/ct-boot.XXXXXX")
qpid="" spid=""
cleanup() {
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	[ -z "$spid" ] || kill "$spid" 2>/dev/null || true
	[ -z "$qpid" ] || wait "$qpid" 2>/dev/null || true
	[ -z "$spid" ] || wait "$spid" 2>/dev/null || true
	rm -rf "$st"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$vars" "$st/vars.fd"
tpmdir=$st/tpm
if [ -n "$tpm_state" ]; then mkdir -p "$tpm_state"; tpmdir=$(cd "$tpm_state" && pwd); else mkdir "$tpmdir"; fi
swtpm socket --tpm2 --tpmstate dir="$tpmdir" --ctrl type=unixio,path="$st/swtpm.sock" \
	--terminate --log file="$st/swtpm.log" &
spid=$!
for _ in $(seq 100); do [ -S "$st/swtpm.sock" ] && break; sleep 0.1; done
[ -S "$st/swtpm.sock" ] || { echo "boot-image.sh: FAIL: swtpm did not create its socket" >&2; cat "$st/swtpm.log" >&2 || true; exit 1; }

console="$out/console.log"
report="$out/report.log"
: > "$console"
: > "$report"
args=(-nodefaults -accel tcg -cpu max -M q35 -m "$mem" -smp "$smp" -display none -no-reboot
	-drive if=pflash,format=raw,unit=0,file="$code",readonly=on
	-drive if=pflash,format=raw,unit=1,file="$st/vars.fd"
	-chardev socket,id=chrtpm,path="$st/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
	-device tpm-tis,tpmdev=tpm0
	-drive file="$disk",format=raw,if=none,id=disk0,snapshot=on -device virtio-blk-pci,drive=disk0,bootindex=0
	-serial file:"$console" -monitor none
	-device virtio-serial-pci,id=vser0
	-chardev file,id=ctreport,path="$report" -device virtserialport,bus=vser0.0,chardev=ctreport,name=ct.report)
n=0
for p in "${ports[@]}"; do
	n=$((n + 1))
	: > "$out/port-$p.log"
	args+=(-chardev file,id=port$n,path="$out/port-$p.log" -device virtserialport,bus=vser0.0,chardev=port$n,name="$p")
done
n=0
for d in "${extra_disks[@]}"; do
	n=$((n + 1))
	snap=off
	[ "$d" = "${d%,snapshot}" ] || snap=on
	args+=(-drive file="${d%,snapshot}",format=raw,if=none,id=xdisk$n,snapshot=$snap -device virtio-blk-pci,drive=xdisk$n,serial=ct-disk-$n)
done
if [ -n "$netdev" ]; then
	# romfile=: no iPXE option ROM, so the firmware adds no network boot attempt
	args+=(-netdev "user,id=net0,restrict=on$netdev" -device virtio-net-pci,netdev=net0,romfile=)
fi
for f in "${fwcfgs[@]}"; do
	args+=(-fw_cfg "name=${f%%=*},file=${f#*=}")
done
qemu-system-x86_64 "${args[@]}" >"$st/qemu.out" 2>&1 &
qpid=$!

fail() {
	echo "boot-image.sh: FAIL: $*" >&2
	echo "---- last console lines ($console) ----" >&2
	tail -n 25 "$console" | tr -d '\r' >&2 || true
	echo "---- last report lines ($report) ----" >&2
	tail -n 5 "$report" | cut -c1-200 >&2 || true
	cat "$st/qemu.out" >&2 || true
	exit 1
}

t0=$(date +%s)
last=-1
verity_re='device-mapper: verity: .*(corrupted|failed)|Verification of data area failed|verity.*corrupt'
progress() {
	local el=$1
	if [ $((el / 15)) -ne "$last" ]; then
		last=$((el / 15))
		echo "[boot ${el}s] $(tail -n 1 "$console" | tr -d '\r' | cut -c1-110)" >&2
	fi
}
alive() {
	kill -0 "$qpid" 2>/dev/null && return 0
	wait "$qpid" 2>/dev/null || true; qpid=
	return 1
}
while [ "$expect" != none ]; do
	el=$(($(date +%s) - t0))
	if [ "$expect" = report ] && grep -q '^CT-REPORT-END$' "$report"; then
		break
	fi
	if grep -Eq "$verity_re" "$console"; then
		[ "$expect" = verity-failure ] && { echo "[boot ${el}s] dm-verity refused the root: $(grep -Eam1 "$verity_re" "$console" | tr -d '\r')" >&2; exit 0; }
		fail "dm-verity reported corruption: $(grep -Eam1 "$verity_re" "$console" | tr -d '\r')"
	fi
	alive || fail "QEMU exited after ${el}s before the expected outcome ($expect)"
	[ "$el" -lt "$timeout" ] || fail "timeout: no outcome ($expect) within ${timeout}s"
	progress "$el"
	sleep 1
done
el=$(($(date +%s) - t0))
[ "$expect" = none ] || echo "[boot ${el}s] report received" >&2
echo "$el" > "$out/boot-seconds"

if [ "$expect" = report ]; then
	sed -n 's/^CT-PCR sha256 \([0-9]*\) \([0-9a-fA-F]\{64\}\)$/\1 \2/p' "$report" | tr 'A-F' 'a-f' > "$out/pcrs"
	[ "$(wc -l < "$out/pcrs")" -eq 18 ] || fail "report has $(wc -l < "$out/pcrs") PCR lines, expected 18"
	sed -n 's/^CT-ROOT //p' "$report" > "$out/root"
	sed -n 's/^CT-UNIT //p' "$report" > "$out/units"
	sed -n 's/^CT-EL //p' "$report" | base64 -d > "$out/eventlog.bin" || fail "event log is not valid base64"
	want=$(sed -n 's/^CT-EVENTLOG-SHA256 \([0-9a-f]\{64\}\)$/\1/p' "$report")
	got=$(sha256sum "$out/eventlog.bin" | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$got" ] || fail "event log damaged in transit: guest sha256 '$want', received '$got'"
	echo "[boot ${el}s] PCRs and event log ($(stat -c %s "$out/eventlog.bin") bytes) in $out" >&2
fi

for re in "${wait_lines[@]}"; do
	while ! grep -Eq -- "$re" "$report"; do
		el=$(($(date +%s) - t0))
		alive || fail "QEMU exited after ${el}s before a report line matching '$re'"
		[ "$el" -lt "$timeout" ] || fail "timeout: no report line matching '$re' within ${timeout}s"
		progress "$el"
		sleep 1
	done
	echo "[boot $(($(date +%s) - t0))s] report line: $(grep -Em1 -- "$re" "$report" | cut -c1-110)" >&2
done

rc=0
if [ -n "$run_cmd" ]; then
	alive || fail "QEMU exited before --run"
	CT_BOOT_DIR=$out CT_BOOT_REPORT=$report CT_BOOT_QEMU_PID=$qpid CT_BOOT_WAIT_LINE=$here/wait-line.sh \
		bash -c "$run_cmd" || rc=$?
	[ "$rc" = 0 ] || echo "boot-image.sh: --run command failed (exit $rc)" >&2
fi
exit "$rc"
