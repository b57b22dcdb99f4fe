// The training loop. Read top to bottom: checks, the log's first lines (or the resumed state),
// then per epoch the steps (with the probe and the progress bar), the evaluation, the epoch's log
// line and checkpoint, and at the end the final line.
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
    if (const Communicator* communicator = options.communicator()) {
        config["world_size"] = communicator->size();
        config["sync_bn"] = options.sync_batchnorm();
    }
    return config;
}

}  // namespace

RunResult fit(Sequential& model, BasicOptimizer<float>& optimizer, const Dataset& train,
              const Dataset& test, Rng& rng, const FitOptions& options) {
    Communicator* const communicator = options.communicator();
    // Rank 0 of a data-parallel run (or the one process) prints, logs and saves.
    const bool speaks = !communicator || communicator->rank() == 0;
    const std::string prefix = options.name().empty() ? "" : options.name() + ": ";
    const double base_lr = optimizer.learning_rate();
    const nlohmann::ordered_json config = run_config(options, rng, base_lr);
    SoftmaxCrossEntropy loss;
    std::unique_ptr<BatchLoader> batches;
    std::unique_ptr<DataParallel> parallel;
    Dataset test_share;  // a data-parallel run's rows of the test set
    std::unique_ptr<Probe> probe;
    std::size_t probe_every = 0;  // steps between probe points
    RunResult result;
    long step = 0;
    int first_epoch = 1;
    // Every log line so far, which a checkpoint keeps so that a resumed run's log is whole.
    std::vector<std::string> lines;
    std::unique_ptr<RunLogWriter> log;
    // Everything before the first step may fail on one process alone (a file it cannot read):
    // then every process throws that process's error rather than wait for it.
    on_every_process(communicator, [&] {
        check_options(options, train, test);
        set_threads(options.threads());
        // Layers that draw while training (Dropout) draw from the run's generator, which the
        // checkpoint keeps: a resumed run draws what the uninterrupted one would.
        model.set_generator(rng);
        batches = std::make_unique<BatchLoader>(train, options.batch_size(), &rng,
                                                /*drop_last=*/true);
        if (communicator) {
            parallel = std::make_unique<DataParallel>(*communicator, model, options.batch_size());
            batches->take_share(parallel->share());
            model.synchronize(options.sync_batchnorm() ? communicator : nullptr);
            const BatchShare rows =
                batch_share(test.size(), communicator->rank(), communicator->size());
            test_share = slice(test, rows.begin, rows.end);
        } else {
            // A model trained data-parallel before is one process's again.
            model.set_batch_share(BatchShare{});
            model.synchronize(nullptr);
        }
        // Before the log: a model the probe cannot watch is an error with nothing written.
        if (options.probe()) {
            probe = std::make_unique<Probe>(model, test);
            probe_every = std::max<std::size_t>(
                1, batches->batches_per_epoch() / std::size_t(options.probe_points()));
        }
        if (!options.resume().empty()) {
            ResumedState resumed =
                resume_training_state(options.resume(), config, model, optimizer, rng, *batches);
            step = resumed.step;
            first_epoch = resumed.epoch + 1;
            lines = std::move(resumed.log_lines);
            result.epochs = std::move(resumed.epochs);
            lines.push_back(nlohmann::ordered_json{{"type", "resumed"},
                                                   {"from", options.resume()},
                                                   {"epoch", resumed.epoch},
                                                   {"step", resumed.step},
                                                   {"at", time_now("%Y-%m-%dT%H:%M:%SZ", true)}}
                                .dump());
            if (speaks)
                spdlog::info("{}resumed from {} after epoch {} (step {})", prefix, options.resume(),
                             resumed.epoch, resumed.step);
        } else {
            lines.push_back(config_line(config, model, options.threads(), options.record()).dump());
        }
    });
    // Only once every process is ready: nothing is written for a run that does not start.
    on_every_process(communicator, [&] {
        if (speaks && !options.log().empty()) {
            log = std::make_unique<RunLogWriter>(options.log());
            for (const std::string& line : lines)
                log->write(line);
        }
    });
    // Every replica starts as rank 0's (a resumed one too: the processes read the same file).
    if (parallel) parallel->broadcast_state();
    auto emit = [&](const nlohmann::ordered_json& line) {
        lines.push_back(line.dump());
        if (log) log->write(lines.back());
    };

    std::optional<Divergence> divergence;
    const Clock::time_point run_start = Clock::now();
    for (int epoch = first_epoch; epoch <= options.epochs() && !divergence; ++epoch) {
        const Clock::time_point epoch_start = Clock::now();
        optimizer.set_learning_rate(options.schedule().lr(base_lr, epoch));
        model.train();
        batches->start_epoch();
        double loss_sum = 0.0, probe_seconds = 0.0;
        std::size_t correct = 0, samples = 0, steps = 0;
        {
            ProgressBar bar(speaks && options.progress_bar(), epoch, options.epochs(),
                            batches->batches_per_epoch());
            while (batches->next()) {
                ++step;
                const StepResult outcome = train_step(model, loss, optimizer, batches->inputs(),
                                                      batches->labels(), parallel.get());
                if (!std::isfinite(outcome.loss)) {
                    divergence = Divergence{epoch, step};
                    break;
                }
                loss_sum += outcome.loss;
                correct += outcome.correct;
                samples += parallel ? parallel->share().global_rows : batches->labels().size();
                ++steps;
                bar.update(steps, loss_sum / double(steps));
                if (probe && steps % probe_every == 0) {
                    const Clock::time_point probe_start = Clock::now();
                    for (const ProbePoint& point : probe->record(epoch, step)) {
                        result.probes.push_back(point);
                        emit(to_json(point));
                    }
                    probe_seconds += seconds_since(probe_start);
                }
            }
        }
        if (divergence) {
            if (speaks)
                spdlog::error(
                    "{}diverged: the training loss is not a finite number at epoch {}, "
                    "step {} (lr {}); the run stops here",
                    prefix, epoch, step, number_string(optimizer.learning_rate()));
            break;
        }
        const double train_seconds = seconds_since(epoch_start) - probe_seconds;
        const Clock::time_point eval_start = Clock::now();
        // Without synchronized BatchNorm each replica's running statistics followed its own
        // rows; rank 0's are kept, as PyTorch's DDP does (broadcast_buffers).
        if (parallel && !options.sync_batchnorm()) parallel->broadcast_buffers();
        const Evaluation tested =
            parallel
                ? parallel->reduce_evaluation(evaluate(model, test_share, 1000), test_share.size())
                : evaluate(model, test, 1000);
        if (!std::isfinite(tested.loss)) {
            divergence = Divergence{epoch, step};
            if (speaks)
                spdlog::error(
                    "{}diverged: the test loss is not a finite number after epoch {}, "
                    "step {}; the run stops here",
                    prefix, epoch, step);
            break;
        }
        EpochStats stats;
        stats.epoch = epoch;
        stats.step = step;
        stats.train_loss = loss_sum / double(steps);
        stats.train_acc = double(correct) / double(samples);
        stats.test_loss = tested.loss;
        stats.test_acc = tested.accuracy;
        stats.lr = optimizer.learning_rate();
        stats.seconds = train_seconds;
        stats.samples_per_s = double(samples) / train_seconds;
        stats.eval_seconds = seconds_since(eval_start);
        result.epochs.push_back(stats);
        // The log and the checkpoint are rank 0's: its failure to write ends every process.
        on_every_process(communicator, [&] {
            emit(to_json(stats));
            if (speaks && !options.save().empty() &&
                (epoch % options.save_every() == 0 || epoch == options.epochs()))
                save_training_state(options.save(), config, model, optimizer, rng, *batches, epoch,
                                    step, lines);
        });
        if (speaks)
            spdlog::info(
                "{}epoch {:>2}/{}  train loss {:.4f} acc {:.4f}  test loss {:.4f} acc {:.4f}"
                "  {:.2f} s ({:.0f} samples/s)",
                prefix, epoch, options.epochs(), stats.train_loss, stats.train_acc, stats.test_loss,
                stats.test_acc, stats.seconds, stats.samples_per_s);
    }

    // The model's outputs are the classes; chance is guessing one of them (not known, 0, for a
    // model of element-wise layers only, which has no width of its own).
    const std::optional<std::size_t> classes = model.out_features();
    result.outcome = outcome_of(result.epochs, options.target(), divergence,
                                classes ? 1.0 / double(*classes) : 0.0);
    on_every_process(communicator, [&] {
        emit(final_line(result.outcome, options.target(), seconds_since(run_start)));
    });
    if (!speaks) return result;
    const RunOutcome& outcome = result.outcome;
    const std::string target =
        "target " + number_string(options.target()) + " " +
        (outcome.epochs_to_target ? "reached at epoch " + std::to_string(*outcome.epochs_to_target)
                                  : std::string("not reached"));
    if (result.epochs.empty())
        spdlog::info("{}diverged before the first epoch ended; {}", prefix, target);
    else
        spdlog::info("{}{}; best test accuracy {:.4f} (epoch {}); {}", prefix,
                     divergence      ? "diverged"
                     : outcome.stuck ? "stuck at chance (" + number_string(outcome.chance) + ")"
                                     : "done",
                     outcome.best_test_acc, outcome.best_epoch, target);
    return result;
}

}  // namespace bnlab
