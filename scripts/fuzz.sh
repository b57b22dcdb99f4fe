#!/usr/bin/env bash
# Fuzzes the readers of files users hand bnlab (IDX data, checkpoints, JSONL logs) with libFuzzer,
# under AddressSanitizer and UndefinedBehaviorSanitizer.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]
#   SECONDS_PER_TARGET  default 600; TARGETs: idx checkpoint run_log csv (default: all, one by one)
# Each target starts from its seed corpus in fuzz/corpus/<target> and grows a working corpus in
# build-fuzz/corpus/<target>. An input that crashes, leaks, runs out of memory or gets an error
# that does not name the file is saved in build-fuzz/findings/<target>/: fix the bug, then copy
# the input into fuzz/regressions/<target>/ so that the test suite replays it from then on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-600}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(idx checkpoint run_log csv)

# libFuzzer and the sanitizers' runtimes (libclang-rt-dev) are only a Recommends of clang, and
# clang's OpenMP (libomp-dev) not even that.
bash "$root/scripts/install-deps.sh" clang libclang-rt-dev libomp-dev
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBNLAB_FUZZ=ON -DBNLAB_BUILD_TESTS=OFF -DBNLAB_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

for target in "${targets[@]}"; do
  mkdir -p "$build/corpus/$target" "$build/findings/$target"
  echo "== fuzz_$target for $seconds s"
  # The working corpus first: libFuzzer adds the new inputs it finds to the first folder.
  "$build/bin/fuzz_$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$build/findings/$target/" \
    "$build/corpus/$target" "$root/fuzz/corpus/$target" 2>&1 |
    tee "$build/fuzz_$target.log" | grep -E '^(#[0-9]+ +(INITED|DONE|pulse)|stat::|==[0-9]+==ERROR|finding:|SUMMARY)' || true
  if compgen -G "$build/findings/$target/*" >/dev/null; then
    echo "fuzz_$target: findings in $build/findings/$target (log: $build/fuzz_$target.log)" >&2
    exit 1
  fi
done
