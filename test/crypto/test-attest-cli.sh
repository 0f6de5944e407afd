#!/usr/bin/env bash
# constellation-attest derive / measurements verify: verdicts, reasons and exit codes.
set -uo pipefail
A=${1:?constellation-attest}
D=${2:?data dir}
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { out=$("$A" "$@" 2>&1); rc=$?; }
expect() { # rc, substring
        [ "$rc" = "$1" ] || fail "exit $rc, want $1: $out"
        grep -qF -- "$2" <<<"$out" || fail "want \"$2\" in: $out"
}
run derive --secret 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
        --salt 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f --info key-clusterID
expect 0 128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6
run derive --secret 0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b --salt 000102030405060708090a0b0c \
        --info "$(printf '\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9')" --length 42 --json
expect 0 '"key": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"'
run derive --secret xyz --salt 00 --info a
expect 2 "--secret is not hex"
run derive --secret 00 --salt 00
expect 2 "--secret, --salt and --info are required"
run derive --secret 00 --salt 00 --info a --length 0
expect 2 "--length must be"

run measurements verify --file "$D/measurements.json" --signature "$D/measurements.json.sig" --key "$D/cosign-test.pub"
expect 0 "signature valid"
run measurements verify --file "$D/measurements.json" --signature "$D/measurements.json.sig" --key "$D/cosign-test.pub" --json
expect 0 '"ok": true'
grep -qF '"version": "v1.0.0-test"' <<<"$out" || fail "json lacks the version: $out"
run measurements verify --file "$D/measurements.json" --signature "$D/measurements.json.sig.broken" --key "$D/cosign-test.pub"
expect 1 "measurements.json: signature file is not base64 of a DER ECDSA signature"
run measurements verify --file "$D/measurements.json" --signature "$D/measurements.json.sig" --key "$D/sigstore-test.pub"
expect 1 "measurements.json: signature does not match the file and key"
run measurements verify --file "$D/not-json.txt" --signature "$D/not-json.txt.sig" --key "$D/cosign-test.pub"
expect 1 "signature valid, but the content is not measurements"
run measurements verify --file "$D/measurements.json" --signature "$D/measurements.json.sig" --key "$D/cosign-test.pub" --csp QEMU --variant qemu-vtpm
expect 1 "no entry for csp QEMU, attestation variant qemu-vtpm"
run measurements verify --file "$D/measurements.json" --signature "$D/measurements.json.sig" --key "$D/measurements.json"
expect 1 "not a PEM public key"
run measurements verify --file "$D/nope.json" --signature "$D/measurements.json.sig" --key "$D/cosign-test.pub"
expect 3 "nope.json: No such file or directory"
run frobnicate
expect 2 'unknown command "frobnicate"'
echo "PASS: constellation-attest derive/measurements"
