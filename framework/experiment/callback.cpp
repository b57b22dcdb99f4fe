#include "framework/experiment/callback.hpp"

#include <cmath>
#include <stdexcept>

#include "framework/experiment/trainer.hpp"

namespace bnlab {

FitContext::FitContext(Sequential& model_, BasicOptimizer<float>& optimizer_,
                       const FitOptions& options_, Rng& rng_, nlohmann::ordered_json config_,
                       RunResult& result_)
    : model(model_),
      optimizer(optimizer_),
      options(options_),
      rng(rng_),
      config(std::move(config_)),
      result(result_),
      base_lr(optimizer_.learning_rate()) {}

void FitContext::emit(const nlohmann::ordered_json& line) {
    log_lines_.push_back(line.dump());
    for (Callback* callback : callbacks_)
        callback->on_log_line(*this, log_lines_.back());
}

void FitContext::stop(const std::string& callback, const std::string& reason) {
    if (!stop_request_) stop_request_ = StopRequest{callback, reason};
}

nlohmann::ordered_json FitContext::callback_states() const {
    nlohmann::ordered_json states = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < callbacks_.size(); ++i) {
        nlohmann::ordered_json state = callbacks_[i]->state();
        if (!state.is_null()) states[keys_[i]] = std::move(state);
    }
    return states;
}

namespace {

bool ends_with(const std::string& text, const std::string& tail) {
    return text.size() >= tail.size() &&
           text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

Monitor monitor_named(const std::string& name, const FitContext& run) {
    const bool has_validation = run.has_validation;
    const std::vector<const char*> quantities =
        run.regression ? std::vector<const char*>{"_loss", "_r2", "_rmse"}
                       : std::vector<const char*>{"_loss", "_acc"};
    std::vector<std::string> names;
    for (const char* set : {"train", has_validation ? "val" : "test"})
        for (const char* quantity : quantities)
            names.push_back(std::string(set) + quantity);
    for (const std::string& known : names)
        if (known == name) return {name, ends_with(name, "_acc") || ends_with(name, "_r2")};
    std::string list;
    for (const std::string& known : names)
        list += (list.empty() ? "" : ", ") + known;
    std::string hint;
    if (!has_validation && name.rfind("val_", 0) == 0)
        hint = " (val_ quantities need a validation set: FitOptions().validation_fraction)";
    if (has_validation && name.rfind("test_", 0) == 0)
        hint = " (with a validation set the test set is measured once, at the end)";
    throw std::invalid_argument("no quantity '" + name + "' to monitor" + hint + "; there are " +
                                list);
}

double monitored_value(const Monitor& monitor, const EpochStats& epoch) {
    const std::string& name = monitor.name;
    const bool val = name.rfind("val_", 0) == 0, train = name.rfind("train_", 0) == 0;
    const double loss = train ? epoch.train_loss
                        : val ? epoch.val_loss.value_or(std::nan(""))
                              : epoch.test_loss;
    const double score = train ? epoch.train_acc
                         : val ? epoch.val_acc.value_or(std::nan(""))
                               : epoch.test_acc;
    if (ends_with(name, "_loss")) return loss;
    if (ends_with(name, "_acc") || ends_with(name, "_r2")) return score;
    if (ends_with(name, "_rmse")) return std::sqrt(loss);
    throw std::logic_error("monitored_value: unknown quantity " + name);
}

}  // namespace bnlab
