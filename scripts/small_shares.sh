#!/usr/bin/env bash
# The Group Normalization paper's effect (Wu & He 2018) on Fashion-MNIST: one global batch split
# into small shares over the processes of data-parallel training. For every share size, the same
# runs three ways: BatchNorm over each process's rows (train --distributed --sync-bn off, as
# PyTorch's DDP), over the global batch (--sync-bn on), and one process on the whole global batch
# (the same arithmetic as --sync-bn on). Logs and curves go to OUT (default runs/small-shares);
# `curves` prints each share's table.
#   bash scripts/small_shares.sh [--processes 4] [--shares "2 4 8"] [--seeds 2] [--epochs 5]
#                                [--out runs/small-shares] [-- more train flags]
# With more processes than cores, mpirun needs --oversubscribe, which the script adds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
processes=4 shares="2 4 8" seeds=2 epochs=5 out=$root/runs/small-shares
while [[ $# -gt 0 ]]; do
  case "$1" in
    --processes) processes=$2; shift 2 ;;
    --shares) shares=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "small_shares.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
cores=$(nproc)
mpirun=(mpirun -np "$processes")
if (( processes > cores )); then mpirun+=(--oversubscribe); fi
common=(--preset relu --epochs "$epochs" --threads 1 "$@")
for share in $shares; do
  batch=$((share * processes))
  for seed in $(seq 1 "$seeds"); do
    for sync in off on; do
      echo "share $share rows x $processes processes, BatchNorm sync $sync, seed $seed"
      "${mpirun[@]}" "$build/bin/train" --distributed --sync-bn "$sync" --batch "$batch" \
        --seed "$seed" "${common[@]}" --log "$out/share$share-sync-$sync-seed$seed.jsonl" \
        > "$out/share$share-sync-$sync-seed$seed.out"
    done
    echo "one process, batch $batch, seed $seed"
    "$build/bin/train" --batch "$batch" --seed "$seed" "${common[@]}" \
      --log "$out/share$share-one-process-seed$seed.jsonl" \
      > "$out/share$share-one-process-seed$seed.out"
  done
  "$build/bin/curves" "$out"/share"$share"-*.jsonl --out "$out/share$share" \
    --title "$share rows per process x $processes processes (global batch $batch)"
done
