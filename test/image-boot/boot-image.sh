#!/bin/bash
# boot-image.sh --disk DISK --out DIR [--timeout SECONDS] [--expect report|verity-failure]
#
# Boots a node disk image under QEMU (TCG: /dev/kvm here is PVM and runs no stock guest,
# machine.md §5) with OVMF and a fresh swtpm vTPM, the disk in snapshot mode (never modified).
# The console goes to DIR/console.log. Waits for:
#   report          the image's constellation-pcr-report.service output (CT-REPORT-END); then
#                   writes DIR/pcrs (lines "INDEX HEX"), DIR/eventlog.bin (checked against the
#                   SHA-256 the guest printed) and DIR/root (root device + verity status)
#   verity-failure  a dm-verity corruption message from the kernel
# -nodefaults: no empty CD-ROM, so the firmware makes exactly one boot attempt and PCR 4 holds
# only that one (a failed attempt adds "Calling"/"Returning from EFI Application" events).
# QEMU and swtpm are killed on every exit path. Exit status 0 only when the expectation is met;
# otherwise the reason is printed (with the console's last lines).
set -euo pipefail

disk="" out="" timeout=600 expect=report
while [ $# -gt 0 ]; do
	case "$1" in
	--disk) disk=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--expect) expect=$2; shift 2 ;;
	*) echo "boot-image.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ -n "$disk" ] && [ -n "$out" ] || { echo "usage: boot-image.sh --disk DISK --out DIR [--timeout S] [--expect report|verity-failure]" >&2; exit 2; }
case "$expect" in report|verity-failure) ;; *) echo "boot-image.sh: bad --expect '$expect'" >&2; exit 2 ;; esac
[ -s "$disk" ] || { echo "boot-image.sh: disk image '$disk' missing" >&2; exit 2; }

for t in qemu-system-x86_64 swtpm base64 sha256sum; do
	command -v "$t" >/dev/null || { echo "boot-image.sh: FAIL: '$t' is not installed (scripts/setup.sh)" >&2; exit 1; }
done
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -r "$code" ] && [ -r "$vars" ] || { echo "boot-image.sh: FAIL: OVMF firmware not found ($code); install ovmf" >&2; exit 1; }

mkdir -p "$out"
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
mkdir "$st/tpm"
swtpm socket --tpm2 --tpmstate dir="$st/tpm" --ctrl type=unixio,path="$st/swtpm.sock" \
	--terminate --log file="$st/swtpm.log" &
spid=$!
for _ in $(seq 100); do [ -S "$st/swtpm.sock" ] && break; sleep 0.1; done
[ -S "$st/swtpm.sock" ] || { echo "boot-image.sh: FAIL: swtpm did not create its socket" >&2; cat "$st/swtpm.log" >&2 || true; exit 1; }

console="$out/console.log"
: > "$console"
qemu-system-x86_64 -nodefaults -accel tcg -cpu max -M q35 -m 2048 -smp 2 -display none -no-reboot \
	-drive if=pflash,format=raw,unit=0,file="$code",readonly=on \
	-drive if=pflash,format=raw,unit=1,file="$st/vars.fd" \
	-chardev socket,id=chrtpm,path="$st/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
	-device tpm-tis,tpmdev=tpm0 \
	-drive file="$disk",format=raw,if=virtio,snapshot=on \
	-serial file:"$console" -monitor none -nic none \
	>"$st/qemu.out" 2>&1 &
qpid=$!

fail() {
	echo "boot-image.sh: FAIL: $*" >&2
	echo "---- last console lines ($console) ----" >&2
	tail -n 25 "$console" | tr -d '\r' >&2 || true
	cat "$st/qemu.out" >&2 || true
	exit 1
}

t0=$(date +%s)
last=-1
verity_re='device-mapper: verity: .*(corrupted|failed)|Verification of data area failed|verity.*corrupt'
while :; do
	el=$(($(date +%s) - t0))
	if [ "$expect" = report ] && grep -q '^CT-REPORT-END' <(tr -d '\r' < "$console"); then
		break
	fi
	if grep -Eq "$verity_re" "$console"; then
		[ "$expect" = verity-failure ] && { echo "[boot ${el}s] dm-verity refused the root: $(grep -Eam1 "$verity_re" "$console" | tr -d '\r')" >&2; exit 0; }
		fail "dm-verity reported corruption: $(grep -Eam1 "$verity_re" "$console" | tr -d '\r')"
	fi
	if ! kill -0 "$qpid" 2>/dev/null; then
		wait "$qpid" 2>/dev/null || true; qpid=
		fail "QEMU exited after ${el}s before the expected outcome ($expect)"
	fi
	[ "$el" -lt "$timeout" ] || fail "timeout: no outcome ($expect) within ${timeout}s"
	# progress every 15 s: the last console line
	if [ $((el / 15)) -ne "$last" ]; then
		last=$((el / 15))
		echo "[boot ${el}s] $(tail -n 1 "$console" | tr -d '\r' | cut -c1-110)" >&2
	fi
	sleep 1
done
el=$(($(date +%s) - t0))
echo "[boot ${el}s] report received" >&2
kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; qpid=

# Parse the report (lines may carry a CR from the serial console).
tr -d '\r' < "$console" > "$st/console"
sed -n 's/^CT-PCR sha256 \([0-9]*\) \([0-9a-fA-F]\{64\}\)$/\1 \2/p' "$st/console" | tr 'A-F' 'a-f' > "$out/pcrs"
[ "$(wc -l < "$out/pcrs")" -ge 16 ] || fail "report has $(wc -l < "$out/pcrs") PCR lines, expected 18"
sed -n 's/^CT-ROOT //p' "$st/console" > "$out/root"
sed -n 's/^CT-EL //p' "$st/console" | base64 -d > "$out/eventlog.bin" || fail "event log is not valid base64"
want=$(sed -n 's/^CT-EVENTLOG-SHA256 \([0-9a-f]\{64\}\)$/\1/p' "$st/console")
got=$(sha256sum "$out/eventlog.bin" | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "event log damaged in transit: guest sha256 '$want', received '$got'"
echo "$el" > "$out/boot-seconds"
echo "[boot ${el}s] PCRs and event log ($(stat -c %s "$out/eventlog.bin") bytes) in $out" >&2
