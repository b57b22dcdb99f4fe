#include "layers/normalization.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "framework/blas_threads.hpp"

namespace bnlab {

template <typename T>
BasicSampleNorm<T>::BasicSampleNorm(double eps, bool affine, std::size_t affine_count, Shape shape)
    : eps_(eps),
      affine_(affine),
      shape_(std::move(shape)),
      gamma_(xt::ones<T>({affine_count})),
      beta_(xt::zeros<T>({affine_count})),
      gamma_grad_(xt::zeros<T>({affine_count})),
      beta_grad_(xt::zeros<T>({affine_count})),
      sums_(2 * affine_count) {
    if (!(eps > 0.0))
        throw std::invalid_argument("eps must be positive, got " + number_string(eps));
}

template <typename T>
void BasicSampleNorm<T>::set_input_shape(const Shape& input) {
    BasicLayer<T>::set_input_shape(input);
    shape_ = input;
}

namespace {

// Runs body(first, end) over the batch's samples: on bnlab's threads for feature maps, on the
// calling thread for the short rows of an MLP, where waking a team costs more than it saves.
template <typename Body>
void for_samples(std::size_t m, std::size_t sample_size, Body body) {
    constexpr std::size_t parallel_above = std::size_t(1) << 16;
    const int parts = m * sample_size > parallel_above ? parts_for(m) : 1;
    run_parts(parts, m, [&](int, std::size_t first, std::size_t end) { body(first, end); });
}

// Runs body(begin, end, a, per_element) over the K values of a block whose first value is value
// `first` of its sample, cut where the affine index changes its rule: a channel's positions share
// index a (stride > 1: per_element is std::false_type), while per element (stride 1: LayerNorm,
// or one position per channel) value p of [begin, end) has index a + p - begin, up to where the
// indices wrap around. The flag is a type, so that each body compiles two plain loops over a run,
// which vectorize.
template <typename Body>
void for_affine_runs(std::size_t first, std::size_t K, std::size_t stride, std::size_t affine_count,
                     Body body) {
    if (stride == 1) {
        for (std::size_t k = 0; k < K;) {
            const std::size_t a = (first + k) % affine_count;
            const std::size_t end = std::min(K, k + affine_count - a);
            body(k, end, a, std::true_type{});
            k = end;
        }
    } else {
        for (std::size_t k = 0; k < K; k += stride)
            body(k, k + stride, (first + k) / stride % affine_count, std::false_type{});
    }
}

}  // namespace

template <typename T>
const Matrix<T>& BasicSampleNorm<T>::forward(const Matrix<T>& x) {
    this->check_input_width(x);
    const std::size_t m = x.shape(0), S = x.shape(1);
    const Layout cut = layout();
    const std::size_t K = cut.block_size, stride = cut.affine_stride, blocks = S / K;
    const std::size_t affine_count = gamma_.size();
    kept_ = uses_kept_statistics();
    if (!kept_) check_block_size(m, K);
    ensure_shape(x_hat_, m, S);
    ensure_shape(output_, m, S);
    mean_.resize(m * blocks);
    var_.resize(m * blocks);
    inv_std_.resize(m * blocks);
    const T* gamma = gamma_.data();
    const T* beta = beta_.data();

    for_samples(m, S, [&](std::size_t first, std::size_t end) {
        for (std::size_t block = first * blocks; block < end * blocks; ++block) {
            const T* __restrict values = x.data() + block * K;
            if (kept_) {
                kept_statistics(block % blocks, blocks, mean_[block], inv_std_[block]);
            } else {
                // mu_b = (1/K) sum_k x_bk
                const double mean =
                    sum_in_lanes<double>(K, [&](std::size_t k) { return double(values[k]); }) /
                    double(K);
                // sigma2_b = (1/K) sum_k (x_bk - mu_b)^2   (biased)
                const double var = sum_in_lanes<double>(K,
                                                        [&](std::size_t k) {
                                                            const double centered =
                                                                double(values[k]) - mean;
                                                            return centered * centered;
                                                        }) /
                                   double(K);
                mean_[block] = T(mean);
                var_[block] = T(var);
                // 1 / sqrt(sigma2_b + eps)
                inv_std_[block] = T(1.0 / std::sqrt(var + eps_));
            }
            const T mean = mean_[block], inv_std = inv_std_[block];
            T* __restrict x_hat = x_hat_.data() + block * K;
            T* __restrict y = output_.data() + block * K;
            for_affine_runs(
                (block % blocks) * K, K, stride, affine_count,
                [&](std::size_t begin, std::size_t end, std::size_t a, auto per_element) {
                    for (std::size_t p = begin; p < end; ++p) {
                        const std::size_t j = per_element ? a + p - begin : a;
                        // xhat = (x - mu_b) / sqrt(sigma2_b + eps)
                        x_hat[p] = (values[p] - mean) * inv_std;
                        // y = gamma_a xhat + beta_a
                        y[p] = gamma[j] * x_hat[p] + beta[j];
                    }
                });
        }
    });
    if (!kept_ && this->is_training()) after_block_statistics(m, blocks);
    return output_;
}

template <typename T>
const Matrix<T>& BasicSampleNorm<T>::backward(const Matrix<T>& dy) {
    const std::size_t m = x_hat_.shape(0), S = x_hat_.shape(1);
    this->check_grad_output(dy, m, S);
    const Layout cut = layout();
    const std::size_t K = cut.block_size, stride = cut.affine_stride, blocks = S / K;
    const std::size_t affine_count = gamma_.size();

    if (affine_) {
        // dbeta_a = sum dy        dgamma_a = sum dy xhat     (in double, then rounded once)
        double* sum_dy = sums_.data();
        double* sum_dy_xhat = sums_.data() + affine_count;
        std::fill(sums_.begin(), sums_.end(), 0.0);
        for (std::size_t i = 0; i < m; ++i) {
            const T* __restrict grad = dy.data() + i * S;
            const T* __restrict x_hat = x_hat_.data() + i * S;
            for_affine_runs(
                0, S, stride, affine_count,
                [&](std::size_t begin, std::size_t end, std::size_t a, auto per_element) {
                    if constexpr (decltype(per_element)::value) {
                        for (std::size_t p = begin; p < end; ++p) {
                            sum_dy[a + p - begin] += double(grad[p]);
                            sum_dy_xhat[a + p - begin] += double(grad[p]) * double(x_hat[p]);
                        }
                    } else {
                        sum_dy[a] += sum_in_lanes<double>(
                            end - begin, [&](std::size_t p) { return double(grad[begin + p]); });
                        sum_dy_xhat[a] += sum_in_lanes<double>(end - begin, [&](std::size_t p) {
                            return double(grad[begin + p]) * double(x_hat[begin + p]);
                        });
                    }
                });
        }
        for (std::size_t a = 0; a < affine_count; ++a) {
            beta_grad_(a) += T(sum_dy[a]);
            gamma_grad_(a) += T(sum_dy_xhat[a]);
        }
    }
    if (!this->input_grad_needed_) return this->no_input_grad();

    ensure_shape(grad_input_, m, S);
    const T* gamma = gamma_.data();
    for_samples(m, S, [&](std::size_t first, std::size_t end) {
        for (std::size_t block = first * blocks; block < end * blocks; ++block) {
            const T* __restrict grad = dy.data() + block * K;
            const T* __restrict x_hat = x_hat_.data() + block * K;
            T* __restrict dx = grad_input_.data() + block * K;
            const std::size_t first = (block % blocks) * K;
            const T inv_std = inv_std_[block];
            // g = dy gamma_a; with kept statistics dx = g / sqrt(var + eps)
            double mean_g = 0.0, mean_g_xhat = 0.0;
            if (!kept_) {
                // mean(g), mean(g xhat) over the block's K values
                for_affine_runs(
                    first, K, stride, affine_count,
                    [&](std::size_t begin, std::size_t end, std::size_t a, auto per_element) {
                        const std::size_t length = end - begin;
                        if constexpr (decltype(per_element)::value) {
                            mean_g += sum_in_lanes<double>(length, [&](std::size_t p) {
                                return double(gamma[a + p]) * double(grad[begin + p]);
                            });
                            mean_g_xhat += sum_in_lanes<double>(length, [&](std::size_t p) {
                                return double(gamma[a + p]) * double(grad[begin + p]) *
                                       double(x_hat[begin + p]);
                            });
                        } else {
                            const double g = gamma[a];
                            mean_g += g * sum_in_lanes<double>(length, [&](std::size_t p) {
                                          return double(grad[begin + p]);
                                      });
                            mean_g_xhat +=
                                g * sum_in_lanes<double>(length, [&](std::size_t p) {
                                    return double(grad[begin + p]) * double(x_hat[begin + p]);
                                });
                        }
                    });
                mean_g /= double(K);
                mean_g_xhat /= double(K);
            }
            const T shift = T(mean_g), slope = T(mean_g_xhat);
            for_affine_runs(
                first, K, stride, affine_count,
                [&](std::size_t begin, std::size_t end, std::size_t a, auto per_element) {
                    for (std::size_t p = begin; p < end; ++p) {
                        const T g = gamma[per_element ? a + p - begin : a];
                        // dx = 1 / sqrt(sigma2_b + eps) (g - mean(g) - xhat mean(g xhat))
                        dx[p] = inv_std * (g * grad[p] - shift - x_hat[p] * slope);
                    }
                });
        }
    });
    return grad_input_;
}

template <typename T>
std::vector<Parameter<T>> BasicSampleNorm<T>::parameters() {
    if (!affine_) return {};
    return {{"gamma", gamma_.data(), gamma_grad_.data(), gamma_.size()},
            {"beta", beta_.data(), beta_grad_.data(), beta_.size()}};
}

template class BasicSampleNorm<float>;
template class BasicSampleNorm<double>;

}  // namespace bnlab
