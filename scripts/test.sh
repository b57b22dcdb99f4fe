#!/usr/bin/env bash
# The README's second command: installs, builds, and runs every test through CTest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
# The worst deviation from PyTorch's golden values, for the record (CTest checks them again).
"$build/bin/bnlab_tests" --test-case='*PyTorch*' --minimal | tail -n 1
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
