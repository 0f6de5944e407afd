#!/usr/bin/env bash
# test-provider-cluster-kmip: hold your own key through the real Terraform CLI. constellation_cluster
# with `kmip` (endpoint, KEK id, client certificate and key, server CA; the master secret wrapped under
# the KEK) against the real constellation-bootstrapper on the host (swtpm, a LUKS2 state disk file, a
# 127.x address on port 9000; no VM) and a real KMIP server: PyKMIP on 127.0.0.1 with client-certificate
# TLS (test/kmip/pykmip.sh, as test-node-kmip starts it).
#
#   1. plan-time refusals, each naming its attribute: master_secret and kmip together, neither, a
#      client_key that is not a PEM key, a malformed wrapped_master_secret, a wrapped blob without salt
#   2. a wrong server CA (the rogue CA): apply fails with "server-ca-mismatch" at kmip.server_ca before the
#      node is dialled; nothing in state, the node not initialised (disk file unchanged, PCR 15 zero,
#      no node_state.json)
#   3. the right settings: apply succeeds; Init went through KMIP: the node saved the kms://kmip URI
#      (0600, the KEK and the given blob in it) and no master secret; the state disk's keyslot opens
#      with HKDF(master secret, salt, "key-<uuid>") (python3, not our code) and no longer with the
#      first-boot key; cluster_id = python3's HKDF chain = PCR 15's extension; the join service got the
#      measurements signed with the key derived from the KMIP-unwrapped master secret
#   4. the KEK id, the client key, certificate and CA PEMs and the master secret appear nowhere in
#      terraform.tfstate, the plan/apply output or Terraform's debug log (with the provider's)
#   5. plan afterwards: no changes; a changed kmip.endpoint and a switch to master_secret are refused
#      at plan time; changed measurements are applied in place, signed after a fresh unwrap at KMIP
#   6. destroy
set -uo pipefail

fail() { echo "test-provider-cluster-kmip: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }
TERRAFORM=${TERRAFORM:-terraform}
command -v "$TERRAFORM" >/dev/null || fail "terraform not found: install Terraform 1.11.4 as /usr/local/bin/terraform"
for t in swtpm tpm2_pcrread cryptsetup python3 jq openssl; do
        command -v "$t" >/dev/null || fail "'$t' is not installed (scripts/setup.sh)"
done
bin=${CT_BINARY_DIR:?CT_BINARY_DIR unset (run through ctest)}
provider_dir=$bin/provider
[ -x "$provider_dir/terraform-provider-constellation" ] || fail "provider binary missing in $provider_dir"
bs=${CT_BOOTSTRAPPER:-$bin/node/bootstrapper/constellation-bootstrapper}
[ -x "$bs" ] || fail "constellation-bootstrapper not built ($bs)"
js=${CT_JOINSERVICE:-$bin/node/joinservice/constellation-joinservice}
[ -x "$js" ] || fail "constellation-joinservice not built ($js)"
attest=${CT_ATTEST:-$bin/cli/attest/constellation-attest}
[ -x "$attest" ] || fail "constellation-attest not built ($attest)"
pykmip=$(cd "$(dirname "$0")/../kmip" && pwd)/pykmip.sh

work=$(mktemp -d /tmp/ctpk.XXXXXX)
d=$work/tf
kdir=$work/kmip
mkdir -p "$d"
swtpm_pid="" bs_pid="" js_pid=""
cleanup() {
        # Only what this test started, by pid (pykmip.sh stops its server by the pid it recorded).
        [ -z "$js_pid" ] || kill -9 "$js_pid" 2>/dev/null || true
        [ -z "$js_pid" ] || wait "$js_pid" 2>/dev/null || true
        [ -z "$bs_pid" ] || kill -9 "$bs_pid" 2>/dev/null || true
        [ -z "$swtpm_pid" ] || kill -9 "$swtpm_pid" 2>/dev/null || true
        [ -z "$bs_pid" ] || wait "$bs_pid" 2>/dev/null || true
        [ -z "$swtpm_pid" ] || wait "$swtpm_pid" 2>/dev/null || true
        bash "$pykmip" stop "$kdir" >/dev/null 2>&1 || true
        rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/tf-lib.sh"
# hkdf IKM_HEX SALT_HEX INFO: HKDF-SHA256, 32 bytes, hex
b64url() { python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.argv[1])).decode())' "$1"; }

# ---------------------------------------------------------------------------------------------
step "PyKMIP on 127.0.0.1 (client-certificate TLS), a KEK, the master secret wrapped under it"
bash "$pykmip" pki "$kdir" >"$work/pykmip-pki.log" 2>&1 || fail "pykmip.sh pki: $(cat "$work/pykmip-pki.log")"
kport=$(PYKMIP_OWNER_PID=$$ bash "$pykmip" start "$kdir" 2>"$work/pykmip-start.log") ||
        fail "pykmip.sh start: $(cat "$work/pykmip-start.log")"
kconn=(--endpoint "127.0.0.1:$kport" --client-cert "$kdir/client.pem" --client-key "$kdir/client.key" --server-ca "$kdir/ca.pem")
# A few KEKs, so the one in use is not simply the first identifier.
"$attest" kmip create-kek "${kconn[@]}" >/dev/null 2>&1 || fail "kmip create-kek failed"
other_kek=$("$attest" kmip create-kek "${kconn[@]}" 2>/dev/null) || fail "kmip create-kek failed"
kek=$("$attest" kmip create-kek "${kconn[@]}" 2>"$work/kek.err") || fail "kmip create-kek: $(cat "$work/kek.err")"
[ -n "$kek" ] || fail "no KEK identifier"
master=$(hexrand 32) salt=$(hexrand 32) msalt=$(hexrand 32)
echo "$master" >"$work/master.hex"
echo "$salt" >"$work/salt.hex"
chmod 600 "$work/master.hex" "$work/salt.hex"
"$attest" kmip wrap-master-secret "${kconn[@]}" --kek "$kek" --secret-file "$work/master.hex" --salt-file "$work/salt.hex" \
        >"$work/wrap.out" 2>&1 || fail "kmip wrap-master-secret: $(cat "$work/wrap.out")"
rm -f "$work/master.hex" "$work/salt.hex"
read -r wrapped wsalt < <(python3 -c 'import sys, urllib.parse
q = urllib.parse.parse_qs(urllib.parse.urlsplit(open(sys.argv[1]).read().strip()).query)
print(q["wrapped"][0], q["salt"][0])' "$work/wrap.out") || fail "no wrapped/salt in $(cat "$work/wrap.out")"
[ "$wsalt" = "$(b64url "$salt")" ] || fail "the URI's salt is not the salt"

# The values planted in the configuration that must appear nowhere: the PEMs' body lines and their
# base64url (as an inline kms://kmip URI carries them), the KEK reference as the URI writes it, the
# master secret (hex and as kms://cluster-kms would encode it).
planted=()
for f in client.key client.pem ca.pem; do
        planted+=("$(grep -v -- ----- "$kdir/$f" | head -n 1)")
        planted+=("$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(open(sys.argv[1],"rb").read()).decode()[64:128])' "$kdir/$f")")
done
planted+=("kek=$kek&" "$master" "$(b64url "$master" | tr -d =)")
no_planted() { # FILE WHAT
        [ -f "$1" ] || return 0
        for s in "${planted[@]}"; do
                grep -qF -- "$s" "$1" && fail "a planted value (${s:0:10}…) is in $2"
        done
        # the KEK identifier as Terraform would show or store an attribute value
        grep -qE "kek_id\"?[[:space:]]*[:=][[:space:]]*\"$kek\"" "$1" && fail "kmip.kek_id's value is in $2"
        return 0
}

# ---------------------------------------------------------------------------------------------
step "swtpm, state disk, metadata, bootstrapper on 127.x:9000"
for _ in $(seq 50); do
        addr="127.$((RANDOM % 254 + 1)).$((RANDOM % 256)).1"
        python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 9000))' "$addr" 2>/dev/null && break
        addr=""
done
[ -n "$addr" ] || fail "no 127.x address with a free port 9000"

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
zero=$(printf '0%.0s' $(seq 64))
pcr15() { tpm2_pcrread -T "$tcti" sha256:15 | sed -n 's/.*15 *: *0x\([0-9A-Fa-f]*\).*/\1/p' | tr 'A-F' 'a-f'; }
disk=$work/state.img keyfile=$work/state.key
node_state=$work/run-state/constellation/node_state.json
# new_node: an uninitialised node at $addr: a fresh swtpm, a fresh LUKS2 state disk file (token "not
# initialized", first-boot keyfile), empty node directories, the bootstrapper serving on :9000. Run
# again, it replaces the previous node (the join service included).
new_node() {
        local p
        for p in "$js_pid" "$bs_pid" "$swtpm_pid"; do
                [ -z "$p" ] || { kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
        done
        js_pid="" bs_pid="" swtpm_pid=""
        rm -rf "$work/tpm" "$work/run-state" "$work/etc-kubernetes" "$work/var-config" "$disk" "$keyfile"
        start_swtpm "$work"
        tpm2_pcrread -T "$tcti" sha256:0,1,2,3,4,5,6,7,15 >"$work/pcrs" 2>&1 || fail "tpm2_pcrread: $(cat "$work/pcrs")"
        [ "$(pcr15)" = "$zero" ] || fail "PCR 15 of a fresh swtpm is not zero"
        head -c 32 /dev/urandom >"$keyfile"
        chmod 0400 "$keyfile"
        truncate -s 32M "$disk"
        cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$keyfile" "$disk" >/dev/null 2>&1 ||
                fail "cryptsetup luksFormat on $disk failed"
        echo '{"type":"constellation-state-disk","keyslots":[],"diskIsInitialized":false}' | cryptsetup token import --token-id 0 "$disk" ||
                fail "cryptsetup token import failed"
        mkdir -p "$work/run-state" "$work/etc-kubernetes"
        "$bs" --listen "$addr:9000" --tpm "$tcti" --metadata "$work/metadata.json" --state-disk "$disk" \
                --state-keyfile "$keyfile" --node-state "$node_state" \
                --pki-dir "$work/etc-kubernetes/pki" --kubernetes-dir "$work/etc-kubernetes" --component-roots "$work/run-state" \
                --config-dir "$work/var-config" --start-units "" >"$work/bootstrapper.log" 2>&1 &
        bs_pid=$!
        deadline=$((SECONDS + 60))
        until connectable "$addr" 9000; do
                kill -0 "$bs_pid" 2>/dev/null || fail "the bootstrapper exited: $(cat "$work/bootstrapper.log")"
                [ $SECONDS -lt $deadline ] || fail "the bootstrapper does not listen on $addr:9000: $(tail -n 5 "$work/bootstrapper.log")"
                sleep 0.1
        done
}
# start_joinservice KMS-URI-OR-FILE: the node's join service once Init wrote what it needs (as the node
# starts it once Init is answered); a file argument is read then (the URI the node saved).
start_joinservice() {
        (
                deadline=$((SECONDS + 300))
                until [ -s "$work/var-config/attestationConfig" ] && [ -s "$work/var-config/measurementSalt" ] &&
                        [ -s "$work/etc-kubernetes/pki/ca.key" ]; do
                        [ $SECONDS -lt $deadline ] || exit 1
                        sleep 0.1
                done
                uri=$1
                [ ! -f "$uri" ] || uri=$(cat "$uri")
                exec "$js" --listen "$addr:30090" --update-listen "$addr:30091" --kms-uri "$uri" --config-dir "$work/var-config" \
                        --pki-dir "$work/etc-kubernetes/pki" --api-endpoint "$addr:6443" >"$work/joinservice.log" 2>&1
        ) &
        js_pid=$!
}
new_node

python3 - "$work/pcrs" "$work/measurements.tf" "$work/measurements-pcr9.tf" <<'PY' || fail "cannot read the PCRs"
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
m["9"] = "c9" * 32
open(sys.argv[3], "w").write(hcl(m))
PY

export TF_VAR_measurement_salt=$msalt TF_VAR_init_secret=$init_secret TF_VAR_kek_id=$kek
export TF_VAR_master_secret=$master TF_VAR_master_secret_salt=$salt
# Knobs of main_tf (environment): MEAS (measurements file), CA (ca | rogue-ca), KEY (client key file),
# ENDPOINT, WRAPPED / WSALT (empty: not set), KMS (kmip | master | both | none).
main_tf() {
        local kms=${KMS:-kmip}
        cat <<TF
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}
variable "measurement_salt" {
  type      = string
  sensitive = true
}
variable "init_secret" {
  type      = string
  sensitive = true
}
variable "kek_id" {
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
resource "constellation_cluster" "c" {
  csp                                = "qemu"
  name                               = "tfkmip"
  uid                                = "a1b2c3d4"
  image                              = { version = "v2.25.0", reference = "disk.raw", short_path = "v2.25.0" }
  kubernetes_version                 = "v1.31.13"
  constellation_microservice_version = "v2.25.0"
  out_of_cluster_endpoint            = "$addr"
  in_cluster_endpoint                = "10.42.1.100"
  api_server_cert_sans               = ["$addr", "10.42.1.100"]
  network_config = {
    ip_cidr_node    = "10.42.0.0/22"
    ip_cidr_service = "10.96.0.0/12"
  }
  measurement_salt = var.measurement_salt
  init_secret      = var.init_secret
TF
        if [ "$kms" = master ] || [ "$kms" = both ]; then
                cat <<TF
  master_secret      = var.master_secret
  master_secret_salt = var.master_secret_salt
TF
        fi
        if [ "$kms" = kmip ] || [ "$kms" = both ]; then
                cat <<TF
  kmip = {
    endpoint           = "${ENDPOINT:-127.0.0.1:$kport}"
    kek_id             = var.kek_id
    client_certificate = file("$kdir/client.pem")
    client_key         = file("${KEY:-$kdir/client.key}")
    server_ca          = file("$kdir/${CA:-ca}.pem")
TF
                [ -z "${WRAPPED-$wrapped}" ] || echo "    wrapped_master_secret = \"${WRAPPED-$wrapped}\""
                [ -z "${WSALT-$wsalt}" ] || echo "    salt                  = \"${WSALT-$wsalt}\""
                echo "  }"
        fi
        cat <<TF
  attestation = {
    variant            = "qemu-vtpm"
    bootloader_version = 0
    tee_version        = 0
    snp_version        = 0
    microcode_version  = 0
    amd_root_key       = "\"\""
    measurements = $(cat "${MEAS:-$work/measurements.tf}")
  }
}
output "cluster_id" { value = constellation_cluster.c.cluster_id }
TF
}
disk_sum() { sha256sum <"$disk"; }
before=$(disk_sum)
st=$d/terraform.tfstate
not_initialised() { # WHAT
        [ ! -s "$st" ] || ! grep -q constellation_cluster "$st" || fail "$1 left the cluster in state"
        [ "$(disk_sum)" = "$before" ] || fail "the state disk changed after $1"
        [ "$(pcr15)" = "$zero" ] || fail "PCR 15 was extended after $1"
        [ ! -e "$node_state" ] || fail "node_state.json written after $1"
        [ ! -e "$work/var-config/kms-uri" ] || fail "kms-uri written after $1"
        kill -0 "$bs_pid" 2>/dev/null || fail "the bootstrapper exited after $1"
}

# ---------------------------------------------------------------------------------------------
step "plan-time refusals name the attribute"
KMS=both main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Conflicting key management"
expect_log "kmip and master_secret are mutually exclusive"
no_planted "$d/out.log" "the plan output"
KMS=none main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Missing key management"
expect_log "Set master_secret and master_secret_salt"
cp "$kdir/client.pem" "$work/not-a-key.pem"
KEY=$work/not-a-key.pem main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Invalid KMIP credentials"
expect_log "client-key: not a PEM private key"
expect_log "kmip.client_key"
no_planted "$d/out.log" "the plan output"
WRAPPED=AQID main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Invalid wrapped master secret"
expect_log "kmip.wrapped_master_secret must be the padded base64url blob"
WSALT="" main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Incomplete wrapped master secret"
ENDPOINT="127.0.0.1:notaport" main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Invalid KMIP endpoint"
not_initialised "the refused plans"

# ---------------------------------------------------------------------------------------------
step "a wrong server CA: refused before the node is dialled, naming kmip.server_ca; nothing initialised"
CA=rogue-ca main_tf >"$d/main.tf"
(cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace-ca.log" "$TERRAFORM" apply -auto-approve -no-color >"$d/out.log" 2>&1) &&
        { cat "$d/out.log"; fail "apply with the rogue CA succeeded"; }
expect_log "Error: KMIP server refused"
expect_log "server-ca-mismatch"
expect_log "kmip.server_ca must be the CA that issued the KMIP server's certificate"
expect_log "Nothing was sent to the node; it is not initialised."
expect_log "with constellation_cluster.c,"
no_planted "$d/out.log" "the apply output"
no_planted "$work/trace-ca.log" "Terraform's debug log"
not_initialised "a refused server CA"
# Without a given blob, Create would draw and wrap a master secret first: refused the same way.
CA=rogue-ca WRAPPED="" WSALT="" main_tf >"$d/main.tf"
expect_fail apply -auto-approve
expect_log "server-ca-mismatch"
expect_log "Nothing was sent to the node; it is not initialised."
not_initialised "a refused server CA (fresh master secret)"

# ---------------------------------------------------------------------------------------------
step "the right settings: Init through KMIP"
# The join service's own KMS: kms://cluster-kms of the plain master secret (python3's encoding), so an
# accepted update proves the provider signed with the key of the KMIP-unwrapped secret.
start_joinservice "$(python3 -c 'import base64,sys; print("kms://cluster-kms?key=%s&salt=%s" % tuple(base64.urlsafe_b64encode(bytes.fromhex(x)).decode() for x in sys.argv[1:]))' "$master" "$salt")"
main_tf >"$d/main.tf"
(cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace.log" "$TERRAFORM" apply -auto-approve -no-color >"$d/out.log" 2>&1) ||
        { cat "$d/out.log"; tail -n 20 "$work/bootstrapper.log"; fail "apply with kmip failed"; }
grep -q "Warning: Measurements not pushed\|Cannot reach the join service" "$d/out.log" && { cat "$d/out.log"; fail "Create did not push the measurements"; }
grep -q "kek_id *= (sensitive, write-only attribute)" "$d/out.log" || { cat "$d/out.log"; fail "the plan does not hide kmip.kek_id"; }
cp "$d/out.log" "$work/apply.out"
grep -q "attestation config version [0-9]* accepted" "$work/joinservice.log" ||
        fail "the join service did not accept the signed measurements: $(tail -n 5 "$work/joinservice.log")"

uri_file=$work/var-config/kms-uri
[ -s "$uri_file" ] || fail "the bootstrapper saved no kms-uri: $(tail -n 5 "$work/bootstrapper.log")"
[ "$(stat -c %a "$uri_file")" = 600 ] || fail "kms-uri has mode $(stat -c %a "$uri_file"), not 600"
python3 - "$uri_file" "$kek" "$wrapped" "$wsalt" "127.0.0.1:$kport" <<'PY' || fail "the node's kms-uri is not the KMIP URI of the configuration"
import sys, urllib.parse
u = urllib.parse.urlsplit(open(sys.argv[1]).read().strip())
assert u.scheme == "kms" and u.netloc == "kmip", u
q = urllib.parse.parse_qs(u.query)
assert q["kek"] == [sys.argv[2]] and q["wrapped"] == [sys.argv[3]] and q["salt"] == [sys.argv[4]], q.keys()
assert q["endpoint"] == [sys.argv[5]], q["endpoint"]
for k in ("client-cert", "client-key", "server-ca"):
    assert q[k][0].startswith("base64:"), k
PY
# Positive control for the planted-value greps: the node's URI carries the PEMs inline and the KEK.
for s in "${planted[@]:1:1}" "${planted[@]:3:1}" "${planted[@]:5:1}" "kek=$kek&"; do
        grep -qF -- "$s" "$uri_file" || fail "the node's URI lacks a planted value (${s:0:10}…): the greps would miss it"
done
for f in mastersecret salt; do
        [ ! -e "$work/var-config/$f" ] || fail "the node keeps a plain $f beside the KMIP URI"
done
uuid=$(cryptsetup luksUUID "$disk" | tr -d '\n' | tr A-F a-f)
hkdf "$master" "$salt" "key-$uuid" | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' >"$work/dek"
cryptsetup open --test-passphrase --key-file "$work/dek" "$disk" || fail "the disk key is not HKDF(master secret, salt, key-$uuid)"
cryptsetup open --test-passphrase --key-file "$keyfile" "$disk" 2>/dev/null && fail "the first-boot key still opens the disk"
expect_ok output -raw cluster_id
cid=$(cat "$d/out.log")
ms=$(hkdf "$master" "$salt" key-measurementSecret)
[ "$cid" = "$(hkdf "$ms" "$msalt" key-clusterID)" ] || fail "cluster_id $cid is not python3's HKDF chain of the master secret"
pcr15_want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + hashlib.sha256(bytes.fromhex(sys.argv[1])).digest()).hexdigest())' "$cid")
[ "$(pcr15)" = "$pcr15_want" ] || fail "PCR 15 is $(pcr15), expected the extension by cluster ID $cid"

step "nothing planted in state, plan output or the debug log"
no_planted "$st" "the state file"
no_planted "$work/apply.out" "the apply output"
no_planted "$work/trace.log" "Terraform's debug log"
grep -q "constellation_cluster: unwrapping the master secret at the KMIP server" "$work/trace.log" ||
        fail "the provider's debug log is not in Terraform's debug log"
jq -e --arg w "$wrapped" --arg s "$wsalt" '.resources[0].instances[0].attributes.kmip |
        .kek_id == null and .client_certificate == null and .client_key == null and .server_ca == null and
        .wrapped_master_secret == $w and .salt == $s' "$st" >/dev/null ||
        fail "kmip in state: $(jq -c '.resources[0].instances[0].attributes.kmip | keys' "$st")"
jq -e '.resources[0].instances[0].attributes | .master_secret == null and .master_secret_salt == null' "$st" >/dev/null ||
        fail "master_secret in state"

# ---------------------------------------------------------------------------------------------
step "plan: no changes; KMIP settings and the key management cannot change"
expect_ok plan -detailed-exitcode
expect_log "No changes."
ENDPOINT="localhost:$kport" main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: KMIP settings cannot change"
expect_log "kmip.endpoint of an initialised cluster cannot change"
KMS=master main_tf >"$d/main.tf"
expect_fail plan
expect_log "Error: Key management cannot change"
expect_log "The cluster was initialised with kmip (hold your own key)"
no_planted "$d/out.log" "the plan output"
# Without the blob in the configuration the state's is kept (computed): still no changes.
WRAPPED="" WSALT="" main_tf >"$d/main.tf"
expect_ok plan -detailed-exitcode
expect_log "No changes."

step "changed measurements: signed after a fresh unwrap at KMIP, taken by the join service"
kill -0 "$js_pid" 2>/dev/null || fail "the join service is not running: $(tail -n 5 "$work/joinservice.log")"
MEAS=$work/measurements-pcr9.tf main_tf >"$d/main.tf"
(cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace-update.log" "$TERRAFORM" apply -auto-approve -no-color >"$d/out.log" 2>&1) ||
        { cat "$d/out.log"; fail "apply of changed measurements failed"; }
expect_log "Apply complete! Resources: 0 added, 1 changed, 0 destroyed."
python3 - "$work/var-config/attestationConfig" <<'PY' || fail "the join service did not store the update: $(cat "$work/var-config/attestationConfig")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["measurements"]["9"] == {"expected": "c9" * 32, "warnOnly": False}, d["measurements"]
PY
no_planted "$d/out.log" "the update's output"
no_planted "$work/trace-update.log" "the update's debug log"
no_planted "$st" "the state file after the update"
expect_ok plan -detailed-exitcode
expect_log "No changes."
# Another KEK (write-only: no plan can compare it): the server refuses to unwrap the blob, whose
# additional data names its KEK; the update is not sent and the state keeps the measurements in force.
stored=$(sha256sum <"$work/var-config/attestationConfig")
main_tf >"$d/main.tf"
TF_VAR_kek_id=$other_kek expect_fail apply -auto-approve
expect_log "Error: KMIP server refused"
expect_log "unwrap-failed"
expect_log "kmip.kek_id, kmip.wrapped_master_secret and kmip.salt must be the ones the master secret was wrapped with"
expect_log "The state is unchanged."
no_planted "$d/out.log" "the refused update's output"
[ "$(sha256sum <"$work/var-config/attestationConfig")" = "$stored" ] || fail "a refused unwrap changed the join service's config"
jq -e '.resources[0].instances[0].attributes.attestation.measurements["9"].expected == ("c9" * 32)' "$st" >/dev/null ||
        fail "the state does not keep the measurements in force after a refused unwrap"
MEAS=$work/measurements-pcr9.tf main_tf >"$d/main.tf"

step "destroy"
expect_ok destroy -auto-approve
expect_log "Destroy complete! Resources: 1 destroyed."
for f in "$st" "$st.backup"; do no_planted "$f" "$f"; done

# ---------------------------------------------------------------------------------------------
step "a fresh node, no blob given: Create draws the master secret and wraps it at KMIP"
new_node
before=$(disk_sum)
# The join service from the URI the node saved: an accepted update proves the node's unwrap and the
# provider's agree.
start_joinservice "$work/var-config/kms-uri"
d=$work/tf2
mkdir -p "$d"
st=$d/terraform.tfstate
WRAPPED="" WSALT="" main_tf >"$d/main.tf"
(cd "$d" && TF_LOG=debug TF_LOG_PATH="$work/trace2.log" "$TERRAFORM" apply -auto-approve -no-color >"$d/out.log" 2>&1) ||
        { cat "$d/out.log"; tail -n 20 "$work/bootstrapper.log"; fail "apply with a drawn master secret failed"; }
grep -q "Warning: Measurements not pushed\|Cannot reach the join service" "$d/out.log" && { cat "$d/out.log"; fail "Create did not push the measurements"; }
grep -q "wrapping a fresh master secret at the KMIP server" "$work/trace2.log" || fail "the provider did not wrap a fresh master secret"
cp "$d/out.log" "$work/apply2.out"
grep -q "attestation config version [0-9]* accepted" "$work/joinservice.log" ||
        fail "the join service (KMS from the node's URI) did not accept the signed measurements: $(tail -n 5 "$work/joinservice.log")"
[ "$(stat -c %a "$uri_file")" = 600 ] || fail "kms-uri has mode $(stat -c %a "$uri_file"), not 600"
python3 - "$uri_file" "$st" "$kek" "$wrapped" <<'PY' || fail "the state's wrapped master secret is not the node's"
import json, sys, urllib.parse
q = urllib.parse.parse_qs(urllib.parse.urlsplit(open(sys.argv[1]).read().strip()).query)
k = json.load(open(sys.argv[2]))["resources"][0]["instances"][0]["attributes"]["kmip"]
assert q["kek"] == [sys.argv[3]], "kek"
assert k["wrapped_master_secret"] == q["wrapped"][0] and k["salt"] == q["salt"][0], "blob/salt"
assert k["wrapped_master_secret"] != sys.argv[4], "the earlier blob again"
assert k["kek_id"] is None and k["client_key"] is None
PY
[ "$(disk_sum)" != "$before" ] || fail "the state disk was not set up"
expect_ok output -raw cluster_id
cid=$(cat "$d/out.log")
pcr15_want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + hashlib.sha256(bytes.fromhex(sys.argv[1])).digest()).hexdigest())' "$cid")
[ "$(pcr15)" = "$pcr15_want" ] || fail "PCR 15 is $(pcr15), expected the extension by cluster ID $cid"
no_planted "$st" "the state file"
no_planted "$work/apply2.out" "the apply output"
no_planted "$work/trace2.log" "Terraform's debug log"
expect_ok plan -detailed-exitcode
expect_log "No changes."
expect_ok destroy -auto-approve

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
echo "PASS: constellation_cluster with kmip (hold your own key) against the host bootstrapper and PyKMIP"
