#pragma once
// MaxPool2d (PyTorch's, square windows): each output is the largest value of its window in one
// channel; padding counts as -infinity, so a window's maximum is always one of its pixels:
//   y[c, oh, ow] = max_{kh,kw} x[c, oh s - p + kh, ow s - p + kw]
// Backward sends each output's gradient to the pixel that was the maximum: the first in the
// window on ties, and a NaN wins over anything before it, as in PyTorch's CPU kernel.

#include <cstdint>
#include <optional>

#include "framework/window.hpp"
#include "layers/relu.hpp"

namespace bnlab {

template <typename T>
class BasicMaxPool2d : public BasicWindowLayer<T> {
  public:
    // stride: the kernel size unless given (PyTorch's stride=None).
    explicit BasicMaxPool2d(std::size_t kernel_size,
                            std::optional<std::size_t> stride = std::nullopt,
                            std::size_t padding = 0);

    // input: [batch, C H W] -> output: [batch, C OH OW]
    const Matrix<T>& forward(const Matrix<T>& input) override;
    const Matrix<T>& backward(const Matrix<T>& grad_output) override;
    std::string describe() const override {
        return "MaxPool2d(" + window_string(this->window_) + ")";
    }

  private:
    // For backward: where each output's maximum was, as an index into its sample's row.
    xt::xtensor<std::uint32_t, 2> argmax_;  // [batch, C OH OW]
    Matrix<T> output_;                      // [batch, C OH OW]
    Matrix<T> grad_input_;                  // [batch, C H W]
};

// What the pooling compares at each pixel x: x itself, or, in a fused block
// (layers/conv_block.hpp), BatchNorm's output after ReLU,
//   relu(gamma ((x - mu) inv_std) + beta)
// computed as the two layers compute it, so that the maxima and their positions are theirs.
// Without `relu`, BatchNorm's output: a block of Conv2d and BatchNorm alone (which never pools),
// or, with mean 0, inv_std 1, gamma -1 and beta 0, -x (a fused block in training looks for each
// window's smallest z).
template <typename T>
struct PoolPixel {
    bool normalize = false;
    T mean = 0, inv_std = 1, gamma = 1, beta = 0;
    bool relu = true;
    T operator()(T x) const {
        if (!normalize) return x;
        const T y = gamma * ((x - mean) * inv_std) + beta;
        return relu ? ReLUFunction::value(y) : y;
    }
};

// y[i] = pixel(x[i]) for i < n: the fused block's BatchNorm and ReLU where nothing pools.
template <typename T>
void apply_pixel(const T* x, std::size_t n, const PoolPixel<T>& pixel, T* y) {
    for (std::size_t i = 0; i < n; ++i)
        y[i] = pixel(x[i]);
}
// The same, bit for bit, on AVX2 where the CPU has it.
void apply_pixel(const float* x, std::size_t n, const PoolPixel<float>& pixel, float* y);
void apply_pixel_avx2(const float* x, std::size_t n, const PoolPixel<float>& pixel, float* y);

// One channel [H, W] -> [OH, OW] of a sample: y = the maximum of `pixel` over each window, with
// the maximum's index in the channel in `where` and, unless `input_at_max` is null, the input
// x there. What forward does for each channel (with the plain pixel), and what a fused group
// does on a channel it has just computed.
template <typename T>
void max_pool_channel(const T* x, const WindowGeometry& g, const Window& w,
                      const PoolPixel<T>& pixel, T* y, std::uint32_t* where,
                      T* input_at_max = nullptr);

// max_pool_channel's 2x2 window with stride 2 on AVX2 (CPUs that have it: layers/simd_avx2.cpp),
// for a channel H x W with OH x OW outputs.
void max_pool_channel_2x2_avx2(const float* x, std::uint32_t H, std::uint32_t W, std::uint32_t OH,
                               std::uint32_t OW, const PoolPixel<float>& pixel, float* y,
                               std::uint32_t* where, float* x_at_max);
// The same on AVX-512 (layers/simd_avx512.cpp), 16 outputs a vector: the same bits.
void max_pool_channel_2x2_avx512(const float* x, std::uint32_t H, std::uint32_t W, std::uint32_t OH,
                                 std::uint32_t OW, const PoolPixel<float>& pixel, float* y,
                                 std::uint32_t* where, float* x_at_max);

using MaxPool2d = BasicMaxPool2d<float>;
extern template class BasicMaxPool2d<float>;
extern template class BasicMaxPool2d<double>;

}  // namespace bnlab
