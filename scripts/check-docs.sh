#!/usr/bin/env bash
# Keeps the README and the guide from drifting away from the code. Fails, naming the problem,
# when:
#   - README.md is longer than 250 lines (it is a newcomer's page; the rest belongs in docs/);
#   - the README's C++ example differs from examples/quickstart.cpp (which a test builds and runs);
#   - a relative link in README.md, CHANGELOG.md or docs/*.md (outside code blocks) names a file
#     that does not exist;
#   - a program the pages run as build/bin/NAME is not a target of examples/, bench/, tests/ or
#     fuzz/;
#   - with BIN_DIR (the built programs): a flag the pages give a program ("build/bin/train
#     --preset cnn" in a code block, `train --norm layer` in the text) that its --help does not
#     list.
# Usage: check-docs.sh [REPOSITORY_ROOT [BIN_DIR]]
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
bin=${2:-}
cd "$root"
status=0
fail() { echo "check-docs: $*" >&2; status=1; }

lines=$(wc -l <README.md)
((lines <= 250)) || fail "README.md has $lines lines; at most 250 (move details to docs/)"

example=$(awk '/^```cpp$/ {inside = 1; next} inside && /^```$/ {exit} inside' README.md)
if ! diff <(printf '%s\n' "$example") examples/quickstart.cpp >/dev/null; then
  fail "README.md's C++ example differs from examples/quickstart.cpp:"
  diff <(printf '%s\n' "$example") examples/quickstart.cpp >&2 || true
fi

for page in README.md CHANGELOG.md docs/*.md; do
  dir=$(dirname "$page")
  # Links outside fenced code blocks: ](target), without a URL scheme or a bare anchor.
  while IFS= read -r target; do
    target=${target%%#*}
    [[ -z $target || $target == *://* || $target == mailto:* ]] && continue
    [[ -e "$dir/$target" ]] || fail "$page links to $target, which does not exist"
  done < <(awk '/^```/ {fence = !fence; next} !fence' "$page" |
    grep -o '](\([^)]*\))' | sed 's/^](//; s/)$//' || true)
done

targets=$(cat examples/CMakeLists.txt bench/CMakeLists.txt tests/CMakeLists.txt fuzz/CMakeLists.txt |
  grep -oE '(add_executable\(|foreach\(program)[^)]*' | tr ' (' '\n\n' | sort -u)
for page in README.md docs/*.md; do
  while IFS= read -r program; do
    grep -qxF "$program" <<<"$targets" ||
      fail "$page runs build/bin/$program, which no CMakeLists.txt builds"
  done < <(grep -oE 'build/bin/[a-z_0-9]+' "$page" | sed 's|build/bin/||' | sort -u || true)
done

if [[ -n $bin ]]; then
  flags_checked=0
  for program in $(ls "$bin"); do
    [[ -x "$bin/$program" ]] && grep -qxF "$program" <<<"$targets" || continue
    help=$("$bin/$program" --help 2>&1 || true)
    # Each command of the program in the pages: build/bin/PROGRAM … (to the end of the line or
    # a backtick) or `PROGRAM …` in the text; its --flags.
    while IFS= read -r flag; do
      flags_checked=$((flags_checked + 1))
      grep -qE -- "(^|[ ,])$flag([ ,=]|$)" <<<"$help" ||
        fail "the pages give $program the flag $flag, which $program --help does not list"
    done < <(cat README.md docs/*.md |
      grep -oE "(build/bin/$program( [^\`|#]*)?|\`$program( [^\`]*)?\`)" |
      grep -oE -- '--[a-z][a-z0-9-]*' | sort -u || true)
  done
  echo "check-docs: $flags_checked flags of the pages' commands found in their programs' --help"
fi

((status == 0)) && echo "check-docs: README.md ($lines lines), the example and every link and program are consistent"
exit $status
