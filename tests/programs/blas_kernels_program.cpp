// The program tests/programs/check_blas_kernels.sh runs: what select_blas_kernels does to a
// process, seen from outside. Prints the core OpenBLAS runs and the one that matches the CPU.
//   blas_kernels_program [--no-select]   (--no-select: as a user program that does not call it)
#include <cstdio>
#include <cstring>

#include "framework/blas_kernels.hpp"
#include "framework/blas_threads.hpp"

int main(int argc, char** argv) {
    const bool select = !(argc > 1 && std::strcmp(argv[1], "--no-select") == 0);
    if (select) bnlab::select_blas_kernels(argv);
    bnlab::thread_count();  // bnlab's first use of OpenBLAS, where a program that did not select
                            // the kernels is warned
    std::printf("core=%s matching=%s\n", bnlab::blas_core_name().c_str(),
                bnlab::matching_blas_core(bnlab::cpu_info()).c_str());
}
