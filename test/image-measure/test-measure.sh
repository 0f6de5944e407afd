#!/bin/bash
# constellation-image measure/sign/verify against independent tools on files built here:
#  - PCR 11 equals systemd-measure calculate (systemd 252 on the host) for the same sections,
#    with and without systemd-pcrphase phases;
#  - the UKI's Authenticode digest equals osslsigncode's for an sbsign-signed UKI, and the
#    signature itself is excluded (signed == unsigned padded to 8 bytes);
#  - PCR 9 recomputed with iconv/sha256sum;
#  - reading the UKI from GPT disk images (sfdisk on a plain file) with FAT12/16/32 ESPs made by
#    mkfs.vfat + mtools gives the same measurements;
#  - malformed inputs are refused with their reason; cosign sign/verify round trip and refusals;
#  - the fast path: a UKI file is mapped (read() copies none of it) and hashed on two threads,
#    with the same result as the copy read from a disk image's ESP.
set -euo pipefail
tool=$1
srcdir=$2
for c in objcopy sbsign osslsigncode sfdisk mkfs.vfat mcopy mmd jq iconv openssl strace; do
  command -v "$c" >/dev/null || { echo "FAIL: $c is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
measure_bin=/usr/lib/systemd/systemd-measure
[ -x "$measure_bin" ] || { echo "FAIL: $measure_bin missing (package systemd)" >&2; exit 1; }

d=$(mktemp -d /tmp/test-image-measure.XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pcr() { jq -r ".measurements[\"$2\"].expected" "$1"; }

bash "$srcdir/make-uki.sh" "$d/u"
u=$d/u/uki.efi
"$tool" measure "$u" > "$d/m.json"

# --- PCR 11 against systemd-measure -----------------------------------------------------------
sm() { "$measure_bin" calculate --linux="$d/u/linux" --osrel="$d/u/osrel" --cmdline="$d/u/cmdline" \
         --initrd="$d/u/initrd" --bank=sha256 "$@" 2>/dev/null | sed -n 's/^11:sha256=//p'; }
"$tool" measure --measurements-only --pcrphase=enter-initrd "$u" > "$d/m1.json"
want=$(sm --phase=enter-initrd)
[ "$(pcr "$d/m1.json" 11)" = "$want" ] || fail "PCR 11 (enter-initrd) $(pcr "$d/m1.json" 11) != systemd-measure $want"
"$tool" measure --measurements-only --pcrphase "$u" > "$d/m4.json"
want=$(sm --phase=enter-initrd:leave-initrd:sysinit:ready)
[ "$(pcr "$d/m4.json" 11)" = "$want" ] || fail "PCR 11 (all phases) $(pcr "$d/m4.json" 11) != systemd-measure $want"
echo "ok: PCR 11 equals systemd-measure ($want)"

# PCR 11 without phases: the event list replayed by hand gives the same value.
replay() { # replay PCR n from the event list
  local v=0000000000000000000000000000000000000000000000000000000000000000
  for dg in $(jq -r ".eventlog[] | select(.pcr == $2) | .digest" "$1"); do
    v=$(printf '%s%s' "$v" "$dg" | xxd -r -p | sha256sum | cut -d' ' -f1)
  done
  echo "$v"
}
for p in 4 9 11; do
  [ "$(replay "$d/m.json" $p)" = "$(pcr "$d/m.json" $p)" ] || fail "PCR $p does not replay from its event list"
done
for p in 8 12 13 15; do
  [ "$(pcr "$d/m.json" $p)" = 0000000000000000000000000000000000000000000000000000000000000000 ] || fail "PCR $p not zero"
done

# --- PCR 9 by hand: UTF-16LE command line with its NUL, then the initrd --------------------------
c16=$(tr -d '\0' < "$d/u/cmdline" | iconv -f ascii -t utf-16le | { cat; printf '\0\0'; } | sha256sum | cut -d' ' -f1)
i=$(sha256sum < "$d/u/initrd" | cut -d' ' -f1)
v=$(printf '%064d%s' 0 "$c16" | xxd -r -p | sha256sum | cut -d' ' -f1)
v=$(printf '%s%s' "$v" "$i" | xxd -r -p | sha256sum | cut -d' ' -f1)
[ "$(pcr "$d/m.json" 9)" = "$v" ] || fail "PCR 9 $(pcr "$d/m.json" 9) != $v"
echo "ok: PCR 9"

# --- PCR 4: Authenticode against osslsigncode, signature excluded --------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/sb.key" -out "$d/sb.crt" -subj /CN=test -days 2 2>/dev/null
sbsign --key "$d/sb.key" --cert "$d/sb.crt" --output "$d/signed.efi" "$u" 2>/dev/null
oss=$({ osslsigncode verify -in "$d/signed.efi" 2>/dev/null || true; } | sed -n 's/^Calculated message digest *: *//p' | tr -d ' ' | tr A-F a-f)
[ -n "$oss" ] || fail "osslsigncode printed no digest"
"$tool" measure "$d/signed.efi" > "$d/ms.json"
ours=$(jq -r '.eventlog[] | select(.pcr == 4 and (.description | startswith("UKI"))) | .digest' "$d/ms.json")
[ "$ours" = "$oss" ] || fail "Authenticode of the signed UKI $ours != osslsigncode $oss"
# sbsign pads the image to 8 bytes before the certificate table; the unsigned image padded the
# same way hashes the same (the signature itself is excluded).
cp "$u" "$d/padded.efi"
sz=$(stat -c %s "$u")
truncate -s $(( (sz + 7) / 8 * 8 )) "$d/padded.efi"
"$tool" measure "$d/padded.efi" > "$d/mp.json"
[ "$(pcr "$d/mp.json" 4)" = "$(pcr "$d/ms.json" 4)" ] || fail "signed and padded unsigned UKI differ in PCR 4"
for p in 9 11; do
  [ "$(pcr "$d/ms.json" $p)" = "$(pcr "$d/m.json" $p)" ] || fail "signing changed PCR $p"
done
echo "ok: PCR 4 Authenticode equals osslsigncode ($oss)"

# --- GPT + FAT images ---------------------------------------------------------------------------
mkimage() { # mkimage OUT FATBITS ESP_MIB [nofile]
  local out=$1 bits=$2 mib=$3
  rm -f "$d/esp.img"
  mkfs.vfat -C -F "$bits" -n ESP "$d/esp.img" $((mib * 1024)) >/dev/null 2>&1
  mmd -i "$d/esp.img" ::/EFI ::/EFI/BOOT ::/EFI/Linux
  mcopy -i "$d/esp.img" "$d/u/osrel" ::/EFI/Linux/a-long-file-name-first.txt
  [ "${4:-}" = nofile ] || mcopy -i "$d/esp.img" "$u" ::/EFI/BOOT/BOOTX64.EFI
  truncate -s $((mib + 4))M "$out"
  printf 'label: gpt\nstart=2048, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n' $((mib * 2048)) \
    | sfdisk -q "$out"
  dd if="$d/esp.img" of="$out" bs=1M seek=1 conv=notrunc status=none
}
for bits in 12 16 32; do
  mib=$([ $bits = 12 ] && echo 2 || { [ $bits = 16 ] && echo 16 || echo 64; })
  mkimage "$d/disk$bits.raw" $bits $mib
  "$tool" measure --measurements-only "$d/disk$bits.raw" > "$d/md.json"
  "$tool" measure --measurements-only "$u" > "$d/mu.json"
  cmp -s "$d/md.json" "$d/mu.json" || fail "FAT$bits disk image measures differently from the UKI"
  echo "ok: GPT + FAT$bits image"
done

# --- refusals with their reasons ----------------------------------------------------------------
expect_fail() { # expect_fail CODE PATTERN ARGS...
  local code=$1 pat=$2; shift 2
  set +e
  "$tool" "$@" > "$d/out" 2> "$d/err"
  local rc=$?
  set -e
  [ $rc = "$code" ] || fail "'$*' exited $rc, want $code ($(cat "$d/err"))"
  grep -qF -- "$pat" "$d/err" || fail "'$*': message '$(cat "$d/err")' lacks '$pat'"
}
head -c 70000 "$u" > "$d/trunc.efi"
expect_fail 1 "UKI: section raw data beyond the end of the file" measure "$d/trunc.efi"
objcopy --remove-section .linux "$u" "$d/nolinux.efi"
expect_fail 1 "UKI: no .linux section" measure "$d/nolinux.efi"
mkimage "$d/nofile.raw" 16 16 nofile
expect_fail 1 "FAT: path not found" measure "$d/nofile.raw"
"$tool" measure --esp-path EFI/Linux/a-long-file-name-first.txt "$d/nofile.raw" >/dev/null 2>"$d/err" && fail "a text file measured as UKI"
grep -qF "UKI: truncated MS-DOS header" "$d/err" || fail "long-name lookup: $(cat "$d/err")"
truncate -s 8M "$d/noesp.raw"
printf 'label: gpt\nstart=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' | sfdisk -q "$d/noesp.raw"
expect_fail 1 "GPT: no EFI System Partition" measure "$d/noesp.raw"
head -c 100000 /dev/zero > "$d/zero.raw"
expect_fail 1 'GPT: no "EFI PART" signature at LBA 1' measure "$d/zero.raw"
cp "$d/disk16.raw" "$d/badcrc.raw"
printf 'X' | dd of="$d/badcrc.raw" bs=1 seek=$((512 + 40)) conv=notrunc status=none
expect_fail 1 "GPT: bad header CRC32" measure "$d/badcrc.raw"
expect_fail 3 "No such file or directory" measure "$d/missing"
expect_fail 2 "unknown option" measure --bogus "$u"
expect_fail 2 "expected a systemd version >= 252" measure --stub-version 200 "$u"
echo "ok: refusals"

# --- sign / verify (cosign blob format) ---------------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$d/cosign.key"
openssl pkey -in "$d/cosign.key" -pubout -out "$d/cosign.pub"
"$tool" measure -o "$d/measurements.json" "$u" > /dev/null
"$tool" sign --key "$d/cosign.key" "$d/measurements.json"
"$tool" verify --key "$d/cosign.pub" "$d/measurements.json" | grep -q "signature OK" || fail "verify"
# the signature is what openssl verifies too (base64 DER ECDSA over SHA-256 of the file)
base64 -d "$d/measurements.json.sig" > "$d/sig.der"
openssl dgst -sha256 -verify "$d/cosign.pub" -signature "$d/sig.der" "$d/measurements.json" >/dev/null \
  || fail "openssl does not accept the signature"
cp "$d/measurements.json" "$d/tampered.json"
sed -i 's/"warnOnly": false/"warnOnly": true/' "$d/tampered.json"
expect_fail 1 "does not verify" verify --key "$d/cosign.pub" --signature "$d/measurements.json.sig" "$d/tampered.json"
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -pubout -out "$d/other.pub"
expect_fail 1 "does not verify" verify --key "$d/other.pub" --signature "$d/measurements.json.sig" "$d/measurements.json"
echo "garbage" > "$d/bad.sig"
expect_fail 1 "not base64 of a DER ECDSA signature" verify --key "$d/cosign.pub" --signature "$d/bad.sig" "$d/measurements.json"
expect_fail 1 "not an unencrypted ECDSA P-256" sign --key "$d/cosign.pub" "$d/measurements.json"
echo "ok: sign/verify"

# --- publish: CDN layout, merge of variants, signature, Secure Boot signing -----------------------
rel=$d/release
"$tool" publish --image "$u" --version v2.99.0 --csp qemu --variant qemu-vtpm --key "$d/cosign.key" --out "$rel" >/dev/null
dir=$rel/constellation/v2/ref/-/stream/stable/v2.99.0/image
[ -f "$dir/measurements.json" ] && [ -f "$dir/measurements.json.sig" ] && [ -f "$dir/info.json" ] || fail "publish layout"
base64 -d "$dir/measurements.json.sig" > "$d/rsig.der"
openssl dgst -sha256 -verify "$d/cosign.pub" -signature "$d/rsig.der" "$dir/measurements.json" >/dev/null \
  || fail "release signature does not verify"
[ "$(jq -r '.version + " " + .ref + " " + .stream' "$dir/measurements.json")" = "v2.99.0 - stable" ] || fail "release header"
[ "$(jq -r '.list[0].csp + " " + .list[0].attestationVariant' "$dir/measurements.json")" = "QEMU qemu-vtpm" ] || fail "csp spelling"
[ "$(jq -r '.list[0].measurements["11"].expected' "$dir/measurements.json")" = "$(pcr "$d/m.json" 11)" ] || fail "published PCR 11"
"$tool" publish --image "$d/disk16.raw" --version v2.99.0 --csp AWS --variant aws-sev-snp --region eu-central-1 \
  --reference ami-123 --copy-image --key "$d/cosign.key" --out "$rel" >/dev/null
cmp -s "$d/disk16.raw" "$dir/disk16.raw" || fail "--copy-image did not copy the image"
"$tool" publish --image "$u" --version v2.99.0 --csp qemu --variant qemu-vtpm --pcrphase --key "$d/cosign.key" --out "$rel" >/dev/null
[ "$(jq -r '[.list[] | .csp + "/" + .attestationVariant] | join(",")' "$dir/measurements.json")" = "AWS/aws-sev-snp,QEMU/qemu-vtpm" ] \
  || fail "merged release list: $(jq -c '.list' "$dir/measurements.json")"
[ "$(jq -r '.list[1].measurements["11"].expected' "$dir/measurements.json")" = "$(pcr "$d/m4.json" 11)" ] || fail "republish did not replace"
[ "$(jq -r '[.list[] | .csp + "/" + .attestationVariant + "/" + .reference + "/" + .region] | join(",")' "$dir/info.json")" = \
  "qemu/qemu-vtpm/uki.efi/,aws/aws-sev-snp/ami-123/eu-central-1" ] || fail "info.json list: $(jq -c .list "$dir/info.json")"
"$tool" verify --key "$d/cosign.pub" "$dir/measurements.json" >/dev/null || fail "verify of the merged release"
# Secure Boot signing: PCR 4 from the signed UKI, PCR 11 unchanged
"$tool" publish --image "$u" --version v2.99.1 --csp qemu --variant qemu-vtpm --key "$d/cosign.key" --out "$rel" \
  --sbsign-key "$d/sb.key" --sbsign-cert "$d/sb.crt" >/dev/null
dir1=$rel/constellation/v2/ref/-/stream/stable/v2.99.1/image
[ -f "$dir1/uki.signed.efi" ] || fail "signed UKI not published"
sbverify --cert "$d/sb.crt" "$dir1/uki.signed.efi" >/dev/null 2>&1 || fail "published UKI not signed"
"$tool" measure "$dir1/uki.signed.efi" > "$d/msig.json"
[ "$(jq -r '.list[0].measurements["4"].expected' "$dir1/measurements.json")" = "$(pcr "$d/msig.json" 4)" ] || fail "PCR 4 of signed UKI"
[ "$(jq -r '.list[0].measurements["11"].expected' "$dir1/measurements.json")" = "$(pcr "$d/m.json" 11)" ] || fail "PCR 11 of signed UKI"
expect_fail 2 "is not one of aws, azure, gcp, openstack, qemu" publish --image "$u" --version v1.0.0 --csp moon --variant x --key "$d/cosign.key" --out "$rel"
expect_fail 2 "must be single path components" publish --image "$u" --version v1.0.0 --csp qemu --variant ../x --key "$d/cosign.key" --out "$rel"
expect_fail 2 "is not a version like" publish --image "$u" --version 1.0 --csp qemu --variant x --key "$d/cosign.key" --out "$rel"
expect_fail 2 "needs a UKI" publish --image "$d/disk16.raw" --version v1.0.0 --csp qemu --variant x --key "$d/cosign.key" --out "$rel" --sbsign-key "$d/sb.key" --sbsign-cert "$d/sb.crt"
jq '.version = "v0.0.1"' "$dir/measurements.json" > "$d/x" && cp "$d/x" "$dir/measurements.json"
expect_fail 1 "existing release is -/stable/v0.0.1" publish --image "$u" --version v2.99.0 --csp qemu --variant qemu-vtpm --key "$d/cosign.key" --out "$rel"
echo "ok: publish"
# --- fast path: one mapping of the file, two hashing threads ---------------------------------
bash "$srcdir/make-uki.sh" "$d/big" 16384 > /dev/null 2>&1
# (LeakSanitizer cannot run under ptrace; every other run of the tool here is leak-checked.)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -e trace=read,pread64,mmap,clone,clone3 -e signal=none -o "$d/strace" \
  "$tool" measure --measurements-only "$d/big/uki.efi" > "$d/big.json" || fail "measure under strace failed"
size=$(stat -c %s "$d/big/uki.efi")
# bytes returned by read/pread on any fd (libraries, the 2-byte magic) must stay far below the UKI
readb=$(sed -n 's/.*\(read\|pread64\)(.*) = \([0-9][0-9]*\)$/\2/p' "$d/strace" | awk '{ s += $1 } END { print s + 0 }')
[ "$readb" -lt 1048576 ] || fail "measure read() $readb bytes of a $size-byte UKI: it should map the file, not copy it"
grep -q "mmap(NULL, $size, PROT_READ, MAP_PRIVATE|MAP_POPULATE, " "$d/strace" || fail "measure did not map the $size-byte UKI: $(grep mmap "$d/strace" | tail -n 3)"
grep -Eq '(clone|clone3)\(' "$d/strace" || fail "measure did not hash on a second thread"
cp "$d/big/uki.efi" "$d/big.efi"
"$tool" measure --measurements-only "$d/big.efi" | cmp -s - "$d/big.json" || fail "two predictions of the same UKI differ"
echo "ok: a ${size}-byte UKI is mapped (read() returned $readb bytes in all) and hashed on two threads"

echo PASS
