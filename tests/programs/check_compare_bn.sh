#!/usr/bin/env bash
# Usage: check_compare_bn.sh BIN_DIR WORK_DIR
# The main job end to end on the real Fashion-MNIST, small enough for CI: compare_bn with a tiny
# network for 2 epochs and 2 seeds, probed, must print the table and leave the logs, the curves,
# the probe plots and the report; curves must then read those logs again.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
out="$work/compare"

"$bin/compare_bn" --hidden 16,16 --epochs 2 --seeds 2 --threads 1 --probe --probe-points 4 \
  --out "$out" | tee "$work/stdout"
grep -Eq '^\| bn=on +\| 2 +\| 0.85 ' "$work/stdout"
grep -Eq '^\| bn=off +\| 2 +\| 0.85 ' "$work/stdout"
for file in bn-on-seed1.jsonl bn-off-seed1.jsonl bn-on-seed2.jsonl bn-off-seed2.jsonl \
            curves.svg curves.png curves.gp report.html table.md \
            curves-probe.svg curves-probe.png curves-gradients.svg curves-gradients.png; do
  [[ -s "$out/$file" ]] || { echo "FAIL: $out/$file is missing or empty" >&2; exit 1; }
done
# config, 2 epochs, 2 x 4 points x 2 hidden layers, final
[[ $(wc -l < "$out/bn-on-seed1.jsonl") -eq 20 ]]
[[ $(grep -c '"type":"probe"' "$out/bn-off-seed2.jsonl") -eq 16 ]]
grep -q 'bn=off, hidden layer 2' "$out/curves-probe.svg"
[[ $(grep -c '<svg' "$out/report.html") -eq 3 ]]  # curves, percentile bands, gradient norms
grep -q 'bn=off (mean of 2)' "$out/curves.svg"
if ls "$out" | grep -q '\.tmp$'; then echo "FAIL: temporary files left" >&2; exit 1; fi

"$bin/curves" "$out"/bn-*.jsonl --out "$work/again" | tee "$work/curves_stdout"
grep -q 'epoch | \[1\] test_acc train_loss' "$work/curves_stdout"
[[ -s "$work/again.svg" && -s "$work/again.png" ]]
echo "ok"
