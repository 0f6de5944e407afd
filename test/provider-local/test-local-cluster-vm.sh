#!/usr/bin/env bash
# test-local-cluster-vm: the local confidential cluster through the real Terraform CLI (1.11.4) and
# this provider alone, in VMs: constellation_qemu_infrastructure boots 1 control plane + 1 worker
# from the node image (QEMU + OVMF + swtpm, TCG here, loopback only) and constellation_cluster
# initialises them (issue 9's proof). The image and its signed measurements come from a local
# release directory (constellation-image publish, cdn_url = file://), as in examples/local.
#
#   1. a release whose signed measurements differ from the image's in PCR 9: apply creates the VMs,
#      and while the cluster's Create waits for the booting control plane the provider is SIGKILLed
#      (terraform fails, "Plugin did not respond"; no cluster in state; the VMs run on); in the next
#      apply's wait terraform itself is SIGKILLed (the orphaned provider exits within seconds; the same
#      QEMU and swtpm processes, by pid and start time, run on); the next apply's Create waits again
#      and the attestation is refused with a diagnostic naming PCR 9; no cluster in state; the control
#      plane is not initialised (its bootstrapper still serves Init, its state disk's token still says
#      not initialised)
#   2. the right release, the same VMs: apply initialises the cluster and waits until both nodes
#      attest with PCR 15 = the cluster ID (the worker joined by itself); outputs present
#      (cluster_id = python3's HKDF chain, owner_id, host, kubeconfig, verification of both nodes)
#   3. `constellation-attest verify` passes for both nodes with the output cluster ID, and fails
#      naming PCR 15 for another ID
#   4. the master secret, its salt, the measurement salt and the init secret (planted values, hex
#      and base64) are in no state file, Terraform output or debug log
#   5. plan: no changes
#   6. worker-0's QEMU SIGKILLed outside Terraform (its pid from the state): `plan -detailed-exitcode`
#      exits 2 with a warning naming worker-0; apply restarts it (disk and vTPM kept) and waits until
#      it verifies: it rejoined by itself (a "rejoin ticket issued" line of the join service on the
#      control plane's console); `constellation-attest verify` of it passes; plan: no changes
#   7. the cluster's measurements with PCR 11 made wrong: apply pushes them to the join service (its
#      log says the version is in force) and warns that both running nodes differ in PCR 11
#      (`verification` records it; plan not empty); worker-0 killed again: apply restarts it and fails
#      at once ("Every control plane differs"); the join service refuses its rejoin naming PCR 11 (on
#      the control plane's console), twice more at its 30 s retries, and it does not verify meanwhile;
#      the right measurements applied: the waiting worker rejoins and the apply waits until it
#      verifies; `constellation-attest verify` passes; plan: no changes
#   8. destroy: no QEMU or swtpm process of the cluster is left (by recorded pid and start time) and
#      no file in the infrastructure's working directory
# Long steps print progress lines with the elapsed seconds and each node's latest boot line.
# Environment: CT_SOURCE_DIR, CT_BINARY_DIR (ctest); CT_NODE_IMAGE (default
# $CT_BINARY_DIR/node-guest-image, made by the fixture test node-image-build); CT_KEEP=1 keeps the
# work directory, with copies of every node's console, report, QEMU and swtpm logs (the VMs are
# destroyed either way); TERRAFORM.
set -uo pipefail
T0=$(date +%s)
say() { printf '[local-cluster-vm %5ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
fail() {
        say "FAIL: $*"
        exit 1
}
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
for t in qemu-system-x86_64 swtpm cryptsetup python3 jq; do
        command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh)"
done
[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || fail "OVMF is not installed (apt-get install ovmf)"
[ "$(id -u)" -eq 0 ] || fail "needs root (cryptsetup reads the control plane's state disk file)"
bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}
provider_dir=$bin/provider
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"
attest=$bin/cli/attest/constellation-attest
image_tool=$bin/image/tool/constellation-image
[ -x "$attest" ] && [ -x "$image_tool" ] || fail "$attest or $image_tool is not built"
img=${CT_NODE_IMAGE:-$bin/node-guest-image}
[ -s "$img/img/qemu/disk.raw" ] && [ -s "$img/measurements.json" ] ||
        fail "no node image in $img (the fixture test node-image-build makes it: ctest -R node-image-build)"
img=$(cd "$img" && pwd)
MEAS=$img/measurements.json

# Short base path: the VMs' unix sockets live below the working directory (108-byte sun_path).
work=$(mktemp -d /tmp/ctlv.XXXXXX)
d=$work/tf
mkdir -p "$d"
qdir=$d/.constellation-qemu
wdir=$qdir/local
tf_pid=""
late_failures=()
cleanup() {
        [ -z "$tf_pid" ] || kill -9 "$tf_pid" 2>/dev/null || true
        # Copies of the nodes' logs (destroy removes them with the node directories).
        local n
        for n in "$wdir"/*/; do
                [ -d "$n" ] || continue
                mkdir -p "$work/node-logs/$(basename "$n")"
                cp -p "$n"/*.log "$work/node-logs/$(basename "$n")/" 2>/dev/null || true
        done
        # Only what this test started: terraform destroy (by recorded pid), then any recorded pid
        # still running whose program is QEMU or swtpm.
        if [ -s "$d/terraform.tfstate" ] && grep -q constellation_qemu_infrastructure "$d/terraform.tfstate"; then
                pids_from_state >"$work/cleanup-pids" 2>/dev/null || true
                (cd "$d" && "$TERRAFORM" destroy -auto-approve -no-color >"$work/cleanup.log" 2>&1) || true
                local p
                for p in $(cat "$work/cleanup-pids" 2>/dev/null); do
                        case $(readlink "/proc/$p/exe" 2>/dev/null) in
                        */qemu-system-x86_64 | */swtpm) kill -9 "$p" 2>/dev/null || true ;;
                        esac
                done
        fi
        if [ "${CT_KEEP:-0}" = 1 ]; then say "kept $work (node logs in $work/node-logs)"; else rm -rf "$work"; fi
}
trap cleanup EXIT

. "$(dirname "$0")/tf-lib.sh"
hexrand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
# hkdf IKM_HEX SALT_HEX INFO: HKDF-SHA256, 32 bytes, hex (python3's hmac, not our lib/crypto)
hkdf() {
        python3 -c 'import hmac,hashlib,sys
ikm=bytes.fromhex(sys.argv[1]); salt=bytes.fromhex(sys.argv[2])
prk=hmac.new(salt,ikm,hashlib.sha256).digest()
print(hmac.new(prk,sys.argv[3].encode()+b"\x01",hashlib.sha256).hexdigest())' "$1" "$2" "$3"
}
connectable() { python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)' "$1" "$2" 2>/dev/null; }
infra_state() { jq -r '.resources[] | select(.type == "constellation_qemu_infrastructure") | .instances[0].attributes.infrastructure_state' "$d/terraform.tfstate"; }
# "PID START-TIME" of every recorded QEMU and swtpm
pids_from_state() { infra_state | jq -r '.nodes[] | (.qemu, .swtpm) | select(.pid > 0) | "\(.pid)"'; }
proc_start() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
# node_line NODE: the node's latest report-channel line, else its console's last line
node_line() {
        local l
        l=$(grep -a '^CT-' "$wdir/$1/report.log" 2>/dev/null | tail -n 1)
        [ -n "$l" ] || l=$(tr -d '\r' <"$wdir/$1/console.log" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -a -v '^[[:space:]]*$' | tail -n 1)
        printf '%s' "${l:-(no output yet)}" | cut -c1-110
}
console_tail() { tr -d '\r' <"$wdir/$1/console.log" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tail -n "${2:-25}"; }
# tf_long NAME ARGS...: terraform in the background (debug log $work/trace-NAME.log), a progress line
# every 60 s; returns terraform's exit code, output in $d/out.log
tf_long() {
        local name=$1 t=$SECONDS next n rc=0
        shift
        (cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace-$name.log" exec "$TERRAFORM" "$@" -no-color) >"$d/out.log" 2>&1 &
        tf_pid=$!
        next=$((SECONDS + 60))
        while kill -0 "$tf_pid" 2>/dev/null; do
                if [ $SECONDS -ge $next ]; then
                        local line="terraform $name: $((SECONDS - t)) s"
                        for n in control-plane-0 worker-0; do
                                [ -d "$wdir/$n" ] && line+=" | $n: $(node_line "$n")"
                        done
                        say "$line"
                        next=$((SECONDS + 60))
                fi
                sleep 2
        done
        wait "$tf_pid" || rc=$?
        tf_pid=""
        say "terraform $name: exit $rc after $((SECONDS - t)) s"
        return $rc
}

# tf_interrupt NAME provider|terraform: apply in the background (debug log $work/trace-NAME.log); once
# the cluster's Create waits for the booting control plane (Terraform's progress line for it, and the
# provider's "unreachable …, retrying" in the debug log), SIGKILL the provider process (the child of
# terraform running the provider binary) or terraform itself. Sets prov_pid; with "provider", returns
# terraform's exit code (output in $d/out.log).
tf_interrupt() {
        local name=$1 what=$2 t=$SECONDS c rc=0
        prov_pid=""
        : >"$d/out.log" # not by the job's redirection: the wait below must not read the last apply's
        (cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace-$name.log" exec "$TERRAFORM" apply -auto-approve -no-color) >"$d/out.log" 2>&1 &
        tf_pid=$!
        until grep -q 'constellation_cluster.local: Still creating' "$d/out.log" &&
                grep -q 'constellation_cluster: .* unreachable (.*retrying' "$work/trace-$name.log" 2>/dev/null; do
                kill -0 "$tf_pid" 2>/dev/null || { cat "$d/out.log"; fail "terraform $name ended before the cluster's Create waited for the control plane"; }
                [ $((SECONDS - t)) -lt 900 ] || { cat "$d/out.log"; fail "terraform $name: the cluster's Create did not start waiting within 900 s"; }
                sleep 1
        done
        for c in $(pgrep -P "$tf_pid"); do
                case $(readlink "/proc/$c/exe" 2>/dev/null) in */terraform-provider-constellation) prov_pid=$c ;; esac
        done
        [ -n "$prov_pid" ] || fail "terraform $name: no provider process among terraform's ($tf_pid) children"
        if [ "$what" = provider ]; then
                say "terraform $name: the cluster's Create waits for the control plane ($((SECONDS - t)) s): SIGKILL to the provider (pid $prov_pid)"
                kill -9 "$prov_pid"
                wait "$tf_pid" || rc=$?
                tf_pid=""
                say "terraform $name: exit $rc after $((SECONDS - t)) s"
                return $rc
        fi
        say "terraform $name: the cluster's Create waits for the control plane ($((SECONDS - t)) s): SIGKILL to terraform (pid $tf_pid)"
        kill -9 "$tf_pid"
        wait "$tf_pid" 2>/dev/null
        tf_pid=""
        return 0
}
# alive_pids: "PID:START" of every recorded QEMU and swtpm that runs as recorded
alive_pids() {
        local p
        for p in $(pids_from_state); do
                case $(readlink "/proc/$p/exe" 2>/dev/null) in */qemu-system-x86_64 | */swtpm) echo "$p:$(proc_start "$p")" ;; esac
        done | sort
}
node_field() { infra_state | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | '"$2"; }
# cp_console_count PATTERN: lines of the control plane's serial console matching the extended regex
# (the test image puts the join service's output on the console: test/node-guest/image)
cp_console_count() { tr -d '\r' <"$wdir/control-plane-0/console.log" 2>/dev/null | grep -a -c -E -- "$1"; }
# kill_worker: SIGKILL to worker-0's QEMU (by the pid in state, checked to be QEMU), until it is gone
kill_worker() {
        local p t=$SECONDS
        p=$(node_field worker-0 .qemu.pid)
        case $(readlink "/proc/$p/exe" 2>/dev/null) in */qemu-system-x86_64) ;; *) fail "worker-0's recorded QEMU pid $p is not QEMU" ;; esac
        kill -9 "$p"
        while [ -e "/proc/$p" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$p/stat" 2>/dev/null)" != Z ]; do
                [ $((SECONDS - t)) -lt 30 ] || fail "worker-0's QEMU ($p) still runs 30 s after SIGKILL"
                sleep 0.2
        done
        say "worker-0's QEMU (pid $p) killed outside Terraform"
}
# wait_joined N: worker-0's join (or rejoin) is complete, durable on its state disk: its N-th
# "CT-MARKER written|present" report line (the test image's marker unit follows node_state.json, which
# the bootstrapper writes after re-keying the disk and marking it initialised). The verification
# passes earlier, as soon as PCR 15 holds the cluster ID, which the join extends *before* it re-keys the
# disk (Constellation's order): a worker killed in between comes back as a blank node and joins anew
# instead of rejoining (run 2 at load 20 killed it 2.5 min after its PCR 15, before the re-key).
wait_joined() {
        local t=$SECONDS
        until [ "$(grep -a -c -E '^CT-MARKER (written|present) ' "$wdir/worker-0/report.log" 2>/dev/null)" -ge "$1" ]; do
                [ $((SECONDS - t)) -lt 1200 ] || fail "worker-0 did not finish its join within 1200 s (marker line $1): $(node_line worker-0)"
                sleep 3
        done
        say "worker-0's join is complete on its state disk (marker line $1, after $((SECONDS - t)) s more)"
}
# verify_worker MEASUREMENTS-FILE: constellation-attest verify of worker-0 with the cluster ID
verify_worker() {
        "$attest" verify --endpoint "$w_addr:30081" --cluster-id "$cid" --measurements "$1" --timeout 60 >"$work/verify.out" 2>&1
}

# ---------------------------------------------------------------------------------------------
say "local releases: the node image $img/img/qemu/disk.raw and its signed measurements (right, and PCR 9 changed)"
ver=v2.25.0
keys=$work/keys
mkdir -p "$keys"
chmod 700 "$keys"
(umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$keys/cosign.key" 2>/dev/null) || fail "openssl ecparam"
openssl ec -in "$keys/cosign.key" -pubout -out "$keys/cosign.pub" 2>/dev/null || fail "openssl ec -pubout"
"$image_tool" publish --image "$img/img/qemu/disk.raw" --version "$ver" --csp qemu --variant qemu-vtpm \
        --key "$keys/cosign.key" --out "$work/rel-good" --reference disk.raw >"$work/publish.log" 2>&1 ||
        fail "constellation-image publish: $(cat "$work/publish.log")"
rdir() { echo "$1/constellation/v2/ref/-/stream/stable/$ver/image"; }
ln -s "$img/img/qemu/disk.raw" "$(rdir "$work/rel-good")/disk.raw"
# The release measures the image as the fixture did.
python3 - "$(rdir "$work/rel-good")/measurements.json" "$MEAS" <<'PY' || fail "the published measurements differ from $MEAS"
import json, sys
rel = json.load(open(sys.argv[1]))["list"][0]["measurements"]
img = json.load(open(sys.argv[2]))["measurements"]
assert rel == img, (rel, img)
PY
mkdir -p "$(rdir "$work/rel-bad")"
cp "$(rdir "$work/rel-good")/info.json" "$(rdir "$work/rel-bad")/"
ln -s "$img/img/qemu/disk.raw" "$(rdir "$work/rel-bad")/disk.raw"
jq '.list[0].measurements["9"].expected |= ((if startswith("0") then "1" else "0" end) + .[1:])' \
        "$(rdir "$work/rel-good")/measurements.json" >"$(rdir "$work/rel-bad")/measurements.json" || fail "jq"
"$image_tool" sign --key "$keys/cosign.key" -o "$(rdir "$work/rel-bad")/measurements.json.sig" \
        "$(rdir "$work/rel-bad")/measurements.json" >/dev/null 2>&1 || fail "constellation-image sign"

master=$(hexrand 32) salt=$(hexrand 32) msalt=$(hexrand 32)
init_secret="planted-init-$(hexrand 12)"
export TF_VAR_master_secret=$master TF_VAR_master_secret_salt=$salt TF_VAR_measurement_salt=$msalt TF_VAR_init_secret=$init_secret

main_tf() { # RELEASE-DIR
        cat <<TF
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}
provider "constellation" {
  cdn_url           = "file://$1"
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
# Step 7: one enforced PCR of the cluster's measurements made wrong ("" = the release's).
variable "wrong_pcr" {
  type    = string
  default = ""
}
locals {
  att = data.constellation_attestation.qemu.attestation
  measurements = { for k, v in local.att.measurements : k => {
    expected  = k == var.wrong_pcr ? "\${substr(v.expected, 0, 1) == "0" ? "1" : "0"}\${substr(v.expected, 1, -1)}" : v.expected
    warn_only = v.warn_only
  } }
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
  name                = "local"
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
  name                               = "local"
  uid                                = constellation_qemu_infrastructure.local.uid
  image                              = data.constellation_image.qemu.image
  attestation                        = merge(local.att, { measurements = local.measurements })
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
output "cluster_id" { value = constellation_cluster.local.cluster_id }
output "owner_id" { value = constellation_cluster.local.owner_id }
output "host" { value = constellation_cluster.local.host }
output "kubeconfig" {
  value     = constellation_cluster.local.kubeconfig
  sensitive = true
}
output "verification" { value = constellation_cluster.local.verification }
output "nodes" { value = constellation_qemu_infrastructure.local.nodes }
output "uid" { value = constellation_qemu_infrastructure.local.uid }
output "out_of_cluster_endpoint" { value = constellation_qemu_infrastructure.local.out_of_cluster_endpoint }
TF
}
no_secret_in() { # FILE...: none of the planted secrets, in hex or base64url, in any of them
        local f s b64
        for f in "$@"; do
                [ -e "$f" ] || continue
                for s in "$master" "$salt" "$msalt" "$init_secret"; do
                        grep -qaiF -- "$s" "$f" && fail "a write-only secret (${s:0:6}…) is in $f"
                done
                for s in "$master" "$salt" "$msalt"; do
                        b64=$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.argv[1])).decode().rstrip("="))' "$s")
                        grep -qaF -- "$b64" "$f" && fail "a secret's base64 is in $f"
                done
        done
        return 0
}

# ---------------------------------------------------------------------------------------------
say "1. apply with measurements that differ in PCR 9: the VMs boot, the control plane's attestation is refused"
main_tf "$work/rel-bad" >"$d/main.tf"
# The provider SIGKILLed while the cluster's Create waits minutes for the booting control plane:
# terraform fails, the VMs (in state already) run on.
rc=0
tf_interrupt apply-killed provider || rc=$?
[ "$rc" != 0 ] || fail "terraform apply succeeded although its provider was killed"
expect_log "Error: Plugin did not respond"
grep -q '"constellation_cluster"' "$d/terraform.tfstate" && fail "the cluster is in state after its provider was killed"
grep -q '"constellation_qemu_infrastructure"' "$d/terraform.tfstate" || fail "the infrastructure is not in state after the provider was killed"
alive_pids >"$work/pids-before"
[ "$(wc -l <"$work/pids-before")" = 4 ] || fail "not all 4 QEMU/swtpm processes run after the provider was killed: $(cat "$work/pids-before")"
# Terraform SIGKILLed in the same wait: its provider notices (re-parented) and exits within seconds
# instead of running its Create on (plugin.c); the VMs run on.
tf_interrupt apply-orphaned terraform
t=$SECONDS
while [ -e "/proc/$prov_pid" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$prov_pid/stat" 2>/dev/null)" != Z ]; do
        [ $((SECONDS - t)) -lt 30 ] || fail "the orphaned provider (pid $prov_pid) still runs 30 s after terraform was killed"
        sleep 0.2
done
say "the orphaned provider (pid $prov_pid) exited $((SECONDS - t)) s after terraform was killed"
alive_pids >"$work/pids-after"
cmp -s "$work/pids-before" "$work/pids-after" || fail "the VMs' processes changed across the kills: $(cat "$work/pids-before") / $(cat "$work/pids-after")"
# The next apply converges: the same VMs, the Create waits again (refused below, as without the kills).
# Create gives a booting control plane 20 minutes to serve Init; a TCG boot on a loaded machine can
# take longer, and then the next apply (the VMs keep running) waits again: one more attempt.
for attempt in 1 2; do
        tf_long apply-bad apply -auto-approve && { cat "$d/out.log"; fail "apply with PCR 9 changed succeeded"; }
        flat_log | grep -q "Cannot reach the first control plane" || break
        [ "$attempt" = 1 ] || { cat "$d/out.log"; fail "the control plane did not serve Init in time; console: $(console_tail control-plane-0)"; }
        say "control-plane-0 does not serve Init yet (still booting: $(node_line control-plane-0)); applying again"
done
expect_log "Error: Attestation refused: PCR mismatch"
expect_log "PCR 9 differs"
expect_log "Nothing was sent to the node; it is not initialised."
grep -q '"constellation_cluster"' "$d/terraform.tfstate" && fail "a refused create left the cluster in state"
grep -q '"constellation_qemu_infrastructure"' "$d/terraform.tfstate" || fail "the infrastructure is not in state after apply"
cp_addr=$(infra_state | jq -r '.nodes[] | select(.name == "control-plane-0") | .host_address')
w_addr=$(infra_state | jq -r '.nodes[] | select(.name == "worker-0") | .host_address')
case $cp_addr$w_addr in 127.*127.*) ;; *) fail "node addresses are not loopback: '$cp_addr' '$w_addr'" ;; esac
connectable "$cp_addr" 9000 || fail "the control plane no longer serves Init after the refused attestation"
cryptsetup token export --token-id 0 "$wdir/control-plane-0/state.raw" >"$work/cp-token" 2>&1 ||
        fail "control plane's state disk: token export: $(cat "$work/cp-token")"
grep -q '"diskIsInitialized":false' "$work/cp-token" || fail "control plane's state disk is initialised after a refused attestation: $(cat "$work/cp-token")"
no_secret_in "$d/terraform.tfstate" "$d/out.log" "$work/trace-apply-bad.log" "$wdir.state.json"
say "refused (PCR 9 named); control-plane-0 ($cp_addr) still serves Init, its disk not initialised; worker-0 on $w_addr"

# ---------------------------------------------------------------------------------------------
say "2. apply with the image's measurements: Init, the worker joins, both nodes verify"
main_tf "$work/rel-good" >"$d/main.tf"
tf_long apply apply -auto-approve || {
        cat "$d/out.log"
        say "control-plane-0 console:"
        console_tail control-plane-0 40 >&2
        say "worker-0 console:"
        console_tail worker-0 40 >&2
        fail "apply failed"
}
expect_log "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
# Checked at the end, so that one run (half an hour) shows every other result too.
if grep -q "Warning: Measurements not pushed\|Cannot reach the join service" "$d/out.log"; then
        late_failures+=("Create did not push the measurements to the join service: $(flat_log | grep -o 'Cannot reach the join service.\{0,300\}\|Measurements not pushed.\{0,300\}' | head -n 1)")
        say "LATER FAIL: ${late_failures[-1]}"
fi
for o in cluster_id host uid out_of_cluster_endpoint; do
        expect_ok output -raw "$o"
        [ -s "$d/out.log" ] || fail "output $o is empty"
done
# owner_id is in state but empty: Constellation's init server leaves it empty (docs/resources/cluster.md)
expect_ok output -raw owner_id
expect_ok output -raw cluster_id
cid=$(cat "$d/out.log")
want=$(hkdf "$(hkdf "$master" "$salt" key-measurementSecret)" "$msalt" key-clusterID)
[ "$cid" = "$want" ] || fail "cluster_id $cid, python3's HKDF gives $want"
expect_ok output -raw host
[ "$(cat "$d/out.log")" = "https://$cp_addr:6443" ] || fail "host: $(cat "$d/out.log")"
expect_ok output -raw kubeconfig
grep -q "server: https://$cp_addr:6443" "$d/out.log" || fail "the kubeconfig's server is not https://$cp_addr:6443"
expect_ok output -json verification
jq -e 'length == 2 and all(.[]; .verified == true)' "$d/out.log" >/dev/null || fail "verification: $(cat "$d/out.log")"
say "cluster $cid initialised, both nodes verified by the provider"

# ---------------------------------------------------------------------------------------------
say "3. constellation-attest verify of both nodes with the output cluster ID"
for a in "$cp_addr" "$w_addr"; do
        "$attest" verify --endpoint "$a:30081" --cluster-id "$cid" --measurements "$MEAS" --timeout 300 \
                >"$work/verify.out" 2>&1 || fail "constellation-attest verify of $a: $(cat "$work/verify.out")"
done
rc=0
"$attest" verify --endpoint "$w_addr:30081" --cluster-id "$(hexrand 32)" --measurements "$MEAS" --timeout 300 \
        >"$work/verify-other.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q 'PCR 15' "$work/verify-other.out" ||
        fail "verify of the worker with another cluster ID: exit $rc, expected 1 naming PCR 15: $(cat "$work/verify-other.out")"
say "both nodes attest PCR 15 of cluster $cid (and not of another)"

# ---------------------------------------------------------------------------------------------
say "4. no secret in state, outputs or debug logs"
st=$d/terraform.tfstate
no_secret_in "$st" "$d/out.log" "$work"/trace-*.log "$wdir.state.json"
jq -e '.resources[] | select(.type == "constellation_cluster") | .instances[0].attributes |
        .master_secret == null and .init_secret == null and .master_secret_salt == null and .measurement_salt == null' \
        "$st" >/dev/null || fail "write-only attributes are not null in state"
jq -e '.resources[] | select(.type == "constellation_qemu_infrastructure") | .instances[0].attributes.init_secret == null' \
        "$st" >/dev/null || fail "the infrastructure's init_secret is not null in state"

# ---------------------------------------------------------------------------------------------
say "5. plan: no changes"
tf_long plan plan -detailed-exitcode || { cat "$d/out.log"; fail "plan after apply is not empty"; }
expect_log "No changes."

# ---------------------------------------------------------------------------------------------
say "6. worker-0 killed outside Terraform: plan shows it, apply restarts it, it rejoins by itself"
wait_joined 1
rejoins=$(cp_console_count 'rejoin ticket issued for disk')
kill_worker
rc=0
tf plan -detailed-exitcode || rc=$?
[ "$rc" = 2 ] || { cat "$d/out.log"; fail "plan with worker-0 killed: exit $rc, expected 2 (changes)"; }
expect_log "Warning: VM not running"
expect_log "Node worker-0 is not running"
tf_long apply-restart apply -auto-approve || { cat "$d/out.log"; say "worker-0 console:"; console_tail worker-0 40 >&2; fail "apply after worker-0 was killed failed"; }
expect_log "Apply complete!"
expect_ok output -json verification
jq -e 'length == 2 and all(.[]; .verified == true)' "$d/out.log" >/dev/null || fail "verification after the restart: $(cat "$d/out.log")"
verify_worker "$MEAS" || fail "constellation-attest verify of the restarted worker-0: $(cat "$work/verify.out")"
[ "$(cp_console_count 'rejoin ticket issued for disk')" -gt "$rejoins" ] ||
        fail "the control plane's join service logged no rejoin ticket for the restarted worker: $(console_tail control-plane-0)"
tf plan -detailed-exitcode || { cat "$d/out.log"; fail "plan after the restart is not empty"; }
expect_log "No changes."
say "worker-0 restarted by apply, rejoined (a rejoin ticket in the control plane's log) and verifies; plan empty"

# ---------------------------------------------------------------------------------------------
say "7. the cluster's measurements with PCR 11 wrong: pushed to the join service, which then refuses a rejoin; right again: accepted"
updates=$(cp_console_count 'attestation config version [0-9]+ accepted and in force')
tf_long apply-wrong apply -auto-approve -var wrong_pcr=11 || { cat "$d/out.log"; fail "apply of measurements with PCR 11 wrong failed"; }
# Pushed, then the running nodes checked against it: both differ in PCR 11, a warning (not a silent
# pass, not an error: new measurements before the nodes' image is how an upgrade starts).
expect_log "Warning: Nodes do not match attestation.measurements"
expect_log "PCR 11 differs"
[ "$(cp_console_count 'attestation config version [0-9]+ accepted and in force')" -gt "$updates" ] ||
        fail "the control plane's join service did not log the pushed attestation config: $(console_tail control-plane-0)"
expect_ok output -json verification
jq -e 'length == 2 and all(.[]; .verified == false and (.reason | test("PCR 11 differs")))' "$d/out.log" >/dev/null ||
        fail "verification with PCR 11 wrong: $(cat "$d/out.log")"
rc=0
tf plan -detailed-exitcode -var wrong_pcr=11 || rc=$?
[ "$rc" = 2 ] || { cat "$d/out.log"; fail "plan with unverified nodes: exit $rc, expected 2 (verification checked again)"; }
# The join service's aTLS refusal (lib/service: "aTLS connection from … refused: REASON: DETAIL", the
# detail naming the PCR as the validator does)
refused11='refused: .*(at index 11[^0-9]|PCR 11[^0-9])'
refusals=$(cp_console_count "$refused11")
wait_joined 2
kill_worker
tf_long apply-wrong-restart apply -auto-approve -var wrong_pcr=11 && { cat "$d/out.log"; fail "apply restarting worker-0 under wrong measurements succeeded"; }
expect_log "Error: Nodes do not match attestation.measurements"
expect_log "PCR 11 differs"
expect_log "Every control plane differs, so the other nodes were not waited for"
[ "$(node_field worker-0 .qemu.pid)" -gt 0 ] && [ -e "/proc/$(node_field worker-0 .qemu.pid)" ] || fail "apply did not restart worker-0"
# The restarted worker asks the join service for its disk key every 30 s: refused, naming PCR 11.
t=$SECONDS
until [ "$(cp_console_count "$refused11")" -gt "$refusals" ]; do
        [ $((SECONDS - t)) -lt 1200 ] || fail "no refusal naming PCR 11 in the control plane's join service log within 1200 s; worker-0: $(node_line worker-0); control-plane-0: $(console_tail control-plane-0 5)"
        sleep 5
done
say "the join service refused worker-0's rejoin naming PCR 11 ($((SECONDS - t)) s after apply): $(tr -d '\r' <"$wdir/control-plane-0/console.log" | grep -a -E "$refused11" | tail -n 1 | cut -c1-160)"
# Bounded: two more of its 30 s retries refused, and it does not verify meanwhile.
n=$(cp_console_count "$refused11")
t=$SECONDS
until [ "$(cp_console_count "$refused11")" -ge $((n + 2)) ]; do
        verify_worker "$MEAS" && fail "worker-0 verifies although the join service refuses it: $(cat "$work/verify.out")"
        [ $((SECONDS - t)) -lt 300 ] || fail "worker-0 did not retry its rejoin twice within 300 s"
        sleep 5
done
verify_worker "$MEAS" && fail "worker-0 verifies although the join service refuses it: $(cat "$work/verify.out")"
say "worker-0 refused $(( $(cp_console_count "$refused11") - refusals )) times, not verified after $((SECONDS - t)) s more"
rejoins=$(cp_console_count 'rejoin ticket issued for disk')
tf_long apply-right apply -auto-approve || { cat "$d/out.log"; say "worker-0 console:"; console_tail worker-0 40 >&2; fail "apply of the right measurements failed"; }
expect_log "Apply complete!"
grep -q "do not match\|did not verify" "$d/out.log" && { cat "$d/out.log"; fail "apply of the right measurements left nodes unverified"; }
expect_ok output -json verification
jq -e 'length == 2 and all(.[]; .verified == true)' "$d/out.log" >/dev/null || fail "verification after the right measurements: $(cat "$d/out.log")"
[ "$(cp_console_count 'rejoin ticket issued for disk')" -gt "$rejoins" ] || fail "no rejoin ticket for worker-0 after the right measurements"
verify_worker "$MEAS" || fail "constellation-attest verify of worker-0 after the right measurements: $(cat "$work/verify.out")"
tf plan -detailed-exitcode || { cat "$d/out.log"; fail "plan after the right measurements is not empty"; }
expect_log "No changes."
say "the right measurements pushed: the waiting worker-0 rejoined and verifies; plan empty"
no_secret_in "$d/terraform.tfstate" "$work"/trace-*.log "$wdir.state.json"

# ---------------------------------------------------------------------------------------------
say "8. destroy: no process, no file left"
pids_from_state >"$work/pids" || fail "no pids in state"
declare -A start
for p in $(cat "$work/pids"); do start[$p]=$(proc_start "$p"); done
tf_long destroy destroy -auto-approve || { cat "$d/out.log"; fail "destroy failed"; }
expect_log "Destroy complete! Resources: 2 destroyed."
for p in $(cat "$work/pids"); do
        s=$(proc_start "$p")
        if [ -n "$s" ] && [ "$s" = "${start[$p]}" ]; then
                st_=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$p/stat" 2>/dev/null)
                [ "$st_" = Z ] || fail "process $p ($(readlink "/proc/$p/exe" 2>/dev/null)) still runs after destroy"
        fi
done
if [ -e "$qdir" ]; then
        left=$(find "$qdir" -mindepth 1 | head -n 20)
        [ -z "$left" ] || fail "files left after destroy: $left"
fi
no_secret_in "$d/terraform.tfstate" "$work"/trace-*.log
[ ${#late_failures[@]} = 0 ] || fail "${late_failures[*]}"
say "PASS (total $(($(date +%s) - T0)) s)"
