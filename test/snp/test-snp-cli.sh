#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# CLI tests for `constellation-attest snp verify` (cli/attest/cmd-snp.c).
# Usage: test-snp-cli.sh BINARY [ARGS-BEFORE-"snp"...]
#   e.g. test-snp-cli.sh build/x/test/snp/snp-cli-harness
#        test-snp-cli.sh build/x/cli/attest/constellation-attest
set -u
bin=${1:?usage: test-snp-cli.sh BINARY}
shift
[ -x "$bin" ] || { echo "FAIL: $bin is not an executable (build it first)"; exit 1; }
data=${CT_SOURCE_DIR:?CT_SOURCE_DIR not set}/test/snp/data
tmp=$(mktemp -d "${TMPDIR:-/tmp}/snp-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0

msft=$data/snp-msft-milan-genoa-turin
aws=$data/snp-milan-aws-vlek

# run NAME WANT_EXIT STDOUT_REGEX STDERR_REGEX -- ARGS...
run() {
        local name=$1 want=$2 out_re=$3 err_re=$4
        shift 5
        "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
        local got=$?
        local ok=1
        [ "$got" -eq "$want" ] || ok=0
        # JSON is printed indented: match stdout with newlines removed and blanks collapsed.
        tr '\n' ' ' <"$tmp/out" | tr -s ' ' >"$tmp/out.flat"
        [ -z "$out_re" ] || grep -Eq -- "$out_re" "$tmp/out.flat" || ok=0
        [ -z "$err_re" ] || grep -Eq -- "$err_re" "$tmp/err" || ok=0
        if [ $ok -eq 1 ]; then
                echo "ok   $name"
        else
                echo "FAIL $name: exit $got (want $want)"
                sed 's/^/  stdout: /' "$tmp/out"
                sed 's/^/  stderr: /' "$tmp/err"
                failures=$((failures + 1))
        fi
}

V=("$@" snp verify)
at=(--at 2026-06-01T00:00:00Z)

run "milan v3 verifies" 0 "^OK .*milan_attestation_report.bin: SEV-SNP Milan report v3 signed by VCEK, vmpl 0, reported_tcb bl=4 tee=0 snp=24 ucode=219" "" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}"
run "turin v5 json" 0 '"ok": true.*"product": "Turin",.*"reported_tcb": \{ "bootloader": 1, "fmc": 1, "microcode": 81, "snp": 4, "tee": 1 \},.*"version": 5' "" -- \
        "${V[@]}" --report "$msft/turin_attestation_report.bin" --cert "$msft/turin_vcek.pem" --chain "$msft/ask_ark_turin_vcek.pem" "${at[@]}" --json
run "azure HCL report (genoa)" 0 '"azure_hcl": true,.*"report_data": "b581f12e' "" -- \
        "${V[@]}" --report "$data/azure-genoa-vtpm/hcl_report.bin" --cert "$data/azure-genoa-vtpm/vcek-genoa.pem" --chain "$data/azure-genoa-vtpm/ask_ark_genoa.pem" "${at[@]}" --json
run "aws vlek with --at and --vmpl 1" 0 "signed by VLEK, vmpl 1" "" -- \
        "${V[@]}" --report "$aws/vlek-report.bin" --cert "$aws/vlek.der" --chain "$aws/ask_ark_milan_vlek.pem" --at 2025-06-15T12:00:00+02:00 --vmpl 1
run "aws vlek expired without --at" 1 "" "^certificate .*vlek.der: VLEK: expired 2025-12-10T22:14:21Z .*\(cert-expired\)" -- \
        "${V[@]}" --report "$aws/vlek-report.bin" --cert "$aws/vlek.der" --chain "$aws/ask_ark_milan_vlek.pem" --vmpl 1
run "aws vlek wrong vmpl" 1 "" "^report .*vlek-report.bin: vmpl: 1 is not allowed.*\(vmpl\)" -- \
        "${V[@]}" --report "$aws/vlek-report.bin" --cert "$aws/vlek.der" --chain "$aws/ask_ark_milan_vlek.pem" --at 2025-06-15T00:00:00Z
run "raised min tcb" 1 "" "^report .*: reported_tcb.microcode: 219 is below the minimum 220 \(tcb-too-low\)" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}" --min-tcb 4:0:24:220
run "min tcb met" 0 "^OK " "" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}" --min-tcb 4:0:24:219
run "debug policy refused" 1 "" "attestation.bin: policy: DEBUG \(bit 19\) is set .*\(policy-debug\)" -- \
        "${V[@]}" --report "$data/snp-milan-gsg/attestation.bin" --cert "$data/snp-milan-gsg/vcek.der" --chain "$data/snp-milan-gsg/ask_ark_milan.pem" "${at[@]}"
run "debug policy allowed" 0 "^OK " "" -- \
        "${V[@]}" --report "$data/snp-milan-gsg/attestation.bin" --cert "$data/snp-milan-gsg/vcek.der" --chain "$data/snp-milan-gsg/ask_ark_milan.pem" "${at[@]}" --allow-debug --report-data 0102030405

cp "$msft/milan_attestation_report.bin" "$tmp/flipped.bin"
printf '\xff' | dd of="$tmp/flipped.bin" bs=1 seek=$((0x90)) conv=notrunc status=none
run "flipped byte (json)" 1 '"ok": false,.*"snp_reason": "report-signature"' "" -- \
        "${V[@]}" --report "$tmp/flipped.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}" --json
run "flipped byte" 1 "" "^report .*flipped.bin: signature: .*\(report-signature\)" -- \
        "${V[@]}" --report "$tmp/flipped.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}"
head -c 1000 "$msft/milan_attestation_report.bin" >"$tmp/short.bin"
run "truncated report" 1 "" "short.bin: report is 1000 bytes, expected 1184 \(report-size\)" -- \
        "${V[@]}" --report "$tmp/short.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}"
run "swapped certificate" 1 "" "report .*: signature: .*\(report-signature\)" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$data/snp-milan-gsg/vcek.der" --chain "$msft/ask_ark_milan.pem" "${at[@]}"
cat "$data/amd-roots/ask_milan.pem" "$data/amd-roots/ask_milan.pem" >"$tmp/no-ark.pem"
run "ark not pinned" 1 "" "^chain .*no-ark.pem: no certificate is a pinned AMD root.*\(ark-not-pinned\)" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$msft/milan_vcek.pem" --chain "$tmp/no-ark.pem" "${at[@]}"
run "wrong measurement" 1 "" "measurement: expected 0{96}, got 5feee30d.* \(measurement\)" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$msft/milan_vcek.pem" --chain "$msft/ask_ark_milan.pem" "${at[@]}" --measurement "$(printf '0%.0s' $(seq 96))"
azc=$data/snp-milan-azure-constellation
head -c 1184 "$azc/attestation_azure.bin" >"$tmp/azure.bin"
run "id key digest accepted" 0 "^OK " "" -- \
        "${V[@]}" --report "$tmp/azure.bin" --cert "$azc/vcek.der" "${at[@]}" \
        --id-key-digest "$(printf '0%.0s' $(seq 96))" --id-key-digest 57e229e0ffe5fa92d0faddff6cae0e61c926fc9ef9afd20a8b8cfcf7129db9338cbe5bf3f6987733a2bf65d06dc38fc1
run "id key digest refused" 1 "" "id_key_digest: 57e229e0.* is not one of the 1 accepted digests \(id-key-digest\)" -- \
        "${V[@]}" --report "$tmp/azure.bin" --cert "$azc/vcek.der" "${at[@]}" --id-key-digest "$(printf '0%.0s' $(seq 96))"
run "missing file" 3 "" "^certificate .*nonexistent.pem: No such file or directory" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin" --cert "$tmp/nonexistent.pem" --chain "$msft/ask_ark_milan.pem"
run "usage: missing --cert" 2 "" "--report and --cert are required" -- \
        "${V[@]}" --report "$msft/milan_attestation_report.bin"
run "built-in chain (genoa, no --chain)" 0 "^OK .*SEV-SNP Genoa report v3 signed by VCEK" "" -- \
        "${V[@]}" --report "$msft/genoa_attestation_report.bin" --cert "$msft/genoa_vcek.pem" "${at[@]}"
run "built-in chain, VLEK expired" 1 "" "^certificate .*vlek.der: VLEK: expired .*\(cert-expired\)" -- \
        "${V[@]}" --report "$aws/vlek-report.bin" --cert "$aws/vlek.der" --vmpl 1
run "built-in chain, garbage certificate" 1 "" "^certificate .*SOURCE.md: not one DER or PEM certificate.*\(cert-malformed\)" -- \
        "${V[@]}" --report "$aws/vlek-report.bin" --cert "$aws/SOURCE.md"
run "usage: bad --at" 2 "" "--at yesterday: not an RFC 3339 time" -- \
        "${V[@]}" --report a --cert b --chain c --at yesterday
run "usage: bad --min-tcb" 2 "" "--min-tcb 1:2:3: expected" -- \
        "${V[@]}" --report a --cert b --chain c --min-tcb 1:2:3
run "usage: unknown subcommand" 2 "" "unknown subcommand 'frobnicate'" -- "$@" snp frobnicate

if [ $failures -ne 0 ]; then
        echo "$failures CLI test(s) failed"
        exit 1
fi
echo "all snp CLI tests passed"
