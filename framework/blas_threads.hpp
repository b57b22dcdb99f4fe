#pragma once
// OpenBLAS's thread pool and build, which decide how fast every matrix product runs: set from
// `--threads`, and recorded in logs and benchmarks so that figures can be compared.

#include <string>

namespace bnlab {

// Uses `threads` OpenBLAS threads for every later matrix product; 0 keeps OpenBLAS's default
// (the OPENBLAS_NUM_THREADS environment variable, else one per core). Throws when negative.
void set_blas_threads(int threads);
int blas_threads();
// The kernel family OpenBLAS runs ("Haswell", "SkylakeX", …; OPENBLAS_CORETYPE overrides it).
std::string blas_core_name();
// OpenBLAS's build description ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64").
std::string blas_config();

}  // namespace bnlab
