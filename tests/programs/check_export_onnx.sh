#!/usr/bin/env bash
# Usage: check_export_onnx.sh BIN_DIR WORK_DIR
# A model trained by `train --save` leaves through export_onnx as an ONNX file, with BatchNorm as
# BatchNormalization or folded into the Dense before it (OpenCV runs such graphs in
# bnlab_onnx_tests); a second export replaces the first whole.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
"$bin/train" --hidden 32 --epochs 1 --threads 1 --save "$work/model.bnlab" >"$work/train.out"
"$bin/export_onnx" "$work/model.bnlab" "$work/model.onnx" 2>&1 | tee "$work/export.out"
grep -q 'wrote .*/model.onnx: .*/model.bnlab.s 4 layers, ONNX opset 13, input \[batch, 784\], output \[batch, 10\]' \
  "$work/export.out"
"$bin/export_onnx" --fold-batchnorm "$work/model.bnlab" "$work/folded.onnx" 2>&1 |
  tee "$work/folded.out"
grep -q '4 layers, BatchNorm folded' "$work/folded.out"
# The op types are plain strings in the protobuf: BatchNormalization in one graph only.
grep -q BatchNormalization "$work/model.onnx"
! grep -q BatchNormalization "$work/folded.onnx"
grep -q Gemm "$work/folded.onnx"
# An unwritable output: one message naming it, exit status 1.
if "$bin/export_onnx" "$work/model.bnlab" /no/such/folder/model.onnx >"$work/error.out" 2>&1; then
  echo "export_onnx wrote to a folder that does not exist" >&2
  exit 1
fi
cat "$work/error.out"
grep -q '/no/such/folder/model.onnx' "$work/error.out"
# No temporary file is left beside the output.
[[ $(ls "$work" | wc -l) -eq 7 ]]
echo "ok"
