#!/usr/bin/env bash
# Fails when the build used a system header or library from a Debian package that a fresh machine
# would not have: one that is neither in scripts/install-deps.sh's list nor a hard dependency
# (Depends or Pre-Depends, followed transitively) of one that is. A machine that was worked on has
# more packages than a fresh one, so a green build there proves nothing; this check does.
# Usage: check-build-packages.sh [--without PACKAGE]… BUILD_DIR
#   --without PACKAGE  checks as if PACKAGE were not in the list (to show the check can fail)
# Reads, under BUILD_DIR, the dependency files the compiler wrote beside each object (*.o.d: every
# header it read) and CMake's link lines (link.txt: every library given by its path).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
without=()
while [[ ${1:-} == --without ]]; do
  [[ $# -ge 2 ]] || { echo "check-build-packages: --without needs a package name" >&2; exit 2; }
  without+=("$2")
  shift 2
done
[[ $# -eq 1 ]] || { echo "usage: check-build-packages.sh [--without PACKAGE]… BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)

mapfile -t listed < <(bash "$root/scripts/install-deps.sh" --list | grep -vxF -f <(printf '%s\n' "${without[@]}" ""))

# Every file outside the source and build trees that an object's dependency file or a link line
# names.
mapfile -t dep_files < <(find "$build" -name '*.o.d' -type f)
[[ ${#dep_files[@]} -gt 0 ]] ||
  { echo "check-build-packages: no *.o.d dependency files under $build: build it first" >&2; exit 1; }
mapfile -t headers < <(
  {
    cat "${dep_files[@]}" | tr -s ' \\\t' '\n' | grep '^/' | grep -v ':$'
    find "$build" -name link.txt -type f -exec cat {} + | tr -s ' ' '\n' |
      grep -E '^/.*\.(so|a)(\.[0-9]+)*$' || true
  } | xargs realpath -s -m | grep -v -e "^$root/" -e "^$build/" | sort -u)

# Header -> package, by dpkg's own file lists. A header dpkg does not know under the name the
# compiler used (an alternatives link, such as cblas.h) is looked up by its resolved path.
declare -A owner=()
lookup() {
  # "pkg[:arch][, pkg2]: /path"; diversion lines start with "diversion by".
  dpkg-query -S "$@" 2>/dev/null | grep -v '^diversion by' || true
}
while IFS= read -r line; do
  owner[${line#*: }]=${line%%: /*}
done < <(lookup "${headers[@]}")
unowned=()
for header in "${headers[@]}"; do
  [[ -z ${owner[$header]:-} ]] || continue
  resolved=$(realpath -m "$header")
  found=$(lookup "$resolved" | head -n 1)
  if [[ -n $found ]]; then owner[$header]=${found%%: /*}; else unowned+=("$header"); fi
done

# What a fresh machine gets from the list: the listed packages and, transitively, their Depends
# and Pre-Depends among the installed packages (apt-cache prints each package it visits at the
# start of a line; virtual ones in <>; their installed providers follow).
declare -A installed_by_list=()
while IFS= read -r package; do
  installed_by_list[$package]=1
done < <(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${listed[@]}" | grep -v '^ ' | tr -d '<>' | sed 's/:.*//')

declare -A missing=()
for header in "${!owner[@]}"; do
  needed=1
  IFS=',' read -ra candidates <<<"${owner[$header]}"
  for candidate in "${candidates[@]}"; do
    candidate=${candidate# }
    candidate=${candidate%%:*}
    [[ -z ${installed_by_list[$candidate]:-} ]] || needed=0
  done
  package=${owner[$header]%%:*}
  package=${package%%,*}
  [[ $needed -eq 0 || -n ${missing[$package]:-} ]] || missing[$package]=$header
done

status=0
for package in $(printf '%s\n' "${!missing[@]}" | sort); do
  echo "check-build-packages: the build used ${missing[$package]} from Debian package $package," \
    "which scripts/install-deps.sh does not install (name it in the list there)" >&2
  status=1
done
for header in "${unowned[@]}"; do
  echo "check-build-packages: the build used $header, which no Debian package installed" \
    "(a fresh machine does not have it)" >&2
  status=1
done
if [[ $status -eq 0 ]]; then
  packages=$(printf '%s\n' "${owner[@]}" | sed 's/:[^,]*//g' | tr ',' '\n' | tr -d ' ' | sort -u |
    wc -l)
  echo "check-build-packages: ${#headers[@]} system headers and libraries used, from $packages Debian packages," \
    "each installed by scripts/install-deps.sh or one of its packages' dependencies"
fi
exit "$status"
