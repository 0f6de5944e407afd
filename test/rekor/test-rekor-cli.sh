#!/usr/bin/env bash
# constellation-attest rekor verify on the sigstore-conformance bundles.
set -uo pipefail
A=${1:?constellation-attest}
D=${2:?data dir}
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { out=$("$A" rekor verify "$@" 2>&1); rc=$?; }
expect() { [ "$rc" = "$1" ] || fail "exit $rc, want $1: $out"; grep -qF -- "$2" <<<"$out" || fail "want \"$2\" in: $out"; }
run --bundle "$D/bundle.sigstore.json" --rekor-key "$D/rekor.pub"
expect 0 "entry 771488337 verified"
run --bundle "$D/bundle.sigstore.json" --rekor-key "$D/rekor.pub" --artifact "$D/a.txt" --key "$D/key.pub" --json
expect 0 '"logIndex": 771488337'
run --bundle "$D/bundle.sigstore.json" --rekor-key "$D/rekor.pub" --artifact "$D/rekor.pub" --key "$D/key.pub"
expect 1 "entry is for a different artifact hash"
run --bundle "$D/bundle.sigstore.json" --rekor-key "$D/key.pub"
expect 1 "logID does not match the Rekor key"
run --bundle "$D/set-invalid-signature_fail.bundle.sigstore.json" --rekor-key "$D/rekor.pub"
expect 1 "signed entry timestamp does not verify"
run --bundle "$D/invalid-inclusion-proof_fail.bundle.sigstore.json" --rekor-key "$D/rekor.pub"
expect 1 "inclusion proof does not lead to the tree's root hash"
run --bundle "$D/inclusion-proof-corrupted-hash_fail.bundle.sigstore.json" --rekor-key "$D/rekor.pub"
expect 1 "inclusion proof does not lead to the tree's root hash"
run --bundle "$D/checkpoint-wrong-roothash_fail.bundle.sigstore.json" --rekor-key "$D/rekor.pub"
expect 1 "checkpoint is for a different tree"
run --bundle "$D/invalid-checkpoint-signature_fail.bundle.sigstore.json" --rekor-key "$D/rekor.pub"
expect 1 "checkpoint is not signed by the Rekor key"
run --bundle "$D/a.txt" --rekor-key "$D/rekor.pub"
expect 1 "a.txt: not JSON"
run --bundle "$D/bundle.sigstore.json"
expect 2 "--bundle and --rekor-key are required"
echo "PASS: rekor CLI"
