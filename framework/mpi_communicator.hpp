#pragma once
// Communicator over MPI (Open MPI from Debian: libopenmpi-dev). Part of bnlab::mpi, which is
// built when CMake finds MPI (option BNLAB_MPI).
//   MpiSession mpi(argc, argv);          // MPI_Init ... MPI_Finalize
//   MpiCommunicator world;               // MPI_COMM_WORLD

#include "framework/communicator.hpp"

namespace bnlab {

// Whether this process was started by mpirun/mpiexec (its environment names a rank), which a
// program can ask before MPI_Init.
bool started_by_mpirun();
// The rank mpirun gave this process, from its environment; 0 when not started by mpirun.
int rank_from_environment();

// Initializes MPI for the program's lifetime, and finalizes it at the end. Errors in MPI calls
// are returned, not fatal, so that each becomes an exception naming the call.
class MpiSession {
  public:
    MpiSession(int& argc, char**& argv);
    ~MpiSession();
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
};

// MPI_COMM_WORLD. Throws std::runtime_error naming the MPI call that failed.
class MpiCommunicator : public Communicator {
  public:
    MpiCommunicator();

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void allreduce_sum(float* values, std::size_t count) override;
    void allreduce_sum(double* values, std::size_t count) override;
    void allgather(const double* values, std::size_t count, double* gathered) override;
    void broadcast(float* values, std::size_t count, int root) override;
    void broadcast(double* values, std::size_t count, int root) override;
    void broadcast(char* bytes, std::size_t count, int root) override;

    // Ends every process of the world with exit code `code` (MPI_Abort): for an error on one
    // process that the others, waiting in a collective, cannot learn of.
    [[noreturn]] void abort(int code);

  private:
    int rank_ = 0;
    int size_ = 1;
};

}  // namespace bnlab
