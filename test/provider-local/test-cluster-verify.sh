#!/usr/bin/env bash
# test-provider-cluster-verify: constellation_cluster Create waits for the whole cluster and records
# its verification, through the real Terraform CLI against real node services on the host, loopback
# only, no VM. Three nodes, each with its own swtpm, LUKS2 state disk file, 127.x address and
# constellation-verification-service on :30081 of that address (as constellation_qemu_infrastructure
# forwards it):
#   control-plane-0  the bootstrapper serving Init on :9000; the join service (config-dir mode, the
#                    KMS from the master secret) started from what Init wrote, on :30090/:30091
#   worker-1         a bootstrapper that joins control-plane-0's join service after Init
#   worker-2         its PCR 15 extended beforehand (a node bound elsewhere, whose bootstrapper has
#                    ended: it refuses to start with PCR 15 set): its PCR 15 never is the cluster's
#
#   1. apply with nodes = all three (join_timeout 90s): Init happens, control-plane-0 and worker-1
#      verify; apply fails with "Nodes did not verify" naming worker-2 with measurement-mismatch at
#      PCR 15 ("bound to another cluster"), not the other two; the state has the cluster (cluster ID =
#      python3's HKDF, verification: two verified, worker-2 not with its reason), tainted; no secret
#      in state; worker-1's PCR 15 is the cluster's and `constellation-attest verify` (the same
#      lib/verifyclient) agrees for it and refuses worker-2 at PCR 15
#   2. the next plan offers the replacement of the tainted cluster; after `terraform untaint` and
#      nodes without worker-2, apply verifies the changed list in place (Update): every node verified,
#      the output says so; plan: no changes
#   3. destroy drops the state
set -uo pipefail

fail() { echo "test-provider-cluster-verify: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
for t in swtpm tpm2_pcrread tpm2_pcrextend cryptsetup python3 jq; do
        command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh)"
done
bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}
provider_dir=$bin/provider
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"
bs=$bin/node/bootstrapper/constellation-bootstrapper
js=$bin/node/joinservice/constellation-joinservice
vs=$bin/node/verification-service/constellation-verification-service
attest=$bin/cli/attest/constellation-attest
for b in "$bs" "$js" "$vs" "$attest"; do
        [ -x "$b" ] || fail "$b not built"
done

work=$(mktemp -d /tmp/ctpv.XXXXXX)
d=$work/tf
mkdir -p "$d"
pids=() # everything this test started, killed by pid only
js_pid=""
cleanup() {
        local p
        for p in $js_pid "${pids[@]}"; do
                kill -9 "$p" 2>/dev/null || true
        done
        for p in $js_pid "${pids[@]}"; do
                wait "$p" 2>/dev/null || true
        done
        rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/tf-lib.sh"

# ---------------------------------------------------------------------------------------------
step "three nodes: swtpm, state disk, metadata, 127.x address, verification service"
declare -A tcti addr
start_swtpm() { # NAME
        local port="" pid=""
        for _ in $(seq 20); do
                port=$(python3 -c 'import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass
')
                mkdir -p "$work/$1-tpm"
                swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
                        --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" --tpmstate "dir=$work/$1-tpm" \
                        --flags not-need-init,startup-clear >"$work/$1-swtpm.log" 2>&1 &
                pid=$!
                local deadline=$((SECONDS + 10))
                until connectable 127.0.0.1 "$port"; do
                        kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ] || break
                        sleep 0.05
                done
                connectable 127.0.0.1 "$port" && break
                kill -9 "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                pid=""
        done
        [ -n "$pid" ] || fail "$1: swtpm did not start: $(cat "$work/$1-swtpm.log")"
        pids+=("$pid")
        tcti[$1]="swtpm:host=127.0.0.1,port=$port"
}
pcr() { # NAME INDEX
        tpm2_pcrread -T "${tcti[$1]}" "sha256:$2" | sed -n "s/.* $2 *: *0x\([0-9A-Fa-f]*\).*/\1/p" | tr 'A-F' 'a-f'
}
pick_addr() { # NAME: a 127.x address of its own (never 127.0.x.x) with the node's ports free
        local a
        for _ in $(seq 50); do
                a="127.$((RANDOM % 254 + 1)).$((RANDOM % 256)).$((RANDOM % 250 + 2))"
                python3 -c 'import socket,sys
for p in (9000, 30080, 30081, 30090, 30091, 6443):
    s = socket.socket(); s.bind((sys.argv[1], p))' "$a" 2>/dev/null && { addr[$1]=$a; return; }
        done
        fail "no 127.x address with free ports for $1"
}
new_disk() { # NAME
        local disk=$work/$1.img key=$work/$1.key
        head -c 32 /dev/urandom >"$key"
        chmod 0400 "$key"
        truncate -s 32M "$disk"
        cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$key" \
                "$disk" >/dev/null 2>&1 || fail "$1: cryptsetup luksFormat failed"
        echo '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":false}' |
                cryptsetup token import --token-id 0 "$disk" || fail "$1: cryptsetup token import failed"
}
start_bootstrapper() { # NAME [ARGS...]
        local n=$1 r=$work/$1
        shift
        mkdir -p "$r/run-state" "$r/etc-kubernetes"
        "$bs" --listen "${addr[$n]}:9000" --tpm "${tcti[$n]}" --metadata "$work/$n-metadata.json" --state-disk "$work/$n.img" \
                --state-keyfile "$work/$n.key" --node-state "$r/run-state/constellation/node_state.json" \
                --pki-dir "$r/etc-kubernetes/pki" --kubernetes-dir "$r/etc-kubernetes" --component-roots "$r/run-state" \
                --config-dir "$r/var-config" --start-units "" --kubeadm "$r/run-state/bin/kubeadm" "$@" \
                >"$work/$n-bootstrapper.log" 2>&1 &
        pids+=($!)
        eval "bs_pid_${n//-/_}=$!"
}

nodes=(control-plane-0 worker-1 worker-2)
for n in "${nodes[@]}"; do
        start_swtpm "$n"
        pick_addr "$n"
        new_disk "$n"
done
zero=$(printf '0%.0s' $(seq 64))
cp=${addr[control-plane-0]}
master=$(hexrand 32) salt=$(hexrand 32) msalt=$(hexrand 32)
init_secret="planted-init-$(hexrand 12)"
python3 -W ignore - "$init_secret" "$work" "$cp" "${addr[worker-1]}" "${addr[worker-2]}" <<'PY' || fail "cannot make the metadata (python3 crypt, bcrypt)"
import crypt, json, sys, warnings
warnings.simplefilter("ignore")
h = crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
work, cp = sys.argv[2], sys.argv[3]
json.dump({"name": "control-plane-0", "role": "control-plane", "vpc_ip": cp, "init_secret_hash": h,
           "join_endpoints": [cp + ":30090"], "endpoint": cp}, open(work + "/control-plane-0-metadata.json", "w"))
for i, a in ((1, sys.argv[4]), (2, sys.argv[5])):
    json.dump({"name": "worker-%d" % i, "role": "worker", "vpc_ip": a, "join_endpoints": [cp + ":30090"]},
              open(work + "/worker-%d-metadata.json" % i, "w"))
PY
# The measurements: PCRs 0-7, the same on every fresh swtpm.
for n in "${nodes[@]}"; do
        tpm2_pcrread -T "${tcti[$n]}" sha256:0,1,2,3,4,5,6,7 | grep -o '0x[0-9A-Fa-f]*' >"$work/$n.pcrs" || fail "$n: tpm2_pcrread"
        [ "$(pcr "$n" 15)" = "$zero" ] || fail "$n: PCR 15 of a fresh swtpm is not zero"
done
cmp -s "$work/control-plane-0.pcrs" "$work/worker-1.pcrs" && cmp -s "$work/control-plane-0.pcrs" "$work/worker-2.pcrs" ||
        fail "the swtpms' PCRs 0-7 differ"
# worker-2 is bound elsewhere before anything starts: it can never join this cluster.
tpm2_pcrextend -T "${tcti[worker-2]}" "15:sha256=$(printf 'ab%.0s' $(seq 32))" || fail "worker-2: tpm2_pcrextend 15"
w2_pcr15=$(pcr worker-2 15)
[ "$w2_pcr15" != "$zero" ] || fail "worker-2: PCR 15 was not extended"

for n in "${nodes[@]}"; do
        "$vs" --listen "${addr[$n]}:30081" --http "${addr[$n]}:30080" --tpm "${tcti[$n]}" --event-log "$work/no-event-log" \
                >"$work/$n-verification.log" 2>&1 &
        pids+=($!)
        wait_listen "${addr[$n]}" 30081 $! "$work/$n-verification.log" "$n's verification service"
done
start_bootstrapper control-plane-0
wait_listen "$cp" 9000 "$bs_pid_control_plane_0" "$work/control-plane-0-bootstrapper.log" "control-plane-0's bootstrapper"
# worker-1 asks for a join ticket from now on (no join service yet: it retries).
start_bootstrapper worker-1 --join-retry 200

# The join service starts once Init wrote its files (as the node starts it when Init is answered).
kms_uri=$(python3 -c 'import base64,sys; print("kms://cluster-kms?key=%s&salt=%s" % tuple(base64.urlsafe_b64encode(bytes.fromhex(x)).decode() for x in sys.argv[1:]))' "$master" "$salt")
cpr=$work/control-plane-0
(
        deadline=$((SECONDS + 300))
        until [ -s "$cpr/var-config/attestationConfig" ] && [ -s "$cpr/var-config/measurementSalt" ] &&
                [ -s "$cpr/etc-kubernetes/pki/ca.key" ]; do
                [ $SECONDS -lt $deadline ] || exit 1
                sleep 0.1
        done
        exec "$js" --listen "$cp:30090" --update-listen "$cp:30091" --kms-uri "$kms_uri" --config-dir "$cpr/var-config" \
                --pki-dir "$cpr/etc-kubernetes/pki" --api-endpoint "$cp:6443" >"$work/joinservice.log" 2>&1
) &
js_pid=$!

python3 - "$work/control-plane-0.pcrs" "$work/measurements.tf" <<'PY' || fail "cannot write the measurements"
import sys
v = [l.strip()[2:].lower() for l in open(sys.argv[1]) if l.strip()]
assert len(v) == 8, v
open(sys.argv[2], "w").write("{\n" + "".join('      "%d" = { expected = "%s", warn_only = false }\n' % (i, x) for i, x in enumerate(v)) + "    }")
PY
export TF_VAR_master_secret=$master TF_VAR_master_secret_salt=$salt TF_VAR_measurement_salt=$msalt TF_VAR_init_secret=$init_secret
main_tf() { # NODE-NAMES...
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
# The shape of constellation_qemu_infrastructure.nodes (name, role, host_address, …).
locals {
  infra_nodes = [
TF
        local n
        for n in "$@"; do
                printf '    { name = "%s", role = "%s", host_address = "%s", vpc_ip = "10.42.0.1", alive = true },\n' \
                        "$n" "$([ "$n" = control-plane-0 ] && echo control-plane || echo worker)" "${addr[$n]}"
        done
        cat <<TF
  ]
}
resource "constellation_cluster" "c" {
  csp                                = "qemu"
  name                               = "tfverify"
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
  # As examples/local/cluster.tf plugs in constellation_qemu_infrastructure.nodes.
  nodes = [for n in local.infra_nodes : { name = n.name, role = n.role, verification_endpoint = "\${n.host_address}:30081" }]
  join_timeout = "90s"
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
output "verification" { value = constellation_cluster.c.verification }
TF
}
st=$d/terraform.tfstate
no_secrets_in_state() {
        local s
        for s in "$master" "$salt" "$msalt" "$init_secret"; do
                grep -qiF -- "$s" "$st" && fail "a write-only secret (${s:0:6}…) is in the state file"
        done
        return 0
}

# ---------------------------------------------------------------------------------------------
step "apply with all three nodes: worker-2 never verifies; apply names it, the state has the cluster"
main_tf "${nodes[@]}" >"$d/main.tf"
expect_fail apply -auto-approve
expect_log "Error: Nodes did not verify"
expect_log "1 of 3 nodes did not verify within 90 s (join_timeout)"
expect_log "- worker-2 (${addr[worker-2]}:30081): measurement-mismatch: PCR 15 (the cluster ID) differs: untrusted measurement value: $w2_pcr15 at index 15"
expect_log "(the node was bound to another cluster)"
expect_log "saved in state"
flat_log | grep -qF -- "- worker-1 (" && { cat "$d/out.log"; fail "worker-1 is reported as not verified"; }
flat_log | grep -qF -- "- control-plane-0 (" && { cat "$d/out.log"; fail "control-plane-0 is reported as not verified"; }
[ -s "$st" ] || fail "no state after the failed apply"
jq -e '.resources[0].instances[0].status == "tainted"' "$st" >/dev/null || fail "the cluster is not tainted in state: $(jq -c '.resources[0].instances[0].status' "$st")"
cid=$(jq -r '.resources[0].instances[0].attributes.cluster_id' "$st")
want=$(hkdf "$(hkdf "$master" "$salt" key-measurementSecret)" "$msalt" key-clusterID)
[ "$cid" = "$want" ] || fail "cluster_id in state $cid, python3's HKDF gives $want"
jq -e --arg w2 "${addr[worker-2]}:30081" '.resources[0].instances[0].attributes.verification |
        length == 3 and
        (.[0] | .name == "control-plane-0" and .verified == true and .reason == null) and
        (.[1] | .name == "worker-1" and .verified == true and .reason == null) and
        (.[2] | .name == "worker-2" and .verified == false and .verification_endpoint == $w2 and
                (.reason | startswith("measurement-mismatch: PCR 15")))' "$st" >/dev/null ||
        fail "verification in state: $(jq -c '.resources[0].instances[0].attributes.verification' "$st")"
no_secrets_in_state
pcr15_want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + hashlib.sha256(bytes.fromhex(sys.argv[1])).digest()).hexdigest())' "$cid")
for n in control-plane-0 worker-1; do
        [ "$(pcr "$n" 15)" = "$pcr15_want" ] || fail "$n: PCR 15 is not the cluster's"
done
grep -q "join ticket issued" "$work/joinservice.log" || fail "the join service issued no ticket: $(tail -n 5 "$work/joinservice.log")"
[ ! -e "$work/worker-2/run-state/constellation/node_state.json" ] || fail "worker-2 joined"
# constellation-attest verify is the same lib/verifyclient
jq '.resources[0].instances[0].attributes.attestation' "$st" >"$work/attestation.json"
"$attest" verify --endpoint "${addr[worker-1]}:30081" --cluster-id "$cid" --attestation-config "$work/attestation.json" \
        >"$work/verify.out" 2>&1 || fail "constellation-attest verify refused worker-1: $(cat "$work/verify.out")"
rc=0
"$attest" verify --endpoint "${addr[worker-2]}:30081" --cluster-id "$cid" --attestation-config "$work/attestation.json" \
        >"$work/verify.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -qF "measurement-mismatch: PCR 15 (the cluster ID) differs" "$work/verify.out" ||
        fail "constellation-attest verify of worker-2: exit $rc, $(cat "$work/verify.out")"

# ---------------------------------------------------------------------------------------------
step "tainted: plan offers the replacement; untainted, without worker-2: verified in place"
expect_ok plan
expect_log "is tainted, so must be replaced"
expect_ok untaint constellation_cluster.c
main_tf control-plane-0 worker-1 >"$d/main.tf"
expect_ok plan
expect_log "will be updated in-place"
expect_ok apply -auto-approve
expect_log "Apply complete! Resources: 0 added, 1 changed, 0 destroyed."
expect_ok output -json verification
jq -e 'length == 2 and all(.[]; .verified == true and .reason == null) and (map(.name) == ["control-plane-0", "worker-1"])' \
        "$d/out.log" >/dev/null || fail "the verification output: $(cat "$d/out.log")"
jq -e '.resources[0].instances[0].status == null' "$st" >/dev/null || fail "the cluster is still marked in state"
[ "$(jq -r '.resources[0].instances[0].attributes.cluster_id' "$st")" = "$cid" ] || fail "the cluster ID changed"
no_secrets_in_state
expect_ok plan -detailed-exitcode
expect_log "No changes."

step "destroy"
expect_ok destroy -auto-approve
expect_log "Destroy complete! Resources: 1 destroyed."

if ls "$work"/sanitizer* >/dev/null 2>&1; then
        cat "$work"/sanitizer* >&2
        fail "the provider reported sanitizer errors"
fi
echo "PASS: constellation_cluster Create verifies the whole cluster"
