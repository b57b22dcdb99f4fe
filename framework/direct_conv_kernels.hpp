#pragma once
// The direct 3x3 kernels' loops (framework/direct_conv.hpp) for one instruction set, written once
// for xsimd's batches. Included only by the files that instantiate them, each compiled for its
// own instruction set (direct_conv_avx2.cpp with -mavx2 -mfma, direct_conv_avx512.cpp with
// -mavx512f -mfma): everything here has internal linkage, so no copy compiled for AVX-512 can
// stand in for another file's at link time, and nothing here calls the standard library.
#include <immintrin.h>

#include <xsimd/xsimd.hpp>

#include "framework/direct_conv.hpp"

namespace bnlab {
namespace {

// out[o, q + j] for the Blocks 4 output channels of the packed filter blocks at `filters` (each
// block_floats after the last) and Vectors vectors of positions from q: Blocks 4 Vectors sums in
// registers over all C 9 taps, each tap broadcast once and multiplied with the Vectors image
// vectors. Every sum is one chain of FMAs over the taps in the same order whatever the blocking,
// so every instruction set gives the same bits.
template <class Arch, std::size_t Blocks, std::size_t Vectors>
inline void conv_tile(const float* input, std::size_t in_channels, const PaddedImage& g,
                      const float* filters, std::size_t block_floats, std::size_t q,
                      std::size_t stride, float* out) {
    using Batch = xsimd::batch<float, Arch>;
    constexpr std::size_t B = direct_conv_block, Outputs = Blocks * B, kLanes = Batch::size;
    const std::size_t row = g.row(), plane = g.plane();
    Batch sum[Outputs][Vectors];
    // GCC unrolls these loops fully only when told: left as loops, the sums stayed in memory
    // and the AVX-512 kernel ran at a third of its speed.
#pragma GCC unroll 16
    for (std::size_t i = 0; i < Outputs; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < Vectors; ++j)
            sum[i][j] = Batch(0.f);
    const float* w = filters;
    for (std::size_t c = 0; c < in_channels; ++c)
        for (std::size_t kh = 0; kh < 3; ++kh)
            for (std::size_t kw = 0; kw < 3; ++kw, w += B) {
                // out[o, q + j] += W[o, c, kh, kw] x[c, q + j + kh row + kw]
                const float* tap = input + c * plane + kh * row + kw + q;
                Batch v[Vectors];
#pragma GCC unroll 4
                for (std::size_t j = 0; j < Vectors; ++j)
                    v[j] = Batch::load_unaligned(tap + j * kLanes);
#pragma GCC unroll 4
                for (std::size_t k = 0; k < Blocks; ++k)
#pragma GCC unroll 4
                    for (std::size_t i = 0; i < B; ++i) {
                        const Batch weight(w[k * block_floats + i]);
#pragma GCC unroll 4
                        for (std::size_t j = 0; j < Vectors; ++j)
                            sum[k * B + i][j] = xsimd::fma(weight, v[j], sum[k * B + i][j]);
                    }
            }
#pragma GCC unroll 16
    for (std::size_t i = 0; i < Outputs; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < Vectors; ++j)
            sum[i][j].store_unaligned(out + i * stride + q + j * kLanes);
}

// direct_conv3x3 (framework/direct_conv.hpp) in tiles of Blocks filter blocks and Vectors
// vectors of positions, the last tiles smaller where the channels or positions run out.
template <class Arch, std::size_t Blocks, std::size_t Vectors>
void conv3x3_tiles(const float* input, std::size_t in_channels, const PaddedImage& g,
                   const float* packed_filters, std::size_t out_channels, float* out) {
    constexpr std::size_t B = direct_conv_block, kLanes = xsimd::batch<float, Arch>::size;
    static_assert(direct_conv_positions % kLanes == 0, "out_stride is whole vectors");
    const std::size_t stride = g.out_stride(), block_floats = in_channels * 9 * B,
                      blocks = direct_conv_rows(out_channels) / B;
    // One tile of positions at a time, for every block of output channels: the image around
    // those positions stays in L1 while all the filters pass by it.
    const auto channel_tiles = [&](auto vectors, std::size_t q) {
        constexpr std::size_t V = decltype(vectors)::value;
        std::size_t b = 0;
        for (; b + Blocks <= blocks; b += Blocks)
            conv_tile<Arch, Blocks, V>(input, in_channels, g, packed_filters + b * block_floats,
                                       block_floats, q, stride, out + b * B * stride);
        for (; b < blocks; ++b)
            conv_tile<Arch, 1, V>(input, in_channels, g, packed_filters + b * block_floats,
                                  block_floats, q, stride, out + b * B * stride);
    };
    std::size_t q = 0;
    for (; q + Vectors * kLanes <= stride; q += Vectors * kLanes)
        channel_tiles(std::integral_constant<std::size_t, Vectors>(), q);
    for (; q < stride; q += kLanes)
        channel_tiles(std::integral_constant<std::size_t, 1>(), q);
}

// The sum of a vector's lanes: for AVX2, xsimd's; for AVX-512, GCC's (xsimd 8's needs
// AVX512DQ).
template <class Batch>
inline float lane_sum(const Batch& v) {
    if constexpr (Batch::size == 16)
        return _mm512_reduce_add_ps(v);
    else
        return xsimd::hadd(v);
}

// dy's vector at `at`, read into a register of its own. Left to itself, GCC folds the load into
// each of the three FMAs that use it (three loads instead of one): on AVX-512, where every
// unaligned load of 64 bytes crosses a cache line, the weight gradient ran at 43–54 GFLOP/s so
// and at 59–67 with one load (1 → 16 to 64 → 64 channels, a throwaway program on this file's
// loops). AVX2's kernel keeps GCC's choice (measured on Zen 3 as it is).
template <class Batch>
inline Batch load_once(const float* at) {
    auto value = static_cast<typename Batch::register_type>(Batch::load_unaligned(at));
    if constexpr (Batch::size == 16) asm("" : "+v"(value));
    return Batch(value);
}

// dW[i, (c 3 + kh) 3 + kw] += sum_{s, q} dy_s[i, q] x_s[c, q + kh row + kw] for the Outputs rows
// of dy (each plane floats after the last) and dW (taps floats each), over `samples` samples
// (x_s = x + s x_stride, dy_s = dy + s dy_stride): 3 Outputs sums in registers, one per kw, over
// the whole grid of every sample, then added across their lanes once. The grid's last vector is
// masked: past the grid, dy's zero border runs out on maps narrower than a vector (a 1-wide
// map's next plane begins 2 row + 1 floats after its grid).
template <class Arch, std::size_t Outputs>
void weight_grad_rows(const float* x, std::size_t x_stride, std::size_t in_channels,
                      const float* dy, std::size_t dy_stride, std::size_t samples,
                      const PaddedImage& g, float* dW) {
    using Batch = xsimd::batch<float, Arch>;
    constexpr std::size_t kLanes = Batch::size;
    static const float lane_index[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const std::size_t row = g.row(), plane = g.plane(), taps = in_channels * 9, grid = g.grid(),
                      whole = grid / kLanes * kLanes;
    const auto in_grid = Batch::load_unaligned(lane_index) < Batch(float(grid - whole));
    for (std::size_t c = 0; c < in_channels; ++c)
        for (std::size_t kh = 0; kh < 3; ++kh) {
            Batch sum[Outputs][3];
#pragma GCC unroll 16
            for (std::size_t i = 0; i < Outputs; ++i)
#pragma GCC unroll 3
                for (std::size_t kw = 0; kw < 3; ++kw)
                    sum[i][kw] = Batch(0.f);
            // sum[i][kw] += dy[i, q..] x[c, q + kh row + kw..], dy masked by `mask`
            const auto add_vector = [&](const float* x_row, const float* dy_s, std::size_t q,
                                        bool masked) {
                const Batch x0 = Batch::load_unaligned(x_row + q),
                            x1 = Batch::load_unaligned(x_row + q + 1),
                            x2 = Batch::load_unaligned(x_row + q + 2);
#pragma GCC unroll 16
                for (std::size_t i = 0; i < Outputs; ++i) {
                    Batch d = load_once<Batch>(dy_s + i * plane + q);
                    if (masked) d = xsimd::select(in_grid, d, Batch(0.f));
                    sum[i][0] = xsimd::fma(d, x0, sum[i][0]);
                    sum[i][1] = xsimd::fma(d, x1, sum[i][1]);
                    sum[i][2] = xsimd::fma(d, x2, sum[i][2]);
                }
            };
            for (std::size_t s = 0; s < samples; ++s) {
                const float* x_row = x + s * x_stride + c * plane + kh * row;
                const float* dy_s = dy + s * dy_stride;
                for (std::size_t q = 0; q < whole; q += kLanes)
                    add_vector(x_row, dy_s, q, false);
                if (whole < grid) add_vector(x_row, dy_s, whole, true);
            }
#pragma GCC unroll 16
            for (std::size_t i = 0; i < Outputs; ++i)
                for (std::size_t kw = 0; kw < 3; ++kw)
                    dW[i * taps + (c * 3 + kh) * 3 + kw] += lane_sum(sum[i][kw]);
        }
}

// direct_conv3x3_weight_grad (framework/direct_conv.hpp), Outputs output channels at a time,
// then one at a time.
template <class Arch, std::size_t Outputs>
void conv3x3_weight_grad(const float* padded_inputs, std::size_t input_stride,
                         std::size_t in_channels, const float* padded_grads,
                         std::size_t grad_stride, std::size_t out_channels, std::size_t samples,
                         const PaddedImage& g, float* weight_grad) {
    // dy on the grid: position q = h row + w is padded_grad[(h + 1) row + 1 + w]; the dropped
    // positions (w >= W) read its zero border.
    const float* dy = padded_grads + g.row() + 1;
    const std::size_t taps = in_channels * 9;
    std::size_t o = 0;
    for (; o + Outputs <= out_channels; o += Outputs)
        weight_grad_rows<Arch, Outputs>(padded_inputs, input_stride, in_channels,
                                        dy + o * g.plane(), grad_stride, samples, g,
                                        weight_grad + o * taps);
    for (; o < out_channels; ++o)
        weight_grad_rows<Arch, 1>(padded_inputs, input_stride, in_channels, dy + o * g.plane(),
                                  grad_stride, samples, g, weight_grad + o * taps);
}

}  // namespace
}  // namespace bnlab
