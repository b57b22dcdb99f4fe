#include "framework/experiment/trainer.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <zlib.h>
#include <CLI/Version.hpp>
#include <xtensor-blas/xblas_config.hpp>
#include <xtensor/xtensor_config.hpp>

#include "framework/atomic_file.hpp"
#include "framework/blas_threads.hpp"
#include "framework/checkpoint.hpp"
#include "framework/experiment/json_fields.hpp"
#include "framework/experiment/probe.hpp"
#include "framework/training.hpp"
#include "models/fold_batchnorm.hpp"

namespace bnlab {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string host_name() {
    char name[256] = {};
    return gethostname(name, sizeof name - 1) == 0 ? name : "";
}

// A bar redrawn in place on stdout: "  epoch 3/10 [#########-----------]  450/1000  loss 0.4321".
class ProgressBar {
  public:
    ProgressBar(bool enabled, int epoch, int epochs, std::size_t steps)
        : enabled_(enabled),
          epoch_(epoch),
          epochs_(epochs),
          steps_(steps),
          redraw_every_(std::max<std::size_t>(1, steps / 100)) {}

    void update(std::size_t done, double mean_loss) {
        if (!enabled_ || (done % redraw_every_ != 0 && done != steps_)) return;
        constexpr std::size_t width = 30;
        const std::size_t filled = steps_ == 0 ? width : width * done / steps_;
        std::printf("\r  epoch %d/%d [%s%s] %zu/%zu  loss %.4f", epoch_, epochs_,
                    std::string(filled, '#').c_str(), std::string(width - filled, '-').c_str(),
                    done, steps_, mean_loss);
        std::fflush(stdout);
    }
    // Clears the bar's line so that the next log line starts clean.
    ~ProgressBar() {
        if (enabled_) std::printf("\r\033[K"), std::fflush(stdout);
    }

  private:
    bool enabled_;
    int epoch_, epochs_;
    std::size_t steps_, redraw_every_;
};

std::unique_ptr<BasicOptimizer<float>> make_optimizer(const TrainConfig& config,
                                                      Sequential& model) {
    if (config.optimizer == "sgd")
        return std::make_unique<SGD>(
            model.parameters(),
            SGDOptions(config.lr).momentum(config.momentum).weight_decay(config.weight_decay));
    if (config.optimizer == "adam")
        return std::make_unique<Adam>(model.parameters(),
                                      AdamOptions(config.lr).weight_decay(config.weight_decay));
    throw std::invalid_argument("unknown optimizer '" + config.optimizer +
                                "' (expected sgd or adam)");
}

void check_data(const Dataset& train, const Dataset& test) {
    if (train.size() == 0 || test.size() == 0)
        throw std::invalid_argument("training and test sets must both have samples");
    if (train.inputs.shape(1) != test.inputs.shape(1))
        throw std::invalid_argument(
            "training inputs have " + std::to_string(train.inputs.shape(1)) +
            " features but test inputs " + std::to_string(test.inputs.shape(1)));
}

std::size_t class_count(const Dataset& train, const Dataset& test) {
    int largest = 1;
    for (const Labels* labels : {&train.labels, &test.labels})
        for (int label : *labels)
            largest = std::max(largest, label);
    return static_cast<std::size_t>(largest) + 1;
}

struct ResumedState {
    int epoch = 0;  // the last epoch the checkpoint completed
    long step = 0;
    std::vector<std::string> lines;  // the log up to then
    std::vector<EpochStats> epochs;  // its epoch lines
};

// The batch loader's order as u64s, and back.
std::string order_bytes(const std::vector<std::size_t>& order) {
    std::string bytes(order.size() * sizeof(std::uint64_t), '\0');
    for (std::size_t i = 0; i < order.size(); ++i) {
        const std::uint64_t value = order[i];
        std::memcpy(bytes.data() + i * sizeof value, &value, sizeof value);
    }
    return bytes;
}

std::vector<std::size_t> order_from(const std::string& bytes) {
    std::vector<std::size_t> order(bytes.size() / sizeof(std::uint64_t));
    for (std::size_t i = 0; i < order.size(); ++i) {
        std::uint64_t value = 0;
        std::memcpy(&value, bytes.data() + i * sizeof value, sizeof value);
        order[i] = std::size_t(value);
    }
    return order;
}

// Everything a resumed run needs to take the same steps: the model and optimizer (in the
// checkpoint's own sections), the generator, the loader's order, the counters and the log.
void save_training_checkpoint(const TrainConfig& config, Sequential& model,
                              BasicOptimizer<float>& optimizer, const Rng& rng,
                              const BatchLoader& batches, int epoch, long step,
                              const std::vector<std::string>& lines) {
    const nlohmann::ordered_json state = {{"config", to_json(config)},
                                          {"epoch", epoch},
                                          {"step", step},
                                          {"rng", rng.state()},
                                          {"log", lines}};
    save_checkpoint(config.save_path, model, &optimizer,
                    {{"TRAN", state.dump()}, {"ORDR", order_bytes(batches.order())}});
}

// The TRAN section's JSON; throws if the checkpoint has no TRAN and ORDR sections.
nlohmann::ordered_json training_state(const Checkpoint& checkpoint, const std::string& path) {
    const std::string* training = checkpoint.section("TRAN");
    if (!training || !checkpoint.section("ORDR"))
        throw std::runtime_error(path +
                                 ": not a training checkpoint (no TRAN and ORDR sections; "
                                 "train --save writes those)");
    try {
        return nlohmann::ordered_json::parse(*training);
    } catch (const nlohmann::ordered_json::exception& error) {
        throw std::runtime_error(path + ": section TRAN: " + error.what());
    }
}

ResumedState resume_from(const TrainConfig& config, Sequential& model,
                         BasicOptimizer<float>& optimizer, Rng& rng, BatchLoader& batches) {
    const std::string& path = config.resume_path;
    const Checkpoint checkpoint = Checkpoint::read(path);
    nlohmann::ordered_json state = training_state(checkpoint, path);
    const std::string* order = checkpoint.section("ORDR");
    ResumedState resumed;
    try {
        // The run must be the same one; it may run longer, on other threads, or log elsewhere.
        nlohmann::ordered_json saved = state.at("config"), now = to_json(config);
        for (const char* free_field : {"epochs", "threads", "log", "data"}) {
            saved.erase(free_field);
            now.erase(free_field);
        }
        for (const auto& item : saved.items())
            if (!now.contains(item.key()) || now.at(item.key()) != item.value())
                throw std::runtime_error(
                    "saved by another configuration: " + item.key() + " is " + item.value().dump() +
                    " there, " +
                    (now.contains(item.key()) ? now.at(item.key()).dump() : "missing") + " here");
        resumed.epoch = integer_at<int>(state, "epoch");
        resumed.step = integer_at<long>(state, "step");
        resumed.lines = state.at("log").get<std::vector<std::string>>();
        for (const std::string& text : resumed.lines) {
            const nlohmann::ordered_json line = nlohmann::ordered_json::parse(text);
            if (line.at("type") == "epoch") resumed.epochs.push_back(epoch_from_json(line));
        }
    } catch (const nlohmann::ordered_json::exception& error) {
        throw std::runtime_error(path + ": section TRAN: " + error.what());
    } catch (const std::runtime_error& error) {
        throw std::runtime_error(path + ": " + error.what());
    }
    checkpoint.load_into(model);
    checkpoint.load_optimizer(optimizer);
    try {
        rng.restore(state.at("rng").get<std::string>());
        batches.restore_order(order_from(*order));
    } catch (const std::exception& error) {
        throw std::runtime_error(path + ": " + error.what());
    }
    return resumed;
}

}  // namespace

TrainConfig saved_config(const std::string& checkpoint_path) {
    const nlohmann::ordered_json state =
        training_state(Checkpoint::read(checkpoint_path), checkpoint_path);
    try {
        return config_from_json(state.at("config"));
    } catch (const std::exception& error) {
        throw std::runtime_error(checkpoint_path + ": section TRAN: " + error.what());
    }
}

std::string time_now(const char* format, bool utc) {
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
    if (utc)
        gmtime_r(&now, &parts);
    else
        localtime_r(&now, &parts);
    char text[64];
    return std::strftime(text, sizeof text, format, &parts) > 0 ? text : "";
}

std::string command_line(int argc, const char* const* argv) {
    std::string command;
    for (int i = 0; i < argc; ++i)
        command += (i ? " " : "") + std::string(argv[i]);
    return command;
}

PreparedData load_data(const TrainConfig& config) {
    const Clock::time_point start = Clock::now();
    PreparedData data{load_fashion_mnist(config.data_dir), nullptr};
    const double load_seconds = seconds_since(start);
    nlohmann::ordered_json standardization;  // null when pixels are only scaled to [0, 1]
    if (config.standardize) {
        const Standardization applied = standardize(data.sets.train, data.sets.test);
        standardization = {{"mean", applied.mean}, {"std", applied.std}};
    }
    data.description = {{"dir", config.data_dir},
                        {"train_samples", data.sets.train.size()},
                        {"test_samples", data.sets.test.size()},
                        {"features", data.sets.train.inputs.shape(1)},
                        {"scaling", "pixel / 255"},
                        {"standardization", standardization},
                        {"load_seconds", load_seconds}};
    return data;
}

nlohmann::ordered_json library_versions() {
    auto version = [](int major, int minor, int patch) {
        return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    };
    return {
        {"bnlab", BNLAB_VERSION},
        {"xtensor", version(XTENSOR_VERSION_MAJOR, XTENSOR_VERSION_MINOR, XTENSOR_VERSION_PATCH)},
        {"xtensor-blas", version(XTENSOR_BLAS_VERSION_MAJOR, XTENSOR_BLAS_VERSION_MINOR,
                                 XTENSOR_BLAS_VERSION_PATCH)},
        {"openblas", blas_config()},
        {"spdlog", version(SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH)},
        {"nlohmann_json", version(NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                  NLOHMANN_JSON_VERSION_PATCH)},
        {"cli11", CLI11_VERSION},
        {"zlib", ZLIB_VERSION},
        {"compiler", std::string("g++ ") + __VERSION__}};
}

nlohmann::ordered_json config_line(const TrainConfig& config, Sequential& model,
                                   const RunContext& context) {
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < model.size(); ++i)
        layers.push_back(model[i].describe());
    nlohmann::ordered_json line = {{"type", "config"},
                                   {"config", to_json(config)},
                                   {"model",
                                    {{"layers", layers},
                                     {"parameters", model.parameter_count()},
                                     {"summary", model.summary()}}},
                                   {"threads",
                                    {{"requested", config.threads},
                                     {"bnlab", thread_count()},
                                     {"openblas", openblas_threads()},
                                     {"openblas_core", blas_core_name()},
                                     {"hardware", sysconf(_SC_NPROCESSORS_ONLN)}}},
                                   {"versions", library_versions()},
                                   {"started", time_now("%Y-%m-%dT%H:%M:%SZ", true)},
                                   {"host", host_name()}};
    if (context.extra.is_object()) line.update(context.extra);
    return line;
}

RunResult train_mlp(const TrainConfig& config, const Dataset& train, const Dataset& test,
                    const RunContext& context) {
    check_data(train, test);
    if (config.epochs <= 0)
        throw std::invalid_argument("epochs must be positive, got " +
                                    std::to_string(config.epochs));
    if (!config.save_path.empty()) check_writable(config.save_path);
    if (!config.export_folded_path.empty()) check_writable(config.export_folded_path);
    set_threads(config.threads);
    Rng rng(config.seed);
    Sequential model = mlp(train.inputs.shape(1), config.hidden, class_count(train, test),
                           config.activation, config.batchnorm, rng);
    std::unique_ptr<BasicOptimizer<float>> optimizer = make_optimizer(config, model);
    SoftmaxCrossEntropy loss;
    BatchLoader batches(train, config.batch, &rng, /*drop_last=*/true);
    const std::string prefix = context.name.empty() ? "" : context.name + ": ";

    RunResult result;
    long step = 0;
    int first_epoch = 1;
    // Every log line so far, which a checkpoint keeps so that a resumed run's log is whole.
    std::vector<std::string> lines;
    if (!config.resume_path.empty()) {
        const ResumedState resumed = resume_from(config, model, *optimizer, rng, batches);
        step = resumed.step;
        first_epoch = resumed.epoch + 1;
        lines = resumed.lines;
        result.epochs = resumed.epochs;
        const nlohmann::ordered_json resumed_line = {{"type", "resumed"},
                                                     {"from", config.resume_path},
                                                     {"epoch", resumed.epoch},
                                                     {"step", resumed.step},
                                                     {"at", time_now("%Y-%m-%dT%H:%M:%SZ", true)}};
        lines.push_back(resumed_line.dump());
        spdlog::info("{}resumed from {} after epoch {} (step {})", prefix, config.resume_path,
                     resumed.epoch, resumed.step);
    } else {
        lines.push_back(config_line(config, model, context).dump());
    }
    std::unique_ptr<RunLogWriter> log;
    if (!config.log_path.empty()) {
        log = std::make_unique<RunLogWriter>(config.log_path);
        for (const std::string& line : lines)
            log->write(line);
    }
    auto emit = [&](const nlohmann::ordered_json& line) {
        lines.push_back(line.dump());
        if (log) log->write(lines.back());
    };

    std::unique_ptr<Probe> probe;
    std::size_t probe_every = 0;  // steps between probe points
    if (config.probe) {
        probe = std::make_unique<Probe>(model, test);
        probe_every = std::max<std::size_t>(
            1, batches.batches_per_epoch() / static_cast<std::size_t>(config.probe_points));
    }

    std::optional<Divergence> divergence;
    const Clock::time_point run_start = Clock::now();
    for (int epoch = first_epoch; epoch <= config.epochs && !divergence; ++epoch) {
        const Clock::time_point epoch_start = Clock::now();
        model.train();
        batches.start_epoch();
        double loss_sum = 0.0, probe_seconds = 0.0;
        std::size_t correct = 0, samples = 0, steps = 0;
        {
            ProgressBar bar(context.progress_bar, epoch, config.epochs,
                            batches.batches_per_epoch());
            while (batches.next()) {
                ++step;
                const StepResult outcome =
                    train_step(model, loss, *optimizer, batches.inputs(), batches.labels());
                if (!std::isfinite(outcome.loss)) {
                    divergence = Divergence{epoch, step};
                    break;
                }
                loss_sum += outcome.loss;
                correct += outcome.correct;
                samples += batches.labels().size();
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
            spdlog::error(
                "{}diverged: the training loss is not a finite number at epoch {}, "
                "step {} (lr {}); the run stops here",
                prefix, epoch, step, number_string(optimizer->learning_rate()));
            break;
        }
        const double train_seconds = seconds_since(epoch_start) - probe_seconds;
        const Clock::time_point eval_start = Clock::now();
        const Evaluation tested = evaluate(model, test, 1000);
        if (!std::isfinite(tested.loss)) {
            divergence = Divergence{epoch, step};
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
        stats.lr = optimizer->learning_rate();
        stats.seconds = train_seconds;
        stats.samples_per_s = double(samples) / train_seconds;
        stats.eval_seconds = seconds_since(eval_start);
        result.epochs.push_back(stats);
        emit(to_json(stats));
        if (!config.save_path.empty() && (epoch % config.save_every == 0 || epoch == config.epochs))
            save_training_checkpoint(config, model, *optimizer, rng, batches, epoch, step, lines);
        spdlog::info(
            "{}epoch {:>2}/{}  train loss {:.4f} acc {:.4f}  test loss {:.4f} acc {:.4f}"
            "  {:.2f} s ({:.0f} samples/s)",
            prefix, epoch, config.epochs, stats.train_loss, stats.train_acc, stats.test_loss,
            stats.test_acc, stats.seconds, stats.samples_per_s);
    }
    result.outcome = outcome_of(result.epochs, config.target, divergence);
    emit(final_line(result.outcome, config.target, seconds_since(run_start)));
    const RunOutcome& outcome = result.outcome;
    const std::string target =
        "target " + number_string(config.target) + " " +
        (outcome.epochs_to_target ? "reached at epoch " + std::to_string(*outcome.epochs_to_target)
                                  : std::string("not reached"));
    if (result.epochs.empty())
        spdlog::info("{}diverged before the first epoch ended; {}", prefix, target);
    else
        spdlog::info("{}{}; best test accuracy {:.4f} (epoch {}); {}", prefix,
                     divergence ? "diverged" : "done", outcome.best_test_acc, outcome.best_epoch,
                     target);
    if (!config.export_folded_path.empty()) {
        if (divergence) {
            spdlog::warn("{}no folded model written to {}: the weights are not finite", prefix,
                         config.export_folded_path);
        } else {
            Sequential folded = fold_batchnorm(model);
            save_model(config.export_folded_path, folded);
            spdlog::info("{}folded model ({} layers, BatchNorm merged into Dense) written to {}",
                         prefix, folded.size(), config.export_folded_path);
        }
    }
    return result;
}

}  // namespace bnlab
