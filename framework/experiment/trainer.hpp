#pragma once
// One training run of an MLP classifier, as `train` and `compare_bn` do it: build the model from
// the configuration's seed, train for its epochs with a seeded shuffle, evaluate on the test set
// after each epoch, log to the console (and a JSONL log when the configuration names one), and
// stop cleanly if the loss stops being a finite number.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/data.hpp"
#include "framework/experiment/run_config.hpp"
#include "framework/experiment/run_log.hpp"
#include "framework/idx.hpp"

namespace bnlab {

struct RunContext {
    std::string name;              // prefixes console lines, e.g. "bn=on seed=2"
    nlohmann::ordered_json extra;  // merged into the log's config line (command line, data)
    bool progress_bar = false;     // redraw a bar on stdout during each epoch (for terminals)
};

// Fashion-MNIST from the configuration's folder, standardized when it asks, and a description of
// it for the log ("data": folder, sample counts, the standardization applied).
struct PreparedData {
    FashionMnist sets;
    nlohmann::ordered_json description;
};
PreparedData load_data(const TrainConfig& config);

struct RunResult {
    std::vector<EpochStats> epochs;
    std::vector<ProbePoint> probes;  // with config.probe
    RunOutcome outcome;
};

// Trains `config`'s MLP on `train`, measuring `test` after every epoch. A non-finite training
// loss ends the run at that step: the outcome records where, and the epochs before it are kept.
// Throws for bad configurations or data (before writing any log line) and when the log cannot
// be written.
RunResult train_mlp(const TrainConfig& config, const Dataset& train, const Dataset& test,
                    const RunContext& context = {});

// The configuration of the run saved in a training checkpoint (one `train --save` wrote); throws
// naming the file if it is not one.
TrainConfig saved_config(const std::string& checkpoint_path);

// The log's config line: the configuration, the model, the threads, the versions of bnlab and of
// the libraries it was built with, the start time and the host.
nlohmann::ordered_json config_line(const TrainConfig& config, Sequential& model,
                                   const RunContext& context);

// The time now, formatted by strftime's `format`, in UTC or local time.
std::string time_now(const char* format, bool utc);

// argv joined by spaces, for the log.
std::string command_line(int argc, const char* const* argv);

// bnlab, xtensor, xtensor-blas, OpenBLAS, spdlog, nlohmann-json, CLI11, zlib, the compiler.
nlohmann::ordered_json library_versions();

}  // namespace bnlab
