#!/usr/bin/env bash
# Usage: check_small_batch.sh BIN_DIR WORK_DIR
# small_batch end to end on a small CSV problem: every (batch, normalization) run with the
# learning rate scaled by the batch, the table over batch sizes, the plot of error against batch
# size, the report; curves draws the same sweep from the logs; compare_bn --norm compares the
# normalizations it lists.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work/data"
# Three classes told apart by which of the first three features is largest.
(cd "$work/data" && awk 'BEGIN { srand(7);
  header = "f1,f2,f3,f4,f5,f6,label"; print header > "train.csv"; print header > "test.csv";
  for (i = 0; i < 1000; i++) { best = 0; line = "";
    for (j = 0; j < 6; j++) { v[j] = rand(); line = line sprintf("%.4f,", v[j]) }
    for (j = 1; j < 3; j++) if (v[j] > v[best]) best = j;
    print line best > (i < 800 ? "train.csv" : "test.csv") } }' </dev/null)

"$bin/small_batch" --model mlp --hidden 8 --data "$work/data" --norm batch,group:2,layer,none \
  --batches 4,16 --batch 16 --lr 0.2 --epochs 2 --seeds 2 --threads 1 --out "$work/sweep" \
  | tee "$work/stdout"
# 2 batches x 4 normalizations x 2 seeds, each with its own batch size and scaled rate.
[[ $(ls "$work/sweep"/*.jsonl | wc -l) -eq 16 ]]
head -1 "$work/sweep/norm-group-2-batch-4-seed2.jsonl" | grep -q '"batch":4,'
head -1 "$work/sweep/norm-group-2-batch-4-seed2.jsonl" | grep -q '"lr":0.05,'
head -1 "$work/sweep/norm-layer-batch-16-seed1.jsonl" | grep -q '"lr":0.2,'
# 800 samples: 200 steps an epoch at batch 4, 50 at batch 16.
sed -n 2p "$work/sweep/norm-group-2-batch-4-seed2.jsonl" | grep -q '"step":200,'
sed -n 2p "$work/sweep/norm-layer-batch-16-seed1.jsonl" | grep -q '"step":50,'
head -1 "$work/sweep/norm-layer-batch-16-seed1.jsonl" | grep -q '"norm":"layer"'
grep -Eq '^\| 4 +\| norm=group:2 +\| 2 ' "$work/stdout"
grep -Eq '^\| 16 +\| norm=none +\| 2 ' "$work/stdout"
for file in curves-batch.svg curves-batch.png curves.svg table.md report.html; do
  [[ -s "$work/sweep/$file" ]] || { echo "FAIL: $file is missing or empty" >&2; exit 1; }
done
grep -q 'final test error' "$work/sweep/curves-batch.gp"
grep -q 'norm=layer (mean)' "$work/sweep/curves-batch.svg"
grep -q 'Over batch sizes' "$work/sweep/report.html"
"$bin/curves" "$work/sweep"/*seed1.jsonl "$work/sweep"/*seed2.jsonl --out "$work/again" \
  | tee "$work/curves_stdout"
grep -Eq '^\| 16 +\| norm=batch +\| 2 ' "$work/curves_stdout"
[[ -s "$work/again-batch.svg" ]]

# compare_bn --norm: one variant per normalization listed.
"$bin/compare_bn" --hidden 8 --data "$work/data" --norm layer,group:4 --epochs 1 --seeds 1 \
  --threads 1 --target 0.5 --out "$work/compare" | tee "$work/compare_stdout"
grep -Eq '^\| norm=layer +\| 1 ' "$work/compare_stdout"
grep -Eq '^\| norm=group:4 +\| 1 ' "$work/compare_stdout"
grep -q 'Normalizations layer, group:4' "$work/compare/table.md"
echo "ok"
