#!/usr/bin/env bash
# The README's main job until the local cluster exists: `terraform apply` of examples/local, which
# reads the node image of a local release directory through the provider.
# Usage: examples/run-example.sh [BUILD-DIR] [RELEASE-DIR]
#   BUILD-DIR    where the provider was built (default: build/plain)
#   RELEASE-DIR  a release directory in Constellation's CDN layout; default: a fresh one in
#                out/release with the qemu image entry (built by `constellation-image publish`
#                when the image tools are built, otherwise written here).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/plain}" && pwd)
release=${2:-$top/out/release}
version=v2.25.0
command -v terraform >/dev/null || { echo "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform" >&2; exit 1; }
[ -x "$build/provider/terraform-provider-constellation" ] || { echo "no provider in $build/provider: build first" >&2; exit 1; }

if [ -z "${2:-}" ]; then
        dir="$release/constellation/v2/ref/-/stream/stable/$version/image"
        mkdir -p "$dir"
        cat >"$dir/info.json" <<JSON
{"ref":"-","stream":"stable","version":"$version","list":[{"csp":"QEMU","attestationVariant":"qemu-vtpm","reference":"constellation-qemu-vtpm.raw"}]}
JSON
fi
release=$(cd "$release" && pwd)

cfg=$(mktemp /tmp/ct-example-XXXXXX.tfrc)
trap 'rm -f "$cfg"' EXIT
cat >"$cfg" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$build/provider" }
}
TFRC
export TF_CLI_CONFIG_FILE=$cfg CHECKPOINT_DISABLE=1
cd "${EXAMPLE_DIR:-$top/examples/local}"
terraform apply -auto-approve -var "release_dir=$release" -var "image_version=$version"
