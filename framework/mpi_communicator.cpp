#include "framework/mpi_communicator.hpp"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace bnlab {

namespace {

// Throws naming `call` and MPI's own description of `code` unless it is MPI_SUCCESS.
void check(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw std::runtime_error(std::string(call) + " failed: " + std::string(text, length));
}

int mpi_count(std::size_t count) {
    if (count > std::size_t(INT_MAX))
        throw std::invalid_argument("MPI: " + std::to_string(count) +
                                    " values in one collective, more than an int counts");
    return int(count);
}

// Open MPI's mpirun sets OMPI_COMM_WORLD_RANK; PMIx and PMI launchers (srun, MPICH's Hydra) set
// PMIX_RANK or PMI_RANK.
const char* rank_variable() {
    for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
        if (const char* value = std::getenv(name)) return value;
    return nullptr;
}

}  // namespace

bool started_by_mpirun() {
    return rank_variable() != nullptr;
}

int rank_from_environment() {
    const char* value = rank_variable();
    return value ? std::atoi(value) : 0;
}

MpiSession::MpiSession(int& argc, char**& argv) {
    check(MPI_Init(&argc, &argv), "MPI_Init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
    MPI_Finalize();
}

MpiCommunicator::MpiCommunicator() {
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
}

void MpiCommunicator::abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::abort();  // MPI_Abort does not return; this is for the compiler
}

void MpiCommunicator::allreduce_sum(float* values, std::size_t count) {
    check(MPI_Allreduce(MPI_IN_PLACE, values, mpi_count(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
}

void MpiCommunicator::allreduce_sum(double* values, std::size_t count) {
    check(
        MPI_Allreduce(MPI_IN_PLACE, values, mpi_count(count), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
        "MPI_Allreduce");
}

void MpiCommunicator::allgather(const double* values, std::size_t count, double* gathered) {
    check(MPI_Allgather(values, mpi_count(count), MPI_DOUBLE, gathered, mpi_count(count),
                        MPI_DOUBLE, MPI_COMM_WORLD),
          "MPI_Allgather");
}

void MpiCommunicator::broadcast(float* values, std::size_t count, int root) {
    check(MPI_Bcast(values, mpi_count(count), MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void MpiCommunicator::broadcast(double* values, std::size_t count, int root) {
    check(MPI_Bcast(values, mpi_count(count), MPI_DOUBLE, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void MpiCommunicator::broadcast(char* bytes, std::size_t count, int root) {
    check(MPI_Bcast(bytes, mpi_count(count), MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
}

}  // namespace bnlab
