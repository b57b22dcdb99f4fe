// Data-parallel training in a user's program, run under mpiexec: fit over MPI_COMM_WORLD with
// synchronized BatchNorm; every process ends with the same model.
#include <cstdio>

#include <framework/bnlab.hpp>
#include <framework/experiment/trainer.hpp>
#include <framework/mpi_communicator.hpp>

int main(int argc, char** argv) {
    bnlab::select_blas_kernels(argv);  // first: it may start the program again
    using namespace bnlab;
    MpiSession mpi(argc, argv);
    MpiCommunicator world;
    Rng rng(1);  // the same seed on every process: the same data, model and shuffles
    Dataset data = make_blobs(256, 6, 3, 1.0, rng);
    Sequential model;
    model.add<Dense>(6, 16, rng);
    model.add<BatchNorm>(16);
    model.add<ReLU>();
    model.add<Dense>(16, 3, rng);
    SGD optimizer(model.parameters(), SGDOptions(0.1).momentum(0.9));
    const RunResult fitted = fit(
        model, optimizer, data, data, rng,
        FitOptions().epochs(3).batch_size(32).threads(1).communicator(&world).sync_batchnorm(true));
    if (world.rank() == 0)
        std::printf("consumer_mpi: %d processes, last epoch's test accuracy %.4f\n", world.size(),
                    fitted.epochs.back().test_acc);
    return fitted.epochs.back().test_acc > 0.5 ? 0 : 1;
}
