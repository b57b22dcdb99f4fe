#pragma once
// What the hand-written pooling kernels of layers/simd_avx2.cpp and simd_avx512.cpp share,
// written once for xsimd's batches: PoolPixel's formula on a vector, the formulas of the
// gradient through the fused block's max pooling, and the prefetch of the next channel. Included
// only by those two files, each compiled for its own instruction set; internal linkage, so that
// neither file's code can stand in for the other's.

#include <cstdint>

#include <immintrin.h>
#include <xsimd/xsimd.hpp>

#include "framework/rounded.hpp"
#include "layers/conv_block.hpp"
#include "layers/max_pool2d.hpp"

namespace bnlab {
namespace {

// PoolPixel on one vector of Arch: relu(gamma ((x - mu) inv_std) + beta) (without the relu
// unless pixel.relu), rounded as the scalar code, or x
template <typename Arch>
class PixelVector {
  public:
    using Batch = xsimd::batch<float, Arch>;
    using Register = typename Batch::register_type;  // __m256, __m512

    explicit PixelVector(const PoolPixel<float>& pixel)
        : normalize_(pixel.normalize),
          relu_(pixel.relu),
          mean_(pixel.mean),
          inv_std_(pixel.inv_std),
          gamma_(pixel.gamma),
          beta_(pixel.beta) {}
    Register operator()(Register x) const {
        if (!normalize_) return x;
        const Batch x_hat = (Batch(x) - mean_) * inv_std_;
        const Batch y = Batch(rounded(Register(gamma_ * x_hat))) + beta_;
        if (!relu_) return y;
        // relu: y < 0 gives 0; NaN and -0 stay
        return xsimd::select(y < Batch(0.0f), Batch(0.0f), y);
    }

  private:
    bool normalize_, relu_;
    Batch mean_, inv_std_, gamma_, beta_;
};

// MaxPoolScatter's formulas on one vector of Arch, rounded as the generic code
// (BasicConvBlock::scatter_through_max_pool) rounds them.
template <typename Arch>
class ScatterVector {
  public:
    using Batch = xsimd::batch<float, Arch>;
    using Register = typename Batch::register_type;

    explicit ScatterVector(const MaxPoolScatter& s)
        : batchnorm_(s.batchnorm),
          mean_(s.mean),
          inv_std_(s.inv_std),
          gamma_(s.gamma),
          beta_(s.beta),
          scale_(s.scale),
          minus_mean_dy_(-s.mean_dy),
          mean_dy_xhat_(s.mean_dy_xhat) {}
    // dz before the pooling's gradient is added: BatchNorm's means' part
    // gamma / sqrt(sigma2 + eps) (-mean(dy) - xhat mean(dy xhat)), or 0 without BatchNorm
    Register base(Register z) const {
        if (!batchnorm_) return Batch(0.0f);
        const Batch x_hat = (Batch(z) - mean_) * inv_std_;
        return scale_ * (minus_mean_dy_ - Batch(rounded(Register(x_hat * mean_dy_xhat_))));
    }
    // The gradient each output sends to its maximum: scale dy relu'(a), a = gamma xhat + beta at
    // the maximum (BatchNorm), or dy relu'(a) with a the block's output
    Register sent(Register dy, Register at_max) const {
        // 1 where x > 0, else 0 (multiplied, as the scalar code does: a NaN dy stays NaN)
        const auto step = [](Batch x) {
            return xsimd::select(x > Batch(0.0f), Batch(1.0f), Batch(0.0f));
        };
        if (!batchnorm_) return Batch(dy) * step(Batch(at_max));
        const Batch x_hat = (Batch(at_max) - mean_) * inv_std_;
        const Batch a = Batch(rounded(Register(gamma_ * x_hat))) + beta_;
        return (scale_ * Batch(dy)) * step(a);
    }

  private:
    bool batchnorm_;
    Batch mean_, inv_std_, gamma_, beta_, scale_, minus_mean_dy_, mean_dy_xhat_;
};

// Asks for floats [at, at + n) of the channel after `channel` (P floats each) to be brought into
// L1: a fused block's passes over the batch's z after its statistics read each channel once, from
// L3, and the hardware's prefetch does not keep up (the scatter's loads waited a quarter of its
// time). A prefetch past the last channel is harmless (it never faults).
inline void prefetch_next_channel(const float* channel, std::uint32_t P, std::uint32_t at,
                                  std::uint32_t n) {
    for (std::uint32_t line = 0; line < n; line += 16)
        _mm_prefetch(reinterpret_cast<const char*>(channel + P + at + line), _MM_HINT_T0);
}

}  // namespace
}  // namespace bnlab
