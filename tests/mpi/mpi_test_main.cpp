#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "framework/blas_kernels.hpp"
#include "framework/mpi_communicator.hpp"
#include "mpi_test.hpp"

namespace bnlab {

Communicator& world() {
    static MpiCommunicator communicator;
    return communicator;
}

}  // namespace bnlab

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    bnlab::MpiSession mpi(argc, argv);
    doctest::Context context(argc, argv);
    if (bnlab::world().rank() != 0) context.setOption("minimal", true);
    const int failed = context.run() != 0 ? 1 : 0;
    double any = failed;
    bnlab::world().allreduce_sum(&any, 1);
    return any > 0 ? 1 : 0;
}
