#!/usr/bin/env bash
# The README's main command: installs what is needed, builds the provider and runs
# `terraform apply` of examples/local (images and measurements read from a local directory).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/setup.sh
cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/plain -j"$(nproc)"
exec bash examples/run-example.sh "$@"
