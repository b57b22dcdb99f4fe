#pragma once
// Optimizers over a model's (value, gradient) pairs, with PyTorch's update rules and defaults:
//   BasicSGD<float> sgd(model.parameters(), SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
//   sgd.zero_grad(); …forward, loss, backward…; sgd.step();

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "framework/layer.hpp"

namespace bnlab {

template <typename T>
class BasicOptimizer {
  public:
    // `name` ("SGD", "Adam") prefixes error messages. Throws unless lr > 0.
    BasicOptimizer(std::vector<Parameter<T>> parameters, double lr, std::string name);
    virtual ~BasicOptimizer() = default;

    virtual void step() = 0;
    void zero_grad() { zero_gradients(parameters_); }

    // The state a checkpoint must keep for a resumed run to take the same steps: named arrays
    // (one per parameter and kind, e.g. "momentum.0") and named counters ("steps").
    virtual std::vector<std::pair<std::string, std::vector<T>*>> state_arrays() = 0;
    virtual std::vector<std::pair<std::string, std::int64_t*>> state_counters() = 0;
    // The current learning rate (the options give the initial one); schedules change it here.
    double learning_rate() const { return learning_rate_; }
    void set_learning_rate(double lr);

  protected:
    std::vector<Parameter<T>> parameters_;
    std::string name_;
    // One zeroed state array per parameter, of the parameter's size.
    std::vector<std::vector<T>> make_state() const {
        std::vector<std::vector<T>> state;
        for (const Parameter<T>& parameter : parameters_)
            state.emplace_back(parameter.size, T(0));
        return state;
    }

  private:
    double learning_rate_;
};

class SGDOptions {
  public:
    explicit SGDOptions(double lr) : lr_(lr) {}
    SGDOptions& lr(double value) { return lr_ = value, *this; }
    SGDOptions& momentum(double value) { return momentum_ = value, *this; }
    SGDOptions& dampening(double value) { return dampening_ = value, *this; }
    SGDOptions& weight_decay(double value) { return weight_decay_ = value, *this; }
    SGDOptions& nesterov(bool value) { return nesterov_ = value, *this; }
    double lr() const { return lr_; }
    double momentum() const { return momentum_; }
    double dampening() const { return dampening_; }
    double weight_decay() const { return weight_decay_; }
    bool nesterov() const { return nesterov_; }

  private:
    double lr_;
    double momentum_ = 0.0;
    double dampening_ = 0.0;
    double weight_decay_ = 0.0;
    bool nesterov_ = false;
};

// torch.optim.SGD: g = grad + wd p; b = g on the first step, else b = mu b + (1 - dampening) g;
// g = g + mu b with Nesterov, else g = b; p = p - lr g.
template <typename T>
class BasicSGD : public BasicOptimizer<T> {
  public:
    BasicSGD(std::vector<Parameter<T>> parameters, const SGDOptions& options);
    void step() override;
    std::vector<std::pair<std::string, std::vector<T>*>> state_arrays() override;
    std::vector<std::pair<std::string, std::int64_t*>> state_counters() override;
    const SGDOptions& options() const { return options_; }

  private:
    SGDOptions options_;
    std::vector<std::vector<T>> momentum_buffers_;
    std::int64_t steps_ = 0;  // the first step starts the momentum buffers
};

class AdamOptions {
  public:
    explicit AdamOptions(double lr = 1e-3) : lr_(lr) {}
    AdamOptions& lr(double value) { return lr_ = value, *this; }
    AdamOptions& betas(double beta1, double beta2) {
        beta1_ = beta1;
        beta2_ = beta2;
        return *this;
    }
    AdamOptions& eps(double value) { return eps_ = value, *this; }
    AdamOptions& weight_decay(double value) { return weight_decay_ = value, *this; }
    double lr() const { return lr_; }
    double beta1() const { return beta1_; }
    double beta2() const { return beta2_; }
    double eps() const { return eps_; }
    double weight_decay() const { return weight_decay_; }

  private:
    double lr_;
    double beta1_ = 0.9;
    double beta2_ = 0.999;
    double eps_ = 1e-8;
    double weight_decay_ = 0.0;
};

// torch.optim.Adam (L2 weight decay added to the gradient, as there; not AdamW).
template <typename T>
class BasicAdam : public BasicOptimizer<T> {
  public:
    BasicAdam(std::vector<Parameter<T>> parameters, const AdamOptions& options);
    void step() override;
    std::vector<std::pair<std::string, std::vector<T>*>> state_arrays() override;
    std::vector<std::pair<std::string, std::int64_t*>> state_counters() override;
    const AdamOptions& options() const { return options_; }

  private:
    AdamOptions options_;
    std::vector<std::vector<T>> first_moments_;
    std::vector<std::vector<T>> second_moments_;
    std::int64_t step_count_ = 0;
};

using SGD = BasicSGD<float>;
using Adam = BasicAdam<float>;
extern template class BasicOptimizer<float>;
extern template class BasicOptimizer<double>;
extern template class BasicSGD<float>;
extern template class BasicSGD<double>;
extern template class BasicAdam<float>;
extern template class BasicAdam<double>;

}  // namespace bnlab
