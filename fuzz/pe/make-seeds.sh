#!/bin/bash
# Builds the seed corpora: a small UKI (tiny sections on a tiny PE standing in for the stub and
# kernel) and small GPT disk images with FAT12 ESPs holding it. Run from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
python3 - "$t" <<'PY'
import struct, sys
out = sys.argv[1]
def pe(sections, trailing=b""):
    # PE32+ with SizeOfHeaders 0x400, raw data 0x200-aligned in table order
    hdr = bytearray(0x400)
    hdr[0:2] = b"MZ"; struct.pack_into("<I", hdr, 0x3c, 0x40)
    hdr[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", hdr, 0x44, 0x8664, len(sections), 0, 0, 0, 240, 0x22)
    opt = 0x58
    struct.pack_into("<H", hdr, opt, 0x20b)
    struct.pack_into("<I", hdr, opt + 60, 0x400)
    struct.pack_into("<I", hdr, opt + 108, 16)
    body = bytearray(); off = 0x400; va = 0x1000
    for i, (name, data) in enumerate(sections):
        h = opt + 240 + 40 * i
        hdr[h:h + 8] = name.ljust(8, b"\0")
        struct.pack_into("<IIII", hdr, h + 8, len(data), va, len(data), off)
        pad = (-len(data)) % 0x200
        body += data + b"\0" * pad; off += len(data) + pad; va += 0x1000 + (len(data) // 0x1000) * 0x1000
    return bytes(hdr + body + trailing)
kernel = pe([(b".text", bytes(range(256)) * 2)])
uki = pe([(b".osrel", b"ID=seed\n"), (b".cmdline", b"console=ttyS0\0"), (b".initrd", b"\x07" * 700),
          (b".linux", kernel), (b".sbat", b"sbat,1\n")], trailing=b"\xab" * 5)
open(out + "/uki.efi", "wb").write(uki)
open(out + "/kernel.efi", "wb").write(kernel)
PY
cp "$t/uki.efi" "$here/corpus/fuzz-pe/uki"
cp "$t/kernel.efi" "$here/corpus/fuzz-pe/kernel"
for bits in 12; do
  mkfs.vfat -C -F $bits "$t/esp.img" 64 >/dev/null
  mmd -i "$t/esp.img" ::/EFI ::/EFI/BOOT
  mcopy -i "$t/esp.img" "$t/uki.efi" ::/EFI/BOOT/BOOTX64.EFI
  cp "$t/esp.img" "$here/corpus/fuzz-gpt-fat/fat$bits-volume"
  truncate -s $(( (34 + 128 + 34) * 512 )) "$t/disk.raw"
  printf 'label: gpt\nfirst-lba: 34\nstart=34, size=128, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n' | sfdisk -q "$t/disk.raw"
  dd if="$t/esp.img" of="$t/disk.raw" bs=512 seek=34 conv=notrunc status=none
  cp "$t/disk.raw" "$here/corpus/fuzz-gpt-fat/gpt-fat$bits"
done
