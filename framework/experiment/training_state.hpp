#pragma once
// A training checkpoint: the model and optimizer (checkpoint.hpp's own sections) and what a
// resumed run needs to take the same steps as the one never interrupted: TRAN (the run's
// configuration, the epoch and step reached, the generator's state, the log so far) and ORDR
// (the batch loader's order, as u64s). TRAN also keeps the callbacks' own states.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "framework/data.hpp"
#include "framework/experiment/run_log.hpp"
#include "framework/optimizer.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"

namespace bnlab {

void save_training_state(
    const std::string& path, const nlohmann::ordered_json& config, Sequential& model,
    BasicOptimizer<float>& optimizer, const Rng& rng, const BatchLoader& batches, int epoch,
    long step, const std::vector<std::string>& log_lines,
    const nlohmann::ordered_json& callback_states = nlohmann::ordered_json::object());

struct ResumedState {
    int epoch = 0;  // the last epoch the checkpoint completed
    long step = 0;
    std::vector<std::string> log_lines;  // the log up to then
    std::vector<EpochStats> epochs;      // its epoch lines
    // The callbacks' states by key (FitContext::callback_states); empty in older checkpoints.
    nlohmann::ordered_json callback_states = nlohmann::ordered_json::object();
};

// Loads the state saved at `path` into the model, optimizer, generator and loader. The saved
// configuration must equal `config` but for the fields a resumed run may change (epochs,
// threads, log, data). Every error is a std::runtime_error naming the file.
ResumedState resume_training_state(const std::string& path, const nlohmann::ordered_json& config,
                                   Sequential& model, BasicOptimizer<float>& optimizer, Rng& rng,
                                   BatchLoader& batches);

// The configuration saved in a training checkpoint; throws naming the file if it is not one.
nlohmann::ordered_json saved_run_config(const std::string& path);

}  // namespace bnlab
