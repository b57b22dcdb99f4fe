#pragma once
// The callbacks bnlab ships. fit assembles the first six from FitOptions, in this order, before
// the user's: the learning-rate schedule, the JSONL log, the probe, the progress bar and the
// console's epoch lines; and the checkpoints after the user's (so that a checkpoint keeps every
// callback's state as of the epoch's end). The last three are for users to add:
//   fit(model, sgd, train, test, rng,
//       FitOptions().validation_fraction(0.1).callbacks({
//           std::make_shared<EarlyStopping>(EarlyStoppingOptions().monitor("val_loss")),
//           std::make_shared<BestWeights>(BestWeightsOptions().monitor("val_acc")),
//           std::make_shared<ReduceLrOnPlateau>(ReduceLrOnPlateauOptions().patience(2))}));

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "framework/experiment/callback.hpp"
#include "framework/experiment/probe.hpp"
#include "framework/experiment/run_record.hpp"
#include "framework/lr_schedule.hpp"
#include "framework/option.hpp"

namespace bnlab {

// Sets each epoch's learning rate from the rate fit started with (FitOptions::schedule).
class LearningRateSchedule : public Callback {
  public:
    explicit LearningRateSchedule(LrSchedule schedule) : schedule_(std::move(schedule)) {}
    std::string name() const override { return "LearningRateSchedule"; }
    void on_epoch_start(FitContext& run) override;

  private:
    LrSchedule schedule_;
};

// Writes the run's record to a JSONL file (FitOptions::log; run_log.hpp), a line as it comes.
// The file is created when the first epoch starts, with the lines before it (a resumed run's
// earlier log too): a run that a callback's on_fit_start refuses leaves no log.
class JsonlLog : public Callback {
  public:
    explicit JsonlLog(std::string path) : path_(std::move(path)) {}
    std::string name() const override { return "JsonlLog"; }
    void on_fit_start(FitContext& run) override;
    void on_epoch_start(FitContext& run) override;
    void on_fit_end(FitContext& run) override;
    void on_log_line(FitContext& run, const std::string& line) override;

  private:
    void open(FitContext& run);
    std::string path_;
    std::unique_ptr<RunLogWriter> writer_;
};

// A training checkpoint (training_state.hpp) every `every` epochs and after the last, and after
// the last epoch of a run a callback stopped; written atomically, by the process that speaks.
class CheckpointSaver : public Callback {
  public:
    CheckpointSaver(std::string path, int every) : path_(std::move(path)), every_(every) {}
    std::string name() const override { return "CheckpointSaver"; }
    void on_fit_start(FitContext& run) override;
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override;
    void on_fit_end(FitContext& run) override;

  private:
    void save(FitContext& run, int epoch);
    std::string path_;
    int every_;
    int saved_epoch_ = 0;
};

// The covariate-shift probe (probe.hpp) `points` times an epoch; its points go to the result
// and the record. Built before anything is written: a model it cannot watch is an error then.
class ProbeRecorder : public Callback {
  public:
    ProbeRecorder(Sequential& model, const Dataset& probe_data, int points)
        : probe_(model, probe_data), points_(points) {}
    std::string name() const override { return "ProbeRecorder"; }
    void on_fit_start(FitContext& run) override;
    void on_batch_end(FitContext& run, const BatchEnd& batch) override;

  private:
    Probe probe_;
    int points_;
    std::size_t every_ = 1;  // steps between probe points
};

// FitOptions::progress_bar: a bar redrawn on stdout during each epoch.
class ProgressBarDisplay : public Callback {
  public:
    std::string name() const override { return "ProgressBarDisplay"; }
    void on_epoch_start(FitContext& run) override;
    void on_batch_end(FitContext& run, const BatchEnd& batch) override;
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override;
    void on_fit_end(FitContext& run) override;

  private:
    std::optional<ProgressBar> bar_;
};

// One console line per epoch ("name: epoch  3/10  train loss … acc …  test loss … acc …").
class ConsoleReport : public Callback {
  public:
    std::string name() const override { return "ConsoleReport"; }
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override;
};

class EarlyStoppingOptions {
    // The quantity watched (callback.hpp's Monitor); accuracies are better higher.
    BNLAB_OPTION(EarlyStoppingOptions, std::string, monitor, "val_loss")
    // Epochs without improvement before the run stops (PyTorch Lightning's patience).
    BNLAB_OPTION(EarlyStoppingOptions, int, patience, 3)
    // An improvement is a change by more than this, in the better direction.
    BNLAB_OPTION(EarlyStoppingOptions, double, min_delta, 0.0)
};

// Stops the run when the monitored quantity has not improved by more than min_delta for
// `patience` epochs in a row (Keras's and Lightning's EarlyStopping).
class EarlyStopping : public Callback {
  public:
    explicit EarlyStopping(EarlyStoppingOptions options = {});
    std::string name() const override { return "EarlyStopping"; }
    void on_fit_start(FitContext& run) override;
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override;
    nlohmann::ordered_json state() const override;
    void restore_state(const nlohmann::ordered_json& state) override;

  private:
    EarlyStoppingOptions options_;
    Monitor monitor_;
    double best_ = 0.0;
    int best_epoch_ = 0;  // 0: no epoch yet
    int waited_ = 0;      // epochs since the best one
};

class BestWeightsOptions {
    BNLAB_OPTION(BestWeightsOptions, std::string, monitor, "val_acc")
    // Puts the best epoch's weights back into the model when the run ends.
    BNLAB_OPTION(BestWeightsOptions, bool, restore, true)
    // Also saves the best epoch's model (save_model, atomically) here; empty: not saved. A run
    // resumed from a training checkpoint reads its best weights back from this file.
    BNLAB_OPTION(BestWeightsOptions, std::string, save, "")
};

// Keeps the weights (parameters, BatchNorm's running statistics and batch counts) of the epoch
// with the best monitored quantity (Keras's restore_best_weights, Lightning's
// ModelCheckpoint(save_top_k=1)). The copy is made without allocating after the first.
class BestWeights : public Callback {
  public:
    explicit BestWeights(BestWeightsOptions options = {});
    std::string name() const override { return "BestWeights"; }
    void on_fit_start(FitContext& run) override;
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override;
    void on_fit_end(FitContext& run) override;
    nlohmann::ordered_json state() const override;
    void restore_state(const nlohmann::ordered_json& state) override;

    int best_epoch() const { return best_epoch_; }
    double best_value() const { return best_; }

  private:
    void copy_from(Sequential& model);
    BestWeightsOptions options_;
    Monitor monitor_;
    double best_ = 0.0;
    int best_epoch_ = 0;
    std::vector<std::vector<float>> values_;  // every parameter's and buffer's values
    std::vector<std::int64_t> counts_;        // every BatchNorm's num_batches_tracked
    bool have_copy_ = false;
    bool reload_ = false;  // resumed: the copy is in options_.save()
};

class ReduceLrOnPlateauOptions {
    BNLAB_OPTION(ReduceLrOnPlateauOptions, std::string, monitor, "val_loss")
    // PyTorch's defaults: the rate times 0.1 after 10 epochs without a relative improvement of
    // 1e-4, no cooldown, no floor.
    BNLAB_OPTION(ReduceLrOnPlateauOptions, double, factor, 0.1)
    BNLAB_OPTION(ReduceLrOnPlateauOptions, int, patience, 10)
    BNLAB_OPTION(ReduceLrOnPlateauOptions, double, threshold, 1e-4)
    BNLAB_OPTION(ReduceLrOnPlateauOptions, int, cooldown, 0)
    BNLAB_OPTION(ReduceLrOnPlateauOptions, double, min_lr, 0.0)
};

// torch.optim.lr_scheduler.ReduceLROnPlateau (threshold_mode "rel"): when the monitored
// quantity has not improved for more than `patience` epochs, the rate is multiplied by `factor`
// (not below min_lr) from the next epoch on, on top of the schedule's rate.
class ReduceLrOnPlateau : public Callback {
  public:
    explicit ReduceLrOnPlateau(ReduceLrOnPlateauOptions options = {});
    std::string name() const override { return "ReduceLrOnPlateau"; }
    void on_fit_start(FitContext& run) override;
    void on_epoch_start(FitContext& run) override;
    void on_epoch_end(FitContext& run, const EpochStats& epoch) override;
    nlohmann::ordered_json state() const override;
    void restore_state(const nlohmann::ordered_json& state) override;

    double scale() const { return scale_; }

  private:
    ReduceLrOnPlateauOptions options_;
    Monitor monitor_;
    double best_ = 0.0;
    bool has_best_ = false;
    int bad_epochs_ = 0;
    int cooldown_left_ = 0;
    double scale_ = 1.0;  // the product of the reductions so far
};

}  // namespace bnlab
