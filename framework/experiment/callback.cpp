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

Monitor monitor_named(const std::string& name, bool has_validation) {
    const std::vector<std::string> names =
        has_validation
            ? std::vector<std::string>{"train_loss", "train_acc", "val_loss", "val_acc"}
            : std::vector<std::string>{"train_loss", "train_acc", "test_loss", "test_acc"};
    for (const std::string& known : names)
        if (known == name) return {name, name.size() > 4 && name.substr(name.size() - 4) == "_acc"};
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
    if (name == "train_loss") return epoch.train_loss;
    if (name == "train_acc") return epoch.train_acc;
    if (name == "test_loss") return epoch.test_loss;
    if (name == "test_acc") return epoch.test_acc;
    if (name == "val_loss") return epoch.val_loss.value_or(std::nan(""));
    if (name == "val_acc") return epoch.val_acc.value_or(std::nan(""));
    throw std::logic_error("monitored_value: unknown quantity " + name);
}

}  // namespace bnlab
