#pragma once
// Data-parallel training (PyTorch's DistributedDataParallel): every process holds a replica of
// the model and trains on its own rows of each global batch. After backward one sum-allreduce of
// one flat buffer (every gradient, then the share's loss sum and correct count) leaves the global
// batch's gradient on every process, so every replica takes the same step. The loss of each
// share is divided by the global batch's rows (train_step), so the sum is the one-process
// gradient on the whole global batch, for any split.
//   MpiCommunicator world;                                    // bnlab::mpi
//   DataParallel parallel(world, model, /*global_batch=*/512);
//   parallel.broadcast_state();                               // rank 0's model everywhere
//   train_step(model, loss, sgd, share_inputs, share_labels, &parallel);
// fit() does all of this with FitOptions().communicator(&world).

#include <cstddef>
#include <string>
#include <vector>

#include "framework/communicator.hpp"
#include "framework/layer.hpp"
#include "framework/training.hpp"

namespace bnlab {

// Process `rank`'s rows of a global batch of `global_rows` rows split over `size` processes:
// consecutive runs, the first global_rows % size processes one row more.
BatchShare batch_share(std::size_t global_rows, int rank, int size);

// Collective: every process gives its error ("" when it has none); every process gets the
// error of the first process that has one, as "rank R: <error>", or "" when none has. When every
// process has an error (a bad option, the same on all), rank 0's comes without the prefix.
std::string first_error(Communicator& communicator, const std::string& error);
// Throws CollectiveError with first_error's message, on every process, unless it is "".
void throw_first_error(Communicator& communicator, const std::string& error);

// Runs `body` on every process and throws CollectiveError on every process when it threw on any
// (with that process's message); without a communicator it just runs it.
template <typename Body>
void on_every_process(Communicator* communicator, Body&& body) {
    if (!communicator) {
        body();
        return;
    }
    std::string error;
    try {
        body();
    } catch (const std::exception& thrown) {
        error = thrown.what();
        if (error.empty()) error = "an error without a message";
    }
    throw_first_error(*communicator, error);
}

template <typename T>
class BasicDataParallel {
  public:
    // Sets `model` up for this process's share of global batches of `global_batch` rows (see
    // BasicLayer::set_batch_share) and allocates the flat gradient buffer. Throws
    // std::invalid_argument when the global batch cannot give every process a row.
    BasicDataParallel(Communicator& communicator, BasicLayer<T>& model, std::size_t global_batch);

    const BatchShare& share() const { return share_; }

    // Collective: rank 0's parameters and buffers (BatchNorm's running statistics), to every
    // process, so that the replicas start identical.
    void broadcast_state();
    // Collective: rank 0's buffers. Without synchronized BatchNorm each process's running
    // statistics follow its own rows; PyTorch's DDP keeps rank 0's (broadcast_buffers), and so
    // does the trainer, before it evaluates or saves.
    void broadcast_buffers();

    // Collective, after backward: every process's parameter gradients and `local` (its share's
    // mean loss and correct rows) summed in one allreduce. Returns the global batch's mean loss
    // and correct rows. Allocates nothing.
    StepResult reduce_gradients(const StepResult& local);
    // Collective: the mean loss and accuracy over every process's `local_samples` evaluated.
    Evaluation reduce_evaluation(const Evaluation& local, std::size_t local_samples);

    // Seconds spent in reduce_gradients' allreduce so far (waiting for slower processes
    // included), for the scaling benchmark.
    double allreduce_seconds() const { return allreduce_seconds_; }
    // Values each reduce_gradients sends: every gradient, plus the loss and the correct count.
    std::size_t values_per_step() const { return flat_.size(); }

  private:
    Communicator& communicator_;
    std::vector<Parameter<T>> parameters_;
    std::vector<Buffer<T>> buffers_;
    BatchShare share_;
    std::vector<T> flat_;  // [every gradient..., loss over the share's rows, correct rows]
    double allreduce_seconds_ = 0.0;
};

using DataParallel = BasicDataParallel<float>;
extern template class BasicDataParallel<float>;
extern template class BasicDataParallel<double>;

}  // namespace bnlab
