#!/usr/bin/env bash
# Usage: check_compose_curves.sh BIN_DIR WORK_DIR
# A model composed in code (examples/compose.cpp) trains through the trainer and leaves a log
# that `curves` reads and draws beside a `train` log. Both configurations have a "model" field
# (compose's describes its network, train's says mlp or cnn), so it is in the train run's label.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
"$bin/compose" --epochs 1 --threads 1 --log "$work/compose.jsonl" >"$work/compose.out"
"$bin/train" --hidden 16 --epochs 1 --threads 1 --log "$work/train.jsonl" >"$work/train.out"
"$bin/curves" "$work/compose.jsonl" "$work/train.jsonl" --out "$work/both" | tee "$work/stdout"
grep -Eq '^\| compose +\| 1 +\| 0.85 ' "$work/stdout"
grep -Eq '^\| model=mlp lr=0.5 schedule=constant batch=60 +\| 1 ' "$work/stdout"
grep -q 'compose (mean of 1)' "$work/both.svg"
grep -q 'model=mlp lr=0.5 schedule=constant batch=60 (mean of 1)' "$work/both.svg"
[[ -s "$work/both.png" ]]
echo "ok"
