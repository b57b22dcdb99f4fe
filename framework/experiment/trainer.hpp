#pragma once
// The training loop, for any model: fit() trains a Sequential (nested ones too) with an optimizer
// on a training set, measures a test set after every epoch, and keeps the record runs are
// compared by: a JSONL log (run_log.hpp) that `curves` reads, checkpoints it resumes from bit for
// bit, the probe, a learning-rate schedule and a progress bar. `train`, `compare_bn` and user code
// all train here.
//   Rng rng(1);
//   Sequential model;  model.add<Dense>(784, 100, rng);  …
//   SGD sgd(model.parameters(), SGDOptions(0.1));
//   fit(model, sgd, train, test, rng, FitOptions().epochs(10).batch_size(60).log("run.jsonl"));

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/communicator.hpp"
#include "framework/data.hpp"
#include "framework/experiment/callback.hpp"
#include "framework/experiment/run_log.hpp"
#include "framework/loss.hpp"
#include "framework/lr_schedule.hpp"
#include "framework/optimizer.hpp"
#include "framework/option.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"

namespace bnlab {

// (The option macro below needs one-word types.)
using CommunicatorPointer = Communicator*;
using LossPointer = std::shared_ptr<Loss>;

class FitOptions {
    BNLAB_OPTION(FitOptions, int, epochs, 10)
    // Rows per training step; the last partial batch of each epoch is dropped.
    BNLAB_OPTION(FitOptions, std::size_t, batch_size, 60)
    // The test accuracy whose first epoch the log's final line reports.
    BNLAB_OPTION(FitOptions, double, target, 0.85)
    // Prefixes the console lines ("bn=on seed=2: epoch …").
    BNLAB_OPTION(FitOptions, std::string, name, "")
    // The JSONL log's path; none when empty.
    BNLAB_OPTION(FitOptions, std::string, log, "")
    // The run's configuration as the caller describes it (the layers' widths, say): the log's
    // config line records it as "config", with fit's own fields (epochs, batch, seed, lr,
    // schedule, …) added; `curves` tells variants apart by it, and a resumed run must have the
    // same one (but for epochs, threads, log and data).
    BNLAB_OPTION(FitOptions, nlohmann::ordered_json, config, nlohmann::ordered_json::object())
    // Further fields of the config line that are not the configuration (the command line, say).
    BNLAB_OPTION(FitOptions, nlohmann::ordered_json, record, nlohmann::ordered_json::object())
    // A checkpoint written (atomically) after every save_every epochs and after the last.
    BNLAB_OPTION(FitOptions, std::string, save, "")
    BNLAB_OPTION(FitOptions, int, save_every, 1)
    // Continue the run saved in this checkpoint (by fit's `save`) with the model and optimizer
    // given, which must be built as the saved ones were.
    BNLAB_OPTION(FitOptions, std::string, resume, "")
    // The covariate-shift probe (probe.hpp), probe_points times an epoch.
    BNLAB_OPTION(FitOptions, bool, probe, false)
    BNLAB_OPTION(FitOptions, int, probe_points, 10)
    // A bar redrawn on stdout during each epoch (for terminals).
    BNLAB_OPTION(FitOptions, bool, progress_bar, false)
    // The matrix products' threads (set_threads); 0 takes OpenBLAS's default count.
    BNLAB_OPTION(FitOptions, int, threads, 0)
    // The learning rate per epoch, from the optimizer's rate when fit starts.
    BNLAB_OPTION(FitOptions, LrSchedule, schedule, LrSchedule())
    // Data-parallel training (data_parallel.hpp) over these processes, every one calling fit
    // with the same options and data: each trains on its share of every batch of batch_size
    // rows (the global batch), the model starts as rank 0's, the gradients are summed before
    // every step, the test set is split between the processes, and only rank 0 prints, logs and
    // writes checkpoints. An error on one process (a file it cannot read) is thrown on every
    // process as a CollectiveError with that process's message. The log records the world size.
    BNLAB_OPTION(FitOptions, CommunicatorPointer, communicator, nullptr)
    // With a communicator: BatchNorm's statistics over the global batch (PyTorch's
    // SyncBatchNorm) rather than each process's share (PyTorch's DDP default).
    BNLAB_OPTION(FitOptions, bool, sync_batchnorm, false)
    // Holds out this fraction of the training set (drawn with a generator seeded by the run's
    // seed, not drawing from `rng`): the epochs are judged on it (val_loss, val_acc) and the
    // test set is measured once, at the end, with the weights the run ends with. 0: none.
    BNLAB_OPTION(FitOptions, double, validation_fraction, 0.0)
    // The loss (loss.hpp): softmax cross-entropy when null. MeanSquaredError trains a regression
    // on data with target values (Dataset::values); its epochs report R² and the RMSE.
    BNLAB_OPTION(FitOptions, LossPointer, loss, nullptr)
    // The user's callbacks (callback.hpp), called after fit's own, in this order.
    BNLAB_OPTION(FitOptions, Callbacks, callbacks, Callbacks())
};

struct RunResult {
    std::vector<EpochStats> epochs;
    std::vector<ProbePoint> probes;  // with the probe on
    RunOutcome outcome;
};

// Trains `model` with `optimizer` (built on the model's parameters) and softmax cross-entropy on
// `train` in shuffled batches drawn from `rng`, measuring `test` (or the validation set) in eval
// mode after every epoch. A non-finite loss ends the run at that step: the outcome records
// where, and the epochs before it are kept. A callback's stop() ends it after the epoch.
// Throws std::invalid_argument for bad options or data, before writing anything, and
// std::runtime_error when the log or a checkpoint cannot be written or resumed from. An
// exception from a callback ends the run (the log's final line records it) and is rethrown.
RunResult fit(Sequential& model, BasicOptimizer<float>& optimizer, const Dataset& train,
              const Dataset& test, Rng& rng, const FitOptions& options = {});

}  // namespace bnlab
