#!/usr/bin/env bash
# The README's test command: installs what is needed, then builds and runs every test twice,
# once plain and once under AddressSanitizer + UndefinedBehaviorSanitizer (halt_on_error=1).
#
# Tests labelled `vm` (QEMU boots of node images) run in the plain build only: they exercise the
# same programs the other tests run under the sanitizers, and a TCG boot under ASan would not fit
# CI's time budget. They take one CPU for most of the run (one TCG guest at a time, RESOURCE_LOCK
# qemu-tcg) and are a chain (mkosi OS tree -> images -> boots), so they run as one ctest of their
# own, started as soon as both builds are done, while the other plain tests and then the ASan run
# use the other CPU: the run takes about as long as the VM chain (README "Tests" has the figures).
# Set CT_SKIP_VM=1 to leave the VM tests out.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/setup.sh

jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
export CHECKPOINT_DISABLE=1
T0=$SECONDS

build() { # dir, extra cmake args...
        local dir=$1
        shift
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
        cmake --build "$dir" -j"$jobs"
}

echo "== plain build"
build build/plain
echo "== ASan+UBSan build"
build build/asan -DCONSTELLATION_SANITIZE=ON
echo "== builds done after $((SECONDS - T0)) s"

# The VM chain in the background, its output in a log printed when it ends.
vm_log=$top/build/vm-tests.log
vm_pid=
if [ "${CT_SKIP_VM:-0}" != 1 ]; then
        echo "== plain VM tests (label vm) started in the background: $vm_log"
        (cd build/plain && exec ctest --timeout 5400 -L vm) > "$vm_log" 2>&1 &
        vm_pid=$!
        other=1
else
        other=$jobs
fi
stop_vm() { [ -z "$vm_pid" ] || kill -- "$vm_pid" 2>/dev/null || true; }
trap stop_vm EXIT

rc=0
echo "== plain tests (not vm)"
(cd build/plain && ctest -j"$other" --timeout 1800 -LE vm) || rc=$?
echo "== plain tests (not vm) done after $((SECONDS - T0)) s"
if [ "$rc" = 0 ]; then
        echo "== ASan+UBSan tests (not vm)"
        (
                export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1
                export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
                export LSAN_OPTIONS=suppressions=$top/test/lsan.supp:print_suppressions=0
                cd build/asan && exec ctest -j"$other" --timeout 1800 -LE vm
        ) || rc=$?
        echo "== ASan+UBSan tests done after $((SECONDS - T0)) s"
fi

vm_rc=0
if [ -n "$vm_pid" ]; then
        if [ "$rc" != 0 ]; then
                stop_vm
        else
                echo "== waiting for the plain VM tests"
        fi
        wait "$vm_pid" || vm_rc=$?
        vm_pid=
        echo "== plain VM tests (label vm), exit $vm_rc after $((SECONDS - T0)) s:"
        cat "$vm_log"
fi
[ "$rc" = 0 ] && [ "$vm_rc" = 0 ] || { echo "== FAILED (tests $rc, VM tests $vm_rc)"; exit 1; }
echo "== all tests passed (plain and ASan+UBSan) after $((SECONDS - T0)) s"
