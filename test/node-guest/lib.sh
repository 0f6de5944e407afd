# Helpers of the node-guest tests (sourced). Needs: src, bin, work, T0, NAME.
say() { printf '[%s %4ds] %s\n' "$NAME" "$(($(date +%s) - T0))" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
attest="$bin/cli/attest/constellation-attest"
boot="$src/test/image-boot/boot-image.sh"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hexrand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# hkdf IKM_HEX SALT_HEX INFO: HKDF-SHA256, 32 bytes, hex (python3's hmac: not our lib/crypto)
hkdf() {
	python3 -c 'import hmac,hashlib,sys
ikm=bytes.fromhex(sys.argv[1]); salt=bytes.fromhex(sys.argv[2])
prk=hmac.new(salt,ikm,hashlib.sha256).digest()
print(hmac.new(prk,sys.argv[3].encode()+b"\x01",hashlib.sha256).hexdigest())' "$1" "$2" "$3"
}

# node_secrets DIR: master secret, salt, measurement salt (hex files), init secret, and the
# metadata document the qemu infrastructure passes by fw_cfg (bcrypt hash of the init secret)
node_secrets() {
	local d=$1
	mkdir -p "$d"
	hexrand 32 > "$d/master.hex"
	hexrand 32 > "$d/salt.hex"
	hexrand 32 > "$d/msalt.hex"
	hexrand 24 > "$d/init-secret"
	python3 -W ignore - "$d/init-secret" "$d/metadata.json" <<'PY' || fail "cannot make the metadata (python3 crypt, bcrypt)"
import crypt, json, sys, warnings
warnings.simplefilter("ignore")
secret = open(sys.argv[1]).read().strip()
h = crypt.crypt(secret, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
assert h.startswith("$2b$10$") and len(h) == 60, h
json.dump({"name": "control-plane-0", "role": "control-plane", "vpc_ip": "10.0.2.15",
           "init_secret_hash": h, "join_endpoints": ["10.0.2.15:30090"], "endpoint": "127.0.0.1"},
          open(sys.argv[2], "w"))
PY
}

# qemu_wrapper DIR: a qemu-system-x86_64 first in PATH that adds the node's metadata as fw_cfg
# (boot-image.sh has no fw_cfg option; -fw_cfg name=opt/constellation/metadata,file=... is how the
# qemu infrastructure passes it). The file is $CT_NODE_METADATA at boot time.
qemu_wrapper() {
	local real
	real=$(command -v qemu-system-x86_64) || fail "qemu-system-x86_64 is not installed"
	mkdir -p "$1"
	cat > "$1/qemu-system-x86_64" <<WRAP
#!/bin/bash
if [ -n "\${CT_NODE_METADATA:-}" ]; then
	exec "$real" "\$@" -fw_cfg name=opt/constellation/metadata,file="\$CT_NODE_METADATA"
fi
exec "$real" "\$@"
WRAP
	chmod +x "$1/qemu-system-x86_64"
}

# report_value FILE REGEX: the first report line matching REGEX, its last field
report_value() { grep -Em1 -- "$2" "$1" | awk '{ print $NF }'; }
