#!/usr/bin/env bash
# The README's first command: installs, builds, and runs the main job, the BatchNorm comparison
# on Fashion-MNIST (compare_bn; by default the paper preset over 3 seeds, logs and plots under
# runs/). Arguments go to compare_bn, e.g. `bash scripts/demo.sh --preset deep --seeds 4`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
"$build/bin/compare_bn" "$@"
