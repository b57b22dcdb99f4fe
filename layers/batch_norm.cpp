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

namespace {

// One row of the batch, on restrict-qualified parameters: GCC did not vectorize this loop when
// it ran on pointers into the layer's members, and it was BatchNorm's slowest.
template <typename T>
void normalize_row(const T* __restrict x, const T* __restrict mean, const T* __restrict inv_std,
                   const T* __restrict gamma, const T* __restrict beta, T* __restrict x_hat,
                   T* __restrict y, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
        // xhat = (x - mu) / sqrt(sigma2 + eps)
        x_hat[k] = (x[k] - mean[k]) * inv_std[k];
        // y = gamma xhat + beta
        y[k] = gamma[k] * x_hat[k] + beta[k];
    }
}

}  // namespace

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
        // Row by row on raw pointers, so that the loops over features vectorize.
        T* __restrict mean = mean_.data();
        T* __restrict var = var_.data();
        // mu_k = (1/m) sum_i x_ik
        std::fill_n(mean, n, T(0));
        for (std::size_t i = 0; i < m; ++i) {
            const T* __restrict row = x.data() + i * n;
            for (std::size_t k = 0; k < n; ++k)
                mean[k] += row[k];
        }
        for (std::size_t k = 0; k < n; ++k)
            mean[k] /= T(m);
        // sigma2_k = (1/m) sum_i (x_ik - mu_k)^2   (biased)
        std::fill_n(var, n, T(0));
        for (std::size_t i = 0; i < m; ++i) {
            const T* __restrict row = x.data() + i * n;
            for (std::size_t k = 0; k < n; ++k) {
                const T centered = row[k] - mean[k];
                var[k] += centered * centered;
            }
        }
        for (std::size_t k = 0; k < n; ++k)
            var[k] /= T(m);
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
        normalize_row(x.data() + i * n, mean_.data(), inv_std_.data(), gamma_.data(), beta_.data(),
                      x_hat_.data() + i * n, output_.data() + i * n, n);
    return output_;
}

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::backward(const Matrix<T>& dy) {
    const std::size_t m = x_hat_.shape(0), n = x_hat_.shape(1);
    this->check_grad_output(dy, m, n);

    // dbeta = sum_i dy_i        dgamma = sum_i dy_i xhat_i
    T* __restrict sum_dy = sum_dy_.data();
    T* __restrict sum_dy_xhat = sum_dy_xhat_.data();
    std::fill_n(sum_dy, n, T(0));
    std::fill_n(sum_dy_xhat, n, T(0));
    for (std::size_t i = 0; i < m; ++i) {
        const T* __restrict dy_row = dy.data() + i * n;
        const T* __restrict x_hat = x_hat_.data() + i * n;
        for (std::size_t k = 0; k < n; ++k) {
            sum_dy[k] += dy_row[k];
            sum_dy_xhat[k] += dy_row[k] * x_hat[k];
        }
    }
    if (options_.affine())
        for (std::size_t k = 0; k < n; ++k) {
            beta_grad_(k) += sum_dy[k];
            gamma_grad_(k) += sum_dy_xhat[k];
        }
    if (!this->input_grad_needed_) return this->no_input_grad();

    ensure_shape(grad_input_, m, n);
    const T* __restrict gamma = gamma_.data();
    const T* __restrict inv_std = inv_std_.data();
    const T inv_m = T(1) / T(m);
    for (std::size_t i = 0; i < m; ++i) {
        const T* __restrict dy_row = dy.data() + i * n;
        const T* __restrict x_hat = x_hat_.data() + i * n;
        T* __restrict dx = grad_input_.data() + i * n;
        if (normalized_with_batch_stats_) {
            // dx = gamma / sqrt(sigma2 + eps) * (dy - mean_i(dy) - xhat * mean_i(dy xhat))
            for (std::size_t k = 0; k < n; ++k)
                dx[k] = gamma[k] * inv_std[k] *
                        (dy_row[k] - sum_dy[k] * inv_m - x_hat[k] * sum_dy_xhat[k] * inv_m);
        } else {
            // The running statistics are constants here: dx = gamma / sqrt(running_var + eps) dy
            for (std::size_t k = 0; k < n; ++k)
                dx[k] = gamma[k] * inv_std[k] * dy_row[k];
        }
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
