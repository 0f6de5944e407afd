#!/usr/bin/env bash
# test-provider-cluster-init: constellation_cluster Create through the real Terraform CLI against the
# real constellation-bootstrapper on the host, loopback only, no VM: a private swtpm, a LUKS2 state
# disk file (token "not initialized", first-boot keyfile), node metadata with the bcrypt hash of the
# init secret, and the bootstrapper serving Init on port 9000 of a 127.x address of its own (as a
# node of constellation_qemu_infrastructure is reached). Measurements = PCRs 0-7 of that swtpm.
#
#   1. apply started before the bootstrapper serves: the provider retries the unreachable node
#      (its debug log says so; no secret in that log) until it serves; measurements that differ in
#      PCR 3: apply fails with a diagnostic naming PCR 3 at
#      attestation.measurements["3"]; nothing in state; the node is not initialised (disk file
#      unchanged, PCR 15 zero, no node_state.json)
#   2. the right measurements: apply succeeds; cluster_id = HKDF as the node computes it
#      (python3's hmac, not our lib/crypto) = PCR 15's extension; kubeconfig in state (sensitive)
#      with its server at the endpoint; master secret, salts and init secret nowhere in the state;
#      the real join service, started from what Init wrote, gets the applied measurements from Create
#      as the first signed update (PCRs 0-7 as applied, PCR 15 = 0 added, version > 0)
#   3. plan: no changes; a changed kubernetes_version is refused at plan time
#   4. changed measurements are applied in place as a signed update (the service stores it, PCR 9 as
#      applied); a wrong master secret is refused (signature-invalid) and the state keeps the old
#      measurements
#   5. destroy drops the state
set -uo pipefail

fail() { echo "test-provider-cluster-init: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
for t in swtpm tpm2_pcrread cryptsetup python3 jq; do
        command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh)"
done
bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}
provider_dir=$bin/provider
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"
bs=${CT_BOOTSTRAPPER:-$bin/node/bootstrapper/constellation-bootstrapper}
[ -x "$bs" ] || fail "constellation-bootstrapper not built ($bs)"
js=${CT_JOINSERVICE:-$bin/node/joinservice/constellation-joinservice}
[ -x "$js" ] || fail "constellation-joinservice not built ($js)"

work=$(mktemp -d /tmp/ctpc.XXXXXX)
d=$work/tf
mkdir -p "$d"
swtpm_pid="" bs_pid="" js_pid=""
cleanup() {
        # Only what this test started, by pid.
        [ -z "$js_pid" ] || kill -9 "$js_pid" 2>/dev/null || true
        [ -z "$js_pid" ] || wait "$js_pid" 2>/dev/null || true
        [ -z "$bs_pid" ] || kill -9 "$bs_pid" 2>/dev/null || true
        [ -z "$swtpm_pid" ] || kill -9 "$swtpm_pid" 2>/dev/null || true
        [ -z "$bs_pid" ] || wait "$bs_pid" 2>/dev/null || true
        [ -z "$swtpm_pid" ] || wait "$swtpm_pid" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/tf-lib.sh"
# connectable HOST PORT
# hkdf IKM_HEX SALT_HEX INFO: HKDF-SHA256, 32 bytes, hex

# ---------------------------------------------------------------------------------------------
step "swtpm, state disk, metadata, bootstrapper on 127.x:9000"
start_swtpm "$work"
tpm2_pcrread -T "$tcti" sha256:0,1,2,3,4,5,6,7,15 >"$work/pcrs" 2>&1 || fail "tpm2_pcrread: $(cat "$work/pcrs")"
pcr15() { tpm2_pcrread -T "$tcti" sha256:15 | sed -n 's/.*15 *: *0x\([0-9A-Fa-f]*\).*/\1/p' | tr 'A-F' 'a-f'; }
[ "$(pcr15)" = "$(printf '0%.0s' $(seq 64))" ] || fail "PCR 15 of a fresh swtpm is not zero"

# A 127.x address of its own (never 127.0.x.x) whose port 9000 is free.
for _ in $(seq 50); do
        addr="127.$((RANDOM % 254 + 1)).$((RANDOM % 256)).1"
        python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 9000))' "$addr" 2>/dev/null && break
        addr=""
done
[ -n "$addr" ] || fail "no 127.x address with a free port 9000"

master=$(hexrand 32) salt=$(hexrand 32) msalt=$(hexrand 32)
init_secret="planted-init-$(hexrand 12)"
python3 -W ignore - "$init_secret" "$addr" "$work/metadata.json" <<'PY' || fail "cannot make the metadata (python3 crypt, bcrypt)"
import crypt, json, sys, warnings
warnings.simplefilter("ignore")
h = crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
assert h.startswith("$2b$10$") and len(h) == 60, h
json.dump({"name": "control-plane-0", "role": "control-plane", "vpc_ip": sys.argv[2],
           "init_secret_hash": h, "join_endpoints": [sys.argv[2] + ":30090"], "endpoint": sys.argv[2]},
          open(sys.argv[3], "w"))
PY
disk=$work/state.img keyfile=$work/state.key
head -c 32 /dev/urandom >"$keyfile"
chmod 0400 "$keyfile"
truncate -s 32M "$disk"
cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$keyfile" "$disk" >/dev/null 2>&1 ||
        fail "cryptsetup luksFormat on $disk failed"
echo '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":false}' | cryptsetup token import --token-id 0 "$disk" ||
        fail "cryptsetup token import failed"
mkdir -p "$work/run-state" "$work/etc-kubernetes"
node_state=$work/run-state/constellation/node_state.json
start_bootstrapper() {
        "$bs" --listen "$addr:9000" --tpm "$tcti" --metadata "$work/metadata.json" --state-disk "$disk" \
                --state-keyfile "$keyfile" --node-state "$node_state" \
                --pki-dir "$work/etc-kubernetes/pki" --kubernetes-dir "$work/etc-kubernetes" --component-roots "$work/run-state" \
                --config-dir "$work/var-config" --start-units "" >"$work/bootstrapper.log" 2>&1 &
        bs_pid=$!
        local deadline=$((SECONDS + 60))
        until connectable "$addr" 9000; do
                kill -0 "$bs_pid" 2>/dev/null || fail "the bootstrapper exited: $(cat "$work/bootstrapper.log")"
                [ $SECONDS -lt $deadline ] || fail "the bootstrapper does not listen on $addr:9000: $(tail -n 5 "$work/bootstrapper.log")"
                sleep 0.1
        done
}

# Terraform configuration: the measurements as constellation_attestation returns them.
python3 - "$work/pcrs" "$work/measurements.tf" "$work/measurements-pcr3.tf" "$work/measurements-pcr9.tf" \
        "$work/measurements-pcr10.tf" <<'PY' || fail "cannot read the PCRs"
import re, sys
m = {}
for line in open(sys.argv[1]):
    g = re.match(r"\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})", line)
    if g and g.group(1) != "15":
        m[g.group(1)] = g.group(2).lower()
assert len(m) == 8, m
def hcl(mm):
    return "{\n" + "".join('      "%s" = { expected = "%s", warn_only = false }\n' % (k, v) for k, v in sorted(mm.items())) + "    }"
open(sys.argv[2], "w").write(hcl(m))
m9 = dict(m)
m9["9"] = "c9" * 32
open(sys.argv[4], "w").write(hcl(m9))
m10 = dict(m)
m10["10"] = "10" * 32
open(sys.argv[5], "w").write(hcl(m10))
v = m["3"]
m["3"] = ("1" if v[0] == "0" else "0") + v[1:]
open(sys.argv[3], "w").write(hcl(m))
PY
export TF_VAR_master_secret=$master TF_VAR_master_secret_salt=$salt TF_VAR_measurement_salt=$msalt TF_VAR_init_secret=$init_secret
main_tf() { # MEASUREMENTS-FILE [KUBERNETES-VERSION]
        cat <<TF
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
  name                               = "tfinit"
  uid                                = "a1b2c3d4"
  image                              = { version = "v2.25.0", reference = "disk.raw", short_path = "v2.25.0" }
  kubernetes_version                 = "${2:-v1.31.13}"
  constellation_microservice_version = "v2.25.0"
  out_of_cluster_endpoint            = "$addr"
  in_cluster_endpoint                = "10.42.1.100"
  api_server_cert_sans               = ["$addr", "10.42.1.100"]
  network_config = {
    ip_cidr_node    = "10.42.0.0/22"
    ip_cidr_service = "10.96.0.0/12"
  }
  master_secret      = var.master_secret
  master_secret_salt = var.master_secret_salt
  measurement_salt   = var.measurement_salt
  init_secret        = var.init_secret
  attestation = {
    variant            = "qemu-vtpm"
    bootloader_version = 0
    tee_version        = 0
    snp_version        = 0
    microcode_version  = 0
    amd_root_key       = "\"\""
    measurements = $(cat "$1")
  }
}
output "cluster_id" { value = constellation_cluster.c.cluster_id }
output "host" { value = constellation_cluster.c.host }
TF
}
disk_sum() { sha256sum <"$disk"; }
before=$(disk_sum)

# ---------------------------------------------------------------------------------------------
step "apply before the node serves: retried until it does; measurements that differ in PCR 3 are refused"
main_tf "$work/measurements-pcr3.tf" >"$d/main.tf"
(cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace.log" "$TERRAFORM" apply -auto-approve -no-color >"$d/out.log" 2>&1) &
tf_pid=$!
deadline=$((SECONDS + 120))
until grep -q "unreachable (.*), retrying" "$work/trace.log" 2>/dev/null; do
        kill -0 "$tf_pid" 2>/dev/null || { cat "$d/out.log"; fail "terraform apply ended before the node served"; }
        [ $SECONDS -lt $deadline ] || fail "the provider did not report an unreachable node"
        sleep 0.1
done
start_bootstrapper
rc=0
wait "$tf_pid" || rc=$?
[ "$rc" != 0 ] || { cat "$d/out.log"; fail "apply with PCR 3 changed succeeded"; }
for s in "$master" "$salt" "$msalt" "$init_secret"; do
        grep -qiF -- "$s" "$work/trace.log" && fail "a secret (${s:0:6}…) is in Terraform's debug log"
done
expect_log "Error: Attestation refused: PCR mismatch"
expect_log "PCR 3 differs"
expect_log "at index 3"
expect_log "Nothing was sent to the node; it is not initialised."
expect_log '"3" = {'
[ ! -s "$d/terraform.tfstate" ] || ! grep -q constellation_cluster "$d/terraform.tfstate" ||
        fail "a refused create left the cluster in state"
[ "$(disk_sum)" = "$before" ] || fail "the state disk changed after a refused attestation"
[ "$(pcr15)" = "$(printf '0%.0s' $(seq 64))" ] || fail "PCR 15 was extended after a refused attestation"
[ ! -e "$node_state" ] || fail "node_state.json written after a refused attestation"
kill -0 "$bs_pid" 2>/dev/null || fail "the bootstrapper exited after a refused attestation"

# ---------------------------------------------------------------------------------------------
step "the right measurements: the cluster is created, its join service gets them as a signed update"
# The node starts its join service once Init is answered (here: the test, as soon as the files Init
# writes for it exist); Create waits for it and pushes the measurements.
kms_uri=$(python3 -c 'import base64,sys; print("kms://cluster-kms?key=%s&salt=%s" % tuple(base64.urlsafe_b64encode(bytes.fromhex(x)).decode() for x in sys.argv[1:]))' "$master" "$salt")
(
        deadline=$((SECONDS + 300))
        until [ -s "$work/var-config/attestationConfig" ] && [ -s "$work/var-config/measurementSalt" ] &&
                [ -s "$work/etc-kubernetes/pki/ca.key" ]; do
                [ $SECONDS -lt $deadline ] || exit 1
                sleep 0.1
        done
        exec "$js" --listen "$addr:30090" --update-listen "$addr:30091" --kms-uri "$kms_uri" --config-dir "$work/var-config" \
                --pki-dir "$work/etc-kubernetes/pki" --api-endpoint "$addr:6443" >"$work/joinservice.log" 2>&1
) &
js_pid=$!
main_tf "$work/measurements.tf" >"$d/main.tf"
expect_ok apply -auto-approve
grep -q "Warning: Measurements not pushed\|Cannot reach the join service" "$d/out.log" && { cat "$d/out.log"; fail "Create did not push the measurements"; }
python3 - "$work/var-config/attestationConfig" "$work/pcrs" <<'PY' || fail "the join service does not enforce the applied measurements: $(cat "$work/var-config/attestationConfig")"
import json, re, sys
d = json.load(open(sys.argv[1]))
assert d["version"] > 0 and d["signature"], d
want = {}
for line in open(sys.argv[2]):
    g = re.match(r"\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})", line)
    if g and g.group(1) != "15":
        want[g.group(1)] = {"expected": g.group(2).lower(), "warnOnly": False}
want["15"] = {"expected": "00" * 32, "warnOnly": False}
assert d["measurements"] == want, (d["measurements"], want)
PY
grep -q "attestation config version [0-9]* accepted" "$work/joinservice.log" ||
        fail "the join service did not log the accepted version: $(tail -n 5 "$work/joinservice.log")"
expect_ok output -raw cluster_id
cid=$(cat "$d/out.log")
ms=$(hkdf "$master" "$salt" key-measurementSecret)
want=$(hkdf "$ms" "$msalt" key-clusterID)
[ "$cid" = "$want" ] || fail "cluster_id $cid, python3's HKDF gives $want"
# TPM2_PCR_Event(15, cluster ID): PCR 15 = SHA-256(0^32 || SHA-256(cluster ID)); the node measured the same ID.
pcr15_want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + hashlib.sha256(bytes.fromhex(sys.argv[1])).digest()).hexdigest())' "$cid")
[ "$(pcr15)" = "$pcr15_want" ] || fail "PCR 15 is $(pcr15), expected the extension by cluster ID $cid ($pcr15_want)"
expect_ok output -raw host
[ "$(cat "$d/out.log")" = "https://$addr:6443" ] || fail "host: $(cat "$d/out.log")"

step "state: kubeconfig (sensitive), no master secret, salt or init secret"
st=$d/terraform.tfstate
for s in "$master" "$salt" "$msalt" "$init_secret"; do
        grep -qiF -- "$s" "$st" && fail "a write-only secret (${s:0:6}…) is in the state file"
done
# base64 of the salts and the master secret as the kms URI carries them: not there either
for s in "$master" "$salt" "$msalt"; do
        b64=$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.argv[1])).decode().rstrip("="))' "$s")
        grep -qF -- "$b64" "$st" && fail "a secret's base64 is in the state file"
done
jq -e '.resources[0].instances[0] | .attributes.master_secret == null and .attributes.init_secret == null and
        .attributes.master_secret_salt == null and .attributes.measurement_salt == null' "$st" >/dev/null ||
        fail "write-only attributes are not null in state"
jq -r '.resources[0].instances[0].attributes.kubeconfig' "$st" | grep -q "server: https://$addr:6443" ||
        fail "the kubeconfig in state lacks the server at $addr"
jq -e '.resources[0].instances[0].sensitive_attributes | tostring | contains("kubeconfig") and contains("client_key")' "$st" >/dev/null ||
        fail "kubeconfig and client_key are not marked sensitive in state"
jq -r '.resources[0].instances[0].attributes.client_certificate' "$st" | grep -q "BEGIN CERTIFICATE" ||
        fail "no client certificate in state"

# ---------------------------------------------------------------------------------------------
step "plan: no changes; a Kubernetes upgrade is refused at plan time"
expect_ok plan -detailed-exitcode
expect_log "No changes."
main_tf "$work/measurements.tf" v1.32.9 >"$d/main.tf"
expect_fail plan
expect_log "Error: Change needs Kubernetes"
expect_log "Changing kubernetes_version of an existing cluster is a Kubernetes upgrade"
expect_log 'kubernetes_version = "v1.32.9"'
main_tf "$work/measurements.tf" >"$d/main.tf"

# ---------------------------------------------------------------------------------------------
step "the join service takes changed measurements as a signed update (Update)"
kill -0 "$js_pid" 2>/dev/null || fail "the join service is not running: $(tail -n 5 "$work/joinservice.log")"
main_tf "$work/measurements-pcr9.tf" >"$d/main.tf"
expect_ok apply -auto-approve
expect_log "Apply complete! Resources: 0 added, 1 changed, 0 destroyed."
python3 - "$work/var-config/attestationConfig" <<'PY' || fail "the join service did not store the update: $(cat "$work/var-config/attestationConfig")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] > 0 and d["signature"], d
assert d["measurements"]["9"] == {"expected": "c9" * 32, "warnOnly": False}, d["measurements"]
assert d["measurements"]["15"] == {"expected": "00" * 32, "warnOnly": False}, d["measurements"]
PY
grep -q "attestation config version [0-9]* accepted" "$work/joinservice.log" ||
        fail "the join service did not log the accepted version: $(tail -n 5 "$work/joinservice.log")"
expect_ok plan -detailed-exitcode
expect_log "No changes."
stored=$(sha256sum <"$work/var-config/attestationConfig")
main_tf "$work/measurements-pcr10.tf" >"$d/main.tf"
TF_VAR_master_secret=$(hexrand 32) expect_fail apply -auto-approve
expect_log "Error: Attestation configuration refused"
expect_log "signature-invalid"
[ "$(sha256sum <"$work/var-config/attestationConfig")" = "$stored" ] || fail "a refused update changed the join service's config"
jq -e '.resources[0].instances[0].attributes.attestation.measurements | has("9") and (has("10") | not)' "$st" >/dev/null ||
        fail "the state does not keep the measurements in force after a refused update"
for s in "$master" "$salt" "$msalt" "$init_secret"; do
        grep -qiF -- "$s" "$st" && fail "a write-only secret (${s:0:6}…) is in the state file after the update"
done
main_tf "$work/measurements-pcr9.tf" >"$d/main.tf"

step "destroy"
expect_ok destroy -auto-approve
expect_log "Destroy complete! Resources: 1 destroyed."

# The bootstrapper ends after a successful Init.
deadline=$((SECONDS + 30))
while kill -0 "$bs_pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "the bootstrapper still runs 30 s after the Init"
        sleep 0.1
done
rc=0
wait "$bs_pid" || rc=$?
bs_pid=""
[ "$rc" = 0 ] || fail "the bootstrapper exited $rc after the Init: $(tail -n 5 "$work/bootstrapper.log")"

if ls "$work"/sanitizer* >/dev/null 2>&1; then
        cat "$work"/sanitizer* >&2
        fail "the provider reported sanitizer errors"
fi
echo "PASS: constellation_cluster Create against the host bootstrapper"
