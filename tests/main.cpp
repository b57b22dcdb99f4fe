#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "framework/blas_kernels.hpp"

// The tests run on the kernels the programs run on (a restart on a CPU OpenBLAS does not know).
int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);
    return doctest::Context(argc, argv).run();
}
