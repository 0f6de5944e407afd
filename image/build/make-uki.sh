#!/bin/bash
# make-uki.sh --stub STUB --linux VMLINUZ --initrd INITRD --osrel OS_RELEASE --cmdline-file F --out UKI
# Unified kernel image: systemd-stub (linuxx64.efi.stub from the node tree) with .osrel,
# .cmdline, .initrd and .linux added by objcopy, each at the next 4 KiB-aligned address after
# the stub's last section, as ukify does (no ukify in bookworm). The stub measures every
# section into PCR 11 and hands .cmdline to the kernel; the .cmdline file is written with a
# trailing NUL (the kernel's EFI stub measures LoadOptions into PCR 9 as a NUL-terminated
# UTF-16 string, constellation.md §5.3). The PE timestamp is SOURCE_DATE_EPOCH (default 0), so
# the output is a function of its inputs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

stub="" linux="" initrd="" osrel="" cmdline="" out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--stub) stub=$2; shift 2 ;;
	--linux) linux=$2; shift 2 ;;
	--initrd) initrd=$2; shift 2 ;;
	--osrel) osrel=$2; shift 2 ;;
	--cmdline-file) cmdline=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) ct_die "make-uki.sh: unknown argument '$1'" ;;
	esac
done
for v in stub linux initrd osrel cmdline out; do
	[ -n "${!v}" ] || ct_die "make-uki.sh: --${v/cmdline/cmdline-file} is required"
	[ "$v" = out ] || [ -s "${!v}" ] || ct_die "make-uki.sh: $v '${!v}' is missing or empty"
done
ct_need objcopy objdump

# End of the stub's last section (VMA + size, absolute, i.e. including ImageBase).
end=0
while read -r idx name size vma rest; do
	[[ "$idx" =~ ^[0-9]+$ ]] || continue
	e=$((16#$vma + 16#$size))
	[ "$e" -le "$end" ] || end=$e
done < <(objdump -h -w "$stub")
[ "$end" -gt 0 ] || ct_die "$stub: cannot read its section table"
align() { echo $(( ($1 + 4095) / 4096 * 4096 )); }

args=()
vma=$(align "$end")
for s in osrel:"$osrel" cmdline:"$cmdline" initrd:"$initrd" linux:"$linux"; do
	name=.${s%%:*}
	file=${s#*:}
	args+=(--add-section "$name=$file" --change-section-vma "$name=$(printf '0x%x' "$vma")")
	vma=$(align $((vma + $(ct_file_size "$file"))))
done

tmp="$out.tmp.$$"
objcopy "${args[@]}" "$stub" "$tmp" || { rm -f "$tmp"; ct_die "objcopy failed building $out"; }
# objcopy (binutils 2.40) stamps the PE header with the current time, which is covered by the
# Authenticode digest the firmware measures into PCR 4. Set it to SOURCE_DATE_EPOCH and
# recompute the PE checksum (PE/COFF spec, "Optional Header Windows-Specific Fields").
ct_need python3
python3 - "$tmp" "${SOURCE_DATE_EPOCH:-0}" <<'EOF' || { rm -f "$tmp"; ct_die "cannot normalise the PE header of $out"; }
import struct, sys
path, epoch = sys.argv[1], int(sys.argv[2]) & 0xffffffff
b = bytearray(open(path, "rb").read())
pe = struct.unpack_from("<I", b, 0x3c)[0]
if b[pe:pe + 4] != b"PE\0\0":
    sys.exit("not a PE file")
struct.pack_into("<I", b, pe + 8, epoch)          # COFF TimeDateStamp
csum_off = pe + 24 + 64                            # optional header CheckSum (PE32 and PE32+)
struct.pack_into("<I", b, csum_off, 0)
data = b + b"\0" if len(b) % 2 else b
s = 0
for (w,) in struct.iter_unpack("<H", data):
    s += w
    s = (s & 0xffff) + (s >> 16)
s = (s & 0xffff) + (s >> 16)
struct.pack_into("<I", b, csum_off, (s + len(b)) & 0xffffffff)
open(path, "wb").write(b)
EOF
mv -f "$tmp" "$out"
ct_log "uki: $out ($(ct_file_size "$out") bytes)"
