#include "framework/experiment/training_state.hpp"

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "framework/checkpoint.hpp"
#include "framework/experiment/json_fields.hpp"

namespace bnlab {

namespace {

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

}  // namespace

void save_training_state(const std::string& path, const nlohmann::ordered_json& config,
                         Sequential& model, BasicOptimizer<float>& optimizer, const Rng& rng,
                         const BatchLoader& batches, int epoch, long step,
                         const std::vector<std::string>& log_lines,
                         const nlohmann::ordered_json& callback_states) {
    nlohmann::ordered_json state = {{"config", config},
                                    {"epoch", epoch},
                                    {"step", step},
                                    {"rng", rng.state()},
                                    {"log", log_lines}};
    if (!callback_states.empty()) state["callbacks"] = callback_states;
    save_checkpoint(path, model, &optimizer,
                    {{"TRAN", state.dump()}, {"ORDR", order_bytes(batches.order())}});
}

ResumedState resume_training_state(const std::string& path, const nlohmann::ordered_json& config,
                                   Sequential& model, BasicOptimizer<float>& optimizer, Rng& rng,
                                   BatchLoader& batches) {
    const Checkpoint checkpoint = Checkpoint::read(path);
    nlohmann::ordered_json state = training_state(checkpoint, path);
    const std::string* order = checkpoint.section("ORDR");
    ResumedState resumed;
    try {
        // The run must be the same one; it may run longer, on other threads, or log elsewhere.
        nlohmann::ordered_json saved = state.at("config"), now = config;
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
        // Data-parallel runs record their world; a single process's run has none.
        for (const char* parallel_field : {"world_size", "sync_bn"})
            if (now.contains(parallel_field) && !saved.contains(parallel_field))
                throw std::runtime_error(std::string("saved by another configuration: ") +
                                         parallel_field + " is missing there, " +
                                         now.at(parallel_field).dump() + " here");
        resumed.epoch = integer_at<int>(state, "epoch");
        resumed.step = integer_at<long>(state, "step");
        resumed.log_lines = state.at("log").get<std::vector<std::string>>();
        if (state.contains("callbacks")) resumed.callback_states = state.at("callbacks");
        for (const std::string& text : resumed.log_lines) {
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

nlohmann::ordered_json saved_run_config(const std::string& path) {
    const nlohmann::ordered_json state = training_state(Checkpoint::read(path), path);
    if (!state.contains("config") || !state.at("config").is_object())
        throw std::runtime_error(path + ": section TRAN: no configuration");
    return state.at("config");
}

}  // namespace bnlab
