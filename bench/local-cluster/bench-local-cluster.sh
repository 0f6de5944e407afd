#!/usr/bin/env bash
# bench-local-cluster.sh: how long `terraform apply` of the local cluster takes (QEMU TCG: emulated
# CPUs, so compare the figures only with each other, measured in the same run on the same load):
#   - one bare boot of the node image to userspace (test/image-boot/boot-image.sh until the image's
#     PCR report, CT-REPORT-END; 1 vCPU, 2 GiB, as each cluster VM), the floor under everything below
#   - `terraform apply` (constellation_qemu_infrastructure + constellation_cluster, as
#     test-local-cluster-vm step 2 but from nothing) until it returns: VMs created, control plane
#     booted and attested, Init, measurements pushed, the worker joined, both nodes verified; with
#     the time Create of each resource took (Terraform's "Creation complete after")
#   - `terraform plan` on the running cluster (3 runs), `terraform destroy`
# Nothing is asserted. Environment: CT_BINARY_DIR (the build directory), CT_SOURCE_DIR, CT_NODE_IMAGE
# (default $CT_BINARY_DIR/node-guest-image), TERRAFORM. Run under `flock /tmp/ct-vm.lock`.
set -uo pipefail
T0=$(date +%s)
say() { printf '[bench-local-cluster %5ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
fail() {
        say "FAIL: $*"
        exit 1
}
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${CT_BINARY_DIR:?CT_BINARY_DIR (the build directory) is required}
TERRAFORM=${TERRAFORM:-terraform}
provider_dir=$bin/provider
image_tool=$bin/image/tool/constellation-image
img=${CT_NODE_IMAGE:-$bin/node-guest-image}
[ -s "$img/img/qemu/disk.raw" ] || fail "no node image in $img (ctest -R node-image-build)"
img=$(cd "$img" && pwd)
work=$(mktemp -d /tmp/ctlb.XXXXXX)
d=$work/tf
mkdir -p "$d"
cleanup() {
        if [ -s "$d/terraform.tfstate" ] && grep -q constellation_qemu_infrastructure "$d/terraform.tfstate"; then
                (cd "$d" && "$TERRAFORM" destroy -auto-approve -no-color >"$work/cleanup.log" 2>&1) || true
        fi
        rm -rf "$work"
}
trap cleanup EXIT
. "$src/test/provider-local/tf-lib.sh"
hexrand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

say "bare boot of $img/img/qemu/disk.raw to userspace (1 vCPU, 2 GiB)"
t=$(date +%s)
bash "$src/test/image-boot/boot-image.sh" --disk "$img/img/qemu/disk.raw" --out "$work/boot" --expect report \
        --smp 1 --mem 2048 --timeout 2400 >"$work/boot.log" 2>&1 || fail "bare boot failed: $(tail -n 5 "$work/boot.log")"
boot_s=$(($(date +%s) - t))
boot_load=$(load)
say "bare boot: $boot_s s (load $boot_load)"

ver=v2.25.0
keys=$work/keys
mkdir -p "$keys"
(umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$keys/cosign.key" 2>/dev/null) || fail "openssl ecparam"
openssl ec -in "$keys/cosign.key" -pubout -out "$keys/cosign.pub" 2>/dev/null || fail "openssl ec -pubout"
"$image_tool" publish --image "$img/img/qemu/disk.raw" --version "$ver" --csp qemu --variant qemu-vtpm \
        --key "$keys/cosign.key" --out "$work/rel" --reference disk.raw >"$work/publish.log" 2>&1 ||
        fail "constellation-image publish: $(cat "$work/publish.log")"
ln -s "$img/img/qemu/disk.raw" "$work/rel/constellation/v2/ref/-/stream/stable/$ver/image/disk.raw"
export TF_VAR_master_secret=$(hexrand 32) TF_VAR_master_secret_salt=$(hexrand 32) TF_VAR_measurement_salt=$(hexrand 32)
export TF_VAR_init_secret="bench-init-$(hexrand 12)"
cat >"$d/main.tf" <<TF
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}
provider "constellation" {
  cdn_url           = "file://$work/rel"
  cosign_public_key = file("$keys/cosign.pub")
}
variable "init_secret" {
  type      = string
  sensitive = true
}
variable "master_secret" {
  type      = string
  sensitive = true
}
variable "master_secret_salt" {
  type      = string
  sensitive = true
}
variable "measurement_salt" {
  type      = string
  sensitive = true
}
data "constellation_image" "qemu" {
  version             = "$ver"
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}
data "constellation_attestation" "qemu" {
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
  image               = data.constellation_image.qemu.image
  skip_rekor          = true
}
resource "constellation_qemu_infrastructure" "local" {
  name                = "bench"
  image               = data.constellation_image.qemu.image
  control_plane_count = 1
  worker_count        = 1
  vcpus               = 1
  memory              = 2048
  state_disk_size     = 1
  init_secret         = var.init_secret
}
resource "constellation_cluster" "local" {
  csp                                = "qemu"
  name                               = "bench"
  uid                                = constellation_qemu_infrastructure.local.uid
  image                              = data.constellation_image.qemu.image
  attestation                        = data.constellation_attestation.qemu.attestation
  kubernetes_version                 = "v1.31.13"
  constellation_microservice_version = "$ver"
  init_secret                        = var.init_secret
  master_secret                      = var.master_secret
  master_secret_salt                 = var.master_secret_salt
  measurement_salt                   = var.measurement_salt
  out_of_cluster_endpoint            = constellation_qemu_infrastructure.local.out_of_cluster_endpoint
  in_cluster_endpoint                = constellation_qemu_infrastructure.local.in_cluster_endpoint
  api_server_cert_sans               = constellation_qemu_infrastructure.local.api_server_cert_sans
  network_config = {
    ip_cidr_node    = constellation_qemu_infrastructure.local.ip_cidr_node
    ip_cidr_service = "10.96.0.0/12"
  }
  nodes = [for n in constellation_qemu_infrastructure.local.nodes :
    { name = n.name, role = n.role, verification_endpoint = "\${n.host_address}:30081", instance = tostring(n.qemu_pid) }]
  join_timeout = "30m"
}
TF

say "terraform apply (VMs, Init, the worker's join, both nodes verified)"
t=$(date +%s)
# Create waits 20 minutes for the booting control plane; one more apply if the boot took longer.
for attempt in 1 2; do
        (cd "$d" && "$TERRAFORM" apply -auto-approve -no-color) >"$work/apply-$attempt.log" 2>&1 && break
        [ "$attempt" = 1 ] && grep -q "Cannot reach the first control plane" "$work/apply-$attempt.log" ||
                fail "apply failed: $(tail -n 30 "$work/apply-$attempt.log")"
done
apply_s=$(($(date +%s) - t))
apply_load=$(load)
creates=$(grep -h -o '[a-z_]*\.local: Creation complete after [0-9hms]*' "$work"/apply-*.log | sed 's/: Creation complete after /: /' | tr '\n' ';' | sed 's/;$//; s/;/, /g')
say "apply: $apply_s s in $attempt attempt(s) (load $apply_load; $creates)"

plans=()
for i in 1 2 3; do
        t=$(date +%s%N)
        (cd "$d" && "$TERRAFORM" plan -detailed-exitcode -no-color) >"$work/plan.log" 2>&1 || fail "plan $i not empty: $(tail -n 20 "$work/plan.log")"
        plans+=("$((($(date +%s%N) - t) / 1000000))")
done
t=$(date +%s%N)
(cd "$d" && "$TERRAFORM" destroy -auto-approve -no-color) >"$work/destroy.log" 2>&1 || fail "destroy failed: $(tail -n 20 "$work/destroy.log")"
destroy_ms=$((($(date +%s%N) - t) / 1000000))

echo "local-cluster bench (QEMU TCG, 1 vCPU + 2 GiB per VM, $(nproc) host CPUs, $(date -u +%FT%RZ))"
echo "  bare boot to userspace (CT-REPORT-END):         $boot_s s (load $boot_load)"
echo "  terraform apply to an initialised, joined cluster: $apply_s s = $(python3 -c "print('%.1f' % ($apply_s / $boot_s))")x the bare boot (load $apply_load; $creates)"
echo "  terraform plan on the running cluster:           ${plans[*]} ms"
echo "  terraform destroy:                              $destroy_ms ms"
