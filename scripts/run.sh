#!/usr/bin/env bash
# The README's main command: installs what is needed, builds the project and runs
# `terraform apply` of examples/local (examples/run-example.sh):
#   bash scripts/run.sh             the image and its signed measurements read from a local release
#   bash scripts/run.sh --cluster   the local confidential cluster: 1 control plane + 1 worker in QEMU
#                                   VMs, initialised and verified (builds the node image if needed)
#   bash scripts/run.sh --destroy   tears the local cluster down
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/setup.sh
cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/plain -j"$(nproc)"
exec bash examples/run-example.sh "$@"
