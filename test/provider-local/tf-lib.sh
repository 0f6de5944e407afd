# Sourced by the provider-local tests after they set `work` (their temporary directory),
# `provider_dir` (the directory holding the provider binary), TERRAFORM and fail(). Sets up a
# Terraform CLI configuration that uses only this build's provider (dev_overrides, no registry) and
# defines tf / expect_ok / expect_fail / expect_log, which run in and read from "$d/out.log".
cat >"$work/dev.tfrc" <<TFRC
provider_installation {
  dev_overrides { "edgelesssys/constellation" = "$provider_dir" }
}
TFRC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# fast_unwind_on_malloc=0: libcrypto has no frame pointers, so the fast unwinder can stop inside it,
# and a report of OpenSSL's per-thread error queue on gRPC's threads (test/lsan.supp, ERR_clear_error;
# the provider runs dozens of times per test) then comes without the frame its suppression names;
# print_suppressions=0: a suppressed report writes no file.
if [ -n "${ASAN_OPTIONS:-}" ] || [ -n "${UBSAN_OPTIONS:-}" ]; then
        export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$work/sanitizer:fast_unwind_on_malloc=0"
        export LSAN_OPTIONS="${LSAN_OPTIONS:-}:print_suppressions=0"
        export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$work/sanitizer"
fi
unset TF_LOG TF_LOG_PATH

tf() { (cd "$d" && "$TERRAFORM" "$@" -no-color) >"$d/out.log" 2>&1; }
expect_ok() { tf "$@" || { cat "$d/out.log"; fail "terraform $* failed"; }; }
expect_fail() {
        tf "$@" && { cat "$d/out.log"; fail "terraform $* succeeded but should fail"; }
        return 0
}
# The output with line breaks and Terraform's diagnostic frame (│) collapsed to single spaces.
flat_log() { tr -s ' \n│' '   ' <"$d/out.log"; }
expect_log() { # fixed string; Terraform wraps long lines, so compare with whitespace collapsed
        local needle
        needle=$(tr -s ' \n' '  ' <<<"$1" | sed 's/ $//')
        flat_log | tr -s ' ' ' ' | grep -qF -- "$needle" || { cat "$d/out.log"; fail "expected \"$1\" in the output"; }
}

# connectable HOST PORT: a TCP connection succeeds within 0.2 s
connectable() { python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.2)' "$1" "$2" 2>/dev/null; }

# start_swtpm DIR: a swtpm with its state in DIR/tpm on a free 127.0.0.1 port pair (retried when a
# port is taken between the probe and swtpm's bind); sets swtpm_pid, port and tcti, log in DIR/swtpm.log
start_swtpm() {
        local dir=$1 deadline
        swtpm_pid=""
        for _ in $(seq 20); do
                port=$(python3 -c 'import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass
')
                mkdir -p "$dir/tpm"
                swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
                        --tpmstate "dir=$dir/tpm" --flags not-need-init,startup-clear >"$dir/swtpm.log" 2>&1 &
                swtpm_pid=$!
                deadline=$((SECONDS + 10))
                until connectable 127.0.0.1 "$port"; do
                        kill -0 "$swtpm_pid" 2>/dev/null && [ $SECONDS -lt $deadline ] || break
                        sleep 0.05
                done
                connectable 127.0.0.1 "$port" && break
                kill -9 "$swtpm_pid" 2>/dev/null
                wait "$swtpm_pid" 2>/dev/null
                swtpm_pid=""
        done
        [ -n "$swtpm_pid" ] || fail "swtpm did not start: $(cat "$dir/swtpm.log")"
        tcti="swtpm:host=127.0.0.1,port=$port"
}

# hexrand N: N random bytes as hex; hkdf IKM_HEX SALT_HEX INFO: HKDF-SHA256 (32 bytes, hex) by
# python3's hmac, not lib/crypto, so the tests check the provider against an independent derivation
hexrand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
hkdf() {
        python3 -c 'import hmac,hashlib,sys
ikm=bytes.fromhex(sys.argv[1]); salt=bytes.fromhex(sys.argv[2])
prk=hmac.new(salt,ikm,hashlib.sha256).digest()
print(hmac.new(prk,sys.argv[3].encode()+b"\x01",hashlib.sha256).hexdigest())' "$1" "$2" "$3"
}
# wait_listen HOST PORT PID LOG WHAT: until HOST:PORT accepts connections (60 s), while PID lives
wait_listen() { # HOST PORT PID LOG WHAT
        local deadline=$((SECONDS + 60))
        until connectable "$1" "$2"; do
                kill -0 "$3" 2>/dev/null || fail "$5 exited: $(tail -n 5 "$4")"
                [ $SECONDS -lt $deadline ] || fail "$5 does not listen on $1:$2: $(tail -n 5 "$4")"
                sleep 0.05
        done
}
