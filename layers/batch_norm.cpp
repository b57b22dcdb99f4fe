#include "layers/batch_norm.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bnlab {

template <typename T>
BasicBatchNorm<T>::BasicBatchNorm(const BatchNormOptions& options)
    : options_(options),
      gamma_(xt::ones<T>({options.num_features()})),
      beta_(xt::zeros<T>({options.num_features()})),
      gamma_grad_(xt::zeros<T>({options.num_features()})),
      beta_grad_(xt::zeros<T>({options.num_features()})),
      running_mean_(xt::zeros<T>({options.num_features()})),
      running_var_(xt::ones<T>({options.num_features()})),
      mean_(xt::zeros<T>({options.num_features()})),
      var_(xt::zeros<T>({options.num_features()})),
      inv_std_(xt::zeros<T>({options.num_features()})),
      sum_dy_(xt::zeros<T>({options.num_features()})),
      sum_dy_xhat_(xt::zeros<T>({options.num_features()})) {
    if (options.num_features() == 0)
        throw std::invalid_argument("BatchNorm: num_features must be positive");
    if (!(options.eps() > 0.0))
        throw std::invalid_argument("BatchNorm: eps must be positive, got " +
                                    number_string(options.eps()));
    if (options.momentum() && !(*options.momentum() >= 0.0 && *options.momentum() <= 1.0))
        throw std::invalid_argument("BatchNorm: momentum must be in [0, 1], got " +
                                    number_string(*options.momentum()));
}

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::forward(const Matrix<T>& x) {
    this->check_input_width(x);
    const std::size_t m = x.shape(0), n = x.shape(1);
    normalized_with_batch_stats_ = this->is_training();

    if (normalized_with_batch_stats_) {
        if (m < 2)
            throw std::invalid_argument(describe() +
                                        ": expected more than 1 value per feature when "
                                        "training, got input of shape " +
                                        shape_string(x) + " (use eval() to run single samples)");
        // mu_k = (1/m) sum_i x_ik
        std::fill(mean_.begin(), mean_.end(), T(0));
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t k = 0; k < n; ++k)
                mean_(k) += x(i, k);
        for (std::size_t k = 0; k < n; ++k)
            mean_(k) /= T(m);
        // sigma2_k = (1/m) sum_i (x_ik - mu_k)^2   (biased)
        std::fill(var_.begin(), var_.end(), T(0));
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t k = 0; k < n; ++k) {
                const T centered = x(i, k) - mean_(k);
                var_(k) += centered * centered;
            }
        for (std::size_t k = 0; k < n; ++k)
            var_(k) /= T(m);
        // 1 / sqrt(sigma2 + eps)
        for (std::size_t k = 0; k < n; ++k)
            inv_std_(k) = T(1) / std::sqrt(var_(k) + T(options_.eps()));

        // running = (1 - f) running + f batch, f = momentum, or 1/batches for a cumulative average;
        // the running variance takes the unbiased sigma2 * m / (m - 1)
        ++num_batches_tracked_;
        const T factor =
            options_.momentum() ? T(*options_.momentum()) : T(1) / T(num_batches_tracked_);
        const T unbias = T(m) / T(m - 1);
        for (std::size_t k = 0; k < n; ++k) {
            running_mean_(k) = (T(1) - factor) * running_mean_(k) + factor * mean_(k);
            running_var_(k) = (T(1) - factor) * running_var_(k) + factor * var_(k) * unbias;
        }
    } else {
        std::copy(running_mean_.begin(), running_mean_.end(), mean_.begin());
        // 1 / sqrt(running_var + eps)
        for (std::size_t k = 0; k < n; ++k)
            inv_std_(k) = T(1) / std::sqrt(running_var_(k) + T(options_.eps()));
    }

    ensure_shape(x_hat_, m, n);
    ensure_shape(output_, m, n);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t k = 0; k < n; ++k) {
            // xhat = (x - mu) / sqrt(sigma2 + eps)
            x_hat_(i, k) = (x(i, k) - mean_(k)) * inv_std_(k);
            // y = gamma xhat + beta
            output_(i, k) = gamma_(k) * x_hat_(i, k) + beta_(k);
        }
    return output_;
}

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::backward(const Matrix<T>& dy) {
    const std::size_t m = x_hat_.shape(0), n = x_hat_.shape(1);
    this->check_grad_output(dy, m, n);

    // dbeta = sum_i dy_i        dgamma = sum_i dy_i xhat_i
    std::fill(sum_dy_.begin(), sum_dy_.end(), T(0));
    std::fill(sum_dy_xhat_.begin(), sum_dy_xhat_.end(), T(0));
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t k = 0; k < n; ++k) {
            sum_dy_(k) += dy(i, k);
            sum_dy_xhat_(k) += dy(i, k) * x_hat_(i, k);
        }
    if (options_.affine())
        for (std::size_t k = 0; k < n; ++k) {
            beta_grad_(k) += sum_dy_(k);
            gamma_grad_(k) += sum_dy_xhat_(k);
        }

    ensure_shape(grad_input_, m, n);
    if (normalized_with_batch_stats_) {
        // dx = gamma / sqrt(sigma2 + eps) * (dy - mean_i(dy) - xhat * mean_i(dy xhat))
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t k = 0; k < n; ++k)
                grad_input_(i, k) =
                    gamma_(k) * inv_std_(k) *
                    (dy(i, k) - sum_dy_(k) / T(m) - x_hat_(i, k) * sum_dy_xhat_(k) / T(m));
    } else {
        // The running statistics are constants here: dx = gamma / sqrt(running_var + eps) * dy
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t k = 0; k < n; ++k)
                grad_input_(i, k) = gamma_(k) * inv_std_(k) * dy(i, k);
    }
    return grad_input_;
}

template <typename T>
std::vector<Parameter<T>> BasicBatchNorm<T>::parameters() {
    if (!options_.affine()) return {};
    return {{"gamma", gamma_.data(), gamma_grad_.data(), gamma_.size()},
            {"beta", beta_.data(), beta_grad_.data(), beta_.size()}};
}

template <typename T>
std::vector<Buffer<T>> BasicBatchNorm<T>::buffers() {
    return {{"running_mean", running_mean_.data(), running_mean_.size()},
            {"running_var", running_var_.data(), running_var_.size()}};
}

template <typename T>
std::string BasicBatchNorm<T>::describe() const {
    std::ostringstream text;
    text << "BatchNorm(" << options_.num_features() << ", eps=" << options_.eps() << ", momentum=";
    if (options_.momentum())
        text << *options_.momentum();
    else
        text << "cumulative";
    if (!options_.affine()) text << ", affine=false";
    text << ")";
    return text.str();
}

template class BasicBatchNorm<float>;
template class BasicBatchNorm<double>;

}  // namespace bnlab
