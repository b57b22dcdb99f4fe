#pragma once
// What the tests of the trainer and the programs share: a small problem to train on quickly, its
// configuration, and the JSONL log read back.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include "framework/experiment/model_run.hpp"
#include "helpers.hpp"

extern char** environ;

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

// The train program, started with its output (stdout and stderr) to `output`; and its exit.
inline const std::string kProgramDir = BNLAB_BIN_DIR;
inline const std::string kTrain = kProgramDir + "/train";

inline pid_t spawn(const std::vector<std::string>& arguments, const std::string& output) {
    std::vector<char*> argv;
    for (const std::string& argument : arguments)
        argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t child = 0;
    const int error = posix_spawn(&child, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(error == 0, "cannot start " << argv[0]);
    return child;
}

inline int wait_for(pid_t child) {
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

}  // namespace bnlab::testing
