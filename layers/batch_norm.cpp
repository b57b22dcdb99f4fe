#include "layers/batch_norm.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "framework/blas_threads.hpp"
#include "framework/simd.hpp"

namespace bnlab {

void moments_from_shifted_sums(double shift, SumPair sums, std::size_t n, double& mean,
                               double& squares) {
    const double per_value = n > 0 ? sums.first / double(n) : 0.0;
    mean = shift + per_value;
    squares = sums.second - sums.first * per_value;
    // rounding may leave a tiny negative M2 where the values are (nearly) all equal
    if (squares < 0.0) squares = 0.0;
}

void channel_moments(const float* x, std::size_t n, double& mean, double& squares) {
#if defined(__x86_64__)
    if (layers_use_avx512()) return channel_moments_avx512(x, n, mean, squares);
    if (layers_use_avx2()) return channel_moments_avx2(x, n, mean, squares);
#endif
    channel_moments<float>(x, n, mean, squares);
}

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
      sum_dy_xhat_(xt::zeros<T>({options.num_features()})),
      double_sums_(2 * options.num_features()) {
    if (options.num_features() == 0)
        throw std::invalid_argument("BatchNorm: num_features must be positive");
    if (!(options.eps() > 0.0))
        throw std::invalid_argument("BatchNorm: eps must be positive, got " +
                                    number_string(options.eps()));
    if (options.momentum() && !(*options.momentum() >= 0.0 && *options.momentum() <= 1.0))
        throw std::invalid_argument("BatchNorm: momentum must be in [0, 1], got " +
                                    number_string(*options.momentum()));
    options_.freeze(BatchNormFreeze::none);  // until freeze() has checked it
    freeze(options.freeze());
}

template <typename T>
void BasicBatchNorm<T>::freeze(BatchNormFreeze freeze) {
    if (freeze != BatchNormFreeze::none && !options_.track_running_stats())
        throw std::invalid_argument(
            describe() +
            ": cannot be frozen: without running statistics (track_running_stats) "
            "it has none to normalize with");
    options_.freeze(freeze);
}

template <typename T>
std::string BasicBatchNorm<T>::input_shape_problem(const Shape& input) const {
    if (input.empty() || input[0] != options_.num_features())
        return "expects " + std::to_string(options_.num_features()) + " features or channels, [" +
               std::to_string(options_.num_features()) + "] or [" +
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

// The loops below see a batch as [m, C, P] (sample, channel, position) and handle the channels
// [first, end): the spatial layer splits its channels over bnlab's threads (each channel's
// arithmetic is the same however they are split). kOnePosition compiles the 1-D layer (P = 1)
// with the position loop gone, so that its loops run along the features of a row, which the
// compiler vectorizes: one text, two instantiations. All pointers are restrict-qualified: GCC
// did not vectorize these loops on pointers into the layer's members.

struct Channels {
    std::size_t first, end;
};

// Sums are in Sum, double (as PyTorch's CPU BatchNorm; over m H W values float loses digits, and
// over m values a large offset does); over a channel's P positions they keep 8 running partial
// sums (sum_in_lanes, tensor.hpp).

// sum_c += sum_{i,p} x_icp
template <bool kOnePosition, typename T, typename Sum>
void sum_per_channel(const T* __restrict x, std::size_t m, std::size_t C, std::size_t positions,
                     Channels channels, Sum* __restrict sum) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = channels.first; c < channels.end; ++c) {
            const T* __restrict values = x + (i * C + c) * P;
            if constexpr (kOnePosition)
                sum[c] += values[0];
            else
                sum[c] += sum_in_lanes<Sum>(P, [&](std::size_t p) { return Sum(values[p]); });
        }
}

// sum_c += sum_{i,p} (x_icp - mu_c)^2
template <bool kOnePosition, typename T, typename Sum>
void squared_deviations_per_channel(const T* __restrict x, const Sum* __restrict mean,
                                    std::size_t m, std::size_t C, std::size_t positions,
                                    Channels channels, Sum* __restrict sum) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = channels.first; c < channels.end; ++c) {
            const T* __restrict values = x + (i * C + c) * P;
            if constexpr (kOnePosition) {
                const Sum centered = Sum(values[0]) - mean[c];
                sum[c] += centered * centered;
            } else {
                sum[c] += sum_in_lanes<Sum>(P, [&](std::size_t p) {
                    const Sum centered = Sum(values[p]) - mean[c];
                    return centered * centered;
                });
            }
        }
}

template <bool kOnePosition, typename T>
void normalize(const T* __restrict x, const T* __restrict mean, const T* __restrict inv_std,
               const T* __restrict gamma, const T* __restrict beta, std::size_t m, std::size_t C,
               std::size_t positions, Channels channels, T* __restrict x_hat, T* __restrict y) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = channels.first; c < channels.end; ++c) {
            const std::size_t row = (i * C + c) * P;
            for (std::size_t p = 0; p < P; ++p) {
                // xhat = (x - mu) / sqrt(sigma2 + eps)
                x_hat[row + p] = (x[row + p] - mean[c]) * inv_std[c];
                // y = gamma xhat + beta
                y[row + p] = gamma[c] * x_hat[row + p] + beta[c];
            }
        }
}

// sum_dy_c += sum_{i,p} dy_icp        sum_dy_xhat_c += sum_{i,p} dy_icp xhat_icp
template <bool kOnePosition, typename T, typename Sum>
void gradient_sums(const T* __restrict dy, const T* __restrict x_hat, std::size_t m, std::size_t C,
                   std::size_t positions, Channels channels, Sum* __restrict sum_dy,
                   Sum* __restrict sum_dy_xhat) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = channels.first; c < channels.end; ++c) {
            const std::size_t row = (i * C + c) * P;
            if constexpr (kOnePosition) {
                sum_dy[c] += Sum(dy[row]);
                sum_dy_xhat[c] += Sum(dy[row]) * Sum(x_hat[row]);
            } else {
                sum_dy[c] += sum_in_lanes<Sum>(P, [&](std::size_t p) { return Sum(dy[row + p]); });
                sum_dy_xhat[c] += sum_in_lanes<Sum>(
                    P, [&](std::size_t p) { return Sum(dy[row + p]) * Sum(x_hat[row + p]); });
            }
        }
}

// dx = gamma / sqrt(sigma2 + eps) * (dy - mean(dy) - xhat * mean(dy xhat)), the means over the
// M values of each channel; when the statistics were the running ones, constants,
// dx = gamma / sqrt(running_var + eps) dy.
// inv_count: 1/M, or 0 for the running statistics.
template <bool kOnePosition, typename T>
void input_gradient(const T* __restrict dy, const T* __restrict x_hat, const T* __restrict gamma,
                    const T* __restrict inv_std, const T* __restrict sum_dy,
                    const T* __restrict sum_dy_xhat, T inv_count, std::size_t m, std::size_t C,
                    std::size_t positions, Channels channels, T* __restrict dx) {
    const std::size_t P = kOnePosition ? 1 : positions;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t c = channels.first; c < channels.end; ++c) {
            const std::size_t row = (i * C + c) * P;
            for (std::size_t p = 0; p < P; ++p)
                dx[row + p] = gamma[c] * inv_std[c] *
                              (dy[row + p] - sum_dy[c] * inv_count -
                               x_hat[row + p] * sum_dy_xhat[c] * inv_count);
        }
}

// Runs body(channels) on parts of the C channels at once: the spatial layer's passes over
// m P values per channel share bnlab's threads; the 1-D layer's rows are too short to split.
template <typename Body>
void for_channel_parts(std::size_t C, std::size_t positions, Body body) {
    run_parts(positions == 1 ? 1 : parts_for(C), C, [&](int, std::size_t first, std::size_t end) {
        body(Channels{first, end});
    });
}

}  // namespace

template <typename T>
void BasicBatchNorm<T>::synchronized_statistics(const Matrix<T>& x) {
    const std::size_t m = x.shape(0), n = options_.num_features(), P = positions_;
    // This process's count, mean and sum of squared deviations per channel, in double.
    local_statistics_.assign(3 * n, 0.0);
    for (std::size_t c = 0; c < n; ++c) {
        double sum = 0.0;
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t p = 0; p < P; ++p)
                sum += double(x.data()[(i * n + c) * P + p]);
        const double count = double(m * P), mean = count > 0 ? sum / count : 0.0;
        double squares = 0.0;
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t p = 0; p < P; ++p) {
                const double centered = double(x.data()[(i * n + c) * P + p]) - mean;
                squares += centered * centered;
            }
        local_statistics_[3 * c] = count;
        local_statistics_[3 * c + 1] = mean;
        local_statistics_[3 * c + 2] = squares;
    }
    const std::size_t processes = std::size_t(communicator_->size());
    gathered_statistics_.resize(processes * 3 * n);
    communicator_->allgather(local_statistics_.data(), 3 * n, gathered_statistics_.data());
    for (std::size_t c = 0; c < n; ++c) {
        Moments moments;
        for (std::size_t r = 0; r < processes; ++r) {
            const double* other = gathered_statistics_.data() + r * 3 * n + 3 * c;
            moments.merge(other[0], other[1], other[2]);
        }
        global_count_ = moments.count;
        mean_(c) = T(moments.mean);
        var_(c) = T(moments.variance());
    }
}

template <typename T>
void BasicBatchNorm<T>::start_training_batch(std::size_t m, double count) {
    if (count < 2) {
        Shape batch_shape = shape_;
        batch_shape.insert(batch_shape.begin(), m);
        throw std::invalid_argument(
            describe() + ": expected more than 1 value per " +
            (shape_.size() == 1 ? "feature" : "channel") + " when training, got input of shape " +
            shape_string(batch_shape) + " (use eval() to run single samples)");
    }
    if (options_.track_running_stats()) ++num_batches_tracked_;
}

template <typename T>
void BasicBatchNorm<T>::use_batch_statistics(std::size_t c, T count) {
    // running = (1 - f) running + f batch, f = momentum, or 1/batches for a cumulative average
    const T factor = options_.momentum() ? T(*options_.momentum()) : T(1) / T(num_batches_tracked_);
    // 1 / sqrt(sigma2 + eps)
    inv_std_(c) = T(1) / std::sqrt(var_(c) + T(options_.eps()));
    before_running_update(c);
    if (options_.track_running_stats()) {
        // running = (1 - f) running + f batch; the running variance takes the unbiased
        // sigma2 * M / (M - 1)
        const T unbias = count / (count - T(1));
        running_mean_(c) = (T(1) - factor) * running_mean_(c) + factor * mean_(c);
        running_var_(c) = (T(1) - factor) * running_var_(c) + factor * var_(c) * unbias;
    }
    after_running_update(c);
}

template <typename T>
void BasicBatchNorm<T>::use_running_statistics(std::size_t c) {
    mean_(c) = running_mean_(c);
    // 1 / sqrt(running_var + eps)
    inv_std_(c) = T(1) / std::sqrt(running_var_(c) + T(options_.eps()));
}

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::forward(const Matrix<T>& x) {
    const std::size_t m = x.shape(0), n = options_.num_features(), P = positions_;
    normalized_with_batch_stats_ = uses_batch_statistics();
    const bool synchronized = normalized_with_batch_stats_ && communicator_;
    // A process's share of a synchronized batch may be empty (its width is still checked).
    if (!(synchronized && m == 0) || x.shape(1) != n * P) this->check_input_width(x);
    const bool one_position = P == 1;
    if (synchronized) synchronized_statistics(x);
    const double batch_count = synchronized ? global_count_ : double(m * P);
    if (synchronized && batch_count < 2)
        throw std::invalid_argument(describe() + ": expected more than 1 value per " +
                                    (shape_.size() == 1 ? "feature" : "channel") +
                                    " when training, got " + number_string(batch_count) +
                                    " over the " + std::to_string(communicator_->size()) +
                                    " processes of a synchronized batch");
    if (normalized_with_batch_stats_) start_training_batch(m, batch_count);
    ensure_shape(x_hat_, m, n * P);
    ensure_shape(output_, m, n * P);
    const T count = T(batch_count);

    for_channel_parts(n, P, [&](Channels channels) {
        T* __restrict mean = mean_.data();
        T* __restrict var = var_.data();
        if (normalized_with_batch_stats_ && !synchronized) {
            // In double, then rounded once.
            double* __restrict sum_mean = double_sums_.data();
            double* __restrict sum_var = double_sums_.data() + n;
            // mu_c = (1/M) sum_{i,p} x_icp
            std::fill(sum_mean + channels.first, sum_mean + channels.end, 0.0);
            if (one_position)
                sum_per_channel<true>(x.data(), m, n, P, channels, sum_mean);
            else
                sum_per_channel<false>(x.data(), m, n, P, channels, sum_mean);
            for (std::size_t c = channels.first; c < channels.end; ++c) {
                sum_mean[c] /= batch_count;
                mean[c] = T(sum_mean[c]);
            }
            // sigma2_c = (1/M) sum_{i,p} (x_icp - mu_c)^2   (biased)
            std::fill(sum_var + channels.first, sum_var + channels.end, 0.0);
            if (one_position)
                squared_deviations_per_channel<true>(x.data(), sum_mean, m, n, P, channels,
                                                     sum_var);
            else
                squared_deviations_per_channel<false>(x.data(), sum_mean, m, n, P, channels,
                                                      sum_var);
            for (std::size_t c = channels.first; c < channels.end; ++c)
                var[c] = T(sum_var[c] / batch_count);
        }
        for (std::size_t c = channels.first; c < channels.end; ++c)
            if (normalized_with_batch_stats_)
                use_batch_statistics(c, count);
            else
                use_running_statistics(c);
        if (one_position)
            normalize<true>(x.data(), mean, inv_std_.data(), gamma_.data(), beta_.data(), m, n, P,
                            channels, x_hat_.data(), output_.data());
        else
            normalize<false>(x.data(), mean, inv_std_.data(), gamma_.data(), beta_.data(), m, n, P,
                             channels, x_hat_.data(), output_.data());
    });
    return output_;
}

template <typename T>
const Matrix<T>& BasicBatchNorm<T>::backward(const Matrix<T>& dy) {
    const std::size_t m = x_hat_.shape(0), n = options_.num_features(), P = positions_;
    const bool one_position = P == 1;
    const bool synchronized = normalized_with_batch_stats_ && communicator_;
    if (!(synchronized && m == 0) || dy.shape(1) != n * P) this->check_grad_output(dy, m, n * P);
    const bool input_grad = this->input_grad_needed_;
    if (input_grad) ensure_shape(grad_input_, m, n * P);

    // dbeta = sum_{i,p} dy        dgamma = sum_{i,p} dy xhat
    for_channel_parts(n, P, [&](Channels channels) {
        // In double, then rounded once.
        double* __restrict sum_dy = double_sums_.data();
        double* __restrict sum_dy_xhat = double_sums_.data() + n;
        std::fill(sum_dy + channels.first, sum_dy + channels.end, 0.0);
        std::fill(sum_dy_xhat + channels.first, sum_dy_xhat + channels.end, 0.0);
        if (one_position)
            gradient_sums<true>(dy.data(), x_hat_.data(), m, n, P, channels, sum_dy, sum_dy_xhat);
        else
            gradient_sums<false>(dy.data(), x_hat_.data(), m, n, P, channels, sum_dy, sum_dy_xhat);
        for (std::size_t c = channels.first; c < channels.end; ++c) {
            sum_dy_(c) = T(sum_dy[c]);
            sum_dy_xhat_(c) = T(sum_dy_xhat[c]);
        }
        if (options_.affine() && options_.freeze() != BatchNormFreeze::all)
            for (std::size_t c = channels.first; c < channels.end; ++c) {
                beta_grad_(c) += sum_dy_(c);
                gamma_grad_(c) += sum_dy_xhat_(c);
            }
    });
    // Synchronized, the means in dx are over the global batch: the sums of every process
    // (which every process takes part in, whether it needs dx or not).
    T* sum_dy = sum_dy_.data();
    T* sum_dy_xhat = sum_dy_xhat_.data();
    if (synchronized) {
        if (global_sums_.size() != 2 * n) global_sums_.resize({2 * n});
        std::copy_n(sum_dy_.data(), n, global_sums_.data());
        std::copy_n(sum_dy_xhat_.data(), n, global_sums_.data() + n);
        communicator_->allreduce_sum(global_sums_.data(), 2 * n);
        sum_dy = global_sums_.data();
        sum_dy_xhat = global_sums_.data() + n;
    }
    if (!input_grad) return this->no_input_grad();
    if (normalized_with_batch_stats_) adjust_input_gradient_sums(sum_dy, sum_dy_xhat);
    const T inv_count = !normalized_with_batch_stats_ ? T(0)
                        : synchronized                ? T(1) / T(global_count_)
                                                      : T(1) / T(m * P);
    for_channel_parts(n, P, [&](Channels channels) {
        if (one_position)
            input_gradient<true>(dy.data(), x_hat_.data(), gamma_.data(), inv_std_.data(), sum_dy,
                                 sum_dy_xhat, inv_count, m, n, P, channels, grad_input_.data());
        else
            input_gradient<false>(dy.data(), x_hat_.data(), gamma_.data(), inv_std_.data(), sum_dy,
                                  sum_dy_xhat, inv_count, m, n, P, channels, grad_input_.data());
    });
    return grad_input_;
}

template <typename T>
std::vector<Parameter<T>> BasicBatchNorm<T>::parameters() {
    if (!options_.affine() || options_.freeze() == BatchNormFreeze::all) return {};
    return {{"gamma", gamma_.data(), gamma_grad_.data(), gamma_.size()},
            {"beta", beta_.data(), beta_grad_.data(), beta_.size()}};
}

template <typename T>
std::vector<Buffer<T>> BasicBatchNorm<T>::buffers() {
    std::vector<Buffer<T>> buffers;
    if (options_.track_running_stats())
        buffers = {{"running_mean", running_mean_.data(), running_mean_.size()},
                   {"running_var", running_var_.data(), running_var_.size()}};
    if (options_.affine() && options_.freeze() == BatchNormFreeze::all) {
        buffers.push_back({"gamma", gamma_.data(), gamma_.size()});
        buffers.push_back({"beta", beta_.data(), beta_.size()});
    }
    return buffers;
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
    if (!options_.track_running_stats()) text << ", track_running_stats=false";
    if (options_.freeze() == BatchNormFreeze::statistics) text << ", frozen statistics";
    if (options_.freeze() == BatchNormFreeze::all) text << ", frozen";
    text << ")";
    return text.str();
}

template class BasicBatchNorm<float>;
template class BasicBatchNorm<double>;

}  // namespace bnlab
