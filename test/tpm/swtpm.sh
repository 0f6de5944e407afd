# Sourced by the TPM script tests: swtpm_start starts a private swtpm (TCP on 127.0.0.1, free ports,
# state in $SWTPM_DIR) and sets SWTPM_PID, SWTPM_PORT, TPM2TOOLS_TCTI, TCTI; swtpm_stop kills it.
# Callers install `trap swtpm_stop EXIT` so it dies on failure too.
swtpm_start() {
        command -v swtpm >/dev/null || { echo "FAIL: swtpm is not installed (scripts/setup.sh)" >&2; exit 1; }
        SWTPM_DIR=$(mktemp -d /tmp/ct-swtpm-sh-XXXXXX)
        local attempt
        for attempt in $(seq 1 20); do
                SWTPM_PORT=$((20000 + 2 * (RANDOM % 15000)))
                swtpm socket --tpm2 --server type=tcp,port=$SWTPM_PORT,bindaddr=127.0.0.1 \
                        --ctrl type=tcp,port=$((SWTPM_PORT + 1)),bindaddr=127.0.0.1 \
                        --tpmstate dir="$SWTPM_DIR" --flags not-need-init,startup-clear 2>/dev/null &
                SWTPM_PID=$!
                local i
                for i in $(seq 1 200); do
                        kill -0 $SWTPM_PID 2>/dev/null || break
                        if (exec 3<>/dev/tcp/127.0.0.1/$SWTPM_PORT) 2>/dev/null; then
                                # Ours, not a concurrent test's? A swtpm that lost the port exits at once.
                                sleep 0.05
                                kill -0 $SWTPM_PID 2>/dev/null || break
                                TCTI="swtpm:host=127.0.0.1,port=$SWTPM_PORT"
                                export TPM2TOOLS_TCTI="$TCTI"
                                return 0
                        fi
                        sleep 0.025
                done
                kill $SWTPM_PID 2>/dev/null; wait $SWTPM_PID 2>/dev/null
        done
        echo "FAIL: swtpm did not start" >&2
        exit 1
}

swtpm_stop() {
        if [ -n "${SWTPM_PID:-}" ]; then
                kill $SWTPM_PID 2>/dev/null
                wait $SWTPM_PID 2>/dev/null
                SWTPM_PID=
        fi
        [ -n "${SWTPM_DIR:-}" ] && rm -rf "$SWTPM_DIR"
        return 0
}
