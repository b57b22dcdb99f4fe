#!/usr/bin/env bash
# Installs the Debian packages bnlab builds, tests and runs with, when any is missing (as root, or
# with sudo). Only these and their hard dependencies (Depends, Pre-Depends) are installed: a
# package that is only a Recommends of another is not, so each one the build reads is named here
# (scripts/check-header-packages.sh fails the tests when one is not).
# Usage: install-deps.sh [EXTRA_PACKAGE…]   (scripts/fuzz.sh adds clang, bench/run.sh PyTorch)
#        install-deps.sh --list             prints the list, one package a line, and installs nothing
set -euo pipefail

packages=(
  g++ cmake make git
  libxtensor-dev libxtensor-blas-dev libopenblas-dev  # tensors and BLAS
  libxsimd-dev                                        # SIMD kernels (only a Recommends of xtensor)
  libspdlog-dev libcli11-dev                          # console logging, flags
  gnuplot-nox                                         # plots of training curves
  zlib1g-dev dataset-fashion-mnist                    # reading Fashion-MNIST, and the data
  doctest-dev nlohmann-json3-dev                      # tests and their golden data
  libopenmpi-dev openmpi-bin                          # data-parallel training and its tests
  libonnx-dev libprotobuf-dev                         # ONNX export (protobuf: not a Depends)
  libopencv-dnn-dev                                   # the export's tests run graphs in OpenCV
  doxygen                                             # the API reference (scripts/api-docs.sh)
)

if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi
packages+=("$@")

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "bnlab: installing missing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "bnlab: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}"
