#!/usr/bin/env bash
# Every configuration in examples/ is valid for this provider (terraform validate), and the README's
# main job (examples/run-example.sh) applies.
set -uo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v terraform >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
work=$(mktemp -d /tmp/ct-examples-XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$CT_BINARY_DIR/provider" }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1
for dir in "$CT_SOURCE_DIR"/examples/local "$CT_SOURCE_DIR"/examples/full/*/; do
        cp -r "$dir" "$work/ex"
        (cd "$work/ex" && terraform validate -no-color) >"$work/out.log" 2>&1 || { cat "$work/out.log"; fail "terraform validate failed for $dir"; }
        rm -rf "$work/ex"
done
# The README's main job: publish with constellation-image, then apply examples/local.
cp -r "$CT_SOURCE_DIR/examples/local" "$work/local-copy"
EXAMPLE_DIR="$work/local-copy" bash "$CT_SOURCE_DIR/examples/run-example.sh" "$CT_BINARY_DIR" "$work/rel" >"$work/run.log" 2>&1 ||
        { cat "$work/run.log"; fail "run-example.sh failed"; }
grep -q '"reference" = "uki.efi"' "$work/run.log" || { cat "$work/run.log"; fail "run-example.sh did not read the image"; }
grep -q '"11" = {' "$work/run.log" || { cat "$work/run.log"; fail "run-example.sh did not read the measurements"; }
[ "$(stat -c %a "$work/rel/keys/cosign.key")" = 600 ] || fail "the signing key is not 0600"
echo "PASS: examples"
