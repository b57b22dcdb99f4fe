#include "layers/batch_norm.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bnlab {

template <typename T>
BasicBatchNorm<T>::BasicBatchNorm(const BatchNormOptions& options)
    : options_(options),
      shape_{options.num_features()},
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
std::string BasicBatchNorm<T>::input_shape_problem(const Shape& input) const {
    if (input.empty() || input[0] != options_.num_features())
        return "expects " + std::to_string(options_.num_features()) +
               " features or channels, [" + std::to_string(options_.num_features()) + "] or [" +
               std::to_string(options_.num_features()) + ", H, W]";
    return "";
}

template <typename T>
void BasicBatchNorm<T>::set_input_shape(const Shape& input) {
    BasicLayer<T>::set_input_shape(input);
    shape_ = input;
    positions_ = shape_size(input) / options_.num_features();
}

namespace {

// The loops below see a batch as [m, C, P] (sample, channel, position). kOnePosition compiles the
// 1-D layer (P = 1) with the position loop gone, so that its loops run along the features of a
// row, which the compiler vectorizes, instead of over one position at a time: one text, two
// instantiations. All pointers are restrict-qualified: GCC did not vectorize these loops on
// pointers into the layer's members.

// sum_c += sum_{i,p} x_icp
template <bool kOnePosition, typename T>
void sum_per_channel(const T* __restrict x, std::size_t m, std::size_t channels,
                     std::size_t positions, T* __restrict sum) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < channels; ++c) {
            const T* __restrict values = x + (i * channels + c) * P;
            T partial = 0;
            for (std::size_t p = 0; p < P; ++p)
                partial += values[p];
            sum[c] += partial;
        }
}

// sum_c += sum_{i,p} (x_icp - mu_c)^2
template <bool kOnePosition, typename T>
void squared_deviations_per_channel(const T* __restrict x, const T* __restrict mean, std::size_t m,
                                    std::size_t channels, std::size_t positions,
                                    T* __restrict sum) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < channels; ++c) {
            const T* __restrict values = x + (i * channels + c) * P;
            T partial = 0;
            for (std::size_t p = 0; p < P; ++p) {
                const T centered = values[p] - mean[c];
                partial += centered * centered;
            }
            sum[c] += partial;
        }
}

template <bool kOnePosition, typename T>
void normalize(const T* __restrict x, const T* __restrict mean, const T* __restrict inv_std,
               const T* __restrict gamma, const T* __restrict beta, std::size_t m,
               std::size_t channels, std::size_t positions, T* __restrict x_hat, T* __restrict y) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < channels; ++c) {
            const std::size_t row = (i * channels + c) * P;
            for (std::size_t p = 0; p < P; ++p) {
                // xhat = (x - mu) / sqrt(sigma2 + eps)
                x_hat[row + p] = (x[row + p] - mean[c]) * inv_std[c];
                // y = gamma xhat + beta
                y[row + p] = gamma[c] * x_hat[row + p] + beta[c];
            }
        }
}

// sum_dy_c += sum_{i,p} dy_icp        sum_dy_xhat_c += sum_{i,p} dy_icp xhat_icp
template <bool kOnePosition, typename T>
void gradient_sums(const T* __restrict dy, const T* __restrict x_hat, std::size_t m,
                   std::size_t channels, std::size_t positions, T* __restrict sum_dy,
                   T* __restrict sum_dy_xhat) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < channels; ++c) {
            const std::size_t row = (i * channels + c) * P;
            T partial_dy = 0, partial_dy_xhat = 0;
            for (std::size_t p = 0; p < P; ++p) {
                partial_dy += dy[row + p];
                partial_dy_xhat += dy[row + p] * x_hat[row + p];
            }
            sum_dy[c] += partial_dy;
            sum_dy_xhat[c] += partial_dy_xhat;
        }
}

// dx = gamma / sqrt(sigma2 + eps) * (dy - mean(dy) - xhat * mean(dy xhat)), the means over the
// M values of each channel; with batch_stats false the statistics were the running ones,
// constants: dx = gamma / sqrt(running_var + eps) dy.
template <bool kOnePosition, typename T>
void input_gradient(const T* __restrict dy, const T* __restrict x_hat, const T* __restrict gamma,
                    const T* __restrict inv_std, const T* __restrict sum_dy,
                    const T* __restrict sum_dy_xhat, bool batch_stats, std::size_t m,
                    std::size_t channels, std::size_t positions, T* __restrict dx) {
    const std::size_t P = kOnePosition ? 1 : positions;
    const T inv_count = batch_stats ? T(1) / T(m * P) : T(0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = 0; c < channels; ++c) {
            const std::size_t row = (i * channels + c) * P;
            for (std::size_t p = 0; p < P; ++p)
                dx[row + p] = gamma[c] * inv_std[c] *
                              (dy[row + p] - sum_dy[c] * inv_count -
                               x_hat[row + p] * sum_dy_xhat[c] * inv_count);
        }
}

}  // namespace

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::forward(const Matrix<T>& x) {
    this->check_input_width(x);
    const std::size_t m = x.shape(0), n = options_.num_features(), P = positions_;
    const bool one_position = P == 1;
    normalized_with_batch_stats_ = this->is_training();

    if (normalized_with_batch_stats_) {
        if (m * P < 2) {
            Shape batch_shape = shape_;
            batch_shape.insert(batch_shape.begin(), m);
            throw std::invalid_argument(describe() + ": expected more than 1 value per " +
                                        (shape_.size() == 1 ? "feature" : "channel") +
                                        " when training, got input of shape " +
                                        shape_string(batch_shape) +
                                        " (use eval() to run single samples)");
        }
        const T count = T(m * P);
        T* __restrict mean = mean_.data();
        T* __restrict var = var_.data();
        // mu_c = (1/M) sum_{i,p} x_icp
        std::fill_n(mean, n, T(0));
        if (one_position)
            sum_per_channel<true>(x.data(), m, n, P, mean);
        else
            sum_per_channel<false>(x.data(), m, n, P, mean);
        for (std::size_t c = 0; c < n; ++c)
            mean[c] /= count;
        // sigma2_c = (1/M) sum_{i,p} (x_icp - mu_c)^2   (biased)
        std::fill_n(var, n, T(0));
        if (one_position)
            squared_deviations_per_channel<true>(x.data(), mean, m, n, P, var);
        else
            squared_deviations_per_channel<false>(x.data(), mean, m, n, P, var);
        for (std::size_t c = 0; c < n; ++c)
            var[c] /= count;
        // 1 / sqrt(sigma2 + eps)
        for (std::size_t c = 0; c < n; ++c)
            inv_std_(c) = T(1) / std::sqrt(var_(c) + T(options_.eps()));

        // running = (1 - f) running + f batch, f = momentum, or 1/batches for a cumulative average;
        // the running variance takes the unbiased sigma2 * M / (M - 1)
        ++num_batches_tracked_;
        const T factor =
            options_.momentum() ? T(*options_.momentum()) : T(1) / T(num_batches_tracked_);
        const T unbias = count / (count - T(1));
        for (std::size_t c = 0; c < n; ++c) {
            running_mean_(c) = (T(1) - factor) * running_mean_(c) + factor * mean_(c);
            running_var_(c) = (T(1) - factor) * running_var_(c) + factor * var_(c) * unbias;
        }
    } else {
        std::copy(running_mean_.begin(), running_mean_.end(), mean_.begin());
        // 1 / sqrt(running_var + eps)
        for (std::size_t c = 0; c < n; ++c)
            inv_std_(c) = T(1) / std::sqrt(running_var_(c) + T(options_.eps()));
    }

    ensure_shape(x_hat_, m, n * P);
    ensure_shape(output_, m, n * P);
    if (one_position)
        normalize<true>(x.data(), mean_.data(), inv_std_.data(), gamma_.data(), beta_.data(), m, n,
                        P, x_hat_.data(), output_.data());
    else
        normalize<false>(x.data(), mean_.data(), inv_std_.data(), gamma_.data(), beta_.data(), m, n,
                         P, x_hat_.data(), output_.data());
    return output_;
}

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::backward(const Matrix<T>& dy) {
    const std::size_t m = x_hat_.shape(0), n = options_.num_features(), P = positions_;
    const bool one_position = P == 1;
    this->check_grad_output(dy, m, n * P);

    // dbeta = sum_{i,p} dy        dgamma = sum_{i,p} dy xhat
    std::fill_n(sum_dy_.data(), n, T(0));
    std::fill_n(sum_dy_xhat_.data(), n, T(0));
    if (one_position)
        gradient_sums<true>(dy.data(), x_hat_.data(), m, n, P, sum_dy_.data(), sum_dy_xhat_.data());
    else
        gradient_sums<false>(dy.data(), x_hat_.data(), m, n, P, sum_dy_.data(),
                             sum_dy_xhat_.data());
    if (options_.affine())
        for (std::size_t c = 0; c < n; ++c) {
            beta_grad_(c) += sum_dy_(c);
            gamma_grad_(c) += sum_dy_xhat_(c);
        }
    if (!this->input_grad_needed_) return this->no_input_grad();

    ensure_shape(grad_input_, m, n * P);
    if (one_position)
        input_gradient<true>(dy.data(), x_hat_.data(), gamma_.data(), inv_std_.data(),
                             sum_dy_.data(), sum_dy_xhat_.data(), normalized_with_batch_stats_, m,
                             n, P, grad_input_.data());
    else
        input_gradient<false>(dy.data(), x_hat_.data(), gamma_.data(), inv_std_.data(),
                              sum_dy_.data(), sum_dy_xhat_.data(), normalized_with_batch_stats_, m,
                              n, P, grad_input_.data());
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
