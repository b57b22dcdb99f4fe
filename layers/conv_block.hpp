#pragma once
// The sequence users write after every convolution, run as one pass over each sample:
//   Conv2d -> [BatchNorm2d] -> ReLU -> [MaxPool2d | AvgPool2d]
// or Conv2d -> BatchNorm2d with no ReLU after it (the last convolution of a ResNet block's body,
// a projection shortcut), where the same passes run without ReLU.
// Layer by layer, each of these reads a whole feature map and writes another (6.4 MB for the
// first block of the cnn preset at batch 128), so the step waits on memory more than on its
// matrix products. Here each sample's convolution output z [O, OH OW] is used while it is still
// in cache:
//   forward    conv product -> per-channel mean and squared deviations of the sample (double)
//              [-> with max pooling: each window's largest z, or smallest where gamma < 0,
//                  and its position: where a is largest]
//              -> (the batch's statistics, merged per channel in sample order)
//              -> a = relu(gamma (z - mu) / sqrt(sigma2 + eps) + beta), one channel at a time
//                 in a scratch row, pooled at once into the next layer's input (with max
//                 pooling: of the z found, a quarter of them for a 2x2 window)
//   backward   the pooled gradient sent back through pooling and ReLU's mask (a > 0, a computed
//              again from z) -> per-channel sums dbeta = sum dy, dgamma = sum dy xhat
//              -> dz = gamma / sqrt(sigma2 + eps) (dy - mean(dy) - xhat mean(dy xhat)) in a
//                 scratch of one sample, used at once by the convolution's products
// Only z, the pooled output and each output's maximum position are stored; BatchNorm's and
// ReLU's outputs are never written. The numbers are the layers' own to float rounding (the
// statistics are summed in double); results do not depend on the thread count.
// Sequential builds a block when a Conv2d is followed by this sequence (Conv2d::fuse), unless
// fusion is off or the BatchNorm is synchronized over processes.

#include <cstdint>
#include <memory>
#include <vector>

#include "framework/layer.hpp"
#include "layers/avg_pool2d.hpp"
#include "layers/batch_norm.hpp"
#include "layers/conv2d.hpp"
#include "layers/max_pool2d.hpp"

namespace bnlab {

template <typename T>
class BasicConvBlock : public BasicFusedGroup<T> {
  public:
    // The layers of one block, which the block works on (their parameters, gradients and
    // running statistics); batchnorm, max_pool and avg_pool may be null (not both pools set).
    // Without `relu`, the block is a Conv2d and a BatchNorm alone (both pools null).
    BasicConvBlock(BasicConv2d<T>& conv, BasicBatchNorm<T>* batchnorm, BasicMaxPool2d<T>* max_pool,
                   BasicAvgPool2d<T>* avg_pool, bool relu = true);

    // The block `conv` heads in `next` (the layers after it), or nullptr.
    static std::unique_ptr<BasicConvBlock> after(BasicConv2d<T>& conv,
                                                 const std::vector<BasicLayer<T>*>& next);

    // input: [batch, C H W] -> output: [batch, O OH' OW'] (pooled, or [batch, O OH OW])
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;
    std::size_t size() const override;
    std::string describe() const override;

  private:
    // BatchNorm's (and ReLU's) formula for channel c, with the statistics it normalizes with.
    PoolPixel<T> batchnorm_pixel(std::size_t c) const;
    // Channel c of sample n: a = relu(bn(z)) into `row` [OH OW], then pooled into the output.
    void activate_and_pool(std::size_t n, std::size_t c, const T* z, T* row);
    // With max pooling, channel c of sample n's gradient before the convolution's output
    // (BatchNorm's input, or ReLU's without BatchNorm) into `dz` [OH OW], from the gradient at
    // each window's maximum alone; `inv_count` is 1/M, or 0 with the running statistics.
    void scatter_through_max_pool(const Matrix<T>& grad_output, std::size_t n, std::size_t c,
                                  const T* z, T inv_count, T* dz) const;
    // Without max pooling, channel c of sample n's gradient before ReLU: the output gradient
    // sent back through the average pooling (if any), times relu'(a), into `dz` [OH OW]. (With
    // BatchNorm and no pooling, backward runs relu_batchnorm_grad_sums and
    // relu_batchnorm_input_grad instead: one pass each.)
    void gradient_before_relu(const Matrix<T>& grad_output, std::size_t n, std::size_t c,
                              const T* z, T* dz) const;
    // The positions and channels of the convolution's output, and of the block's.
    std::size_t positions() const { return conv_.geometry().out_positions(); }
    std::size_t channels() const { return conv_.options().out_channels(); }
    std::size_t out_positions() const;
    // Whether backward reads the convolution's output z (BatchNorm's x hat, or relu'(z) under
    // an average pooling), so that forward keeps it.
    bool backward_reads_z() const { return batchnorm_ || avg_pool_; }

    BasicConv2d<T>& conv_;
    BasicBatchNorm<T>* batchnorm_;
    BasicMaxPool2d<T>* max_pool_;
    BasicAvgPool2d<T>* avg_pool_;
    bool relu_;
    WindowGeometry pool_geometry_;  // one channel of the convolution's output, pooled

    // Caches of the last forward, for backward.
    bool batch_statistics_ = false;          // BatchNorm normalized with the batch's?
    std::vector<double> sample_statistics_;  // [batch, O, 2]: each sample's mean and squared
                                             // deviations per channel, then the gradient sums
    xt::xtensor<std::uint32_t, 2> argmax_;   // [batch, O OH' OW']: the maximum's position in
                                             // its channel
    // With max pooling after BatchNorm: z at each window's maximum, so that BatchNorm's
    // backward sums read it in order.
    Matrix<T> z_at_max_;         // [batch, O OH' OW']
    Matrix<T> output_;           // [batch, O OH' OW']
    Matrix<T> activation_rows_;  // [threads, OH OW]: a, one channel at a time
    Matrix<T> grad_z_;           // [threads, O OH OW]: one sample's dz
};

// The gradient of one channel before a 2x2 max pooling with stride 2 and ReLU (and BatchNorm,
// when `batchnorm`): BasicConvBlock's scatter through the pooling on AVX2 (CPUs that have it:
// layers/simd_avx2.cpp), the same numbers.
struct MaxPoolScatter {
    const float* z;              // [H, W]: the convolution's output (read with BatchNorm only)
    const float* dy;             // [OH, OW]: the block's output gradient
    const std::uint32_t* where;  // [OH, OW]: each maximum's position in the channel
    const float* at_max;         // [OH, OW]: z at the maxima (BatchNorm), else the block's output
    std::uint32_t H, W, OH, OW;
    bool batchnorm;
    // BatchNorm's: mu, 1/sqrt(sigma2 + eps), gamma, beta, gamma/sqrt(sigma2 + eps), mean(dy),
    // mean(dy xhat)
    float mean = 0, inv_std = 0, gamma = 0, beta = 0, scale = 0, mean_dy = 0, mean_dy_xhat = 0;
};
void max_pool_scatter_2x2_avx2(const MaxPoolScatter& scatter, float* dz);
// The same on AVX-512 (layers/simd_avx512.cpp), 16 outputs a vector: the same bits.
void max_pool_scatter_2x2_avx512(const MaxPoolScatter& scatter, float* dz);
// BatchNorm's gradient sums through ReLU over n positions of one channel: with
// xhat = (z - mu) inv_std and d = dy relu'(gamma xhat + beta),
//   sum_d = sum d        sum_d_xhat = sum d xhat
// in double, as sum_pairs_in_16_lanes adds them. The fused block's backward takes them over each
// window's maximum (dy the pooled gradient, z at the maxima) or, without pooling, over every
// position. `batchnorm` gives mu, inv_std, gamma and beta; without batchnorm.relu (a block of
// Conv2d and BatchNorm alone), d = dy.
template <typename T>
void relu_batchnorm_grad_sums(const T* dy, const T* z, std::size_t n, const PoolPixel<T>& batchnorm,
                              double& sum_d, double& sum_d_xhat) {
    const SumPair sums = sum_pairs_in_16_lanes(n, [&](std::size_t i) {
        const T x_hat = (z[i] - batchnorm.mean) * batchnorm.inv_std;
        const double d = double(
            batchnorm.relu ? dy[i] * T(batchnorm.gamma * x_hat + batchnorm.beta > T(0)) : dy[i]);
        return SumPair{d, d * double(x_hat)};
    });
    sum_d = sums.first;
    sum_d_xhat = sums.second;
}
// The same sums, bit for bit, on AVX-512 or AVX2 where the CPU has it.
void relu_batchnorm_grad_sums(const float* dy, const float* z, std::size_t n,
                              const PoolPixel<float>& batchnorm, double& sum_d, double& sum_d_xhat);
// The AVX2 and AVX-512 kernels (layers/simd_avx2.cpp, simd_avx512.cpp), for CPUs that have them.
void relu_batchnorm_grad_sums_avx2(const float* dy, const float* z, std::size_t n,
                                   const PoolPixel<float>& batchnorm, double& sum_d,
                                   double& sum_d_xhat);
void relu_batchnorm_grad_sums_avx512(const float* dy, const float* z, std::size_t n,
                                     const PoolPixel<float>& batchnorm, double& sum_d,
                                     double& sum_d_xhat);

// BatchNorm's input gradient through ReLU at each of n positions of one channel (the fused
// block without pooling), dy the block's output gradient: with xhat = (z - mu) inv_std and
// d = dy relu'(gamma xhat + beta),
//   dz = gamma inv_std (d - sum_dy / M - xhat sum_dy_xhat / M)
// (inv_count = 1/M, or 0 when the statistics were the running ones); d = dy without
// batchnorm.relu.
template <typename T>
void relu_batchnorm_input_grad(const T* dy, const T* z, std::size_t n,
                               const PoolPixel<T>& batchnorm, T sum_dy, T sum_dy_xhat, T inv_count,
                               T* dz) {
    const T scale = batchnorm.gamma * batchnorm.inv_std, mean_dy = sum_dy * inv_count;
    for (std::size_t i = 0; i < n; ++i) {
        const T x_hat = (z[i] - batchnorm.mean) * batchnorm.inv_std;
        const T d =
            batchnorm.relu ? dy[i] * T(batchnorm.gamma * x_hat + batchnorm.beta > T(0)) : dy[i];
        dz[i] = scale * (d - mean_dy - x_hat * sum_dy_xhat * inv_count);
    }
}
// The same, bit for bit, on AVX2 where the CPU has it.
void relu_batchnorm_input_grad(const float* dy, const float* z, std::size_t n,
                               const PoolPixel<float>& batchnorm, float sum_dy, float sum_dy_xhat,
                               float inv_count, float* dz);
void relu_batchnorm_input_grad_avx2(const float* dy, const float* z, std::size_t n,
                                    const PoolPixel<float>& batchnorm, float sum_dy,
                                    float sum_dy_xhat, float inv_count, float* dz);

using ConvBlock = BasicConvBlock<float>;
extern template class BasicConvBlock<float>;
extern template class BasicConvBlock<double>;

}  // namespace bnlab
