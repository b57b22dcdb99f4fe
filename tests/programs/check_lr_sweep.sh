#!/usr/bin/env bash
# Usage: check_lr_sweep.sh BIN_DIR WORK_DIR
# compare_bn --lr LIST: every (lr, BN on/off, seed) run, the stability table with its counts of
# stuck and diverged runs (both made on purpose), the plot against the learning rate, the report.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
# The deep sigmoid network without BatchNorm is stuck at chance; at lr 1e30 the sigmoids
# saturate and every run is stuck.
"$bin/compare_bn" --preset deep --epochs 1 --seeds 1 --threads 1 --lr 0.5,1e30 \
  --out "$work/stuck" | tee "$work/stuck.out"
grep -Eq '^\| 0.5 +\| bn=on +\| 1 .*\| 0 of 1 +\| 0 of 1 +\|$' "$work/stuck.out"
grep -Eq '^\| 0.5 +\| bn=off +\| 1 .*\| 0 of 1 +\| 1 of 1 +\|$' "$work/stuck.out"
grep -Eq '^\| 1e\+30 +\| bn=off +\| 1 .*\| 0 of 1 +\| 1 of 1 +\|$' "$work/stuck.out"
# A ReLU network diverges at lr 1e30, with and without BatchNorm, in its first epoch.
"$bin/compare_bn" --hidden 8 --act relu --epochs 1 --seeds 2 --threads 1 --lr 0.1,1e30 \
  --out "$work/diverged" | tee "$work/diverged.out"
grep -Eq '^\| 0.1 +\| bn=off +\| 2 .*\| 0 of 2 +\| 0 of 2 +\|$' "$work/diverged.out"
grep -Eq '^\| 1e\+30 +\| bn=on +\| 2 .*\| 2 of 2 \(epochs 1, 1\) +\| 0 of 2 +\|$' "$work/diverged.out"
grep -Eq '^\| 1e\+30 +\| bn=off +\| 2 .*\| 2 of 2 \(epochs 1, 1\) +\| 0 of 2 +\|$' "$work/diverged.out"
[[ $(ls "$work/diverged"/*.jsonl | wc -l) -eq 8 ]]  # 2 rates x 2 variants x 2 seeds
[[ -s "$work/diverged/bn-on-lr-1e+30-seed2.jsonl" ]]
for file in curves-lr.svg curves-lr.png curves.svg table.md report.html; do
  [[ -s "$work/diverged/$file" ]] || { echo "FAIL: $file is missing or empty" >&2; exit 1; }
done
grep -q 'bn=off (diverged, drawn at 0)' "$work/diverged/curves-lr.svg"
grep -q 'Stability over learning rates' "$work/diverged/report.html"
grep -q 'Stability over learning rates' "$work/diverged/table.md"
echo "ok"
