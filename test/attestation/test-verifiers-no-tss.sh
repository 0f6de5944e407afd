#!/usr/bin/env bash
# Verifiers never link tpm2-tss (ARCHITECTURE.md): the provider, constellation-attest and a program
# linking only ct-attestation (the document validator) have no libtss2-* among their shared
# libraries and no ESYS/MU symbols; the issuing side (ct-attestation-issue) does, as a control.
# Usage: test-verifiers-no-tss.sh ISSUING_PROGRAM VERIFIER...
set -uo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v ldd >/dev/null || fail "ldd is not installed"
command -v nm >/dev/null || fail "nm (binutils) is not installed"
tss() { # prints what of tpm2-tss a program carries: shared libraries and linked-in symbols
        ldd "$1" | awk '/libtss2-/ {print $1}'
        nm "$1" 2>/dev/null | awk '$NF ~ /^(Esys_|Tss2_MU_|Tss2_Tcti)/ {print $NF}' | head -3
}
issuer=$1
shift
[ -n "$(tss "$issuer")" ] || fail "control: $issuer (ct-attestation-issue) shows no tpm2-tss: the check finds nothing"
for v in "$@"; do
        found=$(tss "$v")
        [ -z "$found" ] || fail "$(basename "$v") links tpm2-tss: $(echo $found)"
        echo "ok: $(basename "$v"): no tpm2-tss"
done
echo "PASS: verifiers do not link tpm2-tss"
