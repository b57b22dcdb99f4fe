#include "framework/experiment/model_run.hpp"

#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "framework/atomic_file.hpp"
#include "framework/checkpoint.hpp"
#include "framework/csv.hpp"
#include "framework/data_parallel.hpp"
#include "framework/experiment/callbacks.hpp"
#include "framework/experiment/run_record.hpp"
#include "framework/experiment/training_state.hpp"
#include "models/cnn.hpp"
#include "models/fold_batchnorm.hpp"
#include "models/resnet.hpp"

namespace bnlab {

namespace {

std::size_t class_count(const Dataset& train, const Dataset& test) {
    // A regression's outputs are its target columns.
    if (train.regression()) return train.values.shape(1);
    int largest = 1;
    for (const Labels* labels : {&train.labels, &test.labels})
        for (int label : *labels)
            largest = std::max(largest, label);
    return static_cast<std::size_t>(largest) + 1;
}

}  // namespace

PreparedData load_data(const TrainConfig& config) {
    const Clock::time_point start = Clock::now();
    const bool csv = is_csv_folder(config.data_dir);
    const bool regression = config.task == "regression";
    if (regression && (!csv || config.target_columns.empty()))
        throw std::invalid_argument(
            "--task regression needs CSV data (train.csv and test.csv) and --target-columns "
            "naming the target values");
    if (!regression && !config.target_columns.empty())
        throw std::invalid_argument("--target-columns is for --task regression");
    if (regression && config.label_smoothing > 0.0)
        throw std::invalid_argument(
            "--label-smoothing is for classification, not --task regression");
    const CsvOptions columns =
        CsvOptions()
            .label(config.label_column)
            .targets(regression ? config.target_columns : std::vector<std::string>{});
    PreparedData data{load_data_folder(config.data_dir, columns), nullptr};
    const double load_seconds = seconds_since(start);
    nlohmann::ordered_json standardization;  // null when the inputs are used as read
    if (config.standardize && csv) {
        // CSV features have units of their own: each column by its own training statistics
        // (scikit-learn's StandardScaler)
        nlohmann::ordered_json means = nlohmann::ordered_json::array(),
                               deviations = nlohmann::ordered_json::array();
        for (const Standardization& column :
             standardize_columns(data.sets.train.inputs, data.sets.test.inputs)) {
            means.push_back(column.mean);
            deviations.push_back(column.std);
        }
        standardization = {{"per", "column"}, {"mean", means}, {"std", deviations}};
    } else if (config.standardize) {
        // pixels: one mean and deviation over all (torchvision's Normalize)
        const Standardization applied = standardize(data.sets.train, data.sets.test);
        standardization = {{"mean", applied.mean}, {"std", applied.std}};
    }
    data.description = {{"dir", config.data_dir},
                        {"train_samples", data.sets.train.size()},
                        {"test_samples", data.sets.test.size()},
                        {"features", data.sets.train.inputs.shape(1)},
                        {"format", csv ? "csv" : "idx"},
                        {"scaling", csv ? "none" : "pixel / 255"},
                        {"standardization", standardization},
                        {"load_seconds", load_seconds}};
    return data;
}

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

ModelAndOptimizer build_model(const TrainConfig& config, const Dataset& train, const Dataset& test,
                              Rng& rng) {
    const std::size_t classes = class_count(train, test);
    ModelAndOptimizer built;
    if (config.model != "mlp" && train.sample_shape.size() != 3)
        throw std::invalid_argument(
            "the " + config.model + " model needs images, and the data in " + config.data_dir +
            " has no image shape (CSV rows are plain features): use IDX files");
    if (is_resnet(config.model)) {
        built.model = resnet<float>(train.sample_shape,
                                    ResNetOptions()
                                        .depth(config.depth)
                                        .width(config.width)
                                        .classes(classes)
                                        .norm(config.norm)
                                        .residual(config.model == "resnet"),
                                    rng);
    } else if (config.model == "cnn") {
        built.model = cnn(train.sample_shape, config.channels, config.hidden, classes,
                          config.activation, config.norm, rng, config.dropout);
    } else {
        check_norm_without_images(config.norm, config.model);
        add_dense_head(built.model, train.inputs.shape(1), config.hidden, classes,
                       config.activation, config.norm, rng, config.dropout);
    }
    built.optimizer = make_optimizer(config, built.model);
    return built;
}

FitOptions fit_options(const TrainConfig& config, const RunContext& context) {
    std::shared_ptr<Loss> loss;
    if (config.task == "regression")
        loss = std::make_shared<MeanSquaredError>();
    else
        loss = std::make_shared<SoftmaxCrossEntropy>(config.label_smoothing);
    Callbacks callbacks;
    if (config.early_stopping > 0)
        callbacks.push_back(std::make_shared<EarlyStopping>(
            EarlyStoppingOptions()
                .monitor(config.validation_fraction > 0.0 ? "val_loss" : "test_loss")
                .patience(config.early_stopping)));
    return FitOptions()
        .loss(loss)
        .validation_fraction(config.validation_fraction)
        .callbacks(callbacks)
        .epochs(config.epochs)
        .batch_size(config.batch)
        .target(config.target)
        .name(context.name)
        .log(config.log_path)
        .config(to_json(config))
        .record(context.extra.is_object() ? context.extra : nlohmann::ordered_json::object())
        .save(config.save_path)
        .save_every(config.save_every)
        .resume(config.resume_path)
        .probe(config.probe)
        .probe_points(config.probe_points)
        .progress_bar(context.progress_bar)
        .threads(config.threads)
        .schedule(config.schedule)
        .communicator(context.communicator)
        .sync_batchnorm(config.sync_bn);
}

RunResult train_model(const TrainConfig& config, const Dataset& train, const Dataset& test,
                      const RunContext& context) {
    // Rank 0 of a data-parallel run (or the one process) writes the folded model.
    const bool writes = !context.communicator || context.communicator->rank() == 0;
    Rng rng(config.seed);
    ModelAndOptimizer built;
    on_every_process(context.communicator, [&] {
        if (writes && !config.export_folded_path.empty()) check_writable(config.export_folded_path);
        if (config.resume_path.empty()) {
            built = build_model(config, train, test, rng);
        } else {
            built.model = Checkpoint::read(config.resume_path).model();
            built.optimizer = make_optimizer(config, built.model);
        }
    });
    Sequential& model = built.model;
    RunResult result = fit(model, *built.optimizer, train, test, rng, fit_options(config, context));

    if (writes && !config.export_folded_path.empty()) {
        const std::string prefix = context.name.empty() ? "" : context.name + ": ";
        if (result.outcome.divergence) {
            spdlog::warn("{}no folded model written to {}: the weights are not finite", prefix,
                         config.export_folded_path);
        } else {
            Sequential folded = fold_batchnorm(model);
            save_model(config.export_folded_path, folded);
            spdlog::info(
                "{}folded model ({} layers, BatchNorm merged into the layer before) "
                "written to {}",
                prefix, folded.size(), config.export_folded_path);
        }
    }
    return result;
}

TrainConfig saved_config(const std::string& checkpoint_path) {
    const nlohmann::ordered_json config = saved_run_config(checkpoint_path);
    try {
        return config_from_json(config);
    } catch (const std::exception& error) {
        throw std::runtime_error(checkpoint_path + ": section TRAN: " + error.what());
    }
}

}  // namespace bnlab
