#pragma once
// What a user adds to fit's loop without copying it out (Keras's callbacks, Lightning's hooks):
// a Callback is called at fixed points of training, in the order the callbacks were given,
// after fit's own (the learning-rate schedule, the log, the probe, the progress bar; callbacks.hpp)
// and before its checkpoints. Each hook gets the FitContext: the model, the optimizer, where
// training is, the run's record, and stop().
//   class PrintLr : public Callback {
//       std::string name() const override { return "PrintLr"; }
//       void on_epoch_end(FitContext& run, const EpochStats&) override {
//           std::printf("lr %g\n", run.optimizer.learning_rate());
//       }
//   };
//   fit(model, sgd, train, test, rng, FitOptions().callbacks({std::make_shared<PrintLr>()}));
// A callback that throws ends the run: the log's final line records its message (status
// "failed"), and fit rethrows it. A callback object may be given to several runs (each seed of a
// comparison): on_fit_start must reset whatever state it keeps.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/data.hpp"
#include "framework/experiment/run_log.hpp"
#include "framework/optimizer.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"

namespace bnlab {

class Callback;
class FitOptions;
struct RunResult;

// One training step, as on_batch_end sees it.
struct BatchEnd {
    int epoch = 0;
    long step = 0;            // optimizer steps since the start of training, this one counted
    std::size_t batch = 0;    // this epoch's steps so far, this one counted
    std::size_t batches = 0;  // steps an epoch takes
    double loss = 0.0;        // the batch's mean loss (before the update)
    double epoch_loss = 0.0;  // the mean of this epoch's batch losses so far
    std::size_t correct = 0;  // rows classified correctly in training mode
    std::size_t rows = 0;     // the batch's rows (the global batch's in data-parallel runs)
};

// A run in progress, as the callbacks see it. The loop owns it; callbacks read it, change the
// optimizer's learning rate or the model's weights where that is their job, add lines to the
// run's record with emit(), and ask the run to end with stop().
class FitContext {
  public:
    FitContext(Sequential& model, BasicOptimizer<float>& optimizer, const FitOptions& options,
               Rng& rng, nlohmann::ordered_json config, RunResult& result);

    Sequential& model;
    BasicOptimizer<float>& optimizer;
    const FitOptions& options;
    Rng& rng;
    // The run's configuration as the log's config line and the checkpoints record it.
    const nlohmann::ordered_json config;
    RunResult& result;     // the epochs (and probe points) so far
    double base_lr = 0.0;  // the optimizer's rate when fit started
    int epoch = 0;         // the epoch in progress (or just ended)
    long step = 0;         // optimizer steps since the start of training
    int first_epoch = 1;   // 1, or the epoch after a resumed checkpoint's
    // The epoch whose weights the model holds (its last, or the one BestWeights put back).
    int weights_epoch = 0;
    // Rank 0 of a data-parallel run, or the one process: the one that prints, logs and saves.
    bool speaks = true;
    // Epochs are judged on a validation set held out of the training set (val_loss, val_acc),
    // and the test set is measured once, at the end.
    bool has_validation = false;
    // The loss takes target values: the epochs' *_acc fields hold R².
    bool regression = false;
    // Set while fit runs: the loader's order, which a checkpoint keeps.
    const BatchLoader* batches = nullptr;

    // Every line of the run's record so far (config line first), which the JSONL log writes
    // and a checkpoint keeps so that a resumed run's log is whole.
    const std::vector<std::string>& log_lines() const { return log_lines_; }
    // Appends a line to the record and gives it to every callback's on_log_line.
    void emit(const nlohmann::ordered_json& line);

    // Ends the run at the end of the current epoch (a request from on_batch_end too: the epoch
    // is finished, evaluated and logged), cleanly: the epochs so far are kept and the final line
    // says which callback asked and why. The first request counts.
    void stop(const std::string& callback, const std::string& reason);
    const std::optional<StopRequest>& stop_request() const { return stop_request_; }

    // The callbacks' own state (Callback::state), keyed as checkpoints keep it.
    nlohmann::ordered_json callback_states() const;

  private:
    friend class FitLoop;
    std::vector<std::string> log_lines_;
    std::vector<Callback*> callbacks_;  // every callback of the run, fit's own first
    std::vector<std::string> keys_;     // each callback's key in callback_states()
    std::optional<StopRequest> stop_request_;
};

class Callback {
  public:
    virtual ~Callback() = default;
    // Names the callback in the log (a stop, an error) and in checkpoints.
    virtual std::string name() const = 0;

    // Before the first epoch (after a resumed checkpoint is loaded, before its state is given
    // back through restore_state).
    virtual void on_fit_start(FitContext&) {}
    // Before an epoch's first step; the learning-rate schedule sets the epoch's rate here.
    virtual void on_epoch_start(FitContext&) {}
    // After the gradients of a step are computed (and summed over the processes), before the
    // optimizer uses them: gradient clipping, gradient statistics.
    virtual void before_optimizer_step(FitContext&) {}
    // After a step: its loss and how many rows it got right.
    virtual void on_batch_end(FitContext&, const BatchEnd&) {}
    // After an epoch's evaluation, its line already in the record.
    virtual void on_epoch_end(FitContext&, const EpochStats&) {}
    // After the last epoch, or a stop, before the final line.
    virtual void on_fit_end(FitContext&) {}
    // Every line added to the run's record once it runs (epoch, probe, test and final lines);
    // the lines from before (the config line) are in FitContext::log_lines().
    virtual void on_log_line(FitContext&, const std::string& /*line*/) {}

    // The callback's own state, saved in every training checkpoint (null: none), and given back
    // when a run resumes from one.
    virtual nlohmann::ordered_json state() const { return nullptr; }
    virtual void restore_state(const nlohmann::ordered_json& /*state*/) {}
};

using Callbacks = std::vector<std::shared_ptr<Callback>>;

// A quantity of the epoch lines that callbacks can watch: "train_loss", "train_acc",
// "test_loss", "test_acc", "val_loss", "val_acc" ("val_" with a validation set, which is then
// judged instead of the test set); for a regression "_r2" and "_rmse" in place of "_acc".
struct Monitor {
    std::string name;
    bool higher_is_better = false;  // accuracies and R²; losses and RMSE are better lower
};

// Checks `name` against the quantities the run has; throws std::invalid_argument naming the
// ones there are.
Monitor monitor_named(const std::string& name, const FitContext& run);

// The monitored quantity of one epoch.
double monitored_value(const Monitor& monitor, const EpochStats& epoch);

}  // namespace bnlab
