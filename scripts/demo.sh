#!/usr/bin/env bash
# The README's first command: installs, builds, and runs the main example.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
"$build/bin/demo_synthetic" "$@"
