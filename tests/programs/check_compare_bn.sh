#!/usr/bin/env bash
# Usage: check_compare_bn.sh BIN_DIR WORK_DIR
# The main job end to end on the real Fashion-MNIST, small enough for CI: compare_bn with a tiny
# network for 2 epochs and 2 seeds must print the table and leave the logs, curves and report;
# curves must then read those logs again.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
out="$work/compare"

"$bin/compare_bn" --hidden 16,16 --epochs 2 --seeds 2 --threads 1 --out "$out" | tee "$work/stdout"
grep -Eq '^\| bn=on +\| 2 +\| 0.85 ' "$work/stdout"
grep -Eq '^\| bn=off +\| 2 +\| 0.85 ' "$work/stdout"
for file in bn-on-seed1.jsonl bn-off-seed1.jsonl bn-on-seed2.jsonl bn-off-seed2.jsonl \
            curves.svg curves.png curves.gp report.html table.md; do
  [[ -s "$out/$file" ]] || { echo "FAIL: $out/$file is missing or empty" >&2; exit 1; }
done
[[ $(wc -l < "$out/bn-on-seed1.jsonl") -eq 4 ]]  # config, 2 epochs, final
grep -q '<svg' "$out/report.html"
grep -q 'bn=off (mean of 2)' "$out/curves.svg"
if ls "$out" | grep -q '\.tmp$'; then echo "FAIL: temporary files left" >&2; exit 1; fi

"$bin/curves" "$out"/bn-*.jsonl --out "$work/again" | tee "$work/curves_stdout"
grep -q 'epoch | \[1\] test_acc train_loss' "$work/curves_stdout"
[[ -s "$work/again.svg" && -s "$work/again.png" ]]
echo "ok"
