#include "framework/optimizer.hpp"

#include <cmath>
#include <stdexcept>

namespace bnlab {

namespace {

void check_non_negative(const char* who, const char* what, double value) {
    if (!(value >= 0.0) || !std::isfinite(value))
        throw std::invalid_argument(std::string(who) + ": " + what +
                                    " must be a non-negative number, got " + number_string(value));
}

}  // namespace

template <typename T>
BasicOptimizer<T>::BasicOptimizer(std::vector<Parameter<T>> parameters, double lr, std::string name)
    : parameters_(std::move(parameters)), name_(std::move(name)) {
    set_learning_rate(lr);
}

template <typename T>
void BasicOptimizer<T>::set_learning_rate(double lr) {
    if (!(lr > 0.0) || !std::isfinite(lr))
        throw std::invalid_argument(name_ + ": learning rate must be positive, got " +
                                    number_string(lr));
    learning_rate_ = lr;
}

template <typename T>
BasicSGD<T>::BasicSGD(std::vector<Parameter<T>> parameters, const SGDOptions& options)
    : BasicOptimizer<T>(std::move(parameters), options.lr(), "SGD"), options_(options) {
    check_non_negative("SGD", "momentum", options.momentum());
    check_non_negative("SGD", "dampening", options.dampening());
    check_non_negative("SGD", "weight decay", options.weight_decay());
    if (options.nesterov() && (options.momentum() <= 0.0 || options.dampening() != 0.0))
        throw std::invalid_argument(
            "SGD: Nesterov momentum requires a momentum and zero dampening");
    if (options.momentum() > 0.0) momentum_buffers_ = this->make_state();
}

namespace {

// The updates of one parameter array, on restrict-qualified pointers with the options as plain
// values: through the Parameter's pointers and the options, GCC vectorized neither loop.

template <typename T>
void sgd_update(T* __restrict value, const T* __restrict grad, T* __restrict buffer,
                std::size_t size, T lr, T weight_decay, T mu, T dampening, bool first_step,
                bool nesterov) {
    for (std::size_t j = 0; j < size; ++j) {
        // g = grad + wd p
        T g = grad[j] + weight_decay * value[j];
        if (buffer) {
            // b = g (first step), else b = mu b + (1 - dampening) g
            buffer[j] = first_step ? g : mu * buffer[j] + (T(1) - dampening) * g;
            // g = g + mu b (Nesterov), else g = b
            g = nesterov ? g + mu * buffer[j] : buffer[j];
        }
        // p = p - lr g
        value[j] -= lr * g;
    }
}

template <typename T>
void adam_update(T* __restrict value, const T* __restrict grad, T* __restrict m, T* __restrict v,
                 std::size_t size, T step_size, T beta1, T beta2, T eps, T weight_decay,
                 T sqrt_correction2) {
    for (std::size_t j = 0; j < size; ++j) {
        // g = grad + wd p
        const T g = grad[j] + weight_decay * value[j];
        // m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        m[j] = beta1 * m[j] + (T(1) - beta1) * g;
        v[j] = beta2 * v[j] + (T(1) - beta2) * g * g;
        // p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
        value[j] -= step_size * m[j] / (std::sqrt(v[j]) / sqrt_correction2 + eps);
    }
}

}  // namespace

template <typename T>
void BasicSGD<T>::step() {
    const T lr = T(this->learning_rate()), mu = T(options_.momentum()),
            dampening = T(options_.dampening()), weight_decay = T(options_.weight_decay());
    for (std::size_t index = 0; index < this->parameters_.size(); ++index) {
        const Parameter<T>& parameter = this->parameters_[index];
        T* buffer = mu != T(0) ? momentum_buffers_[index].data() : nullptr;
        sgd_update(parameter.value, parameter.grad, buffer, parameter.size, lr, weight_decay, mu,
                   dampening, steps_ == 0, options_.nesterov());
    }
    ++steps_;
}

template <typename T>
BasicAdam<T>::BasicAdam(std::vector<Parameter<T>> parameters, const AdamOptions& options)
    : BasicOptimizer<T>(std::move(parameters), options.lr(), "Adam"), options_(options) {
    if (!(options.beta1() >= 0.0 && options.beta1() < 1.0) ||
        !(options.beta2() >= 0.0 && options.beta2() < 1.0))
        throw std::invalid_argument("Adam: betas must be in [0, 1), got (" +
                                    number_string(options.beta1()) + ", " +
                                    number_string(options.beta2()) + ")");
    check_non_negative("Adam", "eps", options.eps());
    check_non_negative("Adam", "weight decay", options.weight_decay());
    first_moments_ = this->make_state();
    second_moments_ = this->make_state();
}

template <typename T>
void BasicAdam<T>::step() {
    ++step_count_;
    const T beta1 = T(options_.beta1()), beta2 = T(options_.beta2()), eps = T(options_.eps()),
            weight_decay = T(options_.weight_decay());
    // Bias corrections 1 - beta^t, folded into the step size and the denominator as PyTorch does.
    const T correction1 = T(1) - T(std::pow(options_.beta1(), double(step_count_)));
    const T sqrt_correction2 = T(std::sqrt(1.0 - std::pow(options_.beta2(), double(step_count_))));
    const T step_size = T(this->learning_rate()) / correction1;
    for (std::size_t index = 0; index < this->parameters_.size(); ++index) {
        const Parameter<T>& parameter = this->parameters_[index];
        adam_update(parameter.value, parameter.grad, first_moments_[index].data(),
                    second_moments_[index].data(), parameter.size, step_size, beta1, beta2, eps,
                    weight_decay, sqrt_correction2);
    }
}

namespace {

// Names each array of `arrays` "<kind>.<parameter index>".
template <typename T>
void name_arrays(std::vector<std::pair<std::string, std::vector<T>*>>& named, const char* kind,
                 std::vector<std::vector<T>>& arrays) {
    for (std::size_t i = 0; i < arrays.size(); ++i)
        named.emplace_back(std::string(kind) + "." + std::to_string(i), &arrays[i]);
}

}  // namespace

template <typename T>
std::vector<std::pair<std::string, std::vector<T>*>> BasicSGD<T>::state_arrays() {
    std::vector<std::pair<std::string, std::vector<T>*>> named;
    name_arrays(named, "momentum", momentum_buffers_);
    return named;
}

template <typename T>
std::vector<std::pair<std::string, std::int64_t*>> BasicSGD<T>::state_counters() {
    return {{"steps", &steps_}};
}

template <typename T>
std::vector<std::pair<std::string, std::vector<T>*>> BasicAdam<T>::state_arrays() {
    std::vector<std::pair<std::string, std::vector<T>*>> named;
    name_arrays(named, "exp_avg", first_moments_);
    name_arrays(named, "exp_avg_sq", second_moments_);
    return named;
}

template <typename T>
std::vector<std::pair<std::string, std::int64_t*>> BasicAdam<T>::state_counters() {
    return {{"steps", &step_count_}};
}

template class BasicOptimizer<float>;
template class BasicOptimizer<double>;
template class BasicSGD<float>;
template class BasicSGD<double>;
template class BasicAdam<float>;
template class BasicAdam<double>;

}  // namespace bnlab
