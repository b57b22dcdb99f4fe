#!/usr/bin/env bash
# Installs what is missing, then configures and builds bnlab out of tree (Release by default).
#   BNLAB_BUILD_DIR  build folder (default: build/ in the repository)
#   BNLAB_BUILD_TYPE CMake build type (default: Release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${BNLAB_BUILD_TYPE:-Release}" >/dev/null
cmake --build "$build" -j "$(nproc)"
