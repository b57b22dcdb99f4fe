#!/usr/bin/env bash
# Usage: check_distributed_train.sh BIN_DIR WORK_DIR MPIEXEC
# train --distributed end to end on the real Fashion-MNIST, 2 processes: a run with synchronized
# BatchNorm logs its world; a run stopped after epoch 1 and resumed (under mpiexec again) gives
# the uninterrupted run's numbers, to the last digit, and only rank 0 writes.
set -euo pipefail
bin=$1
work=$2
mpiexec=$3
rm -rf "$work"
mkdir -p "$work"
launch=("$mpiexec" -n 2 --oversubscribe "$bin/train" --distributed)
run=("${launch[@]}" --hidden 32,32 --act relu --batch 100 --lr 0.1 --threads 1)

"${run[@]}" --sync-bn on --epochs 2 --log "$work/whole.jsonl" > "$work/whole.out" 2>&1
grep -q '"world_size":2,"sync_bn":true' "$work/whole.jsonl"
# Rank 0 alone prints: one line per epoch.
[[ $(grep -c 'epoch  2/2' "$work/whole.out") -eq 1 ]]

"${run[@]}" --sync-bn on --epochs 1 --save "$work/part.ckpt" > "$work/part.out" 2>&1
"${launch[@]}" --resume "$work/part.ckpt" --epochs 2 --log "$work/resumed.jsonl" \
  > "$work/resumed.out" 2>&1
grep -q '"type":"resumed"' "$work/resumed.jsonl"
# The epochs' numbers, without their timings.
numbers() { grep '"type":"epoch"' "$1" | sed 's/,"seconds".*//'; }
if ! diff <(numbers "$work/whole.jsonl") <(numbers "$work/resumed.jsonl"); then
  echo "FAIL: the resumed run's epochs differ from the uninterrupted run's" >&2
  exit 1
fi
[[ $(numbers "$work/whole.jsonl" | wc -l) -eq 2 ]]
if ls "$work" | grep -q '\.tmp$'; then echo "FAIL: temporary files left" >&2; exit 1; fi
echo "ok"
