#!/usr/bin/env bash
# test-provider-cluster-resume: what constellation_cluster's Create does on a control plane that an
# earlier, unrecorded apply initialised, through the real Terraform CLI against the real node
# services on the host (loopback only, no VM): the control plane's bootstrapper on :9000, its
# verification service on :30081 and its join service (started from what Init wrote), each on a 127.x
# address of its own, with a swtpm and a LUKS2 state disk file.
#
# An apply killed during the Init call (Terraform or the provider SIGKILLed; the VM test kills the
# provider only while Create waits, before Init, where the next apply simply creates) leaves a node
# that did its Init, extended PCR 15 with the cluster ID and stopped serving Init, and no cluster in
# state. Init is not resumable and the kubeconfig was only in the lost response. The same state is
# made here without a race: a successful apply, then `terraform state rm` of the cluster.
#   1. apply: Init, the control plane verifies; the cluster ID is python3's HKDF chain
#   1b. measurements with PCR 3 wrong: apply pushes them to the join service and warns "Nodes do not
#      match attestation.measurements" naming PCR 3 (verification records it, the plan is not empty);
#      the right ones again: verified, plan empty
#   2. the cluster removed from state: the next apply fails within 60 s (not after the 20 minutes
#      Create waits for a node that does not serve Init) with "Control plane already initialised",
#      naming the cluster ID the configured secrets derive; no cluster in state
#   3. other secrets (another master secret): "Control plane bound to another cluster"
#   4. a provider whose Create waits (a control plane that never serves Init) exits within 10 s of
#      SIGTERM (terraform fails: "Plugin did not respond") and of terraform's SIGKILL (orphaned)
#   5. no secret in the state, the outputs or Terraform's debug logs
set -uo pipefail

fail() { echo "test-provider-cluster-resume: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
for t in swtpm tpm2_pcrread cryptsetup python3 jq; do
        command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh)"
done
bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}
provider_dir=$bin/provider
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"
bs=$bin/node/bootstrapper/constellation-bootstrapper
js=$bin/node/joinservice/constellation-joinservice
vs=$bin/node/verification-service/constellation-verification-service
for b in "$bs" "$js" "$vs"; do
        [ -x "$b" ] || fail "$b not built"
done

work=$(mktemp -d /tmp/ctpr.XXXXXX)
d=$work/tf
mkdir -p "$d"
pids=() # everything this test started, killed by pid only
cleanup() {
        local p
        for p in "${pids[@]}"; do
                kill -9 "$p" 2>/dev/null || true
        done
        for p in "${pids[@]}"; do
                wait "$p" 2>/dev/null || true
        done
        rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/tf-lib.sh"

# ---------------------------------------------------------------------------------------------
step "control-plane-0: swtpm, state disk, metadata, 127.x address, verification service, bootstrapper"
n=control-plane-0
start_swtpm "$work/$n"
pids+=("$swtpm_pid")
cp=""
for _ in $(seq 50); do
        a="127.$((RANDOM % 254 + 1)).$((RANDOM % 256)).$((RANDOM % 250 + 2))"
        python3 -c 'import socket,sys
for p in (9000, 30080, 30081, 30090, 30091, 6443):
    s = socket.socket(); s.bind((sys.argv[1], p))' "$a" 2>/dev/null && { cp=$a; break; }
done
[ -n "$cp" ] || fail "no 127.x address with free ports"
disk=$work/$n.img key=$work/$n.key
head -c 32 /dev/urandom >"$key"
chmod 0400 "$key"
truncate -s 32M "$disk"
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$key" \
        "$disk" >/dev/null 2>&1 || fail "cryptsetup luksFormat failed"
echo '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":false}' |
        cryptsetup token import --token-id 0 "$disk" || fail "cryptsetup token import failed"
master=$(hexrand 32) salt=$(hexrand 32) msalt=$(hexrand 32)
init_secret="planted-init-$(hexrand 12)"
python3 -W ignore - "$init_secret" "$work/$n-metadata.json" "$cp" <<'PY' || fail "cannot make the metadata (python3 crypt, bcrypt)"
import crypt, json, sys, warnings
warnings.simplefilter("ignore")
h = crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
cp = sys.argv[3]
json.dump({"name": "control-plane-0", "role": "control-plane", "vpc_ip": cp, "init_secret_hash": h,
           "join_endpoints": [cp + ":30090"], "endpoint": cp}, open(sys.argv[2], "w"))
PY
tpm2_pcrread -T "$tcti" sha256:0,1,2,3,4,5,6,7 | grep -o '0x[0-9A-Fa-f]*' >"$work/$n.pcrs" || fail "tpm2_pcrread"
"$vs" --listen "$cp:30081" --http "$cp:30080" --tpm "$tcti" --event-log "$work/no-event-log" >"$work/$n-verification.log" 2>&1 &
pids+=($!)
wait_listen "$cp" 30081 $! "$work/$n-verification.log" "the verification service"
r=$work/$n
mkdir -p "$r/run-state" "$r/etc-kubernetes"
"$bs" --listen "$cp:9000" --tpm "$tcti" --metadata "$work/$n-metadata.json" --state-disk "$disk" --state-keyfile "$key" \
        --node-state "$r/run-state/constellation/node_state.json" --pki-dir "$r/etc-kubernetes/pki" \
        --kubernetes-dir "$r/etc-kubernetes" --component-roots "$r/run-state" --config-dir "$r/var-config" \
        --start-units "" --kubeadm "$r/run-state/bin/kubeadm" >"$work/$n-bootstrapper.log" 2>&1 &
bs_pid=$!
pids+=("$bs_pid")
wait_listen "$cp" 9000 "$bs_pid" "$work/$n-bootstrapper.log" "the bootstrapper"
# The join service starts once Init wrote its files (as the node starts it when Init is answered):
# Create pushes the measurements to it.
kms_uri=$(python3 -c 'import base64,sys; print("kms://cluster-kms?key=%s&salt=%s" % tuple(base64.urlsafe_b64encode(bytes.fromhex(x)).decode() for x in sys.argv[1:]))' "$master" "$salt")
(
        deadline=$((SECONDS + 300))
        until [ -s "$r/var-config/attestationConfig" ] && [ -s "$r/var-config/measurementSalt" ] &&
                [ -s "$r/etc-kubernetes/pki/ca.key" ]; do
                [ $SECONDS -lt $deadline ] || exit 1
                sleep 0.1
        done
        exec "$js" --listen "$cp:30090" --update-listen "$cp:30091" --kms-uri "$kms_uri" --config-dir "$r/var-config" \
                --pki-dir "$r/etc-kubernetes/pki" --api-endpoint "$cp:6443" >"$work/joinservice.log" 2>&1
) &
pids+=($!)

python3 - "$work/$n.pcrs" "$work/measurements.tf" <<'PY' || fail "cannot write the measurements"
import sys
v = [l.strip()[2:].lower() for l in open(sys.argv[1]) if l.strip()]
assert len(v) == 8, v
open(sys.argv[2], "w").write("{\n" + "".join('      "%d" = { expected = "%s", warn_only = false }\n' % (i, x) for i, x in enumerate(v)) + "    }")
PY
export TF_VAR_master_secret=$master TF_VAR_master_secret_salt=$salt TF_VAR_measurement_salt=$msalt TF_VAR_init_secret=$init_secret
cat >"$d/main.tf" <<TF
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
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
variable "init_secret" {
  type      = string
  sensitive = true
}
resource "constellation_cluster" "c" {
  csp                                = "qemu"
  name                               = "tfresume"
  uid                                = "a1b2c3d4"
  image                              = { version = "v2.25.0", reference = "disk.raw", short_path = "v2.25.0" }
  kubernetes_version                 = "v1.31.13"
  constellation_microservice_version = "v2.25.0"
  out_of_cluster_endpoint            = "$cp"
  in_cluster_endpoint                = "10.42.1.100"
  api_server_cert_sans               = ["$cp", "10.42.1.100"]
  network_config = {
    ip_cidr_node    = "10.42.0.0/22"
    ip_cidr_service = "10.96.0.0/12"
  }
  master_secret      = var.master_secret
  master_secret_salt = var.master_secret_salt
  measurement_salt   = var.measurement_salt
  init_secret        = var.init_secret
  nodes              = [{ name = "control-plane-0", role = "control-plane", verification_endpoint = "$cp:30081" }]
  join_timeout       = "90s"
  attestation = {
    variant            = "qemu-vtpm"
    bootloader_version = 0
    tee_version        = 0
    snp_version        = 0
    microcode_version  = 0
    amd_root_key       = "\"\""
    measurements = $(cat "$work/measurements.tf")
  }
}
output "cluster_id" { value = constellation_cluster.c.cluster_id }
TF
st=$d/terraform.tfstate
no_secret_in() { # FILE...
        local f s
        for f in "$@"; do
                [ -e "$f" ] || continue
                for s in "$master" "$salt" "$msalt" "$init_secret"; do
                        grep -qaiF -- "$s" "$f" && fail "a write-only secret (${s:0:6}…) is in $f"
                done
        done
        return 0
}
# apply_traced NAME: apply with Terraform's debug log in $work/trace-NAME.log; its exit code
apply_traced() { (cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace-$1.log" exec "$TERRAFORM" apply -auto-approve -no-color) >"$d/out.log" 2>&1; }

# ---------------------------------------------------------------------------------------------
step "1. apply: Init, the control plane verifies"
apply_traced init || { cat "$d/out.log"; fail "apply failed"; }
expect_log "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
cid=$(jq -r '.resources[0].instances[0].attributes.cluster_id' "$st")
want=$(hkdf "$(hkdf "$master" "$salt" key-measurementSecret)" "$msalt" key-clusterID)
[ "$cid" = "$want" ] || fail "cluster_id in state $cid, python3's HKDF gives $want"
# The bootstrapper stops serving Init once it has answered it (docs/node.md).
t=$SECONDS
while connectable "$cp" 9000; do
        [ $((SECONDS - t)) -lt 30 ] || fail "the bootstrapper still serves Init 30 s after it"
        sleep 0.2
done

# ---------------------------------------------------------------------------------------------
step "1b. measurements that differ from the running node's (PCR 3): pushed, a warning naming PCR 3; right again: verified"
cp "$d/main.tf" "$work/main-right.tf"
python3 - "$d/main.tf" <<'PY2' || fail "cannot change PCR 3 in main.tf"
import re, sys
s = open(sys.argv[1]).read()
def flip(m):
    v = m.group(2)
    return m.group(1) + ("1" if v[0] == "0" else "0") + v[1:]
s, n = re.subn(r'("3" = \{ expected = ")([0-9a-f]{64})', flip, s)
assert n == 1
open(sys.argv[1], "w").write(s)
PY2
updates=$(grep -c "accepted and in force" "$work/joinservice.log")
apply_traced wrong || { cat "$d/out.log"; fail "apply of measurements with PCR 3 wrong failed"; }
expect_log "Warning: Nodes do not match attestation.measurements"
expect_log "PCR 3 differs"
[ "$(grep -c "accepted and in force" "$work/joinservice.log")" -gt "$updates" ] || fail "the join service did not take the update: $(tail -n 3 "$work/joinservice.log")"
jq -e '.resources[0].instances[0].attributes.verification | length == 1 and (.[0] | .verified == false and (.reason | test("PCR 3 differs")))' \
        "$st" >/dev/null || fail "verification with PCR 3 wrong: $(jq -c '.resources[0].instances[0].attributes.verification' "$st")"
rc=0
tf plan -detailed-exitcode || rc=$?
[ "$rc" = 2 ] || { cat "$d/out.log"; fail "plan with an unverified node: exit $rc, expected 2"; }
cp "$work/main-right.tf" "$d/main.tf"
apply_traced right || { cat "$d/out.log"; fail "apply of the right measurements failed"; }
grep -q "do not match" "$d/out.log" && { cat "$d/out.log"; fail "the right measurements left the node unverified"; }
jq -e '.resources[0].instances[0].attributes.verification | length == 1 and .[0].verified == true' "$st" >/dev/null ||
        fail "verification after the right measurements: $(jq -c '.resources[0].instances[0].attributes.verification' "$st")"
expect_ok plan -detailed-exitcode
expect_log "No changes."

# ---------------------------------------------------------------------------------------------
step "2. the cluster not in state (an apply interrupted during Init): the next apply names it at once"
expect_ok state rm constellation_cluster.c
t=$SECONDS
apply_traced again && { cat "$d/out.log"; fail "apply on an initialised control plane succeeded"; }
[ $((SECONDS - t)) -lt 60 ] || fail "apply took $((SECONDS - t)) s to fail (the node's PCR 15 is checked at once)"
expect_log "Error: Control plane already initialised"
expect_log "attests PCR 15 = cluster ID $cid"
expect_log "Init is not resumable"
expect_log "Nothing was sent."
jq -e '.resources | length == 0' "$st" >/dev/null || fail "a cluster is in state after the refused create: $(jq -c .resources "$st")"

# ---------------------------------------------------------------------------------------------
step "3. other secrets: bound to another cluster"
TF_VAR_master_secret=$(hexrand 32) apply_traced other && { cat "$d/out.log"; fail "apply with other secrets succeeded"; }
expect_log "Error: Control plane bound to another cluster"
expect_log "initialised with other secrets"

# ---------------------------------------------------------------------------------------------
step "4. a provider whose Create waits exits on SIGTERM, and when Terraform is gone"
# A control plane that never serves Init (an address nothing listens on): Create would wait 20 minutes.
for _ in $(seq 50); do
        none="127.$((RANDOM % 254 + 1)).$((RANDOM % 256)).$((RANDOM % 250 + 2))"
        connectable "$none" 9000 || break
done
sed -i "s/= \"$cp\"/= \"$none\"/; s/\[\"$cp\", /[\"$none\", /; s/^  nodes  .*$//" "$d/main.tf"
grep -q "$cp" "$d/main.tf" && fail "main.tf still names $cp: $(grep -n "$cp" "$d/main.tf")"
# provider_of PID: the child of terraform PID running the provider binary, once Create waits
provider_of() {
        local c t=$SECONDS
        until grep -q 'constellation_cluster.c: Still creating' "$d/out.log"; do
                kill -0 "$1" 2>/dev/null || { cat "$d/out.log"; fail "terraform ended before Create waited"; }
                [ $((SECONDS - t)) -lt 120 ] || fail "Create did not wait within 120 s"
                sleep 0.5
        done
        for c in $(pgrep -P "$1"); do
                case $(readlink "/proc/$c/exe" 2>/dev/null) in */terraform-provider-constellation) echo "$c" ;; esac
        done
}
gone_within() { # PID SECONDS
        local t=$SECONDS
        while [ -e "/proc/$1" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; do
                [ $((SECONDS - t)) -lt "$2" ] || return 1
                sleep 0.1
        done
}
# Emptied here, not by the background job's redirection: provider_of must not read the last apply's
# "Still creating" before that job has started.
: >"$d/out.log"
(cd "$d" && exec "$TERRAFORM" apply -auto-approve -no-color) >"$d/out.log" 2>&1 &
tfp=$!
pids+=("$tfp")
prov=$(provider_of "$tfp")
[ -n "$prov" ] || fail "no provider process under terraform $tfp"
kill -TERM "$prov"
gone_within "$prov" 10 || fail "the provider (pid $prov) still runs 10 s after SIGTERM during Create"
rc=0
wait "$tfp" || rc=$?
[ "$rc" != 0 ] || fail "terraform apply succeeded although its provider was stopped"
expect_log "Error: Plugin did not respond"
# Emptied here, not by the background job's redirection: provider_of must not read the last apply's
# "Still creating" before that job has started.
: >"$d/out.log"
(cd "$d" && exec "$TERRAFORM" apply -auto-approve -no-color) >"$d/out.log" 2>&1 &
tfp=$!
pids+=("$tfp")
prov=$(provider_of "$tfp")
[ -n "$prov" ] || fail "no provider process under terraform $tfp"
pids+=("$prov")
kill -9 "$tfp"
gone_within "$prov" 10 || fail "the provider (pid $prov) still runs 10 s after terraform was killed (orphaned Create)"

# ---------------------------------------------------------------------------------------------
step "5. no secret in state, outputs or debug logs"
no_secret_in "$st" "$d/out.log" "$work"/trace-*.log
if ls "$work"/sanitizer* >/dev/null 2>&1; then
        cat "$work"/sanitizer* >&2
        fail "the provider reported sanitizer errors"
fi
echo "PASS: constellation_cluster names a control plane an unrecorded apply initialised"
