#!/usr/bin/env bash
# The README's second command: installs, builds, checks that the build used only packages the
# install script installs, and runs every test through CTest; then builds the tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer and runs the library's tests there.
#   BNLAB_SANITIZERS=0  skips the sanitizer build (it takes a few minutes on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BNLAB_BUILD_DIR:-$root/build}
bash "$root/scripts/build.sh"
# Every system header and library the build used must come from a package that
# scripts/install-deps.sh installs: a fresh machine has nothing else.
bash "$root/scripts/check-build-packages.sh" "$build"
# The worst deviation from PyTorch's golden values, for the record (CTest checks them again).
"$build/bin/bnlab_tests" --test-case='*PyTorch*' --minimal | tail -n 1
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
# The API reference from the headers' comments: any Doxygen warning fails the tests.
bash "$root/scripts/api-docs.sh" "$build/api"

if [[ ${BNLAB_SANITIZERS:-1} != 0 ]]; then
  sanitized=${BNLAB_SANITIZE_BUILD_DIR:-$root/build-asan}
  echo "== the tests again under AddressSanitizer and UndefinedBehaviorSanitizer ($sanitized)"
  # A unity build: UndefinedBehaviorSanitizer makes GCC spend most of its time on the templates
  # every file instantiates again (xtensor's); compiled 8 files at a time, it spends it once per
  # batch. Measured on layers/conv2d.cpp at -O1 -g: 4.5 s without sanitizers, 6.7 s with ASan,
  # 20.6 s with UBSan; four files took 90.6 s alone and 43.6 s as one.
  cmake -S "$root" -B "$sanitized" -DCMAKE_BUILD_TYPE=Debug -DBNLAB_SANITIZE=ON \
    -DCMAKE_UNITY_BUILD=ON >/dev/null
  # The tests of the library's own code (CTest label "library": the doctest suites, the MPI
  # suites, the fuzz corpus replays) and what they run; the programs' end-to-end tests ran
  # above, and building every program again under the sanitizers doubled this half's time.
  cmake --build "$sanitized" -j "$(nproc)" --target sanitized_tests
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$sanitized" --output-on-failure -j "$(nproc)" -L library
fi
