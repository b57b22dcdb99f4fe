#!/usr/bin/env bash
# Builds bnlab, then times bnlab's training step beside PyTorch's on the standard configurations
# and prints the table for the README (bench/compare.py does the work; PyTorch comes from
# Debian's python3-torch, run with /usr/bin/python3). Arguments go to compare.py, e.g.
#   bash bench/run.sh --out bench/results.jsonl
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh" python3-torch
bash "$root/scripts/build.sh" >/dev/null
exec /usr/bin/python3 "$root/bench/compare.py" --bin "$build/bin" "$@"
