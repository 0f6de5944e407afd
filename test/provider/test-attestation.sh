#!/usr/bin/env bash
# constellation_attestation with the real Terraform CLI against a local release directory signed in
# the test: signature, csp/variant selection, SEV-SNP TCB, and Rekor failing closed (unreachable log,
# a log without the entry) unless skip_rekor is set.
set -uo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v terraform >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
[ -n "${CT_BINARY_DIR:-}" ] || fail "CT_BINARY_DIR is not set (run through ctest)"
work=$(mktemp -d /tmp/ct-att-XXXXXX)
rekor_pid=
trap '[ -n "$rekor_pid" ] && kill $rekor_pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cat >"$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$CT_BINARY_DIR/provider" }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1
# fast_unwind_on_malloc=0: libcrypto has no frame pointers, so the fast unwinder can stop inside it,
# and a report of OpenSSL's per-thread error queue on gRPC's threads (test/lsan.supp, ERR_clear_error)
# then comes without the frame its suppression names (seen once in a clean-clone CI run: 904 bytes,
# only CRYPTO_zalloc in the stack); print_suppressions=0: a suppressed report writes no file.
if [ -n "${ASAN_OPTIONS:-}" ]; then
	export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$work/sanitizer:fast_unwind_on_malloc=0"
	export LSAN_OPTIONS="${LSAN_OPTIONS:-}:print_suppressions=0"
fi

# A signing key and a release signed with it, as `constellation-image publish` lays it out.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/cosign.key" 2>/dev/null
openssl ec -in "$work/cosign.key" -pubout -out "$work/cosign.pub" 2>/dev/null
chmod 600 "$work/cosign.key"
rel="$work/cdn/constellation/v2/ref/-/stream/stable/v2.25.0/image"
mkdir -p "$rel"
P4=$(printf '4%.0s' $(seq 64)); P9=$(printf '9%.0s' $(seq 64)); P11=$(printf 'b%.0s' $(seq 64)); Z=$(printf '0%.0s' $(seq 64))
cat >"$rel/measurements.json" <<JSON
{"version":"v2.25.0","ref":"-","stream":"stable","list":[
 {"csp":"GCP","attestationVariant":"gcp-sev-snp","measurements":{"4":{"expected":"$P4","warnOnly":false},"15":{"expected":"$Z","warnOnly":false}}},
 {"csp":"QEMU","attestationVariant":"qemu-vtpm","measurements":{"4":{"expected":"$P4","warnOnly":false},"9":{"expected":"$P9","warnOnly":false},"11":{"expected":"$P11","warnOnly":true}}}]}
JSON
sign() { openssl dgst -sha256 -sign "$work/cosign.key" "$1" | base64 -w0 >"$1.sig"; }
sign "$rel/measurements.json"
tcb="$work/cdn/constellation/v1/attestation/gcp-sev-snp"
mkdir -p "$tcb"
echo '["2025-06-01-12-00","2024-01-01-00-00"]' >"$tcb/list"
echo '{"bootloader":3,"tee":0,"snp":14,"microcode":72}' >"$tcb/2025-06-01-12-00"
sign "$tcb/2025-06-01-12-00"
sign "$tcb/list"

config() { # variant csp rekor_url extra-attributes
        cat <<TF
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}
provider "constellation" {
  cdn_url           = "file://$work/cdn"
  cosign_public_key = file("$work/cosign.pub")
  rekor_url         = "$3"
}
data "constellation_attestation" "a" {
  csp                 = "$2"
  attestation_variant = "$1"
  image               = { version = "v2.25.0", reference = "x", short_path = "v2.25.0" }
  ${4:-}
}
output "att" { value = data.constellation_attestation.a.attestation }
TF
}
run() { # name, expect ok|fail, config args...
        local d="$work/$1" want=$2
        shift 2
        mkdir -p "$d"
        config "$@" >"$d/main.tf"
        (cd "$d" && terraform apply -auto-approve -no-color) >"$d/out.log" 2>&1
        local rc=$?
        if [ "$want" = ok ] && [ $rc -ne 0 ]; then cat "$d/out.log"; fail "$d: apply failed"; fi
        if [ "$want" = fail ] && [ $rc -eq 0 ]; then cat "$d/out.log"; fail "$d: apply succeeded but should fail"; fi
        out=$(tr -s ' \n' '  ' <"$d/out.log")
}
has() { grep -qF -- "$1" <<<"$out" || { echo "$out" >&2; fail "expected \"$1\""; }; }

echo "== Rekor unreachable: an error, not a warning"
run rekor-down fail qemu-vtpm qemu http://127.0.0.1:1
has "Transparency log check failed"
has "the log could not be reached: http://127.0.0.1:1/api/v1/index/retrieve"
has "Set skip_rekor = true"

echo "== Rekor without an entry for the measurements: an error"
python3 -u "$CT_SOURCE_DIR/test/rekor/rekor-server.py" "$CT_SOURCE_DIR/test/rekor/data/rekor-entry.api.json" \
        0000000000000000000000000000000000000000000000000000000000000000 00 >"$work/rekor.port" &
rekor_pid=$!
for _ in $(seq 50); do [ -s "$work/rekor.port" ] && break; sleep 0.1; done
port=$(head -1 "$work/rekor.port")
[ -n "$port" ] || fail "the stand-in Rekor did not start"
run rekor-empty fail qemu-vtpm qemu "http://127.0.0.1:$port"
has "no entry for the artifact in the log"

echo "== skip_rekor: measurements accepted with a warning, the log not contacted"
run qemu ok qemu-vtpm qemu http://127.0.0.1:1 "skip_rekor = true"
has "Warning: Transparency log not checked"
has "\"expected\" = \"$P11\""
has "\"warn_only\" = true"
has '"variant" = "qemu-vtpm"'
has '"amd_root_key" = ""'

echo "== SEV-SNP: TCB minimums and the AMD root key"
run snp ok gcp-sev-snp gcp http://127.0.0.1:1 "skip_rekor = true"
has '"bootloader_version" = 3'
has '"snp_version" = 14'
has '"microcode_version" = 72'
has 'BEGIN CERTIFICATE'
# amd_root_key is the ARK of amd_product (default Milan, as Constellation); neither the variant nor
# the attestation config names the product.
ark_subject() { (cd "$work/$1" && terraform output -json att) | jq -r .amd_root_key | jq -r . | openssl x509 -noout -subject; }
[[ $(ark_subject snp) == *"CN = ARK-Milan"* ]] || fail "default amd_root_key: $(ark_subject snp), want ARK-Milan"
for product in Genoa Turin; do
        run "snp-$product" ok gcp-sev-snp gcp http://127.0.0.1:1 "skip_rekor = true
  amd_product = \"$product\""
        [[ $(ark_subject "snp-$product") == *"CN = ARK-$product"* ]] || fail "amd_product $product: $(ark_subject "snp-$product")"
done
run product-qemu fail qemu-vtpm qemu http://127.0.0.1:1 'skip_rekor = true
  amd_product = "Genoa"'
has "amd_product needs an SEV-SNP variant"
run product-bad fail gcp-sev-snp gcp http://127.0.0.1:1 'skip_rekor = true
  amd_product = "Rome"'
has 'amd_product'
has 'Rome'

echo "== an unsigned TCB version list is refused (it could select an older, lower TCB entry)"
mv "$tcb/list.sig" "$work/list.sig"
run snp-unsigned-list fail gcp-sev-snp gcp http://127.0.0.1:1 "skip_rekor = true"
has "list.sig"
mv "$work/list.sig" "$tcb/list.sig"

echo "== a tampered measurements file is refused"
cp "$rel/measurements.json" "$work/orig.json"
sed -i "s/$P9/$P4/" "$rel/measurements.json"
run tampered fail qemu-vtpm qemu http://127.0.0.1:1 "skip_rekor = true"
has "Measurements not trusted"
has "signature does not match the file and key"
echo "== insecure skips the checks, with a warning"
run insecure ok qemu-vtpm qemu http://127.0.0.1:1 "insecure = true"
has "Warning: Measurements not verified"
cp "$work/orig.json" "$rel/measurements.json"

echo "== no entry for the csp/variant"
run missing fail azure-sev-snp azure http://127.0.0.1:1 "skip_rekor = true"
has 'has no entry for csp "azure" and attestation variant "azure-sev-snp"'

if ls "$work"/sanitizer* >/dev/null 2>&1; then cat "$work"/sanitizer* >&2; fail "the provider reported sanitizer errors"; fi
echo "PASS: constellation_attestation"
