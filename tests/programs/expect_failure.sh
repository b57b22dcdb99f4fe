#!/usr/bin/env bash
# Usage: expect_failure.sh PATTERN COMMAND [ARGS…]
# Passes when COMMAND exits non-zero and its output (stdout and stderr) matches the extended
# regular expression PATTERN: a bad input must be a clear error, not a crash or a silent success.
set -uo pipefail
pattern=$1
shift
output=$("$@" 2>&1)
status=$?
printf '%s\n' "$output"
if [[ $status -eq 0 ]]; then
  echo "FAIL: exit status 0, expected an error" >&2
  exit 1
fi
if [[ $status -ge 128 ]]; then
  echo "FAIL: killed by signal $((status - 128))" >&2
  exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$output"; then
  echo "FAIL: the output does not match: $pattern" >&2
  exit 1
fi
echo "ok: exit status $status, message matches"
