#!/usr/bin/env bash
# Usage: check_small_shares.sh SOURCE_DIR BUILD_DIR WORK_DIR
# scripts/small_shares.sh end to end at the smallest size (2 processes with shares of 8 rows, 1
# seed, 1 epoch of a 16-unit MLP on the real Fashion-MNIST): the three runs of the share
# (BatchNorm per process, synchronized, one process on the global batch), their logs and the
# share's table and plot.
set -euo pipefail
source_dir=$1
build_dir=$2
work=$3
rm -rf "$work"
BNLAB_BUILD_DIR=$build_dir bash "$source_dir/scripts/small_shares.sh" --processes 2 --shares 8 \
  --seeds 1 --epochs 1 --out "$work" -- --hidden 16 | tee "$work.stdout"
for run in sync-off sync-on one-process; do
  log="$work/share8-$run-seed1.jsonl"
  [[ -s "$log" ]] || { echo "FAIL: $log is missing or empty" >&2; exit 1; }
  [[ $(wc -l < "$log") -eq 3 ]]  # config, 1 epoch, final
  grep -q '"batch":16' "$log"
done
grep -q '"world_size":2,"sync_bn":false' "$work/share8-sync-off-seed1.jsonl"
grep -q '"world_size":2,"sync_bn":true' "$work/share8-sync-on-seed1.jsonl"
for file in share8.svg share8.png; do
  [[ -s "$work/$file" ]] || { echo "FAIL: $work/$file is missing or empty" >&2; exit 1; }
done
grep -Eq '^\| world_size=2 sync_bn=true +\| 1 ' "$work.stdout"
echo "small shares script: OK"
