#!/usr/bin/env bash
# Builds and runs tests/consumer against bnlab.
#   check.sh add_subdirectory BNLAB_SOURCE_DIR WORK_DIR
#   check.sh find_package     BNLAB_BUILD_DIR  WORK_DIR   (installs that build into WORK_DIR first)
set -euo pipefail
mode=$1 bnlab=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
case "$mode" in
  add_subdirectory)
    # bnlab's library is compiled again here: as a unity build, which takes half the time (and
    # shows that bnlab's sources compile together as well as one by one).
    cmake -S "$here" -B "$work/build" -DBNLAB_MODE=add_subdirectory -DBNLAB_SOURCE_DIR="$bnlab" \
      -DCMAKE_UNITY_BUILD=ON ;;
  find_package)
    cmake --install "$bnlab" --prefix "$work/prefix"
    cmake -S "$here" -B "$work/build" -DBNLAB_MODE=find_package -DCMAKE_PREFIX_PATH="$work/prefix" ;;
  *) echo "check.sh: unknown mode '$mode' (add_subdirectory or find_package)" >&2; exit 2 ;;
esac
cmake --build "$work/build" -j 2
"$work/build/consumer"
if [[ -x "$work/build/consumer_onnx" ]]; then
  "$work/build/consumer_onnx"
fi
if [[ -x "$work/build/consumer_mpi" ]]; then
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpiexec -n 2 --oversubscribe "$work/build/consumer_mpi"
fi
