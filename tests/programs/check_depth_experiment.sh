#!/usr/bin/env bash
# Usage: check_depth_experiment.sh SOURCE_DIR BUILD_DIR WORK_DIR
# scripts/depth_experiment.sh end to end at the smallest size (depth 8, width 4, 1 seed, 1
# epoch on the real Fashion-MNIST): both networks with BatchNorm and without, each pair's logs,
# curves, table and report, and the script's wall time. The documented sizes run for hours; this
# runs the same commands.
set -euo pipefail
source_dir=$1
build_dir=$2
work=$3
rm -rf "$work"
BNLAB_BUILD_DIR=$build_dir bash "$source_dir/scripts/depth_experiment.sh" --depths 8 --seeds 1 \
  --epochs 1 --out "$work" -- --width 4 | tee "$work.stdout"
grep -Eq '^depth experiment: [0-9]+ s wall on [0-9]+ cores$' "$work.stdout"
for pair in plain-8 resnet-8; do
  for file in bn-on-seed1.jsonl bn-off-seed1.jsonl curves.svg curves.png table.md report.html; do
    [[ -s "$work/$pair/$file" ]] || { echo "FAIL: $work/$pair/$file is missing or empty" >&2; exit 1; }
  done
  grep -Eq '^\| bn=on +\| 1 ' "$work/$pair/table.md"
  grep -Eq '^\| bn=off +\| 1 ' "$work/$pair/table.md"
  # config, 1 epoch, final; the network asked for
  [[ $(wc -l < "$work/$pair/bn-on-seed1.jsonl") -eq 3 ]]
  grep -q "\"depth\":8" "$work/$pair/bn-off-seed1.jsonl"
  grep -q "\"width\":4" "$work/$pair/bn-off-seed1.jsonl"
done
grep -q '"model":"plain"' "$work/plain-8/bn-on-seed1.jsonl"
grep -q '"model":"resnet"' "$work/resnet-8/bn-on-seed1.jsonl"
echo "depth experiment script: OK"
