#pragma once
// The MPI tests (bnlab_mpi_tests), run by CTest under mpiexec with 2 and 3 processes. Every
// process runs every test case in the same order, so the collectives match; checks are CHECKs,
// never REQUIREs, so that a failing process does not leave the others waiting. Only the first
// process reports what passed; every process reports what failed, and every process exits with
// failure when any one failed (mpi_test_main.cpp).

#include "framework/communicator.hpp"

namespace bnlab {

// MPI_COMM_WORLD.
Communicator& world();

}  // namespace bnlab
