#!/usr/bin/env bash
# Usage: check_test_names.sh TEST_PROGRAM…
# Every doctest case must reach CTest whole. doctest_discover_tests registers each case as a
# CMake list item, and CMake cuts a name at ';': "A; B" became two CTest tests "A" and " B",
# each selecting no case, each passing with nothing run (nine cases went unrun so, one of them
# failing). A name with ';' is therefore an error here, naming the case.
set -euo pipefail
status=0
for program in "$@"; do
  names=$(BNLAB_BLAS_CORE=keep "$program" --list-test-cases --no-version 2>/dev/null |
    grep -v -e '^\[doctest\]' -e '^=*$')
  [[ -n $names ]] || { echo "FAIL: $program lists no test cases" >&2; status=1; continue; }
  cut=$(grep -F ';' <<<"$names" || true)
  if [[ -n $cut ]]; then
    while IFS= read -r name; do
      echo "FAIL: $(basename "$program"): test case name with ';' (CTest would not run it): $name" >&2
    done <<<"$cut"
    status=1
  else
    echo "$(basename "$program"): $(wc -l <<<"$names") test case names, none with ';'"
  fi
done
exit $status
