#!/usr/bin/env bash
# The depth experiment (He et al. 2016; Ioffe & Szegedy 2015): plain and residual networks
# (models/resnet.hpp) at each depth, each with BatchNorm and without, over several seeds, at one
# learning rate: compare_bn --model plain|resnet --depth D for every pair, two at a time on
# one thread each. Each pair's logs, curves and report go to OUT/<model>-<depth>/ (default
# runs/depth); `curves` prints any of them again.
#   bash scripts/depth_experiment.sh [--depths "8 20"] [--seeds 2] [--epochs 3]
#                                    [--out runs/depth] [-- more compare_bn flags]
# The flags after -- go to every compare_bn (e.g. --lr 0.1 --width 16).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
depths="8 20" seeds=2 epochs=3 out=$root/runs/depth
while [[ $# -gt 0 ]]; do
  case "$1" in
    --depths) depths=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "depth_experiment.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
# Deepest first, so that the longest runs start while both cores are free.
pairs=()
for depth in $(echo "$depths" | tr ' ' '\n' | sort -rn); do
  for model in plain resnet; do pairs+=("$model $depth"); done
done
run_pair() {
  local model=$1 depth=$2
  "$build/bin/compare_bn" --preset resnet20 --model "$model" --depth "$depth" \
    --epochs "$epochs" --seeds "$seeds" --threads 1 --out "$out/$model-$depth" "${@:3}" \
    > "$out/$model-$depth.out" 2>&1
  echo "$model-$depth done ($(date -u +%H:%M:%S))"
}
start=$(date +%s)
running=0
for pair in "${pairs[@]}"; do
  # shellcheck disable=SC2086
  run_pair $pair "$@" &
  running=$((running + 1))
  if (( running == $(nproc) )); then wait -n; running=$((running - 1)); fi
done
wait
echo "depth experiment: $(( $(date +%s) - start )) s wall on $(nproc) cores"
