#include "layers/conv_block.hpp"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "framework/blas_threads.hpp"
#include "framework/simd.hpp"
#include "layers/relu.hpp"

namespace bnlab {

template <typename T>
BasicConvBlock<T>::BasicConvBlock(BasicConv2d<T>& conv, BasicBatchNorm<T>* batchnorm,
                                  BasicMaxPool2d<T>* max_pool, BasicAvgPool2d<T>* avg_pool,
                                  bool relu)
    : conv_(conv), batchnorm_(batchnorm), max_pool_(max_pool), avg_pool_(avg_pool), relu_(relu) {
    if (max_pool_ && avg_pool_) throw std::logic_error("ConvBlock: two poolings");
    if (!relu_ && (!batchnorm_ || max_pool_ || avg_pool_))
        throw std::logic_error("ConvBlock: without ReLU, a Conv2d and a BatchNorm alone");
    if (!conv_.geometry().known()) throw_unknown_input_shape(conv_.describe());
    if (const BasicWindowLayer<T>* pool =
            max_pool_ ? static_cast<BasicWindowLayer<T>*>(max_pool_) : avg_pool_)
        pool_geometry_ = pool->geometry();
}

template <typename T>
std::unique_ptr<BasicConvBlock<T>> BasicConvBlock<T>::after(
    BasicConv2d<T>& conv, const std::vector<BasicLayer<T>*>& next) {
    if (!conv.geometry().known()) return nullptr;
    std::size_t i = 0;
    auto* batchnorm = i < next.size() ? dynamic_cast<BasicBatchNorm<T>*>(next[i]) : nullptr;
    if (batchnorm) {
        if (!batchnorm->fusable()) return nullptr;
        ++i;
    }
    if (i >= next.size() || !dynamic_cast<BasicReLU<T>*>(next[i])) {
        // Conv2d -> BatchNorm2d alone: BatchNorm's statistics while each sample's output is in
        // cache, and its gradient sent into the convolution's backward sample by sample.
        if (!batchnorm) return nullptr;
        return std::make_unique<BasicConvBlock>(conv, batchnorm, nullptr, nullptr, false);
    }
    ++i;
    auto* max_pool = i < next.size() ? dynamic_cast<BasicMaxPool2d<T>*>(next[i]) : nullptr;
    auto* avg_pool = i < next.size() ? dynamic_cast<BasicAvgPool2d<T>*>(next[i]) : nullptr;
    return std::make_unique<BasicConvBlock>(conv, batchnorm, max_pool, avg_pool);
}

template <typename T>
std::size_t BasicConvBlock<T>::size() const {
    return 1 + (batchnorm_ ? 1 : 0) + (relu_ ? 1 : 0) + (max_pool_ || avg_pool_ ? 1 : 0);
}

template <typename T>
std::string BasicConvBlock<T>::describe() const {
    return std::string("Conv2d") + (batchnorm_ ? " + BatchNorm" : "") + (relu_ ? " + ReLU" : "") +
           (max_pool_   ? " + MaxPool2d"
            : avg_pool_ ? " + AvgPool2d"
                        : "");
}

template <typename T>
std::size_t BasicConvBlock<T>::out_positions() const {
    return max_pool_ || avg_pool_ ? pool_geometry_.out_positions() : positions();
}

template <typename T>
PoolPixel<T> BasicConvBlock<T>::batchnorm_pixel(std::size_t c) const {
    return PoolPixel<T>{true,
                        batchnorm_->mean_(c),
                        batchnorm_->inv_std_(c),
                        batchnorm_->gamma_(c),
                        batchnorm_->beta_(c),
                        relu_};
}

template <typename T>
void BasicConvBlock<T>::activate_and_pool(std::size_t n, std::size_t c, const T* __restrict z,
                                          T* __restrict row) {
    const std::size_t P = positions(), OP = out_positions();
    const std::size_t out_offset = (n * channels() + c) * OP;
    const bool pooled = max_pool_ || avg_pool_;
    if (max_pool_) {
        // Without BatchNorm, max_j relu(z_j) = relu(max_j z_j), at the same window position
        // wherever the gradient can differ from 0 (relu'(z) = 0 where both are 0; a NaN wins
        // either way): the pooling reads z, and only the pooled values go through ReLU. With
        // BatchNorm, the pooling computes a = relu(bn(z)) pixel by pixel as it compares them,
        // and keeps z at each maximum for backward.
        T* __restrict y = output_.data() + out_offset;
        std::uint32_t* where = argmax_.data() + out_offset;
        if (!batchnorm_) {
            max_pool_channel(z, pool_geometry_, max_pool_->window(), PoolPixel<T>{}, y, where);
            for (std::size_t j = 0; j < OP; ++j)
                y[j] = ReLUFunction::value(y[j]);
            return;
        }
        if (batch_statistics_) {
            // Each window's extreme z and its position were found while the sample was in cache
            // (forward): a = relu(bn(z)) of that z alone.
            apply_pixel(z_at_max_.data() + out_offset, OP, batchnorm_pixel(c), y);
            return;
        }
        max_pool_channel(z, pool_geometry_, max_pool_->window(), batchnorm_pixel(c), y, where,
                         z_at_max_.data() + out_offset);
        return;
    }
    T* __restrict a = pooled ? row : output_.data() + out_offset;
    if (batchnorm_) {
        // y = gamma (z - mu) / sqrt(sigma2 + eps) + beta, then relu(y) (unless the block has no
        // ReLU)
        apply_pixel(z, P, batchnorm_pixel(c), a);
    } else {
        for (std::size_t p = 0; p < P; ++p)
            a[p] = ReLUFunction::value(z[p]);
    }
    if (avg_pool_)
        avg_pool_channel(a, pool_geometry_, avg_pool_->window(), output_.data() + out_offset);
}

template <typename T>
const Matrix<T>& BasicConvBlock<T>::forward(const Matrix<T>& input) {
    const std::size_t batch = input.shape(0), O = channels(), P = positions();
    batch_statistics_ = batchnorm_ && batchnorm_->uses_batch_statistics();
    if (batchnorm_ && !batch_statistics_)
        for (std::size_t c = 0; c < O; ++c)
            batchnorm_->use_running_statistics(c);
    if (batchnorm_) batchnorm_->normalized_with_batch_stats_ = batch_statistics_;
    const int parts = parts_for(batch);
    ensure_shape(output_, batch, O * out_positions());
    if (max_pool_) argmax_.resize({batch, O * out_positions()});
    if (max_pool_ && batchnorm_) ensure_shape(z_at_max_, batch, O * out_positions());
    ensure_shape(activation_rows_, std::size_t(parts), P);
    sample_statistics_.resize(batch * O * 2);

    // The convolution, sample by sample; each sample's statistics (training with BatchNorm),
    // or its whole block (otherwise), while its output is in cache. Without BatchNorm and
    // average pooling, backward needs only the block's output (relu'(z) = 1 where a > 0), so
    // z is not kept.
    const auto after_sample = [&](int part, std::size_t n, T* z) {
        if (!batch_statistics_) {
            for (std::size_t c = 0; c < O; ++c)
                activate_and_pool(n, c, z + c * P, activation_rows_.data() + std::size_t(part) * P);
            return;
        }
        for (std::size_t c = 0; c < O; ++c) {
            // the sample's mean_nc = (1/P) sum_p z, and M2_nc = sum_p (z - mean_nc)^2
            double mean, squares;
            channel_moments(z + c * P, P, mean, squares);
            sample_statistics_[(n * O + c) * 2] = mean;
            sample_statistics_[(n * O + c) * 2 + 1] = squares;
            if (!max_pool_) continue;
            // a = relu(gamma (z - mu) inv_std + beta) never decreases as z grows when gamma >= 0
            // and never increases when gamma < 0 (each float operation rounds monotonically), so
            // each window's maximum of a is a at its largest z, or its smallest: found now, from
            // cache, and only those z are normalized once the statistics are known, instead of
            // every z read again. The same first position wins as with a, but where two
            // different z round to one value of a (a tie the separate layers break by order) or
            // where a = 0 (no gradient passes there either way).
            const std::size_t OP = out_positions(), out_offset = (n * O + c) * OP;
            T* __restrict z_at_max = z_at_max_.data() + out_offset;
            const bool smallest = batchnorm_->gamma_(c) < T(0);
            // z, or -z = -1 ((z - 0) 1) + (-0), every step exact (+0 would turn -0 into +0)
            const PoolPixel<T> pixel =
                smallest ? PoolPixel<T>{true, T(0), T(1), T(-1), T(-0.0), false} : PoolPixel<T>{};
            max_pool_channel(z + c * P, pool_geometry_, max_pool_->window(), pixel, z_at_max,
                             argmax_.data() + out_offset);
            // the smallest z, from the largest -z
            if (smallest)
                for (std::size_t j = 0; j < OP; ++j)
                    z_at_max[j] = -z_at_max[j];
        }
    };
    conv_.forward_samples(input, after_sample, backward_reads_z());
    if (!batch_statistics_) return output_;

    // BatchNorm's own check, after the convolution's (as the layers one by one), before any
    // statistic changes.
    batchnorm_->start_training_batch(batch, double(batch * P));
    for (std::size_t c = 0; c < O; ++c) {
        // the samples' moments merged in sample order (Moments, batch_norm.hpp)
        Moments moments;
        for (std::size_t n = 0; n < batch; ++n) {
            const double* sample = sample_statistics_.data() + (n * O + c) * 2;
            moments.merge(double(P), sample[0], sample[1]);
        }
        // mu_c, and sigma2_c = M2 / M (biased)
        batchnorm_->mean_(c) = T(moments.mean);
        batchnorm_->var_(c) = T(moments.variance());
        batchnorm_->use_batch_statistics(c, T(moments.count));
    }
    run_parts(parts, batch, [&](int part, std::size_t first, std::size_t end) {
        T* row = activation_rows_.data() + std::size_t(part) * P;
        for (std::size_t n = first; n < end; ++n)
            for (std::size_t c = 0; c < O; ++c)
                activate_and_pool(n, c, conv_.output().data() + (n * O + c) * P, row);
    });
    return output_;
}

template <typename T>
void BasicConvBlock<T>::gradient_before_relu(const Matrix<T>& grad_output, std::size_t n,
                                             std::size_t c, const T* __restrict z,
                                             T* __restrict dz) const {
    const std::size_t P = positions(), OP = out_positions();
    const T* __restrict dy = grad_output.data() + (n * channels() + c) * OP;
    if (avg_pool_) {
        std::fill_n(dz, P, T(0));
        avg_pool_channel_backward(dy, pool_geometry_, avg_pool_->window(), dz);
    } else {
        std::copy_n(dy, P, dz);
    }
    // dx = dy relu'(a), relu'(a) = 1 where a > 0 (NaN: 0), a computed again from z, or without
    // pooling read from the output (z > 0 exactly where relu(z) > 0)
    if (!batchnorm_) {
        const T* __restrict a = avg_pool_ ? z : output_.data() + (n * channels() + c) * OP;
        for (std::size_t p = 0; p < P; ++p)
            dz[p] *= T(a[p] > T(0));
        return;
    }
    const T mean = batchnorm_->mean_(c), inv_std = batchnorm_->inv_std_(c),
            gamma = batchnorm_->gamma_(c), beta = batchnorm_->beta_(c);
    for (std::size_t p = 0; p < P; ++p)
        dz[p] *= T(gamma * ((z[p] - mean) * inv_std) + beta > T(0));
}

template <typename T>
void BasicConvBlock<T>::scatter_through_max_pool(const Matrix<T>& grad_output, std::size_t n,
                                                 std::size_t c, const T* __restrict z, T inv_count,
                                                 T* __restrict dz) const {
    const std::size_t P = positions(), offset = (n * channels() + c) * out_positions();
    const T* __restrict dy = grad_output.data() + offset;
    const std::uint32_t* __restrict where = argmax_.data() + offset;
#if defined(__x86_64__)
    if constexpr (std::is_same_v<T, float>) {
        const Window& w = max_pool_->window();
        if (layers_use_avx2() && w.kernel == 2 && w.stride == 2 && w.padding == 0) {
            const T* at_max = (batchnorm_ ? z_at_max_.data() : output_.data()) + offset;
            MaxPoolScatter scatter{z,
                                   dy,
                                   where,
                                   at_max,
                                   std::uint32_t(pool_geometry_.height),
                                   std::uint32_t(pool_geometry_.width),
                                   std::uint32_t(pool_geometry_.out_height),
                                   std::uint32_t(pool_geometry_.out_width),
                                   batchnorm_ != nullptr};
            if (batchnorm_) {
                scatter.mean = batchnorm_->mean_(c);
                scatter.inv_std = batchnorm_->inv_std_(c);
                scatter.gamma = batchnorm_->gamma_(c);
                scatter.beta = batchnorm_->beta_(c);
                scatter.scale = scatter.gamma * scatter.inv_std;
                scatter.mean_dy = batchnorm_->sum_dy_(c) * inv_count;
                scatter.mean_dy_xhat = batchnorm_->sum_dy_xhat_(c) * inv_count;
            }
            if (layers_use_avx512()) return max_pool_scatter_2x2_avx512(scatter, dz);
            return max_pool_scatter_2x2_avx2(scatter, dz);
        }
    }
#endif
    if (!batchnorm_) {
        // dz[argmax] += dy relu'(z), relu'(z) = 1 where the window's output relu(z) > 0; every
        // other position gets 0
        const T* __restrict a = output_.data() + offset;
        std::fill_n(dz, P, T(0));
        for (std::size_t j = 0; j < out_positions(); ++j)
            dz[where[j]] += dy[j] * T(a[j] > T(0));
        return;
    }
    const T mean = batchnorm_->mean_(c), inv_std = batchnorm_->inv_std_(c),
            gamma = batchnorm_->gamma_(c), beta = batchnorm_->beta_(c);
    const T scale = gamma * inv_std, mean_dy = batchnorm_->sum_dy_(c) * inv_count,
            mean_dy_xhat = batchnorm_->sum_dy_xhat_(c) * inv_count;
    // dx = gamma / sqrt(sigma2 + eps) (dy - mean(dy) - xhat mean(dy xhat)): first the means'
    // part, at every position, then dy, at the maxima, where relu'(a) = 1
    for (std::size_t p = 0; p < P; ++p)
        dz[p] = scale * (-mean_dy - (z[p] - mean) * inv_std * mean_dy_xhat);
    const T* __restrict z_at_max = z_at_max_.data() + offset;
    for (std::size_t j = 0; j < out_positions(); ++j) {
        const T a = gamma * ((z_at_max[j] - mean) * inv_std) + beta;
        dz[where[j]] += scale * dy[j] * T(a > T(0));
    }
}

void relu_batchnorm_grad_sums(const float* dy, const float* z, std::size_t n,
                              const PoolPixel<float>& batchnorm, double& sum_d,
                              double& sum_d_xhat) {
#if defined(__x86_64__)
    if (layers_use_avx512())
        return relu_batchnorm_grad_sums_avx512(dy, z, n, batchnorm, sum_d, sum_d_xhat);
    if (layers_use_avx2())
        return relu_batchnorm_grad_sums_avx2(dy, z, n, batchnorm, sum_d, sum_d_xhat);
#endif
    relu_batchnorm_grad_sums<float>(dy, z, n, batchnorm, sum_d, sum_d_xhat);
}

void relu_batchnorm_input_grad(const float* dy, const float* z, std::size_t n,
                               const PoolPixel<float>& batchnorm, float sum_dy, float sum_dy_xhat,
                               float inv_count, float* dz) {
#if defined(__x86_64__)
    if (layers_use_avx2())
        return relu_batchnorm_input_grad_avx2(dy, z, n, batchnorm, sum_dy, sum_dy_xhat, inv_count,
                                              dz);
#endif
    relu_batchnorm_input_grad<float>(dy, z, n, batchnorm, sum_dy, sum_dy_xhat, inv_count, dz);
}

template <typename T>
const Matrix<T>& BasicConvBlock<T>::backward(const Matrix<T>& grad_output) {
    const std::size_t batch = output_.shape(0), O = channels(), P = positions();
    if (conv_.output().shape(0) != batch || output_.shape(1) == 0)
        throw std::logic_error("ConvBlock: backward before forward");
    if (grad_output.shape(0) != batch || grad_output.shape(1) != output_.shape(1))
        throw std::invalid_argument(describe() + ": backward expected a gradient of shape " +
                                    shape_string(batch, output_.shape(1)) + ", got " +
                                    shape_string(grad_output.shape(0), grad_output.shape(1)));
    const int parts = parts_for(batch);
    ensure_shape(grad_z_, std::size_t(parts), O * P);
    const T* z_all = conv_.output().data();

    if (batchnorm_) {
        // dbeta = sum_{i,p} dy        dgamma = sum_{i,p} dy xhat   (dy: BatchNorm's output
        // gradient), each sample's sums first, in double, then added in sample order
        run_parts(parts, batch, [&](int part, std::size_t first, std::size_t end) {
            T* dz = grad_z_.data() + std::size_t(part) * O * P;
            for (std::size_t n = first; n < end; ++n)
                for (std::size_t c = 0; c < O; ++c) {
                    const T* __restrict z = z_all + (n * O + c) * P;
                    const T mean = batchnorm_->mean_(c), inv_std = batchnorm_->inv_std_(c);
                    double* sums = sample_statistics_.data() + (n * O + c) * 2;
                    const PoolPixel<T> bn = batchnorm_pixel(c);
                    if (max_pool_) {
                        // Only each window's maximum has a gradient: the sums over those.
                        const std::size_t offset = (n * O + c) * out_positions();
                        relu_batchnorm_grad_sums(grad_output.data() + offset,
                                                 z_at_max_.data() + offset, out_positions(), bn,
                                                 sums[0], sums[1]);
                    } else if (!avg_pool_) {
                        relu_batchnorm_grad_sums(grad_output.data() + (n * O + c) * P, z, P, bn,
                                                 sums[0], sums[1]);
                    } else {
                        gradient_before_relu(grad_output, n, c, z, dz);
                        const SumPair pair = sum_pairs_in_16_lanes(P, [&](std::size_t p) {
                            return SumPair{double(dz[p]),
                                           double(dz[p]) * double((z[p] - mean) * inv_std)};
                        });
                        sums[0] = pair.first;
                        sums[1] = pair.second;
                    }
                }
        });
        for (std::size_t c = 0; c < O; ++c) {
            double sum_dy = 0.0, sum_dy_xhat = 0.0;
            for (std::size_t n = 0; n < batch; ++n) {
                sum_dy += sample_statistics_[(n * O + c) * 2];
                sum_dy_xhat += sample_statistics_[(n * O + c) * 2 + 1];
            }
            batchnorm_->sum_dy_(c) = T(sum_dy);
            batchnorm_->sum_dy_xhat_(c) = T(sum_dy_xhat);
            // A BatchNorm frozen entirely trains no gamma and beta (they are buffers).
            if (batchnorm_->options().affine() &&
                batchnorm_->options().freeze() != BatchNormFreeze::all) {
                batchnorm_->beta_grad_(c) += T(sum_dy);
                batchnorm_->gamma_grad_(c) += T(sum_dy_xhat);
            }
        }
    }
    // 1/M, or 0 when the statistics were the running ones (constants)
    const T inv_count = batch_statistics_ ? T(1) / T(batch * P) : T(0);
    return conv_.backward_samples([&](int part, std::size_t n) -> const T* {
        T* dz = grad_z_.data() + std::size_t(part) * O * P;
        for (std::size_t c = 0; c < O; ++c) {
            const T* __restrict z = z_all + (n * O + c) * P;
            T* __restrict dz_c = dz + c * P;
            if (max_pool_) {
                scatter_through_max_pool(grad_output, n, c, z, inv_count, dz_c);
                continue;
            }
            if (batchnorm_ && !avg_pool_) {
                relu_batchnorm_input_grad(grad_output.data() + (n * O + c) * P, z, P,
                                          batchnorm_pixel(c), batchnorm_->sum_dy_(c),
                                          batchnorm_->sum_dy_xhat_(c), inv_count, dz_c);
                continue;
            }
            gradient_before_relu(grad_output, n, c, z, dz_c);
            if (!batchnorm_) continue;
            const T mean = batchnorm_->mean_(c), inv_std = batchnorm_->inv_std_(c),
                    gamma = batchnorm_->gamma_(c), sum_dy = batchnorm_->sum_dy_(c),
                    sum_dy_xhat = batchnorm_->sum_dy_xhat_(c);
            // after average pooling: dx = gamma / sqrt(sigma2 + eps) (dy - mean(dy) - xhat
            // mean(dy xhat)), dy the pooling's gradient times relu'
            for (std::size_t p = 0; p < P; ++p) {
                const T x_hat = (z[p] - mean) * inv_std;
                dz_c[p] = gamma * inv_std *
                          (dz_c[p] - sum_dy * inv_count - x_hat * sum_dy_xhat * inv_count);
            }
        }
        return dz;
    });
}

template class BasicConvBlock<float>;
template class BasicConvBlock<double>;

}  // namespace bnlab
