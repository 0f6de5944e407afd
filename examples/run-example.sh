#!/usr/bin/env bash
# The README's main job: publish a node image's measurements into a local release directory with the
# project's own tools, then `terraform apply` examples/local.
#
# Usage: examples/run-example.sh [--cluster | --destroy] [BUILD-DIR] [RELEASE-DIR]
#   (no flag)    read the image and its signed measurements through the provider's data sources only
#                (no VM; seconds). Without UKI=…, a small UKI is assembled from systemd's stub
#                (test/image-measure/make-uki.sh); UKI=path/to/uki.efi or a disk image publishes that.
#   --cluster    (also: -var cluster=true) the local confidential cluster: 1 control plane + 1 worker
#                in QEMU VMs (constellation_qemu_infrastructure) from a node image, initialised and
#                verified by constellation_cluster. The node image is NODE_IMAGE=path/disk.raw, else
#                out/node-image/qemu/disk.raw, built first if missing (root, mkosi, Debian mirror;
#                image/build/build-image.sh with this build's node programs). Secrets: generated once
#                into RELEASE-DIR/keys/cluster.env (0600) and passed as TF_VAR_* (write-only: never in
#                Terraform state). Prints the cluster ID, how to verify it and how to tear it down.
#   --destroy    terraform destroy of the local cluster (stops every VM and swtpm, removes their files).
#   BUILD-DIR    where the project was built (default: build/plain)
#   RELEASE-DIR  default: out/release
# Environment: VCPUS (per VM; default 2, 1 on a machine with 2 CPUs or fewer), EXAMPLE_DIR.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
T0=$(date +%s)
say() { printf '[run-example %4ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() {
        echo "run-example: $*" >&2
        exit 1
}
mode=read
args=()
while [ $# -gt 0 ]; do
        case $1 in
        --cluster) mode=cluster ;;
        --destroy) mode=destroy ;;
        -var)
                [ "${2:-}" = cluster=true ] || die "only -var cluster=true is understood here (see the usage in $0)"
                mode=cluster
                shift
                ;;
        -var=cluster=true) mode=cluster ;;
        -h | --help)
                sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
                exit 0
                ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) args+=("$1") ;;
        esac
        shift
done
build=$(cd "${args[0]:-$top/build/plain}" && pwd)
release=${args[1]:-$top/out/release}
version=v2.25.0
command -v terraform >/dev/null || die "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
[ -x "$build/provider/terraform-provider-constellation" ] || die "no provider in $build/provider: build first"
tool="$build/image/tool/constellation-image"
[ -x "$tool" ] || die "no constellation-image in $build/image/tool: build first"

mkdir -p "$release"
release=$(cd "$release" && pwd)
keys="$release/keys"
mkdir -p "$keys"
chmod 700 "$keys"
if [ ! -s "$keys/cosign.key" ]; then
        (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$keys/cosign.key" 2>/dev/null)
        openssl ec -in "$keys/cosign.key" -pubout -out "$keys/cosign.pub" 2>/dev/null
fi
image_dir="$release/constellation/v2/ref/-/stream/stable/$version/image"
example=${EXAMPLE_DIR:-$top/examples/local}

cfg=$(mktemp /tmp/ct-example-XXXXXX.tfrc)
monitor=""
cleanup() {
        [ -z "$monitor" ] || kill "$monitor" 2>/dev/null || true
        rm -f "$cfg"
}
trap cleanup EXIT
cat >"$cfg" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$build/provider" }
}
TFRC
export TF_CLI_CONFIG_FILE=$cfg CHECKPOINT_DISABLE=1
tfvars=(-var "release_dir=$release" -var "cosign_public_key=$keys/cosign.pub" -var "image_version=$version")

if [ "$mode" = read ]; then
        # Without -var cluster=true, Terraform would destroy a local cluster that is up.
        ! grep -qs '"type": "constellation_qemu_infrastructure"' "$example/terraform.tfstate" ||
                die "a local cluster is up in $example: run with --cluster to converge it, or --destroy first"
        uki=${UKI:-}
        if [ -z "$uki" ]; then
                bash "$top/test/image-measure/make-uki.sh" "$release/uki-src" >/dev/null
                uki="$release/uki-src/uki.efi"
        fi
        echo "== publishing $uki as $version (qemu, qemu-vtpm) into $release"
        "$tool" publish --image "$uki" --version "$version" --csp qemu --variant qemu-vtpm --key "$keys/cosign.key" \
                --out "$release" --reference "$(basename "$uki")"
        cd "$example"
        exec terraform apply -auto-approve "${tfvars[@]}"
fi

# ---- the local cluster -------------------------------------------------------------------------
secrets="$keys/cluster.env"
if [ ! -s "$secrets" ]; then
        [ "$mode" = cluster ] || die "no $secrets: nothing to destroy that this script created"
        # Keep this file: the cluster's keys derive from the master secret and its salt.
        (umask 077 && printf 'TF_VAR_init_secret=%s\nTF_VAR_master_secret=%s\nTF_VAR_master_secret_salt=%s\nTF_VAR_measurement_salt=%s\n' \
                "$(openssl rand -hex 24)" "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" >"$secrets")
fi
chmod 600 "$secrets"
set -a
# shellcheck disable=SC1090
. "$secrets"
set +a
if [ -z "${VCPUS:-}" ]; then
        VCPUS=2
        [ "$(nproc)" -gt 2 ] || VCPUS=1
fi
tfvars+=(-var cluster=true -var "vcpus=$VCPUS")
cd "$example"

if [ "$mode" = destroy ]; then
        say "terraform destroy of the local cluster in $example"
        terraform destroy -auto-approve "${tfvars[@]}"
        say "done: no VM, swtpm or VM file of the cluster is left ($secrets is kept; delete it when you no longer need the cluster's keys)"
        exit 0
fi

# The node image: NODE_IMAGE, else out/node-image, built with this build's node programs if missing.
disk=${NODE_IMAGE:-$top/out/node-image/qemu/disk.raw}
if [ ! -s "$disk" ]; then
        [ -z "${NODE_IMAGE:-}" ] || die "NODE_IMAGE=$NODE_IMAGE does not exist"
        [ "$(id -u)" -eq 0 ] || die "building the node image needs root (mkosi, systemd-nspawn); or set NODE_IMAGE=path/disk.raw"
        out="$top/out/node-image"
        log="$out.log"
        say "no node image: building $disk (mkosi tree from Debian's mirror + assembly: 5-10 min here; log $log)"
        rm -rf "$out/node"
        mkdir -p "$out"
        cmake -DCMAKE_INSTALL_PREFIX="$out/node/usr" -P "$build/node/cmake_install.cmake" >"$log" 2>&1 ||
                die "installing $build/node failed (is every node program built?): $(tail -n 3 "$log")"
        bash "$top/image/build/build-image.sh" --variant qemu --node-dir "$out/node" --out "$out" >>"$log" 2>&1 &
        b=$!
        while kill -0 "$b" 2>/dev/null; do
                sleep 30
                kill -0 "$b" 2>/dev/null && say "building the node image: $(grep -av '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-100)"
        done
        wait "$b" || die "the node image build failed: $(tail -n 5 "$log")"
        say "node image built: $disk"
fi
disk=$(realpath "$disk")
say "publishing $disk as $version (qemu, qemu-vtpm) into $release"
"$tool" publish --image "$disk" --version "$version" --csp qemu --variant qemu-vtpm --key "$keys/cosign.key" \
        --out "$release" --reference disk.raw >/dev/null
# The image's reference is a file beside info.json (the VMs boot a copy of it).
ln -sfn "$disk" "$image_dir/disk.raw"
meas="$release/measurements-qemu.json"
jq '{measurements: (.list[] | select(.csp == "QEMU" and .attestationVariant == "qemu-vtpm") | .measurements)}' \
        "$image_dir/measurements.json" >"$meas"

say "terraform apply: 1 control plane + 1 worker ($VCPUS vCPU each; under TCG the nodes take 8-15 min to boot, then Init and the worker's join)"
wdir="$example/.constellation-qemu/local"
(
        # A line per node every 2 minutes: the end of its serial console.
        while sleep 120; do
                for n in control-plane-0 worker-0; do
                        [ -s "$wdir/$n/console.log" ] || continue
                        say "$n: $(tr -d '\r' <"$wdir/$n/console.log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -av '^[[:space:]]*$' | tail -n 1 | cut -c1-100)"
                done
        done
) &
monitor=$!
rc=0
terraform apply -auto-approve "${tfvars[@]}" || rc=$?
kill "$monitor" 2>/dev/null || true
monitor=""
if [ "$rc" != 0 ]; then
        echo "run-example: terraform apply failed (exit $rc). Each node's serial console: $wdir/<node>/console.log." >&2
        echo "Apply again to converge, or tear down with: bash $top/examples/run-example.sh --destroy $build $release" >&2
        exit "$rc"
fi
cid=$(terraform output -raw cluster_id)
attest="$build/cli/attest/constellation-attest"
cat <<EOF

== The local confidential cluster is up ($(($(date +%s) - T0)) s).
Cluster ID: $cid

Verify every node yourself (a fresh attestation with PCR 15 = the cluster ID):
$(terraform output -json nodes | jq -r --arg a "$attest" --arg c "$cid" --arg m "$meas" \
                '.[] | "  \($a) verify --endpoint \(.host_address):30081 --cluster-id \($c) --measurements \($m)   # \(.name)"')

Admin kubeconfig: terraform -chdir=$example output -raw kubeconfig   (sensitive)
Tear down:        bash $top/examples/run-example.sh --destroy $build $release
EOF
