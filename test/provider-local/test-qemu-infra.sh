#!/usr/bin/env bash
# test-provider-qemu-infra: constellation_qemu_infrastructure through the real Terraform CLI, with
# real qemu-system-x86_64 (TCG) + OVMF + swtpm, loopback only. The VMs boot CT_QEMU_INFRA_IMAGE if
# set, else a 1 MiB blank disk on which OVMF reaches its boot manager (the lifecycle is under test,
# not the OS). The image comes through data source constellation_image from a file:// release.
#
#   1. bad input: diagnostics name the attribute (counts, image + image_path, a short init secret
#      that is never echoed)
#   2. the provider killed (SIGKILL, test hook) after 3 process starts of a create: the processes run
#      on, recorded in <working_dir>.state.json (0600); the next apply takes them over (the complete
#      control plane kept, the half-started worker's swtpm stopped by pid and the node started whole)
#   3. apply 1 + 1: outputs present and consistent; the QEMU and swtpm processes outlive the provider
#      (own session, not children of Terraform or of this shell); the state holds neither the init
#      secret nor anything but its bcrypt hash
#   4. plan: no changes
#   5. worker QEMU killed from outside (by its recorded pid) -> plan names the node and plans an
#      update of `nodes`; apply restarts only that node; plan: no changes
#   6. worker_count 1 -> 2 -> 1 adds and removes worker-1 only (its processes and files)
#   7. destroy: every process this test saw is gone (by pid), no file is left
set -uo pipefail

fail() { echo "test-provider-qemu-infra: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
for t in qemu-system-x86_64 swtpm jq; do
        command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh: qemu-system-x86, swtpm, jq)"
done
[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || fail "OVMF is not installed (apt-get install ovmf)"
provider_dir=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}/provider
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"

# Short base path: the VMs' unix sockets live below it (108-byte sun_path).
work=$(mktemp -d /tmp/ctpq.XXXXXX)
d=$work/tf
mkdir -p "$d"
seen_pids=""
cleanup() {
        # Only what this test started: terraform destroy (by recorded pid), then any recorded pid
        # still running whose program is QEMU or swtpm.
        if [ -s "$d/terraform.tfstate" ] && grep -q constellation_qemu_infrastructure "$d/terraform.tfstate"; then
                (cd "$d" && "$TERRAFORM" destroy -auto-approve -no-color >"$work/cleanup.log" 2>&1) || true
        fi
        for p in $seen_pids; do
                case $(readlink "/proc/$p/exe" 2>/dev/null) in
                */qemu-system-x86_64 | */swtpm) kill -9 "$p" 2>/dev/null || true ;;
                esac
        done
        rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/tf-lib.sh"
# alive PID: the process exists and is not a zombie (an exited QEMU may wait for its reaper)
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# wait_gone PID: until the process is gone or a zombie, at most 20 s
wait_gone() {
        local deadline=$((SECONDS + 20))
        while alive "$1"; do
                [ $SECONDS -lt $deadline ] || return 1
                sleep 0.1
        done
}

# A local release in Constellation's CDN layout whose qemu image is the disk to boot.
ver=v2.25.0
rel=$work/cdn/constellation/v2/ref/-/stream/stable/$ver/image
mkdir -p "$rel"
if [ -n "${CT_QEMU_INFRA_IMAGE:-}" ]; then
        [ -s "$CT_QEMU_INFRA_IMAGE" ] || fail "CT_QEMU_INFRA_IMAGE=$CT_QEMU_INFRA_IMAGE is missing"
        ln -s "$(realpath "$CT_QEMU_INFRA_IMAGE")" "$rel/disk.raw"
else
        truncate -s 1M "$rel/disk.raw"
fi
cat >"$rel/info.json" <<JSON
{"ref":"-","stream":"stable","version":"$ver","list":[
 {"csp":"QEMU","attestationVariant":"qemu-vtpm","reference":"disk.raw"}]}
JSON
init_secret="planted-init-secret-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
export TF_VAR_init_secret=$init_secret

main_tf() { # CPS WORKERS [EXTRA]
        cat <<TF
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}
provider "constellation" {
  cdn_url = "file://$work/cdn"
}
variable "init_secret" {
  type      = string
  sensitive = true
}
data "constellation_image" "qemu" {
  version             = "$ver"
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}
resource "constellation_qemu_infrastructure" "local" {
  name                = "tfq"
  image               = data.constellation_image.qemu.image
  control_plane_count = $1
  worker_count        = $2
  vcpus               = 1
  memory              = 256
  state_disk_size     = 1
  accelerator         = "tcg"
  init_secret         = var.init_secret
  ${3:-}
}
output "uid" { value = constellation_qemu_infrastructure.local.uid }
output "out_of_cluster_endpoint" { value = constellation_qemu_infrastructure.local.out_of_cluster_endpoint }
output "in_cluster_endpoint" { value = constellation_qemu_infrastructure.local.in_cluster_endpoint }
output "api_server_cert_sans" { value = constellation_qemu_infrastructure.local.api_server_cert_sans }
output "ip_cidr_node" { value = constellation_qemu_infrastructure.local.ip_cidr_node }
output "nodes" { value = constellation_qemu_infrastructure.local.nodes }
output "working_dir" { value = constellation_qemu_infrastructure.local.working_dir }
TF
}

# ---------------------------------------------------------------------------------------------
step "bad input names the attribute"
main_tf 0 156 'image_path = "relative/disk.raw"' >"$d/main.tf"
expect_fail validate
expect_log "Attribute control_plane_count must be a whole number from 1 to 99."
expect_log "Attribute worker_count must be a whole number from 0 to 155."
expect_log "Attribute image_path must be an absolute path"
# The image object comes from a data source: known at plan time.
main_tf 1 1 "image_path = \"$rel/disk.raw\"" >"$d/main.tf"
expect_fail plan
expect_log "Set only one of image and image_path."
main_tf 1 1 >"$d/main.tf"
TF_VAR_init_secret=short-secret expect_fail plan
expect_log "Attribute init_secret must be 16 to 72 bytes without NUL bytes (bcrypt uses at most 72); got 12 bytes."
grep -q short-secret "$d/out.log" && fail "a diagnostic echoed the init secret"

# ---------------------------------------------------------------------------------------------
step "the provider killed during apply (after 3 process starts): the next apply takes the VMs over"
main_tf 1 1 >"$d/main.tf"
CONSTELLATION_TEST_QEMU_KILL_AFTER_STARTS=3 expect_fail apply -auto-approve
expect_log "Plugin did not respond"
journal=$d/.constellation-qemu/tfq.state.json
[ -s "$journal" ] || fail "no record of the interrupted apply ($journal)"
[ "$(stat -c %a "$journal")" = 600 ] || fail "$journal is not 0600"
grep -qF -- "$init_secret" "$journal" && fail "the init secret is in $journal"
k_cp_q=$(jq -r '.nodes[0].qemu.pid' "$journal") k_cp_s=$(jq -r '.nodes[0].swtpm.pid' "$journal")
k_w_s=$(jq -r '.nodes[1].swtpm.pid' "$journal")
seen_pids="$k_cp_q $k_cp_s $k_w_s"
for p in $seen_pids; do
        alive "$p" || fail "pid $p recorded by the interrupted apply is not running"
done
[ "$(jq -r '.nodes[1].qemu' "$journal")" = null ] || fail "the interrupted apply started worker-0's QEMU"
if [ -s "$d/terraform.tfstate" ] && grep -q constellation_qemu_infrastructure "$d/terraform.tfstate"; then
        fail "the interrupted create is in the state"
fi

step "apply 1 + 1"
expect_ok apply -auto-approve
expect_log "Taking over an interrupted apply"
[ ! -e "$journal" ] || fail "$journal is left after a successful apply"
expect_ok output -json
cp "$d/out.log" "$work/outputs.json"
jq -e . "$work/outputs.json" >/dev/null || fail "terraform output -json is not JSON: $(cat "$work/outputs.json")"
o() { jq -r ".$1.value" "$work/outputs.json"; }
uid=$(o uid) ep=$(o out_of_cluster_endpoint)
[[ "$uid" =~ ^[0-9a-f]{8}$ ]] || fail "uid: '$uid'"
[[ "$ep" =~ ^127\.([0-9]+)\.[0-9]+\.1$ ]] && [ "${BASH_REMATCH[1]}" != 0 ] || fail "out_of_cluster_endpoint: '$ep'"
[ "$(o in_cluster_endpoint)" = 10.42.1.100 ] || fail "in_cluster_endpoint: $(o in_cluster_endpoint)"
[ "$(o ip_cidr_node)" = 10.42.0.0/22 ] || fail "ip_cidr_node: $(o ip_cidr_node)"
[ "$(jq -c .api_server_cert_sans.value "$work/outputs.json")" = "[\"$ep\",\"10.42.1.100\"]" ] ||
        fail "api_server_cert_sans: $(jq -c .api_server_cert_sans.value "$work/outputs.json")"
wdir=$(o working_dir)
[ "$wdir" = "$d/.constellation-qemu/tfq" ] || fail "working_dir: $wdir"
[ "$(stat -c %a "$wdir")" = 700 ] || fail "working_dir is not 0700"
[ "$(jq '.nodes.value | length' "$work/outputs.json")" = 2 ] || fail "nodes: $(jq -c .nodes.value "$work/outputs.json")"
node() { jq -r ".nodes.value[] | select(.name == \"$1\") | .$2" "$work/outputs.json"; }
[ "$(node control-plane-0 role)" = control-plane ] && [ "$(node worker-0 role)" = worker ] || fail "node roles"
[ "$(node control-plane-0 host_address)" = "$ep" ] || fail "control-plane-0 host address"
[ "$(node worker-0 host_address)" = "${ep%.*}.100" ] || fail "worker-0 host address: $(node worker-0 host_address)"
[ "$(node worker-0 vpc_ip)" = 10.42.2.100 ] || fail "worker-0 vpc_ip"
cp_q=$(node control-plane-0 qemu_pid) cp_s=$(node control-plane-0 swtpm_pid)
w_q=$(node worker-0 qemu_pid) w_s=$(node worker-0 swtpm_pid)
seen_pids="$seen_pids $cp_q $cp_s $w_q $w_s"
# control-plane-0 was complete and is kept; worker-0 had only its swtpm: that one was stopped (by
# its recorded pid) and the node started whole.
[ "$cp_q" = "$k_cp_q" ] && [ "$cp_s" = "$k_cp_s" ] ||
        fail "the interrupted apply's control plane was not taken over ($k_cp_q $k_cp_s, now $cp_q $cp_s)"
wait_gone "$k_w_s" || fail "the interrupted apply's worker swtpm $k_w_s still runs beside the new $w_s"
mysid=$(ps -o sid= -p $$ | tr -d ' ')
for p in $cp_q $cp_s $w_q $w_s; do
        alive "$p" || fail "pid $p is not running after terraform exited (the provider process has ended)"
        [ "$(ps -o ppid= -p "$p" | tr -d ' ')" != $$ ] || fail "pid $p is a child of the test shell"
        [ "$(ps -o sid= -p "$p" | tr -d ' ')" != "$mysid" ] || fail "pid $p is in the caller's session"
done
[ "$(readlink "/proc/$cp_q/exe")" = "$(command -v qemu-system-x86_64 | xargs realpath)" ] || fail "pid $cp_q is not QEMU"
[ "$(readlink "/proc/$cp_s/exe")" = "$(command -v swtpm | xargs realpath)" ] || fail "pid $cp_s is not swtpm"
[ "$(node worker-0 alive)" = true ] && [ "$(node worker-0 status)" = running ] || fail "worker-0 not reported running"

step "the state holds no init secret"
st=$d/terraform.tfstate
grep -qF -- "$init_secret" "$st" && fail "the init secret is in the state file"
jq -e '.resources[] | select(.type == "constellation_qemu_infrastructure") | .instances[0].attributes.init_secret == null' "$st" >/dev/null ||
        fail "init_secret is not null in state"
jq -r '.resources[] | select(.type == "constellation_qemu_infrastructure") | .instances[0].attributes.infrastructure_state' "$st" |
        jq -e '.init_secret_hash | startswith("$2b$10$")' >/dev/null || fail "the recorded state lacks the init secret's bcrypt hash"
grep -rqF -- "$init_secret" "$wdir" && fail "the init secret is in a file under the working directory"
for n in control-plane-0 worker-0; do
        [ "$(stat -c %a "$wdir/$n")" = 700 ] || fail "$wdir/$n is not 0700"
done

step "plan: no changes"
expect_ok plan -detailed-exitcode
expect_log "No changes."

# ---------------------------------------------------------------------------------------------
step "worker QEMU killed from outside: plan shows its replacement, apply restarts it"
kill -9 "$w_q"
wait_gone "$w_q" || fail "QEMU $w_q did not die"
tf plan -detailed-exitcode
rc=$?
[ "$rc" = 2 ] || { cat "$d/out.log"; fail "plan after the kill exited $rc, expected 2 (changes)"; }
expect_log "Node worker-0 is not running (qemu gone: pid $w_q"
expect_log "~ nodes = ["
expect_log "Plan: 0 to add, 1 to change, 0 to destroy."
expect_ok apply -auto-approve
expect_ok output -json
cp "$d/out.log" "$work/outputs.json"
w_q2=$(node worker-0 qemu_pid) w_s2=$(node worker-0 swtpm_pid)
seen_pids="$seen_pids $w_q2 $w_s2"
[ "$w_q2" != "$w_q" ] && alive "$w_q2" && alive "$w_s2" || fail "worker-0 was not restarted: qemu $w_q2, swtpm $w_s2"
[ "$(node control-plane-0 qemu_pid)" = "$cp_q" ] && alive "$cp_q" || fail "control-plane-0 was restarted too"
[ "$(node worker-0 alive)" = true ] || fail "worker-0 not alive after apply"
expect_ok plan -detailed-exitcode
expect_log "No changes."

# ---------------------------------------------------------------------------------------------
step "worker_count 1 -> 2 -> 1: only worker-1 is added and removed"
main_tf 1 2 >"$d/main.tf"
expect_ok apply -auto-approve
expect_log "Apply complete! Resources: 0 added, 1 changed, 0 destroyed."
expect_ok output -json
cp "$d/out.log" "$work/outputs.json"
[ "$(jq '.nodes.value | length' "$work/outputs.json")" = 3 ] || fail "nodes after scaling up: $(jq -c .nodes.value "$work/outputs.json")"
[ "$(node worker-1 host_address)" = "${ep%.*}.101" ] && [ "$(node worker-1 vpc_ip)" = 10.42.2.101 ] ||
        fail "worker-1: $(node worker-1 host_address) $(node worker-1 vpc_ip)"
w1_q=$(node worker-1 qemu_pid) w1_s=$(node worker-1 swtpm_pid)
seen_pids="$seen_pids $w1_q $w1_s"
alive "$w1_q" && alive "$w1_s" || fail "worker-1 is not running"
[ "$(node worker-0 qemu_pid)" = "$w_q2" ] && [ "$(node control-plane-0 qemu_pid)" = "$cp_q" ] ||
        fail "scaling up restarted a running node"
main_tf 1 1 >"$d/main.tf"
expect_ok apply -auto-approve
expect_ok output -json
cp "$d/out.log" "$work/outputs.json"
[ "$(jq '.nodes.value | length' "$work/outputs.json")" = 2 ] || fail "nodes after scaling down: $(jq -c .nodes.value "$work/outputs.json")"
wait_gone "$w1_q" && wait_gone "$w1_s" || fail "worker-1's processes still run after scaling down"
[ ! -e "$wdir/worker-1" ] || fail "worker-1's files are left: $(ls "$wdir/worker-1")"
alive "$w_q2" && alive "$cp_q" || fail "scaling down stopped another node"
expect_ok plan -detailed-exitcode
expect_log "No changes."

# ---------------------------------------------------------------------------------------------
step "destroy: no process, no file"
expect_ok destroy -auto-approve
expect_log "Destroy complete! Resources: 1 destroyed."
for p in $seen_pids; do
        wait_gone "$p" || fail "pid $p ($(readlink "/proc/$p/exe" 2>/dev/null)) still runs after destroy"
done
[ ! -e "$d/.constellation-qemu" ] || fail "files left after destroy: $(find "$d/.constellation-qemu" | head)"
expect_ok state list
[ -s "$d/out.log" ] && fail "state not empty after destroy: $(cat "$d/out.log")"

if ls "$work"/sanitizer* >/dev/null 2>&1; then
        cat "$work"/sanitizer* >&2
        fail "the provider reported sanitizer errors"
fi
echo "PASS: constellation_qemu_infrastructure lifecycle"
