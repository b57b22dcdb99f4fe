#!/usr/bin/env bash
# The README's two commands on a fresh Debian machine, made here: a minimal Debian root
# (debootstrap --variant=minbase with only g++, cmake, git and ca-certificates) gets a clean clone
# of HEAD, and `bash scripts/demo.sh` and `bash scripts/test.sh` run inside it with chroot, as a
# new user would run them. Reports each command's exit status and duration; exits non-zero when
# either fails. Not part of CI: it needs root, Debian's package mirror and a quarter of an hour.
#
# Usage: check-fresh-machine.sh [COMMAND…]   COMMAND: demo or test (default: demo test)
#   BNLAB_FRESH_CACHE  folder for the cached base root and the runs' logs
#                      (default: /var/cache/bnlab-fresh-machine)
#   BNLAB_FRESH_KEEP=1 keep the root after the run, to look inside (default: removed)
# The base root is built once and kept as a tarball in the cache; delete it to build it anew.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
commands=("$@")
[[ ${#commands[@]} -gt 0 ]] || commands=(demo test)
for command in "${commands[@]}"; do
  [[ $command == demo || $command == test ]] ||
    { echo "check-fresh-machine: unknown command '$command' (demo or test)" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "check-fresh-machine: needs root (debootstrap, chroot, mount)" >&2; exit 1; }

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "check-fresh-machine: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi

# The same Debian release, architecture and mirror as this machine, read from its apt sources.
# shellcheck source=/dev/null
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
arch=$(dpkg --print-architecture)
[[ -n $suite ]] || { echo "check-fresh-machine: /etc/os-release names no Debian codename" >&2; exit 1; }
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' "Release: $suite" |
  head -n 1)
if [[ -z $mirror ]]; then
  apt-get update -qq
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' "Release: $suite" |
    head -n 1)
fi
[[ -n $mirror ]] ||
  { echo "check-fresh-machine: no apt source for Debian '$suite' on this machine" >&2; exit 1; }
mirror_host=$(sed -E 's#^([a-z+]+://[^/]+).*#\1#' <<<"$mirror")

cache=${BNLAB_FRESH_CACHE:-/var/cache/bnlab-fresh-machine}
base=$cache/base-$suite-$arch-minbase-gxx-cmake-git.tar.gz
mkdir -p "$cache"

work=""
root=""
unmount_all() {
  [[ -n $root ]] || return 0
  for mounted in "$root/dev" "$root/proc"; do
    if mountpoint -q "$mounted"; then umount -R "$mounted" || umount -R -l "$mounted"; fi
  done
}
cleanup() {
  unmount_all
  # --one-file-system: never into anything still mounted below the root.
  if [[ -n $work && ${BNLAB_FRESH_KEEP:-0} == 0 ]]; then rm -rf --one-file-system "$work/root"; fi
}
trap cleanup EXIT

if [[ ! -s $base ]]; then
  echo "check-fresh-machine: building the base root ($suite, $arch, $mirror) into $base"
  work=$(mktemp -d "$cache/base.XXXXXX")
  root=$work/root
  started=$(date +%s)
  debootstrap --variant=minbase --include=g++,cmake,git,ca-certificates "$suite" "$root" \
    "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { echo "check-fresh-machine: debootstrap failed; see $work/debootstrap.log" >&2; exit 1; }
  # The Debian sources this machine has (release, updates, security), from the same host only:
  # another host's packages would need its keys.
  apt-get indextargets --format 'deb $(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' |
    grep -F " $mirror_host/" | sort -u >"$root/etc/apt/sources.list"
  # A new machine has not read the package lists yet; scripts/install-deps.sh must.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" --numeric-owner -czf "$base.tmp" .
  mv "$base.tmp" "$base"
  rm -rf --one-file-system "$work"
  echo "check-fresh-machine: base root built in $(($(date +%s) - started)) s"
fi

head=$(git -C "$repo" rev-parse --short HEAD)
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
  echo "check-fresh-machine: note: uncommitted changes are not checked, only HEAD ($head)"
fi
work=$(mktemp -d "$cache/run-$(date -u +%Y%m%dT%H%M%S)-$head.XXXXXX")
root=$work/root
mkdir -p "$root"
tar -C "$root" --numeric-owner -xzf "$base"
git clone --quiet --no-local "$repo" "$root/root/bnlab"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"

echo "check-fresh-machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores;" \
  "Debian $suite from $mirror; HEAD $head; logs in $work"
failed=0
for command in "${commands[@]}"; do
  log=$work/$command.log
  started=$(date +%s)
  status=0
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /root/bnlab && bash scripts/$command.sh" </dev/null >"$log" 2>&1 || status=$?
  seconds=$(($(date +%s) - started))
  echo "== bash scripts/$command.sh: exit status $status in $((seconds / 60)) min $((seconds % 60)) s" \
    "($log); its last lines:"
  tail -n 12 "$log" | sed 's/^/   /'
  [[ $status -eq 0 ]] || failed=1
done
exit "$failed"
