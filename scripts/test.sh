#!/usr/bin/env bash
# The README's test command: installs what is needed, then builds and runs every test twice,
# once plain and once under AddressSanitizer + UndefinedBehaviorSanitizer (halt_on_error=1).
#
# Tests labelled `vm` (QEMU boots of node images) run in the plain build only: they exercise
# the same tools the unit tests run under the sanitizers, and a TCG boot under ASan would not fit
# CI's time budget. Set CT_SKIP_VM=1 to leave them out of the plain run too.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/setup.sh

jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
export CHECKPOINT_DISABLE=1

build() { # dir, extra cmake args...
        local dir=$1
        shift
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
        cmake --build "$dir" -j"$jobs"
}

echo "== plain build"
build build/plain
vm_filter=()
[ "${CT_SKIP_VM:-0}" = 1 ] && vm_filter=(-LE vm)
(cd build/plain && ctest -j"$jobs" --timeout 1800 "${vm_filter[@]}")

echo "== ASan+UBSan build"
build build/asan -DCONSTELLATION_SANITIZE=ON
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$top/test/lsan.supp:print_suppressions=0
(cd build/asan && ctest -j"$jobs" --timeout 1800 -LE vm)
echo "== all tests passed (plain and ASan+UBSan)"
