#!/usr/bin/env bash
# Keeps the README and the guide from drifting away from the code. Fails, naming the problem,
# when:
#   - README.md is longer than 250 lines (it is a newcomer's page; the rest belongs in docs/);
#   - the README's C++ example differs from examples/quickstart.cpp (which a test builds and runs);
#   - a relative link in README.md, CHANGELOG.md or docs/*.md (outside code blocks) names a file
#     that does not exist;
#   - a program the pages run as build/bin/NAME is not a target of examples/, bench/, tests/ or
#     fuzz/.
# Usage: check-docs.sh [REPOSITORY_ROOT]
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
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

((status == 0)) && echo "check-docs: README.md ($lines lines), the example and every link and program are consistent"
exit $status
