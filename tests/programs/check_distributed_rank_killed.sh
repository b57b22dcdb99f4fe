#!/usr/bin/env bash
# Usage: check_distributed_rank_killed.sh BIN_DIR WORK_DIR MPIEXEC
# A process of a data-parallel run that dies (SIGKILL, after the first epoch) ends the whole run:
# mpirun exits non-zero naming the signal, and no process is left waiting in a collective.
set -uo pipefail
bin=$1
work=$2
mpiexec=$3
rm -rf "$work"
mkdir -p "$work"
# From /proc, as a fresh Debian root has no procps (pgrep).
children_of() {
  local stat
  for stat in /proc/[0-9]*/stat; do
    local pid comm state ppid rest
    read -r pid comm state ppid rest < "$stat" 2>/dev/null || continue
    [[ $ppid == "$1" ]] && echo "$pid"
  done
}
running_with() {
  local cmdline
  for cmdline in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' < "$cmdline" 2>/dev/null | grep -q -- "$1" && return 0
  done
  return 1
}
"$mpiexec" -n 2 --oversubscribe "$bin/train" --distributed --hidden 32 --act relu --epochs 200 \
  --threads 1 --log "$work/run.jsonl" > "$work/out" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
  grep -q '"type":"epoch"' "$work/run.jsonl" 2>/dev/null && break
  sleep 0.1
done
victim=$(children_of "$launcher" | tail -n 1)
[[ -n $victim ]] || { echo "FAIL: no process of the run found" >&2; kill "$launcher"; exit 1; }
kill -9 "$victim"
wait "$launcher"
status=$?
cat "$work/out"
[[ $status -ne 0 ]] || { echo "FAIL: mpirun exited 0 after a process was killed" >&2; exit 1; }
grep -q "exited on signal 9" "$work/out" || { echo "FAIL: no word of the killed process" >&2; exit 1; }
if running_with "--log $work/run.jsonl"; then
  echo "FAIL: a process of the run is still there" >&2
  exit 1
fi
echo "ok: mpirun exited with status $status"
