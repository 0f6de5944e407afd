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
# (-fw_cfg name=opt/constellation/metadata,file=... is how the qemu infrastructure passes it). The
# file is $CT_NODE_METADATA at boot time. Older than boot-image.sh's --fw-cfg, which newer tests use.
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

# worker_metadata FILE NAME JOIN-ENDPOINT: the metadata document of a worker booted by
# boot-image.sh (slirp's default network: DHCP gives it 10.0.2.15) whose one join endpoint is
# JOIN-ENDPOINT (a --guestfwd address)
worker_metadata() {
	python3 - "$@" <<'PY' || fail "cannot write the metadata $1"
import json, sys
json.dump({"name": sys.argv[2], "role": "worker", "vpc_ip": "10.0.2.15", "join_endpoints": [sys.argv[3]]},
          open(sys.argv[1], "w"))
PY
}

# changed_cmdline_image IMG OUT: OUT/disk.raw, the node image IMG (build-node-image.sh's output)
# with one byte of its measured kernel command line changed ('loglevel=7' for 'loglevel=8'): the
# UKI rebuilt from IMG's parts (image/build/make-uki.sh), the disk assembled anew (make-disk.sh)
# with IMG's root and verity tree. Everything but the command line (and so the UKI's hash) is
# IMG's: a node booted from it differs from IMG's nodes in PCRs 4, 9 and 11 only.
changed_cmdline_image() {
	local img=$1 mod=$2 c="$1/img/common"
	mkdir -p "$mod"
	sed 's/loglevel=8/loglevel=7/' "$img/img/qemu/cmdline" > "$mod/cmdline"
	[ "$(stat -c %s "$mod/cmdline")" = "$(stat -c %s "$img/img/qemu/cmdline")" ] && ! cmp -s "$mod/cmdline" "$img/img/qemu/cmdline" \
		|| fail "could not make a one-byte command-line change of $img/img/qemu/cmdline"
	"$src/image/build/make-uki.sh" --stub "$img/tree/usr/lib/systemd/boot/efi/linuxx64.efi.stub" --linux "$c/vmlinuz" \
		--initrd "$c/initrd.img" --osrel "$c/os-release" --cmdline-file "$mod/cmdline" --out "$mod/uki.efi" > "$mod/log" 2>&1 \
		|| fail "make-uki.sh: $(tail -n 3 "$mod/log")"
	"$src/image/build/make-disk.sh" --uki "$mod/uki.efi" --root "$c/root.squashfs" --verity "$c/root.verity" \
		--roothash "$(cat "$c/roothash")" --seed constellation-c --out "$mod/disk.raw" >> "$mod/log" 2>&1 \
		|| fail "make-disk.sh: $(tail -n 3 "$mod/log")"
}

# gated_forward PORT-FILE GATE-FILE HOST PORT: a TCP forwarder on 127.0.0.1 (its port, chosen by
# the kernel, written to PORT-FILE once it listens) to HOST:PORT, that forwards a connection only
# if GATE-FILE exists when the connection is accepted; before that it closes each connection at
# once. One line per connection on stdout ("closed before the gate" / "forwarded"). It ends when
# the calling shell does (checked every second). Run it in the background.
gated_forward() {
	python3 -u - "$@" "$$" <<'PY'
import os, socket, sys, threading
port_file, gate, host, port, owner = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
ls.settimeout(1)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % ls.getsockname()[1])
os.rename(port_file + ".tmp", port_file)

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def serve(c):
    try:
        u = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        print("forward failed: %s" % e)
        c.close()
        return
    u.settimeout(None)
    t = [threading.Thread(target=pipe, args=(c, u), daemon=True), threading.Thread(target=pipe, args=(u, c), daemon=True)]
    for x in t:
        x.start()
    for x in t:
        x.join()
    c.close()
    u.close()

while True:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        sys.exit(0)
    try:
        c, _ = ls.accept()
    except socket.timeout:
        continue
    if not os.path.exists(gate):
        print("closed before the gate")
        c.close()
        continue
    print("forwarded")
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
}
