#include "layers/batch_renorm.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bnlab {

namespace {

const BatchRenormOptions& checked(const BatchRenormOptions& options) {
    if (!(options.rmax() >= 1.0))
        throw std::invalid_argument("BatchRenorm: rmax must be at least 1, got " +
                                    number_string(options.rmax()));
    if (!(options.dmax() >= 0.0))
        throw std::invalid_argument("BatchRenorm: dmax must be non-negative, got " +
                                    number_string(options.dmax()));
    if (options.warmup_steps() < 0 || options.rmax_steps() < options.warmup_steps() ||
        options.dmax_steps() < options.warmup_steps())
        throw std::invalid_argument(
            "BatchRenorm: expected 0 <= warmup_steps <= rmax_steps and dmax_steps, got " +
            std::to_string(options.warmup_steps()) + ", " + std::to_string(options.rmax_steps()) +
            " and " + std::to_string(options.dmax_steps()));
    return options;
}

// How far the relaxation from warmup_steps to `end` has come at `step`: 0 to 1.
double relaxed(std::int64_t step, std::int64_t warmup_steps, std::int64_t end) {
    if (step < warmup_steps) return 0.0;
    if (end <= warmup_steps) return 1.0;
    return std::min(1.0, double(step - warmup_steps) / double(end - warmup_steps));
}

}  // namespace

template <typename T>
BasicBatchRenorm<T>::BasicBatchRenorm(const BatchRenormOptions& options)
    : BasicBatchNorm<T>(checked(options).batchnorm()),
      renorm_options_(options),
      r_(xt::ones<T>({options.batchnorm().num_features()})),
      d_(xt::zeros<T>({options.batchnorm().num_features()})) {}

template <typename T>
double BasicBatchRenorm<T>::rmax_at(std::int64_t step) const {
    const BatchRenormOptions& o = renorm_options_;
    return 1.0 + (o.rmax() - 1.0) * relaxed(step, o.warmup_steps(), o.rmax_steps());
}

template <typename T>
double BasicBatchRenorm<T>::dmax_at(std::int64_t step) const {
    const BatchRenormOptions& o = renorm_options_;
    return o.dmax() * relaxed(step, o.warmup_steps(), o.dmax_steps());
}

template <typename T>
void BasicBatchRenorm<T>::before_running_update(std::size_t c) {
    const std::int64_t step = this->num_batches_tracked() - 1;  // counted already
    const double eps = this->options().eps();
    // sigma_B = sqrt(sigma2_B + eps)     sigma = sqrt(running_var + eps)
    const double batch_std = std::sqrt(double(this->batch_var()(c)) + eps);
    const double running_std = std::sqrt(double(this->running_var()(c)) + eps);
    const double rmax = rmax_at(step), dmax = dmax_at(step);
    // r = clip(sigma_B / sigma, 1/rmax, rmax)
    r_(c) = T(std::clamp(batch_std / running_std, 1.0 / rmax, rmax));
    // d = clip((mu_B - mu) / sigma, -dmax, dmax)
    d_(c) = T(
        std::clamp((double(this->batch_mean()(c)) - double(this->running_mean()(c))) / running_std,
                   -dmax, dmax));
}

template <typename T>
void BasicBatchRenorm<T>::after_running_update(std::size_t c) {
    // xhat = (x - mu_B) / sigma_B r + d = (x - mean') inv_std' with
    // inv_std' = r / sigma_B and mean' = mu_B - d sigma_B / r
    const double inv_std = double(this->normalizing_inv_std()(c));
    const double r = double(r_(c)), d = double(d_(c));
    this->normalizing_mean()(c) = T(double(this->normalizing_mean()(c)) - d / (inv_std * r));
    this->normalizing_inv_std()(c) = T(r * inv_std);
}

template <typename T>
void BasicBatchRenorm<T>::adjust_input_gradient_sums(T* sum_dy, T* sum_dy_xhat) {
    // With r and d constants, dx = gamma r / sigma_B (dy - mean(dy) - xtilde mean(dy xtilde)),
    // xtilde = (xhat - d) / r. BatchNorm's dx = gamma inv_std' (dy - S1' / M - xhat S2' / M)
    // gives it with S2' = (S2 - d S1) / r^2 and S1' = S1 - d S2'.
    for (std::size_t c = 0; c < r_.size(); ++c) {
        const double r = double(r_(c)), d = double(d_(c));
        const double s1 = double(sum_dy[c]), s2 = double(sum_dy_xhat[c]);
        const double s2_adjusted = (s2 - d * s1) / (r * r);
        sum_dy_xhat[c] = T(s2_adjusted);
        sum_dy[c] = T(s1 - d * s2_adjusted);
    }
}

template <typename T>
std::string BasicBatchRenorm<T>::describe() const {
    const BatchRenormOptions& o = renorm_options_;
    std::ostringstream text;
    text << "BatchRenorm(" << o.batchnorm().num_features() << ", eps=" << o.batchnorm().eps()
         << ", momentum=";
    if (o.batchnorm().momentum())
        text << *o.batchnorm().momentum();
    else
        text << "cumulative";
    if (!o.batchnorm().affine()) text << ", affine=false";
    text << ", rmax=" << o.rmax() << ", dmax=" << o.dmax() << ", warmup_steps=" << o.warmup_steps()
         << ", rmax_steps=" << o.rmax_steps() << ", dmax_steps=" << o.dmax_steps() << ")";
    return text.str();
}

template class BasicBatchRenorm<float>;
template class BasicBatchRenorm<double>;

}  // namespace bnlab
