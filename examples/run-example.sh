#!/usr/bin/env bash
# The README's main job until the local cluster exists: publish a node image's measurements into a
# local release directory with the project's own tools, then `terraform apply` examples/local,
# which reads the image and the signed measurements through the provider.
# Usage: examples/run-example.sh [BUILD-DIR] [RELEASE-DIR]
#   BUILD-DIR    where the project was built (default: build/plain)
#   RELEASE-DIR  default: out/release. Without UKI=…, a small UKI is assembled from systemd's stub
#                (test/image-measure/make-uki.sh); set UKI=path/to/uki.efi (or a disk image built
#                by image/build/build-image.sh) to publish a real node image instead.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/plain}" && pwd)
release=${2:-$top/out/release}
version=v2.25.0
command -v terraform >/dev/null || { echo "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform" >&2; exit 1; }
[ -x "$build/provider/terraform-provider-constellation" ] || { echo "no provider in $build/provider: build first" >&2; exit 1; }
tool="$build/image/tool/constellation-image"
[ -x "$tool" ] || { echo "no constellation-image in $build/image/tool: build first" >&2; exit 1; }

mkdir -p "$release"
release=$(cd "$release" && pwd)
keys="$release/keys"
mkdir -p "$keys"
chmod 700 "$keys"
if [ ! -s "$keys/cosign.key" ]; then
        (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$keys/cosign.key" 2>/dev/null)
        openssl ec -in "$keys/cosign.key" -pubout -out "$keys/cosign.pub" 2>/dev/null
fi
uki=${UKI:-}
if [ -z "$uki" ]; then
        bash "$top/test/image-measure/make-uki.sh" "$release/uki-src" >/dev/null
        uki="$release/uki-src/uki.efi"
fi
echo "== publishing $uki as $version (qemu, qemu-vtpm) into $release"
"$tool" publish --image "$uki" --version "$version" --csp qemu --variant qemu-vtpm --key "$keys/cosign.key" \
        --out "$release" --reference "$(basename "$uki")"

cfg=$(mktemp /tmp/ct-example-XXXXXX.tfrc)
trap 'rm -f "$cfg"' EXIT
cat >"$cfg" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$build/provider" }
}
TFRC
export TF_CLI_CONFIG_FILE=$cfg CHECKPOINT_DISABLE=1
cd "${EXAMPLE_DIR:-$top/examples/local}"
terraform apply -auto-approve -var "release_dir=$release" -var "cosign_public_key=$keys/cosign.pub" \
        -var "image_version=$version"
