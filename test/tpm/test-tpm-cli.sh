#!/usr/bin/env bash
# constellation-attest quote verify: real quotes, every refusal with its reason and exit code, and
# interoperability with tpm2-tools over a private swtpm (our quote passes tpm2_checkquote; quotes
# made by tpm2_quote with RSASSA, RSAPSS and ECDSA keys pass ours).
# Usage: test-tpm-cli.sh CONSTELLATION_ATTEST TPM_TOOL
set -uo pipefail
ATTEST=$1
TOOL=$2
HERE=$(cd "$(dirname "$0")" && pwd)
D=$HERE/data/tpm-gce-vtpm
. "$HERE/swtpm.sh"
W=$(mktemp -d /tmp/ct-tpm-cli-XXXXXX)
cleanup() { swtpm_stop; rm -rf "$W"; }
trap cleanup EXIT
for t in tpm2_quote tpm2_checkquote tpm2_createprimary tpm2_createek tpm2_createak tpm2_pcrread python3; do
        command -v $t >/dev/null || { echo "FAIL: $t is not installed (scripts/setup.sh)"; exit 1; }
done

fails=0
# expect RC PATTERN -- command...: exit code and a line of output (stdout+stderr) matching PATTERN.
expect() {
        local want=$1 pat=$2
        shift 3
        local out rc
        out=$("$@" 2>&1)
        rc=$?
        if [ "$rc" != "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
                echo "FAIL: $* -> rc=$rc (want $want), output: $out (want /$pat/)"
                fails=$((fails + 1))
        else
                echo "ok: rc=$rc /$pat/"
        fi
}

pcrs_json() { # pcrs_json TXT -> JSON object
        python3 -c 'import json,sys; print(json.dumps({l.split()[0]: l.split()[1] for l in open(sys.argv[1]) if l.strip()}))' "$1"
}
raw_to_json() { # raw_to_json RAW DIGEST_SIZE
        python3 -c 'import json,sys; b=open(sys.argv[1],"rb").read(); n=int(sys.argv[2]); print(json.dumps({str(i): b[i*n:(i+1)*n].hex() for i in range(len(b)//n)}))' "$1" "$2"
}
for b in sha1 sha256 sha384; do pcrs_json $D/nonce9009.pcrs_$b.txt >"$W/gce-$b.json"; done
Q256=(--quote $D/nonce9009.quote_sha256.tpms_attest.bin --signature $D/nonce9009.quote_sha256.tpmt_signature.bin)
Q384=(--quote $D/nonce9009.quote_sha384.tpms_attest.bin --signature $D/nonce9009.quote_sha384.tpmt_signature.bin)

echo "== real GCE quotes"
for b in sha1 sha256 sha384; do
        expect 0 "^OK .*$b quote over 24 PCRs" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.tpmt_public.bin \
                --quote $D/nonce9009.quote_$b.tpms_attest.bin --signature $D/nonce9009.quote_$b.tpmt_signature.bin \
                --pcrs "$W/gce-$b.json" --nonce 9009
done
expect 0 "event log: 44 events, 17 PCRs match" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q256[@]}" \
        --pcrs "$W/gce-sha256.json" --nonce 9009 --eventlog $D/nonce9009.event_log.bin
expect 0 '"ok": true' -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q256[@]}" --pcrs "$W/gce-sha256.json" --nonce 9009 --json

echo "== refusals"
expect 1 "qualifying data .* does not equal the expected nonce" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q256[@]}" \
        --pcrs "$W/gce-sha256.json" --nonce 9008
expect 1 "quote selects sha384, PCR values given are sha256" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q384[@]}" \
        --pcrs "$W/gce-sha256.json" --nonce 9009
expect 1 "PCR values do not match the quoted PCR digest \(sha256 bank\)" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem \
        "${Q256[@]}" --pcrs <(sed 's/"7": "./"7": "f/' "$W/gce-sha256.json") --nonce 9009
expect 1 "signature does not verify" -- "$ATTEST" quote verify --ak $HERE/data/azure-genoa-vtpm/ak_pub.pem "${Q256[@]}" \
        --pcrs "$W/gce-sha256.json" --nonce 9009
head -c 60 $D/nonce9009.quote_sha256.tpms_attest.bin >"$W/short.msg"
expect 1 "TPMS_ATTEST is truncated" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem --quote "$W/short.msg" \
        --signature $D/nonce9009.quote_sha256.tpmt_signature.bin --pcrs "$W/gce-sha256.json" --nonce 9009
head -c 100 $D/nonce9009.quote_sha256.tpmt_signature.bin >"$W/short.sig"
expect 1 "TPMT_SIGNATURE is truncated" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem --quote $D/nonce9009.quote_sha256.tpms_attest.bin \
        --signature "$W/short.sig" --pcrs "$W/gce-sha256.json" --nonce 9009
expect 1 "ak .*neither a PEM public key nor a TPMT_PUBLIC" -- "$ATTEST" quote verify --ak "$W/short.sig" "${Q256[@]}" \
        --pcrs "$W/gce-sha256.json" --nonce 9009
expect 1 "pcrs .*PCR 3: 20-byte value, but the bank is sha256" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q256[@]}" \
        --pcrs <(echo '{"2":"'$(printf '%064d' 0)'","3":"'$(printf '%040d' 0)'"}') --nonce 9009
expect 1 "quote selects a PCR whose value was not provided: PCR 0" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q256[@]}" \
        --pcrs <(echo '{"5":"'$(printf '%064d' 0)'"}') --nonce 9009
# An event log whose PCR 0 digest was altered no longer explains the quoted PCR 0.
python3 - "$D/nonce9009.event_log.bin" "$W/bad.log" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
# First TCG_PCR_EVENT2 after the Spec ID header: header event is 32 bytes + its data.
hdr = 32 + int.from_bytes(b[28:32], "little")
# pcr(4) type(4) count(4) then alg(2)+digest: flip the first byte of the first digest.
b[hdr + 14] ^= 1
open(sys.argv[2], "wb").write(b)
PY
expect 1 "eventlog .*: PCR 0 \(sha1\): event log replay does not give the quoted value" -- "$ATTEST" quote verify \
        --ak $D/nonce9009.ak_pub.pem --quote $D/nonce9009.quote_sha1.tpms_attest.bin \
        --signature $D/nonce9009.quote_sha1.tpmt_signature.bin --pcrs "$W/gce-sha1.json" --nonce 9009 --eventlog "$W/bad.log"
# The largest event log --eventlog reads (EVENTLOG_MAX_SIZE, 8 MiB): the real log padded with zeros
# parses (trailing padding); with a 0x01 as its last byte the zeros are 16-byte empty events, more
# than the 65536 allowed; one byte more is too large to read. The old parser was quadratic on such
# logs (issue 12: minutes of CPU); bench-tpm measures the time, this checks the verdicts.
python3 - "$D/nonce9009.event_log.bin" "$W" <<'PY'
import sys
log = open(sys.argv[1], "rb").read()
limit = 8 * 1024 * 1024
pad = log + b"\0" * (limit - len(log))
open(sys.argv[2] + "/padded.log", "wb").write(pad)
open(sys.argv[2] + "/crafted.log", "wb").write(pad[:-1] + b"\x01")
open(sys.argv[2] + "/toobig.log", "wb").write(pad + b"\0")
PY
GCE256=(--ak $D/nonce9009.ak_pub.pem "${Q256[@]}" --pcrs "$W/gce-sha256.json" --nonce 9009)
expect 0 "event log: 44 events, 17 PCRs match" -- "$ATTEST" quote verify "${GCE256[@]}" --eventlog "$W/padded.log"
expect 1 "eventlog .*crafted.log: event 65536 at offset [0-9]+: more than 65536 events" -- "$ATTEST" quote verify "${GCE256[@]}" \
        --eventlog "$W/crafted.log"
expect 3 "eventlog .*toobig.log: file too large" -- "$ATTEST" quote verify "${GCE256[@]}" --eventlog "$W/toobig.log"
expect 2 "required" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem
expect 2 "--nonce: expected" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem "${Q256[@]}" --pcrs "$W/gce-sha256.json" --nonce xyz
expect 3 "quote /nonexistent: No such file" -- "$ATTEST" quote verify --ak $D/nonce9009.ak_pub.pem --quote /nonexistent \
        --signature $D/nonce9009.quote_sha256.tpmt_signature.bin --pcrs "$W/gce-sha256.json" --nonce 9009

echo "== swtpm: our quote passes tpm2_checkquote"
swtpm_start
NONCE=$(openssl rand -hex 32)
mkdir -p "$W/ours"
expect 0 "" -- "$TOOL" quote "$TCTI" "$NONCE" "$W/ours"
SEL=sha256:$(seq -s, 0 23)
expect 0 "" -- tpm2_checkquote -u "$W/ours/ak.pem" -m "$W/ours/quote.msg" -s "$W/ours/quote.sig" -f "$W/ours/pcrs.tpm2" -g sha256 -q "$NONCE"
expect 0 "" -- tpm2_checkquote -u "$W/ours/ak.pem" -m "$W/ours/quote.msg" -s "$W/ours/quote.sig" -g sha256 -q "$NONCE"
expect 1 "" -- tpm2_checkquote -u "$W/ours/ak.pem" -m "$W/ours/quote.msg" -s "$W/ours/quote.sig" -f "$W/ours/pcrs.tpm2" -g sha256 -q "00$NONCE"
# A PCR value changed in the file: tpm2_checkquote refuses it too.
python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[132+4+4+2]^=1; open(sys.argv[2],"wb").write(b)' "$W/ours/pcrs.tpm2" "$W/ours/bad.tpm2"
expect 1 "Error validating PCR composite" -- tpm2_checkquote -u "$W/ours/ak.pem" -m "$W/ours/quote.msg" -s "$W/ours/quote.sig" -f "$W/ours/bad.tpm2" -g sha256 -q "$NONCE"
expect 0 "^OK .*sha256 quote over 24 PCRs" -- "$ATTEST" quote verify --ak "$W/ours/ak.tpmt" --quote "$W/ours/quote.msg" \
        --signature "$W/ours/quote.sig" --pcrs "$W/ours/pcrs.json" --nonce "$NONCE"

echo "== swtpm: tpm2_quote with our AK at 0x81008F01 passes ours"
tpm2_pcrextend 16:sha256=$(printf 'cluster' | sha256sum | cut -d' ' -f1) >/dev/null
expect 0 "" -- tpm2_quote -c 0x81008F01 -l "$SEL" -q "$NONCE" -m "$W/t.msg" -s "$W/t.sig" -g sha256
tpm2_flushcontext -t >/dev/null 2>&1; tpm2_flushcontext -s >/dev/null 2>&1
tpm2_pcrread "$SEL" -o "$W/t.raw" >/dev/null && raw_to_json "$W/t.raw" 32 >"$W/t.json"
expect 0 "^OK .*sha256 quote over 24 PCRs" -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/t.msg" --signature "$W/t.sig" \
        --pcrs "$W/t.json" --nonce "$NONCE"
expect 1 "PCR values do not match" -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/t.msg" --signature "$W/t.sig" \
        --pcrs "$W/ours/pcrs.json" --nonce "$NONCE"

# No resource manager in front of swtpm: flush what each tool leaves loaded (reference machine.md §3).
flush() { tpm2_flushcontext -t >/dev/null 2>&1; tpm2_flushcontext -l >/dev/null 2>&1; tpm2_flushcontext -s >/dev/null 2>&1; }

echo "== swtpm: PCR values the quote does not select are refused (tpm2_quote -l sha256:0,1)"
# A genuine quote over PCRs 0 and 1 must not vouch for made-up PCRs 4, 9, 11, 15 sent beside them
# (go-tpm-tools: "given PCRs and quote do not have the same PCR selection").
expect 0 "" -- tpm2_quote -c 0x81008F01 -l sha256:0,1 -q "$NONCE" -m "$W/p.msg" -s "$W/p.sig" -g sha256
flush
tpm2_pcrread sha256:0,1 -o "$W/p.raw" >/dev/null && raw_to_json "$W/p.raw" 32 >"$W/p.json"
expect 0 "^OK .*sha256 quote over 2 PCRs" -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/p.msg" --signature "$W/p.sig" \
        --pcrs "$W/p.json" --nonce "$NONCE"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.update({str(i): "%02x" % (0x40+i) * 32 for i in (4, 9, 11, 15)}); print(json.dumps(d))' \
        "$W/p.json" >"$W/p-forged.json"
expect 1 "quote .*p.msg: PCR value given for a PCR the quote does not select \(given PCRs and quote do not have the same PCR selection\): PCR 4 \(sha256\) and others; the quote selects 2 PCRs, 6 values were given" \
        -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/p.msg" --signature "$W/p.sig" --pcrs "$W/p-forged.json" --nonce "$NONCE"
expect 1 '"file": ".*p-forged.json"' -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/p.msg" --signature "$W/p.sig" \
        --pcrs "$W/p-forged.json" --nonce "$NONCE" --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["23"]=d["0"]; print(json.dumps(d))' "$W/p.json" >"$W/p-extra.json"
expect 1 "PCR 23 \(sha256\);" -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/p.msg" --signature "$W/p.sig" \
        --pcrs "$W/p-extra.json" --nonce "$NONCE"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); del d["1"]; print(json.dumps(d))' "$W/p.json" >"$W/p-less.json"
expect 1 "quote selects a PCR whose value was not provided: PCR 1" -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/p.msg" \
        --signature "$W/p.sig" --pcrs "$W/p-less.json" --nonce "$NONCE"

echo "== swtpm: AK files as tpm2-tools write them (TPM2B_PUBLIC from tpm2_createak -u)"
tpm2_createek -c "$W/ek.ctx" -G rsa -u "$W/ek.pub" >/dev/null || { echo "FAIL: tpm2_createek"; fails=$((fails+1)); }
flush
tpm2_createak -C "$W/ek.ctx" -c "$W/cak.ctx" -G rsa -g sha256 -s rsassa -u "$W/cak.pub" -n "$W/cak.name" >/dev/null \
        || { echo "FAIL: tpm2_createak"; fails=$((fails+1)); }
flush
expect 0 "" -- tpm2_quote -c "$W/cak.ctx" -l "$SEL" -q "$NONCE" -m "$W/cak.msg" -s "$W/cak.sig" -g sha256
flush
tpm2_pcrread "$SEL" -o "$W/cak.raw" >/dev/null && raw_to_json "$W/cak.raw" 32 >"$W/cak.json"
expect 0 "^OK .*sha256 quote over 24 PCRs" -- "$ATTEST" quote verify --ak "$W/cak.pub" --quote "$W/cak.msg" --signature "$W/cak.sig" \
        --pcrs "$W/cak.json" --nonce "$NONCE"
# A TPM2B_PUBLIC whose size prefix disagrees with the file is neither form.
python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[1]^=1; open(sys.argv[2],"wb").write(b)' "$W/cak.pub" "$W/cak-bad.pub"
expect 1 "ak .*cak-bad.pub: neither a PEM public key nor a TPMT_PUBLIC/TPM2B_PUBLIC" -- "$ATTEST" quote verify --ak "$W/cak-bad.pub" \
        --quote "$W/cak.msg" --signature "$W/cak.sig" --pcrs "$W/cak.json" --nonce "$NONCE"

echo "== swtpm: RSAPSS and ECDSA restricted signing keys made by tpm2-tools"
ATTRS="fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign"
for spec in rsa2048:rsapss-sha256:null/rsapss/sha256 ecc256:ecdsa-sha256:null/ecdsa/sha256 ecc384:ecdsa-sha384:null/ecdsa/sha384; do
        IFS=/ read -r alg scheme hash <<<"$spec"
        name=${alg%%:*}
        tpm2_createprimary -C o -G "$alg" -a "$ATTRS" -c "$W/$name.ctx" >/dev/null || { echo "FAIL: createprimary $alg"; fails=$((fails+1)); continue; }
        flush
        tpm2_readpublic -c "$W/$name.ctx" -f pem -o "$W/$name.pem" >/dev/null; flush
        tpm2_readpublic -c "$W/$name.ctx" -f tss -o "$W/$name.tss" >/dev/null; flush
        tail -c +3 "$W/$name.tss" >"$W/$name.tpmt" # TPM2B_PUBLIC -> TPMT_PUBLIC
        tpm2_quote -c "$W/$name.ctx" -l "$SEL" -q "$NONCE" -m "$W/$name.msg" -s "$W/$name.sig" \
                --scheme "$scheme" -g "$hash" >/dev/null; flush
        tpm2_pcrread "$SEL" -o "$W/$name.raw" >/dev/null && raw_to_json "$W/$name.raw" 32 >"$W/$name.json"
        for key in "$W/$name.pem" "$W/$name.tpmt" "$W/$name.tss"; do
                expect 0 "^OK .*sha256 quote over 24 PCRs" -- "$ATTEST" quote verify --ak "$key" --quote "$W/$name.msg" \
                        --signature "$W/$name.sig" --pcrs "$W/$name.json" --nonce "$NONCE"
        done
        expect 1 "qualifying data" -- "$ATTEST" quote verify --ak "$W/$name.pem" --quote "$W/$name.msg" \
                --signature "$W/$name.sig" --pcrs "$W/$name.json" --nonce "${NONCE}00"
        expect 1 "signature does not verify|cannot verify" -- "$ATTEST" quote verify --ak "$W/ours/ak.pem" --quote "$W/$name.msg" \
                --signature "$W/$name.sig" --pcrs "$W/$name.json" --nonce "$NONCE"
done

if [ $fails -ne 0 ]; then
        echo "$fails check(s) failed"
        exit 1
fi
echo "all checks passed"
