#!/usr/bin/env bash
# Usage: check_blas_kernels.sh BIN_DIR WORK_DIR
# A program that finds OpenBLAS's generic kernels on a CPU with AVX2 or AVX-512 starts itself
# again with the matching core (framework/blas_kernels.hpp). The generic core is forced with
# OPENBLAS_CORETYPE=Prescott, and BNLAB_BLAS_CORE=auto lets bnlab replace it, as it replaces
# OpenBLAS's own fallback on a CPU it does not know; without it the user's choice is kept.
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
program=$bin/blas_kernels_program
fail() { echo "FAIL: $*" >&2; exit 1; }
# run NAME [VAR=VALUE…] -- ARGS…: the program with only these bnlab/OpenBLAS variables set.
run() {
  local name=$1; shift
  local settings=()
  while [[ $1 != -- ]]; do settings+=("$1"); shift; done
  shift
  env -u OPENBLAS_CORETYPE -u BNLAB_BLAS_CORE -u BNLAB_BLAS_SWITCHED_FROM "${settings[@]}" \
    "$@" >"$work/$name.out" 2>"$work/$name.err" || return $?
}

run keep BNLAB_BLAS_CORE=keep -- "$program"
matching=$(sed -n 's/.*matching=//p' "$work/keep.out")
echo "this CPU's matching core: ${matching:-none}; OpenBLAS's own choice: $(sed -n 's/core=\([^ ]*\).*/\1/p' "$work/keep.out")"
[[ ! -s $work/keep.err ]] || fail "BNLAB_BLAS_CORE=keep printed: $(cat "$work/keep.err")"
if [[ -z $matching ]]; then
  echo "ok: this CPU has neither AVX2 with FMA nor AVX-512: nothing to switch to"
  exit 0
fi

# The switch: generic kernels forced, the program restarts once with the matching core.
run switch OPENBLAS_CORETYPE=Prescott BNLAB_BLAS_CORE=auto -- "$program"
grep -qx "core=$matching matching=$matching" "$work/switch.out" ||
  fail "after the switch: $(cat "$work/switch.out"), expected core=$matching"
[[ $(wc -l <"$work/switch.err") -eq 1 ]] || fail "expected one line, got: $(cat "$work/switch.err")"
grep -q "bnlab: OpenBLAS chose its generic Prescott kernels on this .*; restarted with OPENBLAS_CORETYPE=$matching (BNLAB_BLAS_CORE=keep keeps OpenBLAS's choice)" \
  "$work/switch.err" || fail "the restart line: $(cat "$work/switch.err")"

# Out of the box: whatever OpenBLAS picks by itself, the program runs an AVX2 or newer core.
run default -- "$program"
grep -Eq '^core=(Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids) ' "$work/default.out" ||
  fail "out of the box: $(cat "$work/default.out") $(cat "$work/default.err")"

# A core the user set is kept, with a note; BNLAB_BLAS_CORE=keep keeps it silently.
run user OPENBLAS_CORETYPE=Prescott -- "$program"
grep -qx "core=Prescott matching=$matching" "$work/user.out" || fail "user's core: $(cat "$work/user.out")"
grep -q "OPENBLAS_CORETYPE=Prescott runs OpenBLAS's generic Prescott kernels on this .*, which runs its $matching kernels; kept as set" \
  "$work/user.err" || fail "the user's core's note: $(cat "$work/user.err")"
run user_keep OPENBLAS_CORETYPE=Prescott BNLAB_BLAS_CORE=keep -- "$program"
grep -qx "core=Prescott matching=$matching" "$work/user_keep.out" || fail "keep: $(cat "$work/user_keep.out")"
[[ ! -s $work/user_keep.err ]] || fail "keep printed: $(cat "$work/user_keep.err")"

# A program that does not call select_blas_kernels is told how to, once.
run unselected OPENBLAS_CORETYPE=Prescott -- "$program" --no-select
grep -qx "core=Prescott matching=$matching" "$work/unselected.out" || fail "unselected: $(cat "$work/unselected.out")"
[[ $(wc -l <"$work/unselected.err") -eq 1 ]] || fail "expected one warning: $(cat "$work/unselected.err")"
grep -q "call bnlab::select_blas_kernels(argv) first in main, or set OPENBLAS_CORETYPE=$matching" \
  "$work/unselected.err" || fail "the warning: $(cat "$work/unselected.err")"

# A bad BNLAB_BLAS_CORE is one message and exit status 2.
status=0
run bad BNLAB_BLAS_CORE=fast -- "$program" || status=$?
[[ $status -eq 2 ]] || fail "BNLAB_BLAS_CORE=fast: exit status $status, expected 2"
grep -qx "BNLAB_BLAS_CORE: expected auto or keep, got 'fast'" "$work/bad.err" ||
  fail "BNLAB_BLAS_CORE=fast: $(cat "$work/bad.err")"

# train switches the same way, and its log records the core it ran.
run train OPENBLAS_CORETYPE=Prescott BNLAB_BLAS_CORE=auto -- "$bin/train" --hidden 8 --epochs 1 \
  --threads 1 --log "$work/train.jsonl"
grep -q "restarted with OPENBLAS_CORETYPE=$matching" "$work/train.err" ||
  fail "train: $(cat "$work/train.err")"
head -n 1 "$work/train.jsonl" | grep -q "\"openblas_core\":\"$matching\"" ||
  fail "train's log: $(head -n 1 "$work/train.jsonl")"
echo "ok: generic kernels replaced by $matching"
