#!/usr/bin/env bash
# The provider against the real Terraform CLI (1.11.4): validate, plan, apply, refresh, destroy,
# import (CLI and import {} block), data sources over file:// and over HTTP on loopback, bad input
# diagnostics, sensitive and write-only secrets. Each case asserts on Terraform's own output.
set -uo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null ||
        fail "terraform not found on PATH. Install Terraform 1.11.4 (https://releases.hashicorp.com/terraform/1.11.4/) as /usr/local/bin/terraform."
[ -n "${CT_BINARY_DIR:-}" ] || fail "CT_BINARY_DIR is not set (run through ctest)"
provider_dir="$CT_BINARY_DIR/provider"
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"

work=$(mktemp -d /tmp/ct-tf-XXXXXX)
http_pid=
cleanup() {
        [ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null
        rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$provider_dir" }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# Under ASan/UBSan the provider's reports would vanish into Terraform's plugin log: write them to
# files and fail on any at the end.
if [ -n "${ASAN_OPTIONS:-}" ] || [ -n "${UBSAN_OPTIONS:-}" ]; then
        # fast_unwind_on_malloc=0 and print_suppressions=0: as test-attestation.sh says (a report of
        # OpenSSL's per-thread error queue must carry the frame test/lsan.supp names)
        export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$work/sanitizer:fast_unwind_on_malloc=0" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$work/sanitizer"
        export LSAN_OPTIONS="${LSAN_OPTIONS:-}:print_suppressions=0"
fi
unset TF_LOG TF_LOG_PATH

tf() { # dir, args...
        local dir=$1
        shift
        (cd "$dir" && "$TERRAFORM" "$@" -no-color) >"$dir/out.log" 2>&1
}
expect_ok() { # dir, args...
        tf "$@" || { cat "$1/out.log"; fail "terraform ${*:2} failed in $1"; }
}
expect_fail() { # dir, args...
        tf "$@" && { cat "$1/out.log"; fail "terraform ${*:2} succeeded in $1 but should fail"; }
        return 0
}
expect_log() { # dir, fixed string; Terraform wraps long lines, so compare with whitespace collapsed
        local flat needle
        flat=$(tr -s ' \n' '  ' <"$1/out.log")
        needle=$(tr -s ' \n' '  ' <<<"$2" | sed 's/ $//')
        grep -qF -- "$needle" <<<"$flat" || { cat "$1/out.log"; fail "expected \"$2\" in the output of $1"; }
}

step() { echo "== $*"; }

# 0. Run by hand, the binary says it is a plugin and exits 1.
step "handshake guard"
out=$("$provider_dir/terraform-provider-constellation" 2>&1) && fail "provider run by hand exited 0"
grep -q "This binary is a plugin" <<<"$out" || fail "provider run by hand did not say it is a plugin: $out"
# Without Terraform's client certificate (TF_DISABLE_PLUGIN_TLS) it refuses to serve plaintext.
out=$(TF_PLUGIN_MAGIC_COOKIE=d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2 \
        PLUGIN_PROTOCOL_VERSIONS=5,6 "$provider_dir/terraform-provider-constellation" 2>&1 </dev/null) &&
        fail "provider without PLUGIN_CLIENT_CERT exited 0: $out"
grep -q "PLUGIN_CLIENT_CERT is not set: this provider serves only over mutual TLS" <<<"$out" ||
        fail "provider without PLUGIN_CLIENT_CERT did not say why it refused: $out"
grep -q '^1|6|' <<<"$out" && fail "provider without PLUGIN_CLIENT_CERT printed a handshake line: $out"
d="$work/no-tls"
mkdir -p "$d"
printf '%s\n' 'terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}
data "constellation_image" "x" {
  version             = "v2.25.0"
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}' >"$d/main.tf"
TF_DISABLE_PLUGIN_TLS=1 expect_fail "$d" validate
expect_log "$d" "Failed to load plugin schemas"

# A local release directory in Constellation's CDN layout.
cdn="$work/cdn"
img="$cdn/constellation/v2/ref/-/stream/stable/v2.25.0/image"
mkdir -p "$img" "$cdn/constellation/v2/ref/feat-x/stream/nightly/v2.26.0-pre/image"
cat >"$img/info.json" <<'JSON'
{"ref":"-","stream":"stable","version":"v2.25.0","list":[
 {"csp":"QEMU","attestationVariant":"qemu-vtpm","reference":"constellation-qemu-vtpm.raw"},
 {"csp":"AWS","attestationVariant":"aws-sev-snp","reference":"ami-0aaa","region":"eu-central-1"},
 {"csp":"AWS","attestationVariant":"aws-sev-snp","reference":"ami-0bbb","region":"us-east-2"}]}
JSON
cat >"$cdn/constellation/v2/ref/feat-x/stream/nightly/v2.26.0-pre/image/info.json" <<'JSON'
{"ref":"feat-x","stream":"nightly","version":"v2.26.0-pre","list":[
 {"csp":"GCP","attestationVariant":"gcp-sev-snp","reference":"projects/p/global/images/x"}]}
JSON

header='terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}'

# 1. Data source over file://: plan, apply, refresh, output, destroy.
step "constellation_image over file://"
d="$work/image-file"
mkdir -p "$d"
cat >"$d/main.tf" <<TF
$header
provider "constellation" {
  cdn_url = "file://$cdn"
}
data "constellation_image" "qemu" {
  version             = "v2.25.0"
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}
data "constellation_image" "aws" {
  version             = "v2.25.0"
  csp                 = "aws"
  attestation_variant = "aws-sev-snp"
  region              = "us-east-2"
}
data "constellation_image" "nightly" {
  version             = "ref/feat-x/stream/nightly/v2.26.0-pre"
  csp                 = "gcp"
  attestation_variant = "gcp-sev-snp"
}
output "qemu" { value = data.constellation_image.qemu.image.reference }
output "aws" { value = data.constellation_image.aws.image.reference }
output "nightly" { value = data.constellation_image.nightly.image }
TF
expect_ok "$d" validate
expect_ok "$d" plan
expect_log "$d" 'qemu    = "constellation-qemu-vtpm.raw"'
expect_ok "$d" apply -auto-approve
expect_ok "$d" output -raw aws
expect_log "$d" "ami-0bbb"
expect_ok "$d" output -json nightly
expect_log "$d" '"short_path":"ref/feat-x/stream/nightly/v2.26.0-pre"'
expect_ok "$d" refresh
expect_ok "$d" apply -refresh-only -auto-approve
expect_ok "$d" destroy -auto-approve

# 2. The same over HTTP from a server on loopback.
step "constellation_image over http://127.0.0.1"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$cdn" >"$work/http.log" 2>&1 &
http_pid=$!
port=
for _ in $(seq 50); do
        port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
done
[ -n "$port" ] || fail "the loopback HTTP server did not start: $(cat "$work/http.log")"
d="$work/image-http"
mkdir -p "$d"
sed "s|file://$cdn|http://127.0.0.1:$port|" "$work/image-file/main.tf" >"$d/main.tf"
expect_ok "$d" apply -auto-approve
expect_log "$d" 'qemu = "constellation-qemu-vtpm.raw"'
grep -q 'GET /constellation/v2/ref/-/stream/stable/v2.25.0/image/info.json' "$work/http.log" ||
        fail "the data source did not fetch info.json from the loopback server"

# 3. Data source errors name the URL and what is missing.
step "constellation_image errors"
d="$work/image-missing"
mkdir -p "$d"
cat >"$d/main.tf" <<TF
$header
provider "constellation" {
  cdn_url = "http://127.0.0.1:$port"
}
data "constellation_image" "x" {
  version             = "v9.9.9"
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}
TF
expect_fail "$d" plan
expect_log "$d" "Cannot fetch image information"
expect_log "$d" "http://127.0.0.1:$port/constellation/v2/ref/-/stream/stable/v9.9.9/image/info.json: HTTP status 404"
sed -i 's/v9.9.9/v2.25.0/; s/"qemu-vtpm"/"azure-sev-snp"/; s/"qemu"/"azure"/' "$d/main.tf"
expect_fail "$d" plan
expect_log "$d" 'has no image for csp "azure", attestation_variant "azure-sev-snp"'

# 4. The cluster resource: validate, plan, write-only secrets, bad input.
cluster_tf() { # csp block extras...
        cat <<TF
$header
variable "master_secret" {
  type      = string
  sensitive = true
  default   = "$MS"
}
resource "constellation_cluster" "c" {
  csp                                = "${CSP:-gcp}"
  name                               = "ct-test"
  uid                                = "a1b2c3"
  image                              = { version = "v2.25.0", reference = "ref", short_path = "v2.25.0" }
  kubernetes_version                 = "v1.31.13"
  constellation_microservice_version = "v2.25.0"
  out_of_cluster_endpoint            = "127.0.0.1"
  network_config = {
    ip_cidr_node    = "${NODE_CIDR:-10.0.0.0/24}"
    ip_cidr_pod     = "10.10.0.0/16"
    ip_cidr_service = "10.96.0.0/12"
  }
  master_secret      = ${MS_EXPR:-var.master_secret}
  master_secret_salt = "$SALT"
  measurement_salt   = "$SALT"
  init_secret        = "init-secret-value"
  attestation = {
    variant            = "${VARIANT:-gcp-sev-snp}"
    bootloader_version = 3
    tee_version        = 0
    snp_version        = 8
    microcode_version  = 115
    amd_root_key       = "\"-----BEGIN CERTIFICATE-----\\\\n\""
    measurements = {
      "4"  = { expected = "1234", warn_only = false }
      "15" = { expected = "0000", warn_only = false }
    }
  }
  $EXTRA
}
TF
}
MS=4d31c5e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b
SALT=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
SA_KEY=c2EtcGxhbnRlZC1rZXktNzcxOTMwNDE=
GCP="gcp = { project_id = \"proj\", service_account_key = \"$SA_KEY\" }"

step "constellation_cluster validate and plan"
d="$work/cluster"
mkdir -p "$d"
EXTRA=$GCP cluster_tf >"$d/main.tf"
expect_ok "$d" validate
expect_ok "$d" plan -out=tfplan
expect_log "$d" "master_secret                      = (write-only attribute)"
expect_log "$d" "kubeconfig                         = (sensitive value)"
expect_log "$d" "cluster_id                         = (known after apply)"
expect_ok "$d" show -json tfplan
# Plan files keep input variables (Terraform's doing); what the provider plans for the resource
# must hold no secret: write-only attributes are null, outputs are marked sensitive.
python3 - "$d/out.log" <<'PY' || fail "the planned resource carries a secret or lacks sensitivity marks"
import json, sys
plan = json.loads(open(sys.argv[1]).read().splitlines()[-1])
rc = [r for r in plan["resource_changes"] if r["type"] == "constellation_cluster"][0]["change"]
for k in ("master_secret", "master_secret_salt", "measurement_salt", "init_secret"):
    assert rc["after"][k] is None, k
assert rc["after"]["gcp"]["service_account_key"] is None, "gcp.service_account_key"
assert rc["after"]["gcp"]["project_id"] == "proj"
assert rc["after_sensitive"]["kubeconfig"] is True
assert rc["after_sensitive"]["client_key"] is True
assert rc["after_unknown"]["cluster_id"] is True
PY
# Create initialises the first node with the qemu-vtpm validator (test/provider-local): for another
# variant a clear error naming the attribute, and nothing in state.
expect_fail "$d" apply -auto-approve
expect_log "$d" "Attestation variant not supported for creation"
expect_log "$d" "on main.tf line"
[ ! -s "$d/terraform.tfstate" ] || ! grep -q constellation_cluster "$d/terraform.tfstate" ||
        fail "a failed create left a cluster in state"

step "constellation_cluster bad input"
d="$work/cluster-bad"
mkdir -p "$d"
MS_EXPR="\"${MS:1}\"" NODE_CIDR=10.0.0.0/244 VARIANT=gcp-sev-snpx EXTRA= cluster_tf >"$d/main.tf"
expect_fail "$d" validate
expect_log "$d" "Attribute master_secret must be exactly 64 hexadecimal characters (32 bytes), got 63"
expect_log "$d" "Attribute network_config.ip_cidr_node value must match the pattern"
expect_log "$d" 'Attribute attestation.variant value must be one of:'
expect_log "$d" 'When csp is "gcp", the gcp attribute must be set.'
# A top-level attribute's diagnostic points at its line in the configuration.
expect_log "$d" "master_secret      = \"${MS:1}\""
grep -q "got: \"${MS:1}" "$d/out.log" && fail "a diagnostic echoed the (bad) master secret"
d="$work/cluster-bad-csp"
mkdir -p "$d"
CSP=azure EXTRA=$GCP cluster_tf >"$d/main.tf"
expect_fail "$d" validate
expect_log "$d" 'When csp is "azure", the azure attribute must be set.'
expect_log "$d" 'The gcp attribute is set but csp is "azure"'

# 5. Import (CLI), state, refresh, destroy of an imported cluster; secrets stay out of state.
step "import (CLI), refresh, destroy"
d="$work/cluster-import"
mkdir -p "$d"
EXTRA=$GCP cluster_tf >"$d/main.tf"
kubeconfig=$(printf 'apiVersion: v1\nkind: Config\nclusters: []\n' | base64 -w0)
import_id="constellation-cluster://?kubeConfig=$kubeconfig&clusterEndpoint=192.0.2.1&masterSecret=$MS&masterSecretSalt=$SALT"
expect_ok "$d" import constellation_cluster.c "$import_id"
expect_log "$d" "Import successful!"
grep -q "$MS" "$d/terraform.tfstate" && fail "the imported master secret was stored in state"
grep -q '"out_of_cluster_endpoint": "192.0.2.1"' "$d/terraform.tfstate" || fail "import did not store the endpoint"
grep -q '"kubeconfig": "apiVersion: v1' "$d/terraform.tfstate" || fail "import did not store the kubeconfig"
expect_ok "$d" state show constellation_cluster.c
expect_log "$d" "kubeconfig"
expect_ok "$d" apply -refresh-only -auto-approve
expect_ok "$d" destroy -auto-approve
expect_log "$d" "Destroy complete! Resources: 1 destroyed."
expect_ok "$d" state list
[ -s "$d/out.log" ] && fail "state not empty after destroy: $(cat "$d/out.log")"

# State written by Constellation's provider holds the secrets in clear, gcp.service_account_key
# too: UpgradeResourceState drops every write-only value, so a refresh rewrites the state without.
step "state from Constellation's provider loses its secrets"
d="$work/cluster-migrate"
mkdir -p "$d"
EXTRA=$GCP cluster_tf >"$d/main.tf"
expect_ok "$d" import constellation_cluster.c "$import_id"
python3 - "$d/terraform.tfstate" "$MS" <<'PY' || fail "cannot plant the old secrets in the state"
import json, sys
path, ms = sys.argv[1], sys.argv[2]
st = json.load(open(path))
a = st["resources"][0]["instances"][0]["attributes"]
a["gcp"] = {"project_id": "proj", "service_account_key": "c2VjcmV0LWtleS1tYXRlcmlhbA=="}
a["master_secret"] = ms
a["init_secret"] = "old-init-secret"
st["serial"] += 1
json.dump(st, open(path, "w"))
PY
grep -q "c2VjcmV0LWtleS1tYXRlcmlhbA==" "$d/terraform.tfstate" || fail "planting the old state failed"
expect_ok "$d" apply -refresh-only -auto-approve
for secret in c2VjcmV0LWtleS1tYXRlcmlhbA== "$MS" old-init-secret; do
        grep -q -- "$secret" "$d/terraform.tfstate" && fail "a write-only secret ($secret) survived the refresh in state"
done
python3 - "$d/terraform.tfstate" <<'PY' || fail "the refreshed state lost the non-secret attributes"
import json, sys
a = json.load(open(sys.argv[1]))["resources"][0]["instances"][0]["attributes"]
assert a["gcp"] == {"project_id": "proj", "service_account_key": None}, a["gcp"]
assert a["master_secret"] is None and a["init_secret"] is None
assert a["out_of_cluster_endpoint"] == "192.0.2.1"
PY

step "import with a bad ID"
expect_fail "$d" import constellation_cluster.c "constellation-cluster://?kubeConfig=$kubeconfig&clusterEndpoint=x&masterSecret=abc&masterSecretSalt=$SALT"
expect_log "$d" "masterSecret and masterSecretSalt must each be 64 hexadecimal characters."
expect_fail "$d" import constellation_cluster.c "https://example.invalid/"
expect_log "$d" "The import ID must be a URI constellation-cluster://"

# 6. import {} block.
step "import {} block"
d="$work/cluster-import-block"
mkdir -p "$d"
EXTRA=$GCP cluster_tf >"$d/main.tf"
cat >>"$d/main.tf" <<TF
import {
  to = constellation_cluster.c
  id = "$import_id"
}
TF
expect_ok "$d" plan
expect_log "$d" "constellation_cluster.c: Preparing import... [id=constellation-cluster://"
expect_log "$d" "1 to import"

# 7. The provider's log never carries the secrets, even at TRACE.
step "no secrets in TF_LOG=trace"
d="$work/cluster"
(cd "$d" && TF_LOG=trace TF_LOG_PATH="$d/trace.log" "$TERRAFORM" plan -no-color >/dev/null 2>&1)
[ -s "$d/trace.log" ] || fail "no trace log written"
grep -q "tfplugin: PlanResourceChange" "$d/trace.log" || fail "provider debug lines missing from the trace"
for secret in "$MS" init-secret-value "$SA_KEY"; do
        grep -q -- "$secret" "$d/trace.log" && fail "a secret ($secret) appears in the trace log"
done
# ... also not when validation fails on it, nor in an import ID's log lines.
d="$work/cluster-import"
(cd "$d" && TF_LOG=trace TF_LOG_PATH="$d/trace.log" "$TERRAFORM" import -no-color constellation_cluster.c "$import_id" >/dev/null 2>&1)
grep -q "tfplugin: ImportResourceState" "$d/trace.log" || fail "provider debug lines missing from the import trace"
grep "provider.terraform-provider-constellation" "$d/trace.log" | grep -q -- "$MS" &&
        fail "the import ID's master secret appears in the provider's trace lines"

if ls "$work"/sanitizer* >/dev/null 2>&1; then
        cat "$work"/sanitizer* >&2
        fail "the provider reported sanitizer errors"
fi
echo "PASS: all terraform flows"
