#pragma once
// The runs of `train` and `compare_bn`: Fashion-MNIST (or any IDX or CSV folder) and an MLP or a
// CNN built from a TrainConfig, trained by fit() (trainer.hpp).

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "framework/data.hpp"
#include "framework/experiment/compare.hpp"
#include "framework/experiment/run_config.hpp"
#include "framework/experiment/trainer.hpp"
#include "framework/optimizer.hpp"

namespace bnlab {

struct RunContext {
    std::string name;              // prefixes console lines, e.g. "bn=on seed=2"
    nlohmann::ordered_json extra;  // merged into the log's config line (command line, data)
    bool progress_bar = false;     // redraw a bar on stdout during each epoch (for terminals)
    // A data-parallel run's processes (the configuration's `distributed`); nullptr for one.
    Communicator* communicator = nullptr;
};

// The data set from the configuration's folder, standardized when it asks, and a description of
// it for the log ("data": folder, sample counts, the standardization applied).
struct PreparedData {
    FashionMnist sets;
    nlohmann::ordered_json description;
};
PreparedData load_data(const TrainConfig& config);

// The configuration's optimizer on `model`'s parameters.
std::unique_ptr<BasicOptimizer<float>> make_optimizer(const TrainConfig& config, Sequential& model);

// `config`'s MLP or CNN, taking the data's samples (a CNN needs images: their shape comes from
// the IDX files) and giving one logit per class the data has, initialized from `rng`, and its
// optimizer. Throws std::invalid_argument for a CNN on data without an image shape.
ModelAndOptimizer build_model(const TrainConfig& config, const Dataset& train, const Dataset& test,
                              Rng& rng);

// fit()'s options for `config`'s run.
FitOptions fit_options(const TrainConfig& config, const RunContext& context);

// Builds `config`'s model from its seed (or, resuming, from the checkpoint's layer list), trains it
// with fit(), and writes the folded model when the configuration asks.
RunResult train_model(const TrainConfig& config, const Dataset& train, const Dataset& test,
                      const RunContext& context = {});

// The configuration of the run saved in a training checkpoint (one `train --save` wrote); throws
// naming the file if it is not one.
TrainConfig saved_config(const std::string& checkpoint_path);

}  // namespace bnlab
