#pragma once
// What data-parallel training needs from the processes that train together: how many there are,
// which one this is, and the collective operations. Layers and the trainer see only this
// interface; MpiCommunicator (framework/mpi_communicator.hpp, built when MPI is found)
// implements it over MPI. Every collective must be called by every process, in the same order.

#include <cstddef>
#include <stdexcept>

namespace bnlab {

class Communicator {
  public:
    virtual ~Communicator() = default;

    virtual int rank() const = 0;
    virtual int size() const = 0;

    // In place: every process ends with the element-wise sum over all processes.
    virtual void allreduce_sum(float* values, std::size_t count) = 0;
    virtual void allreduce_sum(double* values, std::size_t count) = 0;
    // Every process's `count` values, in rank order: `gathered` holds size() * count values.
    virtual void allgather(const double* values, std::size_t count, double* gathered) = 0;
    // Process `root`'s values, to every process.
    virtual void broadcast(float* values, std::size_t count, int root) = 0;
    virtual void broadcast(double* values, std::size_t count, int root) = 0;
    virtual void broadcast(char* bytes, std::size_t count, int root) = 0;
};

// An error every process throws together, after agreeing on it (first_error in
// data_parallel.hpp): no process is left waiting in a collective, so a program may end
// normally. Any other exception during data-parallel training may leave the others waiting, and
// the program must abort them all (MPI_Abort).
class CollectiveError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace bnlab
