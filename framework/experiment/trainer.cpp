// The training loop. fit() at the bottom is the loop itself: epochs, steps, callbacks,
// evaluation. FitLoop above it sets a run up (checks, the validation split, data-parallel shares,
// fit's own callbacks, a resumed state) and ends it (the final test, the final line).
#include "framework/experiment/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "framework/atomic_file.hpp"
#include "framework/blas_threads.hpp"
#include "framework/data_parallel.hpp"
#include "framework/experiment/callbacks.hpp"
#include "framework/experiment/probe.hpp"
#include "framework/experiment/run_record.hpp"
#include "framework/experiment/training_state.hpp"
#include "framework/training.hpp"

namespace bnlab {

namespace {

void check_options(const FitOptions& options, const Dataset& train, const Dataset& test) {
    if (train.size() == 0 || test.size() == 0)
        throw std::invalid_argument("training and test sets must both have samples");
    if (train.inputs.shape(1) != test.inputs.shape(1))
        throw std::invalid_argument(
            "training inputs have " + std::to_string(train.inputs.shape(1)) +
            " features but test inputs " + std::to_string(test.inputs.shape(1)));
    if (options.epochs() <= 0)
        throw std::invalid_argument("epochs must be positive, got " +
                                    std::to_string(options.epochs()));
    if (options.save_every() <= 0)
        throw std::invalid_argument("save_every must be positive, got " +
                                    std::to_string(options.save_every()));
    if (options.validation_fraction() != 0.0 &&
        !(options.validation_fraction() > 0.0 && options.validation_fraction() < 1.0))
        throw std::invalid_argument("the validation fraction must be in (0, 1), got " +
                                    number_string(options.validation_fraction()));
    for (const std::shared_ptr<Callback>& callback : options.callbacks())
        if (!callback) throw std::invalid_argument("a callback given to fit is null");
    if (options.probe() && options.probe_points() <= 0)
        throw std::invalid_argument("probe_points must be positive, got " +
                                    std::to_string(options.probe_points()));
    if (Communicator* communicator = options.communicator()) {
        const std::size_t processes = std::size_t(communicator->size());
        if (options.batch_size() < processes)
            throw std::invalid_argument(
                "batch " + std::to_string(options.batch_size()) + " is smaller than the " +
                std::to_string(processes) +
                " processes: each needs at least one row of every global batch");
        if (test.size() < processes)
            throw std::invalid_argument("the test set's " + std::to_string(test.size()) +
                                        " samples cannot be split over " +
                                        std::to_string(processes) + " processes");
        if (options.probe())
            throw std::invalid_argument(
                "the probe is not available in data-parallel training; leave it off");
    } else if (options.sync_batchnorm()) {
        throw std::invalid_argument(
            "synchronized BatchNorm needs data-parallel training (a communicator)");
    }
    // Only the process that writes checks (on a cluster the others may not share its disk).
    const bool writes = !options.communicator() || options.communicator()->rank() == 0;
    if (writes && !options.save().empty()) check_writable(options.save());
}

// The caller's configuration with fit's own fields set, as the log and checkpoints record it.
nlohmann::ordered_json run_config(const FitOptions& options, const Rng& rng, double base_lr) {
    nlohmann::ordered_json config =
        options.config().is_object() ? options.config() : nlohmann::ordered_json::object();
    config["lr"] = base_lr;
    config["schedule"] = options.schedule().text();
    config["batch"] = options.batch_size();
    config["epochs"] = options.epochs();
    config["seed"] = rng.seed();
    config["threads"] = options.threads();
    config["target"] = options.target();
    config["log"] =
        options.log().empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(options.log());
    config["probe"] = options.probe();
    config["probe_points"] = options.probe_points();
    // Only when used: the configurations (and resumable checkpoints) of runs without it stay.
    if (options.validation_fraction() > 0.0)
        config["validation_fraction"] = options.validation_fraction();
    if (const Communicator* communicator = options.communicator()) {
        config["world_size"] = communicator->size();
        config["sync_bn"] = options.sync_batchnorm();
    }
    return config;
}

// A run's seed gives its validation split, without drawing from the run's generator.
constexpr std::uint64_t kValidationSeedSalt = 0x76616c5f73706c74;  // "val_splt"

// The test set (or validation set) a process measures: its share in data-parallel runs.
Evaluation measure(Sequential& model, const Dataset& share, Loss& loss, DataParallel* parallel) {
    const Evaluation local = evaluate(model, share, 1000, loss);
    return parallel ? parallel->reduce_evaluation(local, share.size()) : local;
}

// A regression's targets' variance, pooled over the outputs: mean over outputs of the biased
// variance of each; R² = 1 - MSE / it. (Classification data: 0, not used.)
double target_variance(const Dataset& data) {
    if (!data.regression()) return 0.0;
    double total = 0.0;
    for (const Standardization& column : column_statistics(data.values))
        total += column.std * column.std;
    return total / double(data.values.shape(1));
}

// What the log's accuracy fields hold for a set: the accuracy, or for a regression R².
double score(const Evaluation& evaluation, bool regression, double variance) {
    return regression ? 1.0 - evaluation.loss / variance : evaluation.accuracy;
}

}  // namespace

// Sets up and ends a run; fit() below runs its epochs.
class FitLoop {
  public:
    FitLoop(Sequential& model, BasicOptimizer<float>& optimizer, const Dataset& train,
            const Dataset& test, Rng& rng, const FitOptions& options, RunResult& result)
        : options_(options),
          communicator_(options.communicator()),
          context(model, optimizer, options, rng,
                  run_config(options, rng, optimizer.learning_rate()), result),
          prefix_(options.name().empty() ? "" : options.name() + ": "),
          test_(&test) {
        context.speaks = !communicator_ || communicator_->rank() == 0;
        // Everything before the first step may fail on one process alone (a file it cannot
        // read): then every process throws that process's error rather than wait for it.
        on_every_process(communicator_, [&] { set_up(train); });
        // Every replica starts as rank 0's (a resumed one too: the processes read the same file).
        if (parallel) parallel->broadcast_state();
    }

    // on_fit_start (the log opens only once every process is ready: nothing is written for a
    // run that does not start), then the resumed callbacks' states.
    void start() {
        everywhere([&] {
            each([&](Callback& callback) { callback.on_fit_start(context); });
            for (std::size_t i = 0; i < context.callbacks_.size(); ++i)
                if (resumed_states_.contains(context.keys_[i]))
                    context.callbacks_[i]->restore_state(resumed_states_.at(context.keys_[i]));
        });
        run_start_ = Clock::now();
    }

    // Calls `hook` on every callback, fit's own first; a user's callback's exception is named
    // after it. everywhere() makes an exception on one process one on every process.
    template <typename Hook>
    void each(Hook&& hook) {
        for (std::size_t i = 0; i < context.callbacks_.size(); ++i) {
            Callback& callback = *context.callbacks_[i];
            if (i < own_.size() || context.callbacks_[i] == saver_.get()) {
                hook(callback);
                continue;
            }
            try {
                hook(callback);
            } catch (const std::invalid_argument& error) {
                throw std::invalid_argument("callback " + callback.name() + ": " + error.what());
            } catch (const std::exception& error) {
                throw std::runtime_error("callback " + callback.name() + ": " + error.what());
            }
        }
    }
    template <typename Body>
    void everywhere(Body&& body) {
        on_every_process(communicator_, body);
    }
    // The hooks of every step: agreeing on errors costs a collective per step, which only the
    // user's callbacks need (fit's own per-step ones, the progress bar, cannot fail on one
    // process alone; the probe is not available in data-parallel runs).
    template <typename Hook>
    void each_in_step(Hook&& hook) {
        if (options_.callbacks().empty())
            each(hook);
        else
            everywhere([&] { each(hook); });
    }

    // The epoch's statistics from its steps and an evaluation of the judged set.
    EpochStats evaluate_epoch(double loss_sum, std::size_t correct, std::size_t samples,
                              std::size_t steps, double train_seconds) {
        const Clock::time_point eval_start = Clock::now();
        // Without synchronized BatchNorm each replica's running statistics followed its own
        // rows; rank 0's are kept, as PyTorch's DDP does (broadcast_buffers).
        if (parallel && !options_.sync_batchnorm()) parallel->broadcast_buffers();
        const Evaluation judged = measure(context.model, *judged_set_, *loss, parallel.get());
        const bool regression = context.regression;
        EpochStats stats;
        stats.epoch = context.epoch;
        stats.step = context.step;
        stats.regression = regression;
        stats.train_loss = loss_sum / double(steps);
        stats.train_acc = score({stats.train_loss, double(correct) / double(samples)}, regression,
                                train_variance_);
        const double judged_score = score(judged, regression, judged_variance_);
        if (context.has_validation) {
            stats.val_loss = judged.loss;
            stats.val_acc = judged_score;
            stats.test_loss = stats.test_acc = std::nan("");
        } else {
            stats.test_loss = judged.loss;
            stats.test_acc = judged_score;
        }
        stats.lr = context.optimizer.learning_rate();
        stats.seconds = train_seconds;
        stats.samples_per_s = double(samples) / train_seconds;
        stats.eval_seconds = seconds_since(eval_start);
        return stats;
    }

    void diverge(const std::string& what) {
        divergence_ = Divergence{context.epoch, context.step};
        if (context.speaks)
            spdlog::error(
                "{}diverged: the {} is not a finite number at epoch {}, step {} (lr {}); "
                "the run stops here",
                prefix_, what, context.epoch, context.step,
                number_string(context.optimizer.learning_rate()));
    }
    bool diverged() const { return divergence_.has_value(); }
    bool stopped() const { return diverged() || context.stop_request(); }

    // on_fit_end, the test of a validated run, the final line and the console's summary.
    void finish() {
        everywhere([&] { each([&](Callback& callback) { callback.on_fit_end(context); }); });
        RunOutcome outcome = outcome_now();
        if (context.has_validation && !context.result.epochs.empty() && !diverged()) {
            if (parallel && !options_.sync_batchnorm()) parallel->broadcast_buffers();
            const Evaluation tested = measure(context.model, *test_set_, *loss, parallel.get());
            const double test_score = score(tested, context.regression, test_variance_);
            outcome.test = FinalTest{context.weights_epoch, tested.loss, test_score};
            nlohmann::ordered_json line = {{"type", "test"}, {"epoch", context.weights_epoch}};
            add_scores(line, "test", tested.loss, test_score, context.regression);
            everywhere([&] { context.emit(line); });
        }
        context.result.outcome = outcome;
        everywhere([&] { context.emit(final_line(outcome, options_.target(), run_seconds())); });
        if (context.speaks) print_summary(outcome);
    }

    // A callback (or the log) threw: the final line says so, as far as it can still be written.
    void fail(const std::string& error) {
        RunOutcome outcome = outcome_now();
        outcome.error = error;
        context.result.outcome = outcome;
        try {
            context.emit(final_line(outcome, options_.target(), run_seconds()));
        } catch (const std::exception&) {
            // The log itself failed; the exception being rethrown says why.
        }
        if (context.speaks) spdlog::error("{}the run failed: {}", prefix_, error);
    }

    const FitOptions& options_;
    Communicator* const communicator_;
    FitContext context;
    std::unique_ptr<BatchLoader> batches;
    std::unique_ptr<DataParallel> parallel;
    std::shared_ptr<Loss> loss;  // FitOptions::loss, or softmax cross-entropy

  private:
    void set_up(const Dataset& train) {
        check_options(options_, train, *test_);
        loss = options_.loss() ? options_.loss() : std::make_shared<SoftmaxCrossEntropy>();
        context.regression = loss->regression();
        if (train.regression() != context.regression)
            throw std::invalid_argument("the data has " +
                                        (train.regression()
                                             ? std::to_string(train.values.shape(1)) +
                                                   " target value columns (a regression)"
                                             : std::string("class labels (a classification)")) +
                                        ", but the loss " + loss->name() + " takes " +
                                        (context.regression ? "target values" : "class labels"));
        set_threads(options_.threads());
        Sequential& model = context.model;
        // Layers that draw while training (Dropout) draw from the run's generator, which the
        // checkpoint keeps: a resumed run draws what the uninterrupted one would.
        model.set_generator(context.rng);
        const Dataset* train_rows = &train;
        const Dataset* judged = test_;
        if (options_.validation_fraction() > 0.0) {
            split_ = split_validation(train, options_.validation_fraction(),
                                      context.rng.seed() ^ kValidationSeedSalt);
            train_rows = &split_.train;
            judged = &split_.validation;
            context.has_validation = true;
        }
        batches = std::make_unique<BatchLoader>(*train_rows, options_.batch_size(), &context.rng,
                                                /*drop_last=*/true);
        context.batches = batches.get();
        if (communicator_) {
            parallel = std::make_unique<DataParallel>(*communicator_, model, options_.batch_size());
            batches->take_share(parallel->share());
            model.synchronize(options_.sync_batchnorm() ? communicator_ : nullptr);
            test_share_ = share_of(*test_, "the test set");
            test_set_ = &test_share_;
            judged_set_ = test_set_;
            if (context.has_validation) {
                judged_share_ = share_of(*judged, "the validation set");
                judged_set_ = &judged_share_;
            }
        } else {
            // A model trained data-parallel before is one process's again.
            model.set_batch_share(BatchShare{});
            model.synchronize(nullptr);
            judged_set_ = judged;
            test_set_ = test_;
        }
        train_variance_ = target_variance(*train_rows);
        judged_variance_ = target_variance(*judged);
        test_variance_ = target_variance(*test_);
        // fit's own callbacks, then the user's. Built before anything is written: a model the
        // probe cannot watch is an error with no log.
        own_.push_back(std::make_shared<LearningRateSchedule>(options_.schedule()));
        if (!options_.log().empty()) own_.push_back(std::make_shared<JsonlLog>(options_.log()));
        if (options_.probe())
            own_.push_back(std::make_shared<ProbeRecorder>(model, *test_, options_.probe_points()));
        if (options_.progress_bar()) own_.push_back(std::make_shared<ProgressBarDisplay>());
        own_.push_back(std::make_shared<ConsoleReport>());
        // Checkpoints key fit's own callbacks' states by name, the user's by position and name.
        for (const std::shared_ptr<Callback>& callback : own_) {
            context.callbacks_.push_back(callback.get());
            context.keys_.push_back(callback->name());
        }
        for (std::size_t i = 0; i < options_.callbacks().size(); ++i) {
            context.callbacks_.push_back(options_.callbacks()[i].get());
            context.keys_.push_back("user." + std::to_string(i) + "." +
                                    options_.callbacks()[i]->name());
        }
        // Checkpoints come last, so that they keep every callback's state at the epoch's end.
        if (!options_.save().empty()) {
            saver_ = std::make_shared<CheckpointSaver>(options_.save(), options_.save_every());
            context.callbacks_.push_back(saver_.get());
            context.keys_.push_back(saver_->name());
        }
        if (!options_.resume().empty()) {
            ResumedState resumed = resume_training_state(options_.resume(), context.config, model,
                                                         context.optimizer, context.rng, *batches);
            context.step = resumed.step;
            context.first_epoch = resumed.epoch + 1;
            context.weights_epoch = resumed.epoch;
            context.log_lines_ = std::move(resumed.log_lines);
            context.result.epochs = std::move(resumed.epochs);
            resumed_states_ = std::move(resumed.callback_states);
            context.log_lines_.push_back(nlohmann::ordered_json{
                {"type", "resumed"},
                {"from", options_.resume()},
                {"epoch", resumed.epoch},
                {"step", resumed.step},
                {"at", time_now("%Y-%m-%dT%H:%M:%SZ",
                                true)}}.dump());
            if (context.speaks)
                spdlog::info("{}resumed from {} after epoch {} (step {})", prefix_,
                             options_.resume(), resumed.epoch, resumed.step);
        } else {
            context.log_lines_.push_back(
                config_line(context.config, model, options_.threads(), options_.record()).dump());
        }
    }

    Dataset share_of(const Dataset& set, const char* what) {
        const std::size_t processes = std::size_t(communicator_->size());
        if (set.size() < processes)
            throw std::invalid_argument(std::string(what) + "'s " + std::to_string(set.size()) +
                                        " samples cannot be split over " +
                                        std::to_string(processes) + " processes");
        const BatchShare rows =
            batch_share(set.size(), communicator_->rank(), communicator_->size());
        return slice(set, rows.begin, rows.end);
    }

    RunOutcome outcome_now() const {
        // The model's outputs are the classes; chance is guessing one of them (not known, 0, for
        // a model of element-wise layers only, which has no width of its own).
        const std::optional<std::size_t> classes = context.model.out_features();
        RunOutcome outcome =
            outcome_of(context.result.epochs, options_.target(), divergence_,
                       classes && !context.regression ? 1.0 / double(*classes) : 0.0);
        outcome.stopped = context.stop_request();
        return outcome;
    }

    double run_seconds() const { return seconds_since(run_start_); }

    void print_summary(const RunOutcome& outcome) const {
        const std::string target =
            "target " + number_string(options_.target()) + " " +
            (outcome.epochs_to_target
                 ? "reached at epoch " + std::to_string(*outcome.epochs_to_target)
                 : std::string("not reached"));
        const std::string judged =
            std::string(outcome.judged_on_validation ? "validation" : "test") +
            (context.regression ? " R²" : " accuracy");
        if (context.result.epochs.empty()) {
            spdlog::info("{}diverged before the first epoch ended; {}", prefix_, target);
            return;
        }
        const std::string status =
            diverged() ? "diverged"
            : outcome.stopped
                ? "stopped by " + outcome.stopped->callback + ": " + outcome.stopped->reason
            : outcome.stuck ? "stuck at chance (" + number_string(outcome.chance) + ")"
                            : "done";
        spdlog::info("{}{}; best {} {:.4f} (epoch {}); {}", prefix_, status, judged,
                     outcome.best_test_acc, outcome.best_epoch, target);
        if (outcome.test)
            spdlog::info(
                "{}test set, measured once with the weights of epoch {}: loss {:.4f} "
                "{} {:.4f}",
                prefix_, outcome.test->epoch, outcome.test->loss, context.regression ? "R²" : "acc",
                outcome.test->acc);
    }

    std::string prefix_;
    const Dataset* test_;
    ValidationSplit<float> split_;  // with a validation set
    // The set the epochs are judged on and the test set, as this process measures them: the
    // whole sets, or in a data-parallel run this process's rows of them (the shares).
    const Dataset* judged_set_ = nullptr;
    const Dataset* test_set_ = nullptr;
    Dataset judged_share_, test_share_;
    // A regression's targets' variances (R² = 1 - MSE / variance).
    double train_variance_ = 0.0, judged_variance_ = 0.0, test_variance_ = 0.0;
    Callbacks own_;                    // fit's own callbacks before the user's
    std::shared_ptr<Callback> saver_;  // and the checkpoints, after them
    nlohmann::ordered_json resumed_states_ = nlohmann::ordered_json::object();
    std::optional<Divergence> divergence_;
    Clock::time_point run_start_ = Clock::now();
};

RunResult fit(Sequential& model, BasicOptimizer<float>& optimizer, const Dataset& train,
              const Dataset& test, Rng& rng, const FitOptions& options) {
    RunResult result;
    FitLoop run(model, optimizer, train, test, rng, options, result);
    FitContext& context = run.context;
    BatchLoader& batches = *run.batches;
    run.start();
    try {
        for (int epoch = context.first_epoch; epoch <= options.epochs() && !run.stopped();
             ++epoch) {
            context.epoch = epoch;
            model.train();
            batches.start_epoch();
            run.everywhere([&] { run.each([&](Callback& c) { c.on_epoch_start(context); }); });
            const Clock::time_point epoch_start = Clock::now();
            double loss_sum = 0.0, callback_seconds = 0.0;
            std::size_t correct = 0, samples = 0, steps = 0;
            while (batches.next()) {
                ++context.step;
                const StepResult step =
                    compute_gradients(model, *run.loss, optimizer, batches.inputs(),
                                      batches.targets(), run.parallel.get());
                run.each_in_step([&](Callback& c) { c.before_optimizer_step(context); });
                optimizer.step();
                if (!std::isfinite(step.loss)) {
                    run.diverge("training loss");
                    break;
                }
                const std::size_t rows =
                    run.parallel ? run.parallel->share().global_rows : batches.rows();
                loss_sum += step.loss;
                correct += step.correct;
                samples += rows;
                ++steps;
                // The callbacks' time (the probe's) is not training time.
                const Clock::time_point callbacks_start = Clock::now();
                const BatchEnd end{epoch,        context.step,
                                   steps,        batches.batches_per_epoch(),
                                   step.loss,    loss_sum / double(steps),
                                   step.correct, rows};
                run.each_in_step([&](Callback& c) { c.on_batch_end(context, end); });
                callback_seconds += seconds_since(callbacks_start);
            }
            if (run.diverged()) break;
            const EpochStats stats = run.evaluate_epoch(
                loss_sum, correct, samples, steps, seconds_since(epoch_start) - callback_seconds);
            if (!std::isfinite(stats.val_loss.value_or(stats.test_loss))) {
                run.diverge(context.has_validation ? "validation loss" : "test loss");
                break;
            }
            result.epochs.push_back(stats);
            context.weights_epoch = epoch;
            run.everywhere([&] {
                context.emit(to_json(stats));
                run.each([&](Callback& c) { c.on_epoch_end(context, stats); });
            });
        }
        run.finish();
    } catch (const std::exception& error) {
        run.fail(error.what());
        throw;
    }
    return result;
}

}  // namespace bnlab
