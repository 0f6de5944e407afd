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
T=$(mktemp -d "${TMPDIR:-/tmp}/ct-attest-cli-XXXXXX") || fail "mktemp"
trap 'rm -rf "$T"' EXIT
# Secrets come from files or standard input, never from argv (docs/attest.md).
printf '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n' >"$T/secret"
printf '202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f' >"$T/salt"
printf '0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b' >"$T/rfc-secret"
printf '000102030405060708090a0b0c\n' >"$T/rfc-salt"
printf 'xyz\n' >"$T/not-hex"
head -c 70000 /dev/zero | tr '\0' 0 >"$T/huge"
chmod 0600 "$T"/*
run derive --secret-file "$T/secret" --salt-file "$T/salt" --info key-clusterID
expect 0 128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6
# Standard input for the secret; RFC 5869 test case 1 with --length 42 --json.
out=$("$A" derive --secret-file - --salt-file "$T/rfc-salt" \
        --info "$(printf '\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9')" --length 42 --json <"$T/rfc-secret" 2>&1); rc=$?
expect 0 '"key": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"'
jq -e '.ok == true and .length == 42 and .verdict == "derived"' >/dev/null <<<"$out" || fail "json: $out"
# Salt from standard input works too.
out=$("$A" derive --secret-file "$T/secret" --salt-file - --info key-clusterID <"$T/salt" 2>&1); rc=$?
expect 0 128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6
# derive hardens itself before it reads a secret: while it waits on the FIFO for the secret, its
# core limit reads back 0/0 (the hard limit is unlimited here, as the check below ensures).
ulimit -Hc unlimited 2>/dev/null; ulimit -c unlimited 2>/dev/null
grep -qE '^Max core file size +unlimited +unlimited' /proc/self/limits || fail "cannot raise the core limit for the test"
mkfifo "$T/fifo"
"$A" derive --secret-file "$T/fifo" --salt-file "$T/salt" --info key-clusterID >"$T/fifo-out" 2>&1 &
pid=$!
hardened=no
for _ in $(seq 1 200); do
        if grep -qE '^Max core file size +0 +0 ' "/proc/$pid/limits" 2>/dev/null; then hardened=yes; break; fi
        sleep 0.05
done
printf '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' >"$T/fifo"
wait "$pid"; rc=$?; out=$(cat "$T/fifo-out")
[ "$hardened" = yes ] || fail "derive read its secret with core dumps still possible: $(grep -i core /proc/$pid/limits 2>&1)"
expect 0 128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6
# A secret on the command line is refused with the reason and what to do, and never used.
run derive --secret 000102030405060708090a0b0c0d0e0f --salt-file "$T/salt" --info a
expect 2 "--secret on the command line is refused: other users can read a process's arguments"
grep -qF -- "--secret-file FILE, or --secret-file - to read it from standard input" <<<"$out" || fail "no hint: $out"
run derive --secret-file "$T/secret" --salt 00 --info a
expect 2 "--salt on the command line is refused"
run derive --secret-file "$T/not-hex" --salt-file "$T/salt" --info a
expect 2 "--secret-file $T/not-hex: not hex"
run derive --secret-file "$T/secret" --salt-file "$T/huge" --info a
expect 3 "--salt-file $T/huge: file too large"
run derive --secret-file "$T/nope" --salt-file "$T/salt" --info a
expect 3 "--secret-file $T/nope: No such file or directory"
run derive --secret-file - --salt-file - --info a
expect 2 "only one of --secret-file and --salt-file can be"
run derive --secret-file "$T/secret" --salt-file "$T/salt"
expect 2 "--secret-file, --salt-file and --info are required"
run derive --secret-file "$T/secret" --salt-file "$T/salt" --info a --length 0
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
# --timeout is parsed by one helper for init, recover and verify: each bad value named.
run init --timeout 0
expect 2 "init: --timeout 0: seconds, 1..7200"
run recover --timeout 5x
expect 2 "recover: --timeout 5x: seconds, 1..3600"
run verify --timeout 99999999999999999999
expect 2 "verify: --timeout 99999999999999999999: seconds, 1..3600"
echo "PASS: constellation-attest derive/measurements"
