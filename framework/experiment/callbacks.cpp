#include "framework/experiment/callbacks.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "framework/atomic_file.hpp"
#include "framework/checkpoint.hpp"
#include "framework/experiment/json_fields.hpp"
#include "framework/experiment/trainer.hpp"
#include "framework/experiment/training_state.hpp"
#include "layers/batch_norm.hpp"

namespace bnlab {

namespace {

// Better than `best` by more than `min_delta` in the monitor's direction; any number is
// better than no best yet, and NaN never is.
bool improves(const Monitor& monitor, double value, bool has_best, double best, double min_delta) {
    if (std::isnan(value)) return false;
    if (!has_best) return true;
    return monitor.higher_is_better ? value > best + min_delta : value < best - min_delta;
}

std::string prefix_of(const FitContext& run) {
    return run.options.name().empty() ? "" : run.options.name() + ": ";
}

}  // namespace

void LearningRateSchedule::on_epoch_start(FitContext& run) {
    run.optimizer.set_learning_rate(schedule_.lr(run.base_lr, run.epoch));
}

void JsonlLog::on_fit_start(FitContext&) {
    writer_.reset();
}

void JsonlLog::open(FitContext& run) {
    if (writer_ || !run.speaks) return;
    writer_ = std::make_unique<RunLogWriter>(path_);
    for (const std::string& line : run.log_lines())
        writer_->write(line);
}

void JsonlLog::on_epoch_start(FitContext& run) {
    open(run);
}

// A resumed run with no epochs left has none to start.
void JsonlLog::on_fit_end(FitContext& run) {
    open(run);
}

void JsonlLog::on_log_line(FitContext&, const std::string& line) {
    if (writer_) writer_->write(line);
}

void CheckpointSaver::on_fit_start(FitContext& run) {
    saved_epoch_ = run.first_epoch - 1;
}

void CheckpointSaver::save(FitContext& run, int epoch) {
    if (run.speaks)
        save_training_state(path_, run.config, run.model, run.optimizer, run.rng, *run.batches,
                            epoch, run.step, run.log_lines(), run.callback_states());
    saved_epoch_ = epoch;
}

void CheckpointSaver::on_epoch_end(FitContext& run, const EpochStats& epoch) {
    if (epoch.epoch % every_ == 0 || epoch.epoch == run.options.epochs()) save(run, epoch.epoch);
}

void CheckpointSaver::on_fit_end(FitContext& run) {
    // A stopped run's last epoch is saved too (a diverged one's weights are not worth keeping).
    if (run.stop_request() && !run.result.epochs.empty() &&
        run.result.epochs.back().epoch != saved_epoch_)
        save(run, run.result.epochs.back().epoch);
}

void ProbeRecorder::on_fit_start(FitContext& run) {
    every_ = std::max<std::size_t>(1, run.batches->batches_per_epoch() / std::size_t(points_));
}

void ProbeRecorder::on_batch_end(FitContext& run, const BatchEnd& batch) {
    if (batch.batch % every_ != 0) return;
    for (const ProbePoint& point : probe_.record(batch.epoch, batch.step)) {
        run.result.probes.push_back(point);
        run.emit(to_json(point));
    }
}

void ProgressBarDisplay::on_epoch_start(FitContext& run) {
    bar_.reset();
    if (run.speaks)
        bar_.emplace(true, run.epoch, run.options.epochs(), run.batches->batches_per_epoch());
}

void ProgressBarDisplay::on_batch_end(FitContext&, const BatchEnd& batch) {
    if (bar_) bar_->update(batch.batch, batch.epoch_loss);
}

void ProgressBarDisplay::on_epoch_end(FitContext&, const EpochStats&) {
    bar_.reset();
}

void ProgressBarDisplay::on_fit_end(FitContext&) {
    bar_.reset();
}

void ConsoleReport::on_epoch_end(FitContext& run, const EpochStats& stats) {
    if (!run.speaks) return;
    const bool val = stats.val_acc.has_value();
    const char* score = stats.regression ? "R²" : "acc";
    spdlog::info(
        "{}epoch {:>2}/{}  train loss {:.4f} {} {:.4f}  {} loss {:.4f} {} {:.4f}"
        "  {:.2f} s ({:.0f} samples/s)",
        prefix_of(run), stats.epoch, run.options.epochs(), stats.train_loss, score, stats.train_acc,
        val ? "val" : "test", val ? stats.val_loss.value_or(0.0) : stats.test_loss, score,
        judged_acc(stats), stats.seconds, stats.samples_per_s);
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
    if (options_.patience() < 1)
        throw std::invalid_argument("EarlyStopping: patience must be at least 1, got " +
                                    std::to_string(options_.patience()));
    if (!(options_.min_delta() >= 0.0))
        throw std::invalid_argument("EarlyStopping: min_delta must be >= 0, got " +
                                    number_string(options_.min_delta()));
}

void EarlyStopping::on_fit_start(FitContext& run) {
    monitor_ = monitor_named(options_.monitor(), run);
    best_epoch_ = 0;
    waited_ = 0;
}

void EarlyStopping::on_epoch_end(FitContext& run, const EpochStats& epoch) {
    const double value = monitored_value(monitor_, epoch);
    if (improves(monitor_, value, best_epoch_ > 0, best_, options_.min_delta())) {
        best_ = value;
        best_epoch_ = epoch.epoch;
        waited_ = 0;
        return;
    }
    if (++waited_ < options_.patience()) return;
    run.stop(name(),
             monitor_.name + " did not improve by more than " +
                 number_string(options_.min_delta()) + " for " +
                 std::to_string(options_.patience()) + " epochs (best " +
                 (best_epoch_ ? number_string(best_) + " at epoch " + std::to_string(best_epoch_)
                              : std::string("none: not a number")) +
                 ")");
}

nlohmann::ordered_json EarlyStopping::state() const {
    return {{"best", best_}, {"best_epoch", best_epoch_}, {"waited", waited_}};
}

void EarlyStopping::restore_state(const nlohmann::ordered_json& state) {
    best_ = state.at("best").get<double>();
    best_epoch_ = integer_at<int>(state, "best_epoch");
    waited_ = integer_at<int>(state, "waited");
}

BestWeights::BestWeights(BestWeightsOptions options) : options_(std::move(options)) {}

void BestWeights::on_fit_start(FitContext& run) {
    monitor_ = monitor_named(options_.monitor(), run);
    best_epoch_ = 0;
    have_copy_ = false;
    reload_ = false;
    if (run.speaks && !options_.save().empty()) check_writable(options_.save());
}

void BestWeights::copy_from(Sequential& model) {
    std::size_t i = 0;
    auto keep = [&](const float* value, std::size_t size) {
        if (values_.size() <= i) values_.emplace_back();
        values_[i].assign(value, value + size);
        ++i;
    };
    for (const Parameter<float>& parameter : model.parameters())
        keep(parameter.value, parameter.size);
    for (const Buffer<float>& buffer : model.buffers())
        keep(buffer.value, buffer.size);
    // BatchNorm's batch counts too, as a saved model keeps them (they weigh the next batches'
    // statistics when momentum is None)
    counts_.clear();
    for_each_batchnorm(
        model, [&](BatchNorm& batchnorm) { counts_.push_back(batchnorm.num_batches_tracked()); });
    have_copy_ = true;
    reload_ = false;
}

void BestWeights::on_epoch_end(FitContext& run, const EpochStats& epoch) {
    const double value = monitored_value(monitor_, epoch);
    if (!improves(monitor_, value, best_epoch_ > 0, best_, 0.0)) return;
    best_ = value;
    best_epoch_ = epoch.epoch;
    if (options_.restore()) copy_from(run.model);
    if (run.speaks && !options_.save().empty()) save_model(options_.save(), run.model);
}

void BestWeights::on_fit_end(FitContext& run) {
    if (!options_.restore() || best_epoch_ == 0 || run.result.epochs.empty() ||
        best_epoch_ == run.result.epochs.back().epoch)
        return;
    if (reload_) {
        // Resumed: the best epoch came before the checkpoint, and its weights are in the file.
        Checkpoint::read(options_.save()).load_into(run.model);
    } else if (have_copy_) {
        std::size_t i = 0;
        for (const Parameter<float>& parameter : run.model.parameters())
            std::copy(values_[i].begin(), values_[i].end(), parameter.value), ++i;
        for (const Buffer<float>& buffer : run.model.buffers())
            std::copy(values_[i].begin(), values_[i].end(), buffer.value), ++i;
        std::size_t layer = 0;
        for_each_batchnorm(run.model, [&](BatchNorm& batchnorm) {
            batchnorm.set_num_batches_tracked(counts_[layer++]);
        });
    } else {
        throw std::runtime_error(
            "BestWeights: the best weights (epoch " + std::to_string(best_epoch_) +
            ") came before the checkpoint this run resumed from and were not saved; give "
            "BestWeightsOptions().save(path) to keep them across a resume");
    }
    run.weights_epoch = best_epoch_;
    if (run.speaks)
        spdlog::info("{}restored the weights of epoch {} ({} {})", prefix_of(run), best_epoch_,
                     monitor_.name, number_string(best_));
}

nlohmann::ordered_json BestWeights::state() const {
    return {{"best", best_}, {"best_epoch", best_epoch_}};
}

void BestWeights::restore_state(const nlohmann::ordered_json& state) {
    best_ = state.at("best").get<double>();
    best_epoch_ = integer_at<int>(state, "best_epoch");
    have_copy_ = false;
    reload_ = best_epoch_ > 0 && !options_.save().empty();
}

ReduceLrOnPlateau::ReduceLrOnPlateau(ReduceLrOnPlateauOptions options)
    : options_(std::move(options)) {
    if (!(options_.factor() > 0.0 && options_.factor() < 1.0))
        throw std::invalid_argument("ReduceLrOnPlateau: factor must be in (0, 1), got " +
                                    number_string(options_.factor()));
    if (options_.patience() < 0 || options_.cooldown() < 0)
        throw std::invalid_argument("ReduceLrOnPlateau: patience and cooldown must be >= 0");
    if (!(options_.threshold() >= 0.0) || !(options_.min_lr() >= 0.0))
        throw std::invalid_argument("ReduceLrOnPlateau: threshold and min_lr must be >= 0");
}

void ReduceLrOnPlateau::on_fit_start(FitContext& run) {
    monitor_ = monitor_named(options_.monitor(), run);
    has_best_ = false;
    bad_epochs_ = 0;
    cooldown_left_ = 0;
    scale_ = 1.0;
}

void ReduceLrOnPlateau::on_epoch_start(FitContext& run) {
    // After the schedule (fit's own callbacks come first) has set the epoch's rate.
    if (scale_ != 1.0)
        run.optimizer.set_learning_rate(
            std::max(run.optimizer.learning_rate() * scale_, options_.min_lr()));
}

void ReduceLrOnPlateau::on_epoch_end(FitContext& run, const EpochStats& epoch) {
    const double value = monitored_value(monitor_, epoch);
    // PyTorch's "rel" threshold: better than best * (1 -+ threshold).
    const double margin = std::abs(best_) * options_.threshold();
    if (improves(monitor_, value, has_best_, best_, margin)) {
        best_ = value;
        has_best_ = true;
        bad_epochs_ = 0;
    } else {
        ++bad_epochs_;
    }
    if (cooldown_left_ > 0) {
        --cooldown_left_;
        bad_epochs_ = 0;
    }
    if (bad_epochs_ <= options_.patience()) return;
    const double before = run.optimizer.learning_rate();
    if (before * options_.factor() < options_.min_lr() && before <= options_.min_lr()) return;
    scale_ *= options_.factor();
    cooldown_left_ = options_.cooldown();
    bad_epochs_ = 0;
    if (run.speaks)
        spdlog::info(
            "{}{}: {} has not improved for {} epochs; the learning rate is scaled by {} "
            "from epoch {}",
            prefix_of(run), name(), monitor_.name, options_.patience() + 1, number_string(scale_),
            epoch.epoch + 1);
}

nlohmann::ordered_json ReduceLrOnPlateau::state() const {
    return {{"best", best_},
            {"has_best", has_best_},
            {"bad_epochs", bad_epochs_},
            {"cooldown_left", cooldown_left_},
            {"scale", scale_}};
}

void ReduceLrOnPlateau::restore_state(const nlohmann::ordered_json& state) {
    best_ = state.at("best").get<double>();
    has_best_ = state.at("has_best").get<bool>();
    bad_epochs_ = integer_at<int>(state, "bad_epochs");
    cooldown_left_ = integer_at<int>(state, "cooldown_left");
    scale_ = state.at("scale").get<double>();
}

}  // namespace bnlab
