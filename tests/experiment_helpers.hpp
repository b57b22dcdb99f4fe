#pragma once
// What the tests of the trainer and the programs share: a small problem to train on quickly, its
// configuration, and the JSONL log read back.

#include <spdlog/spdlog.h>

#include <fstream>
#include <string>
#include <vector>

#include "framework/experiment/trainer.hpp"
#include "helpers.hpp"

namespace bnlab::testing {

// Silences the console log for a scope: trainers' lines would only clutter the test output.
struct QuietLogs {
    QuietLogs() { spdlog::set_level(spdlog::level::off); }
    ~QuietLogs() { spdlog::set_level(spdlog::level::info); }
};

struct SmallProblem {
    Dataset train;
    Dataset test;
};

// 720 training and 180 test points of 4 blobs in 12 dimensions.
inline SmallProblem small_problem() {
    Rng rng(3);
    const Dataset all = make_blobs(900, 12, 4, 0.6, rng);
    return {slice(all, 0, 720), slice(all, 720, 900)};
}

// 12 -> 16 -> 16 -> 4 sigmoid with BatchNorm, 3 epochs of batches of 24, logged to `log_path`
// (none when empty).
inline TrainConfig small_config(const std::string& log_path = "") {
    TrainConfig config;
    config.data_dir = "(synthetic blobs)";
    config.hidden = {16, 16};
    config.batch = 24;
    config.epochs = 3;
    config.lr = 0.5;
    config.target = 0.6;
    config.log_path = log_path;
    return config;
}

inline std::vector<nlohmann::ordered_json> read_lines(const std::string& path) {
    std::ifstream file(path);
    std::vector<nlohmann::ordered_json> lines;
    for (std::string text; std::getline(file, text);)
        lines.push_back(nlohmann::ordered_json::parse(text));
    return lines;
}

// The log without what depends on the clock.
inline std::vector<nlohmann::ordered_json> without_timing(
    std::vector<nlohmann::ordered_json> lines) {
    for (nlohmann::ordered_json& line : lines)
        for (const char* field :
             {"seconds", "samples_per_s", "eval_seconds", "seconds_per_epoch", "started"})
            line.erase(field);
    return lines;
}

}  // namespace bnlab::testing
